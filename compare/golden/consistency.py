"""A golden file's consistency with itself: every recorded value recomputed from the file's own earlier
values, within a rounding bound."""
import numpy as np

from numpy_impl import ops
from numpy_impl.losses import EPSILON, LOSSES, REDUCTIONS, scaled, smooth_labels, takes_logits
from numpy_impl.ops import ACTIVATIONS
from numpy_impl.optimizers import OPTIMIZERS

from ..rounding import UNIT_ROUNDOFF, gamma
from ..rules import activations as activation_rules, losses as loss_rules
from ..tolerance import step_tolerances

# Values per vectorised group of steps in the consistency checks: a step holds its parameters and its
# batch's values of every layer; 2**19 of them are 4 MiB of float64 per stacked array (compare.chunks
# budgets its chunks the same way: 8 copies in 32 MiB).
GROUP_VALUES = 2 ** 19


def consistency_problem(files, config):
    """The first recorded value that disagrees with the file's own earlier values, as a sentence, or None.

    Each step's z and a, layer by layer (dense_bound, activation_bound), its loss (loss_bound) and its
    gradients (backprop, bounded by compare.tolerance.step_tolerances) are recomputed from the step's
    recorded weights, rows of X and y, and the values recorded before them; the weights after each
    step from the optimizer applied to the recorded weights and gradients (update_problem). Where
    several disagree, the one Keras computed first is named: the earliest step, and in it z0, a0,
    z1, ..., the loss, the gradients, then the updated weights (they belong to the step that made them).
    """
    with np.errstate(all="ignore"):
        found = [p for check in (step_problem, update_problem) if (p := check(files, config))]
    return min(found)[2] if found else None


def _precision(config):
    """(u, tiny, largest) of the precision Keras computed in: unit roundoff, smallest normal and largest number."""
    info = np.finfo(config["computed_dtype"])
    return UNIT_ROUNDOFF[config["computed_dtype"]], float(info.tiny), float(info.max)


def _outside(recorded, recomputed, bound, largest, in_precision):
    """Where a recorded value is not accounted for by its recomputation r (in float64) and the bound E on
    their difference. `in_precision`: the same recomputation in the precision Keras computed in (r itself
    in float64), which shows where that precision overflows.

    Accounted for: |recorded − r| ≤ E with E finite, or recorded = r. Where r is not a number within the
    computed precision's range (|r| > largest, ∞ or NaN) anything is. A NaN or an infinity is also
    accounted for where the recomputation in Keras's precision is one, or where E is out of that range
    (intermediate values may have overflowed); a finite value must still be within a finite E, or
    equal to r: an infinite bound accepts nothing else.
    """
    ok = ((np.abs(recorded - recomputed) <= bound) & np.isfinite(bound)) | (recorded == recomputed)
    ok |= ~np.isfinite(recorded) & (~(bound <= largest) | ~np.isfinite(in_precision))
    return (np.abs(recomputed) <= largest) & ~ok


def _groups(offsets, sizes):
    """(steps, positions) for the steps of each batch size B: `steps` (K,) ascending, `positions` (K, B)
    their rows' positions in the recorded z and a; K·(parameters + B·Σ sizes) ≤ GROUP_VALUES."""
    parameters = sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))
    batch = np.diff(offsets)
    for size in np.unique(batch):
        steps = np.flatnonzero(batch == size)
        per = max(1, GROUP_VALUES // (parameters + int(size) * sum(sizes)))
        for i in range(0, len(steps), per):
            s = steps[i:i + per]
            yield s, offsets[s][:, None] + np.arange(size)


def _first(bad, steps, order, element, recorded, recomputed, bound, how, name):
    """(step, order, sentence) for the first element flagged in `bad` (its first axis: the steps), or None.
    element(k) names element k of the recorded array."""
    if not bad.any():
        return None
    k = tuple(int(x) for x in np.argwhere(bad)[0])
    step, bound = int(steps[k[0]]), np.broadcast_to(bound, bad.shape)
    return (step, order, f"{element(k)} (step {step}) is {float(recorded[k])!r}, but {how} {float(recomputed[k])!r} "
                         f"(allowed difference {float(bound[k]):.3g}): {name} disagrees with the values it was "
                         "computed from")


# float32 rounding is 2²⁹ times float64's: a deviation of more than 2¹⁰ float64 bounds is float32's, surely.
FLOAT32_MARGIN = 2.0 ** 10


def precision_problem(files, config):
    """A sentence where the file claims a precision its values belie, else None: a claim of float32 loosens
    every tolerance of a check against the file, so it must show in the values.

    dtype float32: Keras's values are float32, so every recorded weight, gradient, pre-activation, output
    and loss must be exact in float32. computed_dtype float32 with dtype float64 (jax, torch): some
    pre-activation of the first step must be further from its float64 recomputation than FLOAT32_MARGIN
    float64 bounds (dense_bound), or all of them exact in float32; a float64-accurate recording is not one
    computed in float32.
    """
    spec, f = config["spec"], files
    L = len(spec["activations"])
    if config["dtype"] == "float32":
        for name in [f"{k}{i}" for k in "wg" for i in range(2 * L)] + [f"{k}{l}" for k in "za" for l in range(L)] \
                + ["loss"]:
            a = f[name][np.isfinite(f[name])]
            if not np.array_equal(a.astype(np.float32).astype(np.float64), a):
                return (f"config dtype is float32, but array {name} holds values that are not float32 numbers "
                        f"(a float32 recording holds nothing else)")
        return None
    if config["computed_dtype"] != "float32":
        return None
    hi = int(f["row_offsets"][1])
    a_prev, W, b = f["X"][f["rows"][:hi]][None], f["w0"][:1], f["w1"][:1]
    z = f["z0"][:hi][None]
    u64, tiny = UNIT_ROUNDOFF["float64"], np.finfo(np.float64).tiny
    deviation = np.abs(z - (a_prev @ np.swapaxes(W, -1, -2) + b[:, None, :]))
    exact32 = np.array_equal(z.astype(np.float32).astype(np.float64), z)
    if exact32 or np.any(deviation > FLOAT32_MARGIN * dense_bound(a_prev, W, b, u64, False, tiny)):
        return None
    return ("config computed_dtype is float32, but the first step's pre-activations z0 are float64-accurate "
            "(a recording computed in float32 differs from them by float32 rounding)")


def dense_bound(a_prev, W, b, u, rounded_inputs, tiny):
    """E, a bound on |z − r| between the z Keras computed from a_prev, W, b and r = a_prev·Wᵀ + b
    recomputed in float64 from the same recorded values (stacks: a_prev (K, B, n), W (K, m, n), b (K, m)):

        E = 2·γ_{n+1}·(|a_prev|·|W|ᵀ + |b|) + (n + 1)·tiny,   γ_k = k·u / (1 − k·u)

    γ_{n+1} bounds one side's rounding of n products and their sum with the bias, in any order; the
    factor 2 covers both sides (this recomputation's u is never larger than Keras's); (n + 1)·tiny lets
    each term be flushed to zero below the smallest normal number, as TensorFlow and XLA do on the CPU.
    rounded_inputs (Keras computed in float32): Keras first rounds a_prev, W and b to float32, which
    moves the exact result by |fl(a)·fl(W)ᵀ − a·Wᵀ| ≤ ((1 + u)² − 1)·|a|·|W|ᵀ and |fl(b) − b| ≤ u·|b|:

        E += (2u + u²)·|a_prev|·|W|ᵀ + u·|b|

    and its own rounding of the rounded inputs, γ_{n+1}·(1 + u)²·(...), stays within 2·γ_{n+1}·(...):
    this recomputation's float64 rounding is below γ_{n+1}·(1 − 2u − u²)·(...) for u = 2⁻²⁴.
    """
    n = W.shape[-1]
    P = np.abs(a_prev) @ np.abs(np.swapaxes(W, -1, -2))
    abs_b = np.abs(b)[:, None, :]
    E = 2 * gamma(n + 1, u) * (P + abs_b) + (n + 1) * tiny
    if rounded_inputs:
        E += (2 * u + u * u) * P + u * abs_b
    return E


def activation_bound(name, z, f, u, tiny):
    """E, a bound on |a − f(z)| between the a Keras computed from the recorded z and f(z) recomputed from
    it in float64: the activation's output_bound (compare/rules/activations.py), sized by the recomputed
    f(z), never by the recorded a, which could be anything."""
    return activation_rules.get(name)["output_bound"](z, f, u, tiny)


def loss_bound(spec, loss_input, u, computed_dtype, x, y, loss_value):
    """E = 2·E(L) per step for stacked batches x (K, B, k) (ŷ, or the logits z where Keras takes them) and
    targets y after label smoothing: the loss's bounds (compare/rules/losses.py) with the same x on both sides (E(x) = 0). The
    targets carry E(y) = 2u|y| + u·s where label smoothing s rounds them, plus u|y| where Keras rounds
    them to float32. A declared convention scales it by c (rules.losses.scaled), the rounding of c·L sized
    by loss_value, the recomputed loss."""
    smoothing = spec["loss_config"].get("label_smoothing", 0.0)
    e_y = (2 * u * np.abs(y) + u * smoothing if smoothing else 0.0) + \
        (u * np.abs(y) if computed_dtype == "float32" else 0.0)
    bounds = loss_rules.get(spec["loss"])["bounds"]
    e_loss, delta, e_delta = bounds(loss_input, y, x, np.zeros_like(x), u, EPSILON, e_y, None)
    c = loss_rules.convention_factor(spec["loss_config"], spec["loss_scale"], x.shape[-2])
    if c != 1:
        roundings = loss_rules.scale_roundings(c, spec["loss_scale"], u)
        e_loss = loss_rules.scaled(c, roundings, u, e_loss, delta, e_delta, loss_value)[0]
    return 2 * np.asarray(e_loss)


def recompute(spec, loss_input, X, y, weights, zs, outputs):
    """Each value of a stack of steps recomputed from the recorded values it was computed from, in the
    dtype of the arguments: z_l = a_{l−1}·W_lᵀ + b_l (a_{−1} = X), f_l(z_l) (numpy_impl.ops), the loss
    and δ = dL/dx of each step (numpy_impl.losses on the recorded x and y, times the convention's c), and the
    gradients (backprop)."""
    names = spec["activations"]
    inputs = [X] + outputs[:-1]
    rs = [a @ np.swapaxes(W, -1, -2) + b[:, None, :] for a, W, b in zip(inputs, weights[0::2], weights[1::2])]
    fs = [ACTIVATIONS[name][0](z) for name, z in zip(names, zs)]
    on_output, on_logits = LOSSES[spec["loss"]]
    x = zs[-1] if loss_input == "z" else outputs[-1]
    c = spec["loss_scale"] * REDUCTIONS[spec["loss_config"].get("reduction", "sum_over_batch_size")](x.shape[-2])
    per_step = [scaled(*(on_logits if loss_input else on_output)(x[k], y[k]), c) for k in range(len(x))]
    loss, delta = np.array([v for v, _ in per_step]), np.stack([d for _, d in per_step])
    return {"z": rs, "a": fs, "loss": loss, "grads": backprop(weights, names, X, outputs, delta, loss_input == "z")}


def backprop(weights, activations, X, outputs, delta, logits):
    """Keras's gradients [dW0, db0, dW1, ...] recomputed from the recorded forward values (stacks, the
    steps first), given δ = dL/dx at the loss's input x (the last z when `logits`, else the output):

        dz_L = δ where the loss takes the logits, else f'(z_L) ⊙ δ (numpy_impl.ops.activation_backward;
        softmax: a ⊙ (δ − Σ δ·a));  dW_l = dz_lᵀ·a_{l−1},  db_l = Σ_rows dz_l,  δ_{l−1} = dz_l·W_l
    """
    grads = []
    for l in reversed(range(len(activations))):
        dz = delta if logits and l == len(activations) - 1 else ops.activation_backward(activations[l], outputs[l],
                                                                                         delta)
        a_prev = outputs[l - 1] if l else X
        grads[:0] = [np.swapaxes(dz, -1, -2) @ a_prev, dz.sum(axis=-2)]
        if l:
            delta = dz @ weights[2 * l]
    return grads


def step_problem(files, config):
    """(step, order, sentence) for the earliest z_l, a_l, loss or gradient that disagrees with its
    recomputation from the step's recorded weights, its rows of X and y, and the values recorded before
    it (recompute), or None. The bounds: dense_bound, activation_bound, loss_bound, and for the gradients
    tolerance.step_tolerances, with Keras's rounding of X and the weights to float32 where it computes
    in float32 (as compare.checking does). There the values are also recomputed in float32, to show where
    that precision overflows (_outside)."""
    spec, f, backend, computed = config["spec"], files, config["backend"], config["computed_dtype"]
    u, tiny, largest = _precision(config)
    names, L = spec["activations"], len(spec["activations"])
    loss_input = takes_logits(spec["loss"], spec["loss_config"].get("from_logits", False), names[-1], backend)
    source = f"{'z' if loss_input == 'z' else 'a'}{L - 1}"
    labels = [f"{'W' if i % 2 == 0 else 'b'}{i // 2}" for i in range(2 * L)]
    found = []
    for steps, pos in _groups(f["row_offsets"], spec["sizes"]):
        rows = f["rows"][pos]
        X, weights = f["X"][rows], [f[f"w{i}"][steps] for i in range(2 * L)]
        zs, outputs = [f[f"z{l}"][pos] for l in range(L)], [f[f"a{l}"][pos] for l in range(L)]
        y = smooth_labels(f["y"][rows], spec["loss"], spec["loss_config"].get("label_smoothing", 0.0))
        in_float64 = in_precision = recompute(spec, loss_input, X, y, weights, zs, outputs)
        if computed == "float32":  # only to see where float32 overflows
            single = [[a.astype(np.float32) for a in arrays] for arrays in ([X, y], weights, zs, outputs)]
            in_precision = recompute(spec, loss_input, *single[0], *single[1:])

        def flag(recorded, key, i, bound, order, element, how, name):
            r, r_c = (in_float64[key], in_precision[key]) if i is None else (in_float64[key][i], in_precision[key][i])
            found.append(_first(_outside(recorded, r, bound, largest, r_c), steps, order, element, recorded, r, bound,
                                how, name))

        for l, name in enumerate(names):
            row = lambda k, key, l=l: f"{key}{l}[{pos[k[0], k[1]]}, {k[2]}]"  # noqa: E731
            E = dense_bound(X if l == 0 else outputs[l - 1], weights[2 * l], weights[2 * l + 1], u,
                            computed == "float32", tiny)
            flag(zs[l], "z", l, E, 3 * l, lambda k: row(k, "z"),
                 f"the file's own {'X' if l == 0 else f'a{l - 1}'} and w{2 * l}, w{2 * l + 1} give", f"z{l}")
            flag(outputs[l], "a", l, activation_bound(name, zs[l], in_float64["a"][l], u, tiny), 3 * l + 1,
                 lambda k: row(k, "a"), f"{name}(z{l}) is", f"a{l}")
        E = loss_bound(spec, loss_input, u, computed, zs[-1] if loss_input == "z" else outputs[-1], y,
                       in_float64["loss"]) + tiny
        flag(f["loss"][steps], "loss", None, E, 3 * L, lambda k: f"loss[{steps[k[0]]}]",
             f"{spec['loss']} of the file's own {source} and y is", "loss")
        rounded = {"x_error": u * np.abs(X)} if computed == "float32" else {}
        gap = [u * np.abs(w) for w in weights] if computed == "float32" else None
        tol = step_tolerances(weights, names, X, y, zs, outputs, u, gap, numpy_forward=outputs, loss=spec["loss"],
                              loss_config=spec["loss_config"], backend=backend, loss_scale=spec["loss_scale"],
                              loss_value=in_float64["loss"], **rounded)["grads"]
        for i in range(2 * L):
            flag(f[f"g{i}"][steps], "grads", i, tol[i] + tiny, 3 * L + 1 + i,
                 lambda k, i=i: f"g{i}[{steps[k[0]]}]{list(k[1:])}",
                 f"d{labels[i]} recomputed from the file's own forward values and loss is", f"g{i}")
    found = [x for x in found if x]
    return min(found) if found else None


def update_problem(files, config):
    """(step, order, sentence) for the earliest weights w_{t+1} that disagree with the file's optimizer
    (numpy_impl.optimizers, with the file's options and learning rate) applied to the recorded w_t and
    g_t by more than the update's rounding bound plus tiny (a result flushed to zero): the bound of
    compare.update_tolerance.UpdateTolerance with a zero gradient tolerance, both sides updating from
    the same g, sized by the recomputed weights (never by the recorded ones, which could be anything).
    Every optimizer here is elementwise, so all weight arrays are updated as one flat vector per step,
    and plain SGD, which keeps no state, for every step at once. Where every update is reproduced bit
    for bit (TensorFlow in float64, mostly), the bound is not needed."""
    from ..update_tolerance import UpdateTolerance
    spec, f, steps = config["spec"], files, config["steps"]
    u, tiny, largest = _precision(config)
    n, lr, name, options = 2 * len(spec["activations"]), spec["learning_rate"], spec["optimizer"], \
        spec["optimizer_config"]
    shapes = [f[f"w{i}"].shape[1:] for i in range(n)]
    W = np.concatenate([f[f"w{i}"].reshape(steps + 1, -1) for i in range(n)], axis=1)  # (steps + 1, P)
    G = np.concatenate([f[f"g{i}"].reshape(steps, -1) for i in range(n)], axis=1)      # (steps, P)
    tracker = UpdateTolerance(name, options, lr, u)
    if not tracker.keeps_state:
        chunks = [(np.arange(steps), W[:-1], G, W[1:])]
    else:
        chunks = [(np.array([t]), W[t:t + 1], G[t:t + 1], W[t + 1:t + 2]) for t in range(steps)]
    optimizer = OPTIMIZERS[name](lr, **options)
    if all(np.array_equal(optimizer.apply([w_in], [g])[0], w_out, equal_nan=True) for _, w_in, g, w_out in chunks):
        return None
    optimizer = OPTIMIZERS[name](lr, **options)
    in_precision = OPTIMIZERS[name](lr, dtype=np.float32, **options) if config["computed_dtype"] == "float32" \
        else None
    for t, w_in, g, w_out in chunks:
        expected = optimizer.apply([w_in], [g])[0]
        expected_c = expected if in_precision is None else in_precision.apply([w_in.astype(np.float32)],
                                                                                 [g.astype(np.float32)])[0]
        bound = tracker.step([w_in], [g], [0.0], [expected], lr)[0] + tiny
        hit = _first(_outside(w_out, expected, bound, largest, expected_c), t, 10 ** 6,
                     lambda k: "w{}[{}]{}".format(*_unflatten(k[1], shapes, t[k[0]] + 1)), w_out, expected, bound,
                     f"{name} applied to the file's own weights and gradients of that step gives",
                     "the recorded update")
        if hit:
            return hit
    return None


def _unflatten(index, shapes, step):
    """(array number, step, index in it) of element `index` of the arrays of `shapes` laid end to end."""
    for i, shape in enumerate(shapes):
        size = int(np.prod(shape))
        if index < size:
            return i, step, [int(j) for j in np.unravel_index(index, shape)]
        index -= size
    raise IndexError(index)


