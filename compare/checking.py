"""check(): validate the input → choose Keras or a golden file → run the steps (compare/chunks.py in synced
mode, compare/sequence.py free-running and golden) → the referee → the report as a dict.

At each step, in this order: the weights entering the step, every layer's output, the loss,
every gradient, and the weights after the update (compare/stepper.py). The first element outside its
tolerance stops the check. By default ("synced") Keras steps from the numpy side's weights each time, so
each comparison measures one step's arithmetic; "free-running" lets each side train on its own.
"""
import os
import time

import numpy as np

from . import data, environment, notes as keras_notes, protocol, referee as referees
from .chunks import in_chunks
from .loop import batches, ignored_exceptions, lengths, stop_fields, verdict_of  # noqa: F401  (batches: also imported from here)
from .environment import DTYPES, use_backend
from .errors import InputError
from .rounding import UNIT_ROUNDOFF
from .rules.losses import declared_convention
from .sequence import new_drift, step_by_step
from .stepper import Stepper
from .tally import Stop
from .version import DISTRIBUTION, SCHEMA_VERSION, tool_version


def check(network, X, y, steps=None, epochs=None, batch_size=None, seed=0, free_running=False, dtype="float64",
          referee=None, backend=None, history=False, progress=None, golden=None):
    """Train `network` and Keras side by side; return the report as a dict.

    `network` follows the plug-in protocol (README). `steps` (default 100) or `epochs` sets the
    length; `batch_size` (default: all rows) the mini-batches, drawn from one seeded permutation
    per epoch. Raises InputError on bad input or a broken protocol; a numerical mismatch is not an
    exception but `report["ok"] is False`. `referee` ("exact" or "finite_differences") judges the
    first mismatching step, or step 0 when all agree, against a third opinion (compare/referee.py).
    `backend` is Keras's: tensorflow (default), jax or torch; it must be chosen before Keras is imported.
    `history=True` adds per-step summaries (report["history"]); `progress(step, steps)` is called
    after each step. `golden` (a file's path, or compare.golden.open_file's result) replaces live Keras with a
    recorded trajectory: the numpy network is then set to the recorded weights before each step, and Keras is
    never imported. X and y may then be None (the file's own).
    """
    if isinstance(golden, (str, os.PathLike)):  # a path, as on the command line (found by a new user's trial)
        from .golden import open_file
        golden = open_file(os.fspath(golden))
    if referee is not None and referee not in referees.NAMES:
        raise InputError(f"unknown referee {referee!r}; expected one of {', '.join(referees.NAMES)}")
    if protocol.attribute(network, "layers", None) is not None:  # any stack of layers: compare/stack_check.py
        from .golden.layered import LayeredGolden
        if isinstance(golden, LayeredGolden):
            if referee is not None:
                raise InputError(f"a golden replay of a network with layers takes no referee (it replays the recorded "
                                 f"values without Keras, and the referees need Keras's layers); received "
                                 f"referee={referee!r}: run the live check (python -m compare) with --referee")
            from .stack_check import check_layers_golden
            return check_layers_golden(network, golden, steps=steps, history=history, progress=progress)
        refused = [f"golden={golden!r} (a file recorded for a Dense network)"] if golden else []
        refused += [f"backend={backend!r}"] if backend not in (None, "tensorflow") else []
        if refused:
            raise InputError(f"a network with layers is checked on TensorFlow (live) or against a layered golden file; "
                             f"received {', '.join(refused)}")
        from .stack_check import check_layers
        return check_layers(network, X, y, steps=steps, epochs=epochs, batch_size=batch_size, seed=seed, dtype=dtype,
                            history=history, progress=progress, free_running=free_running, referee=referee)
    t0 = time.perf_counter()
    if dtype not in DTYPES:
        raise InputError(f"dtype must be one of {', '.join(DTYPES)}; received {dtype!r}")
    if golden and X is None and y is None:  # the file's own data (found by a user's trial: X None was refused)
        X, y = golden.files["X"], golden.files["y"]
    backend = golden.backend if golden else use_backend(backend)
    X, y, notes = data.checked(X, y, dtype)
    protocol.read_only(X), protocol.read_only(y)  # the check's own copies; the network gets copies of batches
    spec = protocol.describe(network, X.shape[1], y.shape[1])
    if golden:
        golden.verify(spec)  # a file recorded for another network: InputError naming the field
        steps, batch_size = steps or golden.config["steps"], golden.config["batch_size"]
        if steps > golden.config["steps"]:
            raise InputError(f"the golden file holds {golden.config['steps']} steps; received steps={steps}")
    steps, batch_size, steps_per_epoch = lengths(X.shape[0], steps, epochs, batch_size, seed, notes)
    if referee == "exact":
        from .exact import MAX_PARAMETERS
        params = sum(int(np.prod(w.shape)) for w in protocol.weights_of(network, len(spec["activations"])))
        if params > MAX_PARAMETERS:
            raise InputError(f"--referee exact handles up to {MAX_PARAMETERS} parameters; this network has "
                             f"{params}: use --referee finite_differences")
    notes += keras_notes.for_spec(spec, dtype, backend)
    if golden:
        notes += golden.notes  # a v1 file: edits to it cannot be detected
    keras_step = golden or environment.keras_step(spec, dtype)
    if golden:
        golden.reset(spec["learning_rate"])
        computed = golden.computed_dtype
    else:
        computed = environment.computed_precision(keras_step, spec, dtype, batch_size)
    t_setup = time.perf_counter()

    stepper, drift = Stepper(network, spec, dtype, computed, backend, notes, history), new_drift()
    schedule = golden.schedule() if golden else batches(X.shape[0], batch_size, seed)
    with np.errstate(all="ignore"), ignored_exceptions() as ignored:
        try:
            if golden or free_running:
                step_by_step(stepper, keras_step, X, y, schedule, steps, progress, free_running, bool(golden),
                             drift, notes)
            else:
                in_chunks(stepper, keras_step, X, y, schedule, steps, progress, batch_size)
        except Stop as stop:
            stepper.stop = stop
            current = stepper.current
            stepper.checked = current["step"] + 1  # the failing step counts as checked
            numpy_loss = current["numpy"].get("loss", np.nan) if current else np.nan
            stepper.tally.end_step(numpy_loss, current["keras"]["loss"] if current else np.nan)
    notes += [f"the network's code raised {text} during the check, which Python ignored (an exception in a "
              "destructor or a thread): the values it returned were compared as they came" for text in ignored]
    stop, checked, epoch, tally, u = stepper.stop, stepper.checked, stepper.epoch, stepper.tally, stepper.u
    current, first, lr, shapes = stepper.current, stepper.first, spec["learning_rate"], stepper.shapes
    judged = None
    if referee and (current if stop else first):
        mismatch = stop.mismatch["quantity"] if stop and stop.mismatch else None
        judged = referees.judge(referee, current if stop else first, spec, keras_step, u, seed, mismatch, backend,
                                UNIT_ROUNDOFF[dtype])
    t_end = time.perf_counter()
    verdict = verdict_of(stop, checked, steps)
    return {
        "schema_version": SCHEMA_VERSION,
        "ok": verdict == "ok",
        "verdict": verdict,
        "steps_checked": checked,
        "steps_requested": int(steps),
        "mode": "golden" if golden else "free-running" if free_running else "synced",
        "golden": golden.identity() if golden else None,
        "dtype": dtype,
        "backend": backend,
        "computed_dtype": computed,
        "device": golden.device if golden else environment.device(backend),
        "network": {"layers": spec["sizes"], "activations": spec["activations"], "learning_rate": lr,
                    "loss": spec["loss"], "loss_config": spec["loss_config"], "optimizer": spec["optimizer"],
                    "optimizer_config": spec["optimizer_config"],
                    "parameters": int(sum(np.prod(s) for s in shapes)), "type": type(network).__name__},
        "loss_convention": declared_convention(spec["loss"], spec["loss_config"], spec["loss_scale"]),
        "data": {"rows": int(X.shape[0]), "inputs": int(X.shape[1]), "outputs": int(y.shape[1]),
                 "batch_size": batch_size, "steps_per_epoch": steps_per_epoch, "epochs_started": epoch + 1,
                 "seed": seed},
        "notes": notes,
        **stop_fields(stop),
        "tensors": stop.tensors if stop else None,
        "max_diff": tally.overall,
        "drift": drift if free_running else None,
        "referee": judged,
        "tolerance": "per element: 2 x rounding-error bound of the step (docs/tolerances.md)",
        "versions": {**(golden.versions if golden else environment.versions()), DISTRIBUTION: tool_version()},
        **({"history": tally.history} if history else {}),
        "timing": {"setup_s": t_setup - t0, "steps_s": t_end - t_setup, "total_s": t_end - t0},
    }
