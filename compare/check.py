"""Step a numpy network and Keras through training and compare every quantity at every step.

At each step, in this order: the weights entering the step, every layer's output, the loss,
every gradient, and the weights after the update. The first element outside its tolerance
stops the check. By default ("synced") Keras steps from the numpy side's weights each time, so
each comparison measures one step's arithmetic; "free-running" lets each side train on its own.
"""
import importlib.util
import json
import math
import os
import sys
import time

import numpy as np

from numpy_impl.losses import smooth_labels

from . import data, diagnose, notes as keras_notes, protocol, tolerance
from .tally import Stop as _Stop, Tally
from .errors import InputError
from .update_tolerance import UpdateTolerance

DTYPES = ("float64", "float32")
REFEREES = ("exact", "finite_differences")
BACKENDS = ("tensorflow", "jax", "torch")


def batches(n_rows, batch_size, seed):
    """Endless (epoch, row indices) per step: the rows in order for a full batch, else one seeded
    permutation per epoch (numpy's default_rng(seed)), cut into batches; both sides use the same."""
    rng = np.random.default_rng(seed)
    epoch = 0
    while True:
        if batch_size >= n_rows:
            yield epoch, np.arange(n_rows)
        else:
            order = rng.permutation(n_rows)
            for start in range(0, n_rows, batch_size):
                yield epoch, order[start:start + batch_size]
        epoch += 1


def check(network, X, y, steps=None, epochs=None, batch_size=None, seed=0, free_running=False, dtype="float64",
          referee=None, backend=None, history=False, progress=None, reference=None):
    """Train `network` and Keras side by side; return the report as a dict.

    `network` follows the plug-in protocol (README). `steps` (default 100) or `epochs` sets the
    length; `batch_size` (default: all rows) the mini-batches, drawn from one seeded permutation
    per epoch. Raises InputError on bad input or a broken protocol; a numerical mismatch is not an
    exception but `report["ok"] is False`. `referee` ("exact" or "finite_differences") judges the
    first mismatching step, or step 0 when all agree, against a third opinion (compare/referee.py).
    `backend` is Keras's: tensorflow (default), jax or torch; it must be chosen before Keras is imported.
    `history=True` adds per-step summaries (report["history"]); `progress(step, steps)` is called
    after each step. `reference` replaces live Keras with a recorded trajectory (compare.golden): the
    numpy network is then set to the recorded weights before each step, and Keras is never imported.
    """
    t0 = time.perf_counter()
    if dtype not in DTYPES:
        raise InputError(f"dtype must be one of {', '.join(DTYPES)}; received {dtype!r}")
    if referee is not None and referee not in REFEREES:
        raise InputError(f"unknown referee {referee!r}; expected one of {', '.join(REFEREES)}")
    backend = reference.backend if reference else use_backend(backend)
    X, y, notes = data.checked(X, y)
    spec = protocol.describe(network, X.shape[1], y.shape[1])
    if reference:
        steps, batch_size = steps or reference.config["steps"], reference.config["batch_size"]
        if steps > reference.config["steps"]:
            raise InputError(f"the golden file holds {reference.config['steps']} steps; received steps={steps}")
    batch_size = _positive("batch_size", batch_size, X.shape[0])
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be an integer ≥ 0; received {seed!r}")
    steps_per_epoch = math.ceil(X.shape[0] / batch_size)
    if steps is not None and epochs is not None:
        raise InputError(f"give steps or epochs, not both; received steps={steps!r}, epochs={epochs!r}")
    steps = _positive("epochs", epochs, None) * steps_per_epoch if epochs is not None else _positive("steps", steps, 100)
    if referee == "exact":
        from .exact import MAX_PARAMETERS
        params = sum(int(np.prod(w.shape)) for w in protocol.weights_of(network, len(spec["activations"])))
        if params > MAX_PARAMETERS:
            raise InputError(f"--referee exact handles up to {MAX_PARAMETERS} parameters; this network has "
                             f"{params}: use --referee finite_differences")
    notes += keras_notes.for_spec(spec, dtype, backend)
    keras_step = reference or _keras_step(spec, dtype)
    if reference:
        reference.reset(spec["learning_rate"])
    t_setup = time.perf_counter()

    u = tolerance.UNIT_ROUNDOFF[dtype]
    lr, n_layers = spec["learning_rate"], len(spec["activations"])
    loss_args = {"loss": spec["loss"], "loss_config": spec["loss_config"], "backend": backend}
    computed = None
    names = diagnose.weight_names(2 * n_layers)
    shapes = [w.shape for w in protocol.weights_of(network, n_layers)]
    update_tolerance = UpdateTolerance(spec["optimizer"], spec["optimizer_config"], lr, u)
    tally = Tally(history)
    stop, checked, epoch = None, 0, 0
    drift = {"max_abs": 0.0, "max_rel": 0.0, "step": None, "limit_rel": tolerance.DRIFT_LIMIT,
             "decorrelated_at": None}
    keras_weights, carried_tol = None, [np.zeros(s) for s in shapes]
    schedule = reference.schedule() if reference else batches(X.shape[0], batch_size, seed)
    first = current = None
    with np.errstate(all="ignore"):
        try:
            for step in range(steps):
                tally.begin_step()
                epoch, rows = next(schedule)
                Xb, yb = X[rows], y[rows]
                if reference:  # the recorded step, and the numpy network put on its weights
                    ref = keras_step.step(None, Xb, yb)
                    protocol.call("network.set_weights(weights)", network.set_weights, ref["weights_in"])
                mine_w = protocol.weights_of(network, n_layers)
                if not reference:
                    ref = keras_step.step(keras_weights if free_running and step > 0 else mine_w, Xb, yb)
                current = {"step": step, "X": Xb, "y": yb, "weights": mine_w, "ref": ref, "numpy": {}}
                first = first or current
                if computed is None:
                    computed = computed_dtype(ref, Xb, dtype)
                    if computed != dtype:
                        notes.append(f"Keras on {backend} computed in {computed} although {dtype} was requested "
                                     "(keras-team/keras issue 23704): compared with float32 tolerances, with the "
                                     "rounding of its inputs to float32 included")
                        u = tolerance.UNIT_ROUNDOFF[computed]
                        update_tolerance = UpdateTolerance(spec["optimizer"], spec["optimizer_config"], lr, u)
                if computed == "float32":  # Keras rounds the weights and inputs it is given to float32
                    loss_args["x_error"] = u * np.abs(Xb)
                    if not free_running:
                        carried_tol = [u * np.abs(w) for w in mine_w]
                tally.compare(step, "weights", "entering", names, mine_w, ref["weights_in"], carried_tol)
                gap = None
                if free_running:
                    gap = [np.abs(m - k) for m, k in zip(mine_w, ref["weights_in"])]
                    if _track_drift(drift, step, gap, ref["weights_in"]):
                        notes.append(f"free-running: the trajectories drifted {drift['max_rel']:.3g} apart "
                                     f"(relative) by step {step}, past the limit {tolerance.DRIFT_LIMIT:g}; "
                                     "later steps were not compared (use the synced mode)")
                        break
                if computed == "float32":  # so their rounding is a gap between the two sides' inputs
                    gap = [u * np.abs(w) + (0 if gap is None else g) for w, g in zip(mine_w, gap or mine_w)]
                y_used = smooth_labels(yb, spec["loss"], spec["loss_config"].get("label_smoothing", 0.0))
                tol = tolerance.step_tolerances(ref["weights_in"], spec["activations"], Xb, y_used, ref["zs"],
                                                ref["activations"], u, gap, **loss_args)
                current["tol"] = tol
                outputs = protocol.checked_list(protocol.call("network.forward(X)", network.forward, Xb),
                                                [a.shape for a in ref["activations"]], "network.forward(X)")
                current["numpy"]["forward"] = outputs
                tally.compare(step, "forward", None, [f"a{l}" for l in range(n_layers)],
                         outputs, ref["activations"], tol["forward"])
                loss, grads = protocol.checked_gradients(
                    protocol.call("network.gradients(X, y)", network.gradients, Xb, yb), shapes)
                current["numpy"].update(loss=loss, grads=grads)
                tally.compare(step, "loss", None, ["loss"], [np.float64(loss)], [np.float64(ref["loss"])],
                         [np.float64(tol["loss"])])
                try:
                    tally.compare(step, "gradient", None, ["d" + n for n in names], grads, ref["grads"],
                             tol["grads"])
                except _Stop as stop_:
                    if stop_.mismatch and not stop_.nonfinite:
                        n = yb.shape[0] if spec["loss"] == "categorical_crossentropy" else yb.size
                        stop_.diagnosis = diagnose.diagnose_gradients(grads, ref["grads"], tol["grads"], n,
                                                                      Xb.shape[0], spec["loss"])
                    raise
                protocol.call("network.apply_gradients(grads)", network.apply_gradients, grads)
                after = protocol.weights_of(network, n_layers)
                update_tol = update_tolerance.step(ref["weights_in"], ref["grads"], tol["grads"],
                                                   ref["weights_out"], lr, gap)
                current["numpy"]["updated"], tol["updated"] = after, update_tol
                try:
                    tally.compare(step, "weights", "updated", names, after, ref["weights_out"], update_tol)
                except _Stop as stop_:
                    if stop_.mismatch and not stop_.nonfinite:
                        stop_.diagnosis = diagnose.diagnose_update(mine_w, after, ref["weights_out"], update_tol,
                                                                   lr, keras_notes.float32_casts(spec, dtype, as_cause=True))
                    raise
                checked = step + 1
                tally.end_step(loss, ref["loss"])
                if progress:
                    progress(checked, steps)
                if free_running:
                    keras_weights, carried_tol = ref["weights_out"], update_tol
        except _Stop as s:
            stop, checked = s, step + 1
            numpy_loss = current["numpy"].get("loss", np.nan) if current else np.nan
            tally.end_step(numpy_loss, current["ref"]["loss"] if current else np.nan)
    judged = None
    if referee and (current if stop else first):
        mismatch = stop.mismatch["quantity"] if stop and stop.mismatch else None
        judged = _referee(referee, current if stop else first, spec, keras_step, u, seed, mismatch, backend,
                          tolerance.UNIT_ROUNDOFF[dtype], loss_args)
    t_end = time.perf_counter()
    return {
        "ok": stop is None,
        "steps_checked": checked,
        "steps_requested": int(steps),
        "mode": "free-running" if free_running else "synced",
        "dtype": dtype,
        "backend": backend,
        "computed_dtype": computed or dtype,
        "device": reference.device if reference else _device(backend),
        "network": {"layers": spec["sizes"], "activations": spec["activations"], "learning_rate": lr,
                    "loss": spec["loss"], "loss_config": spec["loss_config"], "optimizer": spec["optimizer"],
                    "optimizer_config": spec["optimizer_config"],
                    "parameters": int(sum(np.prod(s) for s in shapes)), "type": type(network).__name__},
        "data": {"rows": int(X.shape[0]), "inputs": int(X.shape[1]), "outputs": int(y.shape[1]),
                 "batch_size": batch_size, "steps_per_epoch": steps_per_epoch, "epochs_started": epoch + 1,
                 "seed": seed},
        "notes": notes,
        "first_mismatch": stop.mismatch if stop else None,
        "nonfinite": stop.nonfinite if stop else None,
        "diagnosis": stop.diagnosis if stop else None,
        "max_diff": tally.overall,
        "drift": drift if free_running else None,
        "referee": judged,
        "tolerance": "per element: 2 x rounding-error bound of the step (docs/tolerances.md)",
        "versions": reference.versions if reference else _versions(),
        **({"history": tally.history} if history else {}),
        "timing": {"setup_s": t_setup - t0, "steps_s": t_end - t_setup, "total_s": t_end - t0},
    }


def computed_dtype(ref, X, requested):
    """The precision Keras actually computed in, read from its values, never from their dtype label.

    float32 when every forward output and gradient is exactly representable in float32 (float64
    arithmetic on float64 inputs essentially never produces that), or when Keras's first
    pre-activation X·kernel + bias is further from its float64 value than float64 rounding allows
    (a matmul run in float32 inside an otherwise float64 computation, as on torch).
    """
    if requested == "float32":
        return "float32"
    values = np.concatenate([np.ravel(a) for a in ref["activations"] + ref["grads"]])
    if np.array_equal(values.astype(np.float32).astype(np.float64), values):
        return "float32"
    W, b = ref["weights_in"][0], ref["weights_in"][1]
    u = tolerance.UNIT_ROUNDOFF["float64"]
    bound = 2 * tolerance.gamma(W.shape[1] + 1, u) * (np.abs(X) @ np.abs(W).T + np.abs(b))
    return "float32" if np.any(np.abs(ref["zs"][0] - (X @ W.T + b)) > bound) else "float64"


def use_backend(backend):
    """Select Keras's backend before Keras is imported; refuse a switch once it is loaded."""
    backend = backend or os.environ.get("KERAS_BACKEND", "tensorflow")
    if backend not in BACKENDS:
        raise InputError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    if "keras" in sys.modules:
        loaded = sys.modules["keras"].backend.backend()
        if loaded != backend:
            raise InputError(f"Keras is already loaded with the {loaded} backend in this process; start a new one "
                             f"with KERAS_BACKEND={backend} (python -m compare --backend {backend} does this)")
        return backend
    if importlib.util.find_spec(backend) is None:
        extra = f" (pip install torch==2.13.0, then pip install -e '.[{backend}]')" if backend == "torch" else \
            f" (pip install -e '.[{backend}]')"
        raise InputError(f"--backend {backend} needs the {backend} package, which is not installed{extra}")
    os.environ["KERAS_BACKEND"] = backend
    return backend


def _referee(name, at, spec, keras_step, u, seed, mismatch, backend, u_numpy, loss_args):
    """Run the referee on the step recorded in `at`, with whatever the numpy side had computed."""
    from . import referee
    ref, mine = at["ref"], at["numpy"]
    if name == "finite_differences":
        if "grads" not in mine:
            return {"name": name, "step": at["step"], "verdict": None,
                    "note": "the mismatch came before the gradients: nothing for finite differences to judge"}
        oracle = "keras"
        loss_at = lambda w: keras_step.loss_at(w, at["X"], at["y"])  # noqa: E731
        if u != u_numpy:  # Keras computes in float32 here: take the loss in float64 from numpy_impl
            from numpy_impl import Network
            oracle = "numpy_impl (float64; Keras computes in float32 on this backend)"
            loss_at = lambda w: Network(w, spec["activations"], spec["learning_rate"], spec["loss"],  # noqa: E731
                                        spec["loss_config"]).loss_value(at["X"], at["y"])
        return referee.fd_referee(at["step"], loss_at, at["weights"], mine["grads"], ref["grads"],
                                  at["tol"]["grads"], seed, mismatch, oracle)
    keras_out = {"forward": ref["activations"], "loss": ref["loss"], "grads": ref["grads"],
                 "updated": ref["weights_out"]}
    numpy_out = {"forward": mine.get("forward"), "loss": mine.get("loss"), "grads": mine.get("grads"),
                 "updated": mine.get("updated")}
    tol = at["tol"]
    if mine.get("forward") is None:
        return {"name": name, "step": at["step"], "verdict": None,
                "note": "the mismatch came before the numpy side's forward pass: nothing to referee"}
    tol_numpy = tol
    if u_numpy != u:  # Keras computed in float32: the numpy side is still held to its own float64 bound
        y_used = smooth_labels(at["y"], spec["loss"], spec["loss_config"].get("label_smoothing", 0.0))
        args = {k: v for k, v in loss_args.items() if k != "x_error"}
        tol_numpy = tolerance.step_tolerances(at["weights"], spec["activations"], at["X"], y_used, ref["zs"],
                                              ref["activations"], u_numpy, None, **args)
        if "updated" in tol:  # refereed only from a known (initial) optimizer state: a fresh tracker is exact
            tol_numpy["updated"] = UpdateTolerance(spec["optimizer"], spec["optimizer_config"], spec["learning_rate"],
                                                   u_numpy).step(at["weights"], ref["grads"], tol_numpy["grads"],
                                                                 ref["weights_out"], spec["learning_rate"])
    try:
        return referee.exact_referee(at["step"], spec, at["X"], at["y"], at["weights"], ref["weights_in"], numpy_out,
                                     keras_out, tol_numpy, tol, u_numpy, u, at["step"] == 0, backend)
    except (ZeroDivisionError, ValueError) as exc:  # e.g. a categorical row that sums to 0, log of 0
        return {"name": name, "step": at["step"], "verdict": None,
                "note": f"the exact step is undefined at these weights ({type(exc).__name__}: {exc})"}


def _positive(name, value, default):
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise InputError(f"{name} must be an integer > 0; received {value!r}")
    return int(value)


_KERAS_STEPS = {}


def _keras_step(spec, dtype):
    """A KerasStep for this architecture, loss and optimizer, built and traced once per process, reset."""
    key = json.dumps([spec["sizes"], spec["activations"], spec["loss"], spec["loss_config"], spec["optimizer"],
                      spec["optimizer_config"], dtype], sort_keys=True)
    if key not in _KERAS_STEPS:
        from keras_impl import KerasStep, build_model
        model = build_model(spec["sizes"], spec["activations"], dtype)
        try:
            _KERAS_STEPS[key] = KerasStep(model, spec["learning_rate"], spec["loss"], spec["loss_config"],
                                          spec["optimizer"], spec["optimizer_config"])
        except (ValueError, TypeError) as exc:  # Keras's own check of a hyper-parameter's value
            raise InputError(f"Keras refused loss {spec['loss']} {spec['loss_config']} or optimizer "
                             f"{spec['optimizer']} {spec['optimizer_config']}: {exc}") from None
    step = _KERAS_STEPS[key]
    step.reset(spec["learning_rate"])
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


def _versions():
    import keras
    backend = keras.backend.backend()
    return {"keras": keras.__version__, backend: sys.modules[backend].__version__, "numpy": np.__version__}


def _device(backend):
    """Where Keras computed: the first device of the backend ('cpu', 'gpu', 'cuda')."""
    if backend == "jax":
        import jax
        return jax.devices()[0].platform
    if backend == "torch":
        import torch
        return "cuda" if torch.cuda.is_available() else "cpu"
    import tensorflow as tf
    return "gpu" if tf.config.list_logical_devices("GPU") else "cpu"
