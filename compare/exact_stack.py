"""The exact referee of a layered network: the step of Keras's forced training step (keras_impl/stack.py) in
50-digit arithmetic.

As in that step, layer l is evaluated on the numpy side's output of the layers it reads (their float values,
taken exactly), and the gradient flows back through the exact layers, never through the numpy side's. So each
layer's output is compared with the exact value of that layer on the same input, and the gradients with the
exact gradients of Keras's loss through the same points: the quantities the check's tolerances bound (each
side's error ≤ its tolerance / 2). Each layer's formula is its entry's `exact` (compare/rules/layers.py,
compare/exact_layers.py); the loss's and the optimizer's are their own exact rules (compare/exact.py).
"""
import mpmath
import numpy as np

from numpy_impl.losses import smooth_labels, takes_logits

from . import exact_tape as T
from .errors import InputError
from .exact import DIGITS, update
from .exact_layers import add as exact_add, context
from .rules import layers as layer_rules, losses as loss_rules

MAX_PRODUCTS = 25_000_000  # under a minute at the slowest rate measured, 0.53 M a second (docs/referees.md)


def step(layers, configs, sources, specs, weights, X, y, inputs, masks, spec, first_step):
    """{'forward', 'loss', 'grads', 'state', 'updated'} as float64 arrays of the exact values, rounded once.

    layers: the declarations ({"class_name", "config", "call"}); configs: each built Keras layer's full
    config; specs: weight_specs (layer, name, shape, trainable); inputs: the numpy side's layer outputs (what
    Keras's forced step feeds each layer); masks: the Dropout layers' keep-masks, in order."""
    with mpmath.workdps(DIGITS):
        nodes, outs, ctxs = forward(layers, configs, sources, specs, weights, X, inputs, masks)
        loss, seed_at = _loss(spec, layers, sources, outs, inputs, y)
        T.backward([seed_at])
        trainable = [k for k, s in enumerate(specs) if s[3]]
        grads = [nodes[k].grad if nodes[k].grad is not None else T.mp(np.zeros(specs[k][2])) for k in trainable]
        state = [ctxs[s[0]].state.get(s[1], nodes[k].value) for k, s in enumerate(specs) if not s[3]]
        updated = update([nodes[k].value.tolist() for k in trainable], [g.tolist() for g in grads],
                          mpmath.mpf(spec["learning_rate"]), spec["optimizer"], spec["optimizer_config"] or {},
                          first_step)
        return {"forward": [T.floats(o.value) for o in outs], "loss": float(loss),
                "grads": [T.floats(g) for g in grads], "state": [T.floats(s) for s in state],
                "updated": None if updated is None else [T.floats(np.array(u, dtype=object)) for u in updated]}


def forward(layers, configs, sources, specs, weights, X, inputs, masks, training=True):
    """(weight nodes, each layer's output node, each layer's context): layer l on the numpy side's inputs."""
    nodes = [T.const(w) for w in weights]
    per_layer = [{} for _ in layers]
    for (i, name, _, _), n in zip(specs, nodes):
        per_layer[i][name.split("/", 1)[1] if name.split("/")[0].endswith("_cell") else name] = n
    masks, outs, ctxs = iter(masks), [], []
    for i, (d, config, srcs) in enumerate(zip(layers, configs, sources)):
        ins = [T.const(X) if j < 0 else T.forced(inputs[j], outs[j]) for j in srcs]
        rule = None if d["class_name"] == "Add" else layer_rules.get(d["class_name"])
        ctx = context(training, mask=next(masks) if training and rule and rule["noise"] else None, call=d.get("call"))
        outs.append(exact_add(config, per_layer[i], ins, ctx) if rule is None else
                    rule["exact"](config, per_layer[i], ins[0], ctx))
        ctxs.append(ctx)
    return nodes, outs, ctxs


def inference_referee(at, sides, spec):
    """The exact referee of a mismatch in the inference pass after training (LayerStepper.inference): every layer's
    output in inference mode, in 50 digits, on the row of the mismatching element (in inference no layer mixes
    rows), each layer on the numpy side's input as Keras's layer was called."""
    from .referee import side_errors, verdict_of_sides
    m = at.get("mismatch") or {}
    result = {"name": "exact", "digits": DIGITS, "step": at["step"], "phase": "inference"}
    if m.get("quantity") != "forward" or not m.get("index"):
        return dict(result, verdict=None, note="the inference pass stopped without a mismatching element to judge")
    r = slice(m["index"][0], m["index"][0] + 1)
    inputs = [o[r] for o in at["numpy"]["forward"]]
    configs = [layer.get_config() for layer in sides.layers]
    try:
        with mpmath.workdps(DIGITS):
            _, outs, _ = forward(spec["layers"], configs, sides.sources, sides.specs, at["weights"], at["X"][r],
                                 inputs, [], training=False)
            exact = [T.floats(o.value) for o in outs]
    except (ZeroDivisionError, ValueError, OverflowError) as exc:
        return dict(result, verdict=None, note=f"the exact inference pass is undefined here ({type(exc).__name__}: "
                                               f"{exc})")
    half = [np.asarray(t)[r] / 2 if np.ndim(t) else np.asarray(t) / 2 for t in at["tol"]["forward"]]
    wrong = {}
    for side, values in (("numpy", inputs), ("keras", [o[r] for o in at["keras"]["outputs"]])):
        q = {"forward": ({"names": sides.layer_names, "arrays": values}, exact, half)}
        result[side], wrong[side] = side_errors(q, 2.0 ** -53)
    result["verdict"] = verdict_of_sides(wrong["numpy"], wrong["keras"])
    result["note"] = f"the inference pass after training, judged on row {m['index'][0]} (the mismatching element's)"
    return result


def _loss(spec, layers, sources, outs, inputs, y):
    """(Keras's loss, (node, dL/dnode)): a cross-entropy after a softmax is taken on the softmax's input, the
    numpy side's values (Keras's forced step passes them), its gradient flowing into the layer before."""
    config = spec["loss_config"] or {}
    loss_input = takes_logits(spec["loss"], config.get("from_logits", False), layer_rules.last_activation(layers))
    if loss_input == "z":
        j = sources[-1][0]
        at = T.forced(inputs[j], outs[j])
    else:
        at = outs[-1]
    K = at.value.shape[-1]
    rows = at.value.reshape(-1, K)
    smoothing = config.get("label_smoothing", 0.0)
    t = T.mp(np.asarray(y, dtype=float).reshape(-1, K))
    if smoothing:
        t = smooth_labels(t, spec["loss"], mpmath.mpf(smoothing))
    value, d = loss_rules.get(spec["loss"])["exact"](loss_input, rows.tolist(), t.tolist())
    c = loss_rules.convention_factor(config, mpmath.mpf(spec.get("loss_scale", 1.0)), rows.shape[0])
    d = np.array(d, dtype=object).reshape(at.value.shape) * c
    return c * value, (at, d)


def products(layers, sources, x_shape, out_shapes, specs):
    """An estimate of the work of one exact step, in products of 50-digit numbers: X's conversion (its size), each
    layer's registry `work` (compare/rules/layers.py; an Add, its output's size), × 3 for the backward pass.
    Refused past MAX_PRODUCTS (refuse, below)."""
    total = int(np.prod(x_shape))
    for i, (d, srcs, out) in enumerate(zip(layers, sources, out_shapes)):
        x = x_shape if srcs[0] < 0 else out_shapes[srcs[0]]
        params = sum(int(np.prod(s[2])) for s in specs if s[0] == i)
        rule = layer_rules.LAYERS.get(d["class_name"])
        total += int(np.prod(out)) if rule is None else rule["work"](d.get("config", {}), tuple(x), tuple(out), params)
    return 3 * total


def referee(at, sides, spec, first_step):
    """The exact referee's verdict on the step `at` (LayerStepper.current) of a layered network."""
    from .referee import side_errors, unjudged, verdict_of_sides
    numpy, keras, tol = at["numpy"], at["keras"], at.get("tol")
    result = {"name": "exact", "digits": DIGITS, "step": at["step"]}
    if tol is None or "grads" not in numpy:
        return dict(result, verdict=None, note="the mismatch came before the step's values were all computed: "
                                               "nothing for the exact referee to judge")
    configs = [layer.get_config() for layer in sides.layers]
    args = (spec["layers"], configs, sides.sources, sides.specs)
    try:
        ref = {"numpy": step(*args, numpy["weights"], at["X"], at["y"], numpy["forward"], at["masks"], spec,
                             first_step)}
        same = all(np.array_equal(a, b) for a, b in zip(numpy["weights"], keras["weights_in"]))
        ref["keras"] = ref["numpy"] if same else step(*args, keras["weights_in"], at["X"], at["y"], numpy["forward"],
                                                        at["masks"], spec, first_step)
    except (ZeroDivisionError, ValueError, OverflowError) as exc:
        return dict(result, verdict=None, note=f"the exact step is undefined here ({type(exc).__name__}: {exc})")
    tr, fr, names = sides.trainable, sides.frozen, sides.weight_names
    half = lambda ts: [np.asarray(t) / 2 for t in ts]  # noqa: E731  one side's bound
    sides_values = {
        "numpy": {"forward": numpy["forward"], "loss": numpy["loss"], "grads": numpy["grads"],
                  "state": [numpy["updated"][k] for k in fr], "updated": [numpy["updated"][k] for k in tr]},
        "keras": {"forward": keras["outputs"], "loss": keras["loss"], "grads": keras["grads"],
                  "state": [keras["weights_out"][k] for k in fr], "updated": [keras["weights_out"][k] for k in tr]}}
    wrong = {}
    for side, out in sides_values.items():
        r = ref[side]
        q = {"forward": ({"names": sides.layer_names, "arrays": out["forward"]}, r["forward"], half(tol["forward"])),
             "loss": ({"names": ["loss"], "arrays": [np.float64(out["loss"])]}, [np.float64(r["loss"])],
                      [np.float64(tol["loss"] / 2)]),
             "gradient": ({"names": ["d" + names[k] for k in tr], "arrays": out["grads"]}, r["grads"],
                          half(tol["grads"]))}
        if fr:
            q["state"] = ({"names": [names[k] for k in fr], "arrays": out["state"]}, r["state"], half(tol["state"]))
        if r["updated"] is not None:
            q["weights"] = ({"names": [names[k] for k in tr], "arrays": out["updated"]}, r["updated"],
                            half(tol["updated"]))
        result[side], wrong[side] = side_errors(q, 2.0 ** -53)  # layered networks are checked in float64
    result["verdict"] = verdict_of_sides(wrong["numpy"], wrong["keras"])
    if ref["numpy"]["updated"] is None:
        result["note"] = "the exact update needs the optimizer's state: weights after the update were not refereed"
    m = at.get("mismatch") or {}
    return unjudged(result, m.get("quantity"), m.get("phase"))


def refuse(layers, sources, x_shape, out_shapes, specs):
    """An InputError where one exact step would take more than MAX_PRODUCTS products."""
    n = products(layers, sources, x_shape, out_shapes, specs)
    if n > MAX_PRODUCTS:
        raise InputError(f"--referee exact takes up to {MAX_PRODUCTS:,} products of 50-digit numbers a step; this "
                         f"network takes about {n:,} on a batch: use --referee finite_differences")
