"""The network's math as small pure functions, in the guide's conventions.

Weights are shaped (units, inputs), as in the guide; Keras stores the transpose.
Each function names the Keras formula it mirrors.
"""
import numpy as np


def dense_forward(x, W, b):
    """z = x @ W.T + b. Keras: `matmul(x, kernel) + bias` with kernel = W.T."""
    return x @ W.T + b


def tanh(z):
    """a = tanh(z). Keras on TensorFlow: `tf.math.tanh`, up to 6 ulp from numpy's in float64."""
    return np.tanh(z)


def tanh_grad(a):
    """da/dz = 1 - a², from the output a = tanh(z). TensorFlow's tanh gradient is `dy * (1 - y*y)`."""
    return 1 - a * a


def sigmoid(z):
    """a = 1 / (1 + exp(-z)), computed without overflow for large |z|."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_grad(a):
    """da/dz = a (1 - a). TensorFlow's sigmoid gradient is `dy * y * (1 - y)`."""
    return a * (1 - a)


def relu(z):
    """a = max(z, 0)."""
    return np.maximum(z, 0)


def relu_grad(a):
    """da/dz = 1 where a > 0, else 0 (Keras takes 0 at z = 0)."""
    return (a > 0).astype(a.dtype)


def linear(z):
    """a = z: no activation, as on the guide's output layer."""
    return z


def linear_grad(a):
    """da/dz = 1."""
    return np.ones_like(a)


def elu(z):
    """a = z for z > 0, else exp(z) − 1. Keras: `tf.nn.elu` (alpha 1), which computes expm1 for z < 0."""
    return np.where(z > 0, z, np.expm1(np.minimum(z, 0)))


def elu_grad(a):
    """da/dz = a + 1 where a < 0, else 1, from the output a. TensorFlow's EluGrad is `dy * (y + 1)` for y < 0."""
    return np.where(a < 0, a + 1, 1.0)


def softmax(z):
    """a_j = exp(z_j − max z) / Σ_k exp(z_k − max z), per row."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def softmax_backward(a, da):
    """dL/dz = a ⊙ (dL/da − Σ_k dL/da_k · a_k), per row: the softmax Jacobian-vector product."""
    return a * (da - np.sum(da * a, axis=-1, keepdims=True))


ACTIVATIONS = {f.__name__: (f, g) for f, g in [
    (linear, linear_grad), (tanh, tanh_grad), (sigmoid, sigmoid_grad), (relu, relu_grad), (elu, elu_grad),
    (softmax, None)]}


def activation_backward(name, a, da):
    """dL/dz from dL/da through the activation `name`, given its output a."""
    if name == "softmax":
        return softmax_backward(a, da)
    return da * ACTIVATIONS[name][1](a)
