"""Numbers in diagnoses: a factor written as a person would, and a constant ratio between two sets of tensors."""
import numpy as np

MINUS = "\u2212"


def fmt(r):
    """The shortest decimal that gives r to 1e-9 relative, with a real minus sign: −1.5, 1.0000001."""
    for digits in range(1, 18):
        text = f"{r:.{digits}g}"
        if abs(float(text) - r) <= 1e-9 * abs(r):
            break
    return text.replace("-", MINUS)


def constant_ratio(mine, ref, tol):
    """r such that mine = r·ref in every element within the elements' own tolerance, else None.

    r is read off the element where ref stands furthest above its tolerance (at least 1,000 times),
    so r itself is uncertain by |r|/clear; every element must then satisfy
    |mine − r·ref| ≤ (|r| + 1)·tol + |r·ref|/clear.
    """
    mine, ref, tol = (np.concatenate([np.ravel(a) for a in arrays]) for arrays in (mine, ref, tol))
    if not (np.all(np.isfinite(mine)) and np.all(np.isfinite(ref))):
        return None
    clear = np.abs(ref) / np.maximum(tol, np.finfo(float).tiny)
    i = int(np.argmax(clear))
    if clear[i] < 1e3:
        return None
    r = mine[i] / ref[i]
    if np.all(np.abs(mine - r * ref) <= (abs(r) + 1) * tol + np.abs(r * ref) / clear[i]):
        return float(r)
    return None
