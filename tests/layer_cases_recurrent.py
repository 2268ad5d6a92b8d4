"""Seeded random SimpleRNN, LSTM and GRU cases: the project's numpy_impl/layers/recurrent.py through the course
adapters (compare/adapters.py), N 1–4, T 1–8, D 1–6, H 1–6, each array times 10^U(−1, 1), return_sequences
either way. case(kind, seed) → (layer, x, training), as tests/layer_cases.py (whose KINDS these join)."""
import numpy as np

from compare import adapters
from numpy_impl.layers import recurrent as R


def _values(rng, shape):
    return rng.standard_normal(shape) * 10.0 ** rng.uniform(-1, 1)


GATES = {"SimpleRNN": 1, "LSTM": 4, "GRU(reset_after)": 3, "GRU(reset_before)": 3}


def _bias_shape(kind, h):
    return {"SimpleRNN": h, "LSTM": 4 * h, "GRU(reset_after)": (2, 3 * h)}.get(kind, 3 * h)


def _adapted(kind, Wx, Wh, b, sequences=True):
    """numpy_impl/layers/recurrent.py's `kind` through its course adapter."""
    if kind == "SimpleRNN":
        return adapters.rnn(R.rnn_forward, R.rnn_backward, Wx, Wh, b, sequences)
    if kind == "LSTM":
        return adapters.lstm(R.lstm_forward, R.lstm_backward, Wx, Wh, b, sequences)
    return adapters.gru(R.gru_forward, R.gru_backward, Wx, Wh, b, sequences, reset_after=kind == "GRU(reset_after)")


def _recurrent(rng, kind):
    n, t, d, h = (int(v) for v in rng.integers(1, [5, 9, 7, 7]))
    sequences = bool(rng.integers(2))
    Wx, Wh = _values(rng, (d, GATES[kind] * h)), _values(rng, (h, GATES[kind] * h))
    x = _values(rng, (n, t, d))
    return _adapted(kind, Wx, Wh, _values(rng, _bias_shape(kind, h)), sequences), x, True


KINDS = {kind: (lambda rng, kind=kind: _recurrent(rng, kind)) for kind in GATES}


def keras_like(kind, seed, n=3, t=30, d=4, h=6):
    """(layer, x) for `kind` with Keras's default initialisers (glorot_uniform kernel, orthogonal recurrent
    kernel), a small bias and x ~ N(0, 1): long sequences that stay away from saturation, every state in use."""
    rng = np.random.default_rng([seed, 200 + list(KINDS).index(kind)])
    g = GATES[kind]
    Wx = rng.uniform(-1, 1, (d, g * h)) * np.sqrt(6 / (d + g * h))
    Wh = np.linalg.qr(rng.standard_normal((g * h, g * h)))[0][:h]
    x = rng.standard_normal((n, t, d))
    return _adapted(kind, Wx, Wh, 0.1 * rng.standard_normal(_bias_shape(kind, h))), x


def case(kind, seed):
    """(layer, x, training) for `kind`, drawn from seed."""
    return KINDS[kind](np.random.default_rng([seed, 100 + list(KINDS).index(kind)]))
