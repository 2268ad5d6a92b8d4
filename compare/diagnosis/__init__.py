"""The diagnosis of a failing step: known causes tested against the numbers, not ratios guessed at.

For the quantity that failed (a layer's output, the loss, the gradients, the updated weights), every known
cause predicts what the numpy side would compute if it made that mistake (forward.py, gradients.py,
updates.py), from Keras's values and the numpy side's own inputs. A cause is named only if its prediction
matches every element of the numpy side within rounding (fits); several that fit are named together; none
that fits gives "no known cause fits", never a guess. docs/diagnosis.md lists every cause.
"""
import numpy as np

from numpy_impl.losses import smooth_labels

from ..rounding import UNIT_ROUNDOFF
from . import forward, gradients, updates
from .ratios import constant_ratio, fmt

NO_CAUSE = "no known cause fits"
# A prediction is computed in float64 from Keras's values; the numpy side computed the same mistake with
# its own rounding. Both are within one step's tolerance of the exact values, so they agree within twice
# it, plus a few roundings of the prediction's own arithmetic.
PREDICTION_ROUNDINGS = 64


def context(at, spec, u, backend, previous=None, bounds=None):
    """What the hypotheses read: the step's record (Stepper.current), the network's spec, the unit roundoff
    Keras computed in, the backend, the step before (for stale activations), and the check's recipe for a
    step's tolerances (compare/stepper.py step_bounds, for the float32 hypothesis)."""
    ctx = dict(at, spec=spec, u=u, backend=backend, previous=previous, state=at.get("tol", {}).get("state"),
               bounds=bounds)
    ctx["y_used"] = smooth_labels(at["y"], spec["loss"], spec["loss_config"].get("label_smoothing", 0.0))
    ctx["loss_factor"] = spec.get("loss_scale", 1.0) * (
        at["X"].shape[0] if spec["loss_config"].get("reduction") == "sum" else 1.0)
    return ctx


def fits(observed, predicted, tol, u):
    """Whether every observed element is within 2·tol + 64u·|prediction| (+ the prediction's own slack,
    where it carries one: backprop.Loose) of its prediction."""
    slack = getattr(predicted, "slack", None) or [0.0] * len(predicted)
    for m, p, t, e in zip(observed, predicted, tol, slack):
        m, p, t = np.asarray(m, float), np.asarray(p, float), np.asarray(t, float)
        if not (np.all(np.isfinite(p)) and np.all(np.abs(m - p) <= 2 * t + PREDICTION_ROUNDINGS * u * np.abs(p) + e)):
            return False
    return True


def differs(predicted, correct, tol):
    """Whether a prediction stands apart from the correct values somewhere (beyond one tolerance): a cause
    whose prediction does not is indistinguishable from no mistake here and is never named."""
    return any(np.any(~(np.abs(np.asarray(p, float) - np.asarray(k, float)) <= np.asarray(t, float)))
               for p, k, t in zip(predicted, correct, tol))


def explains(observed, predicted, correct, tol, u):
    """A cause explains a mismatch when its prediction fits the numpy side and differs from the correct values."""
    return fits(observed, predicted, tol, u) and differs(predicted, correct, tol)


def diagnose(quantity, phase, ctx):
    """(sentence, [cause ids]) for a mismatch of `quantity` ("forward", "loss", "gradient", "weights" with
    phase "updated" or "entering") at the step in ctx."""
    numpy, tol, u = ctx["numpy"], ctx["tol"], ctx["u"]
    found = []
    float32 = ("the numpy side computes in float32 (its values are within float32 rounding of Keras's, and outside "
               "float64's)"), ["float32"]
    if quantity in ("forward", "loss", "gradient") and float32_fits(ctx, quantity):
        return float32
    if quantity == "forward":
        keras = ctx["keras"]["activations"]
        found = [(cause, text) for cause, text, layer, predicted in forward.hypotheses(ctx)
                 if explains([numpy["forward"][layer]], [predicted], [keras[layer]], [tol["forward"][layer]], u)]
    elif quantity == "loss":
        found = [(cause, text) for cause, text, predicted in forward.loss_hypotheses(ctx)
                 if explains([numpy["loss"]], [predicted], [ctx["keras"]["loss"]], [tol["loss"]], u)]
        found = [(cause, text) for cause, text in found if gradients_consistent(cause, ctx)]
    elif quantity == "gradient":
        found = [(cause, text) for cause, text, predicted in gradients.hypotheses(ctx)
                 if explains(numpy["grads"], predicted, ctx["keras"]["grads"], tol["grads"], u)]
    elif phase == "updated":
        found = [(cause, text) for cause, text, predicted in updates.hypotheses(ctx)
                 if explains(numpy["updated"], predicted, ctx["keras"]["weights_out"], tol["updated"], u)]
        if not found:
            before = numpy["weights"]
            r = constant_ratio([m - b for m, b in zip(numpy["updated"], before)],
                               [k - b for k, b in zip(ctx["keras"]["weights_out"], before)], tol["updated"])
            if r is not None and abs(r - 1) > 1e-15:
                return updates.learning_rate_text(r, ctx["spec"]["learning_rate"]), ["learning rate"]
            if float32_fits(ctx, quantity):  # after the constant ratio: a learning rate off by 1e-7 fits float32 too
                return float32
    if not found:
        return NO_CAUSE + where_text(quantity, ctx), []
    texts = list(dict.fromkeys(text for _, text in found))
    return " or ".join(texts), list(dict.fromkeys(cause for cause, _ in found))


def gradients_consistent(cause, ctx):
    """A loss value is one number, weak evidence alone: a cause named for it must also fit the numpy side's
    gradients where they were returned, either as that cause predicts them or as Keras's (a mistake in
    the value only)."""
    numpy, tol, u = ctx["numpy"], ctx["tol"], ctx["u"]
    if "grads" not in numpy or fits(numpy["grads"], ctx["keras"]["grads"], tol["grads"], u):
        return True
    return any(fits(numpy["grads"], predicted, tol["grads"], u)
               for c, _, predicted in gradients.hypotheses(ctx) if c == cause)


def float32_fits(ctx, quantity):
    """Whether the numpy side's failing quantity, wrong at float64 rounding, is right at float32 rounding:
    within the tolerances of a float32 computation (u = 2⁻²⁴, its inputs rounded to float32). The updated
    weights are judged only from a known optimizer state (the first step, or an optimizer that keeps none)."""
    from ..update_tolerance import UpdateTolerance
    spec, numpy, keras, step_bounds = ctx["spec"], ctx["numpy"], ctx["keras"], ctx["bounds"]
    u32 = UNIT_ROUNDOFF["float32"]
    if ctx["u"] >= u32 or "forward" not in numpy or step_bounds is None:
        return False
    gap = [u32 * np.abs(w) for w in keras["weights_in"]]
    tol = step_bounds(spec, keras, ctx["X"], ctx["y"], u32, ctx["backend"], True, gap, numpy["forward"])
    if quantity == "forward":
        return fits(numpy["forward"], keras["activations"], tol["forward"], u32)
    if quantity == "loss":
        return fits([numpy["loss"]], [keras["loss"]], [tol["loss"]], u32)
    if quantity == "gradient":
        return fits(numpy["grads"], keras["grads"], tol["grads"], u32)
    if ctx.get("state") is not None or "updated" not in numpy:
        return False
    tracker = UpdateTolerance(spec["optimizer"], spec["optimizer_config"], spec["learning_rate"], u32)
    updated = tracker.step(keras["weights_in"], keras["grads"], tol["grads"], keras["weights_out"],
                           spec["learning_rate"], gap)
    return fits(numpy["updated"], keras["weights_out"], updated, u32)


def where_text(quantity, ctx):
    """For a gradient mismatch no cause explains: where the backprop first goes wrong, from locate()."""
    if quantity != "gradient":
        return ""
    from .locate import locate
    found = locate(ctx)
    return f" ({found['text']})" if found else ""


__all__ = ["NO_CAUSE", "constant_ratio", "context", "diagnose", "differs", "explains", "fits", "fmt"]
