"""Known causes of a wrong forward pass or a wrong loss value, each as the value the numpy side would compute
with that mistake, from Keras's own values of the layer below (or of the loss's input)."""
import numpy as np

from numpy_impl import losses as numpy_losses, ops

from ..rules import activations as activation_rules
from . import backprop
from .gradients import clipping, scale_causes
from .ratios import fmt


def first_disagreeing_layer(ctx):
    """The first layer, from the input, whose output disagrees with Keras's, or None."""
    numpy, keras, tol = ctx["numpy"].get("forward"), ctx["keras"]["activations"], ctx["tol"]["forward"]
    if numpy is None:
        return None
    for l, (m, k, t) in enumerate(zip(numpy, keras, tol)):
        if np.any(~(np.abs(m - k) <= t)):
            return l
    return None


def hypotheses(ctx):
    """Yield (id, text, layer, predicted output of that layer) for the first layer whose output disagrees.

    The layer below is taken from Keras (it agrees), so each prediction is of that one layer's mistake:
    the bias left out, the kernel used untransposed (W instead of Wᵀ, where it is square), another
    activation than the one declared."""
    l = first_disagreeing_layer(ctx)
    if l is None:
        return
    spec, keras = ctx["spec"], ctx["keras"]
    names = spec["activations"]
    W, b = keras["weights_in"][2 * l], keras["weights_in"][2 * l + 1]
    a_prev = keras["activations"][l - 1] if l > 0 else ctx["X"]
    f = ops.ACTIVATIONS[names[l]][0]
    where = f"layer {l} ({names[l]})"
    yield f"no bias at layer {l}", f"{where}: the forward pass leaves out the bias", l, f(a_prev @ W.T)
    if W.shape[0] == W.shape[1]:
        yield (f"transposed kernel at layer {l}", f"{where}: the forward pass multiplies by W where Keras's Dense "
               "takes Wᵀ (a square kernel hides it)", l, f(a_prev @ W + b))
    z = keras["zs"][l]
    for other in activation_rules.ACTIVATIONS:
        if other != names[l] and not (other == "softmax" and l < len(names) - 1):
            yield (f"{other} at layer {l}", f"{where}: the layer applies {other} where {names[l]} is declared", l,
                   ops.ACTIVATIONS[other][0](z))


def loss_hypotheses(ctx):
    """Yield (id, text, predicted loss value): the loss summed where Keras averages, ½ in it, label smoothing
    ignored, ... (the gradients' scale causes, applied to the value)."""
    keras_loss = ctx["keras"]["loss"]
    for factor, cause, text in scale_causes(ctx):
        if factor > 0:
            yield cause, f"the loss is {fmt(factor)} × Keras's: {text}", factor * keras_loss
    spec = ctx["spec"]
    if spec["loss_config"].get("label_smoothing"):
        on_output, on_logits = numpy_losses.LOSSES[spec["loss"]]
        where = backprop.loss_input(ctx)
        x = ctx["keras"]["zs"][-1] if where == "z" else ctx["keras"]["activations"][-1]
        value = (on_logits if where else on_output)(x, ctx["y"])[0] * ctx.get("loss_factor", 1.0)
        yield "label smoothing ignored", "the loss ignores label smoothing (it uses the targets as given)", value
    for cause, text, value, _ in clipping(ctx, value=True):
        yield cause, text, value
