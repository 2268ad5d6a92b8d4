"""Element-wise comparison of the two sides' tensors, and the running tally of the largest differences."""
import numpy as np

from .names import QUANTITIES

# The tolerances are themselves computed in float64, by up to a few hundred operations: a relative
# 1e-9 covers their own rounding, so a bound that is attained exactly cannot false-alarm.
TOLERANCE_EVALUATION = 1e-9


class Stop(Exception):
    """Raised inside the loop at the first mismatch or non-finite value."""

    def __init__(self, mismatch=None, nonfinite=None, diagnosis=None):
        super().__init__()
        self.mismatch, self.nonfinite, self.diagnosis = mismatch, nonfinite, diagnosis



def summarize(mine, ref, tol):
    """Per step of stacked tensors (K, ...): the largest |diff|, the tolerance at that element, the
    largest diff/tolerance, and whether a value is not finite.

    `tol` has mine's shape, or a leading axis of 1 and ones elsewhere, or none (a scalar). Few
    passes over each tensor: |diff| (NaN or Inf on either side makes its largest value non-finite),
    its argmax, and diff/tolerance. Where |diff| is 0 everywhere the tolerance reported is the
    tensor's largest. A tolerance of 0 against a non-zero diff gives the ratio inf. A tolerance that
    is not a finite number ≥ 0 (NaN, inf, negative) anywhere in a step makes that step's ratio NaN,
    which `failing` counts as a failure: the check could not bound that element, so it cannot pass it.
    """
    K = mine.shape[0]
    zeros = np.zeros(K)
    if mine.size == 0:
        return zeros, zeros, zeros, np.zeros(K, bool)
    with np.errstate(all="ignore"):
        diff = np.subtract(mine, ref, order="C")  # C order: `flat` below is a view of it
        np.abs(diff, out=diff)
        flat = diff.reshape(K, -1)
        rows = np.arange(K)
        largest = flat.argmax(axis=1)
        dmax = flat[rows, largest]
        t = np.broadcast_to(tol, diff.shape)
        tol_at = t[(rows,) + np.unravel_index(largest, diff.shape[1:])] if diff.ndim > 1 else t.copy()
        zero = dmax == 0
        if zero.any():
            tol = np.asarray(tol)
            tmax = tol.reshape(tol.shape[0], -1).max(axis=1) if tol.ndim else tol.reshape(1)
            tol_at = np.where(zero, np.broadcast_to(tmax, (K,)), tol_at)
            if zero.all():  # bit-identical (the usual case for the entering weights): nothing to rank
                return dmax, tol_at, np.where(unbounded(tol, K), np.nan, zeros), np.zeros(K, bool)
        np.divide(diff, t, out=diff)  # diff/tolerance in place (`flat` views it): 0/0 is NaN, which fmax skips
        rmax = np.fmax.reduce(flat, axis=1)
        rmax = np.where(np.isnan(rmax) | zero, 0.0, rmax)
        rmax = np.where(unbounded(tol, K), np.nan, rmax)
    return dmax, tol_at, rmax, ~np.isfinite(dmax)


def unbounded(tol, K):
    """Per step of a stacked tolerance (or one for all K steps): whether any element is not a finite
    number ≥ 0. Two reductions: the largest value is NaN or inf, or the smallest is below 0."""
    t = np.asarray(tol)
    if t.ndim == 0:
        return np.broadcast_to(~(np.isfinite(t) & (t >= 0)), (K,))
    flat = t.reshape(t.shape[0], -1)
    return np.broadcast_to(~(np.isfinite(flat.max(axis=1)) & (flat.min(axis=1) >= 0)), (K,))


def failing(rmax, nonfinite):
    """Where a summary fails: a non-finite value, an element without a bound (rmax NaN), or
    diff/tolerance above 1 (+ the tolerances' own rounding)."""
    return nonfinite | ~(rmax <= 1 + TOLERANCE_EVALUATION)


class Tally:
    """The largest |diff| (with the tolerance at that element) and the largest diff/tolerance (with
    where it was) per quantity over the run, and, if asked, per step.

    Per step it keeps one summary per quantity (the largest |diff|, the tolerance at that element, and
    the largest diff/tolerance), never the tensors, so memory grows by a few floats a step. Ties go
    to the first in the order of comparison: by step, then entering weights before updated ones,
    then tensor by tensor.
    """

    def __init__(self, history=False):
        self.overall = {q: {"abs_diff": 0.0, "tolerance_ratio": 0.0, "tolerance": None, "step": None, "name": None}
                        for q in QUANTITIES}
        self.history = {q: {"abs_diff": [], "tolerance_ratio": [], "tolerance": []} for q in QUANTITIES} \
            if history else None
        if history:
            self.history.update(loss_numpy=[], loss_keras=[])
        self._step = None

    def begin_step(self):
        self._step = {q: [0.0, 0.0, np.nan] for q in QUANTITIES}

    def end_step(self, loss_numpy=np.nan, loss_keras=np.nan):
        if self.history is not None and self._step is not None:
            for q, (d, r, t) in self._step.items():
                self.history[q]["abs_diff"].append(d)
                self.history[q]["tolerance_ratio"].append(r)
                self.history[q]["tolerance"].append(t)
            self.history["loss_numpy"].append(float(loss_numpy))
            self.history["loss_keras"].append(float(loss_keras))
        self._step = None

    def add_steps(self, first_step, summaries, loss_numpy, loss_keras):
        """Fold in whole steps at once: summaries[q] = (names, dmax, tol_at, rmax), each (K, tensors),
        with the tensors of a step in comparison order. Same result as comparing step by step."""
        for q, (names, dmax, tol_at, rmax) in summaries.items():
            self._overall(q, first_step, names, dmax, tol_at, rmax)
            if self.history is not None:
                rows = np.arange(dmax.shape[0])
                j = dmax.argmax(axis=1)
                self.history[q]["abs_diff"] += dmax[rows, j].tolist()
                self.history[q]["tolerance"] += tol_at[rows, j].tolist()
                self.history[q]["tolerance_ratio"] += rmax.max(axis=1).tolist()
        if self.history is not None:
            self.history["loss_numpy"] += np.asarray(loss_numpy, dtype=float).tolist()
            self.history["loss_keras"] += np.asarray(loss_keras, dtype=float).tolist()

    def _overall(self, quantity, first_step, names, dmax, tol_at, rmax):
        if dmax.size == 0:
            return
        s = self.overall[quantity]
        k, j = np.unravel_index(int(dmax.argmax()), dmax.shape)  # the first largest, in comparison order
        if dmax[k, j] > s["abs_diff"] or s["tolerance"] is None:
            s.update(abs_diff=float(dmax[k, j]), tolerance=float(tol_at[k, j]))
        k, j = np.unravel_index(int(rmax.argmax()), rmax.shape)
        if rmax[k, j] > s["tolerance_ratio"] or s["step"] is None:
            s.update(tolerance_ratio=float(rmax[k, j]), step=int(first_step + k), name=names[j])

    def compare(self, step, quantity, phase, names, mine, ref, tol):
        """Compare one step's tensors in order; update the maxima; raise Stop at the worst element of
        the first tensor that is not finite or outside its tolerance."""
        stats = [summarize(np.asarray(m, dtype=np.float64)[None], np.asarray(k, dtype=np.float64)[None],
                           np.asarray(t, dtype=np.float64)[None]) for m, k, t in zip(mine, ref, tol)]
        bad = [bool(failing(r, n)[0]) for _, _, r, n in stats]
        upto = bad.index(True) + 1 if any(bad) else len(stats)
        if any(bad) and (stats[upto - 1][3][0] or np.isnan(stats[upto - 1][2][0])):
            upto -= 1  # a non-finite value or an unbounded element is reported before it is ranked
        dmax, tol_at, rmax = (np.array([[s[i][0] for s in stats[:upto]]]) for i in range(3))
        self._overall(quantity, step, names, dmax, tol_at, rmax)
        here = self._step[quantity] if self._step is not None else None
        if here is not None and upto:
            j = int(dmax[0].argmax())
            if dmax[0, j] > here[0] or not here[2] >= 0:
                here[0], here[2] = float(dmax[0, j]), float(tol_at[0, j])
            here[1] = max(here[1], float(rmax[0].max()))
        if any(bad):
            i = bad.index(True)
            self._compare_one(step, quantity, phase, names[i], mine[i], ref[i], tol[i])

    def _compare_one(self, step, quantity, phase, name, m, k, t):
        """Raise Stop for the tensor `name`: its worst element, or where NaN or Inf first appeared."""
        m, k, t = np.asarray(m, dtype=np.float64), np.asarray(k, dtype=np.float64), np.asarray(t)
        where = {"step": step, "quantity": quantity, "name": name}
        if phase:
            where["phase"] = phase
        finite_m, finite_k = np.isfinite(m), np.isfinite(k)
        if not (finite_m.all() and finite_k.all()):
            raise nonfinite_stop(where, m, k, finite_m, finite_k)
        diff = np.abs(m - k)
        t = np.broadcast_to(t, diff.shape)
        if not (np.all(np.isfinite(t)) and np.all(t >= 0)):
            raise unbounded_stop(where, m, k, diff, t)
        t = np.broadcast_to(t, diff.shape) * (1 + TOLERANCE_EVALUATION)
        ratio = np.where(diff == 0, 0.0, diff / np.where(t > 0, t, np.finfo(float).tiny))
        worst = np.unravel_index(int(np.argmax(ratio)), diff.shape)
        bad = diff > t
        rel = np.where(k != 0, diff / np.where(k != 0, np.abs(k), 1), np.where(diff > 0, np.inf, 0.0))
        i_abs = np.unravel_index(int(np.argmax(diff)), diff.shape)
        i_rel = np.unravel_index(int(np.argmax(rel)), diff.shape)
        raise Stop(mismatch=dict(
            where, index=[int(j) for j in worst], numpy=float(m[worst]), keras=float(k[worst]),
            abs_diff=float(diff[worst]), rel_diff=float(diff[worst] / abs(k[worst])) if k[worst] != 0 else None,
            tolerance=float(t[worst]), mismatched=int(np.sum(bad)), elements=int(diff.size),
            greatest_abs_diff={"value": float(diff[i_abs]), "index": [int(j) for j in i_abs],
                               "tolerance": float(t[i_abs])},
            greatest_rel_diff={"value": _num(rel[i_rel]), "index": [int(j) for j in i_rel]}))


def unbounded_stop(where, m, k, diff, t):
    """A Stop for a tensor whose tolerance is not a finite number ≥ 0 somewhere: the check failed there."""
    bad = ~(np.isfinite(t) & (t >= 0))
    i = tuple(int(j) for j in np.argwhere(bad)[0])
    mismatch = dict(where, index=list(i), numpy=float(m[i]), keras=float(k[i]), abs_diff=float(diff[i]),
                    rel_diff=None, tolerance=_num(t[i]), mismatched=int(bad.sum()), elements=int(diff.size),
                    unbounded=True)
    text = (f"the check could not bound {where['quantity']} {where['name']}{list(i)} at step {where['step']}: its "
            f"tolerance is {t[i]} ({int(bad.sum())} of {diff.size} elements), computed from Keras's values "
            "(or the golden file's) there; an element without a bound is a failure of the check, never a pass")
    return Stop(mismatch=mismatch, diagnosis=text)


def nonfinite_stop(where, m, k, finite_m, finite_k):
    """The step, side and quantity where NaN or Inf first appeared, as a _Stop."""
    side = "both" if not finite_m.all() and not finite_k.all() else ("numpy" if not finite_m.all() else "keras")
    bad = ~finite_m if side != "keras" else ~finite_k
    i = tuple(int(j) for j in np.argwhere(bad)[0])
    value = m[i] if side != "keras" else k[i]
    nonfinite = dict(where, side=side, index=list(i), value=str(value))
    place = f"step {where['step']}, {where['quantity']} {where['name']}{list(i)}"
    if side == "both":
        cause = ("the configuration cannot be evaluated in floating point from the first step" if where["step"] == 0
                 else "training diverged on both sides; a smaller learning rate may help")
        text = f"both sides produced non-finite values first at {place} ({m[i]} in numpy, {k[i]} in Keras): {cause}"
        return Stop(nonfinite=nonfinite, diagnosis=text)
    other = k[i] if side == "numpy" else m[i]
    mismatch = dict(where, index=list(i), numpy=_num(m[i]), keras=_num(k[i]), abs_diff=_num(abs(m[i] - k[i])),
                    rel_diff=None, tolerance=None, mismatched=int(np.sum(bad)), elements=int(m.size))
    text = (f"{'the numpy side' if side == 'numpy' else 'Keras'} alone produced {value} first, at {place}, where "
            f"{'Keras' if side == 'numpy' else 'the numpy side'} has {other}: the non-finite values start on the "
            f"{side} side only, so it is not training that diverged")
    return Stop(mismatch=mismatch, nonfinite=nonfinite, diagnosis=text)


def _num(x):
    """A float for JSON, or its text ('nan', 'inf', '-inf') where JSON has no number for it."""
    x = float(x)
    return x if np.isfinite(x) else str(x)


