"""Known causes of wrong gradients, each as the gradients the numpy side would compute with that mistake
(compare/diagnosis/backprop.py). A cause is named only when its prediction matches every gradient of the
numpy side within rounding (compare/diagnosis/__init__.py, fits)."""
import numpy as np

from numpy_impl import losses as numpy_losses, ops

from ..rounding import TRANSCENDENTAL
from . import backprop
from .ratios import fmt

SIGN = "the sign is flipped (the update climbs the loss)"


def scale_causes(ctx):
    """(factor, id, text) for every known constant factor between the numpy side's loss gradient and Keras's.

    With N rows, k outputs and n loss terms (N·k, or N for categorical cross-entropy, whose rows are sums):
    the mean over the batch or the outputs left out, ½ in the loss, the textbook quadratic cost ½·Σ over
    outputs (k/2 × mean squared error), the guide's error = y − ŷ without the 2/N, ..., each with and
    without a flipped sign.
    """
    spec, y = ctx["spec"], ctx["y"]
    N, k = y.shape
    categorical = spec["loss"] == "categorical_crossentropy"
    n = N if categorical else N * k
    mse = spec["loss"] == "mse"
    factors = []  # in order of preference where two give the same factor (k = 1, N = 2, ...)
    if mse:
        factors += [(n / 2, "2/N missing", "the 2/N of mean squared error is missing"),
                    (0.5, "half", "the factor 2 of the square is missing (a ½ in the loss; declare loss_scale = 0.5 "
                     "if it is meant)"),
                    (k / 2, "half sum over outputs", f"½·Σ over outputs (k/2 × Keras's mean squared error), k = {k}: "
                     "the textbook quadratic cost C = 1/(2n)·Σ‖y − a‖² (declare loss_scale = k/2 if it is meant)")]
    factors += [(N, "summed over the batch", "the loss is summed over the batch, not averaged over it (the 1/N of "
                 "the mean is missing; declare loss_config reduction \"sum\" if it is meant)")]
    if not categorical:
        factors += [(n, "summed", "the loss is summed over every term, not averaged (the 1/N of the mean is "
                     "missing)"),
                    (k, "summed over outputs", "the loss is summed over the outputs, not averaged over them")]
    if mse:
        factors += [(N / 2, "half sum over batch", "½·Σ over the batch (N/2 × Keras's mean squared error)"),
                    (2.0, "extra 2", "there is an extra factor 2")]
    factors += [(1 / n, "mean twice", "the mean is taken twice (an extra 1/N)")]
    out, seen = [(-1.0, "sign flipped", SIGN)], {-1.0}
    for sign in (1, -1):
        for factor, cause, text in factors:
            value = sign * factor
            if abs(factor - 1) < 1e-12 or any(abs(value - v) <= 1e-12 * abs(v) for v in seen):
                continue
            seen.add(value)
            parts = ([SIGN] if sign < 0 else []) + [text]
            out.append((value, ("sign flipped, " if sign < 0 else "") + cause, " and ".join(parts)))
    return out


def hypotheses(ctx):
    """Yield (id, text, predicted gradients) for every known cause of wrong gradients that applies here."""
    spec = ctx["spec"]
    names, L = spec["activations"], len(spec["activations"])
    keras_grads = ctx["keras"]["grads"]
    for factor, cause, text in scale_causes(ctx):
        yield cause, f"gradients are {fmt(factor)} × Keras's: {text}", [factor * g for g in keras_grads]
    if spec["loss_config"].get("label_smoothing"):
        yield ("label smoothing ignored", "the loss ignores label smoothing (it uses the targets as given)",
               backprop.gradients(ctx, backprop.delta(ctx, y=ctx["y"])))
    yield from _output_chain(ctx)
    for l in range(L):
        name, where = names[l], f"layer {l} ({names[l]})"
        last_fused = l == L - 1 and backprop.loss_input(ctx) == "z"
        if name not in ("linear", "softmax") and not last_fused:
            grad = ops.ACTIVATIONS[name][1]
            yield (f"no derivative at layer {l}", f"{where}: the activation's derivative is left out of the backprop",
                   backprop.gradients(ctx, dz_at=_at(l, lambda z, a, d: d)))
            yield (f"derivative twice at layer {l}", f"{where}: the activation's derivative is applied twice",
                   backprop.gradients(ctx, dz_at=_at(l, lambda z, a, d: d * grad(a) * grad(a))))
            yield (f"derivative at z at layer {l}", f"{where}: the derivative is taken from z as if it were the "
                   f"output (e.g. 1 − z² for tanh′)", backprop.gradients(ctx, dz_at=_at(l, lambda z, a, d: d * grad(z))))
            f = ops.ACTIVATIONS[name][0]
            yield (f"derivative of the output at layer {l}", f"{where}: the derivative is evaluated at the output "
                   f"a instead of at z (f′(a), e.g. 1 − tanh(a)²)",
                   backprop.gradients(ctx, dz_at=_at(l, lambda z, a, d: d * grad(f(a)))))
        W = ctx["keras"]["weights_in"][2 * l]
        if W.shape[0] == W.shape[1]:
            yield (f"transposed gradient at layer {l}", f"{where}: dW is transposed (a square kernel hides it)",
                   backprop.gradients(ctx, grad_at=_at_grad(l, lambda dW, db: (dW.T, db))))
        N = ctx["X"].shape[0]
        if N > 1:
            yield (f"bias gradient averaged at layer {l}", f"{where}: db is averaged over the batch, not summed "
                   f"(1/{N} × Keras's)", backprop.gradients(ctx, grad_at=_at_grad(l, lambda dW, db: (dW, db / N))))
        previous = ctx.get("previous")
        if previous is not None and previous["X"].shape == ctx["X"].shape:
            a_prev = previous["keras"]["activations"][l - 1] if l > 0 else previous["X"]
            yield (f"stale activations at layer {l}", f"{where}: dW uses the activations of the previous batch "
                   "(kept from the step before)", backprop.gradients(ctx, a_prev_at=_at(l, lambda: a_prev, args=0)))
        if previous is not None and l > 0:
            W_prev = previous["keras"]["weights_in"][2 * l]
            yield (f"stale weights at layer {l}", f"{where}: the backprop through its kernel uses the weights of the "
                   "previous step (kept before the update)", backprop.gradients(ctx, W_at=_at(l, lambda: W_prev, args=0)))
    N = ctx["X"].shape[0]
    if N > 1 and L > 1:
        yield ("bias gradients averaged", f"every layer's db is averaged over the batch, not summed (1/{N} × Keras's)",
               backprop.gradients(ctx, grad_at=lambda l, dW, db: (dW, db / N)))


def _output_chain(ctx):
    """Mistakes in the chain from the loss to the last layer: binary cross-entropy after a sigmoid with the
    sigmoid's derivative left out or applied twice; softmax with a diagonal-only Jacobian."""
    spec, keras = ctx["spec"], ctx["keras"]
    names, L = spec["activations"], len(spec["activations"])
    a, y, N = keras["activations"][-1], ctx["y_used"], ctx["X"].shape[0]
    c = ctx.get("loss_factor", 1.0)
    if spec["loss"] == "binary_crossentropy" and names[-1] == "sigmoid":
        n = y.size
        p = np.clip(a, 1e-7, 1 - 1e-7)
        dL_da = (-y / p + (1 - y) / (1 - p)) / n * c
        yield ("sigmoid chain missing", "binary cross-entropy: dL/dp is used as dL/dz (the sigmoid's derivative "
               "is missing)", backprop.gradients(ctx, dz_at=_at(L - 1, lambda z, a_, d: dL_da)))
        correct = (a - y) / n * c
        yield ("sigmoid chain doubled", "binary cross-entropy: σ − y is multiplied by the sigmoid's derivative "
               "again (the chain applied twice)",
               backprop.gradients(ctx, dz_at=_at(L - 1, lambda z, a_, d: correct * a * (1 - a))))
    u = ctx["u"]
    for cause, text, d, on_z in clipping(ctx):
        dz = d if on_z else backprop.backward_through(names[-1], keras["zs"][-1], a, d)
        predicted = backprop.gradients(ctx, dz_at=_at(L - 1, lambda z, a_, d_: dz))
        if not on_z and names[-1] == "sigmoid":
            # the numpy side's a(1 − a) and 1 − p cancel near a = 1: each side's a is within 16u·a of σ(z)
            # (TRANSCENDENTAL), so 1 − a is within 2·16u/(1 − a) relative of the other side's
            with np.errstate(all="ignore"):
                e_dz = 2 * TRANSCENDENTAL * u * np.abs(dz) * (1 / np.maximum(1 - a, u) + 1 / np.maximum(a, u))
            predicted = backprop.Loose(predicted, backprop.slack_through(ctx, e_dz))
        yield cause, text, predicted
    if names[-1] == "softmax" and a.shape[1] > 1:
        if spec["loss"] == "categorical_crossentropy":
            dL_da = -y / np.clip(a, 1e-7, 1 - 1e-7) / N * c
        elif spec["loss"] == "mse":
            dL_da = 2 * (a - ctx["y_used"]) / a.size * c
        else:
            return
        yield ("softmax diagonal", "softmax: only the diagonal of its Jacobian is used (dz = a(1 − a)·dL/da, the "
               "Σ_k a_k·dL/da_k term missing)", backprop.gradients(ctx, dz_at=_at(L - 1, lambda z, a_, d: a_ * (1 - a_) * dL_da)))


def _at(layer, change, args=4):
    """A hook that applies `change` at `layer` only."""
    if args == 0:
        return lambda l: change() if l == layer else None
    return lambda l, z, a, d: change(z, a, d) if l == layer else None


def _at_grad(layer, change):
    return lambda l, dW, db: change(dW, db) if l == layer else None


CLIP_ABSENT = ("clipping absent", "cross-entropy: the probabilities are not clipped to [ε, 1 − ε] as Keras clips "
               "them (where an output reaches 0 or 1)")
CLIP_ADDED = ("clipping added", "cross-entropy: the probabilities are clipped to [ε, 1 − ε] where Keras, taking "
              "the logits, clips nothing (where an output saturates)")


def clipping(ctx, value=False):
    """Yield (id, text, the loss value or its gradient, whether that gradient is dL/dz) for the
    cross-entropies' clipping of the output p to [ε, 1 − ε], ε = 1e-7: left out where Keras clips (the loss
    on probabilities; after a sigmoid or softmax the numpy side then likely takes the logits, exactly), or
    added where Keras takes the logits (TensorFlow after a sigmoid or softmax) and so clips nothing. Added,
    two ways people write it: dL/dp zero where the clip is active (as autodiff would), or dL/dp at the
    clipped p."""
    spec = ctx["spec"]
    if spec["loss"] not in ("binary_crossentropy", "categorical_crossentropy"):
        return
    on_output, on_logits = numpy_losses.LOSSES[spec["loss"]]
    a, y, c = ctx["keras"]["activations"][-1], ctx["y_used"], ctx.get("loss_factor", 1.0)
    pick = (lambda r: r[0] * c) if value else (lambda r: r[1] * c)
    where = backprop.loss_input(ctx)
    with np.errstate(all="ignore"):
        if where is None and spec["activations"][-1] in numpy_losses.LOGIT_LAYERS:
            yield (*CLIP_ABSENT, pick(on_logits(ctx["keras"]["zs"][-1], y)), True)
        elif where is None:
            yield (*CLIP_ABSENT, pick(on_output(a, y, epsilon=0.0)), False)
        elif where == "z":
            yield (*CLIP_ADDED, pick(on_output(a, y)), False)
            if not value:
                eps = numpy_losses.EPSILON
                yield (*CLIP_ADDED, pick(on_output(np.clip(a, eps, 1 - eps), y, epsilon=0.0)), False)
