"""Recording a golden trajectory: Keras alone from the network's initial weights, and the file's content hash."""
import hashlib
import json

import numpy as np

FORMAT = "numpy-keras-compare golden trajectory v2"
FORMAT_V1 = "numpy-keras-compare golden trajectory v1"  # no content hash; still loaded, with a note
HASH = "sha256"


def record(network, X, y, steps, batch_size=None, seed=0, dtype="float64", backend=None):
    """Run Keras alone from `network`'s initial weights for `steps` steps; return the arrays to save."""
    from .. import data, protocol
    from ..loop import batches
    from ..environment import computed_precision, device, keras_step as build_keras_step, use_backend, versions
    from ..version import DISTRIBUTION, tool_version
    backend = use_backend(backend)
    X, y, notes = data.checked(X, y)
    spec = protocol.describe(network, X.shape[1], y.shape[1])
    batch_size = batch_size or X.shape[0]
    keras_step = build_keras_step(spec, dtype)
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
              "batch_size": batch_size, "seed": seed, "notes": notes, "device": device(backend)}
    arrays = {"format": np.array(FORMAT), "config": np.array(json.dumps(config)),
              "versions": np.array(json.dumps({**versions(), DISTRIBUTION: tool_version()})), "X": X, "y": y,
              "row_offsets": np.cumsum([0] + [len(r) for r in per_step["rows"]]),
              "rows": np.concatenate(per_step["rows"]), "loss": np.array(per_step["loss"])}
    for i in range(len(weights)):
        arrays[f"w{i}"] = np.stack([w[i] for w in per_step["weights"]] + [weights[i]])
        arrays[f"g{i}"] = np.stack([g[i] for g in per_step["grads"]])
    for l in range(len(spec["activations"])):
        arrays[f"z{l}"] = np.concatenate([z[l] for z in per_step["zs"]])
        arrays[f"a{l}"] = np.concatenate([a[l] for a in per_step["activations"]])
    arrays[HASH] = np.array(content_hash(arrays))
    return arrays


def save(path, arrays):
    """np.savez_compressed to a temporary file beside `path`, then rename: never a half-written file. Compressed
    (deflate): 64-32-32-10 for 50 steps of 32 rows, 5,645 KiB → 4,216 KiB; files saved uncompressed by
    earlier versions (np.savez) load as they are."""
    from ..report import atomic_write
    atomic_write(path, lambda tmp: np.savez_compressed(tmp, **arrays), suffix=".npz")


def content_hash(arrays):
    """sha256 over every array but `sha256` itself, in sorted name order: per array the header line
    "name, dtype, shape, byte count", then its bytes in C order. Any edit to a value, a name, a dtype
    or a shape changes it."""
    digest = hashlib.sha256()
    for name in sorted(k for k in arrays if k != HASH):
        a = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}\n{a.dtype.str}\n{a.shape}\n{a.nbytes}\n".encode())
        digest.update(a.reshape(-1).view(np.uint8))
    return digest.hexdigest()


