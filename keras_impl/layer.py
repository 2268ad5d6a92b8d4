"""One Keras layer, built from its class name and config, and its forward pass and VJP from Keras's autodiff.

Every number here comes from the Keras layer itself: its call (with `training`), tf.GradientTape for
dx = d(Σ out·dout)/dx and the trainable weights' gradients, and its non-trainable weights after the call
(moving statistics). TensorFlow backend.
"""
import json
import weakref

from . import quiet_tensorflow

quiet_tensorflow()

import keras
import numpy as np
import tensorflow as tf

# tf.function's retracing warning (a batch of another size: the last of an epoch) is noise on a user's terminal
tf.get_logger().setLevel("ERROR")


SELF_ATTENTION = ("MultiHeadAttention",)  # called as self-attention: query = value = key = x
_BUILT = {}  # (class, config, input shape, dtype) → a built layer: building one costs more than a small call


def build(class_name, config, input_shape, dtype="float64", reuse=True):
    """keras.layers.<class_name>(**config, dtype=dtype), built for inputs of `input_shape` (batch first).

    floatx is `dtype` while the layer is made, and what it was afterwards. Raises TypeError or ValueError
    (Keras's own message) for a config Keras refuses. With `reuse`, a layer built before for the same
    class, config, shape and dtype is returned (its weights are the caller's to set); a layer that draws
    random numbers must not be reused, so that its draws start from its seed.
    """
    try:
        key = (class_name, json.dumps(config, sort_keys=True), tuple(input_shape), dtype) if reuse else None
    except TypeError:  # a config value JSON cannot hold: build afresh
        key = None
    if key in _BUILT:
        return _BUILT[key]
    floatx = keras.config.floatx()
    keras.config.set_floatx(dtype)  # nothing the layer creates keeps another precision; put back after
    try:
        layer = getattr(keras.layers, class_name)(**{**config, "dtype": dtype})
        shapes = (tuple(input_shape),) * (2 if class_name in SELF_ATTENTION else 1)
        layer.build(*shapes)
    finally:
        keras.config.set_floatx(floatx)
    if key is not None:
        _BUILT[key] = layer
    return layer


def weight_specs(layer):
    """[(name, shape, trainable)] in the order of layer.get_weights(); a name is the variable's path inside the
    layer: 'kernel', or 'query/kernel' for a layer made of layers (MultiHeadAttention)."""
    trainable = {id(v) for v in layer.trainable_weights}
    return [(v.path.split("/", 1)[-1], tuple(v.shape), id(v) in trainable) for v in layer.weights]


def output_shape(layer, input_shape):
    """The layer's output shape for `input_shape`, batch included."""
    shapes = (tuple(input_shape),) * (2 if type(layer).__name__ in SELF_ATTENTION else 1)
    return tuple(int(d) for d in layer.compute_output_shape(*shapes))


def noise_mask(layer, input_shape, dtype="float64"):
    """The 0/1 keep-mask Keras's next training call of `layer` (Dropout) will draw: read by calling it on ones
    with its seed generator's state saved and put back, so that the call that follows draws the same mask."""
    if getattr(layer, "seed_generator", None) is None:  # Dropout(rate=0) draws nothing: everything is kept
        return np.ones(input_shape, dtype=dtype)
    state = layer.seed_generator.state
    saved = state.numpy()
    ones = np.ones(input_shape, dtype=dtype)
    mask = (keras.ops.convert_to_numpy(layer(ones, training=True)) != 0).astype(dtype)
    state.assign(saved)
    return mask


def seed_state(layer):
    """The layer's random state (its seed generator's), or None for a layer that draws nothing."""
    generator = getattr(layer, "seed_generator", None)
    return None if generator is None else generator.state.numpy()


def set_seed_state(layer, state):
    """Put back a state from `seed_state`, so that the next call draws what an earlier one drew."""
    if state is not None:
        layer.seed_generator.state.assign(state)


def forward_and_vjp(layer, x, dout, training=True, call=None):
    """(output, dx, trainable weight gradients, weights after the call) from one call of `layer` on x.

    dx is None for an integer input (Embedding); a gradient Keras returns as IndexedSlices (Embedding's
    table) is made dense, repeated rows summed.
    """
    integer = np.issubdtype(np.asarray(x).dtype, np.integer)
    xt = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        if not integer:
            tape.watch(xt)
        inputs = (xt,) * (3 if type(layer).__name__ in SELF_ATTENTION else 1)
        out = layer(*inputs, training=training, **(call or {}))
    sources = ([] if integer else [xt]) + list(layer.trainable_weights)
    grads = tape.gradient(out, sources, output_gradients=tf.convert_to_tensor(dout, dtype=out.dtype))
    grads = [None if g is None else tf.convert_to_tensor(g).numpy() for g in grads]
    dx = None if integer else grads.pop(0)
    grads = [np.zeros(tuple(v.shape)) if g is None else g for g, v in zip(grads, layer.trainable_weights)]
    return out.numpy(), dx, grads, [np.array(w) for w in layer.get_weights()]


_COMPILED = weakref.WeakKeyDictionary()  # layer → {(training, call): its compiled VJPs}


def vjps(layer, x, weights, douts, training=True, call=None, state=None):
    """(output, [dx per dout], [[trainable weight gradients] per dout]) of `layer` on x with its weights
    (layer.weights order) replaced by `weights`, and its random state (a Dropout's seed) by `state` where given:
    Keras's own call through layer.stateless_call and tf.GradientTape, compiled once per layer (tf.function), so
    that several upstream gradients cost one call. dx is None for an integer input."""
    by_id = {id(v): w for v, w in zip(layer.weights, weights)}
    trainable = [tf.convert_to_tensor(by_id[id(v)]) for v in layer.trainable_variables]
    frozen = [tf.convert_to_tensor(state if state is not None and "seed_generator" in v.path else by_id.get(id(v), v.numpy()))
              for v in layer.non_trainable_variables]
    integer = np.issubdtype(np.asarray(x).dtype, np.integer)
    args = (tf.convert_to_tensor(x), trainable, frozen, [tf.convert_to_tensor(d) for d in douts])
    # one concrete function per signature: calling it skips tf.function's matching of the arguments (0.8 ms a call,
    # measured on a Conv2D's VJPs of 2.8 ms)
    key = (bool(training), json.dumps(call or {}, sort_keys=True),
           tuple((tuple(t.shape), t.dtype.name) for t in tf.nest.flatten(args)), len(trainable), len(frozen))
    functions = _COMPILED.setdefault(layer, {})
    if key not in functions:
        functions[key] = tf.function(_stateless_vjps(layer, bool(training), dict(call or {}))).get_concrete_function(*args)
    out, dxs, grads = functions[key](*args)
    return (out.numpy(), [None if integer else d.numpy() for d in dxs], [[g.numpy() for g in gs] for gs in grads])


def _stateless_vjps(layer, training, call):
    def run(x, trainable, frozen, douts):
        integer = x.dtype.is_integer
        with tf.GradientTape(persistent=len(douts) > 1) as tape:
            if not integer:
                tape.watch(x)
            tape.watch(trainable)
            inputs = (x,) * (3 if type(layer).__name__ in SELF_ATTENTION else 1)
            kwargs = dict(call, training=training) if layer._call_has_training_arg else call  # call() takes it or not
            out, _ = layer.stateless_call(trainable, frozen, *inputs, **kwargs)
        dxs, grads = [], []
        for d in douts:
            g = tape.gradient(out, ([] if integer else [x]) + list(trainable), output_gradients=d,
                              unconnected_gradients=tf.UnconnectedGradients.ZERO)
            g = [tf.convert_to_tensor(t) for t in g]
            dxs.append(tf.zeros([0], x.dtype) if integer else g.pop(0))
            grads.append(g)
        return out, dxs, grads
    return run
