"""What compare knows about each loss: the options Keras takes, how many terms it averages, a bound on
one side's error of the loss and of δ = dL/dx, and its exact value and gradient in 50-digit arithmetic.

Each entry:
  options   the loss_config options Keras's class takes here, with their types (anything else is refused)
  ranges    {option: (low, high, high included)} for the numeric ones
  terms     (y) → how many terms the loss averages: every element, or (categorical) every row
  bounds    (on_logits, y, x, e_x, u, epsilon, e_y, x_numpy) → (E(L), δ, E(δ)) for the loss evaluated
            on x (ŷ, or the logits when on_logits): δ in Keras's values, every bound over x ± e_x. e_y
            bounds the targets' own rounding (label smoothing computes y(1 − s) + s/K, two roundings
            per side). x_numpy, the numpy side's x: at a kink of the loss (|r| at r = 0, a clip's
            edge) a bound opens only where the two sides' values fall on different sides of it.
  exact     (on_logits, x, y) → (L, dL/dx) as mpf and nested lists of mpf, with Keras's reductions

Every bound also takes a stack of steps (a leading step axis) and then returns one E(L) per step.
Each is written for Keras's default reduction, the mean over the batch; a declared convention (the loss's
reduction, the network's loss_scale) multiplies the loss and δ by a constant c (`convention_factor`,
`scaled`).
"""
import mpmath
import numpy as np

from numpy_impl.losses import EPSILON

from ..rounding import TRANSCENDENTAL, gamma, quotient_gap
from . import lookup
from .activations import kink_open, sigmoid_range, softmax_error

# Keras's reductions of the per-row losses (keras/src/losses/loss.py, reduce_values): the factor each puts
# on the mean over the batch that the bounds below are written for. Keras sums the N per-row values; the
# means then divide by N (the check passes no sample weights and no mask, so all three are that mean).
REDUCTIONS = {
    "sum_over_batch_size": lambda rows: 1,  # Keras's default: Σ rows / N
    "mean": lambda rows: 1,  # Σ rows / N
    "mean_with_sample_weight": lambda rows: 1,  # Σ rows / Σ weights, all 1
    "sum": lambda rows: rows,  # Σ rows = N × the mean
}
# Keras's reductions the check cannot compare, and why
REFUSED_REDUCTIONS = {
    "none": "the check compares one loss value per step, and Keras's reduction \"none\" gives one per row",
    None: "the check compares one loss value per step, and Keras's reduction None gives one per row",
}
REDUCTION_OPTIONS = {"reduction": "sum_over_batch_size"}
REDUCTION_RANGES = {"reduction": (REDUCTIONS, REFUSED_REDUCTIONS)}
CROSS_ENTROPY_OPTIONS = {"from_logits": bool, "label_smoothing": float, **REDUCTION_OPTIONS}
CROSS_ENTROPY_RANGES = {"label_smoothing": (0.0, 1.0, True), **REDUCTION_RANGES}


def _total(a):
    """Σ over the batch and feature axes: one value per step."""
    return a.sum(axis=(-2, -1))


# --- mean squared and mean absolute error: L = mean over every element ---------------------------------
def mse_bounds(on_logits, y, x, e_x, u, epsilon, e_y, x_numpy):
    n = x.shape[-2] * x.shape[-1]
    r = x - y
    e_r = e_x + e_y + u * np.abs(r)
    loss = _total(r * r) / n
    e_loss = _total(e_r * (2 * np.abs(r) + e_r)) / n + gamma(n + 2, u) * loss
    delta = 2 * r / n
    return e_loss, delta, 2 * e_r / n + 4 * u * np.abs(delta)


def mae_bounds(on_logits, y, x, e_x, u, epsilon, e_y, x_numpy):
    n = x.shape[-2] * x.shape[-1]
    r = x - y
    e_r = e_x + e_y + u * np.abs(r)
    e_loss = _total(e_r) / n + gamma(n + 2, u) * _total(np.abs(r)) / n
    delta = np.sign(r) / n
    branch_numpy = None if x_numpy is None else np.sign(x_numpy - y)
    return e_loss, delta, np.where(kink_open(np.abs(r) <= e_r, np.sign(r), branch_numpy), 2.0 / n, u * np.abs(delta))


def _residuals_exact(x, y):
    return [[a - b for a, b in zip(xr, yr)] for xr, yr in zip(x, y)]


def mse_exact(on_logits, x, y):
    n, r = len(x) * len(x[0]), _residuals_exact(x, y)
    return sum(v * v for row in r for v in row) / n, [[2 * v / n for v in row] for row in r]


def mae_exact(on_logits, x, y):
    n, r = len(x) * len(x[0]), _residuals_exact(x, y)
    return sum(abs(v) for row in r for v in row) / n, [[mpmath.sign(v) / n for v in row] for row in r]


# --- binary cross-entropy: on logits (sigmoid's), or on probabilities clipped to [ε, 1 − ε] ------------
def binary_bounds(on_logits, y, x, e_x, u, epsilon, e_y, x_numpy):
    T = TRANSCENDENTAL * u
    n = x.shape[-2] * x.shape[-1]
    if on_logits:
        e = np.exp(-np.abs(x))
        sigma = np.where(x >= 0, 1 / (1 + e), e / (1 + e))
        terms = np.abs(np.maximum(x, 0)) + np.abs(x * y) + np.log1p(e)
        e_loss = (_total(np.abs(sigma - y) * e_x + e_x ** 2 / 8 + np.abs(x) * e_y) / n
                  + gamma(n + 4, u) * _total(terms) / n + T * _total(np.log1p(e) + e) / n)
        delta = (sigma - y) / n
        e_delta = (sigmoid_range(x, e_x) * e_x + e_y + T * sigma + 2 * u * np.abs(sigma - y)) / n
        return e_loss, delta, e_delta
    lo, hi = epsilon, 1 - epsilon
    p = np.clip(x, lo, hi)
    inside = (x >= lo) & (x <= hi)
    edge = kink_open((np.abs(x - lo) <= e_x) | (np.abs(x - hi) <= e_x), inside,
                     None if x_numpy is None else (x_numpy >= lo) & (x_numpy <= hi))
    room_p, room_q = np.maximum(p - e_x, lo), np.maximum(1 - p - e_x, 1 - hi)
    delta = np.where(inside, (-y / p + (1 - y) / (1 - p)) / n, 0.0)
    e_delta = np.where(inside, (np.abs(y) / room_p ** 2 + np.abs(1 - y) / room_q ** 2) * e_x / n
                       + (1 / room_p + 1 / room_q) * e_y / n
                       + 4 * u * (np.abs(y / p) + np.abs((1 - y) / (1 - p))) / n, 0.0)
    e_delta = np.where(edge, np.abs(delta) + e_delta + (np.abs(y) / lo + np.abs(1 - y) / (1 - hi)) / n, e_delta)
    logs = np.abs(y * np.log(p)) + np.abs((1 - y) * np.log(1 - p))
    e_loss = (_total((np.abs(y) / room_p + np.abs(1 - y) / room_q) * e_x
                     + np.abs(np.log(p) - np.log(1 - p)) * e_y) / n
              + gamma(n + 4, u) * _total(logs) / n + (T + 2 * u) * _total(np.abs(y) + np.abs(1 - y)) / n)
    return e_loss, delta, e_delta


def binary_exact(on_logits, x, y):
    n, eps = len(x) * len(x[0]), mpmath.mpf(EPSILON)
    if on_logits:
        loss = sum(max(z, 0) - z * t + mpmath.log1p(mpmath.exp(-abs(z))) for xr, yr in zip(x, y) for z, t in zip(xr, yr))
        return loss / n, [[(1 / (1 + mpmath.exp(-z)) - t) / n for z, t in zip(xr, yr)] for xr, yr in zip(x, y)]
    loss, grad = 0, []
    for xr, yr in zip(x, y):
        grad.append([])
        for p, t in zip(xr, yr):
            pc = min(max(p, eps), 1 - eps)
            loss += -(t * mpmath.log(pc) + (1 - t) * mpmath.log(1 - pc))
            grad[-1].append((-t / pc + (1 - t) / (1 - pc)) / n if eps <= p <= 1 - eps else mpmath.mpf(0))
    return loss / n, grad


# --- categorical cross-entropy: mean over rows of Σ y·(−log q) ----------------------------------------
def categorical_bounds(on_logits, y, x, e_x, u, epsilon, e_y, x_numpy):
    T = TRANSCENDENTAL * u
    k, N = x.shape[-1], x.shape[-2]
    if on_logits:
        m = x.max(axis=-1, keepdims=True)
        lse = m + np.log(np.sum(np.exp(x - m), axis=-1, keepdims=True))
        sm = np.exp(x - lse)
        # computed as exp(x − lse) (numpy's usual form) the subtraction and lse itself round by u·(|x − lse| + |lse|),
        # a relative error of sm that large logits make visible (found by a review: logits near 1e4, 29.8 apart, gave
        # an sm of exactly 1.0 on one side and 1 − 1.2e-13 on the other, and the gradient (sm − y)/N a false alarm)
        e_sm = softmax_error(sm, e_x, u) + 2 * u * (np.abs(x - lse) + np.abs(lse)) * sm
        e_lse = e_x.max(axis=-1, keepdims=True) + (k + 2) * T * (np.abs(lse) + 1)
        e_loss = (_total(np.abs(y) * (e_lse + e_x) + np.abs(lse - x) * e_y)
                  + gamma(k + 2, u) * _total(np.abs(y) * (np.abs(lse) + np.abs(x)))) / N + gamma(N, u) * np.abs(
                      _total(y * (lse - x)) / N)
        delta = (sm - y) / N
        return e_loss, delta, (e_sm + e_y) / N + 2 * u * np.abs(delta)
    lo, hi = epsilon, 1 - epsilon
    s = x.sum(axis=-1, keepdims=True)
    e_s = e_x.sum(axis=-1, keepdims=True) + gamma(k, u) * np.abs(x).sum(axis=-1, keepdims=True)
    q = x / s
    e_q = quotient_gap(x, e_x, s, e_s) + u * np.abs(q)
    qc = np.clip(q, lo, hi)
    inside = (q >= lo) & (q <= hi)
    edge = (np.abs(q - lo) <= e_q) | (np.abs(q - hi) <= e_q)
    if x_numpy is not None:  # the numpy side's q, computed as Keras computes it (x / Σx)
        q_numpy = x_numpy / x_numpy.sum(axis=-1, keepdims=True)
        edge = kink_open(edge, inside, (q_numpy >= lo) & (q_numpy <= hi))
    room = np.maximum(qc - e_q, lo)
    g = np.where(inside, -y / qc / N, 0.0)
    e_g = np.where(inside, (np.abs(y) * e_q / room + e_y) / (N * qc) + 2 * u * np.abs(g), 0.0)
    e_g = np.where(edge, np.abs(g) + e_g + np.abs(y) / (N * lo), e_g)
    t = np.sum(g * q, axis=-1, keepdims=True)
    e_t = (np.sum(e_g * (np.abs(q) + e_q) + np.abs(g) * e_q, axis=-1, keepdims=True)
           + gamma(k, u) * np.sum(np.abs(g * q), axis=-1, keepdims=True))
    delta = (g - t) / s
    e_delta = quotient_gap(g - t, e_g + e_t + u * np.abs(g - t), s, e_s) + u * np.abs(delta)
    e_loss = (_total(np.abs(y) * e_q / room + np.abs(np.log(qc)) * e_y)
              + gamma(k + 2, u) * _total(np.abs(y * np.log(qc))) + T * _total(np.abs(y))) / N
    return e_loss, delta, e_delta


def categorical_exact(on_logits, x, y):
    rows, eps = len(x), mpmath.mpf(EPSILON)
    loss, grad = 0, []
    for xr, yr in zip(x, y):
        if on_logits:
            m = max(xr)
            lse = m + mpmath.log(sum(mpmath.exp(v - m) for v in xr))
            loss += sum(t * (lse - v) for v, t in zip(xr, yr))
            grad.append([(mpmath.exp(v - lse) - t) / rows for v, t in zip(xr, yr)])
            continue
        s = sum(xr)
        q = [v / s for v in xr]
        qc = [min(max(v, eps), 1 - eps) for v in q]
        loss += -sum(t * mpmath.log(v) for t, v in zip(yr, qc))
        g = [-t / c / rows if eps <= v <= 1 - eps else mpmath.mpf(0) for t, v, c in zip(yr, q, qc)]
        gq = sum(a * b for a, b in zip(g, q))
        grad.append([(a - gq) / s for a in g])
    return loss / rows, grad


LOSSES = {
    "mse": {"options": REDUCTION_OPTIONS, "ranges": REDUCTION_RANGES, "terms": np.size, "bounds": mse_bounds,
            "exact": mse_exact},
    "mae": {"options": REDUCTION_OPTIONS, "ranges": REDUCTION_RANGES, "terms": np.size, "bounds": mae_bounds,
            "exact": mae_exact},
    "binary_crossentropy": {"options": CROSS_ENTROPY_OPTIONS, "ranges": CROSS_ENTROPY_RANGES, "terms": np.size,
                            "bounds": binary_bounds, "exact": binary_exact},
    "categorical_crossentropy": {"options": CROSS_ENTROPY_OPTIONS, "ranges": CROSS_ENTROPY_RANGES,
                                 "terms": lambda y: y.shape[0], "bounds": categorical_bounds,
                                 "exact": categorical_exact},
}


def get(name):
    """The rules of loss `name`; an InputError for an unknown one."""
    return lookup(LOSSES, "loss", name)


# --- a declared convention: Keras's loss times c = loss_scale × (N for reduction "sum") -----------------
def convention_factor(loss_config, loss_scale, rows):
    """c = loss_scale × REDUCTIONS[reduction](rows): Keras's loss (and δ) over the mean over `rows` rows."""
    return loss_scale * REDUCTIONS[loss_config.get("reduction", "sum_over_batch_size")](rows)


def scale_roundings(c, loss_scale, u):
    """The roundings c adds to each side's loss and δ: none where c is a power of two (exact), else one (the
    product c·L, and in autodiff c·δ where the upstream gradient was a power of two), plus one where
    loss_scale is not a number of the precision u (float32: 0.1) and Keras rounds it to that first."""
    inexact = float(np.frexp(c)[0]) != 0.5
    rounded = u > 2.0 ** -53 and float(np.float32(loss_scale)) != loss_scale
    return int(inexact) + int(rounded)


def scaled(c, roundings, u, e_loss, delta, e_delta, loss_value):
    """(E(cL), cδ, E(cδ)) from the bounds of the mean (E(L), δ, E(δ)), r = `roundings`:

        E(cL) = c·E(L) + r·u·|cL|,   E(cδ) = c·E(δ) + r·u·|cδ|

    c·E holds for "sum" too: Σ rows is the mean's own arithmetic less the division by N. loss_value: Keras's
    c·L (the reference magnitude), needed only where r > 0."""
    if roundings and loss_value is None:
        raise ValueError("the rounding of c·L needs the loss value (Keras's)")
    e_loss = c * e_loss + (roundings * u * np.abs(loss_value) if roundings else 0.0)
    delta = c * delta
    return e_loss, delta, c * e_delta + roundings * u * np.abs(delta)


def declared_convention(loss, loss_config, loss_scale):
    """The convention as the report gives it: {reduction, loss_scale, declared, text}."""
    reduction = loss_config.get("reduction", "sum_over_batch_size")
    declared = reduction != "sum_over_batch_size" or loss_scale != 1.0
    return {"reduction": reduction, "loss_scale": loss_scale, "declared": declared,
            "text": f"loss: {loss}, reduction {reduction}, × {loss_scale:g} ({'declared' if declared else 'default'})"}
