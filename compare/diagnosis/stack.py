"""The diagnosis of a layered network's first mismatch (compare/stack_check.py): the layer, and the cause where
the numbers show one, else what the comparison rules out.

Each layer's output is Keras's layer on the numpy side's own input, so a forward mismatch is in that layer. The
gradients are compared last layer first: the first that differs is in that layer's weight gradient or in the
backward pass of the layers between it and the next layer whose gradients agreed (they carry dout to it).
Causes are named only from evidence in the step's numbers: a constant factor between the sides (a flipped sign,
a missing 1/N), the same values in another order, a dropout pattern that is not the step's mask, a moving
statistic that fits another momentum, a step that agreed before and differs now (state kept between steps).
"""
import numpy as np


def _factor(mine, ref):
    """c where mine = c·ref over the tensor (to 1e-6 relative, on elements where ref is not tiny), else None."""
    mine, ref = np.ravel(mine), np.ravel(ref)
    big = np.abs(ref) > 1e-3 * np.max(np.abs(ref), initial=0)
    if big.sum() < 1:
        return None
    c = mine[big] / ref[big]
    c0 = np.median(c)
    if not np.isfinite(c0) or c0 == 0 or np.max(np.abs(c - c0)) > 1e-6 * abs(c0):
        return None
    if abs(c0 - 1) <= 1e-6:  # the values agree but for a few elements: no factor explains the mismatch
        return None
    if not np.allclose(mine, c0 * ref, rtol=1e-6, atol=1e-12 * np.max(np.abs(ref))):
        return None
    return float(c0)


def _factor_words(c, rows):
    near = lambda a, b: abs(a - b) <= 1e-6 * abs(b)  # noqa: E731
    if near(c, -1):
        return "sign_flipped", "the sign is flipped (numpy = −Keras)"
    if near(c, rows):
        return "missing_mean", f"numpy = {rows} × Keras, the batch size: the mean's 1/N is missing"
    if near(c, 1 / rows):
        return "extra_mean", f"numpy = Keras / {rows}: divided by the batch size once too often"
    if near(c, -rows):
        return "sign_and_mean", f"numpy = −{rows} × Keras: the sign is flipped and the mean's 1/N is missing"
    if near(c, 2) or near(c, 0.5):
        return "factor_two", f"numpy = {c:g} × Keras: a factor of 2 (a squared error's 2, or ½)"
    return "constant_factor", f"numpy = {c:.9g} × Keras, the same factor at every element"


def explain(stop, stepper):
    """Set stop.diagnosis, stop.causes and stop.location for the first mismatch of a layered network's step."""
    m = stop.mismatch
    sides, current = stepper.sides, stepper.current
    numpy, keras, step = current["numpy"], current["keras"], m["step"]
    rows = len(current["X"])
    q, name = m["quantity"], m["name"]
    causes, text = [], ""
    if q == "forward" and m.get("phase") == "inference":
        i = sides.layer_names.index(name)
        layer = sides.layer_names[i]
        cls = layer.split(":")[1]
        text = (f"after training, in inference mode (training=False), {layer} gives another output than Keras's layer "
                "on the same input, although every training step agreed: the layer's inference path differs")
        if cls in ("BatchNormalization", "Dropout"):
            causes.append("inference_mode")
            text += (" (batch normalization must use its moving statistics)" if cls == "BatchNormalization" else
                     " (dropout must be the identity)")
        location = _location(step, i, layer, name, "inference")
    elif q == "forward":
        i = sides.layer_names.index(name)
        layer = sides.layer_names[i]
        where = "X" if i == 0 else f"the numpy side's output of {sides.layer_names[i - 1]}"
        text = (f"{layer} gives another output than Keras's layer on the same input ({where}, given to both): the "
                "mistake is in this layer's forward pass")
        mine, ref = numpy["forward"][i], keras["outputs"][i]
        c = _factor(mine, ref)
        cls = layer.split(":")[1]
        if c is not None:
            cause, words = _factor_words(c, rows)
            causes.append(cause)
            text += f"; {words}"
        elif np.allclose(np.sort(mine, axis=None), np.sort(ref, axis=None), rtol=1e-9, atol=0):
            causes.append("order")
            text += ("; it holds Keras's values in another order (an axis order: Flatten reads an image in Keras's "
                     "(H, W, C) order, not (C, H, W))")
        elif cls == "Dropout" and not np.array_equal(mine == 0, ref == 0):
            causes.append("dropout_mask")
            text += ("; its zeros are not this step's keep-mask: the layer does not use the mask set_noise gave it for "
                     "this step (a mask kept from an earlier step, or its own draw)")
        elif step > 0 and stepper.checked == step:
            causes.append("state_between_steps")
            kept = ("its recurrent state carried from the last batch instead of starting from zeros"
                    if cls in ("LSTM", "GRU", "SimpleRNN") else "a cache or a setting kept from the last call")
            text += (f"; it agreed {_agreed(step)} and differs now: the layer keeps something from one step to "
                     f"the next ({kept})")
        else:
            text += _named(_layer_causes(stepper, i), causes)
        location = _location(step, i, layer, name, "forward")
    elif q == "loss":
        text = ("the loss differs from Keras's loss of the numpy side's own layer outputs: the mistake is in the loss's "
                "value, or gradients(X, y) took it from another forward pass than forward(X) returned")
        c = _factor(np.float64(numpy["loss"]), np.float64(keras["loss"]))
        named = False
        if c is not None:  # one number always fits some factor: only a known one names a cause
            cause, words = _factor_words(c, rows)
            if cause != "constant_factor":
                causes.append(cause)
                text += f"; {words}"
                named = True
        if not named and step > 0 and stepper.checked == step:  # found by a user's trial: an LSTM state carried
            causes.append("state_between_steps")                # in gradients() only, forward(X) left pure
            text += (f"; it agreed {_agreed(step)} and differs now while every layer's output agrees: gradients(X, y) "
                     "runs its forward pass with something kept from the last step (a recurrent state carried across "
                     "batches, a cache), which forward(X) does not")
        location = _location(step, len(sides.layer_names) - 1, sides.layer_names[-1], "loss", "loss")
    elif q == "gradient":
        k = sides.weight_names.index(name[1:])
        i = sides.specs[k][0]
        layer = sides.layer_names[i]
        between, above = _carriers(sides, i)
        carried = (f" or in the backward pass of {', '.join(between)}, which carr{'ies' if len(between) == 1 else 'y'} "
                   "the gradient to it" if between else "")
        if above:
            text = (f"the gradients of every layer after {layer} agree and {name} does not: the mistake is in "
                    f"{layer}'s weight gradient{carried}")
        else:
            text = (f"{name}, the gradient nearest the loss, differs: the mistake is in the loss's gradient "
                    f"(dL/d output){carried.replace(' or in', ', in') if between else ''} or in {layer}'s weight gradient")
        j = sides.trainable.index(k)
        c = _factor(numpy["grads"][j], keras["grads"][j])
        if c is not None:
            everywhere = all(_factor(g, r) is not None and abs(_factor(g, r) - c) <= 1e-6 * abs(c)
                             for g, r in zip(numpy["grads"], keras["grads"]) if np.any(r))
            cause, words = _factor_words(c, rows)
            causes.append(cause)
            text += f"; {words}"
            if everywhere and len(numpy["grads"]) > 1:
                causes.append("loss_gradient")
                text += (" at every gradient of the network alike: the factor enters once, at the loss's gradient "
                         "dL/d output")
        location = _location(step, i, layer, name, "backprop")
    else:  # the weights after the step
        k = sides.weight_names.index(name)
        i = sides.specs[k][0]
        layer = sides.layer_names[i]
        if m.get("phase") == "after":
            text = (f"{name}, a non-trainable weight, differs after the step: {layer}'s training call updates it "
                    "otherwise than Keras's")
            implied = _momentum(stepper, k)
            momentum = stepper.spec["layers"][i]["config"].get("momentum", 0.99)
            if implied is not None and abs(implied - momentum ** 2) <= 1e-6:
                causes.append("double_update")
                text += (f"; the numpy side's value is two updates with momentum {momentum} ({implied:.6g} = "
                         f"{momentum}²): the statistics were updated twice in the step (forward(X) must not change them)")
            elif implied is not None:
                causes.append("momentum")
                text += f"; the numpy side's value fits a momentum of {implied:.6g} (Keras's layer: {momentum})"
        else:
            text = (f"every gradient agrees and {name} after the optimizer's step does not: the mistake is in the "
                    f"update ({stepper.spec['optimizer']})")
            same = [sides.weight_names[j] for j in sides.trainable if j < k and sides.specs[j][2] == sides.specs[k][2]]
            stateful = stepper.update.keeps_state
            if same and stateful:
                causes.append("shared_shape")
                text += (f"; {', '.join(same)} before it {'has' if len(same) == 1 else 'have'} the same shape "
                         f"{list(sides.specs[k][2])}: an optimizer state kept per shape rather than per weight "
                         "(a dict keyed by shape) would give this")
            elif step > 0 and stepper.checked == step and stateful:
                causes.append("optimizer_state")
                text += (f"; it agreed {_agreed(step)}: the optimizer's state for {name} (its moments) is "
                         "not its own (shared with another weight of the same shape, or reset)")
            else:
                text += _named(_update_causes(stepper), causes)
        location = _location(step, i, layer, name, "state" if m.get("phase") == "after" else "update")
    stop.diagnosis, stop.causes, stop.location = text, causes, location


def _named(found, causes):
    """Add the causes of `found` ([(cause, words)]) to `causes`, each once; their words as "; …" for the text."""
    causes += list(dict.fromkeys(cause for cause, _ in found))
    return "".join(f"; {words}" for words in dict.fromkeys(words for _, words in found))


def _layer_causes(stepper, i):
    """[(cause, words)]: the single-layer check's known mistakes of layer i's class (compare/diagnosis/layers.py:
    a flipped kernel, padding on the other side, an LSTM's gates in another order, ...) whose predicted output, the
    Keras layer rerun on the numpy side's input with the mistake planted, fits the numpy side's output. Dropout is
    left out (its mask is the step's draw; the caller names a mask that is not)."""
    from . import explains
    from .layers import hypotheses
    sides, current, spec = stepper.sides, stepper.current, stepper.spec
    entry, d = sides.entries[i], spec["layers"][i]
    srcs = sides.sources[i]
    if entry is None or entry["noise"] or len(srcs) != 1:
        return []
    numpy, keras = current["numpy"], current["keras"]
    x = current["X"] if srcs[0] < 0 else numpy["forward"][srcs[0]]
    ks = [k for k, s in enumerate(sides.specs) if s[0] == i]
    mine, ref, tol = numpy["forward"][i], keras["outputs"][i], current["tol"]["forward"][i]
    dout = keras["douts"][i] if keras.get("douts") and keras["douts"][i] is not None else np.zeros_like(ref)
    ctx = {"spec": {"class_name": d["class_name"], "config": d.get("config", {}), "call": d.get("call") or {}},
           "entry": entry, "klayer": sides.layers[i], "xk": x, "x": x, "dout_k": dout,
           "weights": [keras["weights_in"][k] for k in ks], "dtype": "float64", "training": True, "noise": None,
           "specs": [(sides.specs[k][1], sides.specs[k][2], sides.specs[k][3]) for k in ks], "u": stepper.u,
           "letters": (None, None, None, None), "sides": {"out": (mine, ref, tol)}}
    try:
        return [(cause, words) for cause, words, predicted in hypotheses(ctx, "out")
                if predicted.get("out") is not None and np.shape(predicted["out"]) == np.shape(mine)
                and explains([mine], [predicted["out"]], [ref], [tol], stepper.u)]
    except Exception:  # noqa: BLE001  a hypothesis that cannot run here names no cause (never a guessed one)
        return []
    finally:
        sides.layers[i].set_weights(ctx["weights"])


def _agreed(step):
    return "at step 0" if step == 1 else f"at steps 0–{step - 1}"


def _update_causes(stepper):
    """[(cause, words)]: the optimizer mistakes of compare/diagnosis/updates.py (Dense networks' known causes: float32
    casts of β1 and β2, the bias correction, ε's place, ...) whose predicted update fits the numpy side's, on the
    trainable weights, from the optimizer's state before the step as the update tolerance tracks it."""
    from . import explains
    from .updates import hypotheses
    sides, current = stepper.sides, stepper.current
    numpy, keras, tr = current["numpy"], current["keras"], sides.trainable
    mine = [numpy["updated"][k] for k in tr]
    ctx = {"spec": stepper.spec, "numpy": {"weights": [numpy["weights"][k] for k in tr], "grads": numpy["grads"],
                                           "updated": mine},
           "keras": {"weights_out": [keras["weights_out"][k] for k in tr]}, "state": stepper.update.before}
    return [(cause, words) for cause, words, predicted in hypotheses(ctx) if cause != "never updated" and
            explains(mine, predicted, ctx["keras"]["weights_out"], current["tol"]["updated"], stepper.u)]


def _carriers(sides, i):
    """(the layers without trainable weights that carry the gradient from the loss side to layer i, the layers with
    weights where that path begins): along the graph's consumers (a stack's: the layers after i, up to the next
    one with weights)."""
    weighted = {sides.specs[k][0] for k in sides.trainable}
    consumers = {}
    for c, srcs in enumerate(sides.sources):
        for j in srcs:
            consumers.setdefault(j, []).append(c)
    carriers, above, todo = [], [], list(consumers.get(i, []))
    while todo:
        c = todo.pop(0)
        if c in weighted:
            above.append(c)
        elif sides.layer_names[c] not in carriers:
            carriers.append(sides.layer_names[c])
            todo += consumers.get(c, [])
    return sorted(carriers, key=sides.layer_names.index), above


LOCATION_TEXT = {
    "forward": "the forward pass first goes wrong at layer {layer}: its output disagrees",
    "inference": "in inference mode, after training, layer {layer}'s output disagrees",
    "loss": "the loss disagrees while every layer's output agrees",
    "backprop": "the backprop first goes wrong at layer {layer}: its gradient {tensor} disagrees",
    "state": "layer {layer}'s training call leaves its non-trainable {tensor} otherwise than Keras's",
    "update": "the update goes wrong at layer {layer}: {tensor} after the optimizer's step disagrees",
}


def _location(step, index, layer, tensor, where):
    """The report's location: the step, the layer (name and index), the tensor, where in the step (LOCATION_TEXT's
    keys, as Dense networks' "forward", "loss", "backprop", "update", and "state", "inference") and a sentence."""
    return {"step": int(step), "layer": layer, "layer_index": int(index), "tensor": tensor, "where": where,
            "text": LOCATION_TEXT[where].format(layer=layer, tensor=tensor)}


def _momentum(stepper, k):
    """The momentum μ that gives the numpy side's moving statistic from the entering one and Keras's batch
    statistic, moving = old·μ + stat·(1 − μ), when one μ fits every element (to 1e-6); else None."""
    keras, numpy = stepper.current["keras"], stepper.current["numpy"]
    old, mine, ref = numpy["weights"][k], numpy["updated"][k], keras["weights_out"][k]
    momentum = stepper.spec["layers"][stepper.sides.specs[k][0]]["config"].get("momentum", 0.99)
    stat = (ref - old * momentum) / (1 - momentum)  # Keras's batch statistic, from its own update
    denom = old - stat
    ok = np.abs(denom) > 1e-6 * (np.abs(old) + np.abs(stat) + 1e-300)
    if not ok.any():
        return None
    mu = (mine[ok] - stat[ok]) / denom[ok]
    mu0 = float(np.median(mu))
    return mu0 if np.max(np.abs(mu - mu0)) <= 1e-6 * max(abs(mu0), 1e-3) and abs(mu0 - momentum) > 1e-6 else None
