"""The one place where the guide's (units, inputs) weights meet Keras's (inputs, units) kernels."""
import numpy as np


def to_keras(weights):
    """[W0, b0, W1, b1, ...] with W shaped (units, inputs) → Keras's [kernel0, bias0, ...], kernel = W.T."""
    return [np.ascontiguousarray(w.T) if w.ndim == 2 else np.array(w) for w in weights]


def from_keras(weights):
    """Keras's [kernel0, bias0, ...] → [W0, b0, ...] with W = kernel.T (a view). Exact inverse of `to_keras`."""
    return [w.T if w.ndim == 2 else w for w in weights]
