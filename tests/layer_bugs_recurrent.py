"""Planted mistakes in recurrent layers, as people write them: course-style functions (numpy_impl/layers/recurrent.py
is the correct one) with one mistake each, the layer they are checked as, and the cause the diagnosis must name.
BUGS rows are (name, family, make, cause), as tests/layer_bugs.py's."""
import numpy as np

from compare import adapters
from numpy_impl.layers import recurrent as R
from numpy_impl.ops import sigmoid, tanh, tanh_grad

RNG = np.random.default_rng(5)
N, T, D, H = 3, 5, 4, 3
X = RNG.standard_normal((N, T, D))


def _w(gates, bias_shape):
    return RNG.standard_normal((D, gates * H)), RNG.standard_normal((H, gates * H)), RNG.standard_normal(bias_shape)


# --- SimpleRNN: dh_next forgotten ----------------------------------------------------------------------------
def rnn_backward_no_bptt(dh, cache):
    x, h0, h, Wx, Wh = cache
    dx, dWx, dWh, db = np.zeros_like(x), np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(Wh.shape[1])
    dh_next = np.zeros_like(h0)
    for t in reversed(range(x.shape[1])):
        h_prev = h[:, t - 1] if t > 0 else h0
        dz = dh[:, t] * tanh_grad(h[:, t])          # mistake: dh[:, t] + dh_next
        dx[:, t], dh_next = dz @ Wx.T, dz @ Wh.T
        dWx += x[:, t].T @ dz
        dWh += h_prev.T @ dz
        db += dz.sum(axis=0)
    return dx, dh_next, dWx, dWh, db


# --- GRU: the update gate's role swapped; the reset gate before the matmul --------------------------------------
def gru_forward_z_swapped(x, h0, Wx, Wh, b, reset_after=True):
    h, z, r, hh, u_h = (np.zeros((x.shape[0], x.shape[1], H)) for _ in range(5))
    h_prev = h0
    for t in range(x.shape[1]):
        m, u = x[:, t] @ Wx + b[0], h_prev @ Wh + b[1]
        z[:, t], r[:, t] = sigmoid(m[:, :H] + u[:, :H]), sigmoid(m[:, H:2 * H] + u[:, H:2 * H])
        u_h[:, t] = u[:, 2 * H:]
        hh[:, t] = tanh(m[:, 2 * H:] + r[:, t] * u_h[:, t])
        h_prev = h[:, t] = (1 - z[:, t]) * h_prev + z[:, t] * hh[:, t]   # mistake: z·h_prev + (1 − z)·hh
    return h, (x, h0, h, z, r, hh, u_h, Wx, Wh, b, reset_after)


def gru_forward_reset_before(x, h0, Wx, Wh, b, reset_after=True):
    h, z, r, hh, u_h = (np.zeros((x.shape[0], x.shape[1], H)) for _ in range(5))
    h_prev, bias = h0, b[0] + b[1]                      # the two bias rows folded into one
    for t in range(x.shape[1]):
        m, u = x[:, t] @ Wx + bias, h_prev @ Wh[:, :2 * H]
        z[:, t], r[:, t] = sigmoid(m[:, :H] + u[:, :H]), sigmoid(m[:, H:2 * H] + u[:, H:2 * H])
        u_h[:, t] = (r[:, t] * h_prev) @ Wh[:, 2 * H:]  # mistake: Keras's reset_after=True takes r·(h_prev Wh_h + b_rec)
        hh[:, t] = tanh(m[:, 2 * H:] + u_h[:, t])
        h_prev = h[:, t] = z[:, t] * h_prev + (1 - z[:, t]) * hh[:, t]
    return h, (x, h0, h, z, r, hh, u_h, Wx, Wh, b, reset_after)


# --- LSTM: CS231n's gate order handed to Keras as it is -----------------------------------------------------------
class CourseLSTM:
    """A hand-written protocol layer whose weights are CS231n's (i, f, o, g), given to Keras unmapped."""
    keras_layer = {"class_name": "LSTM", "config": {"units": H}}
    layout = None

    def __init__(self, Wx, Wh, b):
        self.weights = [Wx, Wh, b]

    def get_weights(self):
        return list(self.weights)                       # mistake: no lstm_gates_to_keras

    def set_weights(self, weights):
        self.weights = list(weights)

    def forward(self, x, training=True):
        h, self.cache = R.lstm_forward(x, np.zeros((x.shape[0], H)), *self.weights)
        return h[:, -1]

    def backward(self, dout):
        dh = np.zeros((dout.shape[0], T, H))
        dh[:, -1] = dout
        dx, _, dWx, dWh, db = R.lstm_backward(dh, self.cache)
        return dx, [dWx, dWh, db]


BUGS = [
    ("rnn_no_bptt", "recurrent",
     lambda: (adapters.rnn(R.rnn_forward, rnn_backward_no_bptt, *_w(1, H)), X, True), "truncated_bptt"),
    ("gru_update_swapped", "recurrent",
     lambda: (adapters.gru(gru_forward_z_swapped, R.gru_backward, *_w(3, (2, 3 * H))), X, True), "gru_update_swapped"),
    ("gru_reset_before", "recurrent",
     lambda: (adapters.gru(gru_forward_reset_before, R.gru_backward, *_w(3, (2, 3 * H))), X, True),
     "gru_reset_convention"),
    ("lstm_course_gate_order", "recurrent", lambda: (CourseLSTM(*_w(4, 4 * H)), X, True), "lstm_gate_order"),
]
