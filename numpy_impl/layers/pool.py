"""Max, average and global average pooling as forward/backward function pairs, channels first.

x (N, C, H, W); out (N, C, Ho, Wo). pool_param: "pool_height", "pool_width", "stride" (int or pair,
defaults to the pool size, as Keras's strides=None) and "pad" ("valid" or "same", defaults to
`"valid"`; 0 means "valid"), with TensorFlow's output sizes and padding (padding.py).
Keras's MaxPooling2D and AveragePooling2D run `tf.nn.max_pool` and `tf.nn.avg_pool` on channels-last data.
"""
import numpy as np

from .padding import crop, pad_spatial, pair, windows


def _geometry(pool_param):
    """(kernel, stride, pad) from pool_param."""
    try:
        kernel = pair((pool_param["pool_height"], pool_param["pool_width"]), "pool size")
    except KeyError:
        raise ValueError(f"pool_param needs 'pool_height' and 'pool_width'; "
                         f"received pool_param={pool_param!r}") from None
    pad = "valid" if pool_param.get("pad", "valid") == 0 else pool_param.get("pad", "valid")
    if pad not in ("valid", "same"):
        raise ValueError(f"pool_param['pad'] must be 'valid' or 'same'; received pad={pad!r}")
    return kernel, pair(pool_param.get("stride", kernel), "stride"), pad


def max_pool_forward(x, pool_param):
    """out[n, c, i, j] = max_p,q xp[n, c, i·sh + p, j·sw + q]; "same" pads with -inf. Returns (out, cache)."""
    kernel, stride, pad = _geometry(pool_param)
    xp, pads, out_hw = pad_spatial(x, pad, kernel, stride, (1, 1), fill=-np.inf)
    win = windows(xp, kernel, stride, (1, 1), out_hw)                       # (N, C, Ho, Wo, HH, WW)
    return win.max(axis=(4, 5)), (xp.shape, win, kernel, stride, pads)


def max_pool_backward(dout, cache):
    """dx: each dout[n, c, i, j] goes to the maximum of its window, summed where windows overlap.

    Ties, as TensorFlow's MaxPoolGrad on CPU (measured): the whole gradient goes to the FIRST maximal
    element of the window in row-major order (smallest row, then smallest column); the other equal
    elements get 0. This is numpy's argmax over the window flattened in C order.
    """
    xp_shape, win, (HH, WW), (sh, sw), pads = cache
    N, C, Ho, Wo = dout.shape
    first = win.reshape(N, C, Ho, Wo, HH * WW).argmax(axis=-1)
    n, c, i, j = np.indices((N, C, Ho, Wo))
    dxp = np.zeros(xp_shape, dtype=dout.dtype)
    np.add.at(dxp, (n, c, i * sh + first // WW, j * sw + first % WW), dout)
    return crop(dxp, pads)


def avg_pool_forward(x, pool_param):
    """out[n, c, i, j] = Σ_p,q xp[n, c, i·sh + p, j·sw + q] / count[i, j]; returns (out, cache).

    count is the number of window elements inside x: with "same" padding the padded zeros are NOT
    counted (TensorFlow's AvgPool, and so Keras, measured), so a corner window of a 2x2 pool over a
    3x3 input averages 1 element, not 4. With "valid" padding count = pool_height·pool_width.
    """
    kernel, stride, pad = _geometry(pool_param)
    xp, pads, out_hw = pad_spatial(x, pad, kernel, stride, (1, 1))
    inside = pad_spatial(np.ones((1, 1, *x.shape[2:]), dtype=x.dtype), pad, kernel, stride, (1, 1))[0]
    count = windows(inside, kernel, stride, (1, 1), out_hw).sum(axis=(4, 5))   # (1, 1, Ho, Wo)
    out = windows(xp, kernel, stride, (1, 1), out_hw).sum(axis=(4, 5)) / count
    return out, (xp.shape, count, kernel, stride, pads)


def avg_pool_backward(dout, cache):
    """dx: dxp[n, c, i·sh + p, j·sw + q] += dout[n, c, i, j] / count[i, j], one (p, q) at a time."""
    xp_shape, count, (HH, WW), (sh, sw), pads = cache
    Ho, Wo = dout.shape[2:]
    share = dout / count
    dxp = np.zeros(xp_shape, dtype=dout.dtype)
    for p in range(HH):
        for q in range(WW):
            dxp[:, :, p:p + (Ho - 1) * sh + 1:sh, q:q + (Wo - 1) * sw + 1:sw] += share
    return crop(dxp, pads)


def global_avg_pool_forward(x):
    """out[n, c] = mean_h,w x[n, c, h, w], (N, C). Keras: GlobalAveragePooling2D, `ops.mean(x, axis=[1, 2])` on NHWC."""
    if x.ndim != 4:
        raise ValueError(f"global_avg_pool_forward needs x (N, C, H, W); received x.shape={x.shape}")
    return x.mean(axis=(2, 3)), x.shape


def global_avg_pool_backward(dout, cache):
    """dx[n, c, h, w] = dout[n, c] / (H·W)."""
    H, W = cache[2:]
    return np.broadcast_to(dout[:, :, None, None] / (H * W), cache).copy()
