"""Localisation: at the failing step, every tensor compared, not only up to the first failure, listed in
backprop order (the loss, then the output layer down to the first layer), and the layer where it goes wrong:
the first layer, counted from the output, whose gradients disagree while every layer above agrees."""
import numpy as np

from ..names import layer_output_names, weight_names


def statuses(ctx):
    """[{"tensor", "quantity", "layer", "agrees", "largest_ratio", "mismatched", "elements"}] for every tensor
    the numpy side computed at this step, in backprop order: loss; then per layer from the output down, its
    output a_l, its gradients dW_l and db_l, its updated W_l and b_l."""
    numpy, keras, tol = ctx["numpy"], ctx["keras"], ctx["tol"]
    L = len(ctx["spec"]["activations"])
    names, outputs = weight_names(2 * L), layer_output_names(L)
    out = []

    def add(tensor, quantity, layer, m, k, t):
        m, k = np.asarray(m, float), np.asarray(k, float)
        t = np.broadcast_to(np.asarray(t, float), m.shape)
        diff = np.abs(m - k)
        bad = ~(diff <= t)
        with np.errstate(all="ignore"):
            ratio = np.where(diff == 0, 0.0, np.where(t > 0, diff / np.where(t > 0, t, 1.0), np.inf))
        largest = float(np.nanmax(ratio)) if ratio.size and not np.all(np.isnan(ratio)) else float("nan")
        out.append({"tensor": tensor, "quantity": quantity, "layer": layer, "agrees": not bool(bad.any()),
                    "largest_ratio": largest, "mismatched": int(bad.sum()), "elements": int(m.size)})
    if "loss" in numpy:
        add("loss", "loss", None, numpy["loss"], keras["loss"], tol["loss"])
    for l in reversed(range(L)):
        if "forward" in numpy:
            add(outputs[l], "forward", l, numpy["forward"][l], keras["activations"][l], tol["forward"][l])
        if "grads" in numpy:
            for i in (2 * l, 2 * l + 1):
                add("d" + names[i], "gradient", l, numpy["grads"][i], keras["grads"][i], tol["grads"][i])
        if "updated" in numpy and "updated" in tol:
            for i in (2 * l, 2 * l + 1):
                add(names[i], "updated", l, numpy["updated"][i], keras["weights_out"][i], tol["updated"][i])
    return out


def locate(ctx, found=None):
    """{"layer", "where", "text"}: where the step first goes wrong, or None when everything agrees.

    A forward output that disagrees: the first such layer from the input (the forward pass runs upwards).
    Else the loss. Else the gradients: the first layer, counted from the output, whose dW or db disagrees
    while every layer above it agrees (the backprop runs downwards; what a wrong layer passes down makes
    the layers below disagree too). Else the update: the layers whose updated weights disagree.
    """
    found = statuses(ctx) if found is None else found
    L = len(ctx["spec"]["activations"])
    bad = lambda quantity, l: any(not s["agrees"] for s in found  # noqa: E731
                                   if s["quantity"] == quantity and s["layer"] == l)
    for l in range(L):
        if bad("forward", l):
            return {"layer": l, "where": "forward", "text": f"the forward pass first goes wrong at layer {l}: its "
                    "output disagrees while every layer below agrees"}
    if any(s["tensor"] == "loss" and not s["agrees"] for s in found):
        return {"layer": None, "where": "loss", "text": "the loss disagrees while every layer's output agrees"}
    for l in reversed(range(L)):
        if bad("gradient", l):
            layers = f"layer {l + 1}" if l == L - 2 else f"layers {l + 1}–{L - 1}"
            above = "" if l == L - 1 else f"; every layer above it ({layers}) agrees"
            return {"layer": l, "where": "backprop", "text": f"the backprop first goes wrong at layer {l}: its "
                    f"gradients disagree{above}"}
    layers = [l for l in range(L) if bad("updated", l)]
    if layers:
        return {"layer": layers[0], "where": "update", "text": f"the update goes wrong at layer{'s' * (len(layers) > 1)} "
                f"{', '.join(map(str, layers))} while every gradient agrees"}
    return None
