"""The Keras layer of a failing single-layer check run again with one mistake planted (other inputs, weights, dout,
config or class): what a hypothesis in compare/diagnosis/layers.py, recurrent.py or attention.py predicts."""
from .. import layout as layouts


def rerun(ctx, x=None, weights=None, dout=None, config=None, class_name=None):
    """The Keras layer (or one built with another config or class) run on the planted values; results named
    as the check names them, in the numpy side's layout."""
    from keras_impl import layer as keras_layer
    spec = ctx["spec"]
    x = ctx["xk"] if x is None else x
    if config is None and class_name is None:
        layer = ctx["klayer"]
    else:
        layer = keras_layer.build(class_name or spec["class_name"], config or spec["config"], x.shape, ctx["dtype"])
    weights = ctx["weights"] if weights is None else weights
    if weights:
        layer.set_weights(weights)
    try:
        out, dx, grads, _ = keras_layer.forward_and_vjp(layer, x, ctx["dout_k"] if dout is None else dout,
                                                        ctx["training"], spec["call"])
    finally:
        if layer is ctx["klayer"]:
            layer.set_weights(ctx["weights"])
    letters, keras_letters, out_letters, keras_out_letters = ctx["letters"]
    named = {"out": layouts.move(out, keras_out_letters, out_letters)}
    if dx is not None:
        named["dx"] = layouts.move(dx, keras_letters, letters)
    named.update({f"d{s[0]}": g for s, g in zip([s for s in ctx["specs"] if s[2]], grads)})
    return named
