"""What compare knows about each optimizer: Keras's default learning rate, the range of each option, the
hyper-parameters Keras on TensorFlow rounds through float32, how the gap between the two sides' states
grows from step to step, and its first step in 50-digit arithmetic (the exact referee).

Each entry:
  learning_rate  Keras's default learning rate (the built-in network's default)
  ranges         {option: (low, high, high included)}: the values Keras accepts (or its formula stays
                 defined for); anything else is refused before Keras or numpy sees it
  casts          the hyper-parameters Keras on TensorFlow passes through float32 (tf.cast of a Python
                 float), with where it does so ("" where it is the value itself)
  state_gap      (g, tg, lr, state, old, D, t, config, u) → the gap between the two sides' updates,
                 advancing the carried state gaps D in place: state and old are the optimizer's state
                 after and before this step (numpy_impl's replica fed Keras's gradients), tg the
                 gradients' tolerance, t the step count from 1
  exact_step     (params, grads, lr, config) → the first step's updated params from the initial state,
                 as nested lists of mpf, after any weight decay
The defaults of the options are numpy_impl's (numpy_impl.optimizers): one place for them.
"""
import mpmath
import numpy as np

from numpy_impl.optimizers import f32

from ..rounding import quotient_gap, sqrt_gap
from . import lookup

UNIT = (0.0, 1.0, False)   # [0, 1)
CLOSED_UNIT = (0.0, 1.0, True)  # [0, 1]
NONNEGATIVE = (0.0, np.inf, False)


def keeps_state(name, config):
    """Whether the optimizer carries state from step to step (momenta, moments, accumulators): every one
    but SGD without momentum. A step of one that keeps none depends on that step alone: steps can be
    computed, bounded and refereed in any order (weight decay included: it is elementwise too)."""
    return not (name == "sgd" and not config.get("momentum"))


def deep(f, *xs):
    """f applied element by element to nested lists."""
    return [deep(f, *v) for v in zip(*xs)] if isinstance(xs[0], list) else f(*xs)


def _scaled_step(g, tg, lr, d, d_gap, u):
    """D(lr·g / √d) given D(g) = tg and D(d) = d_gap."""
    root = np.sqrt(d)
    num = lr * g
    return (quotient_gap(num, lr * tg + 2 * u * np.abs(num), root, sqrt_gap(d, d_gap) + 2 * u * root)
            + 2 * u * np.abs(num / root))


# --- SGD: m ← μm − lr·g; w ← w + m (nesterov: w + μm − lr·g) -----------------------------------------
def sgd_gap(g, tg, lr, s, old, D, t, c, u):
    mu, lr_g = c["momentum"], np.abs(lr * g)
    if mu == 0:
        return lr * tg + 2 * u * lr_g
    mu = f32(mu)
    D["m"] = mu * D["m"] + lr * tg + 2 * u * (np.abs(mu * old["m"]) + lr_g + np.abs(s["m"]))
    if c["nesterov"]:
        return mu * D["m"] + lr * tg + 2 * u * (np.abs(mu * s["m"]) + lr_g + np.abs(mu * s["m"] - lr * g))
    return D["m"]


def sgd_exact(params, grads, lr, c):
    mu = mpmath.mpf(f32(c["momentum"])) if c["momentum"] else 0
    factor = (1 + mu) if c["nesterov"] and mu else 1  # m = −lr·g from m = 0; nesterov adds μ·m
    return [deep(lambda w, g: w - factor * lr * g, p, g) for p, g in zip(params, grads)]


# --- Adam (and AdamW after its decay): α = lr·√(1 − β2^t)/(1 − β1^t), w −= α·m/(√v + ε) -------------------
def adam_gap(g, tg, lr, s, old, D, t, c, u):
    b1, b2, eps = c["beta_1"], c["beta_2"], c["epsilon"]
    g2_gap = tg * (2 * np.abs(g) + tg)
    D["m"] = b1 * D["m"] + (1 - b1) * tg + 4 * u * (np.abs(g) + np.abs(old["m"]) + np.abs(s["m"]))
    D["v"] = b2 * D["v"] + (1 - b2) * g2_gap + 4 * u * (g * g + np.abs(old["v"]) + np.abs(s["v"]))
    v, Dv = s["v"], D["v"]
    if c["amsgrad"]:
        D["v_hat"] = np.maximum(D["v_hat"], D["v"])
        v, Dv = s["v_hat"], D["v_hat"]
    alpha = lr * np.sqrt(1 - f32(b2) ** t) / (1 - f32(b1) ** t)
    den = np.sqrt(v) + eps
    num = s["m"] * alpha
    step = num / den
    d_num = alpha * D["m"] + 8 * u * np.abs(num)
    d_den = sqrt_gap(v, Dv) + 2 * u * den
    return quotient_gap(num, d_num, den, d_den) + 2 * u * np.abs(step)


def adam_exact(params, grads, lr, c):
    b1, b2, eps = c["beta_1"], c["beta_2"], mpmath.mpf(c["epsilon"])
    alpha = lr * mpmath.sqrt(1 - mpmath.mpf(f32(b2))) / (1 - mpmath.mpf(f32(b1)))
    return [deep(lambda w, g: w - (g * mpmath.mpf(1 - b1)) * alpha / (mpmath.sqrt(g * g * mpmath.mpf(1 - b2)) + eps),
                  p, g) for p, g in zip(params, grads)]


# --- RMSprop: v ← ρv + (1 − ρ)g²; d = v (− a², centered) + ε; w −= lr·g/√d (with momentum: m ← μm + inc) --
def rmsprop_gap(g, tg, lr, s, old, D, t, c, u):
    rho, mu, eps = c["rho"], c["momentum"], c["epsilon"]
    g2_gap = tg * (2 * np.abs(g) + tg)
    D["v"] = rho * D["v"] + (1 - rho) * g2_gap + 4 * u * (np.abs(rho * old["v"]) + g * g + np.abs(s["v"]))
    if c["centered"]:
        D["a"] = rho * D["a"] + (1 - rho) * tg + 4 * u * (np.abs(rho * old["a"]) + np.abs(g) + np.abs(s["a"]))
        d = s["v"] - s["a"] * s["a"] + eps
        d_gap = D["v"] + D["a"] * (2 * np.abs(s["a"]) + D["a"]) + 4 * u * (np.abs(s["v"]) + s["a"] ** 2 + np.abs(d))
    else:
        d = s["v"] + eps
        d_gap = D["v"] + 2 * u * np.abs(d)
    inc_gap = _scaled_step(g, tg, lr, d, d_gap, u)
    if mu > 0:
        inc = (lr * g) / np.sqrt(d)
        D["m"] = mu * D["m"] + inc_gap + 4 * u * (np.abs(mu * old["m"]) + np.abs(inc) + np.abs(s["m"]))
        return D["m"]
    return inc_gap


def rmsprop_exact(params, grads, lr, c):
    rho, eps = c["rho"], mpmath.mpf(c["epsilon"])

    def one(w, g):
        v = mpmath.mpf(1 - rho) * g * g
        d = v - (mpmath.mpf(1 - rho) * g) ** 2 + eps if c["centered"] else v + eps
        return w - lr * g / mpmath.sqrt(d)
    return [deep(one, p, g) for p, g in zip(params, grads)]


# --- Adagrad: acc ← acc + g² (from the initial value, through float32); w −= lr·g/√(acc + ε) --------------
def adagrad_gap(g, tg, lr, s, old, D, t, c, u):
    D["acc"] = D["acc"] + tg * (2 * np.abs(g) + tg) + 2 * u * (g * g + np.abs(s["acc"]))
    d = s["acc"] + c["epsilon"]
    return _scaled_step(g, tg, lr, d, D["acc"] + 2 * u * np.abs(d), u)


def adagrad_exact(params, grads, lr, c):
    acc0, eps = mpmath.mpf(f32(c["initial_accumulator_value"])), mpmath.mpf(c["epsilon"])
    return [deep(lambda w, g: w - lr * g / mpmath.sqrt(acc0 + g * g + eps), p, g) for p, g in zip(params, grads)]


DECAY = {"weight_decay": NONNEGATIVE}
OPTIMIZERS = {
    "sgd": {"learning_rate": 0.01, "ranges": {"momentum": CLOSED_UNIT, **DECAY},
            "casts": {"momentum": "", "weight_decay": ""}, "state_gap": sgd_gap, "exact_step": sgd_exact},
    "adam": {"learning_rate": 0.001, "ranges": {"beta_1": UNIT, "beta_2": UNIT, "epsilon": NONNEGATIVE, **DECAY},
             "casts": {"beta_1": "inside beta_1**t", "beta_2": "inside beta_2**t", "weight_decay": ""},
             "state_gap": adam_gap, "exact_step": adam_exact},
    "adamw": {"learning_rate": 0.001, "ranges": {"beta_1": UNIT, "beta_2": UNIT, "epsilon": NONNEGATIVE, **DECAY},
              "casts": {"beta_1": "inside beta_1**t", "beta_2": "inside beta_2**t", "weight_decay": ""},
              "state_gap": adam_gap, "exact_step": adam_exact},
    "rmsprop": {"learning_rate": 0.001, "ranges": {"rho": UNIT, "momentum": CLOSED_UNIT, "epsilon": NONNEGATIVE,
                                                   **DECAY},
                "casts": {"weight_decay": ""}, "state_gap": rmsprop_gap, "exact_step": rmsprop_exact},
    "adagrad": {"learning_rate": 0.001, "ranges": {"initial_accumulator_value": NONNEGATIVE, "epsilon": NONNEGATIVE,
                                                   **DECAY},
                "casts": {"initial_accumulator_value": "", "weight_decay": ""}, "state_gap": adagrad_gap,
                "exact_step": adagrad_exact},
}


def get(name):
    """The rules of optimizer `name`; an InputError for an unknown one."""
    return lookup(OPTIMIZERS, "optimizer", name)
