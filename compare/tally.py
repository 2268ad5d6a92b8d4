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
        self.causes, self.tensors, self.location = [], None, None  # set by Stepper.explain



def summarize(mine, ref, tol, picks=False):
    """Per step of stacked tensors (K, ...): the largest |diff|, the tolerance at that element, the
    largest diff/tolerance, and whether a value is not finite.

    `tol` has mine's shape, or a leading axis of 1 and ones elsewhere, or none (a scalar). Few
    passes over each tensor: |diff| (NaN or Inf on either side makes its largest value non-finite),
    its argmax, and diff/tolerance. Where |diff| is 0 everywhere the tolerance reported is the
    tensor's largest. A tolerance of 0 against a non-zero diff gives the ratio inf. A tolerance that
    is not a finite number ≥ 0 (NaN, inf, negative) anywhere in a step makes that step's ratio NaN,
    which `failing` counts as a failure: the check could not bound that element, so it cannot pass it.

    picks=True adds a fifth array, (K, 2, 4): for the element of the largest |diff| ([:, 0]) and the
    element of the largest diff/tolerance ([:, 1]), its flat index, numpy value, Keras value and
    tolerance, so that a report can name one element and show its own numbers.
    """
    K = mine.shape[0]
    zeros = np.zeros(K)
    if mine.size == 0:
        return (zeros, zeros, zeros, np.zeros(K, bool)) + ((np.zeros((K, 2, 4)),) if picks else ())
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
        at_ratio = largest
        if zero.any():
            tol = np.asarray(tol)
            per_step = tol.reshape(tol.shape[0], -1) if tol.ndim else tol.reshape(1, 1)
            at_tmax = per_step.argmax(axis=1)
            tmax = per_step[np.arange(len(per_step)), at_tmax]
            tol_at = np.where(zero, np.broadcast_to(tmax, (K,)), tol_at)
            if per_step.shape[1] == flat.shape[1]:  # a tolerance per element: the largest is one of them
                largest = np.where(zero, np.broadcast_to(at_tmax, (K,)), largest)
            if zero.all():  # bit-identical (the usual case for the entering weights): nothing to rank
                rmax = np.where(unbounded(tol, K), np.nan, zeros)
                out = dmax, tol_at, rmax, np.zeros(K, bool)
                return out + ((_picks(mine, ref, t, rows, largest, largest),) if picks else ())
        low, bad = tolerance_range(tol, K)
        np.divide(diff, t, out=diff)  # diff/tolerance in place (`flat` views it): 0/0 is NaN, nothing to rank
        if not np.all(low > 0):  # a tolerance of 0 somewhere: 0/0 there (else NaN only with a non-finite value)
            np.nan_to_num(flat, copy=False, nan=0.0, posinf=np.inf, neginf=-np.inf)
        at_ratio = flat.argmax(axis=1)
        rmax = np.where(zero, 0.0, flat[rows, at_ratio])
        at_ratio = np.where(zero, largest, at_ratio)
        rmax = np.where(bad, np.nan, rmax)
    out = dmax, tol_at, rmax, ~np.isfinite(dmax)
    return out + ((_picks(mine, ref, t, rows, largest, at_ratio),) if picks else ())


def _picks(mine, ref, t, rows, at_diff, at_ratio):
    """(K, 2, 4): flat index, numpy value, Keras value and tolerance of two elements per step."""
    out = np.empty((len(rows), 2, 4))
    for i, at in enumerate((at_diff, at_ratio)):
        where = (rows,) + np.unravel_index(at, t.shape[1:]) if t.ndim > 1 else rows  # no copy of a view
        out[:, i] = np.stack([at, mine[where], ref[where], t[where]], axis=1)
    return out


def unbounded(tol, K):
    """Per step of a stacked tolerance (or one for all K steps): whether any element is not a finite
    number ≥ 0. Two reductions: the largest value is NaN or inf, or the smallest is below 0."""
    return tolerance_range(tol, K)[1]


def tolerance_range(tol, K):
    """(the smallest tolerance, whether any is not a finite number ≥ 0), per step of a stacked tolerance (or one
    for all K steps): two reductions, the largest value NaN or inf, or the smallest below 0 (or NaN)."""
    t = np.asarray(tol)
    if t.ndim == 0:
        return np.broadcast_to(t, (K,)), np.broadcast_to(~(np.isfinite(t) & (t >= 0)), (K,))
    flat = t.reshape(t.shape[0], -1)
    low = flat.min(axis=1)
    return np.broadcast_to(low, (K,)), np.broadcast_to(~(np.isfinite(flat.max(axis=1)) & (low >= 0)), (K,))


def failing(rmax, nonfinite):
    """Where a summary fails: a non-finite value, an element without a bound (rmax NaN), or
    diff/tolerance above 1 (+ the tolerances' own rounding)."""
    return nonfinite | ~(rmax <= 1 + TOLERANCE_EVALUATION)


class Tally:
    """Per quantity over the run, two elements, each with its own numbers: the one with the largest
    |diff| and the one with the largest diff/tolerance (with its step, tensor and index); and, if
    asked, per step the largest |diff| with the tolerance at that element, and the largest ratio.

    Per step it keeps one summary per quantity, never the tensors, so memory grows by a few floats a
    step. Ties go to the first in the order of comparison: by step, then entering weights before
    updated ones, then tensor by tensor. A quantity never compared keeps None (`compared` False).
    """

    def __init__(self, history=False):
        self.overall = {q: {"abs_diff": None, "tolerance_ratio": None, "tolerance": None, "step": None, "name": None,
                            "compared": False, "largest_abs_diff": None, "largest_ratio": None} for q in QUANTITIES}
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
        """Fold in whole steps at once: summaries[q] = (tensors, dmax, tol_at, rmax, picks), each array
        (K, tensors, ...) with the tensors of a step in comparison order, and `tensors` their
        (name, phase, shape). Same result as comparing step by step."""
        for q, (tensors, dmax, tol_at, rmax, picks) in summaries.items():
            self._overall(q, first_step, tensors, dmax, tol_at, rmax, picks)
            if self.history is not None:
                rows = np.arange(dmax.shape[0])
                j = dmax.argmax(axis=1)
                self.history[q]["abs_diff"] += dmax[rows, j].tolist()
                self.history[q]["tolerance"] += tol_at[rows, j].tolist()
                self.history[q]["tolerance_ratio"] += rmax.max(axis=1).tolist()
        if self.history is not None:
            self.history["loss_numpy"] += np.asarray(loss_numpy, dtype=float).tolist()
            self.history["loss_keras"] += np.asarray(loss_keras, dtype=float).tolist()

    def _overall(self, quantity, first_step, tensors, dmax, tol_at, rmax, picks):
        if dmax.size == 0:
            return
        s = self.overall[quantity]
        k, j = np.unravel_index(int(dmax.argmax()), dmax.shape)  # the first largest, in comparison order
        if not s["compared"] or dmax[k, j] > s["abs_diff"]:
            s.update(abs_diff=float(dmax[k, j]), tolerance=float(tol_at[k, j]),
                     largest_abs_diff=element(first_step + k, quantity, tensors[j], picks[k, j, 0]))
        k, j = np.unravel_index(int(rmax.argmax()), rmax.shape)
        if not s["compared"] or rmax[k, j] > s["tolerance_ratio"]:
            s.update(tolerance_ratio=float(rmax[k, j]), step=int(first_step + k), name=tensors[j][0],
                     largest_ratio=element(first_step + k, quantity, tensors[j], picks[k, j, 1], float(rmax[k, j])))
        s["compared"] = True

    def compare(self, step, quantity, phase, names, mine, ref, tol):
        """Compare one step's tensors in order; update the maxima; raise Stop at the worst element of
        the first tensor that is not finite or outside its tolerance."""
        mine, ref = ([np.asarray(a, dtype=np.float64) for a in side] for side in (mine, ref))
        stats = [summarize(m[None], k[None], np.asarray(t, dtype=np.float64)[None], picks=True)
                 for m, k, t in zip(mine, ref, tol)]
        bad = [bool(failing(s[2], s[3])[0]) for s in stats]
        upto = bad.index(True) + 1 if any(bad) else len(stats)
        if any(bad) and (stats[upto - 1][3][0] or np.isnan(stats[upto - 1][2][0])):
            upto -= 1  # a non-finite value or an unbounded element is reported before it is ranked
        dmax, tol_at, rmax, picks = (np.array([[s[i][0] for s in stats[:upto]]]) for i in (0, 1, 2, 4))
        tensors = [(n, phase, m.shape) for n, m in zip(names, mine)]
        if upto:
            self._overall(quantity, step, tensors, dmax, tol_at, rmax, picks)
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
        """Raise Stop for the tensor `name`: its worst element, where NaN or Inf first appeared, or, where
        both sides went non-finite alike and every other element agrees, a divergence of both."""
        m, k, t = np.asarray(m, dtype=np.float64), np.asarray(k, dtype=np.float64), np.asarray(t)
        where = {"step": step, "quantity": quantity, "name": name}
        if phase:
            where["phase"] = phase
        self._keep_values(where, m, k, t)
        finite_m, finite_k = np.isfinite(m), np.isfinite(k)
        alike = None  # where both sides are finite, when their non-finite values are the same ones
        if not (finite_m.all() and finite_k.all()):
            if not diverged_alike(m, k, finite_m, finite_k):
                raise nonfinite_stop(where, m, k, finite_m, finite_k)
            alike = finite_m
            m_all, k_all = m, k
            m, k = np.where(alike, m, 0.0), np.where(alike, k, 0.0)  # compared: the finite elements
            t = np.where(alike, np.broadcast_to(t, m.shape), 0.0)
        diff = np.abs(m - k)
        t = np.broadcast_to(t, diff.shape)
        if not (np.all(np.isfinite(t)) and np.all(t >= 0)):
            raise unbounded_stop(where, m, k, diff, t)
        t = np.broadcast_to(t, diff.shape) * (1 + TOLERANCE_EVALUATION)
        bad = diff > t
        if alike is not None and not bad.any():
            raise diverged_stop(where, m_all, k_all, finite_m)
        with np.errstate(over="ignore"):
            ratio = np.where(diff == 0, 0.0, np.where(t > 0, diff / np.where(t > 0, t, 1.0), np.inf))
        worst = np.unravel_index(int(np.argmax(ratio)), diff.shape)
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

    def _keep_values(self, where, m, k, t):
        """With a history: the failing tensor's elements, both sides and the tolerance (for the plot of
        an early mismatch); of a large tensor the KEPT elements furthest outside their tolerance."""
        if self.history is None:
            return
        t = np.broadcast_to(t, m.shape).astype(np.float64)
        with np.errstate(all="ignore"):
            ratio = np.nan_to_num(np.abs(m - k) / t, nan=np.inf).ravel()
        keep = np.arange(m.size) if m.size <= KEPT else np.sort(np.argpartition(-ratio, KEPT - 1)[:KEPT])
        self.history["failing_tensor"] = dict(
            where, shape=list(m.shape), index=keep.tolist(), numpy=m.ravel()[keep].tolist(),
            keras=k.ravel()[keep].tolist(), tolerance=t.ravel()[keep].tolist())


# The failing tensor's elements a history keeps (for the plot): all of a small tensor, else these many.
KEPT = 2000


def element(step, quantity, tensor, pick, ratio=None):
    """One compared element, with its own numbers: step, quantity, tensor (and phase), index, both
    sides' values, |diff|, tolerance and diff/tolerance. pick: (flat index, numpy, Keras, tolerance)."""
    name, phase, shape = tensor
    index, m, k, t = (float(v) for v in pick)
    d = abs(m - k)
    if ratio is None:
        ratio = 0.0 if d == 0 else (d / t if t > 0 else float("inf"))
    out = {"step": int(step), "quantity": quantity, "name": name}
    if phase:
        out["phase"] = phase
    return dict(out, index=[int(i) for i in np.unravel_index(int(index), shape)], numpy=_num(m), keras=_num(k),
                abs_diff=_num(d), tolerance=_num(t), ratio=_num(ratio))


def diverged_alike(m, k, finite_m, finite_k):
    """Whether both sides' non-finite values are the same ones: at the same elements, NaN against NaN
    and an infinity against the same infinity."""
    if finite_m.all() or not np.array_equal(finite_m, finite_k):
        return False
    a, b = m[~finite_m], k[~finite_k]
    return bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))


def diverged_stop(where, m, k, finite):
    """A Stop for a tensor where both sides went non-finite alike and every other element agrees."""
    i = tuple(int(j) for j in np.argwhere(~finite)[0])
    nonfinite = dict(where, side="both", alike=True, index=list(i), value=str(m[i]))
    cause = ("the configuration cannot be evaluated in floating point from the first step" if where["step"] == 0
             else "training diverged on both sides alike; a smaller learning rate may help")
    same = f", at the same {int((~finite).sum())} of {m.size} elements" if m.size > 1 else ""
    text = (f"both sides produced non-finite values first at {place_of(where, i)} ({m[i]} in numpy, {k[i]} in "
            f"Keras){same}, and every element compared up to there agrees: {cause}")
    return Stop(nonfinite=nonfinite, diagnosis=text)


def place_of(where, index):
    """'step 3, gradient dW0[0, 1]', 'step 87, loss': where an element is, for a sentence."""
    tensor = where["name"] if where["name"] == where["quantity"] else f"{where['quantity']} {where['name']}"
    return f"step {where['step']}, {tensor}{list(index) if len(index) else ''}"


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
    """A Stop for the step, side and quantity where NaN or Inf first appeared, on one side or not alike on
    both: a mismatch, with the element where the sides differ."""
    side = "both" if not finite_m.all() and not finite_k.all() else ("numpy" if not finite_m.all() else "keras")
    bad = ~finite_m if side != "keras" else ~finite_k
    i = tuple(int(j) for j in np.argwhere(bad)[0])
    value = m[i] if side != "keras" else k[i]
    nonfinite = dict(where, side=side, index=list(i), value=str(value))
    place = place_of(where, i)
    if side == "both":  # but not alike (diverged_alike): where they first differ is a mismatch
        differ = ~((m == k) | (np.isnan(m) & np.isnan(k)))
        j = tuple(int(x) for x in np.argwhere(differ)[0])
        mismatch = dict(where, index=list(j), numpy=_num(m[j]), keras=_num(k[j]), abs_diff=_num(abs(m[j] - k[j])),
                        rel_diff=None, tolerance=None, mismatched=int(np.sum(differ & ~(finite_m & finite_k))),
                        elements=int(m.size))
        text = (f"both sides produced non-finite values first at {place} ({m[i]} in numpy, {k[i]} in Keras), but "
                f"not alike: at {where['name']}{list(j)} numpy has {m[j]} and Keras {k[j]}, so it is not only "
                "training that diverged")
        return Stop(mismatch=mismatch, nonfinite=nonfinite, diagnosis=text)
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


