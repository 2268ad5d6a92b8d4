"""The standard rounding-error rules every bound is built from (Higham, *Accuracy and Stability of
Numerical Algorithms*, ch. 3):

    sum or dot product of n terms   |error| ≤ γ_n · Σ|terms|,  γ_n = n·u / (1 − n·u)
    one rounded operation           |error| ≤ u·|result|
    exp, log, tanh, sigmoid         |error| ≤ 8 ulp ≤ 16·u·|result| (TensorFlow: ≤ 6 ulp, measured)
    a result below the smallest normal number   |error| ≤ that number (subnormal, or flushed to 0)

u is the unit roundoff (2⁻⁵³ in float64, 2⁻²⁴ in float32).
"""
import numpy as np

UNIT_ROUNDOFF = {"float64": 2.0 ** -53, "float32": 2.0 ** -24}

# Allowed error of one side's exp, log, log1p, tanh or sigmoid, in units of u·|result|.
TRANSCENDENTAL = 16.0


# The tolerance of a bound that overflowed: it allows anything, so a check that meets it can vouch for nothing
# there ("inconclusive", compare/layer_check.py), and, unlike inf or NaN, it fails no element by itself.
UNBOUNDED = float(np.finfo(np.float64).max)


def underflow(u):
    """The smallest normal number of the precision whose unit roundoff is u: below it a result may be
    subnormal (relative error unbounded) or flushed to zero, an absolute error of at most this much."""
    return float(np.finfo(np.float32 if u >= UNIT_ROUNDOFF["float32"] else np.float64).tiny)


def gamma(n, u):
    """γ_n = n·u / (1 − n·u): the relative error bound of a sum of n terms."""
    return n * u / (1 - n * u)


def sqrt_gap(x, d):
    """max |√x' − √x| over |x' − x| ≤ d: √(x + d) − √max(x − d, 0), without cancellation."""
    x = np.abs(x)
    hi, lo = np.sqrt(x + d), np.sqrt(np.maximum(x - d, 0))
    return np.where(x >= d, 2 * d / np.maximum(hi + lo, np.finfo(float).tiny), hi)


def quotient_gap(x, dx, y, dy):
    """max |x'/y' − x/y| over |x' − x| ≤ dx, |y' − y| ≤ dy, for y > dy ≥ 0 (else inf)."""
    room = np.abs(y) - dy
    return np.where(room > 0, (dx + np.abs(x / y) * dy) / np.where(room > 0, room, 1), np.inf)
