"""The guide's network in 50-digit arithmetic (mpmath): forward pass and loss only.

Gradients come from mpmath.diff (high-precision numerical differentiation), so no backprop
formula of ours enters the reference.
"""
import mpmath
import numpy as np

mpmath.mp.dps = 50


def loss(params, X, y):
    """MSE of the 3-2-1 tanh network, params flattened as [W0 (2×3), b0 (2), W1 (1×2), b1 (1)]."""
    W0 = [params[0:3], params[3:6]]
    b0, W1, b1 = params[6:8], params[8:10], params[10]
    total = mpmath.mpf(0)
    for row, target in zip(X, y):
        x = [mpmath.mpf(float(v)) for v in row]
        h = [mpmath.tanh(sum(w * xi for w, xi in zip(W0[u], x)) + b0[u]) for u in range(2)]
        total += (sum(w * hi for w, hi in zip(W1, h)) + b1 - mpmath.mpf(float(target[0]))) ** 2
    return total / len(X)


def flatten(weights):
    return [mpmath.mpf(float(v)) for w in weights for v in np.ravel(w)]


def exact_loss_and_grads(weights, X, y):
    """(loss, grads) to ~40 digits, grads shaped like `weights`, as float64 (correctly rounded)."""
    p = flatten(weights)
    value = loss(p, X, y)
    flat = []
    for i in range(len(p)):
        def f(t, i=i):
            q = list(p)
            q[i] = t
            return loss(q, X, y)
        flat.append(float(mpmath.diff(f, p[i])))
    grads, k = [], 0
    for w in weights:
        grads.append(np.array(flat[k:k + w.size]).reshape(w.shape))
        k += w.size
    return float(value), grads
