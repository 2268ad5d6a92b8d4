"""Name the likely cause when one side's numbers are a constant multiple of the other's."""
import numpy as np

from .names import weight_names

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


def gradient_causes(r, n, loss="mse"):
    """Known explanations of gradients r × Keras's for a loss averaged over n terms, as (factor, text) pairs."""
    scales = [(1.0, None),
              (float(n), "the 1/N of the mean is missing (the loss is summed, not averaged)"),
              (1 / n, "the mean is taken twice (an extra 1/N)")]
    if loss == "mse":
        scales[1:1] = [(n / 2, "the 2/N of mean squared error is missing")]
        scales += [(0.5, "the factor 2 of the square is missing (a ½ in the loss)"),
                   (2.0, "there is an extra factor 2")]
    found = []
    for sign in (1, -1):
        for scale, text in scales:
            if abs(r - sign * scale) <= 1e-4 * scale:
                parts = (["the sign is flipped (the update climbs the loss)"] if sign < 0 else []) + ([text] if text else [])
                if parts:
                    found.append((sign * scale, " and ".join(parts)))
    return found


def diagnose_gradients(mine, ref, tol, n, rows, loss="mse"):
    """A sentence for gradients that are a constant multiple of Keras's, overall or per tensor; else None.

    n is the number of loss terms averaged (rows × outputs, or rows for categorical cross-entropy),
    rows the batch size.
    """
    r = constant_ratio(mine, ref, tol)
    if r is not None and abs(r - 1) > 1e-4:
        causes = gradient_causes(r, n, loss)
        if causes:
            return f"gradients are {fmt(causes[0][0])} × Keras's: " + " or ".join(text for _, text in causes)
        return (f"gradients are {fmt(r)} × Keras's: a constant factor that matches no known cause "
                "(sign, 1/N, ½, 2/N)")
    return _per_tensor("gradient", mine, ref, tol, rows)


def diagnose_update(before, mine, ref, tol, learning_rate, casts=()):
    """A sentence for updates w' − w that are a constant multiple of Keras's, or tensors left unchanged.

    `casts` are notes on hyper-parameters Keras rounds through float32, the usual cause of a small
    update mismatch with a stateful optimizer.
    """
    text = _update_ratio(before, mine, ref, tol, learning_rate)
    if casts:
        text = "; ".join(([text] if text else []) + list(casts))
    return text


def _update_ratio(before, mine, ref, tol, learning_rate):
    steps_mine = [m - b for m, b in zip(mine, before)]
    steps_ref = [k - b for k, b in zip(ref, before)]
    r = constant_ratio(steps_mine, steps_ref, tol)
    if r is not None and abs(r - 1) > 1e-15:
        return (f"updates are {fmt(r)} × Keras's: the learning rate in effect is {fmt(r * learning_rate)}, "
                f"not the declared {fmt(learning_rate)}")
    return _per_tensor("update", steps_mine, steps_ref, tol)


def _per_tensor(what, mine, ref, tol, rows=None):
    """'db0 is 0.333333 × Keras's' for each differing tensor, when every differing tensor has a constant ratio."""
    names = weight_names(len(mine), "d" if what == "gradient" else "")
    notes = []
    for name, m, k, t in zip(names, mine, ref, tol):
        if np.all(np.abs(m - k) <= t):
            continue
        r = constant_ratio([m], [k], [t])
        if r is None:
            return None
        if what == "update" and r == 0:
            notes.append(f"{name} is never updated")
        elif name.startswith("db") and rows and abs(r * rows - 1) <= 1e-6:
            notes.append(f"{name} is 1/{rows} × Keras's (the bias gradient is averaged over the batch, not summed)")
        else:
            notes.append(f"{name} is {fmt(r)} × Keras's")
    if not notes:
        return None
    return "; ".join(notes) + ("; the other updates agree" if what == "update" else "; the other gradients agree")
