"""Networks with one mistake each, for the diagnosis (tests/test_diagnosis.py): every cause the diagnosis
knows, over every loss and optimizer, plus correct networks that must get no diagnosis at all.

`Planted` is a dense network with its own backprop and optimizers, written here from the textbook formulas
(not from numpy_impl or compare), with hooks where people make mistakes.
"""
import numpy as np

from compare import data
from numpy_impl.optimizers import f32


def _act(name, z):
    if name == "tanh":
        return np.tanh(z)
    if name == "sigmoid":
        return 1 / (1 + np.exp(-z))
    if name == "relu":
        return np.maximum(z, 0)
    if name == "softmax":
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    return z


def _slope(name, a):
    """f'(z) from the output a."""
    return {"tanh": lambda: 1 - a * a, "sigmoid": lambda: a * (1 - a), "relu": lambda: (a > 0) * 1.0,
            "linear": lambda: np.ones_like(a)}[name]()


class Planted:
    """A dense network, weights (units, inputs), with Keras's conventions unless a hook changes one step.

    Hooks: loss_factor (on the loss value), delta_factor (on dL/dx), delta(net, x, y, d) → d, dz(l, z, a, d)
    → dz or None, grads(l, dW, db) → (dW, db) or None, W_back(l) → the kernel δ goes back through or None,
    a_prev(l) → the activations dW multiplies or None, forward(l, a_prev, W, b) → a or None, update(net,
    i, w, g) → the new w, smoothing_ignored.
    """

    def __init__(self, sizes, activations, loss="mse", optimizer="sgd", learning_rate=0.01, loss_config=None,
                 optimizer_config=None, seed=0, **hooks):
        rng = np.random.default_rng(seed)
        self.W = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            self.W += [rng.uniform(-1, 1, (n_out, n_in)) / np.sqrt(n_in), rng.uniform(-0.3, 0.3, n_out)]
        self.W = [w * hooks.get("init_scale", 1.0) for w in self.W]
        self.activations, self.loss, self.optimizer = list(activations), loss, optimizer
        self.learning_rate, self.loss_config = learning_rate, dict(loss_config or {})
        self.optimizer_config, self.hooks = dict(optimizer_config or {}), hooks
        self.state, self.t, self.prev = None, 0, {}

    def get_weights(self):
        return [w.copy() for w in self.W]

    def set_weights(self, weights):
        self.W = [np.array(w, dtype=float) for w in weights]

    def forward(self, X):
        return self._forward(X)[1]

    def _forward(self, X):
        zs, acts, a = [], [], X
        for l, name in enumerate(self.activations):
            W, b = self.W[2 * l], self.W[2 * l + 1]
            z = a @ W.T + b
            planted = self.hooks["forward"](l, a, W, b) if "forward" in self.hooks else None
            a = _act(name, z) if planted is None else planted
            zs.append(z)
            acts.append(a)
        return zs, acts

    def _targets(self, y):
        s = self.loss_config.get("label_smoothing", 0.0)
        if not s or self.hooks.get("smoothing_ignored"):
            return y
        k = 2 if self.loss == "binary_crossentropy" else y.shape[1]
        return y * (1 - s) + s / k

    def _loss(self, zs, acts, y):
        """(L, dL/dx, x is logits): Keras's losses; cross-entropy after sigmoid/softmax on the logits."""
        y = self._targets(y)
        a, z, N = acts[-1], zs[-1], y.shape[0]
        if self.hooks.get("clip"):  # cross-entropy on the probabilities, clipped as numpy code often does
            p = np.clip(a, 1e-7, 1 - 1e-7)
            if self.loss == "binary_crossentropy":
                return np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p))), (p - y) / (p * (1 - p)) / y.size, False
            return np.mean(-np.sum(y * np.log(p), axis=1)), -y / p / N, False
        if self.loss == "mse":
            return np.mean((a - y) ** 2), 2 * (a - y) / y.size, False
        if self.loss == "mae":
            return np.mean(np.abs(a - y)), np.sign(a - y) / y.size, False
        if self.loss == "binary_crossentropy":
            L = np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))))
            return L, (_act("sigmoid", z) - y) / y.size, True
        lse = z.max(axis=1, keepdims=True) + np.log(np.exp(z - z.max(axis=1, keepdims=True)).sum(axis=1, keepdims=True))
        return np.mean(np.sum(y * (lse - z), axis=1)), (np.exp(z - lse) - y) / N, True

    def gradients(self, X, y):
        h = self.hooks
        zs, acts = self._forward(X)
        loss, d, logits = self._loss(zs, acts, y)
        if h.get("loss_value_unsmoothed"):
            self.hooks["smoothing_ignored"] = True
            loss = self._loss(zs, acts, y)[0]
            del self.hooks["smoothing_ignored"]
        loss *= h.get("loss_factor", 1.0)
        d = d * h.get("delta_factor", 1.0)
        if "delta" in h:
            d = h["delta"](self, zs[-1], acts[-1], y, d)
        grads, L = [], len(self.activations)
        for l in reversed(range(L)):
            planted = h["dz"](l, zs[l], acts[l], d) if "dz" in h else None
            if planted is not None:
                dz = planted
            elif l == L - 1 and logits:
                dz = d
            elif self.activations[l] == "softmax":
                dz = acts[l] * (d - np.sum(d * acts[l], axis=1, keepdims=True))
            else:
                dz = d * _slope(self.activations[l], acts[l])
            a_prev = h["a_prev"](self, l) if "a_prev" in h else None
            a_prev = (acts[l - 1] if l else X) if a_prev is None else a_prev
            dW, db = dz.T @ a_prev, dz.sum(axis=0)
            changed = h["grads"](l, dW, db) if "grads" in h else None
            grads[:0] = list(changed) if changed is not None else [dW, db]
            W_back = h["W_back"](self, l) if "W_back" in h else None
            d = dz @ (self.W[2 * l] if W_back is None else W_back)
        self.prev = {"X": X, "acts": acts, "W": [w.copy() for w in self.W]}
        return float(loss), grads

    def apply_gradients(self, grads):
        if self.state is None:
            self.state = [{} for _ in self.W]
        self.t += 1
        update = self.hooks.get("update", keras_update)
        self.W = [update(self, i, w, g) for i, (w, g) in enumerate(zip(self.W, grads))]


def keras_update(net, i, w, g, **variant):
    """Keras's optimizers, step t = net.t (from 1), state in net.state[i]; `variant` changes one thing."""
    c, lr, s, t = net.optimizer_config, net.learning_rate, net.state[i], net.t
    cast = (lambda x: x) if variant.get("exact") else f32
    wd = c.get("weight_decay", 0.004 if net.optimizer == "adamw" else None)
    if wd and not variant.get("no_decay"):
        w = w - w * cast(wd) * lr
    if net.optimizer == "sgd":
        mu = c.get("momentum", 0.0)
        if not mu:
            return w - lr * g
        m = (cast(mu) * s.get("m", 0.0) if not variant.get("reset") else 0.0) - lr * g
        s["m"] = m
        nesterov = variant.get("nesterov", c.get("nesterov", False))
        return w + variant.get("sign", 1) * ((cast(mu) * m - lr * g) if nesterov else m)
    if net.optimizer in ("adam", "adamw"):
        b1, b2, eps = c.get("beta_1", 0.9), c.get("beta_2", 0.999), c.get("epsilon", 1e-7)
        m = s.get("m", 0.0) + (g - s.get("m", 0.0)) * (1 - b1)
        v = s.get("v", 0.0) + (g * g - s.get("v", 0.0)) * (1 - b2)
        s["m"], s["v"] = m, v
        tt = t + variant.get("shift", 0) if not variant.get("per_array") else (t - 1) * len(net.W) + i + 1
        if variant.get("paper"):
            return w - lr * (m / (1 - cast(b1) ** tt)) / (np.sqrt(v / (1 - cast(b2) ** tt)) + eps)
        alpha = lr if variant.get("no_correction") else lr * np.sqrt(1 - cast(b2) ** tt) / (1 - cast(b1) ** tt)
        if variant.get("eps_inside"):
            return w - alpha * m / np.sqrt(v + eps)
        return w - alpha * m / (np.sqrt(v) + eps)
    if net.optimizer == "rmsprop":
        rho, mu, eps = c.get("rho", 0.9), c.get("momentum", 0.0), c.get("epsilon", 1e-7)
        keep, new = (1 - rho, rho) if variant.get("swapped") else (rho, 1 - rho)
        v = keep * s.get("v", 0.0) + new * g * g
        a = keep * s.get("a", 0.0) + new * g
        s["v"], s["a"] = v, a
        d = v - a * a if c.get("centered") and not variant.get("not_centered") else v
        inc = lr * g / (np.sqrt(d) + eps if variant.get("eps_outside") else np.sqrt(d + eps))
        if mu:
            s["mo"] = mu * s.get("mo", 0.0) + inc
            return w - s["mo"]
        return w - inc
    start = c.get("initial_accumulator_value", 0.1)
    acc = s.get("acc", 0.0 if variant.get("zero_start") else cast(start)) + g * g
    s["acc"] = acc
    eps = c.get("epsilon", 1e-7)
    return w - lr * g / (np.sqrt(acc) + eps if variant.get("eps_outside") else np.sqrt(acc + eps))


def variant(**kw):
    return lambda net, i, w, g: keras_update(net, i, w, g, **kw)


def at(layer, change):
    return lambda l, *args: change(*args) if l == layer else None


def data_for(sizes, loss, rows=16, seed=7):
    return data.random_data(sizes[0], sizes[-1], loss, seed, rows=rows)


MSE = dict(sizes=[4, 5, 3], activations=["tanh", "linear"])
SQUARE = dict(sizes=[4, 4, 3], activations=["tanh", "linear"])
DEEP = dict(sizes=[4, 6, 5, 3], activations=["tanh", "sigmoid", "linear"])
BCE = dict(sizes=[4, 5, 2], activations=["tanh", "sigmoid"], loss="binary_crossentropy")
CCE = dict(sizes=[4, 5, 3], activations=["relu", "softmax"], loss="categorical_crossentropy")
MAE = dict(sizes=[4, 5, 3], activations=["tanh", "linear"], loss="mae")
N, K = 16, 3

# (name, network options, hooks, the cause id the diagnosis must name, steps, batch size)
CASES = [
    ("sign flipped", MSE, dict(delta_factor=-1.0), "sign flipped"),
    ("summed over the batch", MSE, dict(delta_factor=N), "summed over the batch"),
    ("summed over outputs", MSE, dict(delta_factor=K), "summed over outputs"),
    ("summed over every term", MSE, dict(delta_factor=N * K), "summed"),
    ("half square", MSE, dict(delta_factor=0.5), "half"),
    ("textbook quadratic cost", MSE, dict(delta_factor=K / 2), "half sum over outputs"),
    ("guide's error = y − ŷ", MSE, dict(delta_factor=-N * K / 2), "sign flipped, 2/N missing"),
    ("mean taken twice", MSE, dict(delta_factor=1 / (N * K)), "mean twice"),
    ("loss value summed", MSE, dict(loss_factor=N), "summed over the batch"),
    ("loss value halved", MSE, dict(loss_factor=0.5), "half"),
    ("no derivative", MSE, dict(dz=at(0, lambda z, a, d: d)), "no derivative at layer 0"),
    ("derivative twice", MSE, dict(dz=at(0, lambda z, a, d: d * (1 - a * a) ** 2)), "derivative twice at layer 0"),
    ("derivative from z", MSE, dict(dz=at(0, lambda z, a, d: d * (1 - z * z))), "derivative at z at layer 0"),
    ("derivative of the output", MSE, dict(dz=at(0, lambda z, a, d: d * (1 - np.tanh(a) ** 2))),
     "derivative of the output at layer 0"),
    ("second hidden layer without its derivative", DEEP, dict(dz=at(1, lambda z, a, d: d)), "no derivative at layer 1"),
    ("transposed gradient", SQUARE, dict(grads=at(0, lambda dW, db: (dW.T, db))), "transposed gradient at layer 0"),
    ("bias gradient averaged in one layer", MSE, dict(grads=at(1, lambda dW, db: (dW, db / N))),
     "bias gradient averaged at layer 1"),
    ("bias gradients averaged", MSE, dict(grads=lambda l, dW, db: (dW, db / N)), "bias gradients averaged"),
    ("no bias in the forward pass", MSE, dict(forward=at(0, lambda a, W, b: np.tanh(a @ W.T))), "no bias at layer 0"),
    ("transposed kernel", SQUARE, dict(forward=at(0, lambda a, W, b: np.tanh(a @ W + b))),
     "transposed kernel at layer 0"),
    ("sigmoid for tanh", MSE, dict(forward=at(0, lambda a, W, b: _act("sigmoid", a @ W.T + b))), "sigmoid at layer 0"),
    ("float32 forward", MSE, dict(forward=lambda l, a, W, b: _act(["tanh", "linear"][l], (
        a.astype(np.float32) @ W.T.astype(np.float32) + b.astype(np.float32))).astype(np.float64)), "float32"),
    ("sigmoid chain missing", BCE, dict(dz=at(1, lambda z, a, d: None)) | dict(
        delta=lambda net, z, a, y, d: (-y / np.clip(a, 1e-7, 1 - 1e-7) + (1 - y) / np.clip(1 - a, 1e-7, 1)) / y.size),
     "sigmoid chain missing"),
    ("sigmoid chain doubled", BCE, dict(delta=lambda net, z, a, y, d: d * a * (1 - a)), "sigmoid chain doubled"),
    ("BCE label smoothing ignored", dict(BCE, loss_config={"label_smoothing": 0.2}), dict(smoothing_ignored=True),
     "label smoothing ignored"),
    ("CCE label smoothing ignored", dict(CCE, loss_config={"label_smoothing": 0.1}), dict(smoothing_ignored=True),
     "label smoothing ignored"),
    ("softmax diagonal Jacobian", CCE, dict(delta=lambda net, z, a, y, d: -y * (1 - a) / y.shape[0]),
     "softmax diagonal"),
    ("BCE on clipped probabilities", BCE, dict(clip=True, init_scale=40.0), "clipping added"),
    ("CCE on clipped probabilities", CCE, dict(clip=True, init_scale=40.0), "clipping added"),
    ("CCE summed over the batch", CCE, dict(delta_factor=N), "summed over the batch"),
    ("MAE sign flipped", MAE, dict(delta_factor=-1.0), "sign flipped"),
    ("MAE summed over the batch", MAE, dict(delta_factor=N), "summed over the batch"),
    ("learning rate off by 1e-7", MSE, dict(update=lambda net, i, w, g: w - net.learning_rate * (1 + 1e-7) * g),
     "learning rate"),
    ("learning rate doubled", MSE, dict(update=lambda net, i, w, g: w - 2 * net.learning_rate * g), "learning rate"),
    ("stale activations", MSE, dict(a_prev=lambda net, l: net.prev["acts"][0] if net.prev and l == 1 else None),
     "stale activations at layer 1"),
    ("BCE loss value ignores label smoothing", dict(BCE, loss_config={"label_smoothing": 0.2}), dict(
        loss_value_unsmoothed=True), "label smoothing ignored"),
    ("biases never updated", MSE, dict(update=lambda net, i, w, g: w if i % 2 else w - net.learning_rate * g),
     "never updated"),
]
SGD_M = dict(MSE, optimizer="sgd", optimizer_config={"momentum": 0.9})
SGD_N = dict(MSE, optimizer="sgd", optimizer_config={"momentum": 0.9, "nesterov": True})
ADAM = dict(MSE, optimizer="adam", learning_rate=0.001)
ADAMW = dict(MSE, optimizer="adamw", learning_rate=0.001, optimizer_config={"weight_decay": 0.05})
RMS = dict(MSE, optimizer="rmsprop", learning_rate=0.001)
RMS_C = dict(RMS, optimizer_config={"centered": True})
ADAGRAD = dict(MSE, optimizer="adagrad", learning_rate=0.01)
CASES += [
    ("momentum applied with the wrong sign", SGD_M, dict(update=variant(sign=-1)), "momentum sign"),
    ("nesterov written as plain momentum", SGD_N, dict(update=variant(nesterov=False)), "nesterov as plain momentum"),
    ("plain momentum written as nesterov", SGD_M, dict(update=variant(nesterov=True)), "plain momentum as nesterov"),
    ("momentum not carried", SGD_M, dict(update=variant(reset=True)), "momentum not carried"),
    ("momentum 0.9 exactly", SGD_M, dict(update=variant(exact=True)), "no float32 cast"),
    ("Adam without bias correction", ADAM, dict(update=variant(no_correction=True)), "no bias correction"),
    ("Adam bias correction one step ahead", ADAM, dict(update=variant(shift=1)), "bias correction off by +1"),
    ("Adam with the paper's epsilon", ADAM, dict(update=variant(paper=True)), "paper epsilon"),
    ("Adam with epsilon inside the root", ADAM, dict(update=variant(eps_inside=True)), "epsilon inside"),
    ("Adam amsgrad ignored", dict(ADAM, optimizer_config={"amsgrad": True, "beta_2": 0.5}), {}, "amsgrad"),
    ("Adam with a step counter per array", ADAM, dict(update=variant(per_array=True)), "step counter per array"),
    ("Adam with exact betas", ADAM, dict(update=variant(exact=True)), "no float32 cast"),
    ("AdamW decay on the gradient", ADAMW, dict(update=lambda net, i, w, g: keras_update(
        net, i, w, g + f32(0.05) * w, no_decay=True)), "decay on the gradient"),
    ("AdamW decay without the learning rate", ADAMW, dict(update=lambda net, i, w, g: keras_update(
        net, i, w - w * f32(0.05), g, no_decay=True)), "decay without the learning rate"),
    ("AdamW decay after the update", ADAMW, dict(update=lambda net, i, w, g: (lambda v: v - v * f32(0.05) * 0.001)(
        keras_update(net, i, w, g, no_decay=True))), "decay after the update"),
    ("AdamW decay forgotten", ADAMW, dict(update=variant(no_decay=True)), "weight decay forgotten"),
    ("RMSprop rho swapped", RMS, dict(update=variant(swapped=True)), "rho swapped"),
    ("RMSprop centered ignored", RMS_C, dict(update=variant(not_centered=True)), "centered ignored"),
    ("RMSprop epsilon outside", RMS, dict(update=variant(eps_outside=True)), "epsilon outside"),
    ("Adagrad accumulator from 0", ADAGRAD, dict(update=variant(zero_start=True)), "initial accumulator"),
    ("Adagrad epsilon outside", ADAGRAD, dict(update=variant(eps_outside=True)), "epsilon outside"),
    ("Adagrad initial accumulator 0.1 exactly", ADAGRAD, dict(update=variant(exact=True)), "no float32 cast"),
]

CORRECT = [MSE, SQUARE, DEEP, BCE, CCE, MAE, dict(BCE, loss_config={"label_smoothing": 0.2}), SGD_M, SGD_N, ADAM,
           ADAMW, RMS, RMS_C, ADAGRAD]


def make(options, hooks=None, seed=0):
    options = dict(options)
    return Planted(options.pop("sizes"), options.pop("activations"), seed=seed, **options, **(hooks or {}))
