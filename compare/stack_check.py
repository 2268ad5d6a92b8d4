"""check() for a network that declares `layers`: any stack of the single-layer kinds, trained step by step.

Each step, in this order: the numpy side's step (forward(X), gradients(X, y), apply_gradients, get_weights),
then Keras's (keras_impl/stack.py), in which every layer is called on the numpy side's output of the layer
before it, so that each layer's output is compared against Keras's arithmetic on the same input; the loss on
the numpy side's own output; the gradients through Keras's own layers. Then compared, stopping at the first
element outside its tolerance: the weights entering the step, each layer's output (first layer first), the
loss, each trainable weight's gradient (last layer first, the order backprop computes them in, so that the
first mismatch is the one nearest the loss), the non-trainable weights after the step (moving statistics),
and the trainable weights after the optimizer's update.

Tolerances: each layer's from its single-layer bound (compare/layer_tolerance.py) at its numpy input and
Keras's dout, plus the error dout carries from the layers after it (one side's bound, propagated back from
the loss's: compare/rules/losses.py); the updates' from compare/update_tolerance.py.
"""
import time

import numpy as np

from numpy_impl.losses import smooth_labels, takes_logits

from . import data, layout as layouts, protocol
from .loop import batches, ignored_exceptions, lengths, positive, stop_fields, verdict_of
from .environment import DTYPES, use_backend
from .errors import InputError, show
from .rounding import UNIT_ROUNDOFF
from .rules import layers as layer_rules, losses as loss_rules
from .tally import Stop, Tally
from .update_tolerance import UpdateTolerance
from .version import SCHEMA_VERSION, tool_version, DISTRIBUTION

# The layer kinds a network may hold: each single-layer kind with its bound (compare/rules/layers.py), and Add,
# which joins two branches of a graph (its bound is here: `_add`). Embedding, whose input is integer ids, comes first.
STACKABLE = ("Dense", "Conv1D", "Conv2D", "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D", "Flatten",
             "Reshape", "Dropout", "BatchNormalization", "LayerNormalization", "SimpleRNN", "LSTM", "GRU", "ReLU",
             "Softmax", "Activation", "Embedding", "MultiHeadAttention", "Add")
GRAPH_ONLY = ("Add",)


class Inconclusive(Exception):
    """The check cannot judge past this point: a tolerance that overflowed where the values are finite (live), or a
    layer output that is not the recorded one bit for bit (a golden replay); the message says which."""


def read_layers(network):
    """network.layers checked: [{"class_name", "config"[, "inputs", "call"]}], each a known kind Keras's rules
    accept, wired to earlier layers only (−1: the network's input), Add to two, every other layer to one."""
    declared = protocol.attribute(network, "layers", None)
    if not isinstance(declared, (list, tuple)) or not declared:
        raise InputError(f"network.layers must be a non-empty list of {{'class_name', 'config'}} dicts; received "
                         f"{show(declared)}")
    out = []
    for i, d in enumerate(declared):
        if not isinstance(d, dict) or not isinstance(d.get("class_name"), str) or \
                set(d) - {"class_name", "config", "inputs", "call"}:
            raise InputError(f"network.layers[{i}] must be a dict with class_name and config (and inputs, call); "
                             f"received {show(d)}")
        config = d.get("config") or {}
        if not isinstance(config, dict) or "dtype" in config:
            raise InputError(f"network.layers[{i}]['config'] must be a dict of keyword arguments without dtype; "
                             f"received {show(config)}")
        name = d["class_name"]
        if name not in STACKABLE:
            raise InputError(f"network.layers[{i}] is {show(name)}, which a network with layers cannot hold; expected "
                             f"one of {', '.join(STACKABLE)}")
        if name not in GRAPH_ONLY:
            why = layer_rules.get(name)["refuse"](config)
            if why:
                raise InputError(f"network.layers[{i}] {name}: {why}")
        item = {"class_name": name, "config": dict(config)}
        inputs = d.get("inputs", [i - 1])
        wanted = 2 if name == "Add" else 1
        if not isinstance(inputs, (list, tuple)) or len(inputs) != wanted or not all(
                isinstance(j, int) and not isinstance(j, bool) and -1 <= j < i for j in inputs):
            raise InputError(f"network.layers[{i}] {name} has inputs {show(inputs)}; expected a list of {wanted} "
                             f"index{'es' if wanted > 1 else ''} of earlier layers (−1: the network's input X)")
        if "inputs" in d or name == "Add":
            item["inputs"] = list(inputs)
        if name == "Embedding" and inputs != [-1]:
            raise InputError(f"network.layers[{i}] Embedding takes integer ids: only the network's input X (−1)")
        call = d.get("call") or {}
        if call and (name != "MultiHeadAttention" or set(call) - {"use_causal_mask"}
                     or not isinstance(call.get("use_causal_mask"), bool)):
            raise InputError(f"network.layers[{i}] {name} has call {show(call)}; only MultiHeadAttention takes one, "
                             "{'use_causal_mask': true or false}")
        if call:
            item["call"] = dict(call)
        out.append(item)
    return out


def describe(network, X, y):
    """The network's spec: layers, layout, learning_rate and the training spec (loss, optimizer)."""
    missing = [m for m in protocol.METHODS if not callable(protocol.attribute(network, m, None))]
    if missing:
        raise InputError(f"the network ({type(network).__name__}) lacks {', '.join(missing)}; a network with layers "
                         f"needs methods {', '.join(protocol.METHODS)}")
    layers = read_layers(network)
    lr = protocol.attribute(network, "learning_rate", None)
    if not protocol.finite_number(lr) or lr <= 0:
        raise InputError(f"network.learning_rate must be a finite number > 0; received {show(lr)}")
    given = protocol.attribute(network, "layout", None)
    if given is not None and (not isinstance(given, str) or len(given) < 2):
        raise InputError(f"network.layout must be the axis letters of the network's images, e.g. 'NCHW'; received "
                         f"{show(given)}")
    letters = None if given is None else layouts.checked(given, len(given), "network.layout")
    spec = {"layers": layers, "layout": letters, "learning_rate": float(lr)}
    spec.update(protocol.training_spec(network))
    return spec


class Sides:
    """The Keras model for the spec, its step and what maps the numpy side's arrays to it."""

    def __init__(self, spec, X_shape, dtype):
        from keras_impl import stack
        try:
            self.model = stack.build(spec["layers"], X_shape[1:], dtype)
        except (TypeError, ValueError) as exc:
            raise InputError(f"Keras refuses the network's layers on input {tuple(X_shape[1:])}: "
                             f"{str(exc).splitlines()[0]}") from None
        self.specs = stack.weight_specs(self.model)
        self.step = stack.ForcedStep(self.model, spec["layers"], spec["learning_rate"], spec["loss"],
                                     spec["loss_config"], spec["optimizer"], spec["optimizer_config"],
                                     spec["loss_scale"])
        self.entries = [None if d["class_name"] in GRAPH_ONLY else layer_rules.get(d["class_name"])
                        for d in spec["layers"]]
        self.layers = self.model.stack_layers
        self.sources = stack.sources_of(spec["layers"])
        self.layout = spec["layout"]
        names = [f"{i}:{d['class_name']}" for i, d in enumerate(spec["layers"])]
        self.layer_names = names
        self.weight_names = [f"{names[i]}/{w}" for i, w, _, _ in self.specs]
        self.trainable = [k for k, s in enumerate(self.specs) if s[3]]
        self.frozen = [k for k, s in enumerate(self.specs) if not s[3]]

    @staticmethod
    def moved(a, letters):
        """An array in the layout `letters` moved to Keras's (images: NCHW → NHWC); others as they are."""
        if letters is None or a.ndim != len(letters):
            return a
        return layouts.move(a, letters, _keras_letters(letters))

    def to_keras(self, a):
        """An array in the network's layout moved to Keras's (images: NCHW → NHWC)."""
        if self.layout is None or a.ndim != len(self.layout):
            return a
        return np.ascontiguousarray(layouts.move(a, self.layout, _keras_letters(self.layout)))

    def from_keras(self, a):
        if self.layout is None or a.ndim != len(self.layout):
            return a
        return layouts.move(a, _keras_letters(self.layout), self.layout)


def _fits(spec, sides, X, y):
    """An InputError unless y has the shape of the network's output (batch included) and, for an Embedding first,
    X holds whole ids in [0, input_dim)."""
    from keras_impl.stack import output_shapes
    out = output_shapes(sides.model, spec["layers"], len(X))[-1]
    if y.shape != tuple(out):
        raise InputError(f"y has shape {y.shape}; the network's output is {tuple(out)} (one-hot targets of the last "
                         "layer's shape, e.g. np.eye(classes)[labels])")
    first = spec["layers"][0]
    if first["class_name"] == "Embedding":
        size = int(first["config"]["input_dim"])
        bad = (X != np.round(X)) | (X < 0) | (X >= size)
        if bad.any():
            i = [int(j) for j in np.argwhere(bad)[0]]
            raise InputError(f"X holds {X[tuple(i)]!r} at index {i}: an Embedding reads whole ids in [0, {size}), "
                             f"input_dim = {size}")


# Measured on Keras 3.15.1, TensorFlow 2.21.0 (benchmarks/networks.py: the transformer's free-running drift 2.9e-3
# after one step, matched to 7e-18 by the per-occurrence formula).
SPARSE_NOTE = ("Keras's own training (model.fit) hands an Embedding's gradient to {optimizer} as IndexedSlices, one "
               "row per occurrence of an id in the batch, and updates the optimizer's state per occurrence: for Adam "
               "m += Σ_i (g_i − m)(1 − β1) and v += Σ_i (g_i² − v)(1 − β2) over an id's k occurrences, where the "
               "summed gradient g = Σ_i g_i gives m += (g − m)(1 − β1), v += (g² − v)(1 − β2); the check compares "
               "the numpy side with the update on the summed gradient (Keras's update of every other weight), and "
               "free-running, which follows Keras's own training, drifts from the first step")


_SIDES = {}  # built once per process for a network's layers, loss, optimizer and input shape, reset for each check


def sides_for(spec, shape, dtype):
    import json
    key = json.dumps([spec["layers"], spec["layout"], list(shape[1:]), spec["loss"], spec["loss_config"],
                      spec["loss_scale"], spec["optimizer"], spec["optimizer_config"], dtype], sort_keys=True, default=str)
    if key not in _SIDES:
        _SIDES[key] = Sides(spec, shape, dtype)
    _SIDES[key].step.reset(spec["learning_rate"])
    return _SIDES[key]


def _keras_letters(letters):
    """Keras's order of the same axes: batch, then space or time, then features (channels last)."""
    feature = [c for c in letters if c in "CF"]
    return "N" + "".join(c for c in letters if c not in "NCF") + "".join(feature)


def check_layers(network, X, y, steps=None, epochs=None, batch_size=None, seed=0, dtype="float64", history=False,
                 progress=None, free_running=False, referee=None, recorder=None):
    """Train the layered `network` and Keras's model of its layers side by side; the report as a dict.

    free_running: Keras also trains on its own (keras_impl/stack.py OwnStep: its own forward, from its own
    weights, the same batches and dropout masks), and the drift between that trajectory and the numpy side's,
    max|w_numpy − w_keras| / max|w_keras|, is measured after every step; past DRIFT_LIMIT the trajectories are
    declared decorrelated and the check stops there (verdict "incomplete", as for Dense networks). Every step
    is compared as in synced mode meanwhile, so that a mistake is still found at its step and layer.
    referee "finite_differences": the first mismatching step's gradients (or step 0's) against central differences
    of Keras's own loss (compare/referee.py fd_referee); "exact": that step in 50-digit arithmetic, each layer on
    the numpy side's input as in Keras's forced step (compare/exact_stack.py).
    recorder: given each passing step's values and tolerances (compare/golden/layered.py records a file)."""
    t0 = time.perf_counter()
    if dtype not in DTYPES:
        raise InputError(f"dtype must be one of {', '.join(DTYPES)}; received {dtype!r}")
    if dtype != "float64":
        raise InputError(f"a network with layers is checked in float64 (its float32 tolerances are not measured); "
                         f"received dtype={dtype!r}")
    use_backend("tensorflow")
    X = np.asarray(X)
    if X.ndim < 2 or X.size == 0:
        raise InputError(f"X must have a batch axis and at least one more, and rows; received shape {X.shape}")
    y = np.asarray(y)
    y_shape = y.shape
    flat, y, notes = data.checked(X.reshape(len(X), -1), y.reshape(len(y), -1) if y.ndim > 2 else y, dtype)
    if len(y_shape) > 2:  # per position (N, T, K): checked as rows, compared as given
        y = y.reshape(y_shape)
    spec = describe(network, X, y)
    X = np.ascontiguousarray(Sides.moved(flat.reshape(X.shape), spec["layout"]))  # Keras's layout from here on
    protocol.read_only(X), protocol.read_only(y)
    steps, batch_size, steps_per_epoch = lengths(X.shape[0], steps, epochs, batch_size, seed, notes)
    sides = sides_for(spec, X.shape, dtype)
    _fits(spec, sides, X, y)
    if referee == "exact":
        from .exact_stack import refuse
        from keras_impl.stack import output_shapes
        rows = min(batch_size, X.shape[0])
        refuse(spec["layers"], sides.sources, (rows,) + X.shape[1:], output_shapes(sides.model, spec["layers"], rows),
               sides.specs)
    u = UNIT_ROUNDOFF[dtype]
    stepper = LayerStepper(network, spec, sides, u, history)
    if any(d["class_name"] == "Embedding" for d in spec["layers"]) and stepper.update.keeps_state:
        notes.append(SPARSE_NOTE.format(optimizer=spec["optimizer"]))
    protocol.refuse_nonfinite(stepper._weights("network.get_weights()", [s[2] for s in sides.specs]), sides.weight_names)
    if recorder is not None:
        recorder.begin(spec, sides, X, y, batch_size)
    t_setup = time.perf_counter()
    schedule = batches(X.shape[0], batch_size, seed)
    drift, own = None, None
    if free_running:
        from keras_impl.stack import OwnStep
        from .sequence import new_drift, track_drift
        drift = new_drift()
        own = OwnStep(spec["layers"], X.shape[1:], stepper._weights("network.get_weights()", [s[2] for s in sides.specs]),
                      spec["learning_rate"], spec["loss"], spec["loss_config"], spec["optimizer"],
                      spec["optimizer_config"], dtype, spec["loss_scale"])
    with np.errstate(all="ignore"), ignored_exceptions() as ignored:
        try:
            for step in range(steps):
                epoch, rows = next(schedule)
                stepper.epoch = epoch
                stepper.run(step, X[rows], y[rows])
                if recorder is not None:
                    c = stepper.current
                    recorder.step(rows, stepper.masks, c["numpy"], c["keras"], c["tol"])
                if own is not None:
                    kept = own.step(X[rows], y[rows], stepper.drawn)
                    gap = [np.abs(m - k) for m, k in zip(stepper.current["numpy"]["updated"], kept)]
                    if track_drift(drift, step, gap, kept):
                        stepper.checked = step  # its update is past the limit: the free-running step is not vouched for
                        notes.append(f"free-running: the trajectories drifted {drift['max_rel']:.3g} apart (relative) "
                                     f"by step {step}, past the limit {drift['limit_rel']:g}; later steps were not "
                                     "compared (every step up to there was also compared synced)")
                        break
                if progress:
                    progress(step + 1, steps)
            inference = protocol.attribute(network, "inference", None)
            if callable(inference):  # after training: the network in inference mode, on every row
                stepper.inference(X, inference)
        except Stop as stop:
            stepper.stop = stop
            stepper.checked = stepper.current["step"] + 1 if stepper.current.get("phase") != "inference" else steps
            stepper.tally.end_step()
        except Inconclusive as exc:
            stepper.unbounded = str(exc)
            notes.append(str(exc))
    notes += [f"the network's code raised {text} during the check, which Python ignored" for text in ignored]
    if stepper.outputs_name != "network.forward(X)":
        notes.append(protocol.COMBINED_NOTE)
    stop = stepper.stop
    judged = None
    at = stepper.current if stop else stepper.first
    if referee and at is not None:
        at = dict(at, mismatch=stop.mismatch if stop else None)
        if at.get("phase") == "inference":  # a mismatch in the network's inference mode, after training
            from .exact_stack import inference_referee
            judged = inference_referee(at, sides, spec) if referee == "exact" else {
                "name": referee, "step": at["step"], "verdict": None,
                "note": "the mismatch is in the inference pass after training: finite differences judge a training "
                        "step's gradients (--referee exact judges the inference pass)"}
        elif referee == "exact":
            from .exact_stack import referee as exact_referee
            judged = exact_referee(at, sides, spec, first_step=at["step"] == 0)
        else:
            judged = _referee(at, sides, seed, stop.mismatch["quantity"] if stop and stop.mismatch else None)
    verdict = verdict_of(stop, stepper.checked, steps)
    if stepper.unbounded and not stop:
        verdict = "inconclusive"
    if verdict == "ok" and stepper.coarse:
        verdict = "inconclusive"
        worst = max(stepper.coarse, key=lambda c: c["resolution"])
        notes.append(f"inconclusive: the rounding of {worst['name']} (step {worst['step']}) allows differences up to "
                     f"{worst['resolution']:.2g} of its largest value, so a mistake that small could pass; every "
                     "element was within its tolerance (docs/layers.md, recurrent layers)")
    from .environment import versions
    return {
        "schema_version": SCHEMA_VERSION, "ok": verdict == "ok", "verdict": verdict, "coarse": stepper.coarse,
        "steps_checked": stepper.checked, "steps_requested": int(steps),
        "mode": "free-running" if free_running else "synced", "golden": None,
        "dtype": dtype, "backend": "tensorflow", "computed_dtype": dtype, "device": "cpu",
        "network": network_fields(spec, sides, network),
        "data": {"rows": int(X.shape[0]), "input_shape": list(X.shape[1:]), "outputs": int(y.shape[1]),
                 "batch_size": batch_size, "steps_per_epoch": steps_per_epoch,
                 "epochs_started": stepper.epoch + 1, "seed": seed},
        "notes": notes,
        **stop_fields(stop),
        "tensors": None,
        "max_diff": stepper.tally.overall,
        "inference": stepper.inferred,
        "drift": drift, "referee": judged,
        "tolerance": "per element: 2 x rounding-error bound of each layer on its numpy input (docs/networks.md)",
        "versions": {**versions(), DISTRIBUTION: tool_version()},
        **({"history": stepper.tally.history} if history else {}),
        "timing": {"setup_s": t_setup - t0, "steps_s": time.perf_counter() - t_setup,
                   "total_s": time.perf_counter() - t0},
    }


def _referee(at, sides, seed, mismatch):
    """Central differences of Keras's loss (keras_impl/stack.py loss_at) at the step `at`'s trainable weights, the
    non-trainable ones and the dropout masks as they entered it, against both sides' gradients."""
    from .referee import fd_referee
    numpy = at["numpy"]
    if "grads" not in numpy or "tol" not in at:
        return {"name": "finite_differences", "step": at["step"], "verdict": None,
                "note": "the mismatch came before the gradients: nothing for finite differences to judge"}
    entering, tr = numpy["weights"], sides.trainable

    def loss_at(trainable):
        weights = list(entering)
        for k, w in zip(tr, trainable):
            weights[k] = w
        return sides.step.loss_at(weights, at["X"], at["y"], at["drawn"])
    include = []
    m = at.get("mismatch")
    if m and m["quantity"] == "gradient" and m["name"][1:] in sides.weight_names:  # judge the mismatching element
        j = tr.index(sides.weight_names.index(m["name"][1:]))
        offset = sum(int(np.prod(entering[k].shape)) for k in tr[:j])
        include = [offset + int(np.ravel_multi_index(tuple(m["index"]), entering[tr[j]].shape))]
    result = fd_referee(at["step"], loss_at, [entering[k] for k in tr], numpy["grads"], at["keras"]["grads"],
                        at["tol"]["grads"], seed, mismatch, include=include)
    if mismatch in ("forward", "loss"):  # Keras's layers ran on the numpy side's outputs, which are wrong here
        result.update(verdict=None, note=f"the mismatch is in the {mismatch}: Keras's gradients at this step were "
                                         "taken through the numpy side's layer outputs (each Keras layer is called on "
                                         "them), so neither side's are the loss's; finite differences judge gradients")
    return result


class LayerStepper:
    """The steps of a layered network's check: the numpy side, Keras's forced step, tolerances, comparisons."""

    def __init__(self, network, spec, sides, u, history):
        self.network, self.spec, self.sides, self.u = network, spec, sides, u
        self.dtype = "float64" if u < 2.0 ** -30 else "float32"
        self.tally = Tally(history)
        self.update = UpdateTolerance(spec["optimizer"], spec["optimizer_config"], spec["learning_rate"], u)
        self.stop, self.checked, self.epoch, self.current, self.first = None, 0, 0, None, None
        self.coarse = []  # [{name, resolution, step}]: tensors whose rounding allows a mistake too large to pass
        self.inferred = None  # after the steps: {"rows", "compared"} of the inference-mode comparison
        self.unbounded = None  # the note of a step whose tolerance overflowed: the check stopped there
        self.outputs_name = "network.forward(X)"  # or the outputs of forward_and_gradients, where the network has it

    def inference(self, X, method):
        """The trained network in inference mode on every row of X: each layer's output (network.inference(X))
        against Keras's layer called with training=False on the same input, from the same weights."""
        from .layer_tolerance import bounds
        from .rounding import underflow
        sides, u = self.sides, self.u
        weights = self._weights("network.get_weights() after training", [s[2] for s in sides.specs])
        outs = self.layer_outputs("network.inference(X)", method, X)
        shapes = self._output_shapes(len(X))
        bad = next((i for i, (a, s) in enumerate(zip(outs, shapes)) if a.shape != tuple(s)), None)
        if bad is not None:
            raise InputError(f"network.inference(X) item {bad} ({sides.layer_names[bad]}) has shape {outs[bad].shape} "
                             f"in Keras's layout; Keras's output is {shapes[bad]}")
        keras_outs = sides.step.infer(weights, X, outs)
        tol = []
        for i, (layer, srcs) in enumerate(zip(sides.layers, sides.sources)):
            if sides.entries[i] is None:  # Add
                tol.append(2 * u * np.abs(keras_outs[i]) + 2 * underflow(u))
                continue
            x = X if srcs[0] < 0 else outs[srcs[0]]
            x = x.astype(np.int64) if sides.entries[i]["integer_input"] else x
            layer_weights = [w for w, s in zip(weights, sides.specs) if s[0] == i]
            tol.append(bounds(sides.entries[i], layer, x, np.zeros_like(keras_outs[i]), layer_weights, keras_outs[i],
                              outs[i], False, u, self.spec["layers"][i].get("call"))["output"])
        self.current = {"step": self.checked, "phase": "inference", "X": X, "numpy": {"forward": outs},
                        "keras": {"outputs": keras_outs}, "weights": weights, "tol": {"forward": tol}}
        self.tally.begin_step()
        try:
            self.tally.compare(self.checked, "forward", "inference", sides.layer_names, outs, keras_outs, tol)
        except Stop as stop:
            if stop.mismatch and not stop.nonfinite:
                from .diagnosis.stack import explain
                explain(stop, self)
            raise
        self.inferred = {"rows": int(len(X)), "compared": True}

    def coarse_tensors(self, keras, tol):
        """The outputs and gradients of the layers whose rounding can own a large part of their values (recurrent
        layers: compare/layer_check.COARSE) where the largest tolerance passes COARSE of the largest value."""
        from .layer_check import coarse_tensors
        sides, compared = self.sides, []
        for i, entry in enumerate(sides.entries):
            if entry is None or not entry["may_be_coarse"]:
                continue
            pairs = [(sides.layer_names[i], keras["outputs"][i], tol["forward"][i])]
            pairs += [("d" + sides.weight_names[k], keras["grads"][j], tol["grads"][j])
                      for j, k in enumerate(sides.trainable) if sides.specs[k][0] == i]
            compared += [{"quantity": "output", "name": n, "largest_value": float(np.max(np.abs(v), initial=0)),
                          "largest_tolerance": float(np.max(t, initial=0))} for n, v, t in pairs]
        return coarse_tensors(compared, self.dtype)

    # --- the numpy side --------------------------------------------------------------------------------
    def numpy_step(self, X, y, masks):
        """{weights, forward, loss, grads, updated} of the numpy network's step, in Keras's layouts and order;
        an InputError for a broken protocol."""
        net, sides = self.network, self.sides
        shapes = [s[2] for s in sides.specs]
        weights = self._weights("network.get_weights()", shapes)
        if masks:
            set_noise = protocol.attribute(net, "set_noise", None)
            if not callable(set_noise):
                raise InputError("the network has Dropout layers: it needs set_noise(masks) to receive the keep-masks "
                                 "the check gives both sides, one per Dropout layer")
            protocol.call("network.set_noise(masks)", set_noise,
                          [protocol.read_only(sides.from_keras(m).copy()) for m in masks])
        copy = lambda a: protocol.read_only(a.copy())  # noqa: E731  a fresh read-only copy for each call
        forward, result, what = protocol.outputs_and_gradients(
            net, lambda: copy(sides.from_keras(X)), lambda: copy(y),
            lambda got, name, combined: self.as_layer_outputs(name, got, "must be" if combined else "must return"))
        loss, grads = protocol.checked_gradients(result, [shapes[k] for k in sides.trainable], what)
        self.outputs_name = "network.forward(X)" if what != protocol.COMBINED_CALL else f"the outputs of {what}"
        grads = [np.array(g) for g in grads]
        protocol.call("network.apply_gradients(grads)", net.apply_gradients, [g.copy() for g in grads])
        updated = self._weights("network.get_weights() after the step", shapes)
        return {"weights": weights, "forward": forward, "loss": loss, "grads": grads, "updated": updated}

    def layer_outputs(self, what, method, X):
        """method(X) on a read-only copy of X in the network's layout: a list of one array per layer, as float64
        copies in Keras's layout; an InputError naming `what` otherwise."""
        return self.as_layer_outputs(what, protocol.call(what, method, protocol.read_only(self.sides.from_keras(X).copy())))

    def as_layer_outputs(self, what, got, verb="must return"):
        """What a network returned as its layer outputs, as float64 copies in Keras's layout; an InputError
        naming `what` unless it is a list of one array per layer."""
        sides = self.sides
        n = len(sides.layer_names)
        if not isinstance(got, (list, tuple)) or len(got) != n:
            raise InputError(f"{what} {verb} a list of {n} arrays, one per layer; received "
                             f"{type(got).__name__}{f' of {len(got)}' if isinstance(got, (list, tuple)) else ''}")
        return [sides.to_keras(np.array(protocol.as_float_array(a, f"{what} item {i}"))) for i, a in enumerate(got)]

    def _weights(self, what, shapes):
        got = protocol.call(what, self.network.get_weights)
        if not isinstance(got, (list, tuple)) or len(got) != len(shapes):
            expected = ", ".join(f"{n} {s}" for n, s in zip(self.sides.weight_names, shapes))
            from .layer_check import described
            raise InputError(f"{what} returned {described(got)}; expected {len(shapes)} arrays in Keras's order "
                             f"(model.get_weights()): {expected}")
        out = []
        for name, shape, w in zip(self.sides.weight_names, shapes, got):
            arr = np.array(protocol.as_float_array(w, f"weight {name}"))
            if arr.shape != tuple(shape):
                raise InputError(f"{what}: {name} has shape {arr.shape}; Keras's is {tuple(shape)}")
            out.append(arr)
        return out

    # --- one step ----------------------------------------------------------------------------------------
    def run(self, step, X, y):
        sides = self.sides
        from keras_impl.layer import seed_state
        masks = self.masks = sides.step.masks(len(X))
        drawn = self.drawn = [seed_state(layer) for layer in sides.layers]
        self.tally.begin_step()
        numpy = self.numpy_step(X, y, masks)
        self.current = {"step": step, "X": X, "y": y, "numpy": numpy, "masks": masks}
        shapes = self._output_shapes(len(X))
        bad = next((i for i, (a, s) in enumerate(zip(numpy["forward"], shapes)) if a.shape != tuple(s)), None)
        if bad is not None:
            raise InputError(f"{self.outputs_name} item {bad} ({sides.layer_names[bad]}) has shape "
                             f"{numpy['forward'][bad].shape} in Keras's layout; Keras's output is "
                             f"{shapes[bad]}")
        keras = sides.step.step(numpy["weights"], X, y, numpy["forward"])
        self.current.update(keras=keras, drawn=drawn)
        tol = self.current["tol"] = self.tolerances(X, y, numpy, keras, drawn)
        skip = self.overflowed(keras, tol)
        self.first = self.first or self.current
        self.compare(step, numpy, keras, tol, skip=skip)
        if skip:
            raise Inconclusive(f"at step {step} the rounding-error bound of {', '.join(skip.values())} overflowed (Keras's "
                               "values are finite there) and everything else agreed: the check cannot judge "
                               f"{'that tensor' if len(skip) == 1 else 'those tensors'}, this step or the ones after it; "
                               "a smaller learning rate keeps the logits and gates in range")
        self.coarse += [dict(c, step=step) for c in self.coarse_tensors(keras, tol) if c["name"] not in
                        {seen["name"] for seen in self.coarse}]
        self.checked = step + 1
        self.tally.end_step(numpy["loss"], keras["loss"])

    def overflowed(self, keras, tol):
        """{(quantity, index): name} of the tensors whose tolerance overflowed (inf, NaN, or the largest float a bound
        gives for one that overflowed: compare/rounding.py UNBOUNDED) although Keras's values are finite: far-apart
        logits or saturated recurrent gates at a large learning rate. The step compares every other tensor first, so
        that a mistake still shows as a mismatch (found by a review: an overflowed update bound had hidden a doubled
        gradient), and is inconclusive only if they all agree (found by benchmarks/network_false_alarms.py: at a
        learning rate of 5.4 such a bound had been reported as a mismatch, "could not bound")."""
        from .rounding import UNBOUNDED
        sides, found = self.sides, {}
        groups = [("forward", sides.layer_names, keras["outputs"], tol["forward"]),
                  ("gradient", ["d" + sides.weight_names[k] for k in sides.trainable], keras["grads"], tol["grads"]),
                  ("updated", [sides.weight_names[k] + " (updated)" for k in sides.trainable],
                   [keras["weights_out"][k] for k in sides.trainable], tol["updated"])]
        for quantity, names, values, tols in groups:
            for i, (name, v, t) in enumerate(zip(names, values, tols)):
                t = np.asarray(t)
                if np.all(np.isfinite(v)) and not np.all(np.isfinite(t) & (t < UNBOUNDED)):
                    found[(quantity, i)] = name
        return found

    def _output_shapes(self, rows):
        from keras_impl.stack import output_shapes
        return output_shapes(self.sides.model, self.spec["layers"], rows)

    def tolerances(self, X, y, numpy, keras, drawn):
        """Each layer's output, the loss, every gradient, the state after and the updated weights' tolerances.

        Backward, last layer first: the error of the gradient reaching a layer's output, one side's, is the loss's
        (the last layer) or the sum of what its consumers send back (each consumer's e_dx for that input), plus the
        rounding of adding them up where several consume it (γ_{k−1}·Σ|dx|); a layer's bound adds its own."""
        from keras_impl.layer import seed_state, set_seed_state
        from .layer_tolerance import bounds
        from .rounding import gamma, underflow
        sides, spec, u = self.sides, self.spec, self.u
        outs, layers, L = numpy["forward"], sides.layers, len(sides.layers)
        ins = [[X if j < 0 else outs[j] for j in srcs] for srcs in sides.sources]
        per_layer = [[keras["weights_in"][k] for k, s in enumerate(sides.specs) if s[0] == i] for i in range(L)]
        config = spec["loss_config"]
        loss_input = takes_logits(spec["loss"], config.get("from_logits", False),
                                  layer_rules.last_activation(spec["layers"]))
        logits = loss_input == "z"
        y_used = smooth_labels(y, spec["loss"], config.get("label_smoothing", 0.0))
        x = ins[-1][0] if logits else outs[-1]
        e_y = 2 * u * np.abs(y) + u * config["label_smoothing"] if config.get("label_smoothing") else 0.0
        rows = lambda a: a.reshape(-1, a.shape[-1]) if np.ndim(a) > 2 else a  # noqa: E731  (N, T, K): N·T rows
        e_loss, _, e_top = loss_rules.get(spec["loss"])["bounds"](loss_input, rows(y_used), rows(x),
                                                                  np.zeros_like(rows(x)), u, 1e-7,
                                                                  rows(e_y) if np.ndim(e_y) else e_y,
                                                                  None if logits else rows(x))
        c = loss_rules.convention_factor(config, spec["loss_scale"], rows(x).shape[0])  # a declared convention
        if c != 1:
            e_loss, _, e_top = loss_rules.scaled(c, loss_rules.scale_roundings(c, spec["loss_scale"], u), u, e_loss,
                                                 np.zeros_like(e_top), e_top, keras["loss"])
        e_top = np.reshape(e_top, x.shape)
        slot_dx, consumers = {}, {}
        given = iter(keras["dxs"])
        for i, srcs in enumerate(sides.sources):
            for s, j in enumerate(srcs):
                if j >= 0:
                    slot_dx[(i, s)] = next(given)
                    consumers.setdefault(j, []).append((i, s))
        e_into = {(L - 1, 0): e_top} if logits else {}  # (consumer, slot) → one side's error of the dx it sends
        out_tol, grad_tol, state_tol = [None] * L, {}, {}
        floor = 2 * underflow(u)
        for i in reversed(range(L)):
            dout = keras["douts"][i]
            if dout is None:  # a softmax whose loss Keras takes from its input, or a layer the loss does not reach
                e_dout = None
            elif i == L - 1:
                e_dout = e_top
            else:
                sent = [c for c in consumers.get(i, []) if c in e_into]  # a consumer the loss does not reach: no gradient
                e_dout = sum(e_into[c] for c in sent)
                if len(sent) > 1:
                    e_dout = e_dout + gamma(len(sent) - 1, u) * sum(np.abs(slot_dx[c]) for c in sent)
            if sides.entries[i] is None:  # Add: out = a + b, one rounding; each input's gradient is dout exactly
                out_tol[i] = 2 * u * np.abs(keras["outputs"][i]) + floor
                for s in range(len(sides.sources[i])):
                    e_into[(i, s)] = e_dout
                continue
            x_i = ins[i][0].astype(np.int64) if sides.entries[i]["integer_input"] else ins[i][0]
            after = seed_state(layers[i])  # a Dropout's state after the step; its bound redraws the step's mask
            set_seed_state(layers[i], drawn[i])
            try:
                b = bounds(sides.entries[i], layers[i], x_i, np.zeros_like(keras["outputs"][i]) if dout is None
                           else dout, per_layer[i], keras["outputs"][i], outs[i], True, u,
                           spec["layers"][i].get("call"), e_dout=e_dout)
            finally:
                set_seed_state(layers[i], after)
            out_tol[i] = b["output"]  # and where the loss does not reach the layer, its gradients' (zeros) from dout 0
            for k, t in zip([k for k in sides.trainable if sides.specs[k][0] == i], b["weights"]):
                grad_tol[k] = t
            for k, t in zip([k for k in sides.frozen if sides.specs[k][0] == i], b["state"]):
                state_tol[k] = t
            if b["input_gradient"] is not None and dout is not None:
                e_into[(i, 0)] = b["input_gradient"] / 2  # one side's
        grads_tol = [grad_tol[k] for k in sides.trainable]
        trainable_in = [keras["weights_in"][k] for k in sides.trainable]
        trainable_out = [keras["weights_out"][k] for k in sides.trainable]
        updated = self.update.step(trainable_in, keras["grads"], grads_tol, trainable_out, spec["learning_rate"])
        return {"forward": out_tol, "loss": 2 * float(e_loss), "grads": grads_tol, "updated": updated,
                "state": [state_tol.get(k, 0.0) for k in sides.frozen]}

    def compare(self, step, numpy, keras, tol, after_forward=None, skip=()):
        """The step's comparisons in order; after_forward() runs between the layer outputs and the loss (a golden
        replay's check that the layer outputs are the recorded ones); skip: the (quantity, index) of tensors whose
        tolerance overflowed, left out (the caller makes the step inconclusive)."""
        sides, tally = self.sides, self.tally
        names, tr, fr = sides.weight_names, sides.trainable, sides.frozen
        kept = lambda quantity, indices: [i for i in indices if (quantity, i) not in skip]  # noqa: E731
        try:
            tally.compare(step, "weights", "entering", names, numpy["weights"], keras["weights_in"],
                          [np.zeros(())] * len(names))
            out = kept("forward", range(len(sides.layer_names)))
            tally.compare(step, "forward", None, [sides.layer_names[i] for i in out], [numpy["forward"][i] for i in out],
                          [keras["outputs"][i] for i in out], [tol["forward"][i] for i in out])
            if after_forward is not None:
                after_forward()
            tally.compare(step, "loss", None, ["loss"], [np.float64(numpy["loss"])], [np.float64(keras["loss"])],
                          [np.float64(tol["loss"])])
            order = kept("gradient", sorted(range(len(tr)), key=lambda j: -sides.specs[tr[j]][0]))  # last layer first
            tally.compare(step, "gradient", None, ["d" + names[tr[j]] for j in order], [numpy["grads"][j] for j in order],
                          [keras["grads"][j] for j in order], [tol["grads"][j] for j in order])
            if fr:
                tally.compare(step, "weights", "after", [names[k] for k in fr], [numpy["updated"][k] for k in fr],
                              [keras["weights_out"][k] for k in fr], tol["state"])
            up = kept("updated", range(len(tr)))
            tally.compare(step, "weights", "updated", [names[tr[j]] for j in up], [numpy["updated"][tr[j]] for j in up],
                          [keras["weights_out"][tr[j]] for j in up], [tol["updated"][j] for j in up])
        except Stop as stop:
            if stop.mismatch and not stop.nonfinite:
                from .diagnosis.stack import explain
                explain(stop, self)
            raise


def network_fields(spec, sides, network):
    """A report's description of a layered network: its layers, layout, training spec and parameter count."""
    return {"layers": spec["layers"], "layout": spec["layout"], "learning_rate": spec["learning_rate"],
            "loss": spec["loss"], "loss_config": spec["loss_config"], "optimizer": spec["optimizer"],
            "optimizer_config": spec["optimizer_config"],
            "parameters": int(sum(np.prod(s[2]) for s in sides.specs if s[3])), "type": type(network).__name__}


class FileSides:
    """What a golden replay knows of the Keras side, from the file's config: names, shapes, order and layout."""

    def __init__(self, config):
        self.layer_names, self.weight_names = config["layer_names"], config["weight_names"]
        self.trainable, self.frozen, self.sources = config["trainable"], config["frozen"], config["sources"]
        self.specs = [(int(name.split(":")[0]), name.split("/", 1)[1], tuple(shape), k in self.trainable)
                      for k, (name, shape) in enumerate(zip(self.weight_names, config["weight_shapes"]))]
        self.layout = config["spec"]["layout"]
        self.entries = [None] * len(self.layer_names)

    to_keras, from_keras = Sides.to_keras, Sides.from_keras


def check_layers_golden(network, golden, steps=None, history=False, progress=None):
    """Play a layered golden file (compare/golden/layered.py) back against `network`, without TensorFlow or Keras:
    each step from the recorded weights and masks, compared with the recorded values and tolerances."""
    t0 = time.perf_counter()
    config = golden.config
    X, y = golden.files["X"], golden.files["y"]
    spec = describe(network, X, y)
    golden.verify(spec)
    recorded = config["steps"]
    steps = recorded if steps is None else positive("steps", steps, recorded)
    if steps > recorded:
        raise InputError(f"the golden file holds {recorded} steps; received steps={steps}")
    sides = FileSides(config)
    stepper = LayerStepper(network, spec, sides, UNIT_ROUNDOFF[config["dtype"]], history)
    notes, stop, inconclusive = list(config.get("notes", [])), None, None
    if callable(protocol.attribute(network, "inference", None)):
        notes.append("a golden file records the training steps only: network.inference(X) is compared in a live check "
                     "(python -m compare), not here")
    notes.append("a golden replay sets the network to the recorded weights before each step: its own initial weights "
                 "are not compared")
    t_setup = time.perf_counter()
    with np.errstate(all="ignore"), ignored_exceptions() as ignored:
        try:
            for t in range(steps):
                rec = golden.step(t)
                Xb, yb = X[rec["rows"]], y[rec["rows"]]
                protocol.call("network.set_weights(weights)", network.set_weights, [w.copy() for w in rec["weights_in"]])
                numpy = stepper.numpy_step(Xb, yb, rec["masks"])
                keras = {"weights_in": rec["weights_in"], "outputs": rec["keras_outputs"], "loss": rec["loss"],
                         "grads": rec["grads"], "weights_out": rec["weights_out"]}
                tol = {"forward": rec["tol_forward"], "loss": rec["tol_loss"], "grads": rec["tol_grads"],
                       "updated": rec["tol_updated"], "state": rec["tol_state"]}
                stepper.current = {"step": t, "X": Xb, "y": yb, "numpy": numpy, "keras": keras, "tol": tol}
                bad = [a.shape != b.shape for a, b in zip(numpy["forward"], rec["numpy_outputs"])]
                if any(bad):
                    i = bad.index(True)
                    raise InputError(f"{stepper.outputs_name} item {i} ({sides.layer_names[i]}) has shape "
                                     f"{numpy['forward'][i].shape} in Keras's layout; the recorded one is "
                                     f"{rec['numpy_outputs'][i].shape}")
                stepper.tally.begin_step()

                def same_inputs(numpy=numpy, rec=rec, t=t):
                    for i, (a, b) in enumerate(zip(numpy["forward"], rec["numpy_outputs"])):
                        if not np.array_equal(a, b):
                            raise Inconclusive(f"golden replay: at step {t} the output of {sides.layer_names[i]} is "
                                               f"within its tolerance but not the recorded one bit for bit (largest "
                                               f"difference {float(np.max(np.abs(a - b))):.3g}), so the layers after it "
                                               "had another input than Keras had in the file: run the check live "
                                               "(python -m compare) to judge them")
                stepper.compare(t, numpy, keras, tol, after_forward=same_inputs)
                stepper.checked = t + 1
                stepper.tally.end_step(numpy["loss"], keras["loss"])
                if progress:
                    progress(t + 1, steps)
        except Stop as caught:
            stop = caught
            stepper.checked = stepper.current["step"] + 1
            stepper.tally.end_step()
        except Inconclusive as exc:
            inconclusive = str(exc)
            notes.append(inconclusive)
    notes += [f"the network's code raised {text} during the check, which Python ignored" for text in ignored]
    verdict = verdict_of(stop, stepper.checked, steps)
    if inconclusive and not stop:
        verdict = "inconclusive"
    return {
        "schema_version": SCHEMA_VERSION, "ok": verdict == "ok", "verdict": verdict, "coarse": [],
        "steps_checked": stepper.checked, "steps_requested": int(steps), "mode": "golden", "golden": golden.identity(),
        "dtype": config["dtype"], "backend": "tensorflow", "computed_dtype": config["dtype"], "device": "recorded",
        "network": network_fields(spec, sides, network),
        "data": {"rows": int(X.shape[0]), "input_shape": list(X.shape[1:]), "outputs": int(y.shape[-1]),
                 "batch_size": config["batch_size"], "steps_per_epoch": -(-X.shape[0] // config["batch_size"]),
                 "epochs_started": None, "seed": config["seed"]},
        "notes": notes, **stop_fields(stop), "tensors": None,
        "max_diff": stepper.tally.overall, "inference": None, "drift": None, "referee": None,
        "tolerance": "per element: the recorded tolerances of the live check (docs/networks.md, golden files)",
        "versions": {**golden.versions},
        **({"history": stepper.tally.history} if history else {}),
        "timing": {"setup_s": t_setup - t0, "steps_s": time.perf_counter() - t_setup, "total_s": time.perf_counter() - t0},
    }
