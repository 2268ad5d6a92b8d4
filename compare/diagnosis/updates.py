"""Known causes of wrong updated weights, each as the weights the numpy side would produce with that mistake,
from its own entering weights and gradients and the optimizer's state before the step (Keras's, carried by
compare/update_tolerance.py's replica; at step 0 the initial state, where most of these first show).

Keras's updates (keras/src/optimizers, as numpy_impl.optimizers reproduces them), β, momentum, the weight
decay and Adagrad's initial accumulator through float32 on TensorFlow (f32):
    SGD       m' = μm − lr·g;  w' = w + m'  (nesterov: w + μm' − lr·g)
    Adam      α = lr·√(1 − β2ᵗ)/(1 − β1ᵗ);  m' = m + (g − m)(1 − β1);  v' = v + (g² − v)(1 − β2);  w' = w − α·m'/(√v' + ε)
    AdamW     w ← w − w·wd·lr first
    RMSprop   v' = ρv + (1 − ρ)g²;  d = v' (− a'² centered) + ε;  w' = w − lr·g/√d  (momentum: m' = μm + lr·g/√d)
    Adagrad   acc' = acc + g²;  w' = w − lr·g/√(acc' + ε)
"""
import numpy as np

from numpy_impl.optimizers import OPTIMIZERS

from .ratios import fmt


def f32(x):
    """x rounded through float32, as Keras casts these constants on TensorFlow. Its own function, not
    numpy_impl's: the predictions are of Keras's arithmetic, whatever the numpy side does."""
    return float(np.float32(x))


def _decayed(w, c, lr, cast=True):
    wd = c.get("weight_decay")
    return w - w * (f32(wd) if cast else wd) * lr if wd else w


def sgd(w, g, s, t, lr, c, cast=True, nesterov=None, sign=1, carried=True):
    mu = c["momentum"]
    if not mu:
        return w - lr * g
    mu = f32(mu) if cast else mu
    m = (mu * s["m"] if carried else 0.0) - lr * g
    if c["nesterov"] if nesterov is None else nesterov:
        return w + sign * (mu * m - lr * g)
    return w + sign * m


def adam(w, g, s, t, lr, c, cast=True, correction=True, epsilon="keras", amsgrad=None):
    b1, b2, eps = c["beta_1"], c["beta_2"], c["epsilon"]
    p1, p2 = (f32(b1), f32(b2)) if cast else (b1, b2)
    m = s["m"] + (g - s["m"]) * (1 - b1)
    v = s["v"] + (g * g - s["v"]) * (1 - b2)
    if c["amsgrad"] if amsgrad is None else amsgrad:
        v = np.maximum(s["v_hat"], v)
    if epsilon == "paper":  # m̂ / (√v̂ + ε)
        return w - lr * (m / (1 - p1 ** t)) / (np.sqrt(v / (1 - p2 ** t)) + eps)
    alpha = lr * np.sqrt(1 - p2 ** t) / (1 - p1 ** t) if correction else lr
    if epsilon == "inside":
        return w - alpha * m / np.sqrt(v + eps)
    return w - alpha * m / (np.sqrt(v) + eps)


def rmsprop(w, g, s, t, lr, c, cast=True, swapped=False, centered=None, epsilon="inside"):
    rho, mu, eps = c["rho"], c["momentum"], c["epsilon"]
    keep, new = (1 - rho, rho) if swapped else (rho, 1 - rho)
    v = keep * s["v"] + new * g * g
    d = v - (keep * s["a"] + new * g) ** 2 if (c["centered"] if centered is None else centered) else v
    inc = lr * g / (np.sqrt(d + eps) if epsilon == "inside" else np.sqrt(d) + eps)
    return w - (mu * s["m"] + inc if mu > 0 else inc)


def adagrad(w, g, s, t, lr, c, initial=True, epsilon="inside", cast=True):
    start = f32(c["initial_accumulator_value"])
    acc = s["acc"] if initial else s["acc"] - start  # subtracted first: exact at the first step
    if not cast:
        acc = (s["acc"] - start) + c["initial_accumulator_value"]
    acc = acc + g * g
    return w - lr * g / (np.sqrt(acc + c["epsilon"]) if epsilon == "inside" else np.sqrt(acc) + c["epsilon"])


STEPS = {"sgd": sgd, "adam": adam, "adamw": adam, "rmsprop": rmsprop, "adagrad": adagrad}


def hypotheses(ctx):
    """Yield (id, text, predicted updated weights) for every known optimizer mistake that applies here."""
    spec, numpy = ctx["spec"], ctx["numpy"]
    name, lr = spec["optimizer"], spec["learning_rate"]
    c = {**OPTIMIZERS[name].defaults, **spec["optimizer_config"]}
    weights, grads = numpy["weights"], numpy["grads"]
    state = ctx.get("state")
    states, t = state if state else ([{}] * len(weights), 1)
    step = STEPS[name]

    def predict(decay=True, cast=True, per_array_t=False, t_shift=0, gradient=None, after=None, **variant):
        """Every array's update with one change: no decay, no float32 casts, t counted per array or
        shifted, the gradient replaced (gradient(w, g)), the result changed afterwards (after(w'))."""
        out = []
        for i, (w, g, s) in enumerate(zip(weights, grads, states)):
            w0 = _decayed(w, c, lr, cast) if decay else w
            ti = ((t - 1) * len(weights) + i + 1 if per_array_t else t) + t_shift
            w1 = step(w0, gradient(w, g) if gradient else g, s, ti, lr, c, cast=cast, **variant)
            out.append(after(w1) if after else w1)
        return out
    wd = c.get("weight_decay")
    keras_out = ctx["keras"]["weights_out"]
    frozen = [i for i, (m, w, k) in enumerate(zip(numpy["updated"], weights, keras_out))
              if np.array_equal(m, w) and not np.array_equal(k, w)]
    if frozen:
        from ..names import weight_names
        names = [weight_names(len(weights))[i] for i in frozen]
        yield ("never updated", f"{', '.join(names)} {'is' if len(names) == 1 else 'are'} never updated (the other "
               "updates agree)", [w if i in frozen else k for i, (w, k) in enumerate(zip(weights, keras_out))])
    if name == "sgd" and c["momentum"]:
        yield ("momentum sign", "momentum is applied with the wrong sign (w − m where Keras adds m = μm − lr·g)",
               predict(sign=-1))
        if c["nesterov"]:
            yield ("nesterov as plain momentum", "Nesterov momentum is written as plain momentum (w + m, not "
                   "w + μm − lr·g)", predict(nesterov=False))
        else:
            yield ("plain momentum as nesterov", "plain momentum is written as Nesterov's", predict(nesterov=True))
        yield ("momentum not carried", "the momentum is not carried from step to step (it starts from 0 each step)",
               predict(carried=False))
    if name in ("adam", "adamw"):
        yield ("no bias correction", "Adam's bias correction is missing (α = lr, not lr·√(1 − β2ᵗ)/(1 − β1ᵗ))",
               predict(correction=False))
        yield ("paper epsilon", "Adam's ε is added to √v̂ as in the paper (m̂/(√v̂ + ε)); Keras adds it to √v with "
               "α carrying the bias correction (the ε-hat form): a convention, not a bug, that Keras cannot express "
               "and that matters only where √v̂ is near ε", predict(epsilon="paper"))
        yield ("epsilon inside", "Adam's ε is put inside the square root (√(v + ε)); Keras adds it outside",
               predict(epsilon="inside"))
        yield ("amsgrad", "amsgrad is " + ("ignored" if c["amsgrad"] else "applied though not declared"),
               predict(amsgrad=not c["amsgrad"]))
        if t > 1 or len(weights) > 1:
            yield ("step counter per array", "the step count t of the bias correction advances once per weight "
                   "array, not once per step", predict(per_array_t=True))
    if name in ("adam", "adamw"):
        for shift in (1, -1):
            if t + shift >= 1:
                yield (f"bias correction off by {shift:+d}", f"the bias correction uses t {'+' if shift > 0 else '−'} 1 "
                       "where Keras uses t (the first step is t = 1)", predict(t_shift=shift))
    if wd:
        yield "weight decay forgotten", f"the weight decay ({wd}) is left out", predict(decay=False)
        if name == "adamw":
            yield ("decay on the gradient", "the weight decay is added to the gradient (g + wd·w, L2), not "
                   "decoupled", predict(decay=False, gradient=lambda w, g: g + f32(wd) * w))
            yield ("decay without the learning rate", "the weight decay is w − wd·w, without the learning rate",
                   [step(w - w * f32(wd), g, s, t, lr, c) for w, g, s in zip(weights, grads, states)])
            yield ("decay after the update", "the weight decay is applied after the Adam step, not before it",
                   predict(decay=False, after=lambda v: v - v * f32(wd) * lr))
    if name == "rmsprop":
        yield "rho swapped", "RMSprop's ρ and 1 − ρ are swapped (v = (1 − ρ)v + ρg²)", predict(swapped=True)
        if c["centered"]:
            yield "centered ignored", "RMSprop's centered option is ignored (d = v + ε, not v − a² + ε)", \
                predict(centered=False)
        yield ("epsilon outside", "RMSprop's ε is added outside the square root (√v + ε); Keras puts it inside",
               predict(epsilon="outside"))
    if name == "adagrad":
        yield ("initial accumulator", "Adagrad's accumulator starts at 0, not at initial_accumulator_value "
               f"({c['initial_accumulator_value']})", predict(initial=False))
        yield ("epsilon outside", "Adagrad's ε is added outside the square root (√acc + ε); Keras puts it inside",
               predict(epsilon="outside"))
    casts = [k for k in ("momentum", "beta_1", "beta_2", "weight_decay", "initial_accumulator_value")
             if isinstance(c.get(k), float) and c[k] and f32(c[k]) != c[k]]
    if casts:
        yield ("no float32 cast", f"the numpy side uses {', '.join(f'{k}={c[k]!r}' for k in casts)} exactly; Keras on "
               f"TensorFlow rounds {'them' if len(casts) > 1 else 'it'} through float32 "
               f"({', '.join(f'{f32(c[k])!r}' for k in casts)})", predict(cast=False))


def learning_rate_text(ratio, lr):
    """The fallback for updates that are a constant multiple of Keras's and match no known mistake."""
    return (f"updates are {fmt(ratio)} × Keras's: the learning rate in effect is {fmt(ratio * lr)}, not the declared "
            f"{fmt(lr)} (no other known cause fits; any mistake that scales every update of this step by the same "
            "factor, e.g. a β₁ other than declared at Adam's first step, looks the same)")
