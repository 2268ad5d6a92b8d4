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
    if spec == "random":
        return random_data(n_inputs, n_outputs, loss, seed)
    if not os.path.isfile(spec):
        raise InputError(f"--data expects guide, digits, random or a path to an .npz file with arrays X and y; "
                         f"no such file {spec!r}")
    try:
        with np.load(spec, allow_pickle=False) as npz:
            missing = [k for k in ("X", "y") if k not in npz.files]
            if missing:
                raise InputError(f"{spec} holds arrays {sorted(npz.files)}; expected X and y")
            return npz["X"], npz["y"]
    except InputError:
        raise
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise InputError(f"{spec} holds object arrays; expected numeric arrays X and y") from None
        raise InputError(f"{spec} is not a readable .npz file: {exc}") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise InputError(f"{spec} is not a readable .npz file: {type(exc).__name__}: {exc}") from None


def random_data(n_inputs, n_outputs, loss, seed, rows=RANDOM_ROWS):
    """Seeded X ~ N(0, 1) (rows, n_inputs) and targets (rows, n_outputs) that suit `loss`."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, n_inputs))
    if loss == "binary_crossentropy":
        return X, (rng.random((rows, n_outputs)) < 0.5).astype(np.float64)
    if loss == "categorical_crossentropy":
        return X, np.eye(n_outputs)[rng.integers(0, n_outputs, rows)]
    return X, rng.normal(size=(rows, n_outputs))


def checked(X, y):
    """X as (N, inputs) and y as (N, outputs) float64, both finite; y of shape (N,) becomes (N, 1) with a note."""
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
    return X, y, notes


def _numeric(a, name):
    arr = np.asarray(a)
    if arr.dtype.kind not in "fiub":
        raise InputError(f"{name} must be numeric; received dtype {arr.dtype}")
    return arr.astype(np.float64)
