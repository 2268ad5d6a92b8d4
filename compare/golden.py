"""Golden trajectories: record the Keras side once, check numpy networks against the file without Keras.

A file is an .npz (loaded with allow_pickle=False) holding, for a Keras run trained on its own from
the network's initial weights: per step the weights entering it, each layer's pre-activation and
output, the loss, the gradients, and the final weights; plus the data, the batches, the config and
the versions of Keras, its backend and numpy.
"""
import json
import zipfile

import numpy as np

from .errors import InputError

FORMAT = "numpy-keras-compare golden trajectory v1"


def record(network, X, y, steps, batch_size=None, seed=0, dtype="float64", backend=None):
    """Run Keras alone from `network`'s initial weights for `steps` steps; return the arrays to save."""
    from . import data, protocol
    from .check import _device, _keras_step, _versions, batches, computed_precision, use_backend
    backend = use_backend(backend)
    X, y, notes = data.checked(X, y)
    spec = protocol.describe(network, X.shape[1], y.shape[1])
    batch_size = batch_size or X.shape[0]
    keras_step = _keras_step(spec, dtype)
    weights = protocol.weights_of(network, len(spec["activations"]))
    schedule = batches(X.shape[0], batch_size, seed)
    per_step = {"rows": [], "loss": [], "grads": [], "weights": [], "zs": [], "activations": []}
    computed = computed_precision(keras_step, spec, dtype, min(batch_size, X.shape[0]))
    for _ in range(steps):
        _, rows = next(schedule)
        out = keras_step.step(weights, X[rows], y[rows])
        per_step["rows"].append(rows)
        per_step["loss"].append(out["loss"])
        per_step["grads"].append(out["grads"])
        per_step["weights"].append(out["weights_in"])
        per_step["zs"].append(out["zs"])
        per_step["activations"].append(out["activations"])
        weights = out["weights_out"]
    config = {"spec": spec, "dtype": dtype, "backend": backend, "computed_dtype": computed, "steps": steps,
              "batch_size": batch_size, "seed": seed, "notes": notes, "device": _device(backend)}
    arrays = {"format": np.array(FORMAT), "config": np.array(json.dumps(config)),
              "versions": np.array(json.dumps(_versions())), "X": X, "y": y,
              "row_offsets": np.cumsum([0] + [len(r) for r in per_step["rows"]]),
              "rows": np.concatenate(per_step["rows"]), "loss": np.array(per_step["loss"])}
    for i in range(len(weights)):
        arrays[f"w{i}"] = np.stack([w[i] for w in per_step["weights"]] + [weights[i]])
        arrays[f"g{i}"] = np.stack([g[i] for g in per_step["grads"]])
    for l in range(len(spec["activations"])):
        arrays[f"z{l}"] = np.concatenate([z[l] for z in per_step["zs"]])
        arrays[f"a{l}"] = np.concatenate([a[l] for a in per_step["activations"]])
    return arrays


def save(path, arrays):
    """np.savez to a temporary file beside `path`, then rename: never a half-written file."""
    from .report import atomic_write
    atomic_write(path, lambda tmp: np.savez(tmp, **arrays), suffix=".npz")


def load(path):
    """The golden file's arrays and config, or a one-line InputError for a missing, corrupt or foreign file."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            files = dict(npz.items())
    except FileNotFoundError:
        raise InputError(f"no golden file {path!r}") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise InputError(f"{path} is not a readable golden file (.npz): {type(exc).__name__}: {exc}") from None
    if "format" not in files or str(files["format"]) != FORMAT:
        raise InputError(f"{path} is not a golden trajectory of this tool (expected format {FORMAT!r})")
    try:
        config, versions = json.loads(str(files["config"])), json.loads(str(files["versions"]))
        n_layers, steps = len(config["spec"]["activations"]), config["steps"]
        needed = ["X", "y", "rows", "row_offsets", "loss"] + [f"{k}{i}" for k in "wg" for i in range(2 * n_layers)] \
            + [f"{k}{l}" for k in "za" for l in range(n_layers)]
        missing = [k for k in needed if k not in files]
        if missing or len(files["loss"]) != steps or len(files["row_offsets"]) != steps + 1:
            raise ValueError(f"missing or inconsistent arrays {missing or ['loss', 'row_offsets']}")
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path} is a damaged golden file: {exc}") from None
    return files, config, versions


class GoldenReference:
    """Plays a recorded Keras trajectory back, step by step, in place of a live Keras model."""

    follow = True  # the numpy network is set to the recorded weights before each step

    def __init__(self, path):
        self.files, self.config, self.versions = load(path)
        self.backend = self.config["backend"]
        self.computed_dtype = self.config["computed_dtype"]
        self.device = self.config.get("device", "recorded")
        self.t = 0

    def schedule(self):
        offsets = self.files["row_offsets"]
        for t in range(self.config["steps"]):
            yield 0, self.files["rows"][offsets[t]:offsets[t + 1]]

    def reset(self, learning_rate):
        self.t = 0

    def step(self, weights, X, y):
        t, f = self.t, self.files
        lo, hi = f["row_offsets"][t], f["row_offsets"][t + 1]
        n = len(self.config["spec"]["activations"])
        self.t += 1
        return {"weights_in": [f[f"w{i}"][t] for i in range(2 * n)],
                "zs": [f[f"z{l}"][lo:hi] for l in range(n)], "activations": [f[f"a{l}"][lo:hi] for l in range(n)],
                "loss": float(f["loss"][t]), "grads": [f[f"g{i}"][t] for i in range(2 * n)],
                "weights_out": [f[f"w{i}"][t + 1] for i in range(2 * n)]}


def diff(path_a, path_b):
    """What moved between two recordings of the same configuration: per quantity the largest absolute and
    relative change, and the first step where anything changed."""
    (fa, ca, va), (fb, cb, vb) = load(path_a), load(path_b)
    if ca["spec"] != cb["spec"] or ca["steps"] != cb["steps"] or not np.array_equal(fa["rows"], fb["rows"]) \
            or not (np.array_equal(fa["X"], fb["X"]) and np.array_equal(fa["y"], fb["y"])):
        raise InputError(f"{path_a} and {path_b} record different configurations; diff compares re-recordings "
                         "of the same network, data and batches")
    n = len(ca["spec"]["activations"])
    groups = {"weights": [f"w{i}" for i in range(2 * n)], "forward": [f"a{l}" for l in range(n)],
              "loss": ["loss"], "gradient": [f"g{i}" for i in range(2 * n)]}
    moved, first = {}, None
    for quantity, keys in groups.items():
        worst = {"max_abs": 0.0, "max_rel": 0.0, "name": None}
        for key in keys:
            a, b = fa[key].astype(float), fb[key].astype(float)
            d = np.abs(a - b)
            rel = float((d / np.maximum(np.abs(a), np.finfo(float).tiny)).max()) if d.size else 0.0
            if d.size and d.max() > worst["max_abs"]:
                worst.update(max_abs=float(d.max()), name=key)
            worst["max_rel"] = max(worst["max_rel"], rel)
            if d.size and d.max() > 0:
                changed = np.nonzero(d.reshape(len(d), -1).max(axis=1) > 0)[0]
                step = int(changed[0]) if key[0] in "wgl" else int(np.searchsorted(fa["row_offsets"], changed[0],
                                                                                     side="right") - 1)
                first = step if first is None else min(first, step)
        moved[quantity] = worst
    return {"identical": first is None, "first_changed_step": first, "moved": moved,
            "versions": {"a": va, "b": vb}, "steps": ca["steps"]}
