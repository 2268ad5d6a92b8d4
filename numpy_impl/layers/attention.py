"""Multi-head self-attention as a forward/backward function pair, with Keras's weight shapes.

x (B, T, D); query, key and value kernels (D, heads, key_dim) with biases (heads, key_dim);
output kernel (heads, key_dim, D) with bias (D,): the shapes keras.layers.MultiHeadAttention's
get_weights() returns, in the order Wq, bq, Wk, bk, Wv, bv, Wo, bo (value_dim = key_dim).
"""
import numpy as np

from ..ops import softmax, softmax_backward

# Keras (TF backend) writes this into masked logits instead of -inf: `_get_large_negative`.
LARGE_NEGATIVE = 3.38953e38 * -0.7


def mha_forward(x, Wq, bq, Wk, bk, Wv, bv, Wo, bo, num_heads, causal=False):
    """Self-attention as MultiHeadAttention(num_heads, key_dim)(x, x, use_causal_mask=causal).

        q, k, v = x·Wq + bq, x·Wk + bk, x·Wv + bv            (B, T, heads, key_dim), EinsumDense "abc,cde->abde"
        s = (q·kᵀ) · scale, per head                        (B, heads, T, S)
        s[t, j] = -0.7 · 3.38953e38 where j > t, if causal   (the diagonal stays visible)
        p = softmax(s) over the key axis S;  c = p·v        (B, T, heads, key_dim)
        out = c·Wo + bo                                     (B, T, D), EinsumDense "abcd,cde->abe"
    scale is 1/sqrt(key_dim) rounded to float32, even in float64: Keras keeps `1.0 / math.sqrt(key_dim)`
    as a Python float and TensorFlow's `tf.cast(scale, float64)` goes through a float32 constant
    (a relative change of ~1e-8 unless key_dim is a power of 4). Keras 3 runs `ops.dot_product_attention`
    (no dropout, no returned scores), which scales the logits after the dot product; its fallback
    path (return_attention_scores=True or dropout) scales the query first: equal up to rounding.
    """
    if Wq.shape[1] != num_heads:
        raise ValueError(f"Wq must be (D, num_heads, key_dim) with num_heads={num_heads}. "
                         f"Received: Wq.shape={Wq.shape}")
    scale = float(np.float32(1.0 / np.sqrt(float(Wq.shape[2]))))
    q, k, v = (np.einsum("btd,dnh->btnh", x, W) + bias for W, bias in ((Wq, bq), (Wk, bk), (Wv, bv)))
    s = np.einsum("btnh,bsnh->bnts", q, k) * scale
    if causal:
        T = x.shape[1]
        s = np.where(np.tril(np.ones((T, T), dtype=bool)), s, LARGE_NEGATIVE)
    p = softmax(s)
    c = np.einsum("bnts,bsnh->btnh", p, v)
    out = np.einsum("btnh,nhd->btd", c, Wo) + bo
    return out, (x, q, k, v, p, c, scale, (Wq, Wk, Wv, Wo))


def mha_backward(dout, cache):
    """(dx, [dWq, dbq, dWk, dbk, dWv, dbv, dWo, dbo]) for mha_forward, in Keras's get_weights() order.

    Masked logits get no gradient: their p is exactly 0, so softmax_backward gives 0 there, as
    the gradient of Keras's `tf.where(mask, logits, large_negative)` does.
    """
    x, q, k, v, p, c, scale, (Wq, Wk, Wv, Wo) = cache
    dWo, dbo = np.einsum("btnh,btd->nhd", c, dout), dout.sum(axis=(0, 1))
    dc = np.einsum("btd,nhd->btnh", dout, Wo)
    dp, dv = np.einsum("btnh,bsnh->bnts", dc, v), np.einsum("bnts,btnh->bsnh", p, dc)
    ds = softmax_backward(p, dp) * scale
    dq, dk = np.einsum("bnts,bsnh->btnh", ds, k), np.einsum("bnts,btnh->bsnh", ds, q)
    dx, grads = np.zeros_like(x), []
    for W, dproj in ((Wq, dq), (Wk, dk), (Wv, dv)):
        dx += np.einsum("btnh,dnh->btd", dproj, W)
        grads += [np.einsum("btd,btnh->dnh", x, dproj), dproj.sum(axis=(0, 1))]
    return dx, grads + [dWo, dbo]
