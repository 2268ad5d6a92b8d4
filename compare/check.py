"""Step a numpy network and Keras through training and compare every quantity at every step.

At each step, in this order: the weights entering the step, every layer's output, the loss,
every gradient, and the weights after the update. The first element outside its tolerance
stops the check. By default ("synced") Keras steps from the numpy side's weights each time, so
each comparison measures one step's arithmetic; "free-running" lets each side train on its own.
"""
import time

import numpy as np

from . import data, diagnose, protocol, tolerance
from .errors import InputError

UNIT_ROUNDOFF = {np.dtype("float64"): 2.0 ** -53}


class _Stop(Exception):
    """Raised inside the loop at the first mismatch or non-finite value."""

    def __init__(self, mismatch=None, nonfinite=None, diagnosis=None):
        super().__init__()
        self.mismatch, self.nonfinite, self.diagnosis = mismatch, nonfinite, diagnosis


def check(network, X, y, steps=100, free_running=False):
    """Train `network` and Keras side by side for `steps` steps; return the report as a dict.

    `network` follows the plug-in protocol (README). Raises InputError on bad input or a broken
    protocol; a numerical mismatch is not an exception but `report["ok"] is False`.
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps <= 0:
        raise InputError(f"steps must be an integer > 0; received {steps!r}")
    t0 = time.perf_counter()
    X, y, notes = data.checked(X, y)
    sizes, activations, lr = protocol.describe(network, X.shape[1], y.shape[1])
    keras_step = _keras_step(tuple(sizes), tuple(activations), lr)
    t_setup = time.perf_counter()

    names = diagnose.weight_names(2 * len(activations))
    shapes = [w.shape for w in protocol.weights_of(network, len(activations))]
    stats = {q: {"abs_diff": 0.0, "tolerance_ratio": 0.0, "step": None, "name": None}
             for q in ("weights", "forward", "loss", "gradient")}
    u = UNIT_ROUNDOFF[np.dtype("float64")]
    stop, checked = None, 0
    drift = {"max_abs": 0.0, "max_rel": 0.0, "step": None, "limit_rel": tolerance.DRIFT_LIMIT,
             "decorrelated_at": None}
    keras_weights, carried_tol = None, [np.zeros(s) for s in shapes]
    with np.errstate(all="ignore"):
        try:
            for step in range(steps):
                mine_w = protocol.weights_of(network, len(activations))
                ref = keras_step.step(keras_weights if free_running and step > 0 else mine_w, X, y)
                _compare(stats, step, "weights", "entering", names, mine_w, ref["weights_in"], carried_tol)
                gap = None
                if free_running:
                    gap = [np.abs(m - k) for m, k in zip(mine_w, ref["weights_in"])]
                    if _track_drift(drift, step, gap, ref["weights_in"]):
                        notes.append(f"free-running: the trajectories drifted {drift['max_rel']:.3g} apart "
                                     f"(relative) by step {step}, past the limit {tolerance.DRIFT_LIMIT:g} of the "
                                     "first-order tolerance; later steps were not compared (use the synced mode)")
                        break
                tol = tolerance.step_tolerances(ref["weights_in"], activations, X, y, ref["zs"],
                                                ref["activations"], u, gap)
                outputs = protocol.checked_list(protocol.call("network.forward(X)", network.forward, X),
                                                [a.shape for a in ref["activations"]], "network.forward(X)")
                _compare(stats, step, "forward", None, [f"a{l}" for l in range(len(outputs))],
                         outputs, ref["activations"], tol["forward"])
                loss, grads = protocol.checked_gradients(
                    protocol.call("network.gradients(X, y)", network.gradients, X, y), shapes)
                _compare(stats, step, "loss", None, ["loss"], [np.float64(loss)], [np.float64(ref["loss"])],
                         [np.float64(tol["loss"])])
                try:
                    _compare(stats, step, "gradient", None, ["d" + n for n in names], grads, ref["grads"],
                             tol["grads"])
                except _Stop as stop_:
                    if stop_.mismatch and not stop_.nonfinite:
                        stop_.diagnosis = diagnose.diagnose_gradients(grads, ref["grads"], tol["grads"],
                                                                      y.size, X.shape[0])
                    raise
                protocol.call("network.apply_gradients(grads)", network.apply_gradients, grads)
                after = protocol.weights_of(network, len(activations))
                update_tol = tolerance.update_tolerances(ref["weights_out"], ref["grads"], tol["grads"], lr, u, gap)
                try:
                    _compare(stats, step, "weights", "updated", names, after, ref["weights_out"], update_tol)
                except _Stop as stop_:
                    if stop_.mismatch and not stop_.nonfinite:
                        stop_.diagnosis = diagnose.diagnose_update(mine_w, after, ref["weights_out"], update_tol, lr)
                    raise
                checked = step + 1
                if free_running:
                    keras_weights, carried_tol = ref["weights_out"], update_tol
        except _Stop as s:
            stop, checked = s, step + 1
    t_end = time.perf_counter()
    report = {
        "ok": stop is None,
        "steps_checked": checked,
        "steps_requested": int(steps),
        "mode": "free-running" if free_running else "synced",
        "network": {"layers": sizes, "activations": activations, "learning_rate": lr,
                    "parameters": int(sum(np.prod(s) for s in shapes)), "type": type(network).__name__},
        "data": {"rows": int(X.shape[0]), "inputs": int(X.shape[1]), "outputs": int(y.shape[1])},
        "notes": notes,
        "first_mismatch": stop.mismatch if stop else None,
        "nonfinite": stop.nonfinite if stop else None,
        "diagnosis": stop.diagnosis if stop else None,
        "max_diff": stats,
        "drift": drift if free_running else None,
        "tolerance": "per element: 2 x first-order rounding-error bound of the step (docs/tolerances.md)",
        "versions": _versions(),
        "timing": {"setup_s": t_setup - t0, "steps_s": t_end - t_setup, "total_s": t_end - t0},
    }
    return report


_KERAS_STEPS = {}


def _keras_step(sizes, activations, learning_rate):
    """A KerasStep for this architecture, built and traced once per process, set to `learning_rate`."""
    if (sizes, activations) not in _KERAS_STEPS:
        from keras_impl import KerasStep, build_model
        _KERAS_STEPS[sizes, activations] = KerasStep(build_model(sizes, activations), learning_rate)
    step = _KERAS_STEPS[sizes, activations]
    step.optimizer.learning_rate = learning_rate
    return step


def _track_drift(drift, step, gap, weights):
    """Record the largest weight gap; True once it passes DRIFT_LIMIT relative to the largest weight."""
    gap_max = max(float(g.max()) for g in gap)
    rel = gap_max / max(max(float(np.abs(w).max()) for w in weights), np.finfo(float).tiny)
    if gap_max > drift["max_abs"]:
        drift.update(max_abs=gap_max, max_rel=rel, step=step)
    if rel > tolerance.DRIFT_LIMIT:
        drift["decorrelated_at"] = step
        return True
    return False


def _compare(stats, step, quantity, phase, names, mine, ref, tol):
    """Update the per-quantity maxima; raise _Stop at the worst element of the first tensor that fails."""
    for name, m, k, t in zip(names, mine, ref, tol):
        m, k, t = np.asarray(m, dtype=np.float64), np.asarray(k, dtype=np.float64), np.asarray(t)
        where = {"step": step, "quantity": quantity, "name": name}
        if phase:
            where["phase"] = phase
        finite_m, finite_k = np.isfinite(m), np.isfinite(k)
        if not (finite_m.all() and finite_k.all()):
            raise _nonfinite(where, m, k, finite_m, finite_k)
        diff = np.abs(m - k)
        ratio = np.where(diff == 0, 0.0, diff / np.where(t > 0, t, np.finfo(float).tiny))
        s = stats[quantity]
        if diff.max() > s["abs_diff"]:
            s["abs_diff"] = float(diff.max())
        if ratio.max() > s["tolerance_ratio"] or s["step"] is None:
            s.update(tolerance_ratio=float(ratio.max()), step=step, name=name)
        if np.any(diff > t):
            i = np.unravel_index(int(np.argmax(ratio)), diff.shape)
            raise _Stop(mismatch=dict(where, index=[int(j) for j in i], numpy=float(m[i]), keras=float(k[i]),
                                      abs_diff=float(diff[i]),
                                      rel_diff=float(diff[i] / abs(k[i])) if k[i] != 0 else None,
                                      tolerance=float(t[i]), mismatched=int(np.sum(diff > t)),
                                      elements=int(diff.size)))


def _nonfinite(where, m, k, finite_m, finite_k):
    """The step, side and quantity where NaN or Inf first appeared, as a _Stop."""
    side = "both" if not finite_m.all() and not finite_k.all() else ("numpy" if not finite_m.all() else "keras")
    bad = ~finite_m if side != "keras" else ~finite_k
    i = tuple(int(j) for j in np.argwhere(bad)[0])
    value = m[i] if side != "keras" else k[i]
    nonfinite = dict(where, side=side, index=list(i), value=str(value))
    place = f"step {where['step']}, {where['quantity']} {where['name']}{list(i)}"
    if side == "both":
        text = (f"both sides produced non-finite values first at {place} ({m[i]} in numpy, {k[i]} in Keras): "
                "training diverged on both sides; a smaller learning rate may help")
        return _Stop(nonfinite=nonfinite, diagnosis=text)
    other = k[i] if side == "numpy" else m[i]
    mismatch = dict(where, index=list(i), numpy=_num(m[i]), keras=_num(k[i]), abs_diff=_num(abs(m[i] - k[i])),
                    rel_diff=None, tolerance=None, mismatched=int(np.sum(bad)), elements=int(m.size))
    text = (f"{side} produced {value} first, at {place}; "
            f"the {'Keras' if side == 'numpy' else 'numpy'} value there is {other}")
    return _Stop(mismatch=mismatch, nonfinite=nonfinite, diagnosis=text)


def _num(x):
    """A float for JSON, or its text ('nan', 'inf', '-inf') where JSON has no number for it."""
    x = float(x)
    return x if np.isfinite(x) else str(x)


def _versions():
    import keras
    import tensorflow as tf
    return {"keras": keras.__version__, "tensorflow": tf.__version__, "numpy": np.__version__}
