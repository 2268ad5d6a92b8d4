"""Seeded random self-attention cases for the single-layer check: the project's correct numpy MultiHeadAttention
(numpy_impl/layers/attention.py) through the course-style adapter, and x.

Per seed: N 1–3, T 1–6, D 1–8, heads 1–3, key_dim 1–5 (2–5 with more than one head: Keras's key_dim=1 bias bug,
compare/rules/layers.py _attention_refuse; 2, 3 and 5 are not powers of 4, so Keras's float32-rounded scale
1/√key_dim differs from the exact one), x and weights each scaled by 10^U(−1, 1), causal or not.
"""
import numpy as np

from compare.adapters import attention
from numpy_impl.layers.attention import mha_backward, mha_forward


def weights(rng, D, heads, key_dim, scale=1.0):
    """Wq, bq, Wk, bk, Wv, bv, Wo, bo in Keras's shapes, standard normal times `scale`."""
    shapes = [(D, heads, key_dim), (heads, key_dim)] * 3 + [(heads, key_dim, D), (D,)]
    return [rng.standard_normal(s) * scale for s in shapes]


def case(seed, forward=mha_forward, backward=mha_backward, causal=None):
    """(layer, x, causal) for draw `seed`; forward/backward replace the correct functions (planted bugs)."""
    rng = np.random.default_rng(seed)
    N, T, D = (int(rng.integers(1, hi + 1)) for hi in (3, 6, 8))
    heads = int(rng.integers(1, 4))
    key_dim = int(rng.integers(1 if heads == 1 else 2, 6))  # key_dim 1 with heads > 1: refused (rules/layers.py)
    x_scale, w_scale = 10 ** rng.uniform(-1, 1), 10 ** rng.uniform(-1, 1)
    ws = weights(rng, D, heads, key_dim, w_scale)
    flag = bool(rng.integers(0, 2)) if causal is None else causal
    x = rng.standard_normal((N, T, D)) * x_scale
    return attention(forward, backward, ws, heads, key_dim, flag), x, flag
