"""A Keras Sequential of Dense layers and one training step whose every number comes from Keras."""
from . import quiet_tensorflow

quiet_tensorflow()

import keras
import numpy as np
from keras import ops

from .convert import from_keras, swap_kernels, to_keras

# Each activation's Keras name for Dense(activation=...): "linear" is none at all.
ACTIVATIONS = {"linear": None, "relu": "relu", "tanh": "tanh", "sigmoid": "sigmoid", "elu": "elu", "softmax": "softmax"}
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
    unknown = [name for name in activations if name not in ACTIVATIONS]
    if unknown:
        raise ValueError(f"unknown activation {unknown[0]!r}; expected one of {', '.join(ACTIVATIONS)}")
    keras.config.set_floatx(dtype)
    layers = [keras.Input((sizes[0],), dtype=dtype)]
    layers += [keras.layers.Dense(units, activation=ACTIVATIONS[name], dtype=dtype)
               for units, name in zip(sizes[1:], activations)]
    return keras.Sequential(layers)


def layer_outputs(model, X):
    """Each layer's output of a Sequential model, calling its layers in turn: the last is model(X)."""
    outputs, a = [], X
    for layer in model.layers:
        a = layer(a)
        outputs.append(a)
    return outputs


class KerasStep:
    """One training step of `model` with a Keras loss and optimizer, by name and keyword arguments.

    `step(weights, X, y)` loads `weights` (guide convention, (units, inputs)) into the model and
    returns, all in the guide's convention:
      weights_in  the model's variables after loading (checks the round trip),
      zs, activations  each Dense layer's pre-activation and output,
      loss        the Keras loss object's value (times loss_scale, a declared constant),
      grads       d loss / d variable from tf.GradientTape (Keras's own autodiff),
      weights_out the variables after optimizer.apply_gradients.
    The optimizer keeps its state (momenta, iteration count) from step to step until `reset()`.
    The step runs compiled (tf.function) unless `compiled=False`. loss_config may hold Keras's `reduction`;
    loss_scale multiplies the loss inside the differentiated function, so the gradients stay autodiff's.
    """

    def __init__(self, model, learning_rate, loss="mse", loss_config=None, optimizer="sgd",
                 optimizer_config=None, compiled=True, loss_scale=1.0):
        self.dtype = model.trainable_variables[0].dtype
        keras.config.set_floatx(self.dtype)
        self.model = model
        self.loss_fn = LOSSES[loss](dtype=self.dtype, **(loss_config or {}))
        self.loss_scale = float(loss_scale)
        self.optimizer = OPTIMIZERS[optimizer](learning_rate=learning_rate, **(optimizer_config or {}))
        self.optimizer.build(model.trainable_variables)
        self._initial_state = [np.array(v.numpy()) for v in self.optimizer.variables]
        self.backend = keras.backend.backend()
        self._packed, self._tf_constant, self._layouts = False, None, {}
        self._step, self._loss = {"tensorflow": self._tf_functions, "jax": self._jax_functions,
                                  "torch": self._torch_functions}[self.backend](compiled)
        stateless = optimizer == "sgd" and not (optimizer_config or {}).get("momentum")
        self._stacked = None
        if compiled and stateless and self.backend == "tensorflow":
            self._stacked = _StackedSteps(self, learning_rate, optimizer_config)

    def reset(self, learning_rate):
        """Forget the optimizer's state (momenta, accumulators, iterations) and set the learning rate."""
        for variable, value in zip(self.optimizer.variables, self._initial_state):
            variable.assign(value)
        self.optimizer.learning_rate = learning_rate
        if self._stacked:
            self._stacked.optimizer.learning_rate = learning_rate

    def loss(self, y, y_pred):
        """The Keras loss object's value times loss_scale: loss_scale · loss_fn(y, ŷ), a tensor of the backend.
        Called inside the differentiated function, so autodiff carries the factor into every gradient."""
        value = self.loss_fn(y, y_pred)
        return value if self.loss_scale == 1.0 else value * self.loss_scale

    def _forward(self, X, kernels=None):
        """Each Dense layer's pre-activation and output, by Dense.call's own operations:
        z = ops.add(ops.matmul(a, kernel), bias), a' = layer.activation(z).

        Computing z once and applying the layer's activation to it gives layer(a) bit for bit
        (tests/test_keras_impl.py) without a second matmul, which TensorFlow's graph would not merge.
        kernels: [kernel0, bias0, ...] to use instead of the layers' variables (stateless calls).
        """
        zs, activations, a = [], [], X
        for i, layer in enumerate(self.model.layers):
            kernel, bias = (layer.kernel, layer.bias) if kernels is None else kernels[2 * i:2 * i + 2]
            zs.append(ops.add(ops.matmul(a, kernel), bias))
            a = layer.activation(zs[-1])
            activations.append(a)
        return zs, activations

    # --- TensorFlow: tf.GradientTape inside tf.function --------------------------------------
    def _tf_functions(self, compiled):
        import tensorflow as tf
        shapes = _guide_shapes(self.model)
        sizes = [int(np.prod(s)) for s in shapes]

        def unpack(flat):  # the guide's layout in, Keras's out
            return swap_kernels([tf.reshape(part, shape) for part, shape in zip(tf.split(flat, sizes), shapes)])

        def step(flat, X, y):
            # One flat input and one flat output, in the guide's layout: each tensor crossing the
            # tf.function boundary costs tens of microseconds, more than this network's arithmetic,
            # and TensorFlow transposes a large kernel several times faster than numpy does.
            variables = self.model.trainable_variables
            for variable, value in zip(variables, unpack(flat)):
                variable.assign(value)
            weights_in = [tf.identity(v.value) for v in variables]
            with tf.GradientTape() as tape:
                zs, activations = self._forward(X)
                loss = self.loss(y, activations[-1])
            grads = tape.gradient(loss, variables)
            self.optimizer.apply_gradients(zip(grads, variables))
            parts = (swap_kernels(weights_in) + zs + activations + [tf.reshape(loss, [1])] + swap_kernels(grads)
                     + swap_kernels([tf.identity(v.value) for v in variables]))
            return tf.concat([tf.reshape(p, [-1]) for p in parts], axis=0)

        def loss_at(flat, X, y):
            for variable, value in zip(self.model.trainable_variables, unpack(flat)):
                variable.assign(value)
            return self.loss(y, self.model(X))
        self._packed, self._tf_constant = True, tf.constant
        if not compiled:
            return step, loss_at
        # Concrete functions for any batch size: calling them skips tf.function's signature lookup,
        # which costs more per call than this network's whole step.
        specs = (tf.TensorSpec([sum(sizes)], self.dtype), tf.TensorSpec([None, shapes[0][1]], self.dtype),
                 tf.TensorSpec([None, self.model.layers[-1].units], self.dtype))
        return _traced_on_first_call(tf.function(step), specs), _traced_on_first_call(tf.function(loss_at), specs)

    # --- jax: jax.value_and_grad over stateless calls, optimizer.stateless_apply, jax.jit -----
    def _jax_functions(self, compiled):
        import jax

        def loss_and_outputs(kernels, X, y):
            zs, activations = self._forward(X, kernels)
            return self.loss(y, activations[-1]), (zs, activations)

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
                zs, activations = self._forward(X)
                loss = self.loss(y, activations[-1])
                loss.backward()
            grads = [v.value.grad.detach().clone() for v in variables]
            with torch.no_grad():
                self.optimizer.apply(grads, variables)
            return weights_in, zs, activations, loss, grads, [v.value.detach().clone() for v in variables]

        def loss_at(kernels, X, y):
            for variable, value in zip(self.model.trainable_variables, kernels):
                variable.assign(value)
            with torch.no_grad():
                return self.loss(y, self.model(X))
        return step, loss_at

    def _inputs(self, weights, X, y):
        convert = lambda a: ops.convert_to_tensor(np.asarray(a), dtype=self.dtype)  # noqa: E731
        if self._packed:  # one copy, in the guide's layout: the step transposes the kernels itself
            constant = lambda a: self._tf_constant(a, dtype=self.dtype)  # noqa: E731
            flat = np.concatenate([np.ravel(w) for w in weights])
            return constant(flat), constant(X), constant(y)
        return [convert(w) for w in to_keras(weights)], convert(X), convert(y)

    def _layout(self, rows):
        """Where each tensor sits in the flat output of the TensorFlow step: (shapes, starts, ends, n, L)."""
        if rows not in self._layouts:
            shapes = _guide_shapes(self.model)
            units = [layer.units for layer in self.model.layers]
            layout = shapes + [(rows, n) for n in units] * 2 + [()] + shapes + shapes
            ends = np.cumsum([int(np.prod(shape)) for shape in layout])
            self._layouts[rows] = (layout, ends - [int(np.prod(s)) for s in layout], ends, len(shapes), len(units))
        return self._layouts[rows]

    def _unpack(self, flat, rows):
        """The flat output of the TensorFlow step, split back into its tensors."""
        layout, starts, ends, n, L = self._layout(rows)
        out = [flat[a:b].reshape(shape) for shape, a, b in zip(layout, starts, ends)]
        return out[:n], out[n:n + L], out[n + L:n + 2 * L], out[n + 2 * L], out[n + 2 * L + 1:2 * n + 2 * L + 1], \
            out[2 * n + 2 * L + 1:]

    def loss_at(self, weights, X, y):
        """Keras's loss at `weights` ((units, inputs) convention) on X, y, without training."""
        return float(ops.convert_to_numpy(self._loss(*self._inputs(weights, X, y))))

    def batched(self, rows):
        """Whether steps() on batches of `rows` rows runs as one call (else as step() after step()).

        Only for small networks: a step's values (P parameters, rows × Σ units outputs) times
        _StackedSteps.CHUNK must stay within a few MiB, and past that size one step's arithmetic,
        not the ~100 µs a call costs, is what takes the time (benchmarks/run.py measures both).
        """
        units = sum(layer.units for layer in self.model.layers)
        return self._stacked is not None and self._stacked.P + rows * units <= _StackedSteps.MAX_VALUES

    def steps(self, weights, Xs, ys):
        """K steps, step k from weights [w[k] for w in weights] on Xs[k], ys[k]; every value stacked.

        weights: [W0, b0, ...] stacked (K, units, inputs) and (K, units), the guide's convention.
        Returns step()'s dict with a leading step axis on every array, the loss shaped (K,).
        With an optimizer that keeps no state from step to step (SGD without momentum) on TensorFlow,
        all K run in one compiled call (_StackedSteps); otherwise one step() after another, in
        order, so the optimizer's state advances exactly as in training.
        """
        if self.batched(Xs.shape[1]):
            return self._stacked(weights, Xs, ys)
        return stack([self.step([w[k] for w in weights], Xs[k], ys[k]) for k in range(len(Xs))])

    def step(self, weights, X, y):
        """Run one step from `weights` ((units, inputs) convention); return a dict of numpy arrays."""
        out = self._step(*self._inputs(weights, X, y))
        if self._packed:  # already in the guide's layout
            weights_in, zs, activations, loss, grads, weights_out = self._unpack(_from_tf(out), len(X))
        else:
            weights_in, zs, activations, loss, grads, weights_out = (
                [_numpy(t) for t in part] if isinstance(part, (list, tuple)) else _numpy(part) for part in out)
            weights_in, grads, weights_out = from_keras(weights_in), from_keras(grads), from_keras(weights_out)
        return {"weights_in": weights_in, "zs": zs, "activations": activations,
                "loss": float(loss), "grads": grads, "weights_out": weights_out}


def _numpy(tensor):
    """A backend tensor as a float64 numpy array (values unchanged)."""
    if hasattr(tensor, "detach"):
        tensor = tensor.detach()
    return np.asarray(ops.convert_to_numpy(tensor), dtype=np.float64)


def _from_tf(tensor):
    """A TensorFlow CPU tensor as a float64 numpy array, sharing its memory where it is float64
    (Keras's convert_to_numpy copies it: 1.4 ms for a 784-512-512-10 step's 2.3M values)."""
    return np.asarray(tensor, dtype=np.float64)


def _guide_shapes(model):
    """The trainable variables' shapes in the guide's convention: kernels (units, inputs)."""
    return [tuple(v.shape)[::-1] for v in model.trainable_variables]


def stack(outs):
    """Per-step dicts of step() → one dict of arrays with a leading step axis (a view for one step)."""
    join = (lambda parts: np.asarray(parts[0])[None]) if len(outs) == 1 else np.stack
    return {key: join([o[key] for o in outs]) if key == "loss" else
            [join([o[key][i] for o in outs]) for i in range(len(outs[0][key]))] for key in outs[0]}


def _traced_on_first_call(function, specs):
    """function's concrete function for `specs`, traced when first called (tracing costs ~0.2 s)."""
    concrete = []

    def call(*args):
        if not concrete:
            concrete.append(function.get_concrete_function(*specs))
        return concrete[0](*args)
    return call


class _StackedSteps:
    """K independent training steps in one TensorFlow call, K = CHUNK (fewer are padded).

    Each step is Keras's own: the Dense layers' operations on the given kernels (KerasStep._forward),
    the Keras loss and tf.GradientTape, vectorised over the steps by tf.vectorized_map; then the same
    optimizer class, built on variables of shape (K, ...), applies all K updates in one apply_gradients.
    That is exact for an optimizer whose update is elementwise and keeps no state between steps (SGD
    without momentum, with or without weight decay): each element sees the same operations as in one step.
    Calling one TensorFlow function costs ~100 µs whatever it computes; the small networks this is
    used for need ~5 µs a step inside it. Batched matmuls and position-dependent tanh may round
    differently from one step's call, within the same rounding bounds (docs/tolerances.md).
    """

    CHUNK = 64
    MAX_VALUES = 2 ** 15  # parameters + rows × units of one step: 64 steps of them are 16 MiB in float64

    def __init__(self, owner, learning_rate, optimizer_config):
        import tensorflow as tf
        model, dtype, K = owner.model, owner.dtype, self.CHUNK
        shapes = _guide_shapes(model)
        sizes = [int(np.prod(s)) for s in shapes]
        self.owner, self.P = owner, sum(sizes)
        self.variables = [keras.Variable(np.zeros((K,) + tuple(v.shape)), dtype=dtype, trainable=True,
                                         name=f"stacked_{i}") for i, v in enumerate(model.trainable_variables)]
        self.optimizer = OPTIMIZERS["sgd"](learning_rate=learning_rate, **(optimizer_config or {}))
        self.optimizer.build(self.variables)

        def one(args):
            flat, X, y = args
            kernels = swap_kernels([tf.reshape(p, s) for p, s in zip(tf.split(flat, sizes), shapes)])
            with tf.GradientTape() as tape:
                tape.watch(kernels)
                zs, activations = owner._forward(X, kernels)
                loss = owner.loss(y, activations[-1])
            grads = swap_kernels(tape.gradient(loss, kernels))
            return tf.concat([tf.reshape(p, [-1]) for p in [flat] + zs + activations + [loss] + grads], axis=0)

        def stacked(flat_parts):
            return swap_kernels([tf.reshape(p, (K,) + s) for p, s in zip(flat_parts, shapes)])

        def chunk(flat, Xs, ys):
            out = tf.vectorized_map(one, (flat, Xs, ys))
            for variable, value in zip(self.variables, stacked(tf.split(flat, sizes, axis=1))):
                variable.assign(value)
            self.optimizer.apply_gradients(zip(stacked(tf.split(out[:, -self.P:], sizes, axis=1)), self.variables))
            return tf.concat([out] + [tf.reshape(v, [K, -1]) for v in swap_kernels([tf.identity(v.value) for v in self.variables])],
                             axis=1)
        specs = (tf.TensorSpec([K, self.P], dtype), tf.TensorSpec([K, None, shapes[0][1]], dtype),
                 tf.TensorSpec([K, None, model.layers[-1].units], dtype))
        self._call = _traced_on_first_call(tf.function(chunk), specs)
        self._constant = lambda a: tf.constant(a, dtype=dtype)  # noqa: E731

    def __call__(self, weights, Xs, ys):
        K, n = self.CHUNK, len(Xs)
        out = [self._chunk(weights, Xs, ys, start, min(start + K, n)) for start in range(0, n, K)]
        return out[0] if len(out) == 1 else {
            key: np.concatenate([o[key] for o in out]) if key == "loss" else
            [np.concatenate([o[key][i] for o in out]) for i in range(len(out[0][key]))] for key in out[0]}

    def _chunk(self, weights, Xs, ys, start, end):
        K, k = self.CHUNK, end - start
        pad = lambda a: a[start:end] if k == K else np.concatenate(  # noqa: E731  repeat the last step
            [a[start:end], np.broadcast_to(a[end - 1], (K - k,) + a.shape[1:])])
        flat = np.concatenate([pad(w).reshape(K, -1) for w in weights], axis=1)
        out = _from_tf(self._call(self._constant(flat), self._constant(pad(Xs)), self._constant(pad(ys))))[:k]
        layout, starts, ends, n, L = self.owner._layout(Xs.shape[1])
        parts = [out[:, a:b].reshape((k,) + shape) for shape, a, b in zip(layout, starts, ends)]
        return {"weights_in": parts[:n], "zs": parts[n:n + L], "activations": parts[n + L:n + 2 * L],
                "loss": parts[n + 2 * L], "grads": parts[n + 2 * L + 1:2 * n + 2 * L + 1],
                "weights_out": parts[2 * n + 2 * L + 1:]}
