"""Golden trajectories: record the Keras side once, check numpy networks against the file without Keras.

A file is an .npz (loaded with allow_pickle=False) holding, for a Keras run trained on its own from
the network's initial weights: per step the weights entering it (w0, w1, ...: W0, b0, ...), each
layer's pre-activation and output (z0, a0, ...: one row per batch row, batches one after another),
the loss and the gradients (g0, g1, ...), and the final weights; plus the data (X, y), the batches
(rows, row_offsets), the config and the versions of Keras, its backend and numpy. Format v2 adds
`sha256`, a content hash of every other array (content_hash).

A golden file is the reference a network is judged by, so `load` trusts nothing in it. It refuses
with one line (InputError: exit 2) a file that is missing, not an .npz, of another format, edited
after it was recorded (the hash), damaged in any field (the config, an array's name, dtype or shape,
rows out of range), or inconsistent with itself: every recorded value is recomputed from the file's
own earlier values within a rounding bound (the checks below). A value may be non-finite only where
that recomputation is non-finite too, so the recording of a diverging run still loads.
"""
import hashlib
import json
import math
import os
import zipfile

import numpy as np

from numpy_impl.losses import EPSILON, LOSSES, smooth_labels, takes_logits
from numpy_impl import ops
from numpy_impl.ops import ACTIVATIONS
from numpy_impl.optimizers import OPTIMIZERS

from .errors import InputError
from .rounding import UNIT_ROUNDOFF, gamma
from .rules import activations as activation_rules, losses as loss_rules, optimizers as optimizer_rules
from .tolerance import step_tolerances

FORMAT = "numpy-keras-compare golden trajectory v2"
FORMAT_V1 = "numpy-keras-compare golden trajectory v1"  # no content hash; still loaded, with a note
HASH = "sha256"
SPEC_FIELDS = ("sizes", "activations", "loss", "loss_config", "optimizer", "optimizer_config", "learning_rate")
CONFIG_KEYS = ("spec", "dtype", "backend", "computed_dtype", "steps", "batch_size", "seed", "notes", "device")
LOSS_DEFAULTS = {"from_logits": False, "label_smoothing": 0.0}
# Values per vectorised group of steps in the consistency checks: a step holds its parameters and its
# batch's values of every layer; 2**19 of them are 4 MiB of float64 per stacked array (compare.checking
# budgets its chunks the same way: 8 copies in 32 MiB).
GROUP_VALUES = 2 ** 19


def record(network, X, y, steps, batch_size=None, seed=0, dtype="float64", backend=None):
    """Run Keras alone from `network`'s initial weights for `steps` steps; return the arrays to save."""
    from . import data, protocol
    from .checking import batches
    from .environment import computed_precision, device, keras_step as build_keras_step, use_backend, versions
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
              "versions": np.array(json.dumps(versions())), "X": X, "y": y,
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
    """np.savez to a temporary file beside `path`, then rename: never a half-written file."""
    from .report import atomic_write
    atomic_write(path, lambda tmp: np.savez(tmp, **arrays), suffix=".npz")


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
    problem = consistency_problem(files, config)
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
        self.t = 0

    def verify(self, spec):
        """Refuse (InputError) a network whose spec (protocol.describe) is not the one the file was recorded
        for: layer sizes, activations, loss and its options, optimizer and its options, learning rate.
        Options are compared with their defaults filled in: {} and {"momentum": 0.0} are the same SGD."""
        recorded = self.config["spec"]
        for field in SPEC_FIELDS:
            mine, theirs = _normal(field, spec), _normal(field, recorded)
            if mine != theirs:
                raise InputError(f"the golden file {self.path} was recorded for {field} {_show(theirs)}, but the "
                                 f"network checked declares {field} {_show(mine)}; check it against a file recorded "
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


# --- reading and validating the fields --------------------------------------------------------------
def _read(path):
    """The file's arrays and its format line, or a one-line InputError for a missing, unreadable or foreign file."""
    from .data import load_npz
    path = str(path)
    if not os.path.isfile(path):
        raise InputError(f"no golden file {path!r}")
    try:
        with open(path, "rb") as f:
            single = f.read(6) == b"\x93NUMPY"
    except OSError as exc:
        raise InputError(f"cannot read golden file {path!r}: {exc.strerror or exc}") from None
    if not zipfile.is_zipfile(path):
        kind = "a single .npy array" if single else "not a zip archive"
        raise InputError(f"{path} is not a readable golden file ({kind}); expected the .npz archive that "
                         "python -m compare record writes")
    try:
        files = load_npz(path, (), "golden file")
    except InputError as exc:
        raise InputError(f"not a readable golden file: {exc}") from None
    version = _text(files.get("format"))
    if version not in (FORMAT, FORMAT_V1):
        given = files.get("format")
        received = "no format entry" if given is None else \
            f"format {_show(str(given))}" if given.dtype.kind == "U" else _described(given)
        raise InputError(f"{path} is not a golden trajectory of this tool (expected format {FORMAT!r}; received "
                         f"{received})")
    return files, version


def _text(a):
    """The string held by a 0-d unicode array, else None."""
    return str(a) if isinstance(a, np.ndarray) and a.ndim == 0 and a.dtype.kind == "U" else None


def _show(value, limit=120):
    text = json.dumps(value) if isinstance(value, (dict, list)) else repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _damaged(path, detail):
    return InputError(f"{path} is a damaged golden file: {detail}")


def _config(files, path):
    """The config and versions (JSON objects), every field checked for presence, type and range."""
    from . import protocol
    from .environment import BACKENDS, DTYPES
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
            raise _damaged(path, f"{key} must be a JSON object; received {_show(parsed[key])}")
    config, versions = parsed["config"], parsed["versions"]
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in versions.items()):
        raise _damaged(path, f"versions must map names to version strings; received {_show(versions)}")
    _keys(path, "config", config, CONFIG_KEYS)
    spec = config["spec"]
    if not isinstance(spec, dict):
        raise _damaged(path, f"config spec must be an object; received {_show(spec)}")
    _keys(path, "config spec", spec, SPEC_FIELDS)

    def need(ok, field, expected):
        if not ok:
            value = spec.get(field.removeprefix("spec."), None) if field.startswith("spec.") else config[field]
            raise _damaged(path, f"config {field} must be {expected}; received {_show(value)}")

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
    need(_number(lr) and math.isfinite(lr) and lr > 0, "spec.learning_rate", "a finite number > 0")
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


def _keys(path, what, mapping, keys):
    missing, unknown = [k for k in keys if k not in mapping], sorted(set(mapping) - set(keys))
    if missing or unknown:
        found = f"lacks {', '.join(missing)}" if missing else f"has unknown keys {', '.join(map(str, unknown))}"
        raise _damaged(path, f"{what} {found}; expected keys {', '.join(keys)}")


def _int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def _number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


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
    from .data import checked
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
        raise _damaged(path, f"row_offsets {_show(offsets.tolist(), 80)} must rise from 0 to len(rows) = "
                             f"{len(rows)} in steps of 1 to {largest} rows (batch_size {config['batch_size']})")
    for i in range(2 * len(config["spec"]["activations"])):
        w = files[f"w{i}"][0]
        if not np.isfinite(w).all():
            where = [int(j) for j in np.argwhere(~np.isfinite(w))[0]]
            raise _damaged(path, f"the initial weights w{i}[0] hold {float(w[tuple(where)])} at {where}; expected "
                                 "finite numbers")
    files["rows"], files["row_offsets"] = rows.astype(np.int64), offsets.astype(np.int64)


def _normal(field, spec):
    """A spec field in a form that compares equal exactly when it means the same: options with defaults."""
    value = spec[field]
    if field == "loss_config":
        return {**LOSS_DEFAULTS, **value}
    if field == "optimizer_config":
        return {**OPTIMIZERS[spec["optimizer"]].defaults, **value} if spec["optimizer"] in OPTIMIZERS else value
    if field == "learning_rate":
        return float(value)
    return list(value) if isinstance(value, (list, tuple)) else value


# --- consistency: every recorded value recomputed from the file's own earlier values ---------------
def consistency_problem(files, config):
    """The first recorded value that disagrees with the file's own earlier values, as a sentence, or None.

    Each step's z and a, layer by layer (dense_bound, activation_bound), its loss (loss_bound) and its
    gradients (backprop, bounded by compare.tolerance.step_tolerances) are recomputed from the step's
    recorded weights, rows of X and y, and the values recorded before them; the weights after each
    step from the optimizer applied to the recorded weights and gradients (update_problem). Where
    several disagree, the one Keras computed first is named: the earliest step, and in it z0, a0,
    z1, ..., the loss, the gradients, then the updated weights (they belong to the step that made them).
    """
    with np.errstate(all="ignore"):
        found = [p for check in (step_problem, update_problem) if (p := check(files, config))]
    return min(found)[2] if found else None


def _precision(config):
    """(u, tiny, largest) of the precision Keras computed in: unit roundoff, smallest normal and largest number."""
    info = np.finfo(config["computed_dtype"])
    return UNIT_ROUNDOFF[config["computed_dtype"]], float(info.tiny), float(info.max)


def _outside(recorded, recomputed, bound, largest, in_precision):
    """Where a recorded value is not accounted for by its recomputation r (in float64) and the bound E on
    their difference. `in_precision`: the same recomputation in the precision Keras computed in (r itself
    in float64), which shows where that precision overflows.

    Accounted for: |recorded − r| ≤ E with E finite, or recorded = r. Where r is not a number within the
    computed precision's range (|r| > largest, ∞ or NaN) anything is. A NaN or an infinity is also
    accounted for where the recomputation in Keras's precision is one, or where E is out of that range
    (intermediate values may have overflowed); a finite value must still be within a finite E, or
    equal to r: an infinite bound accepts nothing else.
    """
    ok = ((np.abs(recorded - recomputed) <= bound) & np.isfinite(bound)) | (recorded == recomputed)
    ok |= ~np.isfinite(recorded) & (~(bound <= largest) | ~np.isfinite(in_precision))
    return (np.abs(recomputed) <= largest) & ~ok


def _groups(offsets, sizes):
    """(steps, positions) for the steps of each batch size B: `steps` (K,) ascending, `positions` (K, B)
    their rows' positions in the recorded z and a; K·(parameters + B·Σ sizes) ≤ GROUP_VALUES."""
    parameters = sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))
    batch = np.diff(offsets)
    for size in np.unique(batch):
        steps = np.flatnonzero(batch == size)
        per = max(1, GROUP_VALUES // (parameters + int(size) * sum(sizes)))
        for i in range(0, len(steps), per):
            s = steps[i:i + per]
            yield s, offsets[s][:, None] + np.arange(size)


def _first(bad, steps, order, element, recorded, recomputed, bound, how, name):
    """(step, order, sentence) for the first element flagged in `bad` (its first axis: the steps), or None.
    element(k) names element k of the recorded array."""
    if not bad.any():
        return None
    k = tuple(int(x) for x in np.argwhere(bad)[0])
    step, bound = int(steps[k[0]]), np.broadcast_to(bound, bad.shape)
    return (step, order, f"{element(k)} (step {step}) is {float(recorded[k])!r}, but {how} {float(recomputed[k])!r} "
                         f"(allowed difference {float(bound[k]):.3g}): {name} disagrees with the values it was "
                         "computed from")


def dense_bound(a_prev, W, b, u, rounded_inputs, tiny):
    """E, a bound on |z − r| between the z Keras computed from a_prev, W, b and r = a_prev·Wᵀ + b
    recomputed in float64 from the same recorded values (stacks: a_prev (K, B, n), W (K, m, n), b (K, m)):

        E = 2·γ_{n+1}·(|a_prev|·|W|ᵀ + |b|) + (n + 1)·tiny,   γ_k = k·u / (1 − k·u)

    γ_{n+1} bounds one side's rounding of n products and their sum with the bias, in any order; the
    factor 2 covers both sides (this recomputation's u is never larger than Keras's); (n + 1)·tiny lets
    each term be flushed to zero below the smallest normal number, as TensorFlow and XLA do on the CPU.
    rounded_inputs (Keras computed in float32): Keras first rounds a_prev, W and b to float32, which
    moves the exact result by |fl(a)·fl(W)ᵀ − a·Wᵀ| ≤ ((1 + u)² − 1)·|a|·|W|ᵀ and |fl(b) − b| ≤ u·|b|:

        E += (2u + u²)·|a_prev|·|W|ᵀ + u·|b|

    and its own rounding of the rounded inputs, γ_{n+1}·(1 + u)²·(...), stays within 2·γ_{n+1}·(...):
    this recomputation's float64 rounding is below γ_{n+1}·(1 − 2u − u²)·(...) for u = 2⁻²⁴.
    """
    n = W.shape[-1]
    P = np.abs(a_prev) @ np.abs(np.swapaxes(W, -1, -2))
    abs_b = np.abs(b)[:, None, :]
    E = 2 * gamma(n + 1, u) * (P + abs_b) + (n + 1) * tiny
    if rounded_inputs:
        E += (2 * u + u * u) * P + u * abs_b
    return E


def activation_bound(name, z, f, u, tiny):
    """E, a bound on |a − f(z)| between the a Keras computed from the recorded z and f(z) recomputed from
    it in float64: the activation's output_bound (compare/rules/activations.py), sized by the recomputed
    f(z), never by the recorded a, which could be anything."""
    return activation_rules.get(name)["output_bound"](z, f, u, tiny)


def loss_bound(spec, where, u, computed_dtype, x, y):
    """E = 2·E(L) per step for stacked batches x (K, B, k) (ŷ, or the logits z where Keras takes them) and
    targets y after label smoothing: the loss's bounds (compare/rules/losses.py) with the same x on both sides (E(x) = 0). The
    targets carry E(y) = 2u|y| + u·s where label smoothing s rounds them, plus u|y| where Keras rounds
    them to float32."""
    smoothing = spec["loss_config"].get("label_smoothing", 0.0)
    e_y = (2 * u * np.abs(y) + u * smoothing if smoothing else 0.0) + \
        (u * np.abs(y) if computed_dtype == "float32" else 0.0)
    bounds = loss_rules.get(spec["loss"])["bounds"]
    return 2 * np.asarray(bounds(where, y, x, np.zeros_like(x), u, EPSILON, e_y, None)[0])


def recompute(spec, where, X, y, weights, zs, outputs):
    """Each value of a stack of steps recomputed from the recorded values it was computed from, in the
    dtype of the arguments: z_l = a_{l−1}·W_lᵀ + b_l (a_{−1} = X), f_l(z_l) (numpy_impl.ops), the loss
    and δ = dL/dx of each step (numpy_impl.losses on the recorded x and y), and the gradients (backprop)."""
    names = spec["activations"]
    inputs = [X] + outputs[:-1]
    rs = [a @ np.swapaxes(W, -1, -2) + b[:, None, :] for a, W, b in zip(inputs, weights[0::2], weights[1::2])]
    fs = [ACTIVATIONS[name][0](z) for name, z in zip(names, zs)]
    on_output, on_logits = LOSSES[spec["loss"]]
    x = zs[-1] if where == "z" else outputs[-1]
    per_step = [(on_logits if where else on_output)(x[k], y[k]) for k in range(len(x))]
    loss, delta = np.array([v for v, _ in per_step]), np.stack([d for _, d in per_step])
    return {"z": rs, "a": fs, "loss": loss, "grads": backprop(weights, names, X, outputs, delta, where == "z")}


def backprop(weights, activations, X, outputs, delta, logits):
    """Keras's gradients [dW0, db0, dW1, ...] recomputed from the recorded forward values (stacks, the
    steps first), given δ = dL/dx at the loss's input x (the last z when `logits`, else the output):

        dz_L = δ where the loss takes the logits, else f'(z_L) ⊙ δ (numpy_impl.ops.activation_backward;
        softmax: a ⊙ (δ − Σ δ·a));  dW_l = dz_lᵀ·a_{l−1},  db_l = Σ_rows dz_l,  δ_{l−1} = dz_l·W_l
    """
    grads = []
    for l in reversed(range(len(activations))):
        dz = delta if logits and l == len(activations) - 1 else ops.activation_backward(activations[l], outputs[l],
                                                                                         delta)
        a_prev = outputs[l - 1] if l else X
        grads[:0] = [np.swapaxes(dz, -1, -2) @ a_prev, dz.sum(axis=-2)]
        if l:
            delta = dz @ weights[2 * l]
    return grads


def step_problem(files, config):
    """(step, order, sentence) for the earliest z_l, a_l, loss or gradient that disagrees with its
    recomputation from the step's recorded weights, its rows of X and y, and the values recorded before
    it (recompute), or None. The bounds: dense_bound, activation_bound, loss_bound, and for the gradients
    tolerance.step_tolerances, with Keras's rounding of X and the weights to float32 where it computes
    in float32 (as compare.checking does). There the values are also recomputed in float32, to show where
    that precision overflows (_outside)."""
    spec, f, backend, computed = config["spec"], files, config["backend"], config["computed_dtype"]
    u, tiny, largest = _precision(config)
    names, L = spec["activations"], len(spec["activations"])
    where = takes_logits(spec["loss"], spec["loss_config"].get("from_logits", False), names[-1], backend)
    source = f"{'z' if where == 'z' else 'a'}{L - 1}"
    labels = [f"{'W' if i % 2 == 0 else 'b'}{i // 2}" for i in range(2 * L)]
    found = []
    for steps, pos in _groups(f["row_offsets"], spec["sizes"]):
        rows = f["rows"][pos]
        X, weights = f["X"][rows], [f[f"w{i}"][steps] for i in range(2 * L)]
        zs, outputs = [f[f"z{l}"][pos] for l in range(L)], [f[f"a{l}"][pos] for l in range(L)]
        y = smooth_labels(f["y"][rows], spec["loss"], spec["loss_config"].get("label_smoothing", 0.0))
        mine = theirs = recompute(spec, where, X, y, weights, zs, outputs)
        if computed == "float32":  # only to see where float32 overflows
            single = [[a.astype(np.float32) for a in arrays] for arrays in ([X, y], weights, zs, outputs)]
            theirs = recompute(spec, where, *single[0], *single[1:])

        def flag(recorded, key, i, bound, order, element, how, name):
            r, r_c = (mine[key], theirs[key]) if i is None else (mine[key][i], theirs[key][i])
            found.append(_first(_outside(recorded, r, bound, largest, r_c), steps, order, element, recorded, r, bound,
                                how, name))

        for l, name in enumerate(names):
            row = lambda k, key, l=l: f"{key}{l}[{pos[k[0], k[1]]}, {k[2]}]"  # noqa: E731
            E = dense_bound(X if l == 0 else outputs[l - 1], weights[2 * l], weights[2 * l + 1], u,
                            computed == "float32", tiny)
            flag(zs[l], "z", l, E, 3 * l, lambda k: row(k, "z"),
                 f"the file's own {'X' if l == 0 else f'a{l - 1}'} and w{2 * l}, w{2 * l + 1} give", f"z{l}")
            flag(outputs[l], "a", l, activation_bound(name, zs[l], mine["a"][l], u, tiny), 3 * l + 1,
                 lambda k: row(k, "a"), f"{name}(z{l}) is", f"a{l}")
        E = loss_bound(spec, where, u, computed, zs[-1] if where == "z" else outputs[-1], y) + tiny
        flag(f["loss"][steps], "loss", None, E, 3 * L, lambda k: f"loss[{steps[k[0]]}]",
             f"{spec['loss']} of the file's own {source} and y is", "loss")
        rounded = {"x_error": u * np.abs(X)} if computed == "float32" else {}
        gap = [u * np.abs(w) for w in weights] if computed == "float32" else None
        tol = step_tolerances(weights, names, X, y, zs, outputs, u, gap, mine=outputs, loss=spec["loss"],
                              loss_config=spec["loss_config"], backend=backend, **rounded)["grads"]
        for i in range(2 * L):
            flag(f[f"g{i}"][steps], "grads", i, tol[i] + tiny, 3 * L + 1 + i,
                 lambda k, i=i: f"g{i}[{steps[k[0]]}]{list(k[1:])}",
                 f"d{labels[i]} recomputed from the file's own forward values and loss is", f"g{i}")
    found = [x for x in found if x]
    return min(found) if found else None


def update_problem(files, config):
    """(step, order, sentence) for the earliest weights w_{t+1} that disagree with the file's optimizer
    (numpy_impl.optimizers, with the file's options and learning rate) applied to the recorded w_t and
    g_t by more than the update's rounding bound plus tiny (a result flushed to zero): the bound of
    compare.update_tolerance.UpdateTolerance with a zero gradient tolerance, both sides updating from
    the same g, sized by the recomputed weights (never by the recorded ones, which could be anything).
    Every optimizer here is elementwise, so all weight arrays are updated as one flat vector per step,
    and plain SGD, which keeps no state, for every step at once. Where every update is reproduced bit
    for bit (TensorFlow in float64, mostly), the bound is not needed."""
    from .update_tolerance import UpdateTolerance
    spec, f, steps = config["spec"], files, config["steps"]
    u, tiny, largest = _precision(config)
    n, lr, name, options = 2 * len(spec["activations"]), spec["learning_rate"], spec["optimizer"], \
        spec["optimizer_config"]
    shapes = [f[f"w{i}"].shape[1:] for i in range(n)]
    W = np.concatenate([f[f"w{i}"].reshape(steps + 1, -1) for i in range(n)], axis=1)  # (steps + 1, P)
    G = np.concatenate([f[f"g{i}"].reshape(steps, -1) for i in range(n)], axis=1)      # (steps, P)
    tracker = UpdateTolerance(name, options, lr, u)
    if not tracker.keeps_state:
        chunks = [(np.arange(steps), W[:-1], G, W[1:])]
    else:
        chunks = [(np.array([t]), W[t:t + 1], G[t:t + 1], W[t + 1:t + 2]) for t in range(steps)]
    optimizer = OPTIMIZERS[name](lr, **options)
    if all(np.array_equal(optimizer.apply([w_in], [g])[0], w_out, equal_nan=True) for _, w_in, g, w_out in chunks):
        return None
    optimizer = OPTIMIZERS[name](lr, **options)
    in_precision = OPTIMIZERS[name](lr, dtype=np.float32, **options) if config["computed_dtype"] == "float32" \
        else None
    for t, w_in, g, w_out in chunks:
        expected = optimizer.apply([w_in], [g])[0]
        expected_c = expected if in_precision is None else in_precision.apply([w_in.astype(np.float32)],
                                                                                 [g.astype(np.float32)])[0]
        bound = tracker.step([w_in], [g], [0.0], [expected], lr)[0] + tiny
        hit = _first(_outside(w_out, expected, bound, largest, expected_c), t, 10 ** 6,
                     lambda k: "w{}[{}]{}".format(*_unflatten(k[1], shapes, t[k[0]] + 1)), w_out, expected, bound,
                     f"{name} applied to the file's own weights and gradients of that step gives",
                     "the recorded update")
        if hit:
            return hit
    return None


def _unflatten(index, shapes, step):
    """(array number, step, index in it) of element `index` of the arrays of `shapes` laid end to end."""
    for i, shape in enumerate(shapes):
        size = int(np.prod(shape))
        if index < size:
            return i, step, [int(j) for j in np.unravel_index(index, shape)]
        index -= size
    raise IndexError(index)


# --- diff ---------------------------------------------------------------------------------------------
DATA = ("X", "y", "rows", "row_offsets")


def _configuration(config):
    """The fields that make two recordings re-recordings of one run (the backend, device and versions may differ)."""
    fields = {f"spec.{k}": _normal(k, config["spec"]) for k in SPEC_FIELDS}
    fields.update({k: config[k] for k in ("dtype", "steps", "batch_size")})
    return fields


def _quantities(n_layers):
    """quantity → [(array, name in reports)]: weights W0, b0, ..., z0, ..., a0, ..., loss, gradients dW0, db0, ..."""
    from .names import weight_names
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
    differing = [f"{k} {_show(config_a[k])} vs {_show(config_b[k])}" for k in config_a if config_a[k] != config_b[k]]
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
