"""Window geometry shared by convolution and pooling: padding amounts, output sizes, window views.

TensorFlow's rule, which Keras follows, for one spatial axis of size n, kernel k, stride s, dilation d
(effective kernel k_eff = (k - 1)·d + 1):
    "valid":  out = (n - k_eff) // s + 1,  no padding
    "same":   out = ceil(n / s),  pad_total = max((out - 1)·s + k_eff - n, 0),
              pad_before = pad_total // 2,  pad_after = pad_total - pad_before  (the odd one at the end)
    int p:    out = (n + 2p - k_eff) // s + 1,  p on each side (CS231n's convention; not a Keras option)
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def pair(value, name):
    """(a, b) from an int or a pair of ints, as Keras's `standardize_tuple`."""
    pair_ = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair_) != 2 or not all(isinstance(v, (int, np.integer)) and v >= 1 for v in pair_):
        raise ValueError(f"{name} must be an int or a pair of ints >= 1; received {name}={value!r}")
    return pair_


def axis_padding(n, k, stride, dilation, pad):
    """(pad_before, pad_after, out) along one axis of size n, by the rule in this module's docstring."""
    k_eff = (k - 1) * dilation + 1
    if pad == "valid":
        before = after = 0
    elif pad == "same":
        out = -(-n // stride)
        total = max((out - 1) * stride + k_eff - n, 0)
        before, after = total // 2, total - total // 2
    elif isinstance(pad, (int, np.integer)) and pad >= 0:
        before = after = int(pad)
    else:
        raise ValueError(f"pad must be 'valid', 'same' or an int >= 0; received pad={pad!r}")
    out = (n + before + after - k_eff) // stride + 1
    if out < 1:
        raise ValueError(f"a window of {k_eff} (kernel {k}, dilation {dilation}) does not fit an axis of "
                         f"{n} padded by {before}+{after}; received pad={pad!r}")
    return before, after, out


def pad_spatial(x, pad, kernel, stride, dilation, fill=0.0):
    """x (N, C, H, W) padded with `fill` on H and W; returns (x_padded, ((top, bottom), (left, right)), (Ho, Wo))."""
    pads = pad if isinstance(pad, tuple) else (pad, pad)
    (top, bottom, Ho), (left, right, Wo) = (axis_padding(n, k, s, d, p) for n, k, s, d, p
                                            in zip(x.shape[2:], kernel, stride, dilation, pads, strict=True))
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=fill)
    return xp, ((top, bottom), (left, right)), (Ho, Wo)


def windows(xp, kernel, stride, dilation, out_hw):
    """View (N, C, Ho, Wo, HH, WW) of xp: element [n, c, i, j, p, q] = xp[n, c, i·sh + p·dh, j·sw + q·dw]."""
    (HH, WW), (sh, sw), (dh, dw), (Ho, Wo) = kernel, stride, dilation, out_hw
    view = sliding_window_view(xp, ((HH - 1) * dh + 1, (WW - 1) * dw + 1), axis=(2, 3))
    return view[:, :, :(Ho - 1) * sh + 1:sh, :(Wo - 1) * sw + 1:sw, ::dh, ::dw]


def crop(dxp, pads):
    """dxp (N, C, Hp, Wp) without its padding: the gradient of np.pad is the slice it padded around."""
    (top, bottom), (left, right) = pads
    return dxp[:, :, top:dxp.shape[2] - bottom, left:dxp.shape[3] - right]
