"""Each Keras layer's training-mode forward pass in 50-digit arithmetic, with Keras's semantics: the exact
referee of layered networks. Gradients come from compare/exact_tape.py's primitives, never from a layer's
backward pass. Channels last, Keras's weight shapes (the built layer's), its config with defaults filled in.

Each function is (config, w, x, ctx) → output node; w: {weight name: node} (a recurrent cell's prefix
dropped), x the input node (a list for Add), ctx.training, ctx.mask (a Dropout's keep-mask), ctx.state
({name: new value} of the non-trainable weights the call sets: BatchNormalization's moving statistics).
Where Keras rounds a constant (MultiHeadAttention's scale, through float32) the rounded value is used; every
other float constant is taken at its float64 value, as Keras computes with it.
"""
import math
from types import SimpleNamespace

import mpmath
import numpy as np

from . import exact_tape as T
from .rules import activations as activation_rules

ONE = mpmath.mpf(1)


def _tuple(v, n):
    return tuple(v) if isinstance(v, (list, tuple)) else (v,) * n


def windows(shape, window, strides, dilation, padding):
    """(index array (N, *out, *window, C) into the flat input of `shape` (N, *spatial, C), −1 over padding).
    Keras's paddings: "valid"; "same", out = ceil(n/s), the extra padding after (TensorFlow's); "causal", all
    of it before (Conv1D)."""
    spatial, befores, outs = shape[1:-1], [], []
    for n, k, s, d in zip(spatial, window, strides, dilation):
        span = (k - 1) * d + 1
        if padding == "valid":
            out, before = (n - span) // s + 1, 0
        elif padding == "same":
            out = -(-n // s)
            before = max((out - 1) * s + span - n, 0) // 2
        elif padding == "causal":
            out, before = (n - 1) // s + 1, span - 1
        else:
            raise ValueError(f"padding {padding!r}")
        outs.append(out)
        befores.append(before)
    r = len(spatial)
    grid = np.indices((shape[0], *outs, *window, shape[-1]))
    pos = [grid[1 + a] * strides[a] + grid[1 + r + a] * dilation[a] - befores[a] for a in range(r)]
    inside = np.all([(p >= 0) & (p < n) for p, n in zip(pos, spatial)], axis=0)
    flat = np.ravel_multi_index((grid[0], *[np.clip(p, 0, n - 1) for p, n in zip(pos, spatial)], grid[-1]), shape)
    return np.where(inside, flat, -1)


def _rows_dense(x, kernel, bias):
    shape = x.value.shape
    z = T.einsum("nf,fu->nu", T.reshape(x, (-1, shape[-1])), kernel)
    z = T.reshape(z, shape[:-1] + (kernel.value.shape[-1],))
    return z if bias is None else T.add(z, bias)


def dense(config, w, x, ctx):
    """x·kernel + bias over the last axis."""
    return _rows_dense(x, w["kernel"], w.get("bias"))


def conv(config, w, x, ctx):
    """Cross-correlation (the kernel not flipped): out[n, o, f] = Σ_{k, c} x[n, o·s + k·d − pad, c]·kernel[k, c, f]
    + bias[f], padding read as 0."""
    kernel = w["kernel"]
    r = kernel.value.ndim - 2
    idx = windows(x.value.shape, kernel.value.shape[:r], _tuple(config["strides"], r),
                  _tuple(config["dilation_rate"], r), config["padding"])
    patches = T.take(x, idx)  # (N, *out, *window, C)
    n_out = idx.shape[:1 + r]
    flat = T.reshape(patches, (int(np.prod(n_out)), -1))
    z = T.einsum("pk,kf->pf", flat, T.reshape(kernel, (-1, kernel.value.shape[-1])))
    z = T.reshape(z, n_out + (kernel.value.shape[-1],))
    return T.add(z, w["bias"]) if "bias" in w else z


def _pool_windows(config, x):
    r = x.value.ndim - 2
    pool = _tuple(config["pool_size"], r)
    idx = windows(x.value.shape, pool, _tuple(config.get("strides") or pool, r), (1,) * r, config["padding"])
    # (N, *out, *window, C) → (N, *out, C, window): the window last, in row-major order
    order = (0, *range(1, 1 + r), idx.ndim - 1, *range(1 + r, 1 + 2 * r))
    idx = idx.transpose(order)
    return idx.reshape(idx.shape[:2 + r] + (-1,))


def max_pool(config, w, x, ctx):
    """The window's maximum (padding excluded); its gradient goes to the first maximal element."""
    return T.max_last(T.take(x, _pool_windows(config, x), pad=mpmath.ninf))


def average_pool(config, w, x, ctx):
    """The mean over the window's elements inside the input (TensorFlow excludes "same" padding)."""
    idx = _pool_windows(config, x)
    counts = (idx >= 0).sum(axis=-1)
    reciprocals = np.frompyfunc(lambda k: ONE / int(k), 1, 1)(counts).astype(object)
    return T.scale(T.total(T.take(x, idx), (idx.ndim - 1,)), reciprocals)


def global_average_pool(config, w, x, ctx):
    """The mean over every spatial axis."""
    axes = tuple(range(1, x.value.ndim - 1))
    out = T.scale(T.total(x, axes), ONE / int(np.prod([x.value.shape[a] for a in axes])))
    if config.get("keepdims"):
        out = T.reshape(out, (x.value.shape[0],) + (1,) * len(axes) + (x.value.shape[-1],))
    return out


def flatten(config, w, x, ctx):
    """Row-major; channels_first takes the input as (N, C, ...) and moves C last first, as Keras does."""
    if config.get("data_format") == "channels_first" and x.value.ndim > 2:
        n = x.value.ndim
        perm = (0, *range(2, n), 1)
        idx = np.arange(x.value.size).reshape(x.value.shape).transpose(perm)
        x = T.take(x, idx)
    return T.reshape(x, (x.value.shape[0], -1))


def reshape(config, w, x, ctx):
    return T.reshape(x, (x.value.shape[0],) + tuple(config["target_shape"]))


def dropout(config, w, x, ctx):
    """Inverted dropout: x · (1/(1 − rate)) (a float64 constant, as TensorFlow computes it) where the mask keeps."""
    if not ctx.training or not config["rate"]:
        return x
    return T.scale(x, T.mp(np.asarray(ctx.mask) * (1.0 / (1.0 - config["rate"]))))


def embedding(config, w, x, ctx):
    """The rows of the table at the ids."""
    ids = np.vectorize(int, otypes=[np.int64])(x.value)
    table = w["embeddings"]
    cols = table.value.shape[1]
    return T.take(table, ids[..., None] * cols + np.arange(cols))


def _moments(x, axes):
    """(mean, biased variance) over axes, keepdims: tf.nn.moments."""
    count = ONE / int(np.prod([x.value.shape[a] for a in axes]))
    mean = T.scale(T.total(x, axes, keepdims=True), count)
    centred = T.add(x, T.scale(mean, -ONE))
    return mean, T.scale(T.total(T.mul(centred, centred), axes, keepdims=True), count), centred


def _normalized(centred, variance, epsilon, w):
    inv = T.apply(lambda v: ONE / mpmath.sqrt(v + mpmath.mpf(epsilon)),
                  lambda v, r: -r / (2 * (v + mpmath.mpf(epsilon))), variance)
    out = T.mul(centred, inv)
    if "gamma" in w:
        out = T.mul(out, w["gamma"])
    return T.add(out, w["beta"]) if "beta" in w else out


def batch_normalization(config, w, x, ctx):
    """Training: (x − μ)/√(σ² + ε)·γ + β with the batch's mean and biased variance over every axis but the last,
    and moving = moving·momentum + batch·(1.0 − momentum); inference: the moving statistics."""
    axes = tuple(range(x.value.ndim - 1))
    eps = config["epsilon"]
    if not ctx.training:
        centred = T.add(x, T.scale(w["moving_mean"], -ONE))
        return _normalized(centred, w["moving_variance"], eps, w)
    mean, variance, centred = _moments(x, axes)
    m = config["momentum"]
    for name, batch in (("moving_mean", mean), ("moving_variance", variance)):
        ctx.state[name] = w[name].value * mpmath.mpf(m) + batch.value.reshape(-1) * mpmath.mpf(1.0 - m)
    return _normalized(centred, variance, eps, w)


def layer_normalization(config, w, x, ctx):
    """(x − μ)/√(σ² + ε)·γ + β over the last axis, biased variance."""
    _, variance, centred = _moments(x, (x.value.ndim - 1,))
    return _normalized(centred, variance, config["epsilon"], w)


def _gate(name):
    """A recurrent gate's function: the activation's own exact rule (compare/rules/activations.py), as a layer's."""
    rule = activation_rules.get(name)
    return lambda a: T.rows(rule["exact"], rule["exact_backward"], a)


_sigmoid, _tanh = _gate("sigmoid"), _gate("tanh")


def _columns(a, lo, hi):
    return T.part(a, (Ellipsis, slice(lo, hi)))


def recurrent(kind):
    """SimpleRNN: h = tanh(x·W + b + h·U). LSTM, gates (i, f, c, o): z = x·W + h·U + b, c = σ(f)·c + σ(i)·tanh(c̃),
    h = σ(o)·tanh(c). GRU, gates (z, r, h): reset_after (bias (2, 3H)) hh = tanh(x·W_h + b_x,h + r·(h·U_h +
    b_h,h)), else hh = tanh(x·W_h + b_h + (r·h)·U_h); h = z·h + (1 − z)·hh. From h0 = 0 (c0 = 0); the last h,
    or every step's with return_sequences."""
    def layer(config, w, x, ctx):
        W, U, b = w["kernel"], w["recurrent_kernel"], w["bias"]
        N, steps = x.value.shape[:2]
        H = U.value.shape[0]
        h = T.const(np.zeros((N, H)))
        c = h
        seq = []
        for t in range(steps):
            x_t = T.part(x, (slice(None), t))
            if kind == "SimpleRNN":
                h = _tanh(T.add(_rows_dense(x_t, W, b), T.einsum("nh,hk->nk", h, U)))
            elif kind == "LSTM":
                z = T.add(_rows_dense(x_t, W, b), T.einsum("nh,hk->nk", h, U))
                i, f, g, o = (_columns(z, k * H, (k + 1) * H) for k in range(4))
                c = T.add(T.mul(_sigmoid(f), c), T.mul(_sigmoid(i), _tanh(g)))
                h = T.mul(_sigmoid(o), _tanh(c))
            else:
                h = _gru_step(config, W, U, b, x_t, h, H)
            seq.append(h)
        if not config.get("return_sequences"):
            return h
        return T.stack(seq, axis=1)  # (N, T, H)
    return layer


def _gru_step(config, W, U, b, x_t, h, H):
    after = config.get("reset_after", True)
    bias = [T.part(b, k) for k in range(2)] if after else [b, None]
    mx = _rows_dense(x_t, W, bias[0])
    xz, xr, xh = (_columns(mx, k * H, (k + 1) * H) for k in range(3))
    if after:
        inner = _rows_dense(h, U, bias[1])
        rz, rr, rh = (_columns(inner, k * H, (k + 1) * H) for k in range(3))
        z, r = _sigmoid(T.add(xz, rz)), _sigmoid(T.add(xr, rr))
        hh = _tanh(T.add(xh, T.mul(r, rh)))
    else:
        Uz, Ur, Uh = (_columns(U, k * H, (k + 1) * H) for k in range(3))
        z = _sigmoid(T.add(xz, T.einsum("nh,hk->nk", h, Uz)))
        r = _sigmoid(T.add(xr, T.einsum("nh,hk->nk", h, Ur)))
        hh = _tanh(T.add(xh, T.einsum("nh,hk->nk", T.mul(r, h), Uh)))
    return T.add(T.mul(z, h), T.mul(T.add(T.scale(z, -ONE), T.const(np.ones(1))), hh))


def attention_scale(key_dim):
    """Keras's 1/√key_dim as TensorFlow applies it: tf.cast of the Python float goes through float32."""
    return float(np.float32(1.0 / math.sqrt(float(key_dim))))


def attention(config, w, x, ctx):
    """Self-attention, layer(x, x, x): q, k, v = x·W + b per head (kernels (D, heads, key_dim)); logits q·kᵀ times
    1/√key_dim rounded to float32 (TensorFlow casts the Python float through float32); a causal mask sets the
    logits of keys after the query to −0.7·3.38953e38; softmax over the keys; Σ weights·v, then ·W_o + b_o."""
    proj = {}
    for name in ("query", "key", "value"):
        p = T.einsum("btd,dhk->bthk", x, w[f"{name}/kernel"])
        proj[name] = T.add(p, w[f"{name}/bias"])
    logits = T.einsum("bthk,bshk->bhts", proj["query"], proj["key"])
    logits = T.scale(logits, mpmath.mpf(attention_scale(config["key_dim"])))
    if ctx.call.get("use_causal_mask"):
        steps = logits.value.shape[-1]
        keep = np.tril(np.ones((steps, steps), bool))
        idx = np.where(keep, np.arange(logits.value.size).reshape(logits.value.shape), -1)
        logits = T.take(logits, idx, pad=mpmath.mpf(3.38953e38 * -0.7))
    softmax = activation_rules.get("softmax")
    weights = T.rows(softmax["exact"], softmax["exact_backward"], logits)
    heads = T.einsum("bhts,bshk->bthk", weights, proj["value"])
    return T.add(T.einsum("bthk,hkd->btd", heads, w["attention_output/kernel"]), w["attention_output/bias"])


def activation(name_of):
    """The activation name_of(config) by its own exact rule (compare/rules/activations.py), a row of the last axis
    at a time."""
    def layer(config, w, x, ctx):
        rule = activation_rules.get(name_of(config))
        return T.rows(rule["exact"], rule["exact_backward"], x)
    return layer


def add(config, w, xs, ctx):
    out = xs[0]
    for x in xs[1:]:
        out = T.add(out, x)
    return out


def context(training=True, mask=None, call=None):
    return SimpleNamespace(training=training, mask=mask, state={}, call=call or {})
