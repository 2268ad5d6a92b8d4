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
from . import quiet_tensorflow

quiet_tensorflow()

import keras
import numpy as np
import tensorflow as tf

from .layer import noise_mask
from .model import LOSSES, OPTIMIZERS


def build(layers, input_shape, dtype="float64"):
    """The Keras model of `layers` ({"class_name", "config"[, "inputs", "call"]} each) on inputs of
    `input_shape`, floatx set first; its layers, in the declared order, are `model.stack_layers`.

    A plain stack is keras.Sequential([Input(input_shape), <class_name>(**config, dtype=dtype), ...]). Where a layer
    names its inputs ("inputs": indices of earlier layers, −1 for the network's input; Add takes two), the model is
    the functional keras.Model of that graph; MultiHeadAttention is called as self-attention, layer(x, x, x,
    **call). Raises TypeError or ValueError (Keras's message) for a layer Keras refuses."""
    keras.config.set_floatx(dtype)
    made = [getattr(keras.layers, d["class_name"])(**{**d.get("config", {}), "dtype": dtype}) for d in layers]
    if not is_graph(layers):
        model = keras.Sequential([keras.Input(tuple(input_shape), dtype=dtype)] + made)
    else:
        x = keras.Input(tuple(input_shape), dtype=dtype)
        outputs = []
        for layer, d, sources in zip(made, layers, sources_of(layers)):
            outputs.append(call_layer(layer, [x if j < 0 else outputs[j] for j in sources], d.get("call")))
        model = keras.Model(x, outputs[-1])
    model.stack_layers = made
    return model


def is_graph(layers):
    """Whether `layers` needs the functional API: a layer that names its inputs, or an Add."""
    return any("inputs" in d or d["class_name"] == "Add" for d in layers)


def sources_of(layers):
    """Each layer's inputs: its declared "inputs", else the layer before it (−1: the network's input)."""
    return [list(d.get("inputs", [i - 1])) for i, d in enumerate(layers)]


def call_layer(layer, inputs, call=None, **kwargs):
    """layer on its inputs as the graph wires them: Add on the list, MultiHeadAttention as self-attention."""
    if isinstance(layer, keras.layers.Add):
        return layer(inputs, **kwargs)
    if isinstance(layer, keras.layers.MultiHeadAttention):
        return layer(inputs[0], inputs[0], inputs[0], **(call or {}), **kwargs)
    return layer(inputs[0], **(call or {}), **kwargs)


def weight_specs(model):
    """[(layer index, name, shape, trainable)] in the order of the model's weights: layer by layer, as declared."""
    specs = []
    for i, layer in enumerate(model.stack_layers):
        trainable = {id(v) for v in layer.trainable_weights}
        specs += [(i, v.path.removeprefix(layer.path + "/"), tuple(v.shape), id(v) in trainable) for v in layer.weights]
    return specs


def variables(model):
    """The model's weights as variables, in weight_specs' order."""
    return [v for layer in model.stack_layers for v in layer.weights]


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

    def __init__(self, model, layers, learning_rate, loss="mse", loss_config=None, optimizer="sgd",
                 optimizer_config=None, loss_scale=1.0, training=True):
        self.layers = layers  # the declarations: each layer's inputs and call arguments
        self.model, self.dtype, self.training = model, model.weights[0].dtype if model.weights else "float64", training
        keras.config.set_floatx(self.dtype)
        self.loss_fn = LOSSES[loss](dtype=self.dtype, **(loss_config or {}))
        self.loss_scale = float(loss_scale)
        self.optimizer = OPTIMIZERS[optimizer](learning_rate=learning_rate, **(optimizer_config or {}))
        self.optimizer.build(model.trainable_variables)
        self._initial = [np.array(v.numpy()) for v in self.optimizer.variables + self._seeds()]
        self._step = tf.function(self._graph, reduce_retracing=True)

    def _seeds(self):
        return [v for layer in self.model.stack_layers for v in layer.non_trainable_variables
                if "seed_generator" in v.path]

    def reset(self, learning_rate):
        """As built: the optimizer's state (moments, iterations) and the layers' random states (Dropout's seeds)
        back to their first values, and the learning rate set: a later check runs exactly as the first."""
        for variable, value in zip(self.optimizer.variables + self._seeds(), self._initial):
            variable.assign(value)
        self.optimizer.learning_rate = learning_rate

    def _graph(self, weights, X, y, inputs):
        model, layers = self.model, self.model.stack_layers
        weights_all = variables(model)
        for variable, value in zip(weights_all, weights):
            variable.assign(value)
        weights_in = [tf.identity(v.value) for v in weights_all]
        sources = sources_of(self.layers)
        with tf.GradientTape() as tape:
            outputs, forced = [], []
            for layer, d, srcs in zip(layers, self.layers, sources):
                ins = [X if j < 0 else inputs[j] + (outputs[j] - tf.stop_gradient(outputs[j])) for j in srcs]
                forced.append(ins)
                outputs.append(call_layer(layer, ins, d.get("call"), training=self.training))
            loss = self.loss_fn(y, outputs[-1])
            loss = loss if self.loss_scale == 1.0 else loss * self.loss_scale
        trainable = [v for layer in layers for v in layer.trainable_weights]
        slots = [t for ins, srcs in zip(forced, sources) for t, j in zip(ins, srcs) if j >= 0]
        grads = tape.gradient(loss, trainable + outputs + slots, unconnected_gradients=tf.UnconnectedGradients.NONE)
        n, L = len(trainable), len(outputs)
        grads, douts, dxs = grads[:n], grads[n:n + L], grads[n + L:]
        grads = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g) for g, v in zip(grads, trainable)]
        self.optimizer.apply_gradients(zip(grads, trainable))
        self._connected = [d is not None for d in douts]  # known when traced
        douts = [o if d is None else d for d, o in zip(douts, outputs)]
        dxs = [tf.zeros_like(t) if d is None else tf.convert_to_tensor(d) for d, t in zip(dxs, slots)]
        return weights_in, outputs, loss, grads, douts, dxs, [tf.identity(v.value) for v in weights_all]

    def loss_at(self, weights, X, y, seed_states=()):
        """Keras's loss of the model on X, y at `weights` (every weight, weight_specs' order), in training mode,
        each Dropout drawing from seed_states[layer] (the step's mask): its own forward, no forcing, no update
        kept (the finite-difference referee's oracle: compare/referee.py)."""
        if not hasattr(self, "_loss_at"):
            self._loss_at = tf.function(self._loss_graph, reduce_retracing=True)
        seeds = [[v for v in layer.non_trainable_variables if "seed_generator" in v.path]
                 for layer in self.model.stack_layers]
        for own, state in zip(seeds, seed_states):
            if own and state is not None:
                own[0].assign(state)
        c = lambda a: tf.convert_to_tensor(np.asarray(a), dtype=self.dtype)  # noqa: E731
        return float(self._loss_at([c(w) for w in weights], c(X), c(y)).numpy())

    def _loss_graph(self, weights, X, y):
        for variable, value in zip(variables(self.model), weights):
            variable.assign(value)
        outputs = []
        for layer, d, srcs in zip(self.model.stack_layers, self.layers, sources_of(self.layers)):
            outputs.append(call_layer(layer, [X if j < 0 else outputs[j] for j in srcs], d.get("call"),
                                      training=self.training))
        loss = self.loss_fn(y, outputs[-1])
        return loss if self.loss_scale == 1.0 else loss * self.loss_scale

    def infer(self, weights, X, inputs):
        """Each layer's output in inference mode (training=False: moving statistics, no dropout), layer l + 1
        called on inputs[l], from `weights`; nothing is updated."""
        if not hasattr(self, "_infer"):
            self._infer = tf.function(self._infer_graph, reduce_retracing=True)
        c = lambda a: tf.convert_to_tensor(np.asarray(a), dtype=self.dtype)  # noqa: E731
        return [np.asarray(t.numpy()) for t in self._infer([c(w) for w in weights], c(X), [c(a) for a in inputs])]

    def _infer_graph(self, weights, X, inputs):
        for variable, value in zip(variables(self.model), weights):
            variable.assign(value)
        return [call_layer(layer, [X if j < 0 else inputs[j] for j in srcs], d.get("call"), training=False)
                for layer, d, srcs in zip(self.model.stack_layers, self.layers, sources_of(self.layers))]

    def step(self, weights, X, y, inputs):
        """The step from `weights` on X, y, layer l + 1 called on inputs[l] (the numpy side's output of layer l)."""
        c = lambda a: tf.convert_to_tensor(np.asarray(a), dtype=self.dtype)  # noqa: E731
        w_in, outputs, loss, grads, douts, dxs, w_out = self._step([c(w) for w in weights], c(X), c(y),
                                                                  [c(a) for a in inputs])
        arrays = lambda ts: [np.asarray(t.numpy(), dtype=np.float64) for t in ts]  # noqa: E731
        douts = [np.asarray(d.numpy()) if connected else None for d, connected in zip(douts, self._connected)]
        return {"weights_in": arrays(w_in), "outputs": arrays(outputs), "loss": float(loss.numpy()),
                "grads": arrays(grads), "douts": douts, "dxs": arrays(dxs), "weights_out": arrays(w_out)}

    def masks(self, rows):
        """The keep-masks the Dropout layers' next training call will draw for a batch of `rows` rows, in the
        order of the Dropout layers (Keras's own draws, read without advancing its seed: keras_impl/layer.py)."""
        shapes = output_shapes(self.model, self.layers, rows)
        sources = sources_of(self.layers)
        first = (rows,) + tuple(self.model.inputs[0].shape[1:])
        return [noise_mask(layer, first if srcs[0] < 0 else shapes[srcs[0]], self.dtype)
                for layer, srcs in zip(self.model.stack_layers, sources) if isinstance(layer, keras.layers.Dropout)]


def output_shapes(model, layers, rows):
    """Each layer's output shape for a batch of `rows` rows."""
    shapes, first = [], (rows,) + tuple(model.inputs[0].shape[1:])
    for layer, srcs in zip(model.stack_layers, sources_of(layers)):
        ins = [first if j < 0 else shapes[j] for j in srcs]
        if isinstance(layer, keras.layers.Add):
            shape = ins[0]
        elif isinstance(layer, keras.layers.MultiHeadAttention):
            shape = layer.compute_output_shape(ins[0], ins[0])
        else:
            shape = layer.compute_output_shape(ins[0])
        shapes.append(tuple(int(d) for d in shape))
    return shapes


class OwnStep:
    """Keras training on its own: a second model of the same layers from the same starting weights, stepped by
    its own compiled training step (model(X, training=True), the loss, tf.GradientTape, apply_gradients) on the
    batches it is given; a Dropout draws from the state it is handed (the mask the numpy side got)."""

    def __init__(self, layers, input_shape, weights, learning_rate, loss, loss_config, optimizer, optimizer_config,
                 dtype="float64", loss_scale=1.0):
        self.model = build(layers, input_shape, dtype)
        for variable, value in zip(variables(self.model), weights):
            variable.assign(value)
        self.loss_fn = LOSSES[loss](dtype=dtype, **(loss_config or {}))
        self.loss_scale = float(loss_scale)
        self.optimizer = OPTIMIZERS[optimizer](learning_rate=learning_rate, **(optimizer_config or {}))
        self.optimizer.build(self.model.trainable_variables)
        self.seeds = [[v for v in layer.non_trainable_variables if "seed_generator" in v.path]
                      for layer in self.model.stack_layers]
        self._step = tf.function(self._graph, reduce_retracing=True)

    def _graph(self, X, y):
        with tf.GradientTape() as tape:
            loss = self.loss_fn(y, self.model(X, training=True))
            loss = loss if self.loss_scale == 1.0 else loss * self.loss_scale
        grads = tape.gradient(loss, self.model.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))
        return loss

    def step(self, X, y, seed_states):
        """One step on X, y, each Dropout drawing from seed_states[layer] (None: its own); the weights after it."""
        for own, state in zip(self.seeds, seed_states):
            if own and state is not None:
                own[0].assign(state)
        self._step(tf.convert_to_tensor(X), tf.convert_to_tensor(y))
        return [np.asarray(v.numpy()) for v in variables(self.model)]
