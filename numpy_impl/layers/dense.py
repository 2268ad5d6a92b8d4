"""The fully connected (affine) layer as a forward/backward function pair, in CS231n's style.

Weights keep the guide's convention, w (M, D) = (units, inputs); Keras's Dense kernel is w.T.
x is (N, D) or, as Keras's Dense, any (..., D): the layer acts on the last axis. (CS231n's
affine_forward flattens x instead; here that is flatten_forward's job, reshape.py.)
"""
from ..ops import dense_forward


def affine_forward(x, w, b):
    """out = x @ w.T + b, (..., M); returns (out, cache). Keras Dense: `matmul(x, kernel) + bias`, kernel = w.T."""
    if w.ndim != 2 or x.shape[-1] != w.shape[1] or b.shape != (w.shape[0],):
        raise ValueError(f"affine_forward needs x (..., D), w (M, D) and b (M,); "
                         f"received x.shape={x.shape}, w.shape={w.shape}, b.shape={b.shape}")
    return dense_forward(x, w, b), (x, w)


def affine_backward(dout, cache):
    """(dx, dw, db) for dout (..., M).

        dx = dout @ w                 (..., D)
        dw = Σ_rows doutᵀ x           (M, D), the rows being every index but the last
        db = Σ_rows dout              (M,)
    """
    x, w = cache
    rows_dout, rows_x = dout.reshape(-1, dout.shape[-1]), x.reshape(-1, x.shape[-1])
    return dout @ w, rows_dout.T @ rows_x, rows_dout.sum(axis=0)
