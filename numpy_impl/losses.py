"""Keras's losses in numpy: each returns (loss, dL/d input), the input being ŷ or the logits z.

Every loss is a mean over the batch (Keras's reduction "sum_over_batch_size"); `REDUCTIONS` gives the
factor Keras's other reductions put on it. The Keras formulas are those of the TensorFlow backend
(keras/src/backend/tensorflow/nn.py); ε = keras.config.epsilon().
"""
import numpy as np

EPSILON = 1e-7


def mse(y_hat, y):
    """L = mean((ŷ − y)²) over all n elements; dL/dŷ = 2(ŷ − y)/n.

    Keras: mean(square(y_true − y_pred), axis=−1), then the batch mean: the same value up to rounding.
    """
    r = y_hat - y
    return np.mean(r * r), 2 * r / r.size


def mae(y_hat, y):
    """L = mean|ŷ − y|; dL/dŷ = sign(ŷ − y)/n (0 where ŷ = y, as TensorFlow's abs gradient)."""
    r = y_hat - y
    return np.mean(np.abs(r)), np.sign(r) / r.size


def binary_crossentropy(p, y, epsilon=EPSILON):
    """L = mean(−(y log p + (1 − y) log(1 − p))) with p clipped to [ε, 1 − ε].

    Keras: `clip_by_value(p, ε, 1 − ε)`, so dL/dp = 0 where the clip is active.
    """
    pc = np.clip(p, epsilon, 1 - epsilon)
    loss = -(y * np.log(pc) + (1 - y) * np.log(1 - pc))
    inside = (p >= epsilon) & (p <= 1 - epsilon)
    grad = np.where(inside, (-y / pc + (1 - y) / (1 - pc)) / p.size, 0.0)
    return np.mean(loss), grad


def binary_crossentropy_logits(z, y):
    """L = mean(max(z, 0) − z·y + log(1 + exp(−|z|))); dL/dz = (σ(z) − y)/n.

    Keras: `tf.nn.sigmoid_cross_entropy_with_logits`. Used also with from_logits=False when the
    last layer is a sigmoid or softmax: Keras then silently takes that layer's pre-activation.
    """
    loss = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
    e = np.exp(-np.abs(z))
    sigma = np.where(z >= 0, 1 / (1 + e), e / (1 + e))
    return np.mean(loss), (sigma - y) / z.size


def categorical_crossentropy(p, y, epsilon=EPSILON):
    """L = mean over rows of −Σ y log q, q = clip(p / Σ p, ε, 1 − ε) per row.

    Keras renormalises each row before clipping; dL/dp_j = (g_j − Σ_k g_k q_k) / Σ p with
    g = −y / (q N) where the clip is inactive and 0 where it is active.
    """
    s = p.sum(axis=-1, keepdims=True)
    q = p / s
    qc = np.clip(q, epsilon, 1 - epsilon)
    N = p.shape[0]
    loss = -np.sum(y * np.log(qc), axis=-1)
    g = np.where((q >= epsilon) & (q <= 1 - epsilon), -y / qc / N, 0.0)
    grad = (g - np.sum(g * q, axis=-1, keepdims=True)) / s
    return np.mean(loss), grad


def categorical_crossentropy_logits(z, y):
    """L = mean over rows of Σ y (logsumexp(z) − z); dL/dz = (softmax(z) − y)/N.

    Keras: `tf.nn.softmax_cross_entropy_with_logits`, whose gradient is softmax − y even when a
    row of y does not sum to 1. Used also when the last layer is a softmax or sigmoid.
    """
    m = z.max(axis=-1, keepdims=True)
    lse = m + np.log(np.sum(np.exp(z - m), axis=-1, keepdims=True))
    loss = np.sum(y * (lse - z), axis=-1)
    return np.mean(loss), (np.exp(z - lse) - y) / z.shape[0]


def smooth_labels(y, name, label_smoothing):
    """Keras's label smoothing: binary y(1 − s) + s/2; categorical y(1 − s) + s/K."""
    if not label_smoothing:
        return y
    k = 2 if name == "binary_crossentropy" else y.shape[-1]
    return y * (1.0 - label_smoothing) + label_smoothing / k


# Keras's reduction of the N per-row losses (keras/src/losses/loss.py, reduce_values) → its factor on the
# mean: "sum_over_batch_size", "mean" and "mean_with_sample_weight" (no weights) divide Σ rows by N;
# "sum" keeps Σ rows = N × the mean. ("none", one loss per row, has no scalar to train on here.)
REDUCTIONS = {
    "sum_over_batch_size": lambda rows: 1,
    "mean": lambda rows: 1,
    "mean_with_sample_weight": lambda rows: 1,
    "sum": lambda rows: rows,
}


def scaled(loss, grad, c):
    """(c·L, c·dL/dx): the loss under a convention, c = loss_scale × REDUCTIONS[reduction](N).

    Keras: `reduction="sum"` gives Σ rows = N·mean; a loss_scale s is s·loss inside the tape.
    """
    return (loss, grad) if c == 1 else (c * loss, c * grad)


# name → (on ŷ, on logits or None)
LOSSES = {
    "mse": (mse, None),
    "mae": (mae, None),
    "binary_crossentropy": (binary_crossentropy, binary_crossentropy_logits),
    "categorical_crossentropy": (categorical_crossentropy, categorical_crossentropy_logits),
}
LOGIT_LAYERS = ("sigmoid", "softmax")


def takes_logits(name, from_logits, last_activation, backend="tensorflow"):
    """Where Keras evaluates the loss: 'z' (the last pre-activation), 'a' (the output as logits) or None.

    On TensorFlow a cross-entropy after a sigmoid or softmax layer always uses that layer's
    pre-activation, whatever from_logits says (keras/src/backend/tensorflow/nn.py, `_get_logits`).
    The jax and torch backends take the output as it is: probabilities, clipped.
    """
    if LOSSES[name][1] is None:
        return None
    if last_activation in LOGIT_LAYERS and backend == "tensorflow":
        return "z"
    return "a" if from_logits else None
