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


# --- single layers in the courses' conventions (compare/adapters.py) ---------------------------------------
def conv_kernel_to_keras(w):
    """A course's convolution kernel (F, C, HH, WW) (or (F, C, K) in 1-D) → Keras's (HH, WW, C, F): the spatial
    axes first, then input channels, then filters."""
    w = np.asarray(w)
    return np.ascontiguousarray(w.transpose(tuple(range(2, w.ndim)) + (1, 0)))


def conv_kernel_from_keras(kernel):
    """Keras's (HH, WW, C, F) → (F, C, HH, WW). Exact inverse of `conv_kernel_to_keras`."""
    kernel = np.asarray(kernel)
    n = kernel.ndim
    return np.ascontiguousarray(kernel.transpose((n - 1, n - 2) + tuple(range(n - 2))))


def dense_kernel_to_keras(w, shape="units_inputs"):
    """A dense weight → Keras's kernel (inputs, units): the guide's (units, inputs) is transposed, CS231n's
    (inputs, units) ("inputs_units") is Keras's already. Its own inverse (`dense_kernel_from_keras`)."""
    if shape not in ("units_inputs", "inputs_units"):
        raise ValueError(f"dense weight shape {shape!r}; expected 'units_inputs' or 'inputs_units'")
    w = np.asarray(w)
    return np.ascontiguousarray(w.T) if shape == "units_inputs" else np.array(w)


dense_kernel_from_keras = dense_kernel_to_keras


# LSTM gate blocks: the courses' (i, f, o, g) against Keras's (i, f, c, o), c being g.
_COURSE_FROM_KERAS = (0, 1, 3, 2)  # course block k is Keras block _COURSE_FROM_KERAS[k]; the map is its own inverse


def lstm_gates_to_keras(w):
    """An LSTM weight or bias whose last axis holds 4 gate blocks in the courses' order (i, f, o, g) → Keras's
    (i, f, c, o): blocks (0, 1, 3, 2). A weight (D, 4H), recurrent weight (H, 4H) or bias (4H,)."""
    w = np.asarray(w)
    if w.shape[-1] % 4:
        raise ValueError(f"an LSTM weight's last axis holds 4 gate blocks; received shape {w.shape}")
    blocks = np.split(w, 4, axis=-1)
    return np.ascontiguousarray(np.concatenate([blocks[k] for k in _COURSE_FROM_KERAS], axis=-1))


lstm_gates_from_keras = lstm_gates_to_keras  # swapping blocks 2 and 3 is its own inverse
