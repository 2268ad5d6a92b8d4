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
        except (KeyError, ValueError) as exc:
            raise InputError(f"{self.path} is a damaged golden file: {exc}") from None
        self.sha256 = file_sha256(self.path)
        self.backend, self.device, self.computed_dtype = "tensorflow", "recorded", self.config["dtype"]
        self.notes = []

    def identity(self):
        return {"path": self.path, "sha256": self.sha256, "format": "layered 1", "recorded_with": dict(self.versions)}

    def verify(self, spec):
        """Refuse a network whose layers, loss, optimizer or learning rate are not the recorded ones."""
        recorded = self.config["spec"]
        for field in ("layers", "layout", "loss", "loss_config", "optimizer", "optimizer_config", "learning_rate"):
            if json.dumps(spec.get(field), sort_keys=True) != json.dumps(recorded.get(field), sort_keys=True):
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
