"""Who is right? Each side's numbers against a third opinion: exact arithmetic or finite differences.

The referee looks at one step: the first mismatch if there is one, else step 0. A side is wrong
where its error against the referee exceeds its own rounding bound E (half the two-sided
tolerance), or for finite differences, the referee's own error estimate as well.
"""
import numpy as np

from . import exact
from .errors import InputError
from .names import layer_output_names, weight_names

NAMES = ("exact", "finite_differences")
FD_COORDINATES = 200


def verdict_of_sides(numpy_wrong, keras_wrong):
    return {(True, True): "both", (True, False): "numpy", (False, True): "keras"}.get((numpy_wrong, keras_wrong),
                                                                                       "neither")


def unjudged(result, quantity, phase=None):
    """The exact referee's result, its verdict None with a note where it found neither side wrong but the check's
    mismatch is in a quantity it did not judge (found by a review: the updated weights at a later step of Adam,
    whose exact value needs the optimizer's state, had read "neither" for a learning rate off from step 1)."""
    if quantity is None or result.get("verdict") != "neither":
        return result
    judged = {"forward": "forward", "loss": "loss", "gradient": "gradient"}.get(quantity)
    if quantity == "weights":
        judged = {"after": "state", "entering": None}.get(phase, "weights")
    if judged is not None and judged in result.get("numpy", {}):
        return result
    what = f"{quantity} ({phase})" if phase else quantity
    return dict(result, verdict=None,
                note=f"the mismatch is in the {what}, which the exact referee did not judge here (the update needs "
                     "the optimizer's state: step 0, or a stateless optimizer); in what it judged, neither side is wrong")


def side_errors(values, u_side):
    """Per quantity: the side's largest error relative to the tensor and to each element, in ulps, and vs E.

    The reference is the exact value rounded once to float64, up to half its ulp from the exact value, so a side
    is held to E + ½ulp(r) (found by a review: an SGD update that is exactly fl(w − fl(lr·g)) sat 1 ulp from the
    rounded reference, 1.16 of E, and both sides were called wrong). A value that is not the reference's where either
    is not finite is an infinite error, and a ratio to the bound that is not a number (an infinite allowance, a bound
    that is not a number) counts as past the bound: the referee cannot vouch for it (a NaN had read as no error).
    Relative errors and ulps are taken only where the value stands above its bound (an exact 0, a gradient that
    batch normalization's mean takes out, has only rounding): per element, and per tensor for rel_to_tensor.
    `where` is the element with the largest relative error; `where_over_bound` and `error_where_over_bound` the
    element with the largest error over its bound, the one that decides the verdict, and its error."""
    out, wrong = {}, False
    tiny = np.finfo(float).tiny
    for quantity, (mine, ref, bound) in values.items():
        worst = {"abs_error": 0.0, "rel_to_tensor": 0.0, "max_elementwise_rel": 0.0, "max_ulps": 0.0,
                 "error_over_bound": 0.0, "where": None, "where_over_bound": None, "error_where_over_bound": 0.0}
        for name, m, r, e in zip(mine["names"], mine["arrays"], ref, bound):
            m, r, e = np.asarray(m, float), np.asarray(r, float), np.broadcast_to(np.asarray(e, float), np.shape(r))
            with np.errstate(invalid="ignore", over="ignore"):
                same = (m == r) | (np.isnan(m) & np.isnan(r))
                err = np.where(same, 0.0, np.abs(m - r))
                err = np.where(np.isnan(err), np.inf, err)
                spacing = np.spacing(np.abs(r).astype(np.float32 if u_side > 2 ** -30 else np.float64)).astype(float)
                meaningful = (err > 0) & (np.abs(r) > e)
                elementwise = np.where(meaningful, err / np.maximum(np.abs(r), tiny), 0.0)
                over = np.where(err == 0, 0.0, err / np.maximum(e + 0.5 * np.spacing(np.abs(r)), tiny))
                over = np.where(np.isnan(over), np.inf, over)
            largest = float(np.abs(r).max()) if r.size else 0.0
            if r.size and largest > float(e.max()):  # a tensor that stands above its rounding
                worst["rel_to_tensor"] = max(worst["rel_to_tensor"], float(err.max()) / max(largest, tiny))
            at = lambda a: f"{name}{[int(j) for j in np.unravel_index(int(np.argmax(a)), a.shape)]}"  # noqa: E731
            if float(elementwise.max(initial=0)) > worst["max_elementwise_rel"]:
                worst["where"] = at(elementwise)
            if float(over.max(initial=0)) > worst["error_over_bound"]:
                worst["where_over_bound"] = at(over)
                worst["error_where_over_bound"] = float(err.reshape(-1)[int(np.argmax(over))])
            worst["abs_error"] = max(worst["abs_error"], float(err.max(initial=0)))
            worst["max_elementwise_rel"] = max(worst["max_elementwise_rel"], float(elementwise.max(initial=0)))
            worst["max_ulps"] = max(worst["max_ulps"], float(np.where(meaningful, err / np.maximum(
                spacing, tiny), 0.0).max(initial=0)))
            worst["error_over_bound"] = max(worst["error_over_bound"], float(over.max(initial=0)))
        wrong |= worst["error_over_bound"] > 1
        out[quantity] = worst
    return out, wrong


def exact_referee(step, spec, Xb, yb, weights_numpy, weights_keras, numpy_out, keras_out, tol_numpy, tol_keras,
                  u_numpy, u_keras, first_step, backend="tensorflow"):
    """The step in 50-digit arithmetic, from each side's entering weights; errors and verdict."""
    params = sum(w.size for w in weights_numpy)
    if params > exact.MAX_PARAMETERS:
        raise InputError(f"--referee exact handles up to {exact.MAX_PARAMETERS} parameters; this network has "
                         f"{params}: use --referee finite_differences")
    args = dict(activations=spec["activations"], X=Xb, y=yb, learning_rate=spec["learning_rate"],
                loss=spec["loss"], loss_config=spec["loss_config"], optimizer=spec["optimizer"],
                optimizer_config=spec["optimizer_config"], first_step=first_step, backend=backend,
                loss_scale=spec.get("loss_scale", 1.0))
    ref_numpy = _floats(exact.step(weights_numpy, **args))
    same = all(np.array_equal(a, b) for a, b in zip(weights_numpy, weights_keras))
    ref_keras = ref_numpy if same else _floats(exact.step(weights_keras, **args))
    result = {"name": "exact", "digits": exact.DIGITS, "step": step}
    wrong = {}
    for side, out, ref, u, tol in (("numpy", numpy_out, ref_numpy, u_numpy, tol_numpy),
                                   ("keras", keras_out, ref_keras, u_keras, tol_keras)):
        result[side], wrong[side] = side_errors(_quantities(out, ref, tol), u)
    result["verdict"] = verdict_of_sides(wrong["numpy"], wrong["keras"])
    if ref_numpy["updated"] is None:
        result["note"] = "the exact update needs the optimizer's state: weights after the update were not refereed"
    return result


def _quantities(out, ref, tol):
    """{quantity: (side's arrays with names, exact arrays, one-side bounds)}: bound E = tolerance/2."""
    q = {"forward": ({"names": layer_output_names(len(out["forward"])), "arrays": out["forward"]},
                     ref["forward"], [t / 2 for t in tol["forward"]])}
    if out.get("grads") is not None:
        q["loss"] = ({"names": ["loss"], "arrays": [np.float64(out["loss"])]}, [np.float64(ref["loss"])],
                     [np.float64(tol["loss"] / 2)])
        q["gradient"] = ({"names": [f"d{n}" for n in weight_names(len(out["grads"]))], "arrays": out["grads"]},
                         ref["grads"], [t / 2 for t in tol["grads"]])
    if ref["updated"] is not None and out.get("updated") is not None and "updated" in tol:
        q["weights"] = ({"names": weight_names(len(out["updated"])), "arrays": out["updated"]}, ref["updated"],
                        [t / 2 for t in tol["updated"]])
    return q


def _floats(result):
    to = lambda x: np.array(x, dtype=float) if isinstance(x, list) else float(x)  # noqa: E731
    return {"forward": [to(a) for a in result["forward"]], "loss": float(result["loss"]),
            "grads": [to(g) for g in result["grads"]],
            "updated": None if result["updated"] is None else [to(w) for w in result["updated"]]}


def fd_referee(step, loss_at, weights, numpy_grads, keras_grads, grad_tol, seed=0, mismatch=None, oracle="keras",
               include=()):
    """Central differences of the loss, (L(w + h) − L(w − h)) / 2h, in float64, at up to 200 seeded coordinates.

    `loss_at` is Keras's own loss where Keras computes in float64, else numpy_impl's float64 loss
    with Keras's conventions (`oracle` says which).

    h = u^(1/3)·max(1, |w|). The error estimate per coordinate is |g_h − g_2h| (the Richardson
    difference, an estimate of the truncation error of g_2h, four times that of g_h) plus the
    rounding of the two loss values, 2·u·|L| / h. A side is wrong at a coordinate where it differs
    from the difference quotient by more than 4 × that estimate plus its own bound E.

    include: flat coordinates judged whatever the draw (the mismatching element: found by a review, a doubled
    bias gradient went unjudged when the draw took none of its coordinates, and the verdict read "neither").

    A coordinate where the loss has a kink (relu at exactly 0, a max pool's tie: zero biases and zero pixels
    put many there) has no derivative for differences to estimate: there the one-sided quotients jump,
    D(h) = (L(w+h) − L(w))/h − (L(w) − L(w−h))/h stays of the jump's size as h halves, where a smooth loss
    gives D(h) ≈ h·L''. Coordinates with |D(h) − D(2h)/2| beyond 8 × the rounding term and the estimate are
    left out of the verdict and counted ("kinks").
    """
    u = 2.0 ** -53
    flat = np.concatenate([w.ravel() for w in weights])
    coords = np.arange(flat.size)
    if flat.size > FD_COORDINATES:
        coords = np.sort(np.random.default_rng(seed).choice(flat.size, FD_COORDINATES, replace=False))
    coords = np.union1d(coords, np.asarray(include, dtype=int))
    sizes = np.cumsum([0] + [w.size for w in weights])
    base = loss_at(weights)

    def shifted(i, h):
        out = [w.copy() for w in weights]
        k = int(np.searchsorted(sizes, i, side="right") - 1)
        out[k].reshape(-1)[i - sizes[k]] += h
        return out
    fd, estimate, smooth = [], [], []
    for i in coords:
        h = u ** (1 / 3) * max(1.0, abs(flat[i]))
        up, down, up2, down2 = (loss_at(shifted(i, d)) for d in (h, -h, 2 * h, -2 * h))
        g1, g2 = (up - down) / (2 * h), (up2 - down2) / (4 * h)
        rounding = 2 * u * abs(base) / h
        fd.append(g1)
        estimate.append(abs(g1 - g2) + rounding)
        jump_h, jump_2h = (up - 2 * base + down) / h, (up2 - 2 * base + down2) / (2 * h)
        smooth.append(abs(jump_h - jump_2h / 2) <= 8 * rounding + estimate[-1])
    fd, estimate, smooth = np.array(fd), np.array(estimate), np.array(smooth, bool)
    result = {"name": "finite_differences", "step": step, "loss_oracle": oracle, "coordinates": int(smooth.sum()),
              "kinks": int((~smooth).sum()), "parameters": int(flat.size),
              "error_estimate": float(estimate[smooth].max(initial=0.0)),
              "error_estimate_median": float(np.median(estimate[smooth])) if smooth.any() else None}
    if not smooth.any():
        return dict(result, verdict=None, note=f"the loss has a kink at each of the {coords.size} coordinates tried: "
                                               "finite differences have no derivative to estimate there")
    if len(include) and not smooth[np.isin(coords, include)].any():
        return dict(result, verdict=None, note="the loss has a kink at the mismatching element: finite differences "
                                               "cannot judge it (the other coordinates are in the result)")
    wrong = {}
    for side, grads in (("numpy", numpy_grads), ("keras", keras_grads)):
        g = np.concatenate([x.ravel() for x in grads])[coords][smooth]
        e = np.concatenate([t.ravel() for t in grad_tol])[coords][smooth] / 2
        diff = np.abs(g - fd[smooth])
        over = diff / (4 * estimate[smooth] + e)
        wrong[side] = bool(np.any(over > 1))
        result[side] = {"max_abs_diff": float(diff.max()), "max_diff_over_allowance": float(over.max())}
    result["verdict"] = verdict_of_sides(wrong["numpy"], wrong["keras"])
    if mismatch and mismatch != "gradient" and result["verdict"] == "neither":
        result["verdict"] = None
        result["note"] = (f"finite differences judge gradients only, and both sides' gradients are consistent "
                          f"with the loss; the mismatch is in the {mismatch}")
    return result


def judge(name, at, spec, keras_step, u, seed, mismatch, backend, u_numpy):
    """Run the referee `name` on the step recorded in `at` (Stepper.current: step, X, y, weights, keras,
    numpy, tol), with whatever the numpy side had computed. u: the unit roundoff Keras computed in;
    u_numpy the numpy side's."""
    from .stepper import step_bounds
    from .update_tolerance import UpdateTolerance
    keras, numpy = at["keras"], at["numpy"]
    if name == "finite_differences":
        if "grads" not in numpy:
            return {"name": name, "step": at["step"], "verdict": None,
                    "note": "the mismatch came before the gradients: nothing for finite differences to judge"}
        oracle = "keras"
        loss_at = lambda w: keras_step.loss_at(w, at["X"], at["y"])  # noqa: E731
        if u != u_numpy:  # Keras computes in float32 here: take the loss in float64 from numpy_impl
            from numpy_impl import Network
            oracle = "numpy_impl (float64; Keras computes in float32 on this backend)"
            loss_at = lambda w: Network(w, spec["activations"], spec["learning_rate"], spec["loss"],  # noqa: E731
                                        spec["loss_config"], loss_scale=spec.get("loss_scale", 1.0)).loss_value(
                                            at["X"], at["y"])
        return fd_referee(at["step"], loss_at, at["weights"], numpy["grads"], keras["grads"],
                          at["tol"]["grads"], seed, mismatch, oracle)
    keras_out = {"forward": keras["activations"], "loss": keras["loss"], "grads": keras["grads"],
                 "updated": keras["weights_out"]}
    numpy_out = {"forward": numpy.get("forward"), "loss": numpy.get("loss"), "grads": numpy.get("grads"),
                 "updated": numpy.get("updated")}
    tol = at.get("tol")
    if numpy.get("forward") is None or tol is None:  # e.g. the weights entering the step already differ
        return {"name": name, "step": at["step"], "verdict": None,
                "note": "the mismatch came before the numpy side's forward pass: nothing to referee"}
    tol_numpy = tol
    if u_numpy != u:  # Keras computed in float32: the numpy side is still held to its own float64 bound
        tol_numpy = step_bounds(spec, {**keras, "weights_in": at["weights"]}, at["X"], at["y"], u_numpy, backend,
                                numpy_forward=numpy.get("forward"))
        if "updated" in tol:  # refereed only from a known (initial) optimizer state: a fresh tracker is exact
            tol_numpy["updated"] = UpdateTolerance(spec["optimizer"], spec["optimizer_config"], spec["learning_rate"],
                                                   u_numpy).step(at["weights"], keras["grads"], tol_numpy["grads"],
                                                                 keras["weights_out"], spec["learning_rate"])
    try:
        return unjudged(exact_referee(at["step"], spec, at["X"], at["y"], at["weights"], keras["weights_in"],
                                      numpy_out, keras_out, tol_numpy, tol, u_numpy, u, at["step"] == 0, backend),
                        mismatch)
    except (ZeroDivisionError, ValueError) as exc:  # e.g. a categorical row that sums to 0, log of 0
        return {"name": name, "step": at["step"], "verdict": None,
                "note": f"the exact step is undefined at these weights ({type(exc).__name__}: {exc})"}
