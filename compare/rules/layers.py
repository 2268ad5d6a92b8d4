"""What compare knows about each Keras layer class a single-layer check accepts (python -m compare layer).

Each entry:
  layouts        {rank: Keras's axis letters for the input}, e.g. {4: "NHWC"}; None: the layer acts on the
                 array as given (elementwise, Flatten, Reshape), so a user's layout is never moved for it
  output_letters (letters) → the output's letters: what the input's letters become
  bound          how an element's tolerance is computed (compare/layer_tolerance.py):
                 "multilinear"  linear in each argument (dense, convolution, average pooling, dropout with its
                                mask, embedding): |error| ≤ γ_n · (the layer on |x|, |W|, |dout|) per side
                 "rearrangement" each output element is one input element, moved in row-major order (Flatten,
                                Reshape): exact, and dx is dout moved back, exactly
                 "max_pool"     the output is a selection (exact); dx sums dout over the windows an element
                                is the maximum of: γ_n · (the VJP on x with |dout|)
                 "activation"   the activation's own rules (compare/rules/activations.py)
                 "normalization" first-order propagation through the statistics (compare/layer_tolerance.py)
                 "recurrent"    SimpleRNN, LSTM, GRU: compare/bounds_recurrent.py
                 "attention"    MultiHeadAttention as self-attention: compare/bounds_attention.py
  terms          (layer, x_shape, out_shape) → {"output": n, "input_gradient": n, "weights": [n per trainable
                 weight]}: the most terms (products or roundings) that one element of each sums, read from the
                 built Keras layer's own attributes
  exact          (config, weights, x, ctx) → the layer's training-mode forward pass in 50-digit arithmetic with
                 Keras's semantics, the exact referee's (compare/exact_layers.py; an activation layer's is its
                 activation's own exact rule)
  work           (config, x_shape, out_shape, params) → the products of 50-digit numbers the exact forward pass
                 takes (a transcendental counts TRANSCENDENTAL): the exact referee's estimate of its cost
                 (compare/exact_stack.py products, measured in docs/referees.md)
  activation     (config) → the activation's name, for bound "activation"
  integer_input  the input is integer ids (Embedding): no dx
  stats_axes     (ndim) → the axes a normalization layer's statistics are taken over
  may_be_coarse  rounding can move a tensor by a large part of its values (recurrent gradients through gates
                 saturated near ±1): a tensor whose largest tolerance passes COARSE of its largest value makes the
                 verdict "inconclusive", never OK
  noise          the layer draws random numbers in training (Dropout): the check reads Keras's draw and gives
                 the same mask to the numpy side (set_noise)
  refuse         (config) → why a configuration is not checkable, or None
  notes          (config, training) → Keras's own details a numpy side must reproduce
"""
import math

from .. import exact_layers as X
from ..errors import show
from . import lookup


def _prod(values):
    return math.prod(int(v) for v in values)


def _same(letters):
    return letters


def _linear_activation(config):
    activation = config.get("activation")
    if activation not in (None, "linear"):
        return (f"activation={show(activation)} inside the layer is not checked here; set activation=None and "
                f"check the activation as a layer of its own ({{'class_name': 'Activation', 'config': "
                f"{{'activation': {show(activation)}}}}})")
    return None


def _dense_terms(layer, x_shape, out_shape):
    rows = _prod(x_shape[:-1])  # every position of every sample adds to dW
    return {"output": x_shape[-1] + 1, "input_gradient": layer.units,
            "weights": [rows] * len(layer.trainable_weights)}


def _conv_terms(layer, x_shape, out_shape):
    window = _prod(layer.kernel_size)
    positions = _prod(out_shape[:-1])  # batch × output positions
    return {"output": window * x_shape[-1] + 1, "input_gradient": window * layer.filters,
            "weights": [positions] * len(layer.trainable_weights)}


def _conv_refuse(config):
    if config.get("groups", 1) != 1:
        return f"groups={show(config.get('groups'))}: only groups=1 is checked"
    if config.get("data_format") not in (None, "channels_last"):
        return ("data_format is for the Keras layer, which runs channels-last here; declare the numpy layer's own "
                "axes with `layout` (e.g. layout = 'NCHW') instead")
    return _linear_activation(config)


def _pool_terms(layer, x_shape, out_shape):
    """A window's sum, then ·(1/k) (two roundings: the reciprocal and the product, or one division); dx sums
    the overlapping windows' dout/k."""
    return {"output": _prod(layer.pool_size) + 2, "input_gradient": _overlaps(layer) + 2, "weights": []}


def _overlaps(layer):
    """How many windows one input element can fall in: Π ceil(pool / stride)."""
    return _prod(-(-p // s) for p, s in zip(layer.pool_size, layer.strides))


def _global_pool_terms(layer, x_shape, out_shape):
    return {"output": _prod(x_shape[1:-1]) + 2, "input_gradient": 2, "weights": []}


def _exact_terms(layer, x_shape, out_shape):
    return {"output": 0, "input_gradient": 0, "weights": []}


def _dropout_terms(layer, x_shape, out_shape):
    return {"output": 3, "input_gradient": 3, "weights": []}  # 1/(1 − rate), x·scale, ·mask (Keras or not)


def _embedding_terms(layer, x_shape, out_shape):
    return {"output": 0, "input_gradient": 0, "weights": [_prod(x_shape)]}  # one id may repeat N·T times


def _batch_norm_refuse(config):
    if config.get("axis", -1) not in (-1,):
        return (f"axis={show(config.get('axis'))}: the check normalises the last axis (Keras's default); declare the "
                "numpy layer's own axes with `layout` (e.g. layout = 'NCHW') instead")
    if config.get("renorm") or config.get("synchronized"):
        return "renorm and synchronized are not checked"
    return None


def _layer_norm_refuse(config):
    if config.get("axis", -1) not in (-1, [-1], (-1,)):
        return f"axis={show(config.get('axis'))}: only the last axis (-1) is checked"
    if config.get("rms_scaling"):
        return "rms_scaling is not checked"
    return None


def _batch_norm_notes(config, training):
    eps, momentum = config.get("epsilon", 1e-3), config.get("momentum", 0.99)
    if not training:
        return [f"BatchNormalization in inference normalises with the moving statistics: (x − moving_mean)/"
                f"√(moving_variance + ε), ε = {eps:g}"]
    return [f"Keras's BatchNormalization: ε = {eps:g} (not 1e-5), the batch's biased variance (divided by m, not "
            f"m − 1), and in training moving = moving·{momentum:g} + batch·(1 − {momentum:g}), the biased variance "
            "going into moving_variance too"]


def _layer_norm_notes(config, training):
    return [f"Keras's LayerNormalization: ε = {config.get('epsilon', 1e-3):g} (PyTorch's is 1e-5), the biased "
            "variance over the last axis"]


def _recurrent_refuse(config):
    for key in ("return_state", "stateful", "go_backwards"):
        if config.get(key):
            return f"{key}=True is not checked"
    for key in ("dropout", "recurrent_dropout"):
        if config.get(key, 0):
            return f"{key}={show(config.get(key))}: recurrent dropout is not checked (its masks are Keras's own)"
    if config.get("activation", "tanh") != "tanh" or config.get("recurrent_activation", "sigmoid") != "sigmoid":
        return "only the default activations (tanh, and sigmoid for the gates) are checked"
    if config.get("use_bias", True) is False:
        return "use_bias=False is not checked; give the layer a bias (zeros if the numpy side has none)"
    return None


def _recurrent_notes(class_name):
    """(config, training) → the notes of Keras's `class_name` (SimpleRNN, LSTM or GRU): the config a user gives
    may name none of the class's own keys, so the class is bound here."""
    def notes(config, training):
        common = ("Keras's recurrent layers start from h0 = 0 (and c0 = 0), and return only the last step's h unless "
                  "return_sequences=True")
        if class_name == "LSTM":
            return [common, "Keras's LSTM holds its gates in the order (i, f, c, o) along the last axis of kernel (D, 4H), "
                    "recurrent_kernel (H, 4H) and bias (4H,); CS231n's order is (i, f, o, g) "
                    "(keras_impl/convert.py lstm_gates_to_keras maps it); the gates' activation is sigmoid (not "
                    "hard_sigmoid, Keras 2's default before 2.3); c_t = f·c_{t−1} + i·tanh(z_c), h_t = o·tanh(c_t)"]
        if class_name == "GRU":
            after = config.get("reset_after", True)
            how = ("reset_after=True (Keras's default): hh = tanh(x W_h + b_in,h + r·(h_{t−1} U_h + b_rec,h)), the bias "
                   "is (2, 3H): an input row and a recurrent row" if after else
                   "reset_after=False: hh = tanh(x W_h + (r·h_{t−1}) U_h + b_h), the bias is (3H,)")
            return [common, f"Keras's GRU: gates (z, r, h) along the last axis; {how}; h_t = z·h_{{t−1}} + (1 − z)·hh "
                    "(z keeps the old state; some texts write (1 − z)·h_{t−1} + z·hh); the gates' activation is sigmoid"]
        return [common, "Keras's SimpleRNN: h_t = tanh(x_t·kernel + bias + h_{t−1}·recurrent_kernel), kernel (D, H)"]
    return notes


def _attention_refuse(config):
    if config.get("dropout", 0):
        return f"dropout={show(config.get('dropout'))}: attention dropout is not checked (its mask is Keras's own)"
    for key in ("value_dim", "output_shape", "attention_axes", "sliding_window"):
        if config.get(key) is not None:
            return f"{key}={show(config.get(key))} is not checked; only num_heads, key_dim and use_bias=True"
    if config.get("use_gate"):
        return "use_gate=True is not checked; only num_heads, key_dim and use_bias=True"
    if config.get("use_bias", True) is False:
        return "use_bias=False is not checked; give the layer its biases (zeros if the numpy side has none)"
    if config.get("key_dim") == 1 and config.get("num_heads", 1) != 1:
        return (f"key_dim=1 with num_heads={show(config.get('num_heads'))} is not checked: Keras 3.15's ops.add "
                "(TensorFlow backend) squeezes the (num_heads, 1) bias and adds it along the sequence axis whenever "
                "the sequence length equals num_heads (tf.nn.bias_add, NCHW), so Keras's own values are wrong there")
    return None


def _attention_notes(config, training):
    key_dim = config.get("key_dim")
    scale = ""
    if isinstance(key_dim, int) and key_dim > 0:
        exact, rounded = 1 / math.sqrt(key_dim), X.attention_scale(key_dim)
        scale = f" (key_dim={key_dim}: {rounded!r}, not {exact!r})" if rounded != exact else ""
    return ["Keras's MultiHeadAttention, called as self-attention layer(x, x, x): q, k, v = x·W + b per head, kernels "
            "(D, heads, key_dim), the output kernel (heads, key_dim, D); the logits q·kᵀ are scaled by 1/√key_dim "
            "after the dot product, and that scale is rounded to float32 even in float64" + scale + "; softmax over "
            "the keys (the last axis)",
            "use_causal_mask=True: query t sees keys j ≤ t (lower-triangular, the diagonal included); a masked logit "
            "is set to a large negative number, −0.7·3.38953e38, not −inf, so its softmax weight is exactly 0"]


def _pool_notes(config, training):
    if config.get("padding") == "same":
        return ["Keras's 'same' padding puts the extra row and column at the end (bottom, right)"]
    return []


def _conv_notes(config, training):
    notes = ["Keras's convolution is a cross-correlation (the kernel is not flipped); its kernel is "
             "(kernel..., in_channels, filters)"]
    return notes + _pool_notes(config, training)


def _dropout_notes(config, training):
    if not training:
        return ["Dropout in inference is the identity"]
    return ["Keras's Dropout is inverted: kept elements are scaled by 1/(1 − rate) in training, the identity in "
            "inference; the mask is Keras's own draw, given to the numpy side with set_noise"]


def _relu_refuse(config):
    changed = {k: config[k] for k in ("max_value", "negative_slope", "threshold")
               if config.get(k) not in (None, 0, 0.0)}
    return f"ReLU with {changed} is not checked; only the plain max(x, 0)" if changed else None


def _softmax_refuse(config):
    axis = config.get("axis", -1)
    return None if axis == -1 else f"Softmax axis={show(axis)}: only the last axis (-1) is checked"


def _activation_refuse(config):
    from . import activations
    name = config.get("activation")
    if not isinstance(name, str) or name not in activations.ACTIVATIONS:
        return f"activation {show(name)}; expected one of {', '.join(sorted(activations.ACTIVATIONS))}"
    return None


TRANSCENDENTAL = 10  # an exp, tanh or square root in 50 digits costs about ten products (docs/referees.md)


def _weights_work(config, x_shape, out_shape, params):
    """Weights applied at every position of the input: Π(input shape but its last axis) × their number; a layer
    without weights, its output's size."""
    return _prod(x_shape[:-1]) * params if params else _prod(out_shape)


def _read_work(config, x_shape, out_shape, params):
    return _prod(out_shape)  # rows read from a table (Embedding)


def _transcendental_work(config, x_shape, out_shape, params):
    return _prod(out_shape) * TRANSCENDENTAL  # an activation, a normalization


def _pool_work(config, x_shape, out_shape, params):
    pool = config.get("pool_size", 2)
    return _prod(out_shape) * _prod(pool if isinstance(pool, (list, tuple)) else (pool,) * (len(x_shape) - 2))


def _global_pool_work(config, x_shape, out_shape, params):
    return _prod(x_shape)


def _recurrent_work(gates):
    def work(config, x_shape, out_shape, params):  # the matmuls, then each gate's function at every step
        return _prod(x_shape[:-1]) * (params + gates * config.get("units", 1) * TRANSCENDENTAL)
    return work


def _attention_work(config, x_shape, out_shape, params):
    """The projections, then logits, softmax and weighted sums: N·heads·T²·(2·key_dim + a transcendental)."""
    return (_prod(x_shape[:-1]) * params
            + x_shape[0] * config["num_heads"] * x_shape[1] ** 2 * (2 * config["key_dim"] + TRANSCENDENTAL))


def _none(*_):
    return None


def _no_notes(*_):
    return []


def entry(layouts, bound, terms, exact=None, output_letters=_same, refuse=_none, notes=_no_notes, activation=None,
          integer_input=False, noise=False, stats_axes=None, may_be_coarse=False, work=_weights_work):
    if bound == "activation":  # the activation's own exact rule
        exact, work = X.activation(activation), _transcendental_work
    return {"layouts": layouts, "bound": bound, "terms": terms, "exact": exact, "work": work,
            "output_letters": output_letters,
            "refuse": refuse, "notes": notes, "activation": activation, "integer_input": integer_input,
            "noise": noise, "stats_axes": stats_axes, "may_be_coarse": may_be_coarse}


LAYERS = {
    "Dense": entry({2: "NF", 3: "NTF"}, "multilinear", _dense_terms, X.dense, refuse=_linear_activation),
    "Conv1D": entry({3: "NTF"}, "multilinear", _conv_terms, X.conv, refuse=_conv_refuse, notes=_conv_notes),
    "Conv2D": entry({4: "NHWC"}, "multilinear", _conv_terms, X.conv, refuse=_conv_refuse, notes=_conv_notes),
    "MaxPooling2D": entry({4: "NHWC"}, "max_pool", _pool_terms, X.max_pool, refuse=_conv_refuse, notes=_pool_notes,
                          work=_pool_work),
    "AveragePooling2D": entry({4: "NHWC"}, "multilinear", _pool_terms, X.average_pool, refuse=_conv_refuse,
                              notes=_pool_notes, work=_pool_work),
    "GlobalAveragePooling2D": entry({4: "NHWC"}, "multilinear", _global_pool_terms, X.global_average_pool,
                                    output_letters=lambda letters: letters.replace("H", "").replace("W", ""),
                                    refuse=_conv_refuse, work=_global_pool_work),
    "Flatten": entry(None, "rearrangement", _exact_terms, X.flatten, output_letters=lambda letters: letters[0] + "F"),
    "Reshape": entry(None, "rearrangement", _exact_terms, X.reshape, output_letters=None),
    "Dropout": entry(None, "multilinear", _dropout_terms, X.dropout, notes=_dropout_notes, noise=True),
    "Embedding": entry({2: "NT"}, "multilinear", _embedding_terms, X.embedding,
                       output_letters=lambda letters: letters + "F", integer_input=True, work=_read_work),
    "BatchNormalization": entry({2: "NF", 3: "NTF", 4: "NHWC"}, "normalization", _exact_terms, X.batch_normalization,
                                refuse=_batch_norm_refuse, notes=_batch_norm_notes,
                                stats_axes=lambda ndim: tuple(range(ndim - 1)), work=_transcendental_work),
    "LayerNormalization": entry({2: "NF", 3: "NTF", 4: "NHWC"}, "normalization", _exact_terms,
                                X.layer_normalization, refuse=_layer_norm_refuse,
                                notes=_layer_norm_notes, stats_axes=lambda ndim: (ndim - 1,), work=_transcendental_work),
    **{kind: entry({3: "NTF"}, "recurrent", _exact_terms, X.recurrent(kind), may_be_coarse=True,
                   refuse=_recurrent_refuse, notes=_recurrent_notes(kind), work=_recurrent_work(gates))
       for kind, gates in (("SimpleRNN", 1), ("LSTM", 4), ("GRU", 3))},
    "MultiHeadAttention": entry({3: "NTF"}, "attention", _exact_terms, X.attention, refuse=_attention_refuse,
                                notes=_attention_notes, work=_attention_work),
    "ReLU": entry(None, "activation", _exact_terms, refuse=_relu_refuse, activation=lambda config: "relu"),
    "Softmax": entry(None, "activation", _exact_terms, refuse=_softmax_refuse, activation=lambda config: "softmax"),
    "Activation": entry(None, "activation", _exact_terms, refuse=_activation_refuse,
                        activation=lambda config: config["activation"]),
}


def get(class_name):
    """The rules of Keras layer class `class_name`; an InputError naming the accepted ones for another."""
    return lookup(LAYERS, "layer class", class_name)


def last_activation(layers):
    """The activation a network's last layer applies (a Softmax, ReLU or Activation layer), else None: Keras takes
    a cross-entropy after a sigmoid or softmax from that layer's input (numpy_impl/losses.py takes_logits)."""
    last = layers[-1]
    rule = LAYERS.get(last["class_name"])
    return rule["activation"](last.get("config", {})) if rule and rule["bound"] == "activation" else None
