"""Inverted dropout as a forward/backward function pair, as Keras's Dropout.

dropout_param: "p" (the rate dropped, 0 <= p < 1, Keras's `rate`), "mode" ("train" or "test"),
optionally "mask" (the keep-mask, when not passed as an argument, as compare/adapters.py passes it)
and, only when there is no mask in train mode, "rng" (a numpy.random.Generator) to draw one.
Keras's Dropout(rate)(x, training=True) runs `tf.nn.experimental.stateless_dropout`:
    scale = 1 / (1 - rate)  (a Python float cast to x's dtype);  out = where(keep, x * scale, 0)
i.e. x multiplied by the rounded reciprocal, not divided by (1 - rate): the two differ by an ulp at
times, and multiplying matches Keras bit for bit. With training=False (test) Keras returns x as is.
"""
import numpy as np

DROPOUT_MODES = ("train", "test")


def dropout_forward(x, dropout_param, mask=None):
    """out = where(mask, x * (1 / (1 - p)), 0) in train mode, out = x in test mode; returns (out, cache).

    mask has x's shape, true (or 1) for kept elements. When it is None in train mode it is drawn from
    dropout_param["rng"] by Keras's rule, keep where u >= p for u uniform on [0, 1) (not Keras's numbers).
    """
    p, mode = dropout_param.get("p"), dropout_param.get("mode")
    if mode not in DROPOUT_MODES:
        raise ValueError(f"dropout_param['mode'] must be one of {DROPOUT_MODES}; received mode={mode!r}")
    if not isinstance(p, (int, float)) or not 0 <= p < 1:
        raise ValueError(f"dropout_param['p'] must be a rate in [0, 1); received p={p!r}")
    if mode == "test":
        return x, (None, 1.0)
    mask = dropout_param.get("mask") if mask is None else mask
    if mask is None:
        rng = dropout_param.get("rng")
        if not isinstance(rng, np.random.Generator):
            raise ValueError(f"train-mode dropout needs a mask or dropout_param['rng'], a numpy.random.Generator; "
                             f"received rng={rng!r}")
        mask = rng.random(x.shape) >= p
    mask = np.asarray(mask)
    if mask.shape != x.shape:
        raise ValueError(f"the dropout mask must have x's shape {x.shape}; received mask.shape={mask.shape}")
    keep, scale = mask.astype(bool), x.dtype.type(1 / (1 - p))
    return np.where(keep, x * scale, 0).astype(x.dtype), (keep, scale)


def dropout_backward(dout, cache):
    """dx = where(mask, dout * (1 / (1 - p)), 0) in train mode; dx = dout in test mode."""
    keep, scale = cache
    if keep is None:
        return dout
    return np.where(keep, dout * scale, 0).astype(dout.dtype)
