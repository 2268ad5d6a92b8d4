"""Function-style layers, as courses write them, wrapped into the layer protocol (compare/layer_check.py).

    out, cache = conv_forward(x, w, b, conv_param)        # x (N, C, H, W), w (F, C, HH, WW)
    dx, dw, db = conv_backward(dout, cache)

    from compare.adapters import conv2d
    check_layer(conv2d(conv_forward, conv_backward, w, b, {"stride": 1, "pad": 1}), x)

Each constructor states the Keras layer the functions implement and the data's layout ("NCHW"); the
course's weights are mapped to Keras's shapes by keras_impl/convert.py, the one place that knows both.
"""
import numpy as np

from keras_impl import convert

from .errors import InputError, show


class FunctionLayer:
    """The layer protocol over a forward function, a backward function and weights in a course's shapes.

    forward(x, weights, training) → (out, cache) and backward(dout, cache) → (dx, [grads]) are the
    course's calls; to_keras / from_keras map its weights (and, to_keras, its gradients) to Keras's.
    """

    def __init__(self, keras_layer, layout, weights, forward, backward, to_keras=None, from_keras=None):
        self.keras_layer, self.layout = keras_layer, layout
        self.weights = [np.array(w, dtype=float) for w in weights]
        self._forward, self._backward = forward, backward
        self._to, self._from = to_keras or (lambda ws: ws), from_keras or (lambda ws: ws)
        self.mask, self.cache = None, None

    def get_weights(self):
        return self._to(self.weights)

    def set_weights(self, weights):
        self.weights = self._from([np.array(w, dtype=float) for w in weights])

    def set_noise(self, mask):
        self.mask = mask

    def forward(self, x, training=True):
        result = self._forward(x, self.weights, training, self.mask)
        if not isinstance(result, tuple) or len(result) != 2:
            raise InputError(f"the forward function returned {_what(result)}; expected (out, cache), as a course's "
                             "forward functions return")
        out, self.cache = result
        return out

    def backward(self, dout):
        dx, grads = self._backward(dout, self.cache)
        return dx, self._to(list(grads))


def _what(value):
    if isinstance(value, np.ndarray):
        return f"an array {value.shape}"
    return f"a {type(value).__name__}" + (f" of {len(value)}" if isinstance(value, (tuple, list)) else "")


def _pair(result, n):
    """(dx, [grads]) from a backward that returns (dx, grads) with n gradients."""
    if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], (list, tuple))
            and len(result[1]) == n):
        raise InputError(f"the backward function returned {_what(result)}; expected (dx, grads), grads a list of "
                         f"{n} arrays in Keras's order")
    return result[0], list(result[1])


def _split(result, n, what):
    """(dx, [grads]) from a course backward's (dx, dw, db, ...), which must hold n arrays."""
    if not isinstance(result, (tuple, list)) or len(result) != n:
        raise InputError(f"the backward function returned {_what(result)}; expected {n} arrays ({what})")
    return result[0], list(result[1:])


def _int_pair(value, what, n=2):
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1:
        return (int(value),) * n
    if isinstance(value, (tuple, list)) and len(value) == n and all(isinstance(v, (int, np.integer)) and v >= 1
                                                                    for v in value):
        return tuple(int(v) for v in value)
    raise InputError(f"{what} must be an integer >= 1 or {n} of them; received {show(value)}")


def keras_padding(pad, kernel, stride, dilation):
    """A course's pad ("same", "valid" or symmetric zero padding p per side) as Keras's padding; an InputError
    where Keras has none that equals it (p ≠ 0 and p ≠ (k − 1)·d/2 at stride 1)."""
    if pad in ("same", "valid"):
        return pad
    if not isinstance(pad, (int, np.integer)) or isinstance(pad, bool) or pad < 0:
        raise InputError(f"pad must be 'same', 'valid' or an integer >= 0; received {show(pad)}")
    if pad == 0:
        return "valid"
    if all(s == 1 and (k - 1) * d == 2 * pad for k, s, d in zip(kernel, stride, dilation)):
        return "same"
    raise InputError(f"pad={pad} with kernel {kernel}, stride {stride}: Keras's padding is 'valid' (0) or 'same' "
                     f"((k − 1)·dilation/2 per side at stride 1); no Keras layer pads {pad} here")


def conv(forward, backward, w, b, conv_param=None):
    """conv_forward(x, w, b, conv_param) / conv_backward(dout, cache) → dx, dw, db, with w (F, C, HH, WW) and x
    NCHW (or w (F, C, K) and x (N, C, T) in 1-D): Keras's Conv2D (Conv1D). conv_param: stride, pad, dilation."""
    w = np.asarray(w, dtype=float)
    if w.ndim not in (3, 4):
        raise InputError(f"a convolution kernel is (F, C, HH, WW) or (F, C, K); received shape {w.shape}")
    param = dict(conv_param or {})
    n = w.ndim - 2
    stride = _int_pair(param.get("stride", 1), "conv_param['stride']", n)
    dilation = _int_pair(param.get("dilation", 1), "conv_param['dilation']", n)
    padding = keras_padding(param.get("pad", 0), w.shape[2:], stride, dilation)
    config = {"filters": int(w.shape[0]), "kernel_size": tuple(w.shape[2:]), "strides": stride, "padding": padding,
              "dilation_rate": dilation}
    return FunctionLayer(
        {"class_name": "Conv2D" if n == 2 else "Conv1D", "config": config}, "NCHW" if n == 2 else "NCT", [w, b],
        lambda x, ws, training, mask: forward(x, ws[0], ws[1], param),
        lambda dout, cache: _split(backward(dout, cache), 3, "dx, dw, db"),
        to_keras=lambda ws: [convert.conv_kernel_to_keras(ws[0]), np.asarray(ws[1])],
        from_keras=lambda ws: [convert.conv_kernel_from_keras(ws[0]), ws[1]])


def pool(forward, backward, pool_param, kind="max"):
    """max_pool_forward(x, pool_param) / max_pool_backward(dout, cache) → dx (or avg_...), x NCHW, pool_param
    pool_height, pool_width, stride and pad ('valid' by default, or 'same'): Keras's Max/AveragePooling2D."""
    param = dict(pool_param or {})
    try:
        size = (int(param["pool_height"]), int(param["pool_width"]))
    except (KeyError, TypeError, ValueError):
        raise InputError(f"pool_param needs pool_height and pool_width; received {show(param)}") from None
    stride = _int_pair(param.get("stride", size), "pool_param['stride']")
    padding = param.get("pad", "valid")
    if padding not in ("valid", "same", 0):
        raise InputError(f"pool_param['pad'] must be 'valid' or 'same'; received {show(padding)}")
    classes = {"max": "MaxPooling2D", "average": "AveragePooling2D"}
    if kind not in classes:
        raise InputError(f"pool kind {show(kind)}; expected 'max' or 'average'")
    config = {"pool_size": size, "strides": stride, "padding": "valid" if padding == 0 else padding}
    return FunctionLayer({"class_name": classes[kind], "config": config}, "NCHW", [],
                         lambda x, ws, training, mask: forward(x, param),
                         lambda dout, cache: (backward(dout, cache), []))


def global_average_pool(forward, backward):
    """global_avg_pool_forward(x) → (N, C) / global_avg_pool_backward(dout, cache) → dx, x NCHW."""
    return FunctionLayer({"class_name": "GlobalAveragePooling2D", "config": {}}, "NCHW", [],
                         lambda x, ws, training, mask: forward(x), lambda dout, cache: (backward(dout, cache), []))


def dense(forward, backward, w, b, w_shape="units_inputs"):
    """affine_forward(x, w, b) / affine_backward(dout, cache) → dx, dw, db: Keras's Dense. w is (units, inputs)
    as in the guide, or (inputs, units) as in CS231n with w_shape="inputs_units"."""
    w = np.asarray(w, dtype=float)
    if w.ndim != 2:
        raise InputError(f"a dense weight is 2-D; received shape {w.shape}")
    try:
        kernel = convert.dense_kernel_to_keras(w, w_shape)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    return FunctionLayer(
        {"class_name": "Dense", "config": {"units": int(kernel.shape[1])}}, None, [w, b],
        lambda x, ws, training, mask: forward(x, ws[0], ws[1]),
        lambda dout, cache: _split(backward(dout, cache), 3, "dx, dw, db"),
        to_keras=lambda ws: [convert.dense_kernel_to_keras(ws[0], w_shape), np.asarray(ws[1])],
        from_keras=lambda ws: [convert.dense_kernel_from_keras(ws[0], w_shape), ws[1]])


def elementwise(forward, backward, keras_layer, layout=None):
    """forward(x) → (out, cache) / backward(dout, cache) → dx, for a layer without weights acting on the array
    as given: relu, softmax, an activation, flatten, reshape."""
    return FunctionLayer(keras_layer, layout, [], lambda x, ws, training, mask: forward(x),
                         lambda dout, cache: (backward(dout, cache), []))


def dropout(forward, backward, rate):
    """dropout_forward(x, dropout_param) / dropout_backward(dout, cache) → dx, inverted dropout as Keras's:
    dropout_param = {"p": rate dropped, "mode": "train" or "test", "mask": the check's keep-mask (1 kept)}."""
    def fwd(x, ws, training, mask):
        return forward(x, {"p": rate, "mode": "train" if training else "test", "mask": mask})
    return FunctionLayer({"class_name": "Dropout", "config": {"rate": rate}}, None, [], fwd,
                         lambda dout, cache: (backward(dout, cache), []))


def embedding(forward, backward, W):
    """embedding_forward(x, W) → (N, T, D) / embedding_backward(dout, cache) → dW, x integer ids (N, T),
    W (V, D): Keras's Embedding(V, D); repeated ids accumulate their rows."""
    W = np.asarray(W, dtype=float)
    if W.ndim != 2:
        raise InputError(f"an embedding table is (V, D); received shape {W.shape}")
    return FunctionLayer(
        {"class_name": "Embedding", "config": {"input_dim": int(W.shape[0]), "output_dim": int(W.shape[1])}}, None,
        [W], lambda x, ws, training, mask: forward(x, ws[0]), lambda dout, cache: (None, [backward(dout, cache)]))


def batchnorm(forward, backward, gamma, beta, bn_param, layout=None):
    """batchnorm_forward(x, gamma, beta, bn_param) / batchnorm_backward(dout, cache) → dx, dgamma, dbeta, with
    bn_param eps, momentum, running_mean, running_var and mode ("train"/"test"), the running statistics
    updated in bn_param in training (CS231n): Keras's BatchNormalization, weights gamma, beta, moving_mean,
    moving_variance. Features on the last axis unless `layout` says otherwise (e.g. "NCHW")."""
    param = dict(bn_param or {})
    gamma = np.asarray(gamma, dtype=float)
    param.setdefault("running_mean", np.zeros(gamma.shape))
    param.setdefault("running_var", np.ones(gamma.shape))
    config = {"epsilon": float(param.get("eps", 1e-3)), "momentum": float(param.get("momentum", 0.99))}

    def fwd(x, ws, training, mask):
        param.update(mode="train" if training else "test", running_mean=ws[2], running_var=ws[3])
        out, cache = forward(x, ws[0], ws[1], param)
        ws[2], ws[3] = param["running_mean"], param["running_var"]
        return out, cache

    return FunctionLayer({"class_name": "BatchNormalization", "config": config}, layout,
                         [gamma, beta, param["running_mean"], param["running_var"]], fwd,
                         lambda dout, cache: _split(backward(dout, cache), 3, "dx, dgamma, dbeta"),
                         to_keras=lambda ws: list(ws), from_keras=lambda ws: list(ws))


def layernorm(forward, backward, gamma, beta, ln_param=None):
    """layernorm_forward(x, gamma, beta, ln_param) / layernorm_backward(dout, cache) → dx, dgamma, dbeta over
    the last axis: Keras's LayerNormalization (ε from ln_param["eps"], default Keras's 1e-3)."""
    param = dict(ln_param or {})
    config = {"epsilon": float(param.get("eps", 1e-3))}
    return FunctionLayer({"class_name": "LayerNormalization", "config": config}, None, [gamma, beta],
                         lambda x, ws, training, mask: forward(x, ws[0], ws[1], param),
                         lambda dout, cache: _split(backward(dout, cache), 3, "dx, dgamma, dbeta"))


# --- recurrent layers: forward(x, h0, Wx, Wh, b) → (h (N, T, H), cache),
#     backward(dh, cache) → (dx, dh0, dWx, dWh, db)
def _recurrent(class_name, config, forward, backward, weights, gates=None):
    """The layer protocol over a course's whole-sequence RNN functions; h0 = 0 (Keras's initial state), and
    return_sequences=False returns h[:, -1] and feeds backward a dh that is zero but at the last step."""
    Wx, Wh, b = (np.asarray(w, dtype=float) for w in weights)
    H = Wh.shape[0]
    if Wh.ndim != 2 or Wx.ndim != 2 or Wx.shape[1] != Wh.shape[1] or Wh.shape[1] % H:
        raise InputError(f"{class_name}: Wx must be (D, G·H) and Wh (H, G·H); received Wx {Wx.shape}, Wh {Wh.shape}")
    sequences = bool(config.get("return_sequences", True))

    def fwd(x, ws, training, mask):
        result = forward(x, np.zeros((x.shape[0], H)), *ws)
        if not isinstance(result, tuple) or len(result) != 2:
            raise InputError(f"the forward function returned {_what(result)}; expected (h, cache), h (N, T, H)")
        h, cache = result
        return (h if sequences else h[:, -1]), (cache, np.shape(h))

    def bwd(dout, cache):
        cache, shape = cache
        dh = dout if sequences else np.zeros(shape)
        if not sequences:
            dh[:, -1] = dout
        dx, grads = _split(backward(dh, cache), 5, "dx, dh0, dWx, dWh, db")
        return dx, grads[1:]

    to = (lambda ws: [gates(w) for w in ws]) if gates else None
    return FunctionLayer({"class_name": class_name, "config": {"units": int(H), **config}}, None, [Wx, Wh, b],
                         fwd, bwd, to_keras=to, from_keras=to)


def rnn(forward, backward, Wx, Wh, b, return_sequences=True):
    """rnn_forward / rnn_backward, h_t = tanh(x_t Wx + h_{t−1} Wh + b), Wx (D, H), Wh (H, H), b (H,): Keras's
    SimpleRNN(H) (kernel = Wx, recurrent_kernel = Wh)."""
    return _recurrent("SimpleRNN", {"return_sequences": return_sequences}, forward, backward, [Wx, Wh, b])


def lstm(forward, backward, Wx, Wh, b, return_sequences=True):
    """lstm_forward / lstm_backward with the courses' gate order (i, f, o, g): Wx (D, 4H), Wh (H, 4H), b (4H,);
    Keras's LSTM(H) holds (i, f, c, o), mapped by keras_impl/convert.py's lstm_gates_to_keras."""
    return _recurrent("LSTM", {"return_sequences": return_sequences}, forward, backward, [Wx, Wh, b],
                      gates=convert.lstm_gates_to_keras)


def gru(forward, backward, Wx, Wh, b, return_sequences=True, reset_after=True):
    """gru_forward / gru_backward in Keras's gate order (z, r, h), h_t = z·h_{t−1} + (1 − z)·hh: Wx (D, 3H),
    Wh (H, 3H), b (2, 3H) (input and recurrent biases) for reset_after=True, else (3H,): Keras's GRU(H).
    forward is called as forward(x, h0, Wx, Wh, b, reset_after=reset_after)."""
    b = np.asarray(b, dtype=float)
    H = np.shape(Wh)[0]
    expected = (2, 3 * H) if reset_after else (3 * H,)
    if b.shape != expected:
        raise InputError(f"GRU with reset_after={reset_after} has a bias {expected}; received b.shape={b.shape}")
    return _recurrent("GRU", {"return_sequences": return_sequences, "reset_after": reset_after},
                      lambda x, h0, *ws: forward(x, h0, *ws, reset_after=reset_after), backward, [Wx, Wh, b])


def attention(forward, backward, weights, num_heads, key_dim, causal=False):
    """mha_forward(x, Wq, bq, Wk, bk, Wv, bv, Wo, bo, num_heads, causal) → (out, cache) / mha_backward(dout, cache)
    → (dx, [8 grads]), self-attention on x (N, T, D): Keras's MultiHeadAttention(num_heads, key_dim) called as
    layer(x, x, x, use_causal_mask=causal). weights in Keras's shapes and order: Wq, Wk, Wv (D, num_heads, key_dim),
    bq, bk, bv (num_heads, key_dim), Wo (num_heads, key_dim, D), bo (D,)."""
    weights = [np.asarray(w, dtype=float) for w in weights]
    shapes = [w.shape for w in weights]
    D = shapes[0][0] if shapes and len(shapes[0]) == 3 else None
    expected = [(D, num_heads, key_dim), (num_heads, key_dim)] * 3 + [(num_heads, key_dim, D), (D,)]
    if len(weights) != 8 or shapes != expected:
        raise InputError(f"attention weights must be Wq, bq, Wk, bk, Wv, bv, Wo, bo shaped {expected} for "
                         f"num_heads={num_heads}, key_dim={key_dim}; received shapes {shapes}")
    keras_layer = {"class_name": "MultiHeadAttention", "config": {"num_heads": int(num_heads), "key_dim": int(key_dim)}}
    if causal:
        keras_layer["call"] = {"use_causal_mask": True}
    return FunctionLayer(keras_layer, None, weights,
                         lambda x, ws, training, mask: forward(x, *ws, num_heads, causal),
                         lambda dout, cache: _pair(backward(dout, cache), 8))
