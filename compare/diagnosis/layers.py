"""The diagnosis of a failing single-layer check: known mistakes, each a prediction tested against the numbers.

Each hypothesis computes what the numpy side would have returned had it made one mistake, mostly by running
the Keras layer itself with the mistake planted (a flipped kernel, padding on the other side, an average
pool's VJP for a max pool's, dout kept only at an id's last occurrence), else from Keras's values. A cause is
named when its prediction fits every element of the failing quantity and differs from Keras's values
(compare.diagnosis.explains); none that fits gives "no known cause fits". A shape that differs from Keras's
is explained from the shapes alone (transposed, not summed over the batch, another padding or stride).
"""
import numpy as np

from .. import layout as layouts
from . import NO_CAUSE, explains
from .rerun import rerun


def diagnose(first, ctx):
    """([cause ids], sentence) for the first mismatch `first` of a single-layer check; ctx: compare/layer_check.py."""
    if first.get("numpy_shape") is not None or first.get("index") is None and first.get("keras_shape"):
        return _shape(first, ctx)
    name = first["name"]
    mine, keras, tol = ctx["sides"][name]
    found = [(cause, text) for cause, text, predicted in hypotheses(ctx, name)
             if predicted.get(name) is not None and np.shape(predicted[name]) == np.shape(mine)
             and explains([mine], [predicted[name]], [keras], [tol], ctx["u"])]
    if not found:
        return [], NO_CAUSE
    found = list(dict(found).items())  # one cause, once (a cause may be tried in two forms)
    return [cause for cause, _ in found], "; ".join(text for _, text in found)


def hypotheses(ctx, name):
    """(cause, text, {name: predicted}) for every mistake that applies to this layer class."""
    sides = ctx["sides"]
    keras = {k: v[1] for k, v in sides.items()}
    yield "sign", f"{name} has the opposite sign of Keras's", {name: -keras[name]}
    n = ctx["x"].shape[0]
    if name.startswith("d") and name != "dx" and n > 1:
        halved = " (at batch 2 this is also what halving it gives)" if n == 2 else ""
        yield ("batch_mean", f"{name} is divided by the batch size {n}{halved}: the layer's VJP sums over the batch "
               "(a mean belongs to the loss, whose dout already carries it)", {name: keras[name] / n})
    cls = ctx["spec"]["class_name"]
    for family, make in FAMILIES.items():
        if cls in family:
            yield from make(ctx, name, keras)


# --- convolution -------------------------------------------------------------------------------------------
def _conv(ctx, name, keras):
    kernel = ctx["weights"][0]
    spatial = tuple(range(kernel.ndim - 2))
    flipped = rerun(ctx, weights=[np.flip(kernel, spatial)] + ctx["weights"][1:])
    flipped["dkernel"] = np.flip(flipped["dkernel"], spatial)
    yield ("flipped_kernel", "the kernel is flipped: the numpy side computes a convolution, Keras a cross-correlation "
           "(out[i] = Σ x[i + k]·w[k], no flip)", flipped)
    if ctx["spec"]["config"].get("padding") == "same":
        other = _other_side_padding(ctx)
        if other is not None:
            yield ("same_padding_side", "'same' padding puts the odd extra row or column at the start; Keras (and "
                   "TensorFlow) put it at the end (bottom, right)", other)


def _other_side_padding(ctx):
    """Keras's layer with padding 'valid' on x padded by hand, the odd extra at the start; None where every axis
    pads evenly (the same as Keras's)."""
    layer, x = ctx["klayer"], ctx["xk"]
    pads, odd = [(0, 0)], False
    for size, k, s, d in zip(x.shape[1:-1], layer.kernel_size, layer.strides, layer.dilation_rate):
        out = -(-size // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
        pads.append((total - total // 2, total // 2))
        odd |= total % 2 == 1
    if not odd:
        return None
    pads.append((0, 0))
    padded = np.pad(x, pads)
    result = rerun(ctx, x=padded, config={**ctx["spec"]["config"], "padding": "valid"})
    if "dx" in result:
        letters, keras_letters = ctx["letters"][:2]
        crop = tuple(slice(a, a + n) for (a, _), n in zip(pads, x.shape))
        result["dx"] = layouts.move(layouts.move(result["dx"], letters, keras_letters)[crop], keras_letters, letters)
    return result


# --- pooling ------------------------------------------------------------------------------------------------
def _max_pool(ctx, name, keras):
    config = {k: v for k, v in ctx["spec"]["config"].items() if k in ("pool_size", "strides", "padding")}
    average = rerun(ctx, config=config, class_name="AveragePooling2D", weights=[])
    area = float(np.prod(ctx["klayer"].pool_size))
    yield ("pool_every_element", "the max-pool gradient goes to every element of the window, not only to its "
           "maximum", {"dx": average["dx"] * area})
    yield "pool_averaged", "the max-pool gradient is shared out equally over the window", {"dx": average["dx"]}


def _average_pool(ctx, name, keras):
    layer = ctx["klayer"]
    area = float(np.prod(layer.pool_size if hasattr(layer, "pool_size") else ctx["xk"].shape[1:-1]))
    yield ("pool_sum", f"the window is summed, not averaged (missing the division by {area:g})",
           {"out": keras["out"] * area, "dx": keras.get("dx", 0) * area})


# --- dropout -------------------------------------------------------------------------------------------------
def _dropout(ctx, name, keras):
    mask = ctx["noise"]
    if mask is None:
        return
    letters, keras_letters = ctx["letters"][:2]
    mask = layouts.move(mask, keras_letters, letters)
    keep = 1.0 - float(ctx["spec"]["config"].get("rate", 0.0))
    dout = layouts.move(ctx["dout_k"], ctx["letters"][3], ctx["letters"][2])
    yield ("dropout_no_mask", "the dropout gradient is not masked: dx = dout/(1 − rate) everywhere, where Keras passes "
           "it only through the kept elements", {"dx": dout / keep})
    yield ("dropout_not_inverted", f"dropout is not inverted: Keras scales the kept elements by 1/(1 − rate) = "
           f"{1 / keep:.6g} in training", {"out": keras["out"] * keep, "dx": keras["dx"] * keep})
    yield ("dropout_unmasked_unscaled", "the dropout gradient is dout itself, neither masked nor scaled",
           {"dx": dout})


# --- embedding ------------------------------------------------------------------------------------------------
def _embedding(ctx, name, keras):
    ids = ctx["xk"].reshape(-1)
    for which, order in (("last", ids[::-1]), ("first", ids)):
        _, at = np.unique(order, return_index=True)
        keep = np.zeros(ids.size, bool)
        keep[(ids.size - 1 - at) if which == "last" else at] = True
        dout = ctx["dout_k"].reshape(ids.size, -1) * keep[:, None]
        yield (f"embedding_overwrite_{which}", f"repeated ids overwrite their gradient row (the {which} occurrence "
               "wins) instead of accumulating it (np.add.at)", rerun(ctx, dout=dout.reshape(ctx["dout_k"].shape)))


# --- activations ----------------------------------------------------------------------------------------------
def _activation(ctx, name, keras):
    entry_name = ctx["entry"]["activation"](ctx["spec"]["config"])
    letters = ctx["letters"][0]
    x = ctx["xk"] if letters is None else layouts.move(ctx["xk"], ctx["letters"][1], letters)
    dout = layouts.move(ctx["dout_k"], ctx["letters"][3], ctx["letters"][2])
    a = keras["out"]
    if entry_name == "relu":
        yield ("relu_grad_at_zero", "relu′(0) is taken as 1; Keras takes 0 (the gradient does not pass where x = 0)",
               {"dx": keras["dx"] + np.where(x == 0, dout, 0.0)})
    if entry_name == "softmax":
        yield ("softmax_diagonal", "the softmax backward keeps only the Jacobian's diagonal a(1 − a); the full "
               "Jacobian gives dx = a ⊙ (dout − Σ dout·a)", {"dx": a * (1 - a) * dout})
    slopes = {"tanh": lambda: 1 - x * x, "sigmoid": lambda: x * (1 - x)}
    if entry_name in slopes:
        yield (f"{entry_name}_grad_of_input", f"{entry_name}′ is computed from the input x where its formula takes "
               f"the output a = {entry_name}(x)", {"dx": slopes[entry_name]() * dout})


# --- normalization --------------------------------------------------------------------------------------------
def _normalization(ctx, name, keras):
    config, entry = ctx["spec"]["config"], ctx["entry"]
    xk = ctx["xk"]
    stats = entry["stats_axes"](xk.ndim)
    m = int(np.prod([xk.shape[a] for a in stats]))
    if config.get("epsilon", 1e-3) != 1e-5:
        yield ("norm_epsilon", "ε = 1e-5 (PyTorch's default) where Keras's layer has ε = "
               f"{config.get('epsilon', 1e-3):g}", rerun(ctx, config={**config, "epsilon": 1e-5}))
    batch = ctx["training"] or ctx["spec"]["class_name"] == "LayerNormalization"
    if batch and m > 1:
        mu, v = xk.mean(axis=stats, keepdims=True), xk.var(axis=stats, keepdims=True)
        names = [w.name for w in ctx["klayer"].weights]
        w = dict(zip(names, ctx["weights"]))
        gamma, beta = w.get("gamma", 1.0), w.get("beta", 0.0)
        eps = float(config.get("epsilon", 1e-3))
        unbiased = v * m / (m - 1)
        letters = ctx["letters"]
        out = layouts.move((xk - mu) / np.sqrt(unbiased + eps) * gamma + beta, letters[3], letters[2])
        predicted = {"out": out}
        if "moving_variance" in w:
            momentum = float(config.get("momentum", 0.99))
            predicted["moving_variance"] = (w["moving_variance"] * momentum
                                            + unbiased.reshape(w["moving_variance"].shape) * (1 - momentum))
        yield ("norm_unbiased_variance", f"the variance is the unbiased one (divided by m − 1 = {m - 1}); Keras "
               f"divides by m = {m}", predicted)
        mean_dout = np.mean(ctx["dout_k"] * gamma, axis=stats, keepdims=True) / np.sqrt(v + eps)
        yield ("norm_no_mean_path", "the gradient leaves out the path through the mean (dx lacks −γ·mean(dout)/√(v + ε))",
               {"dx": keras["dx"] + layouts.move(np.broadcast_to(mean_dout, xk.shape), letters[1], letters[0])})
    if "moving_mean" in [w.name for w in ctx["klayer"].weights] and ctx["training"]:
        momentum = float(config.get("momentum", 0.99))
        mu, v = xk.mean(axis=stats), xk.var(axis=stats)
        old = dict(zip([w.name for w in ctx["klayer"].weights], ctx["weights"]))
        yield ("norm_momentum_swapped", f"the moving statistics weight the batch by momentum = {momentum:g} and the "
               f"old value by 1 − momentum (PyTorch's convention); Keras keeps momentum·moving + (1 − momentum)·batch",
               {"moving_mean": old["moving_mean"] * (1 - momentum) + mu * momentum,
                "moving_variance": old["moving_variance"] * (1 - momentum) + v * momentum})
    if ctx["spec"]["class_name"] == "BatchNormalization":
        other = "batch statistics in inference" if not ctx["training"] else "the moving statistics in training"
        flipped = dict(ctx, training=not ctx["training"])
        yield ("norm_wrong_mode", f"the layer uses {other}", rerun(flipped))


# --- flatten and reshape -----------------------------------------------------------------------------------------
def _reshape(ctx, name, keras):
    x = ctx["x"]
    n = x.shape[0]
    dout = layouts.move(ctx["dout_k"], ctx["letters"][3], ctx["letters"][2])
    yield ("flatten_order", "the array is laid out in column-major (Fortran) order, batch axis included, where Keras "
           "keeps row-major (C) order", {"out": x.reshape(keras["out"].shape, order="F"),
                                         "dx": dout.reshape(x.shape, order="F")})
    per_sample = (n,) + tuple(keras["out"].shape[1:])
    yield ("flatten_order", "each sample is laid out in column-major (Fortran) order where Keras keeps row-major (C) "
           "order", {"out": np.stack([row.reshape(per_sample[1:], order="F") for row in x]) if n else keras["out"],
                     "dx": np.stack([row.reshape(x.shape[1:], order="F") for row in dout]) if n else keras.get("dx")})


def _recurrent(ctx, name, keras):
    from .recurrent import hypotheses as recurrent_hypotheses
    yield from recurrent_hypotheses(ctx, name, keras)


def _attention(ctx, name, keras):
    from .attention import hypotheses as attention_hypotheses
    yield from attention_hypotheses(ctx, name, keras)


FAMILIES = {("SimpleRNN", "LSTM", "GRU"): _recurrent, ("MultiHeadAttention",): _attention,
            ("Flatten", "Reshape"): _reshape, ("BatchNormalization", "LayerNormalization"): _normalization, ("Conv1D", "Conv2D"): _conv, ("MaxPooling2D",): _max_pool,
            ("AveragePooling2D", "GlobalAveragePooling2D"): _average_pool, ("Dropout",): _dropout,
            ("Embedding",): _embedding, ("ReLU", "Softmax", "Activation"): _activation}


# --- shapes ---------------------------------------------------------------------------------------------------
def _shape(first, ctx):
    mine, theirs, name = first.get("numpy_shape"), first["keras_shape"], first["name"]
    if mine is None:
        return [], f"{name}: the numpy side returned None where Keras's is shaped {tuple(theirs)}"
    what = f"{name} is shaped {tuple(mine)} where Keras's is {tuple(theirs)}"
    if len(mine) == len(theirs) >= 2 and list(mine) == list(reversed(theirs)):
        return ["transposed"], f"{what}: transposed (Keras's kernels are (inputs, units); keras_impl/convert.py maps them)"
    if name == "dx" and list(mine) == list(ctx["sides"]["out"][1].shape):
        return ["not_reshaped_back"], f"{what}: the output's shape: the gradient was not reshaped back to x's shape"
    if name == "out" and len(mine) == 1 and mine[0] == ctx["x"].size and len(theirs) > 1:
        return ["batch_folded"], f"{what}: the batch axis is folded in with the features (reshape(-1) for reshape(N, -1))"
    if list(mine[1:]) == list(theirs) and mine[0] == ctx["x"].shape[0]:
        return ["not_summed_over_batch"], f"{what}: one gradient per sample, not summed over the batch (axis 0)"
    if name == "out" and ctx["spec"]["class_name"] in SHAPED:
        for change in _alternatives(ctx):
            if _out_shape(ctx, change) == _keras_order(ctx, mine):
                text = ", ".join(f"{k}={v!r}" for k, v in change.items())
                return ["output_shape_arithmetic"], (f"{what}: it is the output shape of {text} (the padding or stride "
                                                     "arithmetic differs from Keras's)")
    return [], f"{what}: {NO_CAUSE}"


SHAPED = ("Conv1D", "Conv2D", "MaxPooling2D", "AveragePooling2D")


def _alternatives(ctx):
    config = ctx["spec"]["config"]
    other = "valid" if config.get("padding", "valid") == "same" else "same"
    yield {"padding": other}
    yield {"strides": 1}
    yield {"strides": 1, "padding": other}


def _out_shape(ctx, change):
    from keras_impl import layer as keras_layer
    try:
        layer = keras_layer.build(ctx["spec"]["class_name"], {**ctx["spec"]["config"], **change}, ctx["xk"].shape,
                                  ctx["dtype"])
        return keras_layer.output_shape(layer, ctx["xk"].shape)
    except (TypeError, ValueError):
        return None


def _keras_order(ctx, shape):
    out_letters, keras_out_letters = ctx["letters"][2:]
    if out_letters is None or out_letters == keras_out_letters:
        return tuple(shape)
    return tuple(np.empty(shape, bool).transpose(layouts.axes(out_letters, keras_out_letters)).shape)
