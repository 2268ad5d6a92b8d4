"""The one place where the guide's (units, inputs) weights meet Keras's (inputs, units) kernels."""
import numpy as np


def to_keras(weights):
    """[W0, b0, W1, b1, ...] with W shaped (units, inputs) → Keras's [kernel0, bias0, ...], kernel = W.T."""
    return [np.ascontiguousarray(w.T) if w.ndim == 2 else np.array(w) for w in weights]


def from_keras(weights):
    """Keras's [kernel0, bias0, ...] → [W0, b0, ...] with W = kernel.T (a view). Exact inverse of `to_keras`."""
    return [w.T if w.ndim == 2 else w for w in weights]


def swap_kernels(tensors):
    """Inside a compiled Keras function: [W0, b0, W1, ...] with kernels (..., units, inputs) ↔ Keras's
    (..., inputs, units), leading step axes kept. Its own inverse; the backend's transpose moves the
    data, so the numpy side never reads an array against its memory order."""
    from keras import ops
    return [ops.swapaxes(t, -1, -2) if i % 2 == 0 else t for i, t in enumerate(tensors)]
