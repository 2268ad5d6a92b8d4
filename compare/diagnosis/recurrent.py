"""Known mistakes in SimpleRNN, LSTM and GRU layers, each a prediction computed by Keras with the mistake planted
(compare/diagnosis/layers.py names a cause whose prediction fits every element of the failing quantity).

    lstm_gate_order      the gate blocks in another order than Keras's (i, f, c, o): CS231n's (i, f, o, g) given
                         unmapped, or two blocks swapped; Keras run on the blocks permuted, gradients permuted back
    gru_reset_convention the other reset_after: Keras's GRU with reset_after flipped (bias b_in + b_rec, or [b, 0])
    gru_update_swapped   h = (1 − z)·h_{t−1} + z·hh: 1 − σ(a) = σ(−a), so Keras on the z columns negated
    truncated_bptt       the gradient is not carried back through time: each step's cell differentiated with
                         the state before it held constant
"""
import itertools

import numpy as np


def hypotheses(ctx, name, keras):
    """(cause, text, {name: predicted}) for the recurrent class of ctx."""
    from .rerun import rerun
    cls, config, weights = ctx["spec"]["class_name"], ctx["spec"]["config"], ctx["weights"]
    if cls == "LSTM":
        for a, b in itertools.combinations(range(4), 2):
            order = list(range(4))
            order[a], order[b] = b, a
            text = ("the LSTM gates are in CS231n's order (i, f, o, g) where Keras's kernel, recurrent_kernel and bias "
                    "hold (i, f, c, o) (keras_impl/convert.py lstm_gates_to_keras maps them)" if (a, b) == (2, 3) else
                    f"the LSTM gate blocks {'ifco'[a]} and {'ifco'[b]} are swapped; Keras holds (i, f, c, o)")
            move = (lambda w, order=order: _blocks(w, 4, order))
            yield "lstm_gate_order", text, _weights_moved(ctx, rerun(ctx, weights=[move(w) for w in weights]), move)
    if cls == "GRU":
        yield from _gru(ctx, rerun, config, weights)
    text = ("the gradient is not carried back through time: each step's backward uses only its own dout, not dh_next "
            "from the step after it (backpropagation through time adds it to dh_t)")
    yield "truncated_bptt", text, _truncated(ctx)


def _gru(ctx, rerun, config, weights):
    kernel, recurrent, bias = weights
    H = recurrent.shape[0]
    after = config.get("reset_after", True)
    flipped = {**config, "reset_after": not after}
    if after:
        predicted = rerun(ctx, config=flipped, weights=[kernel, recurrent, bias[0] + bias[1]])
        db = _bias_name(ctx)
        predicted[db] = np.stack([predicted[db], predicted[db]])
    else:
        predicted = rerun(ctx, config=flipped, weights=[kernel, recurrent, np.stack([bias, np.zeros_like(bias)])])
        db = _bias_name(ctx)
        predicted[db] = predicted[db][0]
    keras_hh = "hh = tanh(x W_h + b_in + r·(h U_h + b_rec))" if after else "hh = tanh(x W_h + (r·h) U_h + b)"
    text = (f"the GRU applies the reset gate {'before' if after else 'after'} the recurrent matmul; this Keras layer "
            f"has reset_after={after} ({keras_hh})")
    yield "gru_reset_convention", text, predicted
    sign = np.ones(3 * H)
    sign[:H] = -1.0
    swapped = rerun(ctx, weights=[w * sign for w in weights])
    text = ("the GRU update gate's role is swapped: h = (1 − z)·h_{t−1} + z·hh where Keras keeps "
            "h = z·h_{t−1} + (1 − z)·hh")
    yield "gru_update_swapped", text, _weights_moved(ctx, swapped, lambda w: w * sign)


def _blocks(w, n, order):
    """w's last axis cut into n blocks, put in `order` (a swap: its own inverse)."""
    parts = np.split(np.asarray(w), n, axis=-1)
    return np.concatenate([parts[k] for k in order], axis=-1)


def _weights_moved(ctx, predicted, move):
    """Gradients of Keras's planted weights moved back to the numpy side's (move is its own inverse)."""
    for s in ctx["specs"]:
        if s[2] and f"d{s[0]}" in predicted:
            predicted[f"d{s[0]}"] = move(predicted[f"d{s[0]}"])
    return predicted


def _bias_name(ctx):
    return "d" + [s[0] for s in ctx["specs"] if s[2]][2]


def _truncated(ctx):
    """dx and weight gradients with every step's incoming state held constant (no gradient through it)."""
    import tensorflow as tf
    layer, x, dout = ctx["klayer"], ctx["xk"], ctx["dout_k"]
    cell, N, T = layer.cell, x.shape[0], x.shape[1]
    states = [tf.zeros((N, n), dtype=x.dtype) for n in np.atleast_1d(cell.state_size)]
    dx, grads = np.zeros_like(x), [np.zeros(tuple(v.shape)) for v in cell.trainable_weights]
    for t in range(T):
        xt = tf.convert_to_tensor(x[:, t])
        with tf.GradientTape() as tape:
            tape.watch(xt)
            h, new = cell(xt, states, training=ctx["training"])
        g = dout[:, t] if layer.return_sequences else (dout if t == T - 1 else np.zeros_like(dout))
        got = tape.gradient(h, [xt] + list(cell.trainable_weights), output_gradients=tf.convert_to_tensor(g))
        dx[:, t] = got[0].numpy()
        grads = [a + (0 if b is None else b.numpy()) for a, b in zip(grads, got[1:])]
        states = [tf.stop_gradient(s) for s in (new if isinstance(new, (list, tuple)) else [new])]
    predicted = {"dx": dx}
    predicted.update({f"d{s[0]}": g for s, g in zip([s for s in ctx["specs"] if s[2]], grads)})
    return predicted
