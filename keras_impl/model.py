"""A Keras Sequential of Dense layers and one training step whose every number comes from Keras."""
import keras
import numpy as np
import tensorflow as tf
from keras import ops

from .convert import from_keras, to_keras


def build_model(sizes, activations, dtype="float64"):
    """keras.Sequential([Input((sizes[0],)), Dense(sizes[1], activation=activations[0]), ...]).

    floatx is set first: a model, loss or optimizer made before `set_floatx("float64")`
    silently keeps float32 for its weights, learning rate or loss.
    """
    keras.config.set_floatx(dtype)
    layers = [keras.Input((sizes[0],), dtype=dtype)]
    layers += [keras.layers.Dense(units, activation=None if name == "linear" else name, dtype=dtype)
               for units, name in zip(sizes[1:], activations)]
    return keras.Sequential(layers)


class KerasStep:
    """One training step of `model` with Keras's MeanSquaredError and SGD(learning_rate).

    `step(weights, X, y)` loads `weights` (guide convention, (units, inputs)) into the model and
    returns, all in the guide's convention:
      weights_in  the model's variables after loading (checks the round trip),
      zs, activations  each Dense layer's pre-activation and output,
      loss        keras.losses.MeanSquaredError()(y, ŷ),
      grads       d loss / d variable from tf.GradientTape (Keras's own autodiff),
      weights_out the variables after optimizer.apply_gradients.
    The step runs compiled (tf.function) unless `compiled=False`.
    """

    def __init__(self, model, learning_rate, compiled=True):
        dtype = keras.config.floatx()
        self.model = model
        self.loss_fn = keras.losses.MeanSquaredError(dtype=dtype)
        self.optimizer = keras.optimizers.SGD(learning_rate=learning_rate)
        self.optimizer.build(model.trainable_variables)
        self._dtype = dtype
        self._step = tf.function(self._keras_step) if compiled else self._keras_step

    def _keras_step(self, kernels, X, y):
        variables = self.model.trainable_variables
        for variable, value in zip(variables, kernels):
            variable.assign(value)
        weights_in = [tf.identity(v.value) for v in variables]
        with tf.GradientTape() as tape:
            zs, activations, a = [], [], X
            for layer in self.model.layers:
                zs.append(ops.add(ops.matmul(a, layer.kernel), layer.bias))  # what Dense.call computes
                a = layer(a)
                activations.append(a)
            loss = self.loss_fn(y, a)
        grads = tape.gradient(loss, variables)
        self.optimizer.apply_gradients(zip(grads, variables))
        weights_out = [tf.identity(v.value) for v in variables]
        return weights_in, zs, activations, loss, grads, weights_out

    def step(self, weights, X, y):
        """Run one step from `weights` ((units, inputs) convention); return a dict of numpy arrays."""
        kernels = [tf.constant(w, dtype=self._dtype) for w in to_keras(weights)]
        out = self._step(kernels, tf.constant(X, dtype=self._dtype), tf.constant(y, dtype=self._dtype))
        weights_in, zs, activations, loss, grads, weights_out = tf.nest.map_structure(np.asarray, out)
        return {"weights_in": from_keras(weights_in), "zs": list(zs), "activations": list(activations),
                "loss": float(loss), "grads": from_keras(grads), "weights_out": from_keras(weights_out)}
