"""Element-wise comparison of the two sides' tensors, and the running tally of the largest differences."""
import numpy as np

QUANTITIES = ("weights", "forward", "loss", "gradient")
# The tolerances are themselves computed in float64, by up to a few hundred operations: a relative
# 1e-9 covers their own rounding, so a bound that is attained exactly cannot false-alarm.
TOLERANCE_EVALUATION = 1e-9


class Stop(Exception):
    """Raised inside the loop at the first mismatch or non-finite value."""

    def __init__(self, mismatch=None, nonfinite=None, diagnosis=None):
        super().__init__()
        self.mismatch, self.nonfinite, self.diagnosis = mismatch, nonfinite, diagnosis



class Tally:
    """The largest |diff| (with the tolerance at that element) and the largest diff/tolerance (with
    where it was) per quantity over the run, and, if asked, per step.

    Per step it keeps one summary per quantity (the largest |diff|, the tolerance at that element, and
    the largest diff/tolerance), never the tensors, so memory grows by a few floats a step.
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

    def compare(self, step, quantity, phase, names, mine, ref, tol):
        """Update the maxima; raise Stop at the worst element of the first tensor outside its tolerance.

        A few passes over each tensor: |diff|, its largest value (which is not finite when either side
        has NaN or Inf), and diff/tolerance; the element is located only when something is reported.
        """
        s = self.overall[quantity]
        here = self._step[quantity] if self._step is not None else None
        for name, m, k, t in zip(names, mine, ref, tol):
            if np.array_equal(m, k):  # bit-identical (the usual case for the entering weights): nothing to rank
                tol_max = float(np.max(t)) if np.size(t) else 0.0
                if s["tolerance"] is None:
                    s.update(tolerance=tol_max)
                if s["step"] is None:
                    s.update(step=step, name=name)
                if here is not None and here[0] == 0 and not here[2] >= 0:
                    here[2] = tol_max
                continue
            diff = np.abs(np.asarray(m, dtype=np.float64) - np.asarray(k, dtype=np.float64))
            largest = int(np.argmax(diff)) if diff.ndim else 0
            dmax = float(diff.flat[largest]) if diff.ndim else float(diff)
            if not np.isfinite(dmax) or np.isnan(diff).any():
                self._compare_one(step, quantity, phase, name, m, k, t)
            t = np.asarray(t, dtype=np.float64)
            if t.shape != diff.shape:
                t = np.broadcast_to(t, diff.shape)
            if dmax == 0:
                rmax, tol_at = 0.0, float(t.flat[0]) if t.size else 0.0
                worst_ratio = 0.0
            else:
                ratio = np.divide(diff, t, out=np.zeros_like(diff), where=diff > 0)
                with np.errstate(divide="ignore"):
                    ratio = np.where((diff > 0) & (t == 0), np.inf, ratio) if not np.all(t) else ratio
                worst_ratio = float(ratio.max())
                rmax, tol_at = worst_ratio, float(t.flat[largest])
            if dmax > s["abs_diff"] or s["tolerance"] is None:  # the largest |diff| and its tolerance
                s.update(abs_diff=dmax, tolerance=tol_at)
            if rmax > s["tolerance_ratio"] or s["step"] is None:  # the largest diff/tolerance, and where
                s.update(tolerance_ratio=rmax, step=step, name=name)
            if here is not None:  # per step: the largest |diff|, the tolerance at it, the largest ratio
                if dmax >= here[0]:
                    here[0], here[2] = dmax, tol_at
                here[1] = max(here[1], rmax)
            if worst_ratio > 1 + TOLERANCE_EVALUATION:
                self._compare_one(step, quantity, phase, name, m, k, t)

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
    text = (f"{side} produced {value} first, at {place}; "
            f"the {'Keras' if side == 'numpy' else 'numpy'} value there is {other}")
    return Stop(mismatch=mismatch, nonfinite=nonfinite, diagnosis=text)


def _num(x):
    """A float for JSON, or its text ('nan', 'inf', '-inf') where JSON has no number for it."""
    x = float(x)
    return x if np.isfinite(x) else str(x)


