"""Synced mode in chunks. Keras's steps only need the numpy side's weights, so the numpy network runs a
chunk of steps first; Keras computes the chunk in one call (KerasStep.steps), and the tolerances and the
comparisons are evaluated for the whole chunk as stacked arrays. The summaries come from the same
function as step by step (tally.summarize), and the first failing step of a chunk is compared again on
its own (Stepper.compare_step), which reports it. Where Keras runs step() per step the report is that of
a step-by-step check bit for bit; where it runs a chunk vectorised, Keras's values differ by rounding
inside its bound, and so can a summary or a verdict on the edge of a tolerance (docs/tolerances.md,
"Steps computed together").
"""
import numpy as np

from .names import layer_output_names
from .tally import failing, summarize

# Synced steps are compared in chunks of up to CHUNK steps, and at most CHUNK_BYTES of stacked tensors.
CHUNK = 64
CHUNK_BYTES = 32 * 2 ** 20


def in_chunks(stepper, keras_step, X, y, schedule, steps, progress, batch_size):
    """Compare `steps` synced steps, a chunk at a time; raise Stop at the first mismatch."""
    rows = min(X.shape[0], batch_size)
    per_step = 8 * 8 * (sum(int(np.prod(s)) for s in stepper.shapes) + rows * sum(stepper.spec["sizes"][1:]))
    limit = CHUNK if keras_step.batched(rows) else int(np.clip(CHUNK_BYTES // per_step, 1, CHUNK))
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
        numpy_steps = []
        for k in range(len(plan)):
            numpy_steps.append(stepper.numpy_step(X, y, rows[k], weights))
            if "error" in numpy_steps[-1]:
                break
            weights = numpy_steps[-1]["updated"]
        compare_chunk(stepper, keras_step, step, [e for e, _ in plan], Xs, ys, numpy_steps)
        step += len(plan)
        if progress:
            progress(stepper.checked, steps)


def compare_chunk(stepper, keras_step, first, epochs, Xs, ys, numpy_steps):
    """Compare the steps first, first + 1, ... of one chunk; raise Stop at the first that fails.

    The first step of the run, and any step the stacked comparison finds failing, is compared on
    its own with Keras's values from one step() call: those are the values Keras's own training
    computes (fit, train_on_batch; bit for bit), and the ones a report shows.
    """
    batched = keras_step.batched(Xs.shape[1])
    if stepper.first is None:  # the first step of the run, alone and in full
        stepper.epoch = epochs[0]
        numpy = numpy_steps[0]
        if "weights" not in numpy:
            raise numpy["error"]
        keras = keras_step.step(numpy["weights"], Xs[0], ys[0])
        tol = stepper.tolerances(keras, Xs[0], ys[0], stepper.input_gap(numpy["weights"]), numpy.get("forward"))
        stepper.compare_step(first, Xs[0], ys[0], numpy, keras, tol, stepper.entering_tolerance(numpy["weights"]))
        return
    n = len(numpy_steps) - ("weights" not in numpy_steps[-1])  # steps Keras can compute
    complete = len(numpy_steps) - ("error" in numpy_steps[-1])
    fails, summaries = np.zeros(0, bool), {}
    if n:
        numpy_weights = [stack([s["weights"][i] for s in numpy_steps[:n]]) for i in range(len(stepper.shapes))]
        keras = keras_step.steps(numpy_weights, Xs[:n], ys[:n])
        numpy_forward = [stack([s["forward"][l] if "forward" in s else keras["activations"][l][k]
                                for k, s in enumerate(numpy_steps[:n])]) for l in range(stepper.n_layers)]
        tol = stepper.tolerances(keras, Xs[:n], ys[:n], stepper.input_gap(numpy_weights), numpy_forward)
        fails, summaries = summarise(stepper, numpy_steps[:complete], keras, tol,
                                     stepper.entering_tolerance(numpy_weights), complete)
    start = 0
    while start < len(numpy_steps):
        k = start + int(np.argmax(fails[start:])) if fails[start:].any() else complete
        if k > start:
            stepper.tally.add_steps(first + start, {q: (tensors, *(a[start:k] for a in arrays))
                                                    for q, (tensors, arrays) in summaries.items()},
                                    [s["loss"] for s in numpy_steps[start:k]], keras["loss"][start:k])
            stepper.checked, stepper.epoch = first + k, epochs[k - 1]
        if k == len(numpy_steps):
            return
        stepper.epoch = epochs[k]
        numpy = numpy_steps[k]
        if k == n:  # the numpy side broke before its weights could be read
            raise numpy["error"]
        if batched:  # Keras's values as its training computes them, and their tolerances
            keras_k = keras_step.step(numpy["weights"], Xs[k], ys[k])
            tol_k = stepper.tolerances(keras_k, Xs[k], ys[k], stepper.input_gap(numpy["weights"]),
                                       numpy.get("forward"))
        else:
            keras_k, tol_k = at(keras, k), at(tol, k)
        stepper.compare_step(first + k, Xs[k], ys[k], numpy, keras_k, tol_k,
                             stepper.entering_tolerance(numpy["weights"]))
        start = k + 1


def summarise(stepper, numpy_steps, keras, tol, entering_tol, count):
    """Summaries of every quantity for `count` stacked complete steps; whether each step fails."""
    fails = np.zeros(count, bool)
    summaries = {}
    if not count:
        return fails, summaries
    r = slice(0, count)

    def of(names, numpy_arrays, keras_arrays, tols, phase=None):
        stats = [summarize(m, k_[r], t if np.ndim(t) == 0 or len(t) == 1 else t[r], picks=True)
                 for m, k_, t in zip(numpy_arrays, keras_arrays, tols)]
        for _, _, rmax, nonfinite, _ in stats:
            fails[:] |= failing(rmax, nonfinite)
        tensors = [(n, phase, m.shape[1:]) for n, m in zip(names, numpy_arrays)]
        return tensors, [np.stack([s_[i] for s_ in stats], axis=1) for i in (0, 1, 2, 4)]

    names = stepper.names
    numpy = {key: [stack([s[key][i] for s in numpy_steps]) for i in range(len(numpy_steps[0][key]))]
             for key in ("weights", "forward", "grads", "updated")}
    entering = of(names, numpy["weights"], keras["weights_in"], entering_tol, "entering")
    summaries["forward"] = of(layer_output_names(stepper.n_layers), numpy["forward"], keras["activations"],
                              tol["forward"])
    summaries["loss"] = of(["loss"], [np.array([s["loss"] for s in numpy_steps])], [keras["loss"]], [tol["loss"]])
    summaries["gradient"] = of(["d" + n for n in names], numpy["grads"], keras["grads"], tol["grads"])
    updated = of(names, numpy["updated"], keras["weights_out"], tol["updated"], "updated")
    summaries["weights"] = (entering[0] + updated[0],
                            [np.concatenate([a, b], axis=1) for a, b in zip(entering[1], updated[1])])
    return fails, summaries


def stack(arrays):
    """Arrays stacked on a new first axis; one array as a view."""
    return arrays[0][None] if len(arrays) == 1 else np.stack(arrays)


def at(stacked, k):
    """Step k of a dict of stacked arrays (lists of (K, ...) arrays, and (K,) arrays)."""
    return {key: [a[k] for a in value] if isinstance(value, list) else value[k] for key, value in stacked.items()}
