"""A keras.Sequential of any layers, and its training step with each layer called on the numpy side's input.

`ForcedStep.step` is one Keras training step in which layer l is called on the numpy side's output of layer
l − 1 (X for the first): its input is a_numpy + (a_keras − stop_gradient(a_keras)), whose value is a_numpy
exactly (a_keras − a_keras is 0) and whose gradient flows into Keras's own layer before it. So every value is
Keras's own arithmetic on the numpy side's inputs: each layer's output, the loss, tf.GradientTape's gradients
of the trainable weights and of every layer's output, the non-trainable weights after the call (moving
statistics) and the optimizer's update. Each comparison then measures one layer's arithmetic, as synced mode
measures one step's. A softmax last layer keeps Keras's own handling: its cross-entropy is taken from the
softmax's input (keras/src/backend/tensorflow/nn.py), here the numpy side's logits.
"""
import keras
import numpy as np
import tensorflow as tf

from .layer import noise_mask
from .model import LOSSES, OPTIMIZERS


def build(layers, input_shape, dtype="float64"):
    """keras.Sequential([Input(input_shape), <class_name>(**config, dtype=dtype), ...]), floatx set first.
    Raises TypeError or ValueError (Keras's message) for a layer Keras refuses."""
    keras.config.set_floatx(dtype)
    made = [getattr(keras.layers, d["class_name"])(**{**d.get("config", {}), "dtype": dtype}) for d in layers]
    return keras.Sequential([keras.Input(tuple(input_shape), dtype=dtype)] + made)


def weight_specs(model):
    """[(layer index, name, shape, trainable)] in model.get_weights() order."""
    specs = []
    for i, layer in enumerate(model.layers):
        trainable = {id(v) for v in layer.trainable_weights}
        specs += [(i, v.path.split("/")[-1], tuple(v.shape), id(v) in trainable) for v in layer.weights]
    return specs


class ForcedStep:
    """One training step of `model` with each layer on the numpy side's input (module docstring).

    step(weights, X, y, inputs) → dict of numpy arrays:
      weights_in   every weight after loading (model.get_weights() order)
      outputs      each layer's output on its numpy input
      loss         the loss object's value (times loss_scale)
      grads        d loss / d trainable weight (model.trainable_weights order)
      douts        d loss / d each layer's output (None where the loss does not reach it: a softmax
                   whose cross-entropy Keras takes from its input)
      weights_out  every weight after the step: trainable ones updated by the optimizer, non-trainable ones
                   as the layers' training call left them
    The optimizer keeps its state from step to step, as in training.
    """

    def __init__(self, model, learning_rate, loss="mse", loss_config=None, optimizer="sgd", optimizer_config=None,
                 loss_scale=1.0, training=True):
        self.model, self.dtype, self.training = model, model.weights[0].dtype if model.weights else "float64", training
        keras.config.set_floatx(self.dtype)
        self.loss_fn = LOSSES[loss](dtype=self.dtype, **(loss_config or {}))
        self.loss_scale = float(loss_scale)
        self.optimizer = OPTIMIZERS[optimizer](learning_rate=learning_rate, **(optimizer_config or {}))
        self.optimizer.build(model.trainable_variables)
        self._initial = [np.array(v.numpy()) for v in self.optimizer.variables + self._seeds()]
        self._step = tf.function(self._graph, reduce_retracing=True)

    def _seeds(self):
        return [v for layer in self.model.layers for v in layer.non_trainable_variables if "seed_generator" in v.path]

    def reset(self, learning_rate):
        """As built: the optimizer's state (moments, iterations) and the layers' random states (Dropout's seeds)
        back to their first values, and the learning rate set: a later check runs exactly as the first."""
        for variable, value in zip(self.optimizer.variables + self._seeds(), self._initial):
            variable.assign(value)
        self.optimizer.learning_rate = learning_rate

    def _graph(self, weights, X, y, inputs):
        model = self.model
        for variable, value in zip(model.weights, weights):
            variable.assign(value)
        weights_in = [tf.identity(v.value) for v in model.weights]
        with tf.GradientTape(persistent=False) as tape:
            outputs, previous = [], None
            for layer, given in zip(model.layers, [X] + list(inputs[:-1])):
                x = given if previous is None else given + (previous - tf.stop_gradient(previous))
                previous = layer(x, training=self.training)
                outputs.append(previous)
            loss = self.loss_fn(y, outputs[-1])
            loss = loss if self.loss_scale == 1.0 else loss * self.loss_scale
        variables = model.trainable_variables
        grads = tape.gradient(loss, list(variables) + outputs,
                              unconnected_gradients=tf.UnconnectedGradients.NONE)
        grads, douts = grads[:len(variables)], grads[len(variables):]
        grads = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g) for g, v in zip(grads, variables)]
        self.optimizer.apply_gradients(zip(grads, variables))
        self._connected = [d is not None for d in douts]  # known when traced
        douts = [o if d is None else d for d, o in zip(douts, outputs)]
        return weights_in, outputs, loss, grads, douts, [tf.identity(v.value) for v in model.weights]

    def step(self, weights, X, y, inputs):
        """The step from `weights` on X, y, layer l + 1 called on inputs[l] (the numpy side's output of layer l)."""
        c = lambda a: tf.convert_to_tensor(np.asarray(a), dtype=self.dtype)  # noqa: E731
        w_in, outputs, loss, grads, douts, w_out = self._step([c(w) for w in weights], c(X), c(y),
                                                             [c(a) for a in inputs])
        arrays = lambda ts: [np.asarray(t.numpy(), dtype=np.float64) for t in ts]  # noqa: E731
        douts = [np.asarray(d.numpy()) if connected else None for d, connected in zip(douts, self._connected)]
        return {"weights_in": arrays(w_in), "outputs": arrays(outputs), "loss": float(loss.numpy()),
                "grads": arrays(grads), "douts": douts, "weights_out": arrays(w_out)}

    def masks(self, rows):
        """The keep-masks the Dropout layers' next training call will draw for a batch of `rows` rows, in the
        order of the Dropout layers (Keras's own draws, read without advancing its seed: keras_impl/layer.py)."""
        found, shape = [], (rows,) + tuple(self.model.inputs[0].shape[1:])
        for layer in self.model.layers:
            if isinstance(layer, keras.layers.Dropout):
                found.append(noise_mask(layer, shape, self.dtype))
            shape = tuple(layer.compute_output_shape(shape))
        return found
