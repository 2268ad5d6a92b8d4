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


def _step_of(key, index, offsets):
    """The first step whose record holds element `index` (first axis) of array `key`: w_t is the weights
    leaving step t − 1 (entering step 0 for t = 0), g_t and loss_t belong to step t, z and a rows to their batch."""
    if key[0] == "w":
        return max(index - 1, 0)
    if key[0] in "za":
        return int(np.searchsorted(offsets, index, side="right") - 1)
    return index


def diff(path_a, path_b):
    """What moved between two recordings of the same configuration: per quantity the largest absolute and
    relative change and the array it is in, every array that changed, and the first step where anything
    changed. Both files are loaded (and so checked) in full; files of different configurations, data or
    batches are refused with the fields that differ."""
    (fa, ca, va, _), (fb, cb, vb, _) = load(path_a), load(path_b)
    config_a, config_b = _configuration(ca), _configuration(cb)
    differing = [f"{k} {shown(config_a[k])} vs {shown(config_b[k])}" for k in config_a if config_a[k] != config_b[k]]
    for key in DATA:
        a, b = fa[key], fb[key]
        if a.shape != b.shape or a.dtype != b.dtype:
            differing.append(f"{key} of shape {a.shape} vs {b.shape}")
        elif _changed(a, b).any():
            i = tuple(int(j) for j in np.argwhere(_changed(a, b))[0])
            differing.append(f"{key}{list(i)} {a[i].item()!r} vs {b[i].item()!r}")
    if differing:
        raise InputError(f"{path_a} and {path_b} record different configurations: {'; '.join(differing)}; diff "
                         "compares re-recordings of the same network, data and batches")
    moved, first, changed = {}, None, []
    with np.errstate(all="ignore"):
        for quantity, pairs in _quantities(len(ca["spec"]["activations"])).items():
            worst = {"max_abs": 0.0, "max_rel": 0.0, "name": None}
            for key, name in pairs:
                a, b = fa[key], fb[key]
                mask = _changed(a, b)
                if not mask.any():
                    continue
                changed.append(name)
                d = np.where(mask, np.abs(a - b), 0.0)
                d[mask & ~np.isfinite(d)] = np.inf  # NaN against a number, or against another NaN
                size = np.abs(a)
                rel = float(np.where(np.isfinite(size), d / np.maximum(size, np.finfo(float).tiny), np.inf)[mask].max())
                if worst["name"] is None or d.max() > worst["max_abs"]:
                    worst.update(max_abs=float(d.max()), name=name)
                worst["max_rel"] = max(worst["max_rel"], rel)
                step = _step_of(key, int(np.argwhere(mask)[0][0]), fa["row_offsets"])
                first = step if first is None else min(first, step)
            moved[quantity] = worst
    environment = {k: {"backend": c["backend"], "device": c["device"], "computed_dtype": c["computed_dtype"]}
                   for k, c in (("a", ca), ("b", cb))}
    return {"identical": first is None, "first_changed_step": first, "moved": moved, "changed": changed,
            "versions": {"a": va, "b": vb}, "environment": environment, "steps": ca["steps"]}
