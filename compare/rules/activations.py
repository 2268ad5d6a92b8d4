"""What compare knows about each activation: its rounding error, the range and error of its slope, how a
bound propagates through it, and its exact value in 50-digit arithmetic (the exact referee).

Each entry:
  forward_error  (z, out, e_z, u) → E(a): the error of a = f(z) given E(z); one side's own error of f is
                 `error` (z, a, u): 0 for an exact f; 16u·|a| for tanh and sigmoid (exp, tanh within 8
                 ulp, TensorFlow measured at ≤ 6)
  backward       (z, a, e_z, e_a, δ, E(δ), u, numpy_a) → (dz, E(dz)) for dz = dL/dz from δ = dL/da;
                 numpy_a, the numpy side's a, decides its branch at a kink (None: unknown)
  output_bound   (z, f, u, tiny) → E on |a − f(z)| between a value computed from z and f(z) recomputed
                 from it in float64 (golden files, the precision probe)
  exact          (z row of mpf) → a row, exactly;  exact_backward (z, a, da rows) → dz row, exactly
"""
import mpmath
import numpy as np

from ..rounding import TRANSCENDENTAL, gamma, underflow
from . import lookup


def kink_open(near, branch_keras, branch_numpy):
    """Where a bound must allow either side of a kink: within the error of the kink, and (when the
    numpy side's branch is known) where the two sides' branches differ."""
    return near if branch_numpy is None else near & (branch_keras != branch_numpy)


def elementwise(error, slope_range, slope_at, slope_error, exact, exact_slope, kink=None):
    """An entry for a = f(z) applied element by element; error(z, a, u) bounds one side's own error of f.

    forward:  E(a) = max|f'| over z ± E(z) · E(z) + error(z, a, u)
    backward: dz = f'(z) ⊙ δ, E(dz) = E(δ)·(|f'| + E(f')) + |δ|·E(f') + u·|dz|, with f' taken from the
    output as Keras's autodiff does. kink(z) is the branch of a derivative that jumps (relu′ at 0): where
    |z| ≤ E(z) and the two sides' branches differ, E(dz) opens to |δ| + E(δ) (kink_open).
    """
    def forward_error(z, out, e_z, u):
        return slope_range(z, e_z) * e_z + error(z, out, u)

    def backward(z, a, e_z, e_a, delta, e_delta, u, numpy_a=None):
        slope = np.abs(slope_at(z, a))
        e_slope = slope_error(a, e_a, u)
        dz = delta * slope
        e_dz = e_delta * (slope + e_slope) + np.abs(delta) * e_slope + u * np.abs(dz)
        if kink is not None:
            mine = None if numpy_a is None else kink(numpy_a)
            e_dz = np.where(kink_open(np.abs(z) <= e_z, kink(z), mine), np.abs(delta) + e_delta, e_dz)
        return dz, e_dz

    def output_bound(z, f, u, tiny):
        if error is _exact:  # exact, but for a subnormal z flushed to 0
            return np.where(np.abs(z) < tiny, np.abs(z), 0.0)
        return 2 * error(z, f, u) + tiny

    def exact_backward(z, a, da):
        return [d * exact_slope(zz, aa) for zz, aa, d in zip(z, a, da)]
    return {"forward_error": forward_error, "backward": backward, "output_bound": output_bound,
            "exact": lambda row: [exact(v) for v in row], "exact_backward": exact_backward}


# --- softmax: a row at a time ----------------------------------------------------------------------
def softmax_error(a, e_z, u):
    """E(softmax(z)) = a·(expm1(2·max_row E(z)) + (K + 4)·16u) + 2·tiny: a shift of each z_j by ≤ e changes a_j
    by ≤ a_j(e^{2e} − 1); e^{z_j − m} and the quotient below the smallest normal number (tiny) may each be
    subnormal or flushed to 0 (found as a false alarm: a correct relu-softmax network whose logits were ~400
    apart failed at step 9 on one element that was 0 on one side and not on the other)."""
    k = a.shape[-1]
    return a * (np.expm1(2 * e_z.max(axis=-1, keepdims=True)) + (k + 4) * TRANSCENDENTAL * u) + 2 * underflow(u)


def softmax_backward(z, a, e_z, e_a, delta, e_delta, u, numpy_a=None):
    """dz = a ⊙ (δ − Σδa), with E(dz) from E(a), E(δ) and the rounding of the sum and the products."""
    s = np.sum(delta * a, axis=-1, keepdims=True)
    e_s = (np.sum(e_delta * (np.abs(a) + e_a) + np.abs(delta) * e_a, axis=-1, keepdims=True)
           + gamma(a.shape[-1], u) * np.sum(np.abs(delta * a), axis=-1, keepdims=True))
    dz = a * (delta - s)
    e_dz = (e_a * (np.abs(delta - s) + e_delta + e_s) + np.abs(a) * (e_delta + e_s)
            + 2 * u * np.abs(a) * (np.abs(delta) + np.abs(s)))
    return dz, e_dz


def softmax_output_bound(z, f, u, tiny):
    """E = 2u·((K + 4)·16 + |z_j − max_k z_k| + K)·|f(z)_j| + tiny.

    a_j = e_j / Σ_k e_k, e_j = exp(z_j − m), m = max_k z_k: the rounded subtraction gives
    exp((z_j − m)(1 + δ)), |δ| ≤ u, a relative error ≤ u·|z_j − m| (first order) that grows with the
    gap to the row's maximum; in the sum it is Σ_k e_k·u|z_k − m| / Σ_k e_k ≤ u·K·max_{x≥0} x·e^{−x} ≤ u·K
    (Σ_k e_k ≥ 1, the maximum's own term). (K + 4)·16u covers the exponentials, the K − 1 additions and
    the division (as softmax_error). tiny, the smallest normal number: a result flushed to 0.
    """
    k = z.shape[-1]
    gap = np.abs(z - z.max(axis=-1, keepdims=True))
    return 2 * u * ((k + 4) * TRANSCENDENTAL + gap + k) * np.abs(f) + tiny


def softmax_exact(row):
    m = max(row)
    e = [mpmath.exp(v - m) for v in row]
    total = sum(e)  # once: per element it made a row of K cost K² (60 s for attention over 96 keys)
    return [v / total for v in e]


def softmax_exact_backward(z, a, da):
    s = sum(x * d for x, d in zip(a, da))
    return [x * (d - s) for x, d in zip(a, da)]


# --- the slopes of the elementwise activations -------------------------------------------------------
def _tanh_range(z, e_z):
    return 1 - np.tanh(np.maximum(np.abs(z) - e_z, 0)) ** 2


def sigmoid_range(z, e_z):
    """max |σ′| over z ± e_z: σ′(x) = t/(1 + t)², t = e^{−x}, at x = max(|z| − e_z, 0). (σ(x)(1 − σ(x))
    cancels to 0 past x ≈ 37, where σ(−x) ≈ e^{−x} still needs its relative error bounded.)"""
    t = np.exp(-np.maximum(np.abs(z) - e_z, 0))
    return t / (1 + t) ** 2


def _elu_range(z, e_z):
    """max |elu′| over z ± e: 1 where the interval reaches z ≥ 0, else exp(z + e) < 1."""
    return np.where(z + e_z >= 0, 1.0, np.exp(np.minimum(z + e_z, 0)))


def _elu_error(a, e_a, u):
    """elu′ = a + 1 for a < 0 (TensorFlow's EluGrad), computed with one rounding: E = E(a) + u·|a + 1|."""
    return np.where(a < 0, e_a + u * np.abs(a + 1), 0.0)


def _exact(z, a, u):
    """No error: linear and relu are exact."""
    return 0.0


def _transcendental(z, a, u):
    """exp, tanh, sigmoid: within 8 ulp, 16u·|a|; below the smallest normal number, within it (σ(z) for z
    below −708 is subnormal or 0)."""
    return TRANSCENDENTAL * u * np.abs(a) + underflow(u)


def _elu_own_error(z, a, u):
    """TensorFlow's elu is exp(z) − 1 for z < 0 (Eigen), not expm1: exp's 16u·e^z = 16u·(a + 1) is absolute
    after the cancellation, plus the subtraction's rounding u·|a|; exact for z > 0."""
    return np.where(a < 0, TRANSCENDENTAL * u * (a + 1) + u * np.abs(a), 0.0)


def _ones(z, *_):
    return np.ones_like(z)


def _zeros(a, *_):
    return np.zeros_like(a)


ACTIVATIONS = {
    "linear": elementwise(_exact, _ones, lambda z, a: np.ones_like(z), _zeros, lambda v: v, lambda z, a: mpmath.mpf(1)),
    "relu": elementwise(_exact, lambda z, e_z: (z > -e_z).astype(z.dtype), lambda z, a: (z > 0).astype(z.dtype), _zeros,
                        lambda v: v if v > 0 else mpmath.mpf(0),
                        lambda z, a: mpmath.mpf(1) if z > 0 else mpmath.mpf(0), kink=lambda v: v > 0),
    "tanh": elementwise(_transcendental, _tanh_range, lambda z, a: 1 - a * a,
                        lambda a, e_a, u: e_a * (2 * np.abs(a) + e_a) + 3 * u,
                        mpmath.tanh, lambda z, a: 1 - a * a),
    "sigmoid": elementwise(_transcendental, sigmoid_range, lambda z, a: a * (1 - a),
                           lambda a, e_a, u: e_a * (np.abs(1 - 2 * a) + e_a) + 3 * u * np.abs(a),
                           lambda v: 1 / (1 + mpmath.exp(-v)), lambda z, a: a * (1 - a)),
    "elu": elementwise(_elu_own_error, _elu_range, lambda z, a: np.where(a < 0, a + 1, 1.0), _elu_error,
                       lambda v: v if v > 0 else mpmath.expm1(v), lambda z, a: a + 1 if z <= 0 else mpmath.mpf(1)),
    "softmax": {"forward_error": lambda z, out, e_z, u: softmax_error(out, e_z, u),
                "backward": softmax_backward, "output_bound": softmax_output_bound, "exact": softmax_exact,
                "exact_backward": softmax_exact_backward},
}
LAST_LAYER_ONLY = ("softmax",)


def get(name):
    """The rules of activation `name`; an InputError for an unknown one."""
    return lookup(ACTIVATIONS, "activation", name)
