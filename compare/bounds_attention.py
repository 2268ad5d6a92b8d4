"""Each element's tolerance for MultiHeadAttention as self-attention: rounding-error bounds, forward and back.

Keras 3 (TensorFlow backend, keras/src/layers/attention/multi_head_attention.py and ops.dot_product_attention):

    q, k, v = x·Wq + bq, x·Wk + bk, x·Wv + bv          "btd,dnh->btnh" then + bias   (D + 1 terms)
    s = (q·kᵀ)·scale, scale = float32(1/√key_dim)       "btnh,bsnh->bnts"            (key_dim + 1 roundings)
    s[t, j] = −0.7·3.38953e38 where j > t (causal)      exact
    p = softmax(s) over the keys j;  c = p·v            "bnts,bsnh->btnh"            (S terms)
    out = c·Wo + bo                                     "btnh,nhd->btd" then + bias  (heads·key_dim + 1)

Every value carries (value, E): E bounds one side's |computed − exact| to first order, plus the products of
errors. A contraction of n terms (Higham, ch. 3):

    E(A·B) = E(A)·|B| + |A|·E(B) + E(A)·E(B) + γ_n·|A|·|B|      (each product a contraction over the same axes)

the last term order-free, so any summation order (or autodiff summing a contraction's terms apart) is inside
it. softmax: softmax_error (exp within 16u, a shift of the logits by E) plus u·p_j·(|s_j − m| + Σ_k p_k|s_k − m|),
the rounding of s − max s inside the exponent. The VJP (TensorFlow's formulas: the transposed contractions,
SoftmaxGrad dz = p ⊙ (dp − Σ dp·p) through softmax_backward, Mul's g·scale, masked logits getting 0):

    dWo = Σ_bt c⊗dout, dbo = Σ_bt dout, dc = dout·Woᵀ, dp = dc·vᵀ, dv = pᵀ·dc, ds = softmax_vjp(dp)·scale,
    dq = ds·k, dk = dsᵀ·q, dW_ = Σ_bt x⊗d_, db_ = Σ_bt d_, dx = Σ_{q,k,v} d_·W_ᵀ  (3·heads·key_dim + 2 terms)

A side that uses the exact scale 1/√key_dim where Keras rounds it to float32 differs by up to ~3e-8 relative:
a convention, not rounding, so it is not in the bound (compare/diagnosis/attention.py names it).
Each element's tolerance is both sides' bound, 2·E, times ATTENTION_MARGIN, plus the floor.
"""
import numpy as np

from .rounding import gamma
from .rules.activations import softmax_backward, softmax_error

# Covers second-order terms first order leaves out. Measured (benchmarks/layer_false_alarms_attention.py, 1,000
# draws, about half causal): the largest |numpy − Keras| / (2·E) is 0.19 (dattention_output/bias, a plain sum of
# dout), 0.08 for the output, 0.03 for dx; with the margin of 2 every diff stays under 0.1 of its tolerance.
ATTENTION_MARGIN = 2.0

# Keras (TF backend) writes this into masked logits instead of −inf (`_get_large_negative`).
LARGE_NEGATIVE = 3.38953e38 * -0.7


def keras_scale(key_dim):
    """Keras's logit scale: 1/√key_dim as a Python float, rounded to float32 by tf.cast even in float64."""
    return float(np.float32(1.0 / np.sqrt(float(key_dim))))


def contract(spec, a, b, u, extra=0):
    """(A·B, E) for einsum `spec` of (value, E) pairs a and b: E(A)|B| + |A|E(B) + E(A)E(B) + γ_{n+extra}|A||B|,
    n the number of terms one element sums (the contracted axes' sizes), `extra` more roundings (a bias, a scale)."""
    (av, ae), (bv, be) = a, b
    inputs, out = spec.split("->")
    sizes = dict(zip(inputs.replace(",", ""), av.shape + bv.shape))
    n = int(np.prod([sizes[c] for c in set(inputs.replace(",", "")) - set(out)]))
    ein = lambda p, q: np.einsum(spec, p, q)  # noqa: E731
    abs_a, abs_b = np.abs(av), np.abs(bv)
    return ein(av, bv), ein(ae, abs_b) + ein(abs_a, be) + ein(ae, be) + gamma(n + extra, u) * ein(abs_a, abs_b)


def softmax_with_error(s, e_s, u):
    """(p, E(p)) for p = softmax(s) over the last axis: softmax_error, and the rounding of s − max s, a relative
    u·|s_j − m| on p_j and Σ_k p_k·u|s_k − m| on the sum."""
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    gap = np.abs(s - s.max(axis=-1, keepdims=True))
    spread = np.where(p > 0, p * gap, 0.0)
    return p, softmax_error(p, e_s, u) + u * (spread + p * spread.sum(axis=-1, keepdims=True))


def forward(x, weights, scale, causal, u):
    """Every intermediate of Keras's self-attention as (value, E): a dict q, k, v, s, p, c, out."""
    Wq, bq, Wk, bk, Wv, bv, Wo, bo = weights
    zero = lambda a: (a, np.zeros_like(a))  # noqa: E731  an exactly known input
    f = {}
    for name, W, b in (("q", Wq, bq), ("k", Wk, bk), ("v", Wv, bv)):
        value, e = contract("btd,dnh->btnh", zero(x), zero(W), u, extra=1)
        f[name] = (value + b, e + gamma(x.shape[-1] + 1, u) * np.abs(b))
    s, e_s = contract("btnh,bsnh->bnts", f["q"], f["k"], u, extra=1)
    s, e_s = s * scale, e_s * scale
    if causal:
        T = x.shape[1]
        visible = np.tril(np.ones((T, T), dtype=bool))
        s, e_s = np.where(visible, s, LARGE_NEGATIVE), np.where(visible, e_s, 0.0)
    f["s"] = (s, e_s)
    f["p"] = softmax_with_error(s, e_s, u)
    f["c"] = contract("bnts,bsnh->btnh", f["p"], f["v"], u)
    out, e_out = contract("btnh,nhd->btd", f["c"], zero(Wo), u, extra=1)
    f["out"] = (out + bo, e_out + gamma(Wo.shape[0] * Wo.shape[1] + 1, u) * np.abs(bo))
    return f


def backward(x, dout, weights, scale, f, u, e_dout=None):
    """(E(dx), [E(dWq), E(dbq), E(dWk), E(dbk), E(dWv), E(dbv), E(dWo), E(dbo)]) for the VJP of `forward`;
    e_dout: dout's own error (in a network), carried by the same rules (None: exact)."""
    Wq, _, Wk, _, Wv, _, Wo, _ = weights
    zero = lambda a: (a, np.zeros_like(a))  # noqa: E731
    g = zero(dout) if e_dout is None else (dout, np.broadcast_to(e_dout, dout.shape))
    rows = x.shape[0] * x.shape[1]
    dWo = contract("btnh,btd->nhd", f["c"], g, u)[1]
    dbo = gamma(rows, u) * np.abs(dout).sum(axis=(0, 1)) + (1 + gamma(rows, u)) * g[1].sum(axis=(0, 1))
    dc = contract("btd,nhd->btnh", g, zero(Wo), u)
    dp = contract("btnh,bsnh->bnts", dc, f["v"], u)
    d_proj = {"v": contract("bnts,btnh->bsnh", f["p"], dc, u)}
    (s, e_s), (p, e_p) = f["s"], f["p"]
    ds, e_ds = softmax_backward(s, p, e_s, e_p, dp[0], dp[1], u)
    ds = (ds * scale, e_ds * scale + u * np.abs(ds * scale))
    d_proj["q"] = contract("bnts,bsnh->btnh", ds, f["k"], u)
    d_proj["k"] = contract("bnts,btnh->bsnh", ds, f["q"], u)
    n_dx = 3 * Wq.shape[1] * Wq.shape[2] + 2  # three contractions over (heads, key_dim), then two additions
    e_dx, m_dx, grads = np.zeros_like(x), np.zeros_like(x), []
    for name, W in (("q", Wq), ("k", Wk), ("v", Wv)):
        d, e_d = d_proj[name]
        e_dx += np.einsum("btnh,dnh->btd", e_d, np.abs(W))
        m_dx += np.einsum("btnh,dnh->btd", np.abs(d), np.abs(W))
        grads += [contract("btd,btnh->dnh", zero(x), d_proj[name], u)[1],
                  e_d.sum(axis=(0, 1)) + gamma(rows, u) * np.abs(d).sum(axis=(0, 1))]
    return e_dx + gamma(n_dx, u) * m_dx, grads + [dWo, dbo]


def attention(layer, x, dout, weights, training, u, floor, causal=None, e_dout=None):
    """{"output", "input_gradient", "weights": [8 bounds in get_weights order], "state": []} for the built Keras
    MultiHeadAttention `layer` called as self-attention on x (N, T, D) with upstream gradient dout (N, T, D).
    `causal` is the call's use_causal_mask; None (not told) takes the larger of both bounds, element by element:
    still rounding level, and a mask that differs from Keras's moves values far beyond either."""
    if len(weights) != 8:
        raise ValueError(f"MultiHeadAttention with use_bias=True has 8 weights; received {len(weights)}")
    if causal is None:
        both = [attention(layer, x, dout, weights, training, u, floor, flag, e_dout) for flag in (False, True)]
        return {"output": np.maximum(both[0]["output"], both[1]["output"]),
                "input_gradient": np.maximum(both[0]["input_gradient"], both[1]["input_gradient"]),
                "weights": [np.maximum(a, b) for a, b in zip(both[0]["weights"], both[1]["weights"])], "state": []}
    scale = keras_scale(weights[0].shape[2])
    f = forward(x, weights, scale, causal, u)
    e_dx, e_grads = backward(x, dout, weights, scale, f, u, e_dout)
    k = 2 * ATTENTION_MARGIN
    return {"output": k * f["out"][1] + floor, "input_gradient": k * e_dx + floor,
            "weights": [k * e + floor for e in e_grads], "state": []}
