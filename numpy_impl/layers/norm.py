"""Batch and layer normalization as forward/backward function pairs, in CS231n's style.

Features are on the last axis: x is (N, D) or (N, H, W, C), gamma and beta are (D,) or (C,).
Both layers compute Keras's own expression (`tf.nn.batch_normalization`, and the same order in
`keras.ops.layer_normalization`):

    inv = gamma / sqrt(var + eps);  out = x * inv + (beta - mean * inv)

which equals gamma * (x - mean) / sqrt(var + eps) + beta up to rounding. The variance is the
biased one, mean((x - mean)²), as `tf.nn.moments` computes it. Both layers share one backward.
"""
import numpy as np

BN_MODES = ("train", "test")


def _normalize(x, mean, var, gamma, beta, eps):
    """out = x * inv + (beta - mean * inv), inv = gamma / sqrt(var + eps): TF's order of operations."""
    inv = gamma / np.sqrt(var + eps)
    return x * inv + (beta - mean * inv)


def _normalize_backward(dout, cache):
    """dx, dgamma, dbeta through out = gamma * x̂ + beta, x̂ = (x - μ) / sqrt(σ² + eps).

    With the statistics over `axes` (m values each), the paths through σ² and μ are kept apart:
        dx̂ = dout * gamma
        dσ² = Σ dx̂ (x - μ) · (-½)(σ² + eps)^(-3/2)
        dμ = -Σ dx̂ / sqrt(σ² + eps) + dσ² · Σ -2 (x - μ) / m
        dx = dx̂ / sqrt(σ² + eps) + dσ² · 2 (x - μ) / m + dμ / m
    Without statistics (batch norm in test mode, fixed moving stats) only dx = dx̂ / sqrt(σ² + eps) remains.
    """
    x, mean, var, gamma, eps, axes = cache
    xc, std_inv = x - mean, 1 / np.sqrt(var + eps)
    param_axes = tuple(range(x.ndim - 1))
    dgamma = np.sum(dout * xc * std_inv, axis=param_axes)
    dbeta = np.sum(dout, axis=param_axes)
    dxhat = dout * gamma
    if axes is None:
        return dxhat * std_inv, dgamma, dbeta
    m = np.prod([x.shape[a] for a in axes])
    dvar = np.sum(dxhat * xc, axis=axes, keepdims=True) * -0.5 * std_inv ** 3
    dmean = (-np.sum(dxhat, axis=axes, keepdims=True) * std_inv
             + dvar * np.sum(-2 * xc, axis=axes, keepdims=True) / m)
    dx = dxhat * std_inv + dvar * 2 * xc / m + dmean / m
    return dx, dgamma, dbeta


def batchnorm_forward(x, gamma, beta, bn_param):
    """Batch norm over every axis but the last; returns (out, cache), updating bn_param in train mode.

    bn_param: "mode" ("train" or "test"), "eps" (defaults to `1e-3`, Keras's epsilon), "momentum"
    (defaults to `0.99`), "running_mean" (defaults to zeros) and "running_var" (defaults to ones,
    Keras's moving_variance initializer). In train mode, as Keras's BatchNormalization(training=True):
        moving_mean = moving_mean * momentum + mean * (1 - momentum)
        moving_var = moving_var * momentum + var * (1 - momentum)     # the biased batch variance
    In test mode the output uses running_mean and running_var, and nothing is updated.
    """
    mode = bn_param.get("mode")
    if mode not in BN_MODES:
        raise ValueError(f"bn_param['mode'] must be one of {BN_MODES}. Received: mode={mode!r}")
    eps, momentum = bn_param.get("eps", 1e-3), bn_param.get("momentum", 0.99)
    D = x.shape[-1]
    running_mean = bn_param.setdefault("running_mean", np.zeros(D, dtype=x.dtype))
    running_var = bn_param.setdefault("running_var", np.ones(D, dtype=x.dtype))
    if mode == "train":
        axes = tuple(range(x.ndim - 1))
        mean = np.mean(x, axis=axes)
        var = np.mean((x - mean) ** 2, axis=axes)
        bn_param["running_mean"] = running_mean * momentum + mean * (1 - momentum)
        bn_param["running_var"] = running_var * momentum + var * (1 - momentum)
    else:
        axes, mean, var = None, running_mean, running_var
    out = _normalize(x, mean, var, gamma, beta, eps)
    return out, (x, mean, var, gamma, eps, axes)


def batchnorm_backward(dout, cache):
    """(dx, dgamma, dbeta) for batchnorm_forward, through the batch mean and variance in train mode."""
    return _normalize_backward(dout, cache)


def layernorm_forward(x, gamma, beta, ln_param=None):
    """Layer norm over the last axis; returns (out, cache).

    ln_param: "eps", defaulting to `1e-3` as keras.layers.LayerNormalization (not 1e-5 as in PyTorch).
    Keras: mean, var = moments(x, axes=-1); inv = rsqrt(var + eps) * gamma; out = x * inv + (-mean * inv + beta).
    """
    eps = (ln_param or {}).get("eps", 1e-3)
    mean = np.mean(x, axis=-1, keepdims=True)
    var = np.mean((x - mean) ** 2, axis=-1, keepdims=True)
    out = _normalize(x, mean, var, gamma, beta, eps)
    return out, (x, mean, var, gamma, eps, (x.ndim - 1,))


def layernorm_backward(dout, cache):
    """(dx, dgamma, dbeta) for layernorm_forward, through each row's mean and variance."""
    return _normalize_backward(dout, cache)
