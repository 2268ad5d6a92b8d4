"""One training step in 50-digit arithmetic (mpmath), with Keras's semantics: the exact referee.

Inputs (weights, X, y, hyper-parameters) are taken as the exact values of their floats; every
operation after that is carried out to 50 significant digits. Keras's conventions are kept:
probabilities clipped to [ε, 1 − ε], categorical rows renormalised, cross-entropies after a sigmoid
or softmax layer taken on its logits, and the optimizer's float32-cast constants.
"""
import mpmath

from numpy_impl.losses import EPSILON, takes_logits
from numpy_impl.optimizers import OPTIMIZERS, f32

DIGITS = 50
MAX_PARAMETERS = 500


def mp(a):
    """A numpy array (any shape, float or object holding mpf) as nested lists of mpf."""
    if getattr(a, "ndim", 0):
        return [mp(x) for x in a]
    return a if isinstance(a, mpmath.mpf) else mpmath.mpf(float(a))


def _activation(name, z):
    if name == "tanh":
        return [[mpmath.tanh(v) for v in row] for row in z]
    if name == "sigmoid":
        return [[1 / (1 + mpmath.exp(-v)) for v in row] for row in z]
    if name == "relu":
        return [[v if v > 0 else mpmath.mpf(0) for v in row] for row in z]
    if name == "softmax":
        out = []
        for row in z:
            e = [mpmath.exp(v - max(row)) for v in row]
            out.append([v / sum(e) for v in e])
        return out
    return [list(row) for row in z]


def _backward(name, z, a, da):
    """dL/dz from dL/da through the activation, exactly."""
    if name == "softmax":
        out = []
        for arow, drow in zip(a, da):
            s = sum(x * d for x, d in zip(arow, drow))
            out.append([x * (d - s) for x, d in zip(arow, drow)])
        return out
    slope = {"tanh": lambda zz, aa: 1 - aa * aa, "sigmoid": lambda zz, aa: aa * (1 - aa),
             "relu": lambda zz, aa: mpmath.mpf(1) if zz > 0 else mpmath.mpf(0),
             "linear": lambda zz, aa: mpmath.mpf(1)}[name]
    return [[d * slope(zz, aa) for zz, aa, d in zip(zr, ar, dr)] for zr, ar, dr in zip(z, a, da)]


def _loss(name, where, x, y):
    """(L, dL/dx) for the loss evaluated on x (ŷ or logits), exactly, with Keras's reductions."""
    rows, cols = len(x), len(x[0])
    n, eps = rows * cols, mpmath.mpf(EPSILON)
    if name in ("mse", "mae"):
        r = [[a - b for a, b in zip(xr, yr)] for xr, yr in zip(x, y)]
        if name == "mse":
            return sum(v * v for row in r for v in row) / n, [[2 * v / n for v in row] for row in r]
        return sum(abs(v) for row in r for v in row) / n, [[mpmath.sign(v) / n for v in row] for row in r]
    if name == "binary_crossentropy" and where:
        loss = sum(max(z, 0) - z * t + mpmath.log1p(mpmath.exp(-abs(z))) for xr, yr in zip(x, y) for z, t in zip(xr, yr))
        return loss / n, [[(1 / (1 + mpmath.exp(-z)) - t) / n for z, t in zip(xr, yr)] for xr, yr in zip(x, y)]
    if name == "binary_crossentropy":
        loss, grad = 0, []
        for xr, yr in zip(x, y):
            grad.append([])
            for p, t in zip(xr, yr):
                pc = min(max(p, eps), 1 - eps)
                loss += -(t * mpmath.log(pc) + (1 - t) * mpmath.log(1 - pc))
                grad[-1].append((-t / pc + (1 - t) / (1 - pc)) / n if eps <= p <= 1 - eps else mpmath.mpf(0))
        return loss / n, grad
    if name == "categorical_crossentropy" and where:
        loss, grad = 0, []
        for xr, yr in zip(x, y):
            m = max(xr)
            lse = m + mpmath.log(sum(mpmath.exp(v - m) for v in xr))
            loss += sum(t * (lse - v) for v, t in zip(xr, yr))
            grad.append([(mpmath.exp(v - lse) - t) / rows for v, t in zip(xr, yr)])
        return loss / rows, grad
    loss, grad = 0, []
    for xr, yr in zip(x, y):
        s = sum(xr)
        q = [v / s for v in xr]
        qc = [min(max(v, eps), 1 - eps) for v in q]
        loss += -sum(t * mpmath.log(v) for t, v in zip(yr, qc))
        g = [-t / c / rows if eps <= v <= 1 - eps else mpmath.mpf(0) for t, v, c in zip(yr, q, qc)]
        gq = sum(a * b for a, b in zip(g, q))
        grad.append([(a - gq) / s for a in g])
    return loss / rows, grad


def step(weights, activations, X, y, learning_rate, loss="mse", loss_config=None, optimizer="sgd",
         optimizer_config=None, first_step=True, backend="tensorflow"):
    """{'forward': [...], 'loss': mpf, 'grads': [...], 'updated': [...] or None} as nested lists of mpf.

    The update needs the optimizer's state; it is computed at the first step (state at its initial
    value) and for plain SGD at any step, else 'updated' is None.
    """
    loss_config = loss_config or {}
    with mpmath.workdps(DIGITS):
        Ws, bs = [mp(w) for w in weights[0::2]], [mp(b) for b in weights[1::2]]
        a, zs, outs = mp(X), [], []
        for W, b, name in zip(Ws, bs, activations):
            z = [[sum(x * w for x, w in zip(row, wr)) + bj for wr, bj in zip(W, b)] for row in a]
            a = _activation(name, z)
            zs.append(z)
            outs.append(a)
        t = mp(y)
        s = loss_config.get("label_smoothing", 0.0)
        if s:
            k = 2 if loss == "binary_crossentropy" else len(t[0])
            t = [[v * (1 - mpmath.mpf(s)) + mpmath.mpf(s) / k for v in row] for row in t]
        where = takes_logits(loss, loss_config.get("from_logits", False), activations[-1], backend)
        value, d = _loss(loss, where, zs[-1] if where == "z" else outs[-1], t)
        grads = []
        for l in reversed(range(len(Ws))):
            dz = d if (l == len(Ws) - 1 and where == "z") else _backward(activations[l], zs[l], outs[l], d)
            a_prev = outs[l - 1] if l > 0 else mp(X)
            dW = [[sum(dz[n][j] * a_prev[n][i] for n in range(len(dz))) for i in range(len(a_prev[0]))]
                  for j in range(len(dz[0]))]
            db = [sum(dz[n][j] for n in range(len(dz))) for j in range(len(dz[0]))]
            grads[:0] = [dW, db]
            d = [[sum(dz[n][j] * Ws[l][j][i] for j in range(len(dz[0]))) for i in range(len(Ws[l][0]))]
                 for n in range(len(dz))]
        params = [x for pair in zip(Ws, bs) for x in pair]
        updated = _update(params, grads, mpmath.mpf(learning_rate), optimizer, optimizer_config or {}, first_step)
        return {"forward": outs, "loss": value, "grads": grads, "updated": updated}


def _update(params, grads, lr, optimizer, config, first_step):
    """The optimizer's step from its initial state, exactly; None when the state is unknown."""
    c = {**OPTIMIZERS[optimizer].defaults, **config}
    plain = optimizer == "sgd" and not c["momentum"] and not c.get("weight_decay")
    if not (first_step or plain):
        return None
    def deep(f, *xs):
        return [deep(f, *v) for v in zip(*xs)] if isinstance(xs[0], list) else f(*xs)
    wd = c.get("weight_decay")
    if wd:
        params = [deep(lambda w: w - w * mpmath.mpf(f32(wd)) * lr, p) for p in params]
    if optimizer == "sgd":
        mu = mpmath.mpf(f32(c["momentum"])) if c["momentum"] else 0
        factor = (1 + mu) if c["nesterov"] and mu else 1  # m = −lr·g from m = 0; nesterov adds μ·m
        return [deep(lambda w, g: w - factor * lr * g, p, g) for p, g in zip(params, grads)]
    if optimizer in ("adam", "adamw"):
        b1, b2, eps = c["beta_1"], c["beta_2"], mpmath.mpf(c["epsilon"])
        alpha = lr * mpmath.sqrt(1 - mpmath.mpf(f32(b2))) / (1 - mpmath.mpf(f32(b1)))
        return [deep(lambda w, g: w - (g * mpmath.mpf(1 - b1)) * alpha
                     / (mpmath.sqrt(g * g * mpmath.mpf(1 - b2)) + eps), p, g) for p, g in zip(params, grads)]
    if optimizer == "rmsprop":
        rho, eps = c["rho"], mpmath.mpf(c["epsilon"])

        def one(w, g):
            v = mpmath.mpf(1 - rho) * g * g
            d = v - (mpmath.mpf(1 - rho) * g) ** 2 + eps if c["centered"] else v + eps
            return w - lr * g / mpmath.sqrt(d)
        return [deep(one, p, g) for p, g in zip(params, grads)]
    acc0, eps = mpmath.mpf(f32(c["initial_accumulator_value"])), mpmath.mpf(c["epsilon"])
    return [deep(lambda w, g: w - lr * g / mpmath.sqrt(acc0 + g * g + eps), p, g) for p, g in zip(params, grads)]
