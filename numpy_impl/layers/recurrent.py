"""SimpleRNN, LSTM and GRU as forward/backward function pairs over a whole sequence, in CS231n's style.

Shapes: x (N, T, D), h0 (N, H), Wx (D, G·H), Wh (H, G·H), hidden states h (N, T, H); dh is the
upstream gradient of every hidden state, (N, T, H) (for return_sequences=False, zero but at t = T-1).
Kernels are Keras's (inputs, units) way round, as CS231n writes them.

Gate order. LSTM here is CS231n's (i, f, o, g); Keras's LSTM kernel, recurrent_kernel and bias
hold (i, f, c, o), c being g. The column blocks map as ours[i, f, o, g] = keras[i, f, o, c], i.e.
keras blocks (0, 1, 3, 2); that mapping lives in keras_impl/convert.py. GRU keeps Keras's (z, r, h).
Keras's recurrent_activation is sigmoid (the default since Keras 2.3; earlier it was hard_sigmoid).
"""
import numpy as np

from ..ops import sigmoid, sigmoid_grad, tanh, tanh_grad


def rnn_forward(x, h0, Wx, Wh, b):
    """h_t = tanh((x_t Wx + b) + h_{t-1} Wh). Keras SimpleRNNCell: `tanh(x @ kernel + bias + h @ recurrent_kernel)`.

    Returns (h, cache); h holds every hidden state, (N, T, H), as return_sequences=True.
    """
    N, T, _ = x.shape
    h = np.zeros((N, T, Wh.shape[0]), dtype=x.dtype)
    h_prev = h0
    for t in range(T):
        h_prev = h[:, t] = tanh(x[:, t] @ Wx + b + h_prev @ Wh)
    return h, (x, h0, h, Wx, Wh)


def rnn_backward(dh, cache):
    """(dx, dh0, dWx, dWh, db), walking back in time: dz_t = (dh_t + dz_{t+1} Whᵀ) ⊙ (1 - h_t²)."""
    x, h0, h, Wx, Wh = cache
    dx, dWx, dWh, db = np.zeros_like(x), np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(Wh.shape[1])
    dh_next = np.zeros_like(h0)
    for t in reversed(range(x.shape[1])):
        h_prev = h[:, t - 1] if t > 0 else h0
        dz = (dh[:, t] + dh_next) * tanh_grad(h[:, t])
        dx[:, t], dh_next = dz @ Wx.T, dz @ Wh.T
        dWx += x[:, t].T @ dz
        dWh += h_prev.T @ dz
        db += dz.sum(axis=0)
    return dx, dh_next, dWx, dWh, db


def lstm_forward(x, h0, Wx, Wh, b):
    """LSTM with c0 = 0 and gates (i, f, o, g):

        a = x_t Wx + h_{t-1} Wh + b;  i, f, o = sigmoid(a_i, a_f, a_o);  g = tanh(a_g)
        c_t = f ⊙ c_{t-1} + i ⊙ g;    h_t = o ⊙ tanh(c_t)
    Keras LSTMCell (implementation 2): `z = x @ kernel + h @ recurrent_kernel + bias`, split (i, f, c, o).
    """
    N, T, _ = x.shape
    H = Wh.shape[0]
    h, c, gates = (np.zeros((N, T, n), dtype=x.dtype) for n in (H, H, 4 * H))
    h_prev, c_prev = h0, np.zeros_like(h0)
    for t in range(T):
        a = x[:, t] @ Wx + h_prev @ Wh + b
        gates[:, t] = np.concatenate([sigmoid(a[:, :3 * H]), tanh(a[:, 3 * H:])], axis=1)
        i, f, o, g = np.split(gates[:, t], 4, axis=1)
        c_prev = c[:, t] = f * c_prev + i * g
        h_prev = h[:, t] = o * tanh(c_prev)
    return h, (x, h0, h, c, gates, Wx, Wh)


def lstm_backward(dh, cache):
    """(dx, dh0, dWx, dWh, db) for lstm_forward; the cell gradient dc flows back through f."""
    x, h0, h, c, gates, Wx, Wh = cache
    dx, dWx, dWh, db = np.zeros_like(x), np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(Wh.shape[1])
    dh_next, dc_next = np.zeros_like(h0), np.zeros_like(h0)
    for t in reversed(range(x.shape[1])):
        h_prev = h[:, t - 1] if t > 0 else h0
        c_prev = c[:, t - 1] if t > 0 else np.zeros_like(h0)
        i, f, o, g = np.split(gates[:, t], 4, axis=1)
        dh_t, tanh_c = dh[:, t] + dh_next, tanh(c[:, t])
        dc = dc_next + dh_t * o * tanh_grad(tanh_c)
        da = np.concatenate([dc * g * sigmoid_grad(i), dc * c_prev * sigmoid_grad(f),
                             dh_t * tanh_c * sigmoid_grad(o), dc * i * tanh_grad(g)], axis=1)
        dx[:, t], dh_next, dc_next = da @ Wx.T, da @ Wh.T, dc * f
        dWx += x[:, t].T @ da
        dWh += h_prev.T @ da
        db += da.sum(axis=0)
    return dx, dh_next, dWx, dWh, db


def gru_forward(x, h0, Wx, Wh, b, reset_after=True):
    """Keras's GRU (implementation 2), gates (z, r, h); b is (2, 3H) if reset_after else (3H,).

        reset_after=True:  m = x_t Wx + b[0];  u = h_{t-1} Wh + b[1];  hh = tanh(m_h + r ⊙ u_h)
        reset_after=False: m = x_t Wx + b;     u = h_{t-1} Wh[:, :2H]; hh = tanh(m_h + (r ⊙ h_{t-1}) Wh[:, 2H:])
        z = sigmoid(m_z + u_z);  r = sigmoid(m_r + u_r);  h_t = z ⊙ h_{t-1} + (1 - z) ⊙ hh
    Note Keras's h_t weights the *old* state by z (some texts write (1 - z) ⊙ h_{t-1} + z ⊙ hh).
    """
    H = Wh.shape[0]
    expected = (2, 3 * H) if reset_after else (3 * H,)
    if b.shape != expected:
        raise ValueError(f"GRU bias must be {expected} for reset_after={reset_after}. "
                         f"Received: b.shape={b.shape}")
    b_in, b_rec = (b[0], b[1]) if reset_after else (b, 0)
    N, T, _ = x.shape
    h, z, r, hh, u_h = (np.zeros((N, T, H), dtype=x.dtype) for _ in range(5))
    h_prev = h0
    for t in range(T):
        m = x[:, t] @ Wx + b_in
        u = h_prev @ Wh + b_rec if reset_after else h_prev @ Wh[:, :2 * H]
        z[:, t], r[:, t] = sigmoid(m[:, :H] + u[:, :H]), sigmoid(m[:, H:2 * H] + u[:, H:2 * H])
        u_h[:, t] = u[:, 2 * H:] if reset_after else (r[:, t] * h_prev) @ Wh[:, 2 * H:]
        hh[:, t] = tanh(m[:, 2 * H:] + (r[:, t] * u_h[:, t] if reset_after else u_h[:, t]))
        h_prev = h[:, t] = z[:, t] * h_prev + (1 - z[:, t]) * hh[:, t]
    return h, (x, h0, h, z, r, hh, u_h, Wx, Wh, b, reset_after)


def gru_backward(dh, cache):
    """(dx, dh0, dWx, dWh, db) for gru_forward, db shaped as the forward's b."""
    x, h0, h, z, r, hh, u_h, Wx, Wh, b, reset_after = cache
    H = Wh.shape[0]
    dx, dWx, dWh, db = np.zeros_like(x), np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)
    dh_next = np.zeros_like(h0)
    for t in reversed(range(x.shape[1])):
        h_prev = h[:, t - 1] if t > 0 else h0
        dh_t = dh[:, t] + dh_next
        da_h = dh_t * (1 - z[:, t]) * tanh_grad(hh[:, t])
        if reset_after:
            dr, du_h = da_h * u_h[:, t], da_h * r[:, t]
        else:
            drh = da_h @ Wh[:, 2 * H:].T
            dWh[:, 2 * H:] += (r[:, t] * h_prev).T @ da_h
            dr = drh * h_prev
        da_z = dh_t * (h_prev - hh[:, t]) * sigmoid_grad(z[:, t])
        da_r = dr * sigmoid_grad(r[:, t])
        dm = np.concatenate([da_z, da_r, da_h], axis=1)
        du = np.concatenate([da_z, da_r, du_h] if reset_after else [da_z, da_r], axis=1)
        dx[:, t] = dm @ Wx.T
        dWx += x[:, t].T @ dm
        dWh[:, :du.shape[1]] += h_prev.T @ du
        dh_next = dh_t * z[:, t] + du @ Wh[:, :du.shape[1]].T + (0 if reset_after else drh * r[:, t])
        if reset_after:
            db[0] += dm.sum(axis=0)
            db[1] += du.sum(axis=0)
        else:
            db += dm.sum(axis=0)
    return dx, dh_next, dWx, dWh, db
