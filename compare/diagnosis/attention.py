"""Known mistakes of a hand-written self-attention, each a prediction of every quantity the check compares.

Each hypothesis reruns self-attention in numpy on Keras's x, weights and dout with one thing changed (the logit
scale, the causal mask's edge, the softmax's axis); compare/diagnosis/layers.py names it when its prediction fits
every element of the failing quantity and differs from Keras's values. Predictions, not references: the
reference side's numbers are Keras's own.
"""
import numpy as np

from .. import layout as layouts
from ..bounds_attention import LARGE_NEGATIVE, keras_scale


def self_attention(x, dout, weights, scale, visible=None, axis=-1, zero_masked=True):
    """(out, dx, [8 gradients]) of self-attention with logit scale `scale`, the causal mask `visible` (T, T)
    (True: the query may see the key; None: no mask) and softmax over `axis` of the (B, heads, T, S) logits
    (−1: the keys, as Keras; −2: the queries). zero_masked: masked logits get no gradient (Keras's tf.where)."""
    Wq, bq, Wk, bk, Wv, bv, Wo, bo = weights
    q, k, v = (np.einsum("btd,dnh->btnh", x, W) + b for W, b in ((Wq, bq), (Wk, bk), (Wv, bv)))
    s = np.einsum("btnh,bsnh->bnts", q, k) * scale
    if visible is not None:
        s = np.where(visible, s, LARGE_NEGATIVE)
    p = np.exp(s - s.max(axis=axis, keepdims=True))
    p /= p.sum(axis=axis, keepdims=True)
    c = np.einsum("bnts,bsnh->btnh", p, v)
    out = np.einsum("btnh,nhd->btd", c, Wo) + bo
    dc = np.einsum("btd,nhd->btnh", dout, Wo)
    dp = np.einsum("btnh,bsnh->bnts", dc, v)
    ds = p * (dp - np.sum(dp * p, axis=axis, keepdims=True)) * scale
    if visible is not None and zero_masked:
        ds = np.where(visible, ds, 0.0)
    d = {"q": np.einsum("bnts,bsnh->btnh", ds, k), "k": np.einsum("bnts,btnh->bsnh", ds, q),
         "v": np.einsum("bnts,btnh->bsnh", p, dc)}
    dx, grads = np.zeros_like(x), []
    for name, W in (("q", Wq), ("k", Wk), ("v", Wv)):
        dx += np.einsum("btnh,dnh->btd", d[name], W)
        grads += [np.einsum("btd,btnh->dnh", x, d[name]), d[name].sum(axis=(0, 1))]
    return out, dx, grads + [np.einsum("btnh,btd->nhd", c, dout), dout.sum(axis=(0, 1))]


def causal_mask(T, shift=0):
    """Query t sees key j where j ≤ t + shift: 0 is Keras's (the diagonal included), −1 masks the diagonal too,
    +1 lets one step of the future through."""
    return np.tril(np.ones((T, T), dtype=bool), k=shift)


def _named(ctx, result):
    """A self_attention result named as the check names its quantities, in the numpy side's layout."""
    out, dx, grads = result
    letters, keras_letters, out_letters, keras_out_letters = ctx["letters"]
    named = {"out": layouts.move(out, keras_out_letters, out_letters), "dx": layouts.move(dx, keras_letters, letters)}
    named.update({f"d{s[0]}": g for s, g in zip([s for s in ctx["specs"] if s[2]], grads)})
    return named


def hypotheses(ctx, name, keras):
    """(cause, text, {name: predicted}) for the mistakes a self-attention is known for."""
    x, dout, weights = ctx["xk"], ctx["dout_k"], ctx["weights"]
    if len(weights) != 8:
        return
    key_dim = weights[0].shape[2]
    scale = keras_scale(key_dim)
    causal = bool(ctx["spec"]["call"].get("use_causal_mask"))
    T = x.shape[1]
    mask = causal_mask(T) if causal else None

    def run(**changes):
        args = {"scale": scale, "visible": mask, **changes}
        return _named(ctx, self_attention(x, dout, weights, **args))

    yield ("attention_no_scale", f"the logits are not scaled: Keras multiplies q·kᵀ by 1/√key_dim = {scale:.9g}",
           run(scale=1.0))
    exact = 1.0 / np.sqrt(key_dim)
    if exact != scale:
        yield ("attention_exact_scale", f"the logits are scaled by the exact 1/√{key_dim} = {exact!r}; Keras rounds "
               f"that scale to float32 even in float64: {scale!r} (a relative {abs(scale / exact - 1):.1e})",
               run(scale=exact))
    if key_dim > 1:
        yield ("attention_scale_key_dim", f"the logits are scaled by 1/key_dim = 1/{key_dim}; Keras's is 1/√key_dim",
               run(scale=float(np.float32(1.0 / key_dim))))
        yield ("attention_scale_key_dim", f"the logits are scaled by 1/key_dim = 1/{key_dim}; Keras's is 1/√key_dim",
               run(scale=1.0 / key_dim))
    if causal:
        for shift, cause, text in ((-1, "causal_mask_diagonal", "the causal mask hides the diagonal too: query t sees "
                                    "only keys j < t; Keras's lets it see j ≤ t (itself included)"),
                                   (1, "causal_mask_future", "the causal mask lets one step of the future through: "
                                    "query t sees keys j ≤ t + 1; Keras's stops at j ≤ t")):
            if T > 1 or shift < 0:
                for zero in (True, False):
                    yield cause, text, run(visible=causal_mask(T, shift), zero_masked=zero)
        yield ("causal_mask_missing", "the causal mask is not applied: every query sees every key; Keras's "
               "use_causal_mask=True hides the keys j > t", run(visible=None))
    elif T > 1:
        yield ("causal_mask_applied", "a causal mask is applied; Keras's layer is called without use_causal_mask",
               run(visible=causal_mask(T)))
    if T > 1:
        yield ("softmax_over_queries", "the softmax normalises over the queries (axis −2 of the (B, heads, T, S) "
               "logits); Keras's normalises each query's row over the keys (the last axis)", run(axis=-2))
