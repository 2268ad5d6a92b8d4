"""Flatten and reshape as forward/backward function pairs: they move no number, only the shape.

Both keep axis 0 (the batch) and lay the rest out in C order, as Keras's Flatten and Reshape do.
Trap when comparing: Keras's Flatten after a channels-last conv reads (H, W, C); flatten_forward
after this package's channels-first conv reads (C, H, W). The numbers agree but their order does
not, so a following Dense kernel must be permuted (rows in (H, W, C) order for Keras).
"""
import numpy as np


def flatten_forward(x):
    """out = x.reshape(N, -1): (N, d1, ..., dk) -> (N, d1·...·dk). Keras: Flatten, `ops.reshape(x, (N, -1))`."""
    if x.ndim < 1:
        raise ValueError(f"flatten_forward needs a batch axis; received x.shape={x.shape}")
    return x.reshape(x.shape[0], -1), x.shape


def flatten_backward(dout, cache):
    """dx = dout.reshape(x.shape): the gradient of a reshape is the inverse reshape."""
    return dout.reshape(cache)


def reshape_forward(x, shape):
    """out = x.reshape((N, *shape)); returns (out, cache).

    `shape` excludes the batch axis and may hold one -1, as Keras's Reshape(target_shape).
    """
    shape = tuple(shape)
    per_example = int(np.prod(x.shape[1:]))
    known = int(np.prod([d for d in shape if d != -1]))
    fits = (known == per_example) if -1 not in shape else (known > 0 and per_example % known == 0)
    if shape.count(-1) > 1 or any(d < -1 or d == 0 for d in shape) or not fits:
        raise ValueError(f"cannot reshape examples of shape {x.shape[1:]} ({per_example} values) to "
                         f"shape={shape}")
    return x.reshape((x.shape[0], *shape)), x.shape


def reshape_backward(dout, cache):
    """dx = dout.reshape(x.shape)."""
    return dout.reshape(cache)
