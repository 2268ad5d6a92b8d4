"""Loading a golden file: nothing in it is trusted. The file, its format, its hash, every config field,
every array's name, dtype and shape, the data and rows, then its consistency with itself (consistency.py);
and GoldenReference, which plays the trajectory back in place of Keras."""
import json
import os
import zipfile

import numpy as np

from numpy_impl.losses import LOSSES
from numpy_impl.optimizers import OPTIMIZERS

from ..errors import InputError
from ..rules import activations as activation_rules, losses as loss_rules, optimizers as optimizer_rules
from .consistency import consistency_problem, precision_problem
from .record import FORMAT, FORMAT_V1, HASH, content_hash

SPEC_FIELDS = ("sizes", "activations", "loss", "loss_config", "optimizer", "optimizer_config", "learning_rate")
OPTIONAL_SPEC_FIELDS = {"loss_scale": 1.0}  # a file recorded before the field existed: its default
CONFIG_KEYS = ("spec", "dtype", "backend", "computed_dtype", "steps", "batch_size", "seed", "notes", "device")
LOSS_DEFAULTS = {"from_logits": False, "label_smoothing": 0.0, "reduction": "sum_over_batch_size"}


def load(path):
    """(arrays, config, versions, notes) of a golden file that is readable, undamaged and consistent with
    itself; otherwise a one-line InputError that names the field or array at fault."""
    files, version = _read(path)
    config, versions = _config(files, path)
    _names(files, config, version, path)
    notes = []
    if version == FORMAT:
        stored, actual = _text(files[HASH]), content_hash(files)
        if stored != actual:
            raise InputError(f"{path} was edited after it was recorded (content hash {actual[:16]}… of its arrays, "
                             f"{str(stored)[:16]}… recorded): record it again with python -m compare record")
    else:
        notes.append(f"golden file {path} is in format v1, which holds no content hash: edits made to it after it "
                     "was recorded cannot be detected, only values inconsistent with the rest of the file; record "
                     "it again for a v2 file")
    _shapes(files, config, path)
    _values(files, config, path)
    problem = consistency_problem(files, config) or precision_problem(files, config)
    if problem:
        raise InputError(f"{path} is a damaged golden file: {problem}")
    return files, config, versions, notes


class GoldenReference:
    """Plays a recorded Keras trajectory back, step by step, in place of a live Keras model."""

    follow = True  # the numpy network is set to the recorded weights before each step

    def __init__(self, path):
        self.path = str(path)
        self.files, self.config, self.versions, self.notes = load(self.path)
        self.backend = self.config["backend"]
        self.computed_dtype = self.config["computed_dtype"]
        self.device = self.config["device"]
        self.sha256 = file_sha256(self.path)
        self.t = 0

    def identity(self):
        """What the report records of the file: its path, the sha256 of its bytes (as sha256sum prints it), its
        format (1 or 2) and the versions it was recorded with."""
        return {"path": self.path, "sha256": self.sha256, "format": 2 if _text(self.files["format"]) == FORMAT else 1,
                "recorded_with": dict(self.versions)}

    def verify(self, spec):
        """Refuse (InputError) a network whose spec (protocol.describe) is not the one the file was recorded
        for: layer sizes, activations, loss and its options, optimizer and its options, learning rate.
        Options are compared with their defaults filled in: {} and {"momentum": 0.0} are the same SGD; the
        loss's reduction and the loss_scale are part of the loss."""
        recorded = self.config["spec"]
        for field in SPEC_FIELDS + tuple(OPTIONAL_SPEC_FIELDS):
            mine, theirs = normalised(field, spec), normalised(field, recorded)
            if mine != theirs:
                raise InputError(f"the golden file {self.path} was recorded for {field} {shown(theirs)}, but the "
                                 f"network checked declares {field} {shown(mine)}; check it against a file recorded "
                                 "for this network (python -m compare record --impl ...)")

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


def file_sha256(path):
    """The sha256 of a file's bytes, as sha256sum prints it."""
    import hashlib
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read(path):
    """The file's arrays and its format line, or a one-line InputError for a missing, unreadable or foreign file."""
    from ..data import load_npz
    path = str(path)
    if not os.path.isfile(path):
        raise InputError(f"no golden file {path!r}")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise InputError(f"cannot read golden file {path!r}: {exc.strerror or exc}") from None
    zipped = zipfile.is_zipfile(path)
    if not head.startswith(b"PK\x03\x04") or not zipped:  # np.load reads what begins the file, is_zipfile its end
        raise InputError(f"{path} is not a golden .npz file (received {received_kind(head, zipped)}); expected the "
                         ".npz archive that python -m compare record writes")
    try:
        files = load_npz(path, (), "golden file")
    except InputError as exc:
        raise InputError(f"not a readable golden file: {exc}") from None
    version = _text(files.get("format"))
    if version not in (FORMAT, FORMAT_V1):
        given = files.get("format")
        received = "no format entry" if given is None else \
            f"format {shown(str(given))}" if given.dtype.kind == "U" else _described(given)
        raise InputError(f"{path} is not a golden trajectory of this tool (expected format {FORMAT!r}; received "
                         f"{received})")
    return files, version


def received_kind(head, zipped):
    """What a file that is not an .npz archive is, from its first bytes `head` and whether a zip archive
    ends it (`zipped`: zipfile.is_zipfile)."""
    if not head:
        return "an empty file"
    if head.startswith(b"\x93NUMPY"):
        return "a single .npy array"
    if head[:1] == b"\x80":
        kind = "a Python pickle"
    elif head.startswith(b"PK"):
        return "a damaged zip archive"
    else:
        kind = f"a file that begins with {head!r}"
    return f"{kind}{' with a zip archive appended' if zipped else ''}, which is never loaded"


def _text(a):
    """The string held by a 0-d unicode array, else None."""
    return str(a) if isinstance(a, np.ndarray) and a.ndim == 0 and a.dtype.kind == "U" else None


def shown(value, limit=120):
    text = json.dumps(value) if isinstance(value, (dict, list)) else repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _damaged(path, detail):
    return InputError(f"{path} is a damaged golden file: {detail}")


def _config(files, path):
    """The config and versions (JSON objects), every field checked for presence, type and range."""
    from .. import protocol
    from ..environment import BACKENDS, DTYPES
    parsed = {}
    for key in ("config", "versions"):
        text = _text(files.get(key))
        if text is None:
            raise _damaged(path, f"{key} must be a JSON string; received {_described(files.get(key))}")
        try:
            parsed[key] = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _damaged(path, f"{key} is not JSON ({exc.msg} at position {exc.pos})") from None
        except (ValueError, RecursionError) as exc:  # a number of over 4300 digits, nesting too deep
            raise _damaged(path, f"{key} is not JSON that can be read ({type(exc).__name__}: {exc})") from None
        if not isinstance(parsed[key], dict):
            raise _damaged(path, f"{key} must be a JSON object; received {shown(parsed[key])}")
    config, versions = parsed["config"], parsed["versions"]
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in versions.items()):
        raise _damaged(path, f"versions must map names to version strings; received {shown(versions)}")
    _keys(path, "config", config, CONFIG_KEYS)
    spec = config["spec"]
    if not isinstance(spec, dict):
        raise _damaged(path, f"config spec must be an object; received {shown(spec)}")
    _keys(path, "config spec", spec, SPEC_FIELDS, OPTIONAL_SPEC_FIELDS)

    def need(ok, field, expected):
        if not ok:
            value = spec.get(field.removeprefix("spec."), None) if field.startswith("spec.") else config[field]
            raise _damaged(path, f"config {field} must be {expected}; received {shown(value)}")

    sizes, names = spec["sizes"], spec["activations"]
    need(isinstance(sizes, list) and len(sizes) >= 2 and all(_int(s) and s > 0 for s in sizes), "spec.sizes",
         "a list of at least two integers > 0")
    need(isinstance(names, list) and len(names) == len(sizes) - 1, "spec.activations",
         f"a list of {len(sizes) - 1} activation names, one per layer of spec.sizes {sizes}")
    need(all(isinstance(a, str) and a in activation_rules.ACTIVATIONS for a in names), "spec.activations",
         f"names from {', '.join(sorted(activation_rules.ACTIVATIONS))}")
    need(not set(names[:-1]) & set(activation_rules.LAST_LAYER_ONLY), "spec.activations",
         f"free of {', '.join(activation_rules.LAST_LAYER_ONLY)} but on the last layer")
    lr = spec["learning_rate"]
    need(protocol.finite_number(lr) and lr > 0, "spec.learning_rate", "a finite number > 0")
    need(isinstance(spec["loss"], str) and spec["loss"] in LOSSES, "spec.loss", f"one of {', '.join(sorted(LOSSES))}")
    need(isinstance(spec["optimizer"], str) and spec["optimizer"] in OPTIMIZERS, "spec.optimizer",
         f"one of {', '.join(sorted(OPTIMIZERS))}")
    try:
        loss_rule = loss_rules.get(spec["loss"])
        spec["loss_config"] = protocol.checked_config("loss_config", spec["loss_config"], loss_rule["options"],
                                                      loss_rule["ranges"])
        spec["optimizer_config"] = protocol.checked_config("optimizer_config", spec["optimizer_config"],
                                                           OPTIMIZERS[spec["optimizer"]].defaults,
                                                           optimizer_rules.get(spec["optimizer"])["ranges"])
    except InputError as exc:
        raise _damaged(path, f"config spec: {exc}") from None
    spec["learning_rate"] = float(lr)
    scale = spec.setdefault("loss_scale", OPTIONAL_SPEC_FIELDS["loss_scale"])
    need(protocol.finite_number(scale) and scale > 0, "spec.loss_scale", "a finite number > 0")
    spec["loss_scale"] = float(scale)
    need(config["dtype"] in DTYPES, "dtype", f"one of {', '.join(DTYPES)}")
    need(config["backend"] in BACKENDS, "backend", f"one of {', '.join(BACKENDS)}")
    need(config["computed_dtype"] in DTYPES, "computed_dtype", f"one of {', '.join(DTYPES)}")
    need(config["computed_dtype"] == "float32" or config["dtype"] == "float64", "computed_dtype",
         f"float32 when dtype is float32 (dtype {config['dtype']!r})")
    need(config["computed_dtype"] == "float64" or config["dtype"] == "float32" or config["backend"] != "tensorflow",
         "computed_dtype", "float64 for dtype float64 on tensorflow (only jax and torch compute float64 in float32)")
    for key in ("steps", "batch_size"):
        need(_int(config[key]) and config[key] > 0, key, "an integer > 0")
    need(_int(config["seed"]) and config["seed"] >= 0, "seed", "an integer ≥ 0")
    need(isinstance(config["notes"], list) and all(isinstance(n, str) for n in config["notes"]), "notes",
         "a list of strings")
    need(isinstance(config["device"], str), "device", "a string")
    return config, versions


def _keys(path, what, mapping, keys, optional=()):
    missing, unknown = [k for k in keys if k not in mapping], sorted(set(mapping) - set(keys) - set(optional))
    if missing or unknown:
        found = f"lacks {', '.join(missing)}" if missing else f"has unknown keys {', '.join(map(str, unknown))}"
        raise _damaged(path, f"{what} {found}; expected keys {', '.join(keys)}")


def _int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def _described(a):
    return "nothing" if a is None else f"an array of dtype {a.dtype} and shape {a.shape}"


def _expected_shapes(config, rows):
    """name → (dtype kind, shape) of every array but the text ones; `rows`: len(rows), the recorded batch rows."""
    sizes, steps = config["spec"]["sizes"], config["steps"]
    out = {"rows": ("iu", (rows,)), "row_offsets": ("iu", (steps + 1,)), "loss": ("f", (steps,))}
    for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        for i, shape in ((2 * l, (n_out, n_in)), (2 * l + 1, (n_out,))):
            out[f"w{i}"], out[f"g{i}"] = ("f", (steps + 1, *shape)), ("f", (steps, *shape))
        out[f"z{l}"] = out[f"a{l}"] = ("f", (rows, n_out))
    return out


def _names(files, config, version, path):
    """Refuse missing arrays, and arrays no recording writes."""
    expected = {"format", "config", "versions", "X", "y"} | set(_expected_shapes(config, 0))
    expected |= {HASH} if version == FORMAT else set()
    missing, unknown = sorted(expected - set(files)), sorted(set(files) - expected)
    if missing:
        raise _damaged(path, f"missing arrays {missing}")
    if unknown:
        raise _damaged(path, f"holds arrays {unknown} that no recording of this network writes")
    if version == FORMAT and _text(files[HASH]) is None:
        raise _damaged(path, f"{HASH} must be a string; received {_described(files[HASH])}")


def _shapes(files, config, path):
    """Every array's dtype (float64 values, integer rows) and shape: X (N, sizes[0]), y (N, sizes[-1]),
    w_i (steps + 1, shape_i), g_i (steps, shape_i), z_l and a_l (len(rows), sizes[l + 1]), loss (steps,)."""
    sizes, X, rows = config["spec"]["sizes"], files["X"], files["rows"]
    n = X.shape[0] if X.ndim == 2 and X.shape[0] > 0 else "N ≥ 1"
    wanted = {"X": ("f", (n, sizes[0])), "y": ("f", (n, sizes[-1]))}
    wanted.update(_expected_shapes(config, rows.shape[0] if rows.ndim == 1 else "R"))
    for name, (kinds, shape) in wanted.items():
        a = files[name]
        ok_dtype = a.dtype.kind in kinds and (kinds != "f" or a.dtype == np.float64)
        if not ok_dtype or a.shape != shape:
            dtype = "float64" if kinds == "f" else "integers"
            raise _damaged(path, f"array {name} has dtype {a.dtype} and shape {a.shape}; expected {dtype} of "
                                 f"shape {shape} for {len(sizes) - 1} layers {sizes} and {config['steps']} steps")


def _values(files, config, path):
    """Data finite (as the check needs it), rows in [0, N), row offsets 0 = o_0 < o_1 < ... = len(rows) with
    batches of at most min(batch_size, N) rows, initial weights finite. Rows and offsets become int64."""
    from ..data import checked
    try:
        checked(files["X"], files["y"], config["dtype"])
    except InputError as exc:
        raise InputError(f"{path} holds data the check cannot use: {exc}") from None
    n, rows, offsets = files["X"].shape[0], files["rows"], files["row_offsets"]
    outside = (rows < 0) | (rows >= n)
    if outside.any():
        i = int(np.argmax(outside))
        raise _damaged(path, f"rows[{i}] is {int(rows[i])}, outside the {n} rows of X (expected 0 ≤ row < {n})")
    sizes = np.diff(offsets)
    largest = min(config["batch_size"], n)
    if offsets[0] != 0 or offsets[-1] != len(rows) or (sizes <= 0).any() or (sizes > largest).any():
        raise _damaged(path, f"row_offsets {shown(offsets.tolist(), 80)} must rise from 0 to len(rows) = "
                             f"{len(rows)} in steps of 1 to {largest} rows (batch_size {config['batch_size']})")
    for i in range(2 * len(config["spec"]["activations"])):
        w = files[f"w{i}"][0]
        if not np.isfinite(w).all():
            where = [int(j) for j in np.argwhere(~np.isfinite(w))[0]]
            raise _damaged(path, f"the initial weights w{i}[0] hold {float(w[tuple(where)])} at {where}; expected "
                                 "finite numbers")
    files["rows"], files["row_offsets"] = rows.astype(np.int64), offsets.astype(np.int64)


def normalised(field, spec):
    """A spec field in a form that compares equal exactly when it means the same: options with defaults."""
    value = spec[field] if field in spec or field not in OPTIONAL_SPEC_FIELDS else OPTIONAL_SPEC_FIELDS[field]
    if field == "loss_config":
        return {**LOSS_DEFAULTS, **value}
    if field == "optimizer_config":
        return {**OPTIMIZERS[spec["optimizer"]].defaults, **value} if spec["optimizer"] in OPTIMIZERS else value
    if field in ("learning_rate", "loss_scale"):
        return float(value)
    return list(value) if isinstance(value, (list, tuple)) else value


