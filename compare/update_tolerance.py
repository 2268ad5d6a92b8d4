"""Tolerances on the weights after each optimizer's update, with the optimizer state's gap carried.

Both sides keep optimizer state (momentum m, second moment v, ...) built from their own gradients,
which differ by up to tol(g) at every step. D(x) bounds |x_numpy − x_keras| for a state or weight
x; it is carried from step to step by the update's own recurrence, e.g. for Adam's first moment
D(m') = β1·D(m) + (1 − β1)·tol(g) + rounding. The state magnitudes come from a replica of the
optimizer (numpy_impl.optimizers) fed Keras's gradients: they only size the bound.
"""
import numpy as np

from numpy_impl.optimizers import OPTIMIZERS, f32

from .tolerance import quotient_gap, sqrt_gap


class UpdateTolerance:
    """Per step: tol(w') for w' = update(w, g, state), given tol(g) and the entering weight gap."""

    def __init__(self, name, config, learning_rate, u):
        self.name, self.config, self.u = name, {**OPTIMIZERS[name].defaults, **config}, u
        self.replica = OPTIMIZERS[name](learning_rate, **config)
        self.gaps = None
        # Plain SGD keeps no state: its bound is elementwise, for one step or a stack of steps alike.
        self.stateless = name == "sgd" and not self.config["momentum"] and not self.config.get("weight_decay")

    def step(self, weights_in, grads, grad_tol, weights_out, learning_rate, weight_gap=None):
        """tol(w') for every weight array; advances the replica and the carried state gaps."""
        u, c = self.u, self.config
        if self.stateless:  # lr·tol(g) + 2u(|lr·g| + |w'|) + gap, in place: these arrays can be large
            tols = []
            for i, (g, tg, w_out) in enumerate(zip(grads, grad_tol, weights_out)):
                t = np.multiply(g, learning_rate)
                np.abs(t, out=t)
                t += np.abs(w_out)
                t *= 2 * u
                t += learning_rate * tg
                if weight_gap is not None:
                    t += weight_gap[i]
                tols.append(t)
            return tols
        self.replica.learning_rate = learning_rate
        if self.replica.state is None:
            self.replica.state = self.replica.initial_state(weights_in)
            self.gaps = [{k: np.zeros_like(v) for k, v in s.items()} for s in self.replica.state]
        before = [{k: v.copy() for k, v in s.items()} for s in self.replica.state]
        t = self.replica.iterations + 1
        self.replica.apply(weights_in, grads)
        gap_in = weight_gap if weight_gap is not None else [np.zeros_like(w) for w in weights_in]
        tols = []
        for i, (w, g, tg, w_out, gap) in enumerate(zip(weights_in, grads, grad_tol, weights_out, gap_in)):
            s, old, D = self.replica.state[i], before[i], self.gaps[i]
            lr = learning_rate
            wd = c.get("weight_decay")
            if wd:  # w ← w − w·wd·lr, three roundings per side
                wd = f32(wd)
                gap = gap * (1 + wd * lr) + 2 * u * (2 * np.abs(w * wd * lr) + np.abs(w))
            step_gap = getattr(self, "_" + self.name)(g, tg, lr, s, old, D, t)
            tols.append(gap + step_gap + 2 * u * np.abs(w_out))
        return tols

    def _sgd(self, g, tg, lr, s, old, D, t):
        u, mu, lr_g = self.u, self.config["momentum"], np.abs(lr * g)
        if mu == 0:
            return lr * tg + 2 * u * lr_g
        mu = f32(mu)
        D["m"] = mu * D["m"] + lr * tg + 2 * u * (np.abs(mu * old["m"]) + lr_g + np.abs(s["m"]))
        if self.config["nesterov"]:
            return mu * D["m"] + lr * tg + 2 * u * (np.abs(mu * s["m"]) + lr_g + np.abs(mu * s["m"] - lr * g))
        return D["m"]

    def _adam(self, g, tg, lr, s, old, D, t):
        u, b1, b2, eps = self.u, self.config["beta_1"], self.config["beta_2"], self.config["epsilon"]
        g2_gap = tg * (2 * np.abs(g) + tg)
        D["m"] = b1 * D["m"] + (1 - b1) * tg + 4 * u * (np.abs(g) + np.abs(old["m"]) + np.abs(s["m"]))
        D["v"] = b2 * D["v"] + (1 - b2) * g2_gap + 4 * u * (g * g + np.abs(old["v"]) + np.abs(s["v"]))
        v, Dv = s["v"], D["v"]
        if self.config["amsgrad"]:
            D["v_hat"] = np.maximum(D["v_hat"], D["v"])
            v, Dv = s["v_hat"], D["v_hat"]
        alpha = lr * np.sqrt(1 - f32(b2) ** t) / (1 - f32(b1) ** t)
        den = np.sqrt(v) + eps
        num = s["m"] * alpha
        step = num / den
        d_num = alpha * D["m"] + 8 * u * np.abs(num)
        d_den = sqrt_gap(v, Dv) + 2 * u * den
        return quotient_gap(num, d_num, den, d_den) + 2 * u * np.abs(step)

    _adamw = _adam

    def _rmsprop(self, g, tg, lr, s, old, D, t):
        u, rho, mu, eps = self.u, self.config["rho"], self.config["momentum"], self.config["epsilon"]
        g2_gap = tg * (2 * np.abs(g) + tg)
        D["v"] = rho * D["v"] + (1 - rho) * g2_gap + 4 * u * (np.abs(rho * old["v"]) + g * g + np.abs(s["v"]))
        if self.config["centered"]:
            D["a"] = rho * D["a"] + (1 - rho) * tg + 4 * u * (np.abs(rho * old["a"]) + np.abs(g) + np.abs(s["a"]))
            d = s["v"] - s["a"] * s["a"] + eps
            d_gap = D["v"] + D["a"] * (2 * np.abs(s["a"]) + D["a"]) + 4 * u * (np.abs(s["v"]) + s["a"] ** 2 + np.abs(d))
        else:
            d = s["v"] + eps
            d_gap = D["v"] + 2 * u * np.abs(d)
        inc_gap = self._scaled_step(g, tg, lr, d, d_gap)
        if mu > 0:
            inc = (lr * g) / np.sqrt(d)
            D["m"] = mu * D["m"] + inc_gap + 4 * u * (np.abs(mu * old["m"]) + np.abs(inc) + np.abs(s["m"]))
            return D["m"]
        return inc_gap

    def _adagrad(self, g, tg, lr, s, old, D, t):
        u, eps = self.u, self.config["epsilon"]
        D["acc"] = D["acc"] + tg * (2 * np.abs(g) + tg) + 2 * u * (g * g + np.abs(s["acc"]))
        d = s["acc"] + eps
        return self._scaled_step(g, tg, lr, d, D["acc"] + 2 * u * np.abs(d))

    def _scaled_step(self, g, tg, lr, d, d_gap):
        """D(lr·g / √d) given D(g) = tg and D(d) = d_gap."""
        root = np.sqrt(d)
        num = lr * g
        return (quotient_gap(num, lr * tg + 2 * self.u * np.abs(num), root, sqrt_gap(d, d_gap) + 2 * self.u * root)
                + 2 * self.u * np.abs(num / root))
