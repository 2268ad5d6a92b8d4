"""A Keras Sequential of Dense layers and one training step whose every number comes from Keras."""
import keras
import numpy as np
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
        self.backend = keras.backend.backend()
        self._packed, self._tf_constant, self._layouts = False, None, {}
        self._step, self._loss = {"tensorflow": self._tf_functions, "jax": self._jax_functions,
                                  "torch": self._torch_functions}[self.backend](compiled)

    def reset(self, learning_rate):
        """Forget the optimizer's state (momenta, accumulators, iterations) and set the learning rate."""
        for variable, value in zip(self.optimizer.variables, self._initial_state):
            variable.assign(value)
        self.optimizer.learning_rate = learning_rate

    def _forward(self, X, layer_call):
        """Each Dense layer's pre-activation (what Dense.call computes) and output."""
        zs, activations, a = [], [], X
        for i, layer in enumerate(self.model.layers):
            kernel, bias, a_next = layer_call(i, layer, a)
            zs.append(ops.add(ops.matmul(a, kernel), bias))
            activations.append(a_next)
            a = a_next
        return zs, activations

    # --- TensorFlow: tf.GradientTape inside tf.function --------------------------------------
    def _tf_functions(self, compiled):
        import tensorflow as tf
        shapes = [tuple(v.shape) for v in self.model.trainable_variables]
        sizes = [int(np.prod(s)) for s in shapes]

        def unpack(flat):
            return [tf.reshape(part, shape) for part, shape in zip(tf.split(flat, sizes), shapes)]

        def step(flat, X, y):
            # One flat input and one flat output: each tensor crossing the tf.function boundary costs
            # tens of microseconds, more than this network's arithmetic.
            variables = self.model.trainable_variables
            for variable, value in zip(variables, unpack(flat)):
                variable.assign(value)
            weights_in = [tf.identity(v.value) for v in variables]
            with tf.GradientTape() as tape:
                zs, activations = self._forward(X, lambda i, layer, a: (layer.kernel, layer.bias, layer(a)))
                loss = self.loss_fn(y, activations[-1])
            grads = tape.gradient(loss, variables)
            self.optimizer.apply_gradients(zip(grads, variables))
            parts = weights_in + zs + activations + [tf.reshape(loss, [1])] + grads + [tf.identity(v.value)
                                                                                     for v in variables]
            return tf.concat([tf.reshape(p, [-1]) for p in parts], axis=0)

        def loss_at(flat, X, y):
            for variable, value in zip(self.model.trainable_variables, unpack(flat)):
                variable.assign(value)
            return self.loss_fn(y, self.model(X))
        self._packed, self._tf_constant = True, tf.constant
        if not compiled:
            return step, loss_at
        # Concrete functions for any batch size: calling them skips tf.function's signature lookup,
        # which costs more per call than this network's whole step.
        specs = (tf.TensorSpec([sum(sizes)], self.dtype), tf.TensorSpec([None, shapes[0][0]], self.dtype),
                 tf.TensorSpec([None, self.model.layers[-1].units], self.dtype))
        step = tf.function(step).get_concrete_function(*specs)
        loss_at = tf.function(loss_at).get_concrete_function(*specs)
        return step, loss_at

    # --- jax: jax.value_and_grad over stateless calls, optimizer.stateless_apply, jax.jit -----
    def _jax_functions(self, compiled):
        import jax

        def loss_and_outputs(kernels, X, y):
            zs, activations = self._forward(X, lambda i, layer, a: (
                kernels[2 * i], kernels[2 * i + 1], layer.stateless_call([kernels[2 * i], kernels[2 * i + 1]], [], a)[0]))
            return self.loss_fn(y, activations[-1]), (zs, activations)

        def pure_step(kernels, optimizer_state, X, y):
            (loss, (zs, activations)), grads = jax.value_and_grad(loss_and_outputs, has_aux=True)(kernels, X, y)
            weights_out, optimizer_state = self.optimizer.stateless_apply(optimizer_state, grads, kernels)
            return kernels, zs, activations, loss, grads, weights_out, optimizer_state
        pure_step = jax.jit(pure_step) if compiled else pure_step
        pure_loss = jax.jit(lambda k, X, y: loss_and_outputs(k, X, y)[0]) if compiled else (
            lambda k, X, y: loss_and_outputs(k, X, y)[0])

        def step(kernels, X, y):
            *out, state = pure_step(list(kernels), [v.value for v in self.optimizer.variables], X, y)
            for variable, value in zip(self.optimizer.variables, state):
                variable.assign(value)
            return tuple(out)
        return step, lambda kernels, X, y: pure_loss(list(kernels), X, y)

    # --- torch: autograd, eager ----------------------------------------------------------------
    def _torch_functions(self, compiled):
        import torch

        def step(kernels, X, y):
            variables = self.model.trainable_variables
            for variable, value in zip(variables, kernels):
                variable.assign(value)
            weights_in = [v.value.detach().clone() for v in variables]
            for v in variables:
                v.value.grad = None
            with torch.enable_grad():
                zs, activations = self._forward(X, lambda i, layer, a: (layer.kernel, layer.bias, layer(a)))
                loss = self.loss_fn(y, activations[-1])
                loss.backward()
            grads = [v.value.grad.detach().clone() for v in variables]
            with torch.no_grad():
                self.optimizer.apply(grads, variables)
            return weights_in, zs, activations, loss, grads, [v.value.detach().clone() for v in variables]

        def loss_at(kernels, X, y):
            for variable, value in zip(self.model.trainable_variables, kernels):
                variable.assign(value)
            with torch.no_grad():
                return self.loss_fn(y, self.model(X))
        return step, loss_at

    def _inputs(self, weights, X, y):
        convert = lambda a: ops.convert_to_tensor(np.asarray(a), dtype=self.dtype)  # noqa: E731
        if self._packed:  # one copy: ravel of the transposed view lays the kernel out as Keras does
            constant = lambda a: self._tf_constant(a, dtype=self.dtype)  # noqa: E731
            flat = np.concatenate([np.ravel(w.T if w.ndim == 2 else w) for w in weights])
            return constant(flat), constant(X), constant(y)
        return [convert(w) for w in to_keras(weights)], convert(X), convert(y)

    def _unpack(self, flat, rows):
        """The flat output of the TensorFlow step, split back into its tensors."""
        if rows not in self._layouts:
            shapes = [tuple(v.shape) for v in self.model.trainable_variables]
            units = [layer.units for layer in self.model.layers]
            layout = shapes + [(rows, n) for n in units] * 2 + [()] + shapes + shapes
            ends = np.cumsum([int(np.prod(shape)) for shape in layout])
            self._layouts[rows] = (layout, ends - [int(np.prod(s)) for s in layout], ends, len(shapes), len(units))
        layout, starts, ends, n, L = self._layouts[rows]
        out = [flat[a:b].reshape(shape) for shape, a, b in zip(layout, starts, ends)]
        return out[:n], out[n:n + L], out[n + L:n + 2 * L], out[n + 2 * L], out[n + 2 * L + 1:2 * n + 2 * L + 1], \
            out[2 * n + 2 * L + 1:]

    def loss_at(self, weights, X, y):
        """Keras's loss at `weights` ((units, inputs) convention) on X, y, without training."""
        return float(ops.convert_to_numpy(self._loss(*self._inputs(weights, X, y))))

    def step(self, weights, X, y):
        """Run one step from `weights` ((units, inputs) convention); return a dict of numpy arrays."""
        out = self._step(*self._inputs(weights, X, y))
        if self._packed:
            weights_in, zs, activations, loss, grads, weights_out = self._unpack(_numpy(out), len(X))
        else:
            weights_in, zs, activations, loss, grads, weights_out = (
                [_numpy(t) for t in part] if isinstance(part, (list, tuple)) else _numpy(part) for part in out)
        return {"weights_in": from_keras(weights_in), "zs": zs, "activations": activations,
                "loss": float(loss), "grads": from_keras(grads), "weights_out": from_keras(weights_out)}


def _numpy(tensor):
    """A backend tensor as a float64 numpy array (values unchanged)."""
    if hasattr(tensor, "detach"):
        tensor = tensor.detach()
    return np.asarray(ops.convert_to_numpy(tensor), dtype=np.float64)
