"""Keras's gradients recomputed in float64 from Keras's own forward values, with one mistake planted: what
the numpy side would compute if it made that mistake. The hypotheses of the gradients (and of δ, the
loss's gradient) are tested against the numbers with these predictions.

    dz_L = δ where the loss takes the logits, else f'_L(z_L) ⊙ δ      (δ = dL/dx at the loss's input x)
    dW_l = dz_lᵀ·a_{l−1},  db_l = Σ_rows dz_l,  δ_{l−1} = dz_l·W_l,  dz_{l−1} = f'_{l−1} ⊙ δ_{l−1}

A variant replaces one piece: δ itself (a loss mistake), f' at one layer (a derivative mistake), dW or
db of one layer, or the a_{l−1} it multiplies (stale activations).
"""
import numpy as np

from numpy_impl import ops
from numpy_impl.losses import smooth_labels, takes_logits

from ..rules import losses as loss_rules


def loss_input(ctx):
    """'z' where Keras takes the loss on the last pre-activation (logits), 'a' on the output as logits, else None."""
    spec = ctx["spec"]
    return takes_logits(spec["loss"], spec["loss_config"].get("from_logits", False), spec["activations"][-1],
                        ctx["backend"])


def delta(ctx, y=None):
    """δ = dL/dx from Keras's values (the loss's own rule, on Keras's x), with targets y (default: as used)."""
    spec, keras = ctx["spec"], ctx["keras"]
    where = loss_input(ctx)
    x = keras["zs"][-1] if where == "z" else keras["activations"][-1]
    y = ctx["y_used"] if y is None else y
    _, d, _ = loss_rules.get(spec["loss"])["bounds"](where, y, x, np.zeros_like(x), ctx["u"], 1e-7, 0.0, None)
    return d * ctx.get("loss_factor", 1.0)


def slope(name, z, a):
    """f'(z) as Keras's autodiff evaluates it, from the output a (softmax: None, a row rule)."""
    return None if name == "softmax" else ops.ACTIVATIONS[name][1](a)


def backward_through(name, z, a, d):
    """dL/dz from dL/da = d through the activation `name` (softmax: a ⊙ (d − Σ d·a))."""
    return ops.activation_backward(name, a, d)


def gradients(ctx, d=None, dz_at=None, grad_at=None, a_prev_at=None, W_at=None):
    """[dW0, db0, dW1, ...] from Keras's forward values and δ = d (default: the correct one).

    dz_at(l, z, a, d) → dz_l or None (a derivative mistake at layer l); grad_at(l, dW, db) → (dW, db) or
    None (a mistake in dW or db of layer l); a_prev_at(l) → the a_{l−1} that dW_l multiplies, or None;
    W_at(l) → the W_l that δ goes back through, or None.
    """
    spec, keras = ctx["spec"], ctx["keras"]
    names, zs, outs, Ws = spec["activations"], keras["zs"], keras["activations"], keras["weights_in"][0::2]
    d = delta(ctx) if d is None else d
    logits = loss_input(ctx) == "z"
    grads = []
    for l in reversed(range(len(names))):
        variant = dz_at(l, zs[l], outs[l], d) if dz_at else None
        if variant is not None:
            dz = variant
        elif l == len(names) - 1 and logits:
            dz = d
        else:
            dz = backward_through(names[l], zs[l], outs[l], d)
        a_prev = (a_prev_at(l) if a_prev_at else None)
        if a_prev is None:
            a_prev = outs[l - 1] if l > 0 else ctx["X"]
        dW, db = dz.T @ a_prev, dz.sum(axis=0)
        changed = grad_at(l, dW, db) if grad_at else None
        grads[:0] = list(changed) if changed is not None else [dW, db]
        W = W_at(l) if W_at else None
        d = dz @ (Ws[l] if W is None else W)
    return grads


class Loose(list):
    """Predicted gradients with a slack per array: what the numpy side's own rounding can add where the
    mistake's formula is ill-conditioned (a(1 − a) of a saturated sigmoid), beyond 64u of the prediction."""

    def __init__(self, values, slack):
        super().__init__(values)
        self.slack = slack


def slack_through(ctx, e_last):
    """|error| bounds of every gradient from a bound e_last on the last layer's dz: the backprop of
    nonnegative values through |W|, |a| and the nonnegative slopes of the hidden layers (tanh, sigmoid,
    relu, linear, elu; softmax, whose Jacobian has both signs, only ever last)."""
    keras, names = ctx["keras"], ctx["spec"]["activations"]
    outs = keras["activations"]
    absolute = dict(keras, weights_in=[np.abs(w) for w in keras["weights_in"]], activations=[np.abs(a) for a in outs])
    last = len(names) - 1
    return gradients(dict(ctx, keras=absolute, X=np.abs(ctx["X"])),
                     dz_at=lambda l, z, a, d: e_last if l == last else np.abs(
                         backward_through(names[l], z, outs[l], np.abs(d))))


def raw_targets(ctx):
    """The targets without label smoothing, as the numpy side would use them if it ignored it."""
    return ctx["y"]


def smoothed(ctx):
    spec = ctx["spec"]
    return smooth_labels(ctx["y"], spec["loss"], spec["loss_config"].get("label_smoothing", 0.0))
