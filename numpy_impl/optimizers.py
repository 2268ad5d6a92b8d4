"""Keras's optimizers in numpy, from the formulas in keras/src/optimizers/*.py.

Each keeps its state per weight array and updates a list of weights in place of Keras's
`apply_gradients`. On the TensorFlow backend Keras passes some Python-float hyper-parameters
through float32 even in float64 (`ops.cast(0.9, "float64")` is `tf.cast`, which first makes a
float32 tensor): SGD's momentum, Adam's β inside β**t, the weight decay and Adagrad's initial
accumulator. `f32` reproduces that, so 0.9 becomes 0.8999999761581421 exactly where Keras has it.
"""
import numpy as np


def f32(x):
    """x rounded through float32, as `tf.cast(python_float, float64)` does."""
    return float(np.float32(x))


class Optimizer:
    """Base: weight decay `w ← w − w·wd·lr` (wd through float32) before each update, and the step count."""

    defaults = {}

    def __init__(self, learning_rate, dtype=np.float64, **config):
        unknown = sorted(set(config) - set(self.defaults))
        if unknown:
            raise ValueError(f"optimizer_config has unknown option {unknown[0]!r} for "
                             f"{type(self).__name__.lower()}; valid options: {', '.join(sorted(self.defaults))}")
        self.learning_rate, self.dtype = learning_rate, dtype
        self.config = {**self.defaults, **config}
        self.iterations, self.state = 0, None

    def apply(self, weights, grads):
        """New weights after one step; the state advances."""
        if self.state is None:
            self.state = self.initial_state(weights)
        lr = self.dtype(self.learning_rate)
        wd = self.config.get("weight_decay")
        if wd:
            weights = [w - w * self.dtype(f32(wd)) * lr for w in weights]
        new = [self.update(i, w, g.astype(self.dtype), lr) for i, (w, g) in enumerate(zip(weights, grads))]
        self.iterations += 1
        return new

    def initial_state(self, weights):
        return [{} for _ in weights]

    def c(self, x):
        """A Python-float hyper-parameter in the working dtype, exactly (Keras's `ops.multiply(x, float)`)."""
        return self.dtype(x)


class SGD(Optimizer):
    """m ← m·μ − g·lr; w ← w + m (nesterov: w ← w + m·μ − g·lr); without momentum w ← w − g·lr. μ via float32."""

    defaults = {"momentum": 0.0, "nesterov": False, "weight_decay": None}

    def initial_state(self, weights):
        return [{"m": np.zeros_like(w)} for w in weights]

    def update(self, i, w, g, lr):
        mu = self.config["momentum"]
        if mu == 0:
            return w - g * lr
        mu = self.dtype(f32(mu))
        s = self.state[i]
        s["m"] = s["m"] * mu - g * lr
        if self.config["nesterov"]:
            return w + (s["m"] * mu - g * lr)
        return w + s["m"]


class Adam(Optimizer):
    """α = lr·√(1 − β2^t)/(1 − β1^t) with β through float32 in β^t; m += (g − m)(1 − β1);
    v += (g² − v)(1 − β2); amsgrad: v̂ = max(v̂, v); w −= m·α / (√v + ε)."""

    defaults = {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7, "amsgrad": False, "weight_decay": None}

    def initial_state(self, weights):
        return [{"m": np.zeros_like(w), "v": np.zeros_like(w), "v_hat": np.zeros_like(w)} for w in weights]

    def update(self, i, w, g, lr):
        b1, b2, eps = self.config["beta_1"], self.config["beta_2"], self.config["epsilon"]
        t = self.dtype(self.iterations + 1)
        b1_power = np.power(self.dtype(f32(b1)), t)
        b2_power = np.power(self.dtype(f32(b2)), t)
        alpha = lr * np.sqrt(1 - b2_power) / (1 - b1_power)
        s = self.state[i]
        s["m"] = s["m"] + (g - s["m"]) * self.c(1 - b1)
        s["v"] = s["v"] + (g * g - s["v"]) * self.c(1 - b2)
        v = s["v"]
        if self.config["amsgrad"]:
            s["v_hat"] = np.maximum(s["v_hat"], s["v"])
            v = s["v_hat"]
        return w - (s["m"] * alpha) / (np.sqrt(v) + self.c(eps))


class AdamW(Adam):
    """Adam after the decoupled decay w ← w − w·wd·lr (biases included), wd = 0.004 by default."""

    defaults = {**Adam.defaults, "weight_decay": 0.004}


class RMSprop(Optimizer):
    """v ← ρv + (1 − ρ)g²; centered: a ← ρa + (1 − ρ)g, d = v − a² + ε, else d = v + ε;
    inc = lr·g/√d; with momentum μ: m ← μm + inc, w −= m; else w −= inc (ε inside the sqrt)."""

    defaults = {"rho": 0.9, "momentum": 0.0, "epsilon": 1e-7, "centered": False, "weight_decay": None}

    def initial_state(self, weights):
        return [{"v": np.zeros_like(w), "a": np.zeros_like(w), "m": np.zeros_like(w)} for w in weights]

    def update(self, i, w, g, lr):
        rho, mu, eps = self.c(self.config["rho"]), self.config["momentum"], self.c(self.config["epsilon"])
        s = self.state[i]
        s["v"] = rho * s["v"] + self.c(1 - self.config["rho"]) * (g * g)
        if self.config["centered"]:
            s["a"] = rho * s["a"] + self.c(1 - self.config["rho"]) * g
            d = s["v"] - s["a"] * s["a"] + eps
        else:
            d = s["v"] + eps
        inc = (lr * g) / np.sqrt(d)
        if mu > 0:
            s["m"] = self.c(mu) * s["m"] + inc
            return w - s["m"]
        return w - inc


class Adagrad(Optimizer):
    """acc ← acc + g² (acc starts at the initial value through float32); w −= lr·g / √(acc + ε)."""

    defaults = {"initial_accumulator_value": 0.1, "epsilon": 1e-7, "weight_decay": None}

    def initial_state(self, weights):
        start = self.dtype(f32(self.config["initial_accumulator_value"]))
        return [{"acc": np.full_like(w, start)} for w in weights]

    def update(self, i, w, g, lr):
        s = self.state[i]
        s["acc"] = s["acc"] + g * g
        return w - (lr * g) / np.sqrt(s["acc"] + self.c(self.config["epsilon"]))


OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop, "adagrad": Adagrad}
