"""Tolerances on the weights after each optimizer's update, with the optimizer state's gap carried.

Both sides keep optimizer state (momentum m, second moment v, ...) built from their own gradients,
which differ by up to tol(g) at every step. D(x) bounds |x_numpy − x_keras| for a state or weight
x; it is carried from step to step by the update's own recurrence, e.g. for Adam's first moment
D(m') = β1·D(m) + (1 − β1)·tol(g) + rounding. The state magnitudes come from a replica of the
optimizer (numpy_impl.optimizers) fed Keras's gradients: they only size the bound.
"""
import numpy as np

from numpy_impl.optimizers import OPTIMIZERS, f32

from .rules import optimizers as optimizer_rules


class UpdateTolerance:
    """Per step: tol(w') for w' = update(w, g, state), given tol(g) and the entering weight gap.

    The recurrence of each optimizer's state gap is its rules entry's state_gap (compare/rules/optimizers.py).
    """

    def __init__(self, name, config, learning_rate, u):
        self.name, self.config, self.u = name, {**OPTIMIZERS[name].defaults, **config}, u
        self.rule = optimizer_rules.get(name)
        self.replica = OPTIMIZERS[name](learning_rate, **config)
        self.gaps, self.before = None, None
        # An optimizer that keeps no state (SGD without momentum) has an elementwise bound: for one step or
        # a stack of steps alike, in any order.
        self.keeps_state = optimizer_rules.keeps_state(name, self.config)

    def step(self, weights_in, grads, grad_tol, weights_out, learning_rate, weight_gap=None):
        """tol(w') for every weight array; advances the replica and the carried state gaps."""
        u, c = self.u, self.config
        self.before = None  # (the optimizer's state before this step, its step count t): for the diagnosis
        if not self.keeps_state and not c.get("weight_decay"):
            # plain SGD: lr·tol(g) + 2u(|lr·g| + |w'|) + gap, in place: these arrays can be large
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
        self.before = (before, t) if self.keeps_state else None
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
            step_gap = self.rule["state_gap"](g, tg, lr, s, old, D, t, c, u)
            tols.append(gap + step_gap + 2 * u * np.abs(w_out))
        return tols
