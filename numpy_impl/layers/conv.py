"""2-D and 1-D convolution as forward/backward function pairs, channels first, in CS231n's style.

x (N, C, H, W), w (F, C, HH, WW), b (F,); out (N, F, Ho, Wo). Keras's Conv2D holds the kernel as
(HH, WW, C, F) = w.transpose(2, 3, 1, 0) and takes channels-last data. Like Keras (and unlike the
textbook convolution) this is a cross-correlation: the kernel is not flipped.
conv_param: "stride" (int or pair, defaults to `1`), "pad" ("valid", "same", an int, or a pair of
these for (H, W); defaults to `"valid"`), "dilation" (int or pair, defaults to `1`). "same" and
"valid" follow TensorFlow exactly, see padding.py. Keras refuses strides > 1 together with
dilation > 1; these functions allow it.
"""
import numpy as np

from .padding import crop, pad_spatial, pair, windows


def _geometry(conv_param):
    """(stride, pad, dilation) from conv_param, each stride/dilation as a pair."""
    unknown = set(conv_param) - {"stride", "pad", "dilation"}
    if unknown:
        raise ValueError(f"conv_param has unknown keys {sorted(unknown)}; received conv_param={conv_param!r}")
    return (pair(conv_param.get("stride", 1), "stride"), conv_param.get("pad", "valid"),
            pair(conv_param.get("dilation", 1), "dilation"))


def conv_forward(x, w, b, conv_param):
    """out[n, f, i, j] = b[f] + Σ_c,p,q xp[n, c, i·sh + p·dh, j·sw + q·dw] · w[f, c, p, q]; returns (out, cache).

    Keras: `tf.nn.convolution(x, kernel, strides, padding.upper(), dilations) + bias` on NHWC data.
    Computed as im2col (a strided view of the padded input) times the kernel, in one tensordot.
    """
    if x.ndim != 4 or w.ndim != 4 or x.shape[1] != w.shape[1]:
        raise ValueError(f"conv_forward needs x (N, C, H, W) and w (F, C, HH, WW) with the same C; "
                         f"received x.shape={x.shape}, w.shape={w.shape}")
    stride, pad, dilation = _geometry(conv_param)
    kernel = w.shape[2:]
    xp, pads, out_hw = pad_spatial(x, pad, kernel, stride, dilation)
    cols = windows(xp, kernel, stride, dilation, out_hw)                  # (N, C, Ho, Wo, HH, WW)
    out = np.tensordot(cols, w, axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2) + b[:, None, None]
    return out, (xp.shape, cols, w, stride, dilation, pads)


def conv_backward(dout, cache):
    """(dx, dw, db) for dout (N, F, Ho, Wo).

        db[f] = Σ_n,i,j dout[n, f, i, j]
        dw[f, c, p, q] = Σ_n,i,j dout[n, f, i, j] · xp[n, c, i·sh + p·dh, j·sw + q·dw]
        dxp[n, c, i·sh + p·dh, j·sw + q·dw] += Σ_f dout[n, f, i, j] · w[f, c, p, q], one (p, q) at a time
    then dx is dxp without the padding.
    """
    xp_shape, cols, w, (sh, sw), (dh, dw_), pads = cache
    Ho, Wo = dout.shape[2:]
    db = dout.sum(axis=(0, 2, 3))
    dw = np.tensordot(dout, cols, axes=([0, 2, 3], [0, 2, 3]))          # (F, C, HH, WW)
    dxp = np.zeros(xp_shape, dtype=np.result_type(dout, w))
    for p in range(w.shape[2]):
        for q in range(w.shape[3]):
            rows = slice(p * dh, p * dh + (Ho - 1) * sh + 1, sh)
            cols_ = slice(q * dw_, q * dw_ + (Wo - 1) * sw + 1, sw)
            dxp[:, :, rows, cols_] += np.einsum("nfij,fc->ncij", dout, w[:, :, p, q])
    return crop(dxp, pads), dw, db


def conv1d_forward(x, w, b, conv_param):
    """out[n, f, t] = b[f] + Σ_c,k xp[n, c, t·s + k·d] · w[f, c, k]; returns (out, cache).

    x (N, C, T), w (F, C, K), b (F,); Keras's Conv1D kernel is (K, C, F) = w.transpose(2, 1, 0) on
    (N, T, C) data. Computed as conv_forward on a height-1 image; "causal" padding is not offered.
    """
    if x.ndim != 3 or w.ndim != 3:
        raise ValueError(f"conv1d_forward needs x (N, C, T) and w (F, C, K); "
                         f"received x.shape={x.shape}, w.shape={w.shape}")
    one = {k: v[0] if isinstance(v, (tuple, list)) and len(v) == 1 else v for k, v in conv_param.items()}
    stride, pad, dilation = _geometry(one)
    if stride[0] != stride[1] or dilation[0] != dilation[1]:
        raise ValueError(f"conv1d stride and dilation must be ints; received conv_param={conv_param!r}")
    stride, dilation = stride[0], dilation[0]
    pad_h = 0 if isinstance(pad, (int, np.integer)) else pad                 # "same" on a height of 1 pads 0
    param_2d = {"stride": (1, stride), "dilation": (1, dilation), "pad": (pad_h, pad)}
    out, cache = conv_forward(x[:, :, None, :], w[:, :, None, :], b, param_2d)
    return out[:, :, 0, :], cache


def conv1d_backward(dout, cache):
    """(dx, dw, db) for dout (N, F, To): conv_backward on the height-1 image, the height axis dropped."""
    dx, dw, db = conv_backward(dout[:, :, None, :], cache)
    return dx[:, :, 0, :], dw[:, :, 0, :], db
