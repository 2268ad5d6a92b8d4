"""Training data: the guide's, or X and y from an .npz file, checked before anything runs."""
import os
import zipfile

import numpy as np

from .errors import InputError


RANDOM_ROWS = 64


def load(spec, n_inputs=None, n_outputs=None, loss="mse", seed=0):
    """The training data named by `spec`:

    'guide'   numpy_impl.seed_data();
    'digits'  scikit-learn's bundled 8×8 digits (no download), X/16 in [0, 1], y one-hot (1797, 10);
    'sequences' 512 seeded integer sequences of 6 tokens in [1, 8) (X, ids as numbers) and, per position, the
              token before it as a one-hot target (0 at the first position), y (512, 6, 8): what a causal
              transformer must attend to the previous position to predict;
    'random'  64 seeded rows, X ~ N(0, 1), targets that suit the loss (N(0, 1) for mse and mae,
              0/1 for binary cross-entropy, one-hot for categorical), shaped for the network;
    a path    arrays X and y of that .npz file, loaded with allow_pickle=False.
    """
    if spec == "guide":
        from numpy_impl import seed_data
        return seed_data()
    if spec == "digits":
        from sklearn.datasets import load_digits
        digits = load_digits()
        return digits.data / 16.0, np.eye(10)[digits.target]
    if spec == "sequences":
        return sequences(seed)
    if spec == "random":
        return random_data(n_inputs, n_outputs, loss, seed)
    if not os.path.isfile(spec):
        raise InputError(f"--data expects guide, digits, random or a path to an .npz file with arrays X and y; "
                         f"no such file {spec!r}")
    arrays = load_npz(spec, ("X", "y"), "--data")
    return arrays["X"], arrays["y"]


def load_npz(path, needed, what):
    """The arrays of an .npz file as a dict, every member's declared size checked against what the file
    holds before anything is allocated; a one-line InputError for anything else (a plain .npy, a
    corrupt or forged file, object arrays, missing arrays)."""
    try:
        if not zipfile.is_zipfile(path):
            with open(path, "rb") as f:
                single = f.read(6) == b"\x93NUMPY"
            kind = "a single .npy array" if single else "not a zip archive"
            raise InputError(f"{what} {path} is not a readable .npz file ({kind}); expected an .npz archive holding arrays "
                             f"{' and '.join(needed)} (np.savez(path, {', '.join(f'{k}={k}' for k in needed)}))")
        sizes = _member_sizes(path)
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in needed if k not in npz.files]
            if missing:
                raise InputError(f"{path} holds arrays {sorted(npz.files)}; expected {' and '.join(needed)}")
            for name in npz.files:
                declared = sizes.get(name + ".npy")
                if declared is None:
                    continue
                shape, dtype, held = declared
                need = int(np.prod(shape, dtype=object)) * dtype.itemsize
                if need > held:
                    raise InputError(f"{path}: array {name!r} declares shape {shape} of {dtype} ({_bytes(need)}) "
                                     f"but the file holds {_bytes(held)} of it: a damaged or forged file")
            return {k: npz[k] for k in npz.files}
    except InputError:
        raise
    except MemoryError:
        raise InputError(f"{path} is too large to load into memory") from None
    except ValueError as exc:
        if "contains pickled" in str(exc):  # the whole file, or what precedes a zip archive: never unpickled
            raise InputError(f"{what} {path} is not an .npz archive: it begins with a Python pickle, which is never "
                             "loaded; expected an .npz archive of numeric arrays") from None
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise InputError(f"{path} holds object arrays; expected numeric arrays") from None
        raise InputError(f"{path} is not a readable .npz file: {exc}") from None
    except (OSError, zipfile.BadZipFile, EOFError, KeyError, TypeError) as exc:
        raise InputError(f"{path} is not a readable .npz file: {type(exc).__name__}: {exc}") from None


def _member_sizes(path):
    """For each .npy member of a zip archive: (shape, dtype, bytes of data it holds), read from its header alone."""
    out = {}
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            with archive.open(info) as f:
                try:
                    version = np.lib.format.read_magic(f)
                    read = {(1, 0): np.lib.format.read_array_header_1_0,
                            (2, 0): np.lib.format.read_array_header_2_0}.get(version)
                    if read is None:
                        raise ValueError(f"unsupported .npy version {version}")
                    shape, _, dtype = read(f)
                except ValueError as exc:
                    raise InputError(f"{path}: member {info.filename!r} is not an .npy array: {exc}") from None
                out[info.filename] = (shape, dtype, info.file_size - f.tell())
    return out


def _bytes(n):
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024


def random_data(n_inputs, n_outputs, loss, seed, rows=RANDOM_ROWS):
    """Seeded X ~ N(0, 1) (rows, n_inputs) and targets (rows, n_outputs) that suit `loss`."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, n_inputs))
    if loss == "binary_crossentropy":
        return X, (rng.random((rows, n_outputs)) < 0.5).astype(np.float64)
    if loss == "categorical_crossentropy":
        return X, np.eye(n_outputs)[rng.integers(0, n_outputs, rows)]
    return X, rng.normal(size=(rows, n_outputs))


def checked(X, y, dtype="float64"):
    """X as (N, inputs) and y as (N, outputs) float64, both finite and without subnormals (in `dtype`); y of shape (N,) becomes (N, 1) with a note."""
    notes = []
    X, y = _numeric(X, "X"), _numeric(y, "y")
    if X.ndim != 2:
        raise InputError(f"X must be 2-D (samples, inputs); received shape {X.shape}")
    if y.ndim == 1:
        notes.append(f"y of shape {y.shape} was reshaped to ({y.shape[0]}, 1)")
        y = y.reshape(-1, 1)
    if y.ndim != 2:
        raise InputError(f"y must be (samples,) or (samples, outputs); received shape {y.shape}")
    if X.shape[0] == 0 or X.shape[1] == 0 or y.shape[1] == 0:
        raise InputError(f"the data is empty: X has shape {X.shape}, y has shape {y.shape}")
    if X.shape[0] != y.shape[0]:
        raise InputError(f"X has {X.shape[0]} rows but y has {y.shape[0]}; expected one target row per sample")
    for name, arr in (("X", X), ("y", y)):
        if not np.all(np.isfinite(arr)):
            bad = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
            raise InputError(f"{name} holds {arr[bad]} at index {list(bad)}; expected finite numbers")
        refuse_subnormal(arr, name, dtype)
        largest = np.finfo(dtype).max
        if np.any(np.abs(arr) > largest):
            i = [int(j) for j in np.argwhere(np.abs(arr) > largest)[0]]
            raise InputError(f"{name} holds {arr[tuple(i)]!r} at index {i}, beyond the largest {dtype} number "
                             f"{largest:.4g}: Keras would compute with infinity; expected values that fit in {dtype}")
    return X, y, notes


def refuse_subnormal(arr, name, dtype="float64"):
    """An InputError for values below the smallest normal number of `dtype` (other than 0).

    TensorFlow and XLA flush such subnormal numbers to zero on the CPU (their inputs and results), and
    numpy does not: the two sides would then train on different data, and a correct network would be
    blamed. Rescale the data, or flush them yourself: X[np.abs(X) < np.finfo(np.float64).tiny] = 0.
    """
    tiny = np.finfo(dtype).tiny
    small = (arr != 0) & (np.abs(arr) < tiny)
    if small.any():
        i = [int(j) for j in np.argwhere(small)[0]]
        raise InputError(f"{name} holds the subnormal {dtype} value {arr[tuple(i)]!r} at index {i} ({int(small.sum())} "
                         f"such values); Keras's backends flush numbers below {tiny:.3g} to zero and numpy does not, "
                         "so the two sides would not compute the same step: rescale them, or set them to 0")


def _numeric(a, name):
    arr = np.asarray(a)
    if arr.dtype.kind not in "fiub":
        raise InputError(f"{name} must be numeric; received dtype {arr.dtype}")
    with np.errstate(all="ignore"):  # a long double too large for float64 becomes inf, refused in checked()
        return arr.astype(np.float64)


def sequences(seed=0, rows=512, length=6, tokens=8):
    """The 'sequences' task: X (rows, length) ids in [1, tokens), y[n, t] one-hot of X[n, t − 1] (of 0 at t = 0)."""
    rng = np.random.default_rng(seed)
    X = rng.integers(1, tokens, size=(rows, length))
    previous = np.concatenate([np.zeros((rows, 1), dtype=X.dtype), X[:, :-1]], axis=1)
    return X.astype(np.float64), np.eye(tokens)[previous]
