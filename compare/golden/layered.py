"""Golden files of networks that declare `layers`: a recorded check, played back without TensorFlow or Keras.

A live check calls each Keras layer on the numpy side's own output of the layer before it (compare/stack_check.py),
so Keras's numbers depend on the numpy side's. `record_layers` therefore records a whole passing check of the
network as it is: per step the batch, the dropout masks, the weights entering it, the numpy side's layer outputs
(each layer's input), Keras's layer outputs on them, its loss, gradients and weights after the step, and every
tolerance the check computed. Played back (`LayeredGolden`, compare/stack_check.py `check_layers_golden`), the
network is set to the recorded entering weights and masks, and each comparison is the live one: a layer's output
against Keras's on the same input, with the same tolerance. That holds while the network's layer outputs are the
recorded ones bit for bit (a deterministic network reproduces its own arithmetic); where one differs within its
tolerance, the layers after it had another input than Keras had, and the file cannot judge them: the check stops
there, "inconclusive" (exit 3), and says to run it live. An output outside its tolerance is a mismatch as live.

The file (np.savez_compressed, loaded with allow_pickle=False) holds `format`, `config` and `versions` (JSON), X, y,
`rows` and `row_offsets`, and per tensor one array stacked over steps (fixed shapes: weights, gradients, their
tolerances, the loss) or concatenated over batch rows (layer outputs, masks and their tolerances), named
`<kind>/<index>`; `sha256` is the content hash of all of them (record.py content_hash): any edit is refused.
"""
import json
import os
import zipfile

import numpy as np

from ..errors import InputError
from .record import HASH, content_hash

FORMAT = "numpy-keras-compare layered trajectory v1"
# per step, fixed shape (stacked): every weight entering and leaving the step, each trainable gradient, and their
# tolerances; per batch row (concatenated): each layer's numpy output and Keras output, their tolerances, masks
STACKED = ("weights_in", "weights_out", "grads", "tol_grads", "tol_updated", "tol_state")
ROWS = ("numpy_outputs", "keras_outputs", "tol_forward", "masks")


def record_layers(network, X, y, steps, batch_size=None, seed=0, dtype="float64"):
    """Run the live check of `network` for `steps` steps and return the arrays of its golden file; an InputError
    when the check does not pass (a golden file records an agreeing trajectory)."""
    from .. import stack_check
    from ..environment import versions
    from ..version import DISTRIBUTION, tool_version
    recorder = _Recorder()
    report = stack_check.check_layers(network, X, y, steps=steps, batch_size=batch_size, seed=seed, dtype=dtype,
                                      recorder=recorder)
    if report["verdict"] != "ok":
        where = report["first_mismatch"] or {}
        raise InputError(f"the network does not pass the live check ({report['verdict']}"
                         f"{', at step ' + str(where.get('step')) + ', ' + str(where.get('name')) if where else ''}): "
                         "a golden file records an agreeing trajectory; run python -m compare for the diagnosis")
    sides = recorder.sides
    config = {"spec": recorder.spec, "dtype": dtype, "steps": len(recorder.steps), "batch_size": recorder.batch_size,
              "seed": seed, "layer_names": sides.layer_names, "weight_names": sides.weight_names,
              "weight_shapes": [list(s[2]) for s in sides.specs], "trainable": sides.trainable,
              "frozen": sides.frozen, "sources": sides.sources,
              "dropouts": [i for i, d in enumerate(recorder.spec["layers"]) if d["class_name"] == "Dropout"],
              "x_shape": list(X.shape[1:]), "notes": report["notes"]}
    arrays = {"format": np.array(FORMAT), "config": np.array(json.dumps(config)),
              "versions": np.array(json.dumps({**versions(), DISTRIBUTION: tool_version()})),
              "X": recorder.X, "y": recorder.y, "rows": np.concatenate([s["rows"] for s in recorder.steps]),
              "row_offsets": np.cumsum([0] + [len(s["rows"]) for s in recorder.steps]),
              "loss": np.array([s["loss"] for s in recorder.steps]),
              "tol_loss": np.array([s["tol_loss"] for s in recorder.steps])}
    for kind in STACKED + ROWS:
        for i in range(len(recorder.steps[0][kind])):
            parts = [np.asarray(s[kind][i], dtype=np.float64) for s in recorder.steps]
            arrays[f"{kind}/{i}"] = np.concatenate(parts) if kind in ROWS else np.stack(parts)
    arrays[HASH] = np.array(content_hash(arrays))
    return arrays


class _Recorder:
    """What check_layers hands over at each step that passed: the step's values and tolerances."""

    def __init__(self):
        self.steps = []

    def begin(self, spec, sides, X, y, batch_size):
        self.spec, self.sides, self.X, self.y, self.batch_size = spec, sides, X, y, batch_size

    def step(self, rows, masks, numpy, keras, tol):
        sides = self.sides
        self.steps.append({
            "rows": np.asarray(rows), "loss": keras["loss"], "tol_loss": tol["loss"],
            "weights_in": numpy["weights"], "weights_out": keras["weights_out"], "grads": keras["grads"],
            "tol_grads": tol["grads"], "tol_updated": tol["updated"],
            "tol_state": [np.broadcast_to(t, keras["weights_out"][k].shape) for t, k in zip(tol["state"], sides.frozen)],
            "numpy_outputs": numpy["forward"], "keras_outputs": keras["outputs"],
            "tol_forward": [np.broadcast_to(t, o.shape) for t, o in zip(tol["forward"], keras["outputs"])],
            "masks": masks})


class LayeredGolden:
    """A layered golden file, loaded and checked: its arrays, config and versions, and each step's values."""

    def __init__(self, path):
        from .load import file_sha256, received_kind
        from ..data import load_npz
        self.path = str(path)
        if not os.path.isfile(self.path):
            raise InputError(f"no golden file {self.path!r}")
        with open(self.path, "rb") as f:
            head = f.read(8)
        if not head.startswith(b"PK\x03\x04") or not zipfile.is_zipfile(self.path):
            raise InputError(f"{self.path} is not a golden .npz file (received {received_kind(head, False)})")
        self.files = load_npz(self.path, (), "golden file")
        if str(self.files.get("format")) != FORMAT:
            raise InputError(f"{self.path} is not a layered golden trajectory (expected format {FORMAT!r})")
        if str(self.files.get(HASH)) != content_hash(self.files):
            raise InputError(f"{self.path} was edited after it was recorded (its content hash does not match): record "
                             "it again with python -m compare record")
        try:
            self.config = json.loads(str(self.files["config"]))
            self.versions = json.loads(str(self.files["versions"]))
        except (KeyError, ValueError, RecursionError) as exc:
            raise InputError(f"{self.path} is a damaged golden file: {type(exc).__name__}: {exc}") from None
        problem = structure_problem(self.files, self.config, self.versions)
        if problem:
            raise InputError(f"{self.path} is a damaged golden file: {problem}")
        self.sha256 = file_sha256(self.path)
        self.backend, self.device, self.computed_dtype = "tensorflow", "recorded", self.config["dtype"]
        self.notes = []

    def identity(self):
        return {"path": self.path, "sha256": self.sha256, "format": 1, "kind": "layered",
                "recorded_with": dict(self.versions)}

    def verify(self, spec):
        """Refuse a network whose layers, loss, optimizer or learning rate are not the recorded ones."""
        recorded = self.config["spec"]
        same = lambda a, b: json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)  # noqa: E731
        mine, theirs = spec["layers"], recorded.get("layers", [])
        differ = next((i for i in range(max(len(mine), len(theirs))) if i >= len(mine) or i >= len(theirs)
                       or not same(mine[i], theirs[i])), None)
        if differ is not None:
            shown = lambda layers: json.dumps(layers[differ]) if differ < len(layers) else "no layer"  # noqa: E731
            raise InputError(f"the golden file {self.path} was recorded for other layers: at layers[{differ}] it holds "
                             f"{shown(theirs)[:120]}, the network {shown(mine)[:120]}; record a file for this network")
        for field in ("layout", "loss", "loss_config", "optimizer", "optimizer_config", "learning_rate"):
            if not same(spec.get(field), recorded.get(field)):
                raise InputError(f"the golden file {self.path} was recorded for {field} "
                                 f"{json.dumps(recorded.get(field))[:160]}, but the network checked declares "
                                 f"{json.dumps(spec.get(field))[:160]}; record a file for this network")

    def count(self, kind):
        return sum(1 for name in self.files if name.startswith(kind + "/"))

    def step(self, t):
        """Step t's recorded values: rows, masks, weights in and out, layer outputs, loss, gradients, tolerances."""
        f, offsets = self.files, self.files["row_offsets"]
        lo, hi = int(offsets[t]), int(offsets[t + 1])
        out = {"rows": f["rows"][lo:hi], "loss": float(f["loss"][t]), "tol_loss": float(f["tol_loss"][t])}
        for kind in STACKED:
            out[kind] = [f[f"{kind}/{i}"][t] for i in range(self.count(kind))]
        for kind in ROWS:
            out[kind] = [f[f"{kind}/{i}"][lo:hi] for i in range(self.count(kind))]
        return out


# A recorded tolerance is at most this fraction of its quantity's largest value at that step: a live check whose
# tolerance is coarser is not "ok" (compare/layer_check.py COARSE) and is never recorded. The hash finds damage, not
# a deliberate edit whose hash was computed again; with this rule such an edit can hide a mistake only below 1e-6 of
# the largest value (found by a review: tolerances multiplied by 1e12 and the hash recomputed passed a sign flip).
PLAUSIBLE = 1e-6


def structure_problem(files, config, versions):
    """What makes a layered file's content impossible for a recording (None if nothing): the config's fields, every
    array's presence, dtype and shape, the batches' rows and offsets, finite tolerances ≥ 0 and plausible in size."""
    if not isinstance(config, dict) or not isinstance(versions, dict):
        return "config and versions must be JSON objects"
    need = {"spec": dict, "dtype": str, "steps": int, "batch_size": int, "seed": int, "layer_names": list,
            "weight_names": list, "weight_shapes": list, "trainable": list, "frozen": list, "sources": list,
            "dropouts": list, "x_shape": list}
    for key, kind in need.items():
        if not isinstance(config.get(key), kind) or isinstance(config.get(key), bool):
            return f"config {key} must be a {kind.__name__}; received {json.dumps(config.get(key))[:80]}"
    if config["dtype"] != "float64" or config["steps"] < 1 or not isinstance(config["spec"].get("layers"), list):
        return "config dtype must be float64, steps ≥ 1 and spec.layers a list"
    n_layers, n_weights, steps = len(config["layer_names"]), len(config["weight_names"]), config["steps"]
    tr, fr = config["trainable"], config["frozen"]
    if not all(isinstance(k, int) and 0 <= k < n_weights for k in tr + fr) or len(config["weight_shapes"]) != n_weights:
        return "config trainable/frozen must index the weights, and weight_shapes give each weight's shape"
    try:
        X, y, rows, offsets = files["X"], files["y"], files["rows"], files["row_offsets"]
        if X.dtype != np.float64 or y.dtype != np.float64 or rows.dtype.kind not in "iu" or offsets.dtype.kind not in "iu":
            return "X and y must be float64, rows and row_offsets integers"
        if offsets.shape != (steps + 1,) or offsets[0] != 0 or np.any(np.diff(offsets) <= 0) or offsets[-1] != len(rows):
            return f"row_offsets must rise from 0 to the {len(rows)} rows in {steps} steps"
        if rows.size and (rows.min() < 0 or rows.max() >= len(X)) or len(X) != len(y):
            return f"rows must index the {len(X)} rows of X and y"
        for name in ("loss", "tol_loss"):
            if files[name].shape != (steps,) or files[name].dtype != np.float64 or not np.all(np.isfinite(files[name])):
                return f"{name} must hold {steps} finite float64 numbers"
        counts = {"weights_in": n_weights, "weights_out": n_weights, "grads": len(tr), "tol_grads": len(tr),
                  "tol_updated": len(tr), "tol_state": len(fr), "numpy_outputs": n_layers, "keras_outputs": n_layers,
                  "tol_forward": n_layers, "masks": len(config["dropouts"])}
        shapes = [tuple(s) for s in config["weight_shapes"]]
        expected = {"weights_in": shapes, "weights_out": shapes, "grads": [shapes[k] for k in tr],
                    "tol_grads": [shapes[k] for k in tr], "tol_updated": [shapes[k] for k in tr],
                    "tol_state": [shapes[k] for k in fr]}
        for kind, n in counts.items():
            present = sorted(int(name.split("/")[1]) for name in files if name.startswith(kind + "/"))
            if present != list(range(n)):
                return f"it holds {len(present)} arrays {kind}/…; expected {n}"
            for i in range(n):
                a = files[f"{kind}/{i}"]
                want = (steps,) + expected[kind][i] if kind in expected else None
                if a.dtype != np.float64 or (want and a.shape != want) or (not want and a.shape[:1] != (len(rows),)):
                    return f"{kind}/{i} has dtype {a.dtype} and shape {a.shape}; expected float64 {want or (len(rows), '…')}"
        for kind, values in (("tol_forward", "keras_outputs"), ("tol_grads", "grads"), ("tol_updated", None)):
            for i in range(counts[kind]):
                t = files[f"{kind}/{i}"]
                if not np.all(np.isfinite(t) & (t >= 0)):
                    return f"{kind}/{i} holds a tolerance that is not a finite number ≥ 0"
        for kind, values in (("tol_forward", "keras_outputs"), ("tol_grads", "grads")):
            for t in range(steps):
                lo, hi = offsets[t], offsets[t + 1]
                part = (lambda a: a[lo:hi]) if kind == "tol_forward" else (lambda a: a[t])
                largest = max(float(np.max(np.abs(part(files[f"{values}/{i}"])), initial=0.0))
                              for i in range(counts[kind]))
                worst = max(float(np.max(part(files[f"{kind}/{i}"]), initial=0.0)) for i in range(counts[kind]))
                if worst > PLAUSIBLE * largest + 1e-300:
                    return (f"at step {t} a tolerance of {kind} is {worst:.3g}, more than {PLAUSIBLE:g} of the largest "
                            f"recorded value ({largest:.3g}): no recording of a passing check holds that")
    except KeyError as exc:
        return f"it lacks the array {exc}"
    return None
