"""Each element's tolerance for SimpleRNN, LSTM and GRU: rounding-error bounds carried through time and back.

Keras's cells (keras/src/layers/rnn, implementation 2), written once on an error tape (compare/error_tape.py),
which carries every value's bound forward and then runs backpropagation through time with TensorFlow's
gradient formulas, bounding every gradient's rounding the same way:

    SimpleRNN  h_t = tanh((x_t@W + b) + h_{t−1}@U)
    LSTM       z = x_t@W + h_{t−1}@U + b, split (i, f, c, o);  i, f, o = σ(z_i, z_f, z_o)
               c_t = f·c_{t−1} + i·tanh(z_c);  h_t = o·tanh(c_t)
    GRU        m = x_t@W + b_in;  r_after: n = h_{t−1}@U + b_rec, before: n = h_{t−1}@U[:, :2H]
               z = σ(m_z + n_z);  r = σ(m_r + n_r)
               hh = tanh(m_h + r·n_h)  (reset_after)  or  tanh(m_h + (r·h_{t−1})@U[:, 2H:])
               h_t = z·h_{t−1} + (1 − z)·hh
with h_0 = c_0 = 0. Each element's tolerance is both sides' bound, 2·E, times RECURRENT_MARGIN, plus the floor.
"""
import numpy as np

from .error_tape import Tape
from .rounding import UNBOUNDED

# The tape's bound is first order (plus products of errors) and follows Keras's order of operations; the margin
# covers what it leaves out: second-order terms through tanh/σ (their slopes change within the error interval)
# and the numpy side's other groupings (x@W + b + h@U against (x@W + b) + h@U; dh·(h_{t−1} − hh) against
# dh·h_{t−1} − dh·hh). Measured without it (benchmarks/layer_false_alarms_recurrent.py, 1,000 draws per kind):
# the largest |numpy − Keras| is 0.24 of 2·E (SimpleRNN's output); 2 keeps that at 0.12 of the tolerance, the
# smallest margin in 2–4, so that a 1e-7 (even 1e-9) relative error is still caught.
RECURRENT_MARGIN = 2.0


def recurrent(layer, x, dout, weights, training, u, floor, e_dout=None):
    """{"output", "input_gradient", "weights": [kernel, recurrent_kernel, bias], "state": []} for the built
    Keras layer `layer` (SimpleRNN, LSTM or GRU) at x (N, T, D) and dout ((N, T, H) or (N, H)); e_dout: one
    side's bound on dout's own error (None: exact), carried back by the tape with absolute values."""
    cls = type(layer).__name__
    if cls not in CELLS:
        raise ValueError(f"no recurrent bound for {cls}; expected one of {', '.join(CELLS)}")
    with np.errstate(over="ignore", invalid="ignore"):  # a compounding fallback bound may overflow: see _finite
        return _recurrent(cls, layer, x, dout, weights, u, floor, e_dout)


def _recurrent(cls, layer, x, dout, weights, u, floor, e_dout=None):
    tape = Tape(u, symbols(cls, x.shape, layer.units))
    names = [v.path.split("/")[-1] for v in layer.trainable_weights]
    leaves = dict(zip(names, (tape.leaf(w) for w in weights)))
    xs = [tape.leaf(x[:, t]) for t in range(x.shape[1])]
    hs = CELLS[cls](tape, xs, leaves, layer.units, getattr(layer, "reset_after", True))
    out = tape.stack(hs) if layer.return_sequences else hs[-1]
    wanted = xs + [leaves[n] for n in names]
    grads = tape.backward(out, dout, wanted, e_dout)
    dx = np.stack([g.bound() for g in grads[:len(xs)]], axis=1) if xs else np.zeros_like(x)
    scale = 2 * RECURRENT_MARGIN
    return {"output": _finite(scale * out.bound() + floor), "input_gradient": _finite(scale * dx + floor),
            "weights": [_finite(scale * g.bound() + floor) for g in grads[len(xs):]], "state": []}


def _finite(tolerance):
    """A bound that overflowed (absolute values compounding over a long sequence) allows anything: the largest
    float, never inf or NaN, which would fail every element (compare/layer_compare.py); the verdict is then
    "inconclusive" (compare/layer_check.COARSE), never OK and never FAIL."""
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(tolerance), tolerance, UNBOUNDED)


# The forms' memory: a value recorded at step t holds t·S numbers per element (S the state's size, named once
# forward and once backward per step, so K = 2·T·S symbols per sample in all); a weight's gradient holds N·K.
# Past this many bytes the bound is carried with absolute values alone, which compounds through time: such a
# check may come out "inconclusive" (an overflowing bound too), never a wrong OK and never a false alarm.
FORMS_BYTES = 2 ** 30


def symbols(cls, shape, units):
    """The error symbols per sample for a layer of class cls at x of `shape` (N, T, D): 2·T·S, or 0 where
    their forms would pass FORMS_BYTES: about 16 recorded values of the gates' width per step, 6 copies of
    each weight's gradient, and the gradient of each x_t, held to the end (found by a review: with D ≫ H those
    dominate) (measured with tracemalloc at N 4, T 50, D 8, H 16: the peak is 210 MB against this
    estimate's 295 for SimpleRNN, 447 against 884 for GRU)."""
    n, t, d = shape[0], shape[1], shape[2]
    state = 2 * units if cls == "LSTM" else units
    width = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}[cls] * units
    k = 2 * t * state
    forward = 16 * n * width * state * t * (t + 1) / 2
    gradients = 6 * (d + units + 2) * width * n * k + n * d * t * k  # weights', and the T gradients of x_t
    return k if 8 * (forward + gradients) <= FORMS_BYTES else 0


def _zeros(tape, x, units):
    return tape.leaf(np.zeros((x.v.shape[0], units)))


def simple_rnn(tape, xs, w, units, reset_after):
    h, hs = _zeros(tape, xs[0], units), []
    for x in xs:
        h = tape.name(tape.tanh(tape.add(tape.add(tape.matmul(x, w["kernel"]), w["bias"]),
                                         tape.matmul(h, w["recurrent_kernel"]))))
        hs.append(h)
    return hs


def lstm(tape, xs, w, units, reset_after):
    H = units
    h, c, hs = _zeros(tape, xs[0], H), _zeros(tape, xs[0], H), []
    for x in xs:
        z = tape.add(tape.add(tape.matmul(x, w["kernel"]), tape.matmul(h, w["recurrent_kernel"])), w["bias"])
        i, f, g, o = (tape.take(z, (slice(None), slice(k * H, (k + 1) * H))) for k in range(4))
        i, f, o = tape.sigmoid(i), tape.sigmoid(f), tape.sigmoid(o)
        c = tape.name(tape.add(tape.mul(f, c), tape.mul(i, tape.tanh(g))))
        h = tape.name(tape.mul(o, tape.tanh(c)))
        hs.append(h)
    return hs


def gru(tape, xs, w, units, reset_after):
    H = units
    cols = [(slice(None), slice(k * H, (k + 1) * H)) for k in range(3)]
    U = w["recurrent_kernel"]
    b_in = tape.take(w["bias"], 0) if reset_after else w["bias"]
    b_rec = tape.take(w["bias"], 1) if reset_after else None
    U_zr = None if reset_after else tape.take(U, (slice(None), slice(0, 2 * H)))
    U_h = None if reset_after else tape.take(U, cols[2])
    h, hs = _zeros(tape, xs[0], H), []
    one = tape.leaf(1.0)
    for x in xs:
        m = tape.add(tape.matmul(x, w["kernel"]), b_in)
        n = tape.add(tape.matmul(h, U), b_rec) if reset_after else tape.matmul(h, U_zr)
        z = tape.sigmoid(tape.add(tape.take(m, cols[0]), tape.take(n, cols[0])))
        r = tape.sigmoid(tape.add(tape.take(m, cols[1]), tape.take(n, cols[1])))
        rec_h = tape.mul(r, tape.take(n, cols[2])) if reset_after else tape.matmul(tape.mul(r, h), U_h)
        hh = tape.tanh(tape.add(tape.take(m, cols[2]), rec_h))
        h = tape.name(tape.add(tape.mul(z, h), tape.mul(tape.sub(one, z), hh)))
        hs.append(h)
    return hs


CELLS = {"SimpleRNN": simple_rnn, "LSTM": lstm, "GRU": gru}
