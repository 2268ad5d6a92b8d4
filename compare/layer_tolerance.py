"""Each element's tolerance in a single-layer check: a bound on |numpy − Keras| from the rounding rules.

Both sides compute the same values in floating point, each with its own order of operations; an element's
tolerance is the sum of both sides' error bounds, 2·E (docs/tolerances.md, "Single layers").

multilinear (dense, convolution, average pooling, dropout with its mask, embedding): every
element of the output, of dx and of a weight gradient is a sum of n products of one value of each argument,
so its error is at most γ_n times the same sum of absolute values, which is the layer itself evaluated on
|x|, |W| and |dout| (Higham, ch. 3). Keras computes that sum with the same layer:

    E = γ_n · (1 + γ_n) · layer(|x|; |W|)            and likewise for the VJP with |dout|

(the factor 1 + γ_n covers the rounding of the absolute-value evaluation itself), with n read from the
layer's configuration (compare/rules/layers.py). n = 0 (an embedding's lookup) makes the bound 0: the values
must be equal.

rearrangement (flatten, reshape): the output is the input with its elements moved, dx is dout moved back: exact,
the values must be equal (dx, in a network, up to dout's own error moved back).

max_pool: the output selects one input (exact); dx sums dout over the windows where an element is the
largest, so E = γ_n · VJP(x; |dout|), n the windows that overlap.

activation: the activation's own rules (compare/rules/activations.py), with z = x known exactly to both.

normalization (BatchNormalization, LayerNormalization): first-order propagation of each rounding through
μ, v, 1/√(v + ε), x̂ and out = x·inv + (β − μ·inv), inv = γ/√(v + ε) (Keras's ops.batch_normalization), and
through dx = γ·inv·(dout − mean dout − x̂·mean(dout·x̂)), dγ = Σ dout·x̂, dβ = Σ dout, the moving statistics;
see `normalization` below. Its second-order terms are covered by a factor 2 (NORMALIZATION_MARGIN).

Every bound also allows the smallest normal number per side, where a result may be subnormal or flushed
to zero.

In a network (compare/stack_check.py) the upstream gradient dout is itself inexact: each side's differs from
the exact one by up to e_dout (one side's bound, from the layers after). That reaches dx and the weights'
gradients through the layer's Jacobian, linearly: E += |J|ᵀ·e_dout, which each kind evaluates as its rounding
bound (the multilinear layer on |x|, |W| with e_dout; max pooling's routing of e_dout; the activation's and the
normalization's rules with e_dout as the error of their δ; the recurrent tape with dout's error).
"""
import numpy as np

from .rounding import gamma, underflow

gamma_n = gamma
from .rules import activations as activation_rules


def bounds(entry, layer, x, dout, weights, keras_out, numpy_out, training, u, call=None, e_dout=None):
    """{"output": E, "input_gradient": E or None, "weights": [E per trainable weight]}: each element's
    tolerance, in Keras's layout, for the layer `layer` (built, holding `weights`) at x and dout.
    e_dout: one side's bound on dout's own error (None: dout is exact, as in a single-layer check)."""
    from keras_impl.layer import forward_and_vjp, seed_state
    terms = entry["terms"](layer, x.shape, keras_out.shape)
    floor = 2 * underflow(u)
    if entry["bound"] == "normalization":
        return normalization(entry, layer, x, dout, weights, training, u, floor, e_dout)
    if entry["bound"] == "recurrent":
        from .bounds_recurrent import recurrent
        return recurrent(layer, x, dout, weights, training, u, floor, e_dout)
    if entry["bound"] == "attention":
        from .bounds_attention import attention
        return attention(layer, x, dout, weights, training, u, floor, causal=bool((call or {}).get("use_causal_mask")),
                         e_dout=e_dout)
    if entry["bound"] == "rearrangement":
        return _rearrangement(layer, x, keras_out, floor, e_dout)
    if entry["bound"] == "activation":
        return _activation(entry["activation"](layer.get_config()), x, dout, keras_out, numpy_out, u, floor, e_dout)
    drawn = seed_state(layer)  # a layer that draws (Dropout): each call below draws the step's mask again
    integer = np.issubdtype(x.dtype, np.integer)
    twin_x = x if (integer or entry["bound"] == "max_pool") else np.abs(x)
    magnitudes, widen, p_dx, p_grads = None, 1.0, None, None
    if e_dout is not None:  # in a network: the magnitudes and |J|ᵀ·e_dout in one compiled call
        from keras_impl.layer import vjps
        m_out, dxs, grads = vjps(layer, twin_x, [np.abs(w) for w in weights], [np.abs(dout), e_dout], training,
                                 call, drawn)
        magnitudes, (p_dx, p_grads) = (m_out, dxs[0], grads[0], None), (dxs[1], grads[1])
    elif entry["bound"] == "multilinear" and not entry["noise"] and u < 2.0 ** -40:
        magnitudes, widen = _in_float32(layer, twin_x, dout, weights, training, call, max(
            [terms["output"], terms["input_gradient"]] + terms["weights"]))
    if magnitudes is None:
        layer.set_weights([np.abs(w) for w in weights])
        try:
            magnitudes = forward_and_vjp(layer, twin_x, np.abs(dout), training, call)
        finally:
            layer.set_weights(weights)
    m_out, m_dx, m_grads, _ = magnitudes

    def tolerance(n, magnitude):
        g = gamma(n, u)
        t = np.abs(magnitude, out=magnitude if magnitude.flags.writeable else None)  # Keras's fresh array
        t *= 2 * g * (1 + g) * widen
        t += floor
        return t

    out = floor + np.zeros(keras_out.shape) if entry["bound"] == "max_pool" else tolerance(terms["output"], m_out)
    result = {"output": out,
              "input_gradient": None if m_dx is None else tolerance(terms["input_gradient"], m_dx),
              "weights": [tolerance(n, g) for n, g in zip(terms["weights"], m_grads)], "state": []}
    if e_dout is not None:  # |J|ᵀ·e_dout, evaluated in float64 with its own rounding (1 + γ), for both sides
        spread = lambda n, p: 2 * (1 + gamma(n, u)) ** 2 * np.abs(p)  # noqa: E731
        if p_dx is not None:
            result["input_gradient"] = result["input_gradient"] + spread(terms["input_gradient"], p_dx)
        result["weights"] = [t + spread(n, p) for t, n, p in zip(result["weights"], terms["weights"], p_grads)]
    return result


# Within these, every nonzero product of three of |x|, |W|, |dout| and every sum of them stays a normal float32
# number (1e-45 ≥ 1.2e-38 fails, so the limit is per factor 1e-12 … 1e12, products 1e-36 … 1e36, sums ≤ n·1e36).
FLOAT32_RANGE = (1e-12, 1e12)


def _in_float32(layer, twin_x, dout, weights, training, call, n):
    """The magnitudes (the layer on |x|, |W|, |dout|) computed by a float32 twin of the layer, about twice as fast
    as float64 on the CPU, and how much to widen them to bound the float64 ones; (None, 1) where the values
    leave FLOAT32_RANGE or n terms lose more than 1% in float32.

    Each float32 magnitude is a sum of at most n products of inputs rounded to float32, so it is within
    γ32(n + 3) of the exact sum of absolute values: M ≤ M32 / (1 − γ32(n + 3)) ≤ M32·(1 + 2γ32(n + 3)).
    """
    from keras_impl.layer import build, forward_and_vjp
    g32 = gamma(n + 3, 2.0 ** -24)
    if g32 > 0.01:
        return None, 1.0
    low, high = FLOAT32_RANGE
    integer = np.issubdtype(twin_x.dtype, np.integer)
    for a in ([] if integer else [twin_x]) + [dout] + list(weights):
        if a.size and (np.max(np.abs(a)) > high or np.min(np.abs(a), where=a != 0, initial=np.inf) < low):
            return None, 1.0
    x32 = twin_x if integer else np.abs(twin_x, dtype=np.float32)
    twin = build(type(layer).__name__, _config(layer), twin_x.shape, "float32")
    twin.set_weights([np.abs(w, dtype=np.float32) for w in weights])
    out, dx, grads, _ = forward_and_vjp(twin, x32, np.abs(dout, dtype=np.float32), training, call)
    as64 = [None if a is None else a.astype(np.float64) for a in (out, dx)]
    return (as64[0], as64[1], [g.astype(np.float64) for g in grads], None), 1 + 2 * g32


def _config(layer):
    """The layer's own keyword arguments, without its dtype and name (the twin has its own)."""
    return {k: v for k, v in layer.get_config().items() if k not in ("dtype", "name", "trainable")}


def _rearrangement(layer, x, keras_out, floor, e_dout=None):
    """Flatten, Reshape: out = x with its elements moved (row-major order kept), dx = dout moved back; both exact,
    so E = 0 beyond the floor, and in a network dx carries dout's own error moved back: 2·e_dout (both sides').
    A Flatten with data_format "channels_first" moves the channels last first (Keras's Flatten.call), and dout
    back through the same transposition (found by a review: moved in plain row-major order, the bound had put
    e_dout on the wrong elements)."""
    if e_dout is None:
        return {"output": floor + np.zeros(keras_out.shape), "input_gradient": floor + np.zeros(x.shape),
                "weights": [], "state": []}
    moved = np.reshape(e_dout, x.shape)
    if getattr(layer, "data_format", None) == "channels_first" and x.ndim > 2:
        moved = np.moveaxis(np.reshape(e_dout, (x.shape[0],) + x.shape[2:] + (x.shape[1],)), -1, 1)
    return {"output": floor + np.zeros(keras_out.shape), "input_gradient": floor + 2 * moved, "weights": [],
            "state": []}


def _activation(name, z, dout, keras_out, numpy_out, u, floor, e_dout=None):
    """2 × one side's bound, from the activation's rules: a = f(z) with z exact, dz = f'(z)·dout (dout's own
    error e_dout, if any, as the rules' error of δ)."""
    rules = activation_rules.get(name)
    zeros = np.zeros_like(z)
    e_a = rules["forward_error"](z, keras_out, zeros, u)
    mine = numpy_out if numpy_out is not None and np.shape(numpy_out) == keras_out.shape else None
    _, e_dz = rules["backward"](z, keras_out, zeros, e_a, dout, zeros if e_dout is None else e_dout, u, numpy_a=mine)
    return {"output": 2 * e_a + floor, "input_gradient": 2 * e_dz + floor, "weights": [], "state": []}


NORMALIZATION_MARGIN = 2.0


def normalization(entry, layer, x, dout, weights, training, u, floor, e_dout=None):
    """Both sides' bounds for a normalization layer over `entry["stats_axes"]` (BatchNormalization: every axis
    but the features; LayerNormalization: the features), gamma and beta per feature (the last axis).

        E(μ) = γ_{m+1}·mean|x|                       (0 in inference: the moving mean is given)
        E(d) = E(μ) + u(|x| + |μ|)                   d = x − μ
        E(v) = γ_{m+2}·v + 2·mean(|d|·E(d)) + mean(E(d)²)
        E(inv)/inv = E(v)/(2(v + ε)) + 4u            1/√(v + ε), then ·γ: + u
        E(out) = |x − μ|·E(inv·γ) + |inv·γ|·E(μ) + 4u(|x·inv·γ| + |μ·inv·γ| + |β|)   (one inv multiplies
                 both x and μ, so its error reaches out through x − μ; the products' roundings do not cancel)
        E(x̂) = E(d)·inv + |d|·E(inv),               X = (|x| + |μ|)·inv: x̂'s terms before x − μ cancels
        E(dx) = E(inv)·B + inv·(γ_{m+2}·(mean g + |x̂|·mean(g·X)) + E(x̂)·mean(g·X) + |x̂|·mean(g·E(x̂))
                + 5u·B),  g = |dout·γ|, B = g + mean g + |x̂|·mean(g·X), inv = 1/√(v + ε) here
        E(dγ) = γ_{n+2}·Σ|dout|·X + Σ|dout|·E(x̂),   E(dβ) = γ_n·Σ|dout|     over the n rows of a feature
    Keras's autodiff differentiates out = x·inv + (β − μ·inv) term by term: Σ dout·x and μ·Σ dout are summed
    apart and cancel when |μ| ≫ σ, so the sums' bounds take X, not |x̂|.
        E(moving) = E(stat)·(1 − momentum) + u·|stat| + 3u·(|moving·momentum| + |stat·(1 − momentum)|)
    dout's own error e_dout (in a network) adds its image under the exact Jacobian, with h = |γ|·e_dout:
        dx: inv·(h + mean h + |x̂|·mean(h·X)) (training), |inv·γ|·e_dout (inference);  dγ: Σ e_dout·X;  dβ: Σ e_dout
    """
    config = layer.get_config()
    names = [v.name for v in layer.weights]
    w = dict(zip(names, weights))
    feature = x.shape[-1]
    gamma = w.get("gamma", np.ones(feature))
    beta = w.get("beta", np.zeros(feature))
    stats = entry["stats_axes"](x.ndim)
    rows = tuple(range(x.ndim - 1))
    m = int(np.prod([x.shape[a] for a in stats]))
    eps = float(config["epsilon"])
    batch_stats = training or "moving_mean" not in w  # LayerNormalization: always the sample's own
    if batch_stats:
        mu = x.mean(axis=stats, keepdims=True)
        e_mu = gamma_n(m + 1, u) * np.abs(x).mean(axis=stats, keepdims=True)
    else:
        mu, e_mu = w["moving_mean"], 0.0
    d = x - mu
    e_d = e_mu + u * (np.abs(x) + np.abs(mu))
    if batch_stats:
        v = (d * d).mean(axis=stats, keepdims=True)
        e_v = gamma_n(m + 2, u) * v + 2 * (np.abs(d) * e_d).mean(axis=stats, keepdims=True) \
            + (e_d * e_d).mean(axis=stats, keepdims=True)
    else:
        v, e_v = w["moving_variance"], 0.0
    inv = 1 / np.sqrt(v + eps)
    e_inv = inv * (e_v / (2 * (v + eps)) + 4 * u)
    scale = inv * gamma
    e_scale = e_inv * np.abs(gamma) + u * np.abs(scale)
    e_out = np.abs(d) * e_scale + np.abs(scale) * e_mu \
        + 4 * u * (np.abs(x * scale) + np.abs(mu * scale) + np.abs(beta))
    xhat = d * inv
    e_xhat = e_d * inv + np.abs(d) * e_inv
    mag = (np.abs(x) + np.abs(mu)) * inv  # x̂'s terms before x − μ cancels: autodiff may sum them apart
    if batch_stats:
        g = np.abs(dout * gamma)  # dx̂ = dout·γ: γ varies along LayerNormalization's statistics axis
        mean_g = g.mean(axis=stats, keepdims=True)
        mean_gx = (g * mag).mean(axis=stats, keepdims=True)
        big = g + mean_g + np.abs(xhat) * mean_gx
        e_dx = e_inv * big + inv * (gamma_n(m + 2, u) * (mean_g + np.abs(xhat) * mean_gx) + e_xhat * mean_gx
                                    + np.abs(xhat) * (g * e_xhat).mean(axis=stats, keepdims=True) + 5 * u * big)
    else:
        e_dx = np.abs(dout) * e_scale + u * np.abs(dout * scale)
    n = int(np.prod([x.shape[a] for a in rows]))
    e_dgamma = gamma_n(n + 2, u) * np.abs(dout * mag).sum(axis=rows) + (np.abs(dout) * e_xhat).sum(axis=rows)
    e_dbeta = gamma_n(n, u) * np.abs(dout).sum(axis=rows)
    if e_dout is not None:
        if batch_stats:
            h = np.abs(gamma) * e_dout
            e_dx = e_dx + inv * (h + h.mean(axis=stats, keepdims=True)
                                 + np.abs(xhat) * (h * mag).mean(axis=stats, keepdims=True))
        else:
            e_dx = e_dx + np.abs(scale) * e_dout
        e_dgamma = e_dgamma + (1 + gamma_n(n + 2, u)) * (e_dout * mag).sum(axis=rows)
        e_dbeta = e_dbeta + (1 + gamma_n(n, u)) * e_dout.sum(axis=rows)
    grads = {"gamma": e_dgamma, "beta": e_dbeta}
    result = {"output": NORMALIZATION_MARGIN * 2 * e_out + floor,
              "input_gradient": NORMALIZATION_MARGIN * 2 * e_dx + floor,
              "weights": [NORMALIZATION_MARGIN * 2 * grads[v.name] + floor for v in layer.trainable_weights],
              "state": []}
    if "moving_mean" in w:
        momentum = float(config["momentum"])
        for name, stat, e_stat in (("moving_mean", mu, e_mu), ("moving_variance", v, e_v)):
            if not training:
                result["state"].append(np.zeros_like(w[name]) + floor)
                continue
            stat, e_stat = np.reshape(stat, w[name].shape), np.reshape(np.broadcast_to(e_stat, np.shape(stat)), w[name].shape)
            e = e_stat * (1 - momentum) + u * np.abs(stat) + 3 * u * (np.abs(w[name] * momentum)
                                                                   + np.abs(stat * (1 - momentum)))
            result["state"].append(NORMALIZATION_MARGIN * 2 * e + floor)
    return result
