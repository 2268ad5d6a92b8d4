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


ACTIVATIONS = {f.__name__: (f, g) for f, g in [
    (linear, linear_grad), (tanh, tanh_grad), (sigmoid, sigmoid_grad), (relu, relu_grad)]}


def mse(y_hat, y):
    """L = mean((ŷ - y)²) over all N elements.

    Keras: `mean(square(y_true - y_pred), axis=-1)`, then the mean over the batch
    (reduction "sum_over_batch_size"): the same value up to rounding.
    """
    return np.mean((y_hat - y) ** 2)


def mse_grad(y_hat, y):
    """dL/dŷ = 2 (ŷ - y) / N, N the number of elements. TensorFlow: `-((1/N) * ((y - ŷ) * 2))`."""
    return 2 * (y_hat - y) / y.size


def sgd_step(w, g, learning_rate):
    """w - learning_rate · g. Keras SGD without momentum: `w.assign_sub(g * learning_rate)`."""
    return w - g * learning_rate
