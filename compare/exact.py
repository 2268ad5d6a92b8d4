"""One training step in 50-digit arithmetic (mpmath), with Keras's semantics: the exact referee.

Inputs (weights, X, y, hyper-parameters) are taken as the exact values of their floats; every
operation after that is carried out to 50 significant digits. Keras's conventions are kept:
probabilities clipped to [ε, 1 − ε], categorical rows renormalised, cross-entropies after a sigmoid
or softmax layer taken on its logits, and the optimizer's float32-cast constants.
"""
import mpmath

import numpy as np

from numpy_impl.losses import smooth_labels, takes_logits
from numpy_impl.optimizers import OPTIMIZERS, f32

from .rules import activations as activation_rules, losses as loss_rules, optimizers as optimizer_rules
from .rules.optimizers import deep

DIGITS = 50
MAX_PARAMETERS = 500


def mp(a):
    """A numpy array (any shape, float or object holding mpf) as nested lists of mpf."""
    if getattr(a, "ndim", 0):
        return [mp(x) for x in a]
    return a if isinstance(a, mpmath.mpf) else mpmath.mpf(float(a))


def step(weights, activations, X, y, learning_rate, loss="mse", loss_config=None, optimizer="sgd",
         optimizer_config=None, first_step=True, backend="tensorflow", loss_scale=1.0):
    """{'forward': [...], 'loss': mpf, 'grads': [...], 'updated': [...] or None} as nested lists of mpf.

    The update needs the optimizer's state; it is computed at the first step (state at its initial
    value) and at any step for an optimizer that keeps none, else 'updated' is None. Each activation's,
    loss's and optimizer's exact rule is its entry in compare/rules. A declared convention multiplies the
    loss and dL/dx by c = loss_scale × (N for reduction "sum"), exactly.
    """
    loss_config = loss_config or {}
    with mpmath.workdps(DIGITS):
        Ws, bs = [mp(w) for w in weights[0::2]], [mp(b) for b in weights[1::2]]
        a, zs, outs = mp(X), [], []
        for W, b, name in zip(Ws, bs, activations):
            z = [[sum(x * w for x, w in zip(row, wr)) + bj for wr, bj in zip(W, b)] for row in a]
            a = [activation_rules.get(name)["exact"](row) for row in z]
            zs.append(z)
            outs.append(a)
        # numpy_impl's label smoothing y(1 − s) + s/K, on exact values (an array of mpf)
        smoothing = mpmath.mpf(loss_config.get("label_smoothing", 0.0))
        t = smooth_labels(np.array(mp(y), dtype=object), loss, smoothing).tolist() if smoothing else mp(y)
        loss_input = takes_logits(loss, loss_config.get("from_logits", False), activations[-1], backend)
        value, d = loss_rules.get(loss)["exact"](loss_input, zs[-1] if loss_input == "z" else outs[-1], t)
        c = loss_rules.convention_factor(loss_config, mpmath.mpf(loss_scale), len(X))
        value, d = c * value, [[c * v for v in row] for row in d]
        grads = []
        for l in reversed(range(len(Ws))):
            backward = activation_rules.get(activations[l])["exact_backward"]
            dz = d if (l == len(Ws) - 1 and loss_input == "z") else [backward(zr, ar, dr) for zr, ar, dr in
                                                                 zip(zs[l], outs[l], d)]
            a_prev = outs[l - 1] if l > 0 else mp(X)
            dW = [[sum(dz[n][j] * a_prev[n][i] for n in range(len(dz))) for i in range(len(a_prev[0]))]
                  for j in range(len(dz[0]))]
            db = [sum(dz[n][j] for n in range(len(dz))) for j in range(len(dz[0]))]
            grads[:0] = [dW, db]
            d = [[sum(dz[n][j] * Ws[l][j][i] for j in range(len(dz[0]))) for i in range(len(Ws[l][0]))]
                 for n in range(len(dz))]
        params = [x for pair in zip(Ws, bs) for x in pair]
        updated = update(params, grads, mpmath.mpf(learning_rate), optimizer, optimizer_config or {}, first_step)
        return {"forward": outs, "loss": value, "grads": grads, "updated": updated}


def update(params, grads, lr, optimizer, config, first_step):
    """The optimizer's step from its initial state, exactly, after any weight decay w ← w − w·wd·lr (wd
    through float32); None when the state is unknown (a later step of an optimizer that keeps state)."""
    rule = optimizer_rules.get(optimizer)
    c = {**OPTIMIZERS[optimizer].defaults, **config}
    if not (first_step or not optimizer_rules.keeps_state(optimizer, c)):
        return None
    wd = c.get("weight_decay")
    if wd:
        params = [deep(lambda w: w - w * mpmath.mpf(f32(wd)) * lr, p) for p in params]
    return rule["exact_step"](params, grads, lr, c)
