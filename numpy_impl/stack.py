"""Whole networks as a stack of the numpy layers (numpy_impl/layers), with their own backprop and optimizer:
the project's CNN, CNN with batch norm and dropout, LSTM and GRU on the digits (python -m compare --model ...).

A Stack keeps to the check's `layers` protocol (README, "Checking a whole network"): `layers` (each layer's
Keras class and config), get_weights()/set_weights() in Keras's order and shapes (the mapping from the courses'
shapes is keras_impl/convert.py's), forward(X) → every layer's output without changing any state, inference(X) → the same in inference mode,
gradients(X, y) → (loss, trainable gradients) as the training step's forward and backward (moving statistics
updated there), apply_gradients(grads), and set_noise(masks) for the Dropout layers' keep-masks. Images are
held channels first (layout "NCHW"); Flatten reads them in Keras's (H, W, C) order, so that the Dense kernel
after it is Keras's.
"""
import numpy as np

from keras_impl import convert

from . import layers as L
from .losses import LOSSES
from .optimizers import OPTIMIZERS


def _nhwc(x):
    return x.transpose(0, 2, 3, 1) if x.ndim == 4 else x


def _nchw(x):
    return x.transpose(0, 3, 1, 2) if x.ndim == 4 else x


class Layer:
    """One layer: its Keras declaration, weights in the course's shapes, forward(x, training, update) and
    backward(dout) → (dx, gradients of the trainable weights). `keras`/`course` map weights both ways."""

    trainable = 0

    def __init__(self, class_name, config, weights=(), trainable=None, inputs=None):
        self.keras_layer = {"class_name": class_name, "config": config}
        self.inputs = inputs  # indices of the layers it reads (−1: X); None: the layer before
        self.weights = [np.array(w, dtype=float) for w in weights]
        self.trainable = len(self.weights) if trainable is None else trainable
        self.cache, self.mask = None, None

    def keras(self, weights):
        return [np.array(w) for w in weights]

    def course(self, weights):
        return [np.array(w, dtype=float) for w in weights]


class Reshape(Layer):
    """Keras's Reshape(target) on channels-last data; a 3-D target (H, W, C) is held as (C, H, W)."""

    def __init__(self, target):
        super().__init__("Reshape", {"target_shape": tuple(target)})
        self.target = tuple(target)

    def forward(self, x, training, update):
        out, self.cache = L.reshape_forward(x, self.target)
        return _nchw(out)

    def backward(self, dout):
        return L.reshape_backward(_nhwc(dout), self.cache), []


class Conv2D(Layer):
    """Keras's Conv2D(F, (HH, WW), strides 1, 'valid' or 'same'); w (F, C, HH, WW), b (F,)."""

    def __init__(self, w, b, padding="valid"):
        w = np.asarray(w, dtype=float)
        super().__init__("Conv2D", {"filters": w.shape[0], "kernel_size": tuple(w.shape[2:]), "padding": padding},
                         [w, b])
        self.param = {"pad": padding}

    def forward(self, x, training, update):
        out, self.cache = L.conv_forward(x, *self.weights, self.param)
        return out

    def backward(self, dout):
        dx, dw, db = L.conv_backward(dout, self.cache)
        return dx, [dw, db]

    def keras(self, weights):
        return [convert.conv_kernel_to_keras(weights[0]), np.array(weights[1])]

    def course(self, weights):
        return [convert.conv_kernel_from_keras(weights[0]).astype(float), np.array(weights[1], dtype=float)]


class MaxPool(Layer):
    def __init__(self, size):
        super().__init__("MaxPooling2D", {"pool_size": (size, size)})
        self.param = {"pool_height": size, "pool_width": size}

    def forward(self, x, training, update):
        out, self.cache = L.max_pool_forward(x, self.param)
        return out

    def backward(self, dout):
        return L.max_pool_backward(dout, self.cache), []


class Elementwise(Layer):
    """ReLU or Softmax (over the last axis)."""

    FUNCTIONS = {"ReLU": (L.relu_forward, L.relu_backward), "Softmax": (L.softmax_forward, L.softmax_backward)}

    def __init__(self, class_name):
        super().__init__(class_name, {})
        self.f, self.df = self.FUNCTIONS[class_name]

    def forward(self, x, training, update):
        out, self.cache = self.f(x)
        return out

    def backward(self, dout):
        return self.df(dout, self.cache), []


class Flatten(Layer):
    """Keras's Flatten: an image is read in (H, W, C) order."""

    def __init__(self):
        super().__init__("Flatten", {})

    def forward(self, x, training, update):
        self.cache = x.shape
        return _nhwc(x).reshape(x.shape[0], -1)

    def backward(self, dout):
        shape = self.cache
        if len(shape) == 4:
            N, C, H, W = shape
            return _nchw(dout.reshape(N, H, W, C)), []
        return dout.reshape(shape), []


class Dense(Layer):
    """W (units, inputs), b (units,): out = x @ W.T + b; Keras's kernel is W.T."""

    def __init__(self, W, b):
        super().__init__("Dense", {"units": int(np.shape(W)[0])}, [W, b])

    def forward(self, x, training, update):
        out, self.cache = L.affine_forward(x, *self.weights)
        return out

    def backward(self, dout):
        dx, dW, db = L.affine_backward(dout, self.cache)
        return dx, [dW, db]

    def keras(self, weights):
        return convert.to_keras(weights)

    def course(self, weights):
        return [np.array(w, dtype=float) for w in convert.from_keras(weights)]


class BatchNorm(Layer):
    """Keras's BatchNormalization over the channels (axis 1 of an image held NCHW, the last otherwise):
    gamma, beta trainable; moving_mean, moving_variance updated by the training step only."""

    def __init__(self, channels, momentum=0.99, epsilon=1e-3):
        super().__init__("BatchNormalization", {"momentum": momentum, "epsilon": epsilon},
                         [np.ones(channels), np.zeros(channels), np.zeros(channels), np.ones(channels)], trainable=2)

    def forward(self, x, training, update):
        gamma, beta, mean, var = self.weights
        param = {"mode": "train" if training else "test", "eps": self.keras_layer["config"]["epsilon"],
                 "momentum": self.keras_layer["config"]["momentum"], "running_mean": mean, "running_var": var}
        out, self.cache = L.batchnorm_forward(_nhwc(x), gamma, beta, param)
        if update:
            self.weights[2], self.weights[3] = param["running_mean"], param["running_var"]
        return _nchw(out)

    def backward(self, dout):
        dx, dgamma, dbeta = L.batchnorm_backward(_nhwc(dout), self.cache)
        return _nchw(dx), [dgamma, dbeta]


class Dropout(Layer):
    """Inverted dropout with the keep-mask given by set_noise (the check gives Keras's draw to both sides)."""

    def __init__(self, rate):
        super().__init__("Dropout", {"rate": rate})
        self.rate = rate

    def forward(self, x, training, update):
        out, self.cache = L.dropout_forward(x, {"p": self.rate, "mode": "train" if training else "test",
                                                "mask": self.mask})
        return out

    def backward(self, dout):
        return L.dropout_backward(dout, self.cache), []


class Recurrent(Layer):
    """Keras's LSTM(H) or GRU(H) returning the last step's h, from h0 = 0. LSTM weights in the courses' gate
    order (i, f, o, g), mapped to Keras's (i, f, c, o); GRU in Keras's (z, r, h) with reset_after."""

    def __init__(self, kind, Wx, Wh, b):
        super().__init__({"lstm": "LSTM", "gru": "GRU"}[kind], {"units": int(np.shape(Wh)[0])}, [Wx, Wh, b])
        self.kind = kind

    def forward(self, x, training, update):
        h0 = np.zeros((x.shape[0], self.weights[1].shape[0]))
        f = L.lstm_forward if self.kind == "lstm" else L.gru_forward
        h, self.cache = f(x, h0, *self.weights)
        self.shape = h.shape
        return h[:, -1]

    def backward(self, dout):
        dh = np.zeros(self.shape)
        dh[:, -1] = dout
        f = L.lstm_backward if self.kind == "lstm" else L.gru_backward
        dx, _, dWx, dWh, db = f(dh, self.cache)
        return dx, [dWx, dWh, db]

    def keras(self, weights):
        return [convert.lstm_gates_to_keras(w) if self.kind == "lstm" else np.array(w) for w in weights]

    def course(self, weights):
        return [convert.lstm_gates_from_keras(w) if self.kind == "lstm" else np.array(w, dtype=float)
                for w in weights]


class Embedding(Layer):
    """Keras's Embedding(V, D): out[n, t] = W[ids[n, t]], the ids given as numbers (the check's X is float)."""

    def __init__(self, W):
        super().__init__("Embedding", {"input_dim": int(np.shape(W)[0]), "output_dim": int(np.shape(W)[1])}, [W],
                         inputs=[-1])

    def forward(self, x, training, update):
        out, self.cache = L.embedding_forward(np.asarray(x).astype(np.int64), self.weights[0])
        return out

    def backward(self, dout):
        return None, [L.embedding_backward(dout, self.cache)]


class Attention(Layer):
    """Keras's MultiHeadAttention(heads, key_dim) as self-attention, causal or not; weights in Keras's shapes."""

    def __init__(self, weights, num_heads, causal, inputs):
        super().__init__("MultiHeadAttention", {"num_heads": num_heads, "key_dim": int(np.shape(weights[0])[2])},
                         weights, inputs=inputs)
        self.keras_layer["call"] = {"use_causal_mask": causal}
        self.num_heads, self.causal = num_heads, causal

    def forward(self, x, training, update):
        out, self.cache = L.mha_forward(x, *self.weights, self.num_heads, self.causal)
        return out

    def backward(self, dout):
        return L.mha_backward(dout, self.cache)


class LayerNorm(Layer):
    """Keras's LayerNormalization over the last axis (ε = 1e-3)."""

    def __init__(self, features, inputs=None):
        super().__init__("LayerNormalization", {"epsilon": 1e-3}, [np.ones(features), np.zeros(features)],
                         inputs=inputs)

    def forward(self, x, training, update):
        out, self.cache = L.layernorm_forward(x, *self.weights, {"eps": 1e-3})
        return out

    def backward(self, dout):
        dx, dgamma, dbeta = L.layernorm_backward(dout, self.cache)
        return dx, [dgamma, dbeta]


class Add(Layer):
    """Keras's Add of two layers' outputs (a residual connection): out = a + b; each input's gradient is dout."""

    def __init__(self, inputs):
        super().__init__("Add", {}, inputs=list(inputs))

    def forward(self, xs, training, update):
        return xs[0] + xs[1]

    def backward(self, dout):
        return [dout, dout], []


class Stack:
    """A network of Layer objects trained with a Keras loss (by name) and a numpy_impl optimizer."""

    layout = "NCHW"

    def __init__(self, modules, loss, optimizer, learning_rate, optimizer_config=None):
        self.modules, self.loss, self.optimizer = list(modules), loss, optimizer
        self.learning_rate, self.optimizer_config = learning_rate, dict(optimizer_config or {})
        self._optimizer = OPTIMIZERS[optimizer](learning_rate, **self.optimizer_config)

    @property
    def layers(self):
        return [dict(m.keras_layer, inputs=list(m.inputs)) if m.inputs is not None else m.keras_layer
                for m in self.modules]

    def _sources(self):
        return [m.inputs if m.inputs is not None else [i - 1] for i, m in enumerate(self.modules)]

    def get_weights(self):
        return [w for m in self.modules for w in m.keras(m.weights)]

    def set_weights(self, weights):
        """Weights in Keras's order and shapes, held in the courses' layouts as C-contiguous copies: a transposed
        view would send x @ W.T down another BLAS path than the network's own arrays, whose sums can round
        differently (seen with OpenBLAS 0.3.31 on AVX-512: a Dense output one ulp apart, a golden replay
        inconclusive)."""
        weights, at = list(weights), 0
        for m in self.modules:
            m.weights = [np.ascontiguousarray(w) for w in m.course(weights[at:at + len(m.weights)])]
            at += len(m.weights)

    def set_noise(self, masks):
        for m, mask in zip([m for m in self.modules if isinstance(m, Dropout)], masks):
            m.mask = mask

    def _forward(self, X, training=True, update=False):
        outputs = []
        for m, srcs in zip(self.modules, self._sources()):
            ins = [X if j < 0 else outputs[j] for j in srcs]
            outputs.append(m.forward(ins if isinstance(m, Add) else ins[0], training, update))
        return outputs

    def forward(self, X):
        """Every layer's output in training mode; nothing changes (the moving statistics are the step's)."""
        return self._forward(X)

    def inference(self, X):
        """Every layer's output in inference mode: moving statistics, no dropout; nothing changes."""
        return self._forward(X, training=False)

    def gradients(self, X, y):
        """(loss, gradients of the trainable weights in Keras's order and shapes). A softmax last layer under
        a cross-entropy is differentiated from its input, dL/dz = (softmax(z) − y)/N, as Keras does."""
        outputs = self._forward(X, update=True)
        on_output, on_logits = LOSSES[self.loss]
        fused = isinstance(self.modules[-1], Elementwise) and self.modules[-1].keras_layer["class_name"] == "Softmax" \
            and on_logits is not None
        logits_at = self._sources()[-1][0]  # the softmax's input
        if fused:
            loss, dout = on_logits(outputs[logits_at].reshape(-1, y.shape[-1]), y.reshape(-1, y.shape[-1]))
            dout = dout.reshape(outputs[logits_at].shape)
        else:
            loss, dout = on_output(outputs[-1].reshape(-1, y.shape[-1]), y.reshape(-1, y.shape[-1]))
            dout = dout.reshape(outputs[-1].shape)
        L = len(self.modules)
        douts, grads, sources = {(logits_at if fused else L - 1): dout}, [], self._sources()
        for i in reversed(range(L - 1 if fused else L)):
            m = self.modules[i]
            if i not in douts:  # nothing after it reaches the loss: its gradients are zeros
                grads[:0] = [np.zeros_like(w) for w in m.keras(m.weights)[:m.trainable]]
                continue
            dx, g = m.backward(douts.pop(i))
            grads[:0] = m.keras(g + m.weights[len(g):])[:m.trainable] if g else []
            for j, d in zip(sources[i], dx if isinstance(m, Add) else [dx]):
                if j >= 0 and d is not None:
                    douts[j] = douts[j] + d if j in douts else d
        return loss, grads

    def apply_gradients(self, grads):
        grads, at, course = list(grads), 0, []
        for m in self.modules:
            if m.trainable:
                course += m.course(grads[at:at + m.trainable] + m.keras(m.weights)[m.trainable:])[:m.trainable]
                at += m.trainable
        trainable = [w for m in self.modules for w in m.weights[:m.trainable]]
        new = self._optimizer.apply(trainable, course)
        for m in self.modules:
            m.weights[:m.trainable], new = new[:m.trainable], new[m.trainable:]


def _glorot(rng, shape, fan_in, fan_out):
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape)


def _orthogonal(rng, rows, cols):
    q, r = np.linalg.qr(rng.standard_normal((max(rows, cols), min(rows, cols))))
    q = q * np.sign(np.diag(r))
    return q if rows >= cols else q.T


def cnn(seed=0, batch_norm=False, dropout=0.0, filters=8, learning_rate=1e-3):
    """Reshape(8, 8, 1) → Conv2D(filters, 3) → [BatchNormalization] → ReLU → MaxPooling2D(2) → Flatten →
    [Dropout] → Dense(10) → Softmax; categorical cross-entropy, Adam. Keras's default initialisers (Glorot
    uniform kernels, zero biases), drawn by numpy from `seed`."""
    rng = np.random.default_rng(seed)
    w = _glorot(rng, (filters, 1, 3, 3), 9, 9 * filters)
    W = _glorot(rng, (10, 9 * filters), 9 * filters, 10)
    modules = [Reshape((8, 8, 1)), Conv2D(w, np.zeros(filters))]
    modules += [BatchNorm(filters)] if batch_norm else []
    modules += [Elementwise("ReLU"), MaxPool(2), Flatten()]
    modules += [Dropout(dropout)] if dropout else []
    modules += [Dense(W, np.zeros(10)), Elementwise("Softmax")]
    return Stack(modules, "categorical_crossentropy", "adam", learning_rate)


def recurrent(kind="lstm", seed=0, units=16, learning_rate=1e-3):
    """Reshape(8, 8) (each digit's rows as 8 time steps) → LSTM(units) or GRU(units) → Dense(10) → Softmax;
    categorical cross-entropy, Adam. Keras's initialisers: Glorot uniform kernel, orthogonal recurrent kernel,
    zero bias (the LSTM's forget gate 1, unit_forget_bias)."""
    rng = np.random.default_rng(seed)
    gates = 4 if kind == "lstm" else 3
    Wx = _glorot(rng, (8, gates * units), 8, gates * units)
    Wh = np.concatenate([_orthogonal(rng, units, units) for _ in range(gates)], axis=1)
    if kind == "lstm":
        b = np.zeros(4 * units)
        b[units:2 * units] = 1.0  # f, in both orders the second block
    else:
        b = np.zeros((2, 3 * units))
    W = _glorot(rng, (10, units), units, 10)
    modules = [Reshape((8, 8)), Recurrent(kind, Wx, Wh, b), Dense(W, np.zeros(10)), Elementwise("Softmax")]
    return Stack(modules, "categorical_crossentropy", "adam", learning_rate)


def transformer(seed=0, tokens=8, width=16, heads=2, hidden=32, learning_rate=1e-3):
    """One encoder block on integer sequences, residual connections as a graph:
    Embedding → MultiHeadAttention (causal) → Add(embedding, attention) → LayerNormalization → Dense(hidden) → ReLU
    → Dense(width) → Add(normalized, that) → LayerNormalization → Dense(tokens) → Softmax; categorical cross-entropy
    per position, Adam. Keras's initialisers: Embedding U(−0.05, 0.05), Glorot uniform kernels, zero biases."""
    rng = np.random.default_rng(seed)
    key_dim = width // heads
    attention = []
    for _ in range(3):
        attention += [_glorot(rng, (width, heads, key_dim), width, heads * key_dim), np.zeros((heads, key_dim))]
    attention += [_glorot(rng, (heads, key_dim, width), heads * key_dim, width), np.zeros(width)]
    modules = [
        Embedding(rng.uniform(-0.05, 0.05, (tokens, width))),                    # 0
        Attention(attention, heads, True, inputs=[0]),                            # 1
        Add([0, 1]),                                                              # 2
        LayerNorm(width, inputs=[2]),                                             # 3
        Dense(_glorot(rng, (hidden, width), width, hidden), np.zeros(hidden)),    # 4
        Elementwise("ReLU"),                                                      # 5
        Dense(_glorot(rng, (width, hidden), hidden, width), np.zeros(width)),     # 6
        Add([3, 6]),                                                              # 7
        LayerNorm(width, inputs=[7]),                                             # 8
        Dense(_glorot(rng, (tokens, width), width, tokens), np.zeros(tokens)),   # 9
        Elementwise("Softmax"),                                                   # 10
    ]
    return Stack(modules, "categorical_crossentropy", "adam", learning_rate)


MODELS = {
    "cnn": lambda seed=0: cnn(seed),
    "cnn-bn": lambda seed=0: cnn(seed, batch_norm=True, dropout=0.25),
    "lstm": lambda seed=0: recurrent("lstm", seed),
    "gru": lambda seed=0: recurrent("gru", seed),
    "transformer": lambda seed=0: transformer(seed),
}
