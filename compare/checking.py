"""Step a numpy network and Keras through training and compare every quantity at every step.

At each step, in this order: the weights entering the step, every layer's output, the loss,
every gradient, and the weights after the update. The first element outside its tolerance
stops the check. By default ("synced") Keras steps from the numpy side's weights each time, so
each comparison measures one step's arithmetic; "free-running" lets each side train on its own.
Synced steps are independent once the numpy side's weights are known, so they are checked in
chunks (_Run.in_chunks): Keras computes a chunk at once, and the bounds and comparisons are
evaluated for it as stacked arrays. Where Keras runs step() per step the report is that of a
step-by-step check bit for bit; where it runs a chunk vectorised, Keras's values differ by rounding
inside its bound, and so can a summary or a verdict on the edge of a tolerance (docs/tolerances.md,
"Steps computed together").
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
from .tally import Stop as _Stop, Tally, failing, summarize
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
    X, y, notes = data.checked(X, y, dtype)
    protocol.read_only(X), protocol.read_only(y)  # the check's own copies; the network gets copies of batches
    spec = protocol.describe(network, X.shape[1], y.shape[1])
    if reference:
        reference.verify(spec)  # a file recorded for another network: InputError naming the field
        steps, batch_size = steps or reference.config["steps"], reference.config["batch_size"]
        if steps > reference.config["steps"]:
            raise InputError(f"the golden file holds {reference.config['steps']} steps; received steps={steps}")
    batch_size = _positive("batch_size", batch_size, X.shape[0])
    if batch_size > X.shape[0]:
        notes.append(f"batch size {batch_size} is larger than the {X.shape[0]} rows: each step uses all of them")
        batch_size = X.shape[0]
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
    if reference:
        notes += reference.notes  # a v1 file: edits to it cannot be detected
    keras_step = reference or _keras_step(spec, dtype)
    if reference:
        reference.reset(spec["learning_rate"])
        computed = reference.computed_dtype
    else:
        computed = computed_precision(keras_step, spec, dtype, batch_size)
    t_setup = time.perf_counter()

    run = _Run(network, spec, dtype, computed, backend, notes, history, keras_step, reference, free_running)
    schedule = reference.schedule() if reference else batches(X.shape[0], batch_size, seed)
    with np.errstate(all="ignore"):
        try:
            if reference or free_running:
                run.step_by_step(X, y, schedule, steps, progress)
            else:
                run.in_chunks(X, y, schedule, steps, progress, batch_size)
        except _Stop as s:
            run.stop = s
            current = run.current
            run.checked = current["step"] + 1  # the failing step counts as checked
            numpy_loss = current["numpy"].get("loss", np.nan) if current else np.nan
            run.tally.end_step(numpy_loss, current["ref"]["loss"] if current else np.nan)
    stop, checked, epoch, tally, u = run.stop, run.checked, run.epoch, run.tally, run.u
    current, first, drift, lr, shapes = run.current, run.first, run.drift, spec["learning_rate"], run.shapes
    judged = None
    if referee and (current if stop else first):
        mismatch = stop.mismatch["quantity"] if stop and stop.mismatch else None
        judged = _referee(referee, current if stop else first, spec, keras_step, u, seed, mismatch, backend,
                          tolerance.UNIT_ROUNDOFF[dtype], run.loss_args)
    t_end = time.perf_counter()
    verdict = "mismatch" if stop else ("incomplete" if checked < steps else "ok")
    return {
        "ok": verdict == "ok",
        "verdict": verdict,
        "steps_checked": checked,
        "steps_requested": int(steps),
        "mode": "free-running" if free_running else "synced",
        "dtype": dtype,
        "backend": backend,
        "computed_dtype": computed,
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


# Synced steps are compared in chunks of up to CHUNK steps, and at most CHUNK_BYTES of stacked tensors.
CHUNK = 64
CHUNK_BYTES = 32 * 2 ** 20


class _Run:
    """One check's state (tally, optimizer-state tracker, drift, where it stopped) and its two loops.

    step_by_step: each step as it comes (free-running and golden mode, where a step needs the one before).
    in_chunks: synced mode. Keras's steps only need the numpy side's weights, so the numpy network
    runs a chunk of steps first; Keras computes the chunk in one call (KerasStep.steps), and the
    tolerances and the comparisons are evaluated for the whole chunk as stacked arrays. Both loops
    compare a step the same way: the summaries come from one function (tally.summarize), and the
    first failing step of a chunk is compared again on its own (compare_step), which reports it.
    """

    def __init__(self, network, spec, dtype, computed, backend, notes, history, keras_step, reference, free_running):
        self.network, self.spec, self.dtype, self.notes = network, spec, dtype, notes
        self.keras_step, self.reference, self.free_running = keras_step, reference, free_running
        self.n_layers = len(spec["activations"])
        self.names = diagnose.weight_names(2 * self.n_layers)
        self.shapes = [w.shape for w in protocol.weights_of(network, self.n_layers)]
        self.computed, self.u, self.lr = computed, tolerance.UNIT_ROUNDOFF[computed], spec["learning_rate"]
        if computed != dtype:
            notes.append(f"Keras on {backend} computes in {computed} although {dtype} was requested "
                         "(keras-team/keras issue 23704; found by a probe step from values that are not exact in "
                         f"{computed}): compared with {computed} tolerances, with the rounding of its inputs to "
                         f"{computed} included")
        self.loss_args = {"loss": spec["loss"], "loss_config": spec["loss_config"], "backend": backend}
        self.update_tolerance = UpdateTolerance(spec["optimizer"], spec["optimizer_config"], self.lr, self.u)
        self.tally = Tally(history)
        self.stop, self.checked, self.epoch = None, 0, 0
        self.first = self.current = None
        self.drift = {"max_abs": 0.0, "max_rel": 0.0, "step": None, "limit_rel": tolerance.DRIFT_LIMIT,
                      "decorrelated_at": None}

    # --- the numpy side --------------------------------------------------------------------------
    def numpy_step(self, X, y, rows, weights=None):
        """One step of the numpy network on the rows `rows` of X and y: {weights, forward, loss, grads,
        updated}, copied as they come, up to where its protocol broke; the InputError is kept as "error"
        and raised when the comparison reaches that point.

        Each call gets read-only copies of its batch, gathered for it alone: a network that writes to
        them raises (a protocol error that says so), and one that gets around that changes only its own
        copy, never the arrays Keras computes from."""
        record, what = {}, "weights"
        batch = lambda a: protocol.read_only(a[rows])  # noqa: E731
        try:
            record["weights"] = weights if weights is not None else _copies(
                protocol.weights_of(self.network, self.n_layers))
            what = "forward"
            shapes = [(len(rows), n) for n in self.spec["sizes"][1:]]
            record["forward"] = _copies(protocol.checked_list(
                protocol.call("network.forward(X)", self.network.forward, batch(X)), shapes,
                "network.forward(X)"))
            what = "grads"
            loss, grads = protocol.checked_gradients(
                protocol.call("network.gradients(X, y)", self.network.gradients, batch(X), batch(y)),
                self.shapes)
            record["loss"], record["grads"] = loss, _copies(grads)
            what = "updated"
            protocol.call("network.apply_gradients(grads)", self.network.apply_gradients, grads)
            record["updated"] = _copies(protocol.weights_of(self.network, self.n_layers))
        except InputError as exc:
            record["error"], record["failed_at"] = exc, what
        return record

    def tolerances(self, ref, Xb, yb, gap, mine):
        """The step's (or the stacked steps') tolerances from Keras's values: forward, loss, grads, updated.
        `mine`: the numpy side's layer outputs (or None where it broke before them), which decide its
        branch at a kink."""
        spec, args = self.spec, dict(self.loss_args)
        if self.computed == "float32":  # Keras rounds the inputs it is given to float32
            args["x_error"] = self.u * np.abs(Xb)
        y_used = smooth_labels(yb, spec["loss"], spec["loss_config"].get("label_smoothing", 0.0))
        tol = tolerance.step_tolerances(ref["weights_in"], spec["activations"], Xb, y_used, ref["zs"],
                                        ref["activations"], self.u, gap, mine=mine, **args)
        stacked = Xb.ndim == 3
        if not stacked or self.update_tolerance.stateless:
            tol["updated"] = self.update_tolerance.step(ref["weights_in"], ref["grads"], tol["grads"],
                                                       ref["weights_out"], self.lr, gap)
        else:  # the optimizer's state gap is a recurrence: step by step, in order
            per_step = [self.update_tolerance.step(*([a[k] for a in ref[key]] for key in ("weights_in", "grads")),
                                                   [t[k] for t in tol["grads"]], [w[k] for w in ref["weights_out"]],
                                                   self.lr, None if gap is None else [g[k] for g in gap])
                        for k in range(len(Xb))]
            tol["updated"] = [np.stack([t[i] for t in per_step]) for i in range(len(self.shapes))]
        return tol

    # --- one step, in full -------------------------------------------------------------------------
    def compare_entering(self, step, Xb, yb, weights, ref, carried):
        """Open step `step` (its record for the report and the referee) and compare the weights entering it."""
        self.tally.begin_step()
        self.current = {"step": step, "X": Xb, "y": yb, "weights": weights, "ref": ref, "numpy": {}}
        self.first = self.first or self.current
        self.tally.compare(step, "weights", "entering", self.names, weights, ref["weights_in"], carried)

    def compare_step(self, step, Xb, yb, record, ref, tol, carried, entering=True):
        """Compare one step in order (entering weights, outputs, loss, gradients, updated weights);
        raise Stop with the diagnosis at the first mismatch, or the numpy side's protocol error."""
        tally, names = self.tally, self.names
        if entering:
            self.compare_entering(step, Xb, yb, record["weights"], ref, carried)
        current = self.current
        current["tol"] = tol
        if "forward" not in record:
            raise record["error"]
        current["numpy"]["forward"] = record["forward"]
        tally.compare(step, "forward", None, [f"a{l}" for l in range(self.n_layers)], record["forward"],
                      ref["activations"], tol["forward"])
        if "grads" not in record:
            raise record["error"]
        loss, grads = record["loss"], record["grads"]
        current["numpy"].update(loss=loss, grads=grads)
        tally.compare(step, "loss", None, ["loss"], [np.float64(loss)], [np.float64(ref["loss"])],
                      [np.float64(tol["loss"])])
        try:
            tally.compare(step, "gradient", None, ["d" + n for n in names], grads, ref["grads"], tol["grads"])
        except _Stop as stop_:
            if stop_.mismatch and not stop_.nonfinite:
                n = yb.shape[0] if self.spec["loss"] == "categorical_crossentropy" else yb.size
                stop_.diagnosis = diagnose.diagnose_gradients(grads, ref["grads"], tol["grads"], n, Xb.shape[0],
                                                              self.spec["loss"])
            raise
        if "updated" not in record:
            raise record["error"]
        current["numpy"]["updated"] = record["updated"]
        try:
            tally.compare(step, "weights", "updated", names, record["updated"], ref["weights_out"], tol["updated"])
        except _Stop as stop_:
            if stop_.mismatch and not stop_.nonfinite:
                stop_.diagnosis = diagnose.diagnose_update(
                    record["weights"], record["updated"], ref["weights_out"], tol["updated"], self.lr,
                    keras_notes.float32_casts(self.spec, self.dtype, as_cause=True))
            raise
        self.checked = step + 1
        tally.end_step(loss, ref["loss"])

    # --- free-running and golden mode: step by step ------------------------------------------------
    def step_by_step(self, X, y, schedule, steps, progress):
        keras_weights, carried = None, [np.zeros(s) for s in self.shapes]
        for step in range(steps):
            self.epoch, rows = next(schedule)
            Xb, yb = X[rows], y[rows]  # Keras's copies; the network gets its own
            if self.reference:  # the recorded step, and the numpy network put on its weights
                ref = self.keras_step.step(None, Xb, yb)
                # copies: a network may keep the arrays it is given and update them in place
                protocol.call("network.set_weights(weights)", self.network.set_weights, _copies(ref["weights_in"]))
            record = self.numpy_step(X, y, rows)
            if "weights" not in record:
                raise record["error"]
            mine_w = record["weights"]
            if not self.reference:
                ref = self.keras_step.step(keras_weights if self.free_running and step > 0 else mine_w, Xb, yb)
            computed32 = self.computed == "float32"
            if computed32 and not self.free_running:  # Keras rounds the weights it is given to float32
                carried = self.carried(mine_w)
            self.compare_entering(step, Xb, yb, mine_w, ref, carried)
            gap = None
            if self.free_running:
                gap = [np.abs(m - k) for m, k in zip(mine_w, ref["weights_in"])]
                if _track_drift(self.drift, step, gap, ref["weights_in"]):
                    self.notes.append(f"free-running: the trajectories drifted {self.drift['max_rel']:.3g} apart "
                                      f"(relative) by step {step}, past the limit {tolerance.DRIFT_LIMIT:g}; "
                                      "later steps were not compared (use the synced mode)")
                    return
            if computed32:  # so their rounding is a gap between the two sides' inputs
                gap = [self.u * np.abs(w) + (0 if gap is None else g) for w, g in zip(mine_w, gap or mine_w)]
            tol = self.tolerances(ref, Xb, yb, gap, record.get("forward"))
            self.compare_step(step, Xb, yb, record, ref, tol, carried, entering=False)
            if progress:
                progress(self.checked, steps)
            if self.free_running:
                keras_weights, carried = ref["weights_out"], tol["updated"]

    # --- synced mode: in chunks --------------------------------------------------------------------
    def in_chunks(self, X, y, schedule, steps, progress, batch_size):
        rows = min(X.shape[0], batch_size)
        per_step = 8 * 8 * (sum(int(np.prod(s)) for s in self.shapes) + rows * sum(self.spec["sizes"][1:]))
        limit = CHUNK if self.batched(rows) else \
            int(np.clip(CHUNK_BYTES // per_step, 1, CHUNK))
        pending, weights, step = None, None, 0
        while step < steps:
            plan = []  # (epoch, rows) of up to `limit` steps with one batch size; the first step on its own
            while len(plan) < (1 if step == 0 else min(limit, steps - step)):
                drawn, pending = pending or next(schedule), None
                if plan and len(drawn[1]) != len(plan[0][1]):
                    pending = drawn
                    break
                plan.append(drawn)
            rows = np.stack([r for _, r in plan])
            Xs, ys = X[rows], y[rows]  # Keras's copies; the network gets its own
            records = []
            for k in range(len(plan)):
                records.append(self.numpy_step(X, y, rows[k], weights))
                if "error" in records[-1]:
                    break
                weights = records[-1]["updated"]
            self.chunk(step, [e for e, _ in plan], Xs, ys, records)
            step += len(plan)
            if progress:
                progress(self.checked, steps)

    def chunk(self, first, epochs, Xs, ys, records):
        """Compare the steps first, first + 1, ... of one chunk; raise Stop at the first that fails.

        The first step of the run, and any step the stacked comparison finds failing, is compared on
        its own with Keras's values from one step() call: those are the values Keras's own training
        computes (fit, train_on_batch; bit for bit), and the ones a report shows.
        """
        batched = self.batched(Xs.shape[1])
        if self.first is None:  # the first step of the run, alone and in full
            self.epoch = epochs[0]
            if "weights" not in records[0]:
                raise records[0]["error"]
            ref = self.keras_step.step(records[0]["weights"], Xs[0], ys[0])
            tol = self.tolerances(ref, Xs[0], ys[0], self.gap(records[0]["weights"]), records[0].get("forward"))
            self.compare_step(first, Xs[0], ys[0], records[0], ref, tol, self.carried(records[0]["weights"]))
            return
        n = len(records) - ("weights" not in records[-1])  # steps Keras can compute
        complete = len(records) - ("error" in records[-1])
        fails, summaries = np.zeros(0, bool), {}
        if n:
            mine_w = [_stack([r["weights"][i] for r in records[:n]]) for i in range(len(self.shapes))]
            ref = self.keras_step.steps(mine_w, Xs[:n], ys[:n])
            mine_f = [_stack([r["forward"][l] if "forward" in r else ref["activations"][l][k]
                              for k, r in enumerate(records[:n])]) for l in range(self.n_layers)]
            tol = self.tolerances(ref, Xs[:n], ys[:n], self.gap(mine_w), mine_f)
            carried = self.carried(mine_w)
            fails, summaries = self.screen(records[:complete], ref, tol, carried, complete)
        start = 0
        while start < len(records):
            k = start + int(np.argmax(fails[start:])) if fails[start:].any() else complete
            if k > start:
                self.tally.add_steps(first + start, {q: (names, *(a[start:k] for a in arrays))
                                                     for q, (names, arrays) in summaries.items()},
                                     [r["loss"] for r in records[start:k]], ref["loss"][start:k])
                self.checked, self.epoch = first + k, epochs[k - 1]
            if k == len(records):
                return
            self.epoch = epochs[k]
            if k == n:  # the numpy side broke before its weights could be read
                raise records[k]["error"]
            if batched:  # Keras's values as its training computes them, and their tolerances
                ref_k = self.keras_step.step(records[k]["weights"], Xs[k], ys[k])
                tol_k = self.tolerances(ref_k, Xs[k], ys[k], self.gap(records[k]["weights"]), records[k].get("forward"))
            else:
                ref_k, tol_k = _at(ref, k), _at(tol, k)
            self.compare_step(first + k, Xs[k], ys[k], records[k], ref_k, tol_k, self.carried(records[k]["weights"]))
            start = k + 1

    def batched(self, rows):
        """Whether Keras computes a chunk of `rows`-row batches in one call (KerasStep.batched; golden files never)."""
        return getattr(self.keras_step, "batched", lambda rows: False)(rows)

    def carried(self, weights):
        """Tolerance on the entering weights in synced mode: 0, or their rounding to float32 where Keras computes in it."""
        if self.computed == "float32":
            return [self.u * np.abs(w) for w in weights]
        return [np.zeros((1,) * w.ndim) for w in weights]

    def gap(self, weights):
        """The gap between the two sides' inputs in synced mode: none, or Keras's rounding of them to float32."""
        return [self.u * np.abs(w) for w in weights] if self.computed == "float32" else None

    def screen(self, records, ref, tol, carried, count):
        """Summaries of every quantity for `count` stacked complete steps; whether each step fails."""
        fails = np.zeros(count, bool)
        summaries = {}
        if not count:
            return fails, summaries
        r = slice(0, count)

        def summarise(names, mine, keras, tols):
            stats = [summarize(m, k_[r], t if np.ndim(t) == 0 or len(t) == 1 else t[r])
                     for m, k_, t in zip(mine, keras, tols)]
            for _, _, rmax, nonfinite in stats:
                fails[:] |= failing(rmax, nonfinite)
            return names, [np.stack([s_[i] for s_ in stats], axis=1) for i in range(3)]

        mine = {key: [_stack([rec[key][i] for rec in records]) for i in range(len(records[0][key]))]
                for key in ("weights", "forward", "grads", "updated")}
        entering = summarise(self.names, mine["weights"], ref["weights_in"], carried)
        summaries["forward"] = summarise([f"a{l}" for l in range(self.n_layers)], mine["forward"],
                                         ref["activations"], tol["forward"])
        summaries["loss"] = summarise(["loss"], [np.array([rec["loss"] for rec in records])],
                                      [ref["loss"]], [tol["loss"]])
        summaries["gradient"] = summarise(["d" + n for n in self.names], mine["grads"],
                                          ref["grads"], tol["grads"])
        updated = summarise(self.names, mine["updated"], ref["weights_out"], tol["updated"])
        summaries["weights"] = (self.names + self.names,
                                [np.concatenate([a, b], axis=1) for a, b in zip(entering[1], updated[1])])
        return fails, summaries


def _copies(arrays):
    return [np.array(a) for a in arrays]


def _stack(arrays):
    """Arrays stacked on a new first axis; one array as a view."""
    return arrays[0][None] if len(arrays) == 1 else np.stack(arrays)


def _at(stacked, k):
    """Step k of a dict of stacked arrays (lists of (K, ...) arrays, and (K,) arrays)."""
    return {key: [a[k] for a in value] if isinstance(value, list) else value[k] for key, value in stacked.items()}


def computed_precision(keras_step, spec, dtype, rows=4):
    """The precision Keras computes this step in: `dtype`, or float32 where Keras computes float32 although
    float64 was requested (jax and torch, keras-team/keras issue 23704, whose tensors still say float64).

    Decided once per KerasStep by a probe: one step from seeded weights and data that are not exact in
    float32 (full 53-bit mantissas), then the optimizer reset. Never from the values being checked,
    which may happen to be exact in float32 (small integers, dyadic fractions).
    """
    if dtype == "float32":
        return "float32"
    if getattr(keras_step, "computed_dtype", None) is None:
        from numpy_impl.init import glorot_uniform
        sizes = spec["sizes"]
        weights = glorot_uniform(sizes, seed=1)
        weights[1::2] = [np.random.default_rng(2).uniform(-0.5, 0.5, len(b)) for b in weights[1::2]]
        X, y = data.random_data(sizes[0], sizes[-1], spec["loss"], seed=3, rows=rows)
        out = keras_step.step(weights, X, y)
        keras_step.reset(spec["learning_rate"])
        keras_step.computed_dtype = "float32" if float32_evidence(out, weights, X, spec["activations"]) else "float64"
    return keras_step.computed_dtype


def float32_evidence(out, weights, X, activations):
    """Whether a step computed from float64 `weights` and `X` (not exact in float32) shows float32
    arithmetic: Keras changed the weights it loaded, a tensor of its outputs or gradients is exact in
    float32, a layer's pre-activation is further from a_prev·Wᵀ + b than float64 rounding allows, or
    its output further from f(z) than float64's transcendental error allows."""
    from numpy_impl import ops
    if any(not np.array_equal(w, k) for w, k in zip(weights, out["weights_in"])):
        return True
    for t in out["activations"] + out["grads"]:
        nonzero = t[t != 0]
        if nonzero.size > 1 and np.array_equal(nonzero.astype(np.float32).astype(np.float64), nonzero):
            return True
    u, a_prev = tolerance.UNIT_ROUNDOFF["float64"], X
    for W, b, z, a, name in zip(weights[0::2], weights[1::2], out["zs"], out["activations"], activations):
        bound = 2 * tolerance.gamma(W.shape[1] + 1, u) * (np.abs(a_prev) @ np.abs(W).T + np.abs(b))
        if np.any(np.abs(z - (a_prev @ W.T + b)) > bound):
            return True
        k = a.shape[-1] + 4 if name == "softmax" else 1
        if np.any(np.abs(a - ops.ACTIVATIONS[name][0](z)) > 2 * k * tolerance.TRANSCENDENTAL * u * np.abs(a)):
            return True
        a_prev = a
    return False


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
                                              ref["activations"], u_numpy, None, mine=mine.get("forward"), **args)
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
