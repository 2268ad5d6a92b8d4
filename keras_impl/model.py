"""A Keras Sequential of Dense layers and one training step whose every number comes from Keras."""
import keras
import numpy as np
import tensorflow as tf
from keras import ops

from .convert import from_keras, to_keras

LOSSES = {
    "mse": keras.losses.MeanSquaredError,
    "mae": keras.losses.MeanAbsoluteError,
    "binary_crossentropy": keras.losses.BinaryCrossentropy,
    "categorical_crossentropy": keras.losses.CategoricalCrossentropy,
}
OPTIMIZERS = {
    "sgd": keras.optimizers.SGD,
    "adam": keras.optimizers.Adam,
    "adamw": keras.optimizers.AdamW,
    "rmsprop": keras.optimizers.RMSprop,
    "adagrad": keras.optimizers.Adagrad,
}


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
    """One training step of `model` with a Keras loss and optimizer, by name and keyword arguments.

    `step(weights, X, y)` loads `weights` (guide convention, (units, inputs)) into the model and
    returns, all in the guide's convention:
      weights_in  the model's variables after loading (checks the round trip),
      zs, activations  each Dense layer's pre-activation and output,
      loss        the Keras loss object's value,
      grads       d loss / d variable from tf.GradientTape (Keras's own autodiff),
      weights_out the variables after optimizer.apply_gradients.
    The optimizer keeps its state (momenta, iteration count) from step to step until `reset()`.
    The step runs compiled (tf.function) unless `compiled=False`.
    """

    def __init__(self, model, learning_rate, loss="mse", loss_config=None, optimizer="sgd",
                 optimizer_config=None, compiled=True):
        self.dtype = model.trainable_variables[0].dtype
        keras.config.set_floatx(self.dtype)
        self.model = model
        self.loss_fn = LOSSES[loss](dtype=self.dtype, **(loss_config or {}))
        self.optimizer = OPTIMIZERS[optimizer](learning_rate=learning_rate, **(optimizer_config or {}))
        self.optimizer.build(model.trainable_variables)
        self._initial_state = [np.array(v.numpy()) for v in self.optimizer.variables]
        self._step = tf.function(self._keras_step, reduce_retracing=True) if compiled else self._keras_step
        self._loss = None

    def reset(self, learning_rate):
        """Forget the optimizer's state (momenta, accumulators, iterations) and set the learning rate."""
        for variable, value in zip(self.optimizer.variables, self._initial_state):
            variable.assign(value)
        self.optimizer.learning_rate = learning_rate

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

    def _keras_loss(self, kernels, X, y):
        for variable, value in zip(self.model.trainable_variables, kernels):
            variable.assign(value)
        return self.loss_fn(y, self.model(X))

    def loss_at(self, weights, X, y):
        """Keras's loss at `weights` ((units, inputs) convention) on X, y, without training."""
        if self._loss is None:
            self._loss = tf.function(self._keras_loss, reduce_retracing=True)
        kernels = [tf.constant(w, dtype=self.dtype) for w in to_keras(weights)]
        return float(self._loss(kernels, tf.constant(X, dtype=self.dtype), tf.constant(y, dtype=self.dtype)))

    def step(self, weights, X, y):
        """Run one step from `weights` ((units, inputs) convention); return a dict of numpy arrays."""
        kernels = [tf.constant(w, dtype=self.dtype) for w in to_keras(weights)]
        out = self._step(kernels, tf.constant(X, dtype=self.dtype), tf.constant(y, dtype=self.dtype))
        weights_in, zs, activations, loss, grads, weights_out = tf.nest.map_structure(np.asarray, out)
        return {"weights_in": from_keras(weights_in), "zs": list(zs), "activations": list(activations),
                "loss": float(loss), "grads": from_keras(grads), "weights_out": from_keras(weights_out)}
