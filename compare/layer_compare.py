"""One quantity of a single-layer check: both sides' arrays compared element by element against a tolerance."""
import numpy as np

from .tally import TOLERANCE_EVALUATION


def compare(quantity, name, mine, keras, tol):
    """{quantity, name, size, mismatched, largest_ratio, and the element furthest outside (or nearest to)
    its tolerance: index, numpy, keras, abs_diff, tolerance}.

    An element mismatches when |numpy − keras| > tolerance·(1 + 1e-9), or either value is not finite, or its
    tolerance is not a finite number ≥ 0 (the check could not bound it: never a pass).
    """
    mine, keras = np.asarray(mine, dtype=np.float64), np.asarray(keras, dtype=np.float64)
    tol = np.broadcast_to(np.asarray(tol, dtype=np.float64), keras.shape)
    with np.errstate(all="ignore"):
        diff = np.abs(mine - keras)
        allowed = tol * (1 + TOLERANCE_EVALUATION)
        bad = ~(diff <= allowed) | ~np.isfinite(tol) | (tol < 0)
        ratio = np.where(diff == 0, 0.0, diff / tol)
        ratio = np.where(bad & ~(ratio > 1), np.inf, ratio)  # a non-finite value or tolerance ranks first
    result = {"quantity": quantity, "name": name, "size": int(keras.size), "mismatched": int(bad.sum())}
    if keras.size == 0:
        return {**result, "largest_ratio": 0.0}
    at = np.unravel_index(int(np.nanargmax(ratio)) if not np.isnan(ratio).all() else 0, keras.shape)
    return {**result, "largest_ratio": float(ratio[at]), "index": [int(i) for i in at], "numpy": float(mine[at]),
            "keras": float(keras[at]), "abs_diff": float(diff[at]), "tolerance": float(tol[at])}


def shape_mismatch(quantity, name, mine, keras):
    """The result for a numpy array whose shape is not Keras's, or None when the shapes agree."""
    if mine is not None and np.shape(mine) == np.shape(keras):
        return None
    return {"quantity": quantity, "name": name, "size": int(np.size(keras)), "mismatched": int(np.size(keras)),
            "largest_ratio": float("inf"), "index": None, "numpy": None, "keras": None, "abs_diff": None,
            "tolerance": None, "numpy_shape": None if mine is None else list(np.shape(mine)),
            "keras_shape": list(np.shape(keras))}
