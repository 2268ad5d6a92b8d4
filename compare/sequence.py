"""Free-running and golden mode: each step as it comes, since each needs the one before.

Free-running: each side trains on its own; Keras's next step starts from its own updated weights,
and the tolerances carry the measured gap between the two sides' weights (docs/tolerances.md).
Golden: the recorded step replaces Keras, and the numpy network is set to the recorded weights first.
"""
import numpy as np

from . import protocol
from .stepper import copies

# Free-running mode: the relative drift max|Δw| / max|w| past which the trajectories are declared
# decorrelated. Past it the tolerances, which grow with the drift, could no longer catch a learning
# rate off by 1e-7, so the check says so and stops comparing.
DRIFT_LIMIT = 1e-6


def new_drift():
    """The free-running drift record of a report: the largest gap, and where comparison stopped."""
    return {"max_abs": 0.0, "max_rel": 0.0, "step": None, "limit_rel": DRIFT_LIMIT, "decorrelated_at": None}


def step_by_step(stepper, keras_source, X, y, schedule, steps, progress, free_running, golden, drift, notes):
    """Compare `steps` steps in order; raise Stop at the first mismatch. keras_source: a KerasStep, or
    the golden file being played back. Free-running stops early (with a note) once `drift` passes DRIFT_LIMIT."""
    keras_weights, entering_tol = None, [np.zeros(s) for s in stepper.shapes]
    for step in range(steps):
        stepper.epoch, rows = next(schedule)
        Xb, yb = X[rows], y[rows]  # Keras's copies; the network gets its own
        if golden:  # the recorded step, and the numpy network put on its weights
            keras = keras_source.step(None, Xb, yb)
            # copies: a network may keep the arrays it is given and update them in place
            protocol.call("network.set_weights(weights)", stepper.network.set_weights, copies(keras["weights_in"]))
        numpy = stepper.numpy_step(X, y, rows)
        if "weights" not in numpy:
            raise numpy["error"]
        numpy_weights = numpy["weights"]
        if not golden:
            keras = keras_source.step(keras_weights if free_running and step > 0 else numpy_weights, Xb, yb)
        computed32 = stepper.computed == "float32"
        if computed32 and not free_running:  # Keras rounds the weights it is given to float32
            entering_tol = stepper.entering_tolerance(numpy_weights)
        stepper.compare_entering(step, Xb, yb, numpy_weights, keras, entering_tol)
        input_gap = None
        if free_running:
            input_gap = [np.abs(m - k) for m, k in zip(numpy_weights, keras["weights_in"])]
            if track_drift(drift, step, input_gap, keras["weights_in"]):
                notes.append(f"free-running: the trajectories drifted {drift['max_rel']:.3g} apart "
                             f"(relative) by step {step}, past the limit {DRIFT_LIMIT:g}; "
                             "later steps were not compared (use the synced mode)")
                return
        if computed32:  # so their rounding is a gap between the two sides' inputs
            input_gap = [stepper.u * np.abs(w) + (0 if input_gap is None else g)
                         for w, g in zip(numpy_weights, input_gap or numpy_weights)]
        tol = stepper.tolerances(keras, Xb, yb, input_gap, numpy.get("forward"))
        stepper.compare_step(step, Xb, yb, numpy, keras, tol, entering_tol, entering=False)
        if progress:
            progress(stepper.checked, steps)
        if free_running:
            keras_weights, entering_tol = keras["weights_out"], tol["updated"]


def track_drift(drift, step, gap, weights):
    """Record the largest weight gap; True once it passes DRIFT_LIMIT relative to the largest weight."""
    gap_max = max(float(g.max()) for g in gap)
    rel = gap_max / max(max(float(np.abs(w).max()) for w in weights), np.finfo(float).tiny)
    if gap_max > drift["max_abs"]:
        drift.update(max_abs=gap_max, max_rel=rel, step=step)
    if rel > DRIFT_LIMIT:
        drift["decorrelated_at"] = step
        return True
    return False
