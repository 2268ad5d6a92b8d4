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
    finite = keras.size == 0 or np.isfinite(tol).all()
    lowest = tol.min() if keras.size else 0.0
    with np.errstate(all="ignore"):
        diff = np.subtract(mine, keras)
        np.abs(diff, out=diff)
        if lowest > 0:  # every bound of the check has a floor: no 0/0
            ratio = np.divide(diff, tol, out=diff)  # diff is ours: one array for both
        else:  # 0 where equal, inf where not at tolerance 0
            ratio = np.divide(diff, tol, out=np.zeros_like(diff), where=diff != 0)
        # a NaN on either side, or beyond the tolerance
        mismatched = ratio.size - int(np.count_nonzero(ratio <= 1 + TOLERANCE_EVALUATION))
        if not (finite and lowest >= 0):  # a tolerance that is NaN, inf or negative: nothing passes
            mismatched = ratio.size
            ratio[...] = np.inf
    result = {"quantity": quantity, "name": name, "size": int(keras.size), "mismatched": mismatched,
              "largest_tolerance": float(tol.max()) if keras.size and finite else None,
              "largest_value": float(max(keras.max(), -keras.min())) + 0.0 if keras.size else 0.0}  # no −0.0
    if keras.size == 0:
        return {**result, "largest_ratio": 0.0}
    at = np.unravel_index(int(np.argmax(ratio)), keras.shape)  # a NaN ranks first
    largest = float(ratio[at])
    return {**result, "largest_ratio": np.inf if largest != largest else largest, "index": [int(i) for i in at],
            "numpy": float(mine[at]), "keras": float(keras[at]), "abs_diff": float(abs(mine[at] - keras[at])),
            "tolerance": float(tol[at])}


def shape_mismatch(quantity, name, mine, keras):
    """The result for a numpy array whose shape is not Keras's, or None when the shapes agree."""
    if mine is not None and np.shape(mine) == np.shape(keras):
        return None
    return {"quantity": quantity, "name": name, "size": int(np.size(keras)), "mismatched": int(np.size(keras)),
            "largest_ratio": float("inf"), "index": None, "numpy": None, "keras": None, "abs_diff": None,
            "tolerance": None, "numpy_shape": None if mine is None else list(np.shape(mine)),
            "keras_shape": list(np.shape(keras))}
