"""diff: what moved between two recordings of the same configuration."""
import numpy as np

from ..errors import InputError
from .load import OPTIONAL_SPEC_FIELDS, SPEC_FIELDS, load, normalised, shown

DATA = ("X", "y", "rows", "row_offsets")


def _configuration(config):
    """The fields that make two recordings re-recordings of one run (the backend, device and versions may differ)."""
    fields = {f"spec.{k}": normalised(k, config["spec"]) for k in SPEC_FIELDS + tuple(OPTIONAL_SPEC_FIELDS)}
    fields.update({k: config[k] for k in ("dtype", "steps", "batch_size")})
    return fields


def _quantities(n_layers):
    """quantity → [(array, name in reports)]: weights W0, b0, ..., z0, ..., a0, ..., loss, gradients dW0, db0, ..."""
    from ..names import weight_names
    names = weight_names(2 * n_layers)
    return {"weights": [(f"w{i}", n) for i, n in enumerate(names)],
            "pre-activation": [(f"z{l}", f"z{l}") for l in range(n_layers)],
            "forward": [(f"a{l}", f"a{l}") for l in range(n_layers)],
            "loss": [("loss", "loss")],
            "gradient": [(f"g{i}", "d" + n) for i, n in enumerate(names)]}


def _changed(a, b):
    """Elementwise: whether a and b (same shape and dtype) differ bit for bit (−0 ≠ 0, NaN payloads count)."""
    a, b, width = np.ascontiguousarray(a), np.ascontiguousarray(b), a.dtype.itemsize
    return (a.view(np.uint8).reshape(*a.shape, width) != b.view(np.uint8).reshape(*b.shape, width)).any(axis=-1)


def _inputs_differing(fa, fb, keys):
    """One line per array of `keys` that is not the same bit for bit in both files (shape, dtype or an element)."""
    lines = []
    for key in keys:
        a, b = fa[key], fb.get(key)
        if b is None or a.shape != b.shape or a.dtype != b.dtype:
            lines.append(f"{key} of shape {a.shape} vs {None if b is None else b.shape}")
        elif _changed(a, b).any():
            i = tuple(int(j) for j in np.argwhere(_changed(a, b))[0])
            lines.append(f"{key}{list(i)} {a[i].item()!r} vs {b[i].item()!r}")
    return lines


def _measure(worst, a, b, name):
    """Fold into `worst` ({max_abs, max_rel, name}) how far b moved from a where they differ bit for bit (a NaN
    against a number, or against another NaN, counts as infinitely far); the mask of those elements, or None."""
    mask = _changed(a, b)
    if not mask.any():
        return None
    d = np.where(mask, np.abs(a - b), 0.0)
    d[mask & ~np.isfinite(d)] = np.inf
    size = np.abs(a)
    rel = float(np.where(np.isfinite(size), d / np.maximum(size, np.finfo(float).tiny), np.inf)[mask].max())
    if worst["name"] is None or d.max() > worst["max_abs"]:
        worst.update(max_abs=float(d.max()), name=name)
    worst["max_rel"] = max(worst["max_rel"], rel)
    return mask


def _step_of(key, index, offsets):
    """The first step whose record holds element `index` (first axis) of array `key`: w_t is the weights
    leaving step t − 1 (entering step 0 for t = 0), g_t and loss_t belong to step t, z and a rows to their batch."""
    if key[0] == "w":
        return max(index - 1, 0)
    if key[0] in "za":
        return int(np.searchsorted(offsets, index, side="right") - 1)
    return index


def _is_layered(path):
    from .layered import FORMAT as LAYERED
    try:
        with np.load(path, allow_pickle=False) as f:
            return "format" in f.files and str(f["format"]) == LAYERED
    except (OSError, ValueError):
        return False  # load() below says what the file is


def diff(path_a, path_b):
    """What moved between two recordings of the same configuration: per quantity the largest absolute and
    relative change and the array it is in, every array that changed, and the first step where anything
    changed. Both files are loaded (and so checked) in full; files of different configurations, data or
    batches are refused with the fields that differ. Two recordings of a network with layers: diff_layered."""
    layered = _is_layered(path_a), _is_layered(path_b)
    if any(layered):
        if not all(layered):
            kinds = ["a network with layers" if k else "a Dense network" for k in layered]
            raise InputError(f"{path_a} records {kinds[0]} and {path_b} {kinds[1]}: diff compares re-recordings of "
                             "the same network")
        return diff_layered(path_a, path_b)
    (fa, ca, va, _), (fb, cb, vb, _) = load(path_a), load(path_b)
    config_a, config_b = _configuration(ca), _configuration(cb)
    differing = [f"{k} {shown(config_a[k])} vs {shown(config_b[k])}" for k in config_a if config_a[k] != config_b[k]]
    differing += _inputs_differing(fa, fb, DATA)
    if differing:
        raise InputError(f"{path_a} and {path_b} record different configurations: {'; '.join(differing)}; diff "
                         "compares re-recordings of the same network, data and batches")
    moved, first, changed = {}, None, []
    with np.errstate(all="ignore"):
        for quantity, pairs in _quantities(len(ca["spec"]["activations"])).items():
            worst = {"max_abs": 0.0, "max_rel": 0.0, "name": None}
            for key, name in pairs:
                mask = _measure(worst, fa[key], fb[key], name)
                if mask is None:
                    continue
                changed.append(name)
                step = _step_of(key, int(np.argwhere(mask)[0][0]), fa["row_offsets"])
                first = step if first is None else min(first, step)
            moved[quantity] = worst
    environment = {k: {"backend": c["backend"], "device": c["device"], "computed_dtype": c["computed_dtype"]}
                   for k, c in (("a", ca), ("b", cb))}
    return {"identical": first is None, "first_changed_step": first, "moved": moved, "changed": changed,
            "versions": {"a": va, "b": vb}, "environment": environment, "steps": ca["steps"]}


def _layered_arrays(config, count):
    """quantity → [(array key, name in reports, per-row or per-step)] of a layered recording: Keras's values on the
    numpy side's inputs, and the tolerances the check computed from them."""
    layers, weights, tr, fr = config["layer_names"], config["weight_names"], config["trainable"], config["frozen"]
    return {
        "forward": [(f"keras_outputs/{i}", layers[i], "rows") for i in range(count("keras_outputs"))],
        "loss": [("loss", "loss", "steps")],
        "gradient": [(f"grads/{j}", "d" + weights[k], "steps") for j, k in enumerate(tr)],
        "weights": [(f"weights_out/{k}", f"{weights[k]} (after)", "steps") for k in range(len(weights))],
        "tolerance": ([(f"tol_forward/{i}", f"tolerance of {layers[i]}", "rows") for i in range(count("tol_forward"))]
                      + [("tol_loss", "tolerance of the loss", "steps")]
                      + [(f"tol_grads/{j}", f"tolerance of d{weights[k]}", "steps") for j, k in enumerate(tr)]
                      + [(f"tol_updated/{j}", f"tolerance of {weights[k]} (updated)", "steps") for j, k in enumerate(tr)]
                      + [(f"tol_state/{j}", f"tolerance of {weights[k]} (after)", "steps") for j, k in enumerate(fr)]),
    }


def diff_layered(path_a, path_b):
    """diff for two recordings of a network with layers (compare/golden/layered.py), e.g. before and after a Keras
    upgrade: the numpy side's values (each layer's input, the weights entering each step) must be the same bit for
    bit, so that what moved is Keras's: its layer outputs on those inputs, its loss, gradients and weights after each
    step. Each file is loaded as check --golden loads it (its hash and structure checked)."""
    from .layered import LayeredGolden
    a, b = LayeredGolden(path_a), LayeredGolden(path_b)
    fa, fb, ca, cb = a.files, b.files, a.config, b.config
    same_config = {k: (ca[k], cb[k]) for k in ("spec", "dtype", "steps", "batch_size", "layer_names", "weight_names",
                                               "weight_shapes") if ca[k] != cb[k]}
    differing = [f"{k} {shown(x)} vs {shown(y)}" for k, (x, y) in same_config.items()]
    if not differing:
        differing = _inputs_differing(fa, fb, DATA + tuple(k for k in fa if k.split("/")[0] in
                                                           ("numpy_outputs", "weights_in", "masks")))
    if differing:
        raise InputError(f"{path_a} and {path_b} record different runs: {'; '.join(differing[:3])}; diff compares "
                         "re-recordings of the same network, data, batches and numpy side (its layer outputs and "
                         "weights must be the same bit for bit)")
    offsets, moved, first, changed = fa["row_offsets"], {}, None, []
    with np.errstate(all="ignore"):
        for quantity, arrays in _layered_arrays(ca, a.count).items():
            worst = {"max_abs": 0.0, "max_rel": 0.0, "name": None}
            for key, name, along in arrays:
                mask = _measure(worst, fa[key], fb[key], name)
                if mask is None:
                    continue
                changed.append(name)
                index = int(np.argwhere(np.atleast_1d(mask))[0][0])  # a row of the batches, or a step
                step = int(np.searchsorted(offsets, index, side="right") - 1) if along == "rows" else index
                first = step if first is None else min(first, step)
            moved[quantity] = worst
    environment = {k: {"backend": "tensorflow", "device": "cpu", "computed_dtype": c["dtype"]} for k, c in
                   (("a", ca), ("b", cb))}
    return {"identical": first is None, "first_changed_step": first, "moved": moved, "changed": changed,
            "versions": {"a": a.versions, "b": b.versions}, "environment": environment, "steps": ca["steps"]}
