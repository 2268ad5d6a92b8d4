"""check_layer(): one hand-written layer against the Keras layer it claims to be, to rounding level.

The layer protocol (README, "Checking a single layer"): `keras_layer` ({"class_name", "config"[, "call"]}),
`layout` (optional axis letters), `get_weights()` / `set_weights(weights)` in the Keras layer's own order
and shapes, `forward(x, training=True)` → out, `backward(dout)` → (dx, grads of the trainable weights),
and `set_noise(mask)` for layers that draw random numbers (Dropout).

One call of each side on the same x and dout, compared in this order: the output, dx, each trainable
weight's gradient, each non-trainable weight after the call. Every element against its own tolerance
(compare/layer_tolerance.py); the first quantity with an element outside it is the first mismatch.
"""
import functools
import time

import numpy as np

from . import layout as layouts, protocol
from .data import refuse_subnormal
from .environment import DTYPES, use_backend
from .errors import InputError, show
from .layer_compare import compare, shape_mismatch
from .rounding import UNBOUNDED, UNIT_ROUNDOFF
from .rules import layers as layer_rules
from .version import SCHEMA_VERSION


def check_layer(layer, x, dout=None, training=True, seed=0, dtype="float64"):
    """Check `layer` (the layer protocol) against its Keras layer on input `x`; return the report as a dict.

    `dout` (default: drawn from U[−1, 1), seeded) is the upstream gradient d loss/d out. `training` is passed
    to both sides' forward. Raises InputError for bad input or a broken protocol; a numerical mismatch is
    `report["ok"] is False`, with `first_mismatch` and `diagnosis`.
    """
    t0 = time.perf_counter()
    if dtype not in DTYPES:
        raise InputError(f"dtype {show(dtype)}; expected one of {', '.join(DTYPES)}")
    if not isinstance(training, bool):
        raise InputError(f"training must be True or False; received {show(training)}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be an integer >= 0; received {show(seed)}")
    spec = read_spec(layer)
    entry = layer_rules.get(spec["class_name"])
    why = entry["refuse"](spec["config"])
    if why:
        raise InputError(f"{spec['class_name']}: {why}")
    x = _input(x, entry, dtype)
    letters, keras_letters = _layouts(spec, entry, x)
    use_backend("tensorflow")
    from keras_impl import layer as keras_layer
    xk = np.ascontiguousarray(layouts.move(x, letters, keras_letters))
    try:
        config = {"seed": int(seed), **spec["config"]} if entry["noise"] else spec["config"]
        klayer = keras_layer.build(spec["class_name"], config, xk.shape, dtype, reuse=not entry["noise"])
        out_shape_k = keras_layer.output_shape(klayer, xk.shape)
    except (TypeError, ValueError) as exc:
        raise InputError(f"keras.layers.{spec['class_name']}(**{show(spec['config'], 200)}) on input {xk.shape} "
                         f"(Keras's layout {keras_letters}): Keras refuses it: {str(exc).splitlines()[0]}") from None
    specs = keras_layer.weight_specs(klayer)
    weights = _weights(layer, specs, dtype)
    klayer.set_weights(weights)
    if entry["integer_input"]:
        _ids_in_range(x, klayer)
    out_letters = _out_letters(entry, letters, len(out_shape_k))
    keras_out_letters = _out_letters(entry, keras_letters, len(out_shape_k))
    out_shape = tuple(np.empty(out_shape_k, bool).transpose(layouts.axes(keras_out_letters, out_letters)).shape) \
        if out_letters != keras_out_letters else out_shape_k
    dout = _dout(dout, out_shape, seed, dtype)
    dout_k = np.ascontiguousarray(layouts.move(dout, out_letters, keras_out_letters))
    noise = None
    if entry["noise"] and training:
        noise = keras_layer.noise_mask(klayer, xk.shape, dtype)
        set_noise = protocol.attribute(layer, "set_noise", None, "the layer")
        if not callable(set_noise):
            raise InputError(f"{spec['class_name']} draws random numbers in training: the layer needs set_noise(mask) "
                             "to receive the mask the check gives both sides")
    drawn = keras_layer.seed_state(klayer)
    try:
        k_out, k_dx, k_grads, k_after = keras_layer.forward_and_vjp(klayer, xk, dout_k, training, spec["call"])
    except Exception as exc:  # Keras refusing the call's arguments (keras_layer["call"]) or the input
        raise InputError(f"keras.layers.{spec['class_name']} called on input {xk.shape} with {show(spec['call'])}: "
                         f"Keras refuses it: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    mask = None if noise is None else layouts.move(noise, keras_letters, letters)
    rounds = [_numpy_side(layer, x, dout, training, entry, specs, out_shape, weights, mask, dtype) for _ in range(2)]
    n_out, n_dx, n_grads, n_after = rounds[0]
    k_out = layouts.move(k_out, keras_out_letters, out_letters)
    k_dx = layouts.move(k_dx, keras_letters, letters)
    from .layer_tolerance import bounds
    u = UNIT_ROUNDOFF[dtype]
    numpy_out_k = layouts.move(n_out, out_letters, keras_out_letters) if n_out.shape == out_shape else None
    keras_layer.set_seed_state(klayer, drawn)  # the bound's evaluation draws the same mask
    tol = bounds(entry, klayer, xk, dout_k, weights, layouts.move(k_out, out_letters, keras_out_letters),
                 numpy_out_k, training, u, spec["call"])
    tol["output"] = layouts.move(tol["output"], keras_out_letters, out_letters)
    tol["input_gradient"] = layouts.move(tol["input_gradient"], keras_letters, letters)
    keras_side = (k_out, k_dx, k_grads, k_after, weights)
    pairs, skipped = _pairs(entry, specs, rounds[0], keras_side, tol)
    compared, first = _compared(pairs)
    if first is None and not skipped and not _same(rounds[0], rounds[1]):  # the same call again, from set_weights
        again, first = _compared(_pairs(entry, specs, rounds[1], keras_side, tol)[0])
        if first is not None:
            first = dict(first, call=2)
    coarse = coarse_tensors(compared, dtype) if entry["may_be_coarse"] and first is None else []
    report = {
        "schema_version": SCHEMA_VERSION, "ok": first is None and not coarse,
        "verdict": "FAIL" if first is not None else "inconclusive" if coarse else "OK", "coarse": coarse,
        "layer": {"class_name": spec["class_name"], "config": spec["config"], "call": spec["call"]},
        "layout": {"input": letters, "output": out_letters, "keras_input": keras_letters},
        "input_shape": list(x.shape), "output_shape": list(out_shape), "dtype": dtype, "training": training,
        "seed": int(seed), "compared": compared, "not_compared": skipped, "first_mismatch": _first(first), "diagnosis": None, "causes": [],
        "notes": entry["notes"](spec["config"], training), "versions": _versions(),
        "weights": [{"name": s[0], "shape": list(s[1]), "trainable": s[2]} for s in specs],
    }
    if first is not None and first.get("call") == 2:
        report["causes"] = ["second_call_differs"]
        report["diagnosis"] = ("the first call agrees and the same call again does not: the layer keeps something "
                               "from one call to the next (gradients accumulated and never reset, a cache, weights "
                               "changed by forward or backward, a set_weights that is not applied)")
    elif first is not None:
        from .diagnosis.layers import diagnose
        ctx = {"spec": spec, "entry": entry, "klayer": klayer, "xk": xk, "x": x, "dout_k": dout_k, "weights": weights,
               "specs": specs, "dtype": dtype, "training": training, "noise": noise, "u": u,
               "letters": (letters, keras_letters, out_letters, keras_out_letters),
               "sides": {name: (mine, keras_value, t) for _, name, mine, keras_value, t in pairs}}
        report["causes"], report["diagnosis"] = diagnose(first, ctx)
    report["timing"] = {"total_s": time.perf_counter() - t0}
    return report


def _pairs(entry, specs, numpy_side, keras_side, tol):
    """(quantity, name, numpy, keras, tolerance) in the order compared: output, dx, each trainable weight's
    gradient, each weight after the call (a trainable one must be as it was: a layer's call does not train it;
    a non-trainable one as Keras's after its call: moving statistics); and the names left out because the
    output's shape differs from Keras's (the numpy side's backward was not called: its dout would not fit)."""
    n_out, n_dx, n_grads, n_after = numpy_side
    k_out, k_dx, k_grads, k_after, before = keras_side
    trainable = [s for s in specs if s[2]]
    later = ([] if entry["integer_input"] else [("input_gradient", "dx", n_dx, k_dx, tol["input_gradient"])])
    later += [("weight_gradient", f"d{s[0]}", n, k, t)
              for s, n, k, t in zip(trainable, n_grads or [None] * len(trainable), k_grads, tol["weights"])]
    states = iter(tol["state"])
    for i, s in enumerate(specs):
        kept = before[i] if s[2] else k_after[i]
        later.append(("state", s[0], None if n_after is None else n_after[i], kept,
                      0.0 if s[2] else next(states)))
    first = [("output", "out", n_out, k_out, tol["output"])]
    if n_grads is None:
        return first, [name for _, name, *_ in later]
    return first + later, []


def _same(one, two):
    """Whether two calls returned bit-identical arrays (then the second agrees with Keras as the first did)."""
    def arrays(result):
        out, dx, grads, after = result
        return [out, dx] + list(grads or []) + list(after or [])
    a, b = arrays(one), arrays(two)
    return len(a) == len(b) and all((x is None and y is None) or (x is not None and y is not None and x.shape == y.shape
                                                                   and np.array_equal(x, y)) for x, y in zip(a, b))


# A recurrent layer's gradients through gates saturated near ±1 keep few digits (1 − h² of an h within 1e-12 of 1
# is known to 1e-4 relative), and past bounds_recurrent.FORMS_BYTES the bound compounds with absolute values. Where
# a tensor's largest tolerance exceeds this fraction of its largest value, a mistake that large could pass: the
# verdict is "inconclusive", never OK.
COARSE = {"float64": 1e-6, "float32": 1e-2}


def coarse_tensors(compared, dtype):
    """[{name, resolution}] for the tensors (not the weights after the call) whose largest tolerance exceeds
    COARSE of their largest value."""
    found = []
    for c in compared:
        if c["quantity"] != "state" and c.get("largest_tolerance") == UNBOUNDED:
            found.append({"name": c["name"], "resolution": float("inf")})  # an overflowed bound: even of zeros
        elif c["quantity"] != "state" and c.get("largest_value") and c.get("largest_tolerance") is not None:
            resolution = c["largest_tolerance"] / c["largest_value"]
            if resolution > COARSE[dtype]:
                found.append({"name": c["name"], "resolution": resolution})
    return found


def _compared(pairs):
    """Each pair's comparison, and the first with a mismatched element (None when every element agrees)."""
    compared, first = [], None
    for quantity, name, mine, keras_value, t in pairs:
        result = shape_mismatch(quantity, name, mine, keras_value) or compare(quantity, name, mine, keras_value, t)
        compared.append(result)
        if result["mismatched"] and first is None:
            first = result
    return compared, first


def read_spec(layer):
    """The layer's keras_layer declaration and layout, checked: {class_name, config, call, layout}."""
    declared = protocol.attribute(layer, "keras_layer", None, "the layer")
    if declared is None:
        raise InputError(f"expected a layer (an object with keras_layer, get_weights, set_weights, forward and "
                         f"backward); received a {type(layer).__name__}: {show(layer)}")
    if not isinstance(declared, dict) or not isinstance(declared.get("class_name"), str):
        raise InputError(f"the layer's keras_layer must be a dict like {{'class_name': 'Conv2D', 'config': "
                         f"{{'filters': 4, 'kernel_size': 3}}}}; received {show(declared)}")
    extra = set(declared) - {"class_name", "config", "call"}
    if extra:
        raise InputError(f"keras_layer has unknown keys {sorted(extra)}; expected class_name, config and call")
    config, call = declared.get("config", {}) or {}, declared.get("call", {}) or {}
    for name, value in (("config", config), ("call", call)):
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise InputError(f"keras_layer[{name!r}] must be a dict of keyword arguments; received {show(value)}")
    if "dtype" in config:
        raise InputError("keras_layer['config'] must not set dtype: the check's --dtype sets both sides'")
    return {"class_name": declared["class_name"], "config": dict(config), "call": dict(call),
            "layout": protocol.attribute(layer, "layout", None, "the layer")}


def _input(x, entry, dtype):
    if entry["integer_input"]:
        arr = np.asarray(x)
        if arr.dtype == object or not np.issubdtype(arr.dtype, np.integer):
            raise InputError(f"the input of this layer is integer ids; received dtype {arr.dtype}")
        if arr.ndim == 0:
            raise InputError("the input is a single id; expected an array of ids with a batch axis first")
        return arr.astype(np.int64)
    arr = protocol.as_float_array(x, "the input x").astype(dtype, copy=False)  # the layer gets copies of it
    if arr.ndim == 0:
        raise InputError("the input x is a single number; expected an array with a batch axis first")
    if not np.isfinite(arr).all():
        raise InputError(f"the input x holds {int((~np.isfinite(arr)).sum())} values that are not finite; "
                         "expected finite numbers")
    refuse_subnormal(arr, "the input x", dtype)
    return arr


def _layouts(spec, entry, x):
    declared = spec["layout"]
    if entry["layouts"] is None:  # acts on the array as given
        letters = layouts.checked(declared, x.ndim) if declared is not None else None
        return letters, letters
    keras_letters = entry["layouts"].get(x.ndim)
    if keras_letters is None:
        shapes = " or ".join(f"{n} axes ({v})" for n, v in entry["layouts"].items())
        raise InputError(f"{spec['class_name']} takes an input of {shapes}; received shape {x.shape}")
    letters = keras_letters if declared is None else layouts.checked(declared, x.ndim)
    layouts.axes(letters, keras_letters)
    return letters, keras_letters


def _out_letters(entry, letters, ndim):
    if letters is None or entry["output_letters"] is None:
        return None
    out = entry["output_letters"](letters)
    return out if len(out) == ndim else None


def _weights(layer, specs, dtype, when=""):
    get_weights = protocol.attribute(layer, "get_weights", None, "the layer")
    if not callable(get_weights):
        raise InputError("the layer has no get_weights(); the layer protocol needs get_weights(), "
                         "set_weights(weights), forward(x, training=True) and backward(dout)")
    got = protocol.call(f"layer.get_weights(){' ' + when if when else ''}", get_weights)
    if not isinstance(got, (list, tuple)) or len(got) != len(specs):
        expected = ", ".join(f"{name} {shape}" for name, shape, _ in specs) or "none"
        raise InputError(f"layer.get_weights() returned {described(got)}; expected a list of {len(specs)} arrays "
                         f"in the Keras layer's order: {expected}")
    weights = []
    for (name, shape, _), w in zip(specs, got):
        arr = protocol.as_float_array(w, f"weight {name}").astype(dtype)
        if arr.shape != shape:
            raise InputError(f"layer.get_weights(): {name} has shape {arr.shape}; Keras's {name} is {shape} "
                             "(give the weights in the Keras layer's own shapes; keras_impl/convert.py maps the courses' ones)")
        if not np.isfinite(arr).all():
            raise InputError(f"layer.get_weights(): {name} holds values that are not finite")
        refuse_subnormal(arr, f"weight {name}", dtype)
        weights.append(np.ascontiguousarray(arr))
    return weights


def _dout(dout, shape, seed, dtype):
    """The upstream gradient: the caller's, checked, or U[−1, 1) drawn from seed (a quarter of the cost of
    normal values, which took 0.2 × a Conv2D's Keras call in benchmarks/layer_conv2d.py)."""
    if dout is None:
        return (np.random.default_rng(seed).random(shape) * 2 - 1).astype(dtype, copy=False)
    arr = protocol.as_float_array(dout, "dout").astype(dtype)
    if arr.shape != tuple(shape):
        raise InputError(f"dout has shape {arr.shape}; expected the output's shape {tuple(shape)}")
    if not np.isfinite(arr).all():
        raise InputError("dout holds values that are not finite; expected finite numbers")
    refuse_subnormal(arr, "dout", dtype)
    return arr


def _numpy_side(layer, x, dout, training, entry, specs, out_shape, weights, mask, dtype):
    """One call of the numpy layer, from its weights (handed back with set_weights, in the check's precision)
    and the check's mask: forward then backward, each on read-only copies; then its weights after the call.
    An output shaped unlike Keras's ends it there (its dout would not fit): (out, None, None, None)."""
    methods = {name: protocol.attribute(layer, name, None, "the layer") for name in ("forward", "backward", "set_weights")}
    missing = [f"{name}()" for name, fn in methods.items() if not callable(fn)]
    if missing:
        raise InputError(f"the layer has no {', '.join(missing)}; the layer protocol needs get_weights(), "
                         "set_weights(weights), forward(x, training=True) and backward(dout)")
    protocol.call("layer.set_weights(weights)", methods["set_weights"], [w.copy() for w in weights])
    if mask is not None:
        protocol.call("layer.set_noise(mask)", protocol.attribute(layer, "set_noise", None, "the layer"),
                      protocol.read_only(mask.copy()))
    returned = protocol.call("layer.forward(x)", lambda: methods["forward"](protocol.read_only(x.copy()), training=training))
    out = np.array(protocol.as_float_array(returned, "layer.forward(x)'s output"))  # a copy: backward may reuse it
    if out.ndim == 0 or out.shape != tuple(out_shape):
        return out, None, None, None
    result = protocol.call("layer.backward(dout)", methods["backward"], protocol.read_only(dout.copy()))
    if isinstance(returned, np.ndarray) and not np.array_equal(returned, out, equal_nan=True):
        raise InputError("layer.backward(dout) changed the array layer.forward(x) returned; compute into a new array "
                         "(s = s * (1 - s), not s *= 1 - s) or return a copy from forward")
    n_trainable = sum(1 for s in specs if s[2])
    if not isinstance(result, (tuple, list)) or len(result) != 2 or not isinstance(result[1], (list, tuple)) \
            or len(result[1]) != n_trainable:
        raise InputError(f"layer.backward(dout) returned {described(result)}; expected (dx, grads) with grads a list of "
                         f"{n_trainable} arrays, one per trainable weight")
    dx = None if entry["integer_input"] or result[0] is None else protocol.as_float_array(result[0], "dx")
    if dx is None and not entry["integer_input"]:
        raise InputError("layer.backward(dout) returned dx None; the input is not integer, so dx is expected")
    grads = [protocol.as_float_array(g, f"the gradient of {s[0]}") for s, g in zip([s for s in specs if s[2]], result[1])]
    return out, dx, grads, _weights(layer, specs, dtype, "after the call")


def _ids_in_range(ids, layer):
    """Embedding ids must lie in [0, input_dim): TensorFlow refuses larger ones, and wraps negative ones."""
    size = int(layer.input_dim)
    bad = ids[(ids < 0) | (ids >= size)]
    if bad.size:
        raise InputError(f"the input holds the id {int(bad.flat[0])} ({bad.size} ids outside the table); expected ids "
                         f"in [0, {size}), input_dim = {size}")


def described(value):
    """What a user's method returned, in one line: 'an array (5, 3)', 'a list of 1: [array (3, 4)]'."""
    if isinstance(value, np.ndarray):
        return f"an array {value.shape}"
    if isinstance(value, (list, tuple)):
        items = ", ".join(f"array {v.shape}" if isinstance(v, np.ndarray) else
                          (f"{type(v).__name__} of {len(v)}" if isinstance(v, (list, tuple)) else show(v, 30))
                          for v in value[:6])
        return f"a {type(value).__name__} of {len(value)}: [{items}{', …' if len(value) > 6 else ''}]"
    return show(value)


def _first(result):
    if result is None:
        return None
    keys = ("quantity", "name", "index", "numpy", "keras", "abs_diff", "tolerance", "mismatched", "size",
            "numpy_shape", "keras_shape", "call")
    return {k: result.get(k) for k in keys if k in result}


@functools.cache  # read once per process (importlib.metadata costs about 1 ms)
def _versions():
    import keras
    import tensorflow as tf
    from .version import DISTRIBUTION, tool_version
    return {DISTRIBUTION: tool_version(), "keras": keras.__version__, "tensorflow": tf.__version__,
            "numpy": np.__version__}
