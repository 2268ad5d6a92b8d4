"""Per-element tolerances from a rounding-error bound of one training step.

Each side's computed value q̂ differs from the exact q by at most E(q), built with the standard
rules (Higham, *Accuracy and Stability of Numerical Algorithms*, ch. 3):

    sum or dot product of n terms   |error| ≤ γ_n · Σ|terms|,  γ_n = n·u / (1 − n·u)
    one rounded operation           |error| ≤ u·|result|
    exp, log, tanh, sigmoid         |error| ≤ 8 ulp ≤ 16·u·|result| (TensorFlow: ≤ 6 ulp, measured)
    inexact inputs                  propagate through |W|, |f'|, |δ|; products keep their cross term

u is the unit roundoff (2⁻⁵³ in float64, 2⁻²⁴ in float32). The tolerance between the two sides is
2·E: both round independently. See docs/tolerances.md for the table of rules and measurements.

Every function also takes a stack of steps: arrays with a leading step axis (K, ...), the batch
and feature axes last, and then returns one bound per step (the loss bound has shape (K,)).
"""
import numpy as np

from numpy_impl.losses import takes_logits

UNIT_ROUNDOFF = {"float64": 2.0 ** -53, "float32": 2.0 ** -24}

# Allowed error of one side's exp, log, log1p, tanh or sigmoid, in units of u·|result|.
TRANSCENDENTAL = 16.0
ACTIVATION_ERROR = {"linear": 0.0, "relu": 0.0, "tanh": TRANSCENDENTAL, "sigmoid": TRANSCENDENTAL}

# Free-running mode: the relative drift max|Δw| / max|w| past which the trajectories are declared
# decorrelated. Past it the tolerances, which grow with the drift, could no longer catch a learning
# rate off by 1e-7, so the check says so and stops comparing.
DRIFT_LIMIT = 1e-6
GAP_MARGIN = 1e-9


def _T(a):
    """aᵀ of the last two axes (a stack of matrices stays a stack)."""
    return np.swapaxes(a, -1, -2)


def _total(a):
    """Σ over the batch and feature axes: one value per step."""
    return a.sum(axis=(-2, -1))


# A product of nonnegative matrices in a bound (|a||W|ᵀ, |dz|ᵀ|a|, |dz||W|) costs as much as the
# step's own matmul. Past EXACT_PRODUCT_LIMIT multiply-adds it is bounded instead, by Cauchy–Schwarz:
# Σ_k p_ik q_kj ≤ ‖p_i:‖₂‖q_:j‖₂, which costs O(mn + np + mp). docs/tolerances.md measures how much looser.
EXACT_PRODUCT_LIMIT = 2 ** 22
_TINY = 2.0 ** -511  # squares of values below it may underflow


def exact_size(P, Q):
    """Whether P @ Q takes at most EXACT_PRODUCT_LIMIT multiply-adds per step."""
    return P.shape[-2] * P.shape[-1] * Q.shape[-1] <= EXACT_PRODUCT_LIMIT


def bound_product(P, Q):
    """An upper bound of P @ Q for nonnegative P (..., m, n) and Q (..., n, p): the product itself,
    or past EXACT_PRODUCT_LIMIT the rank-one ‖P_i:‖₂·‖Q_:j‖₂, plus n·2⁻⁵¹¹·(max P + max Q) for the
    squares that may have underflowed (each such term p·q is below 2⁻⁵¹¹ times the other factor)."""
    n = P.shape[-1]
    if exact_size(P, Q):
        return P @ Q
    rows = np.sqrt(np.square(P).sum(axis=-1))
    cols = np.sqrt(np.square(Q).sum(axis=-2))
    floor = n * _TINY * (P.max(axis=(-2, -1)) + Q.max(axis=(-2, -1)))
    return rows[..., :, None] * cols[..., None, :] + np.asarray(floor)[..., None, None]


def gamma(n, u):
    """γ_n = n·u / (1 − n·u): the relative error bound of a sum of n terms."""
    return n * u / (1 - n * u)


def sqrt_gap(x, d):
    """max |√x' − √x| over |x' − x| ≤ d: √(x + d) − √max(x − d, 0), without cancellation."""
    x = np.abs(x)
    hi, lo = np.sqrt(x + d), np.sqrt(np.maximum(x - d, 0))
    return np.where(x >= d, 2 * d / np.maximum(hi + lo, np.finfo(float).tiny), hi)


def quotient_gap(x, dx, y, dy):
    """max |x'/y' − x/y| over |x' − x| ≤ dx, |y' − y| ≤ dy, for y > dy ≥ 0 (else inf)."""
    room = np.abs(y) - dy
    return np.where(room > 0, (dx + np.abs(x / y) * dy) / np.where(room > 0, room, 1), np.inf)


def activation_slope(name, z, e_z):
    """max |f'| over the interval z ± e_z, so a propagated error needs no second-order term."""
    if name == "tanh":
        return 1 - np.tanh(np.maximum(np.abs(z) - e_z, 0)) ** 2
    if name == "sigmoid":
        s = 1 / (1 + np.exp(-np.maximum(np.abs(z) - e_z, 0)))
        return s * (1 - s)
    if name == "relu":
        return (z > -e_z).astype(z.dtype)
    return np.ones_like(z)


def softmax_error(a, e_z, u):
    """E(softmax(z)) = a·(expm1(2·max_row E(z)) + (K + 4)·16u): a shift of each z_j by ≤ e changes a_j by ≤ a_j(e^{2e} − 1)."""
    k = a.shape[-1]
    return a * (np.expm1(2 * e_z.max(axis=-1, keepdims=True)) + (k + 4) * TRANSCENDENTAL * u)


def slope_at(name, z, a):
    """f'(z) at the reference point, from the output a, as Keras's autodiff evaluates it."""
    if name == "tanh":
        return 1 - a * a
    if name == "sigmoid":
        return a * (1 - a)
    if name == "relu":
        return (z > 0).astype(z.dtype)
    return np.ones_like(z)


def slope_error(name, a, e_a, u):
    """Bound on the error of f'(z) computed from a computed a: |(1 − a²) − (1 − b²)| ≤ e_a·(2|a| + e_a)."""
    if name == "tanh":
        return e_a * (2 * np.abs(a) + e_a) + 3 * u
    if name == "sigmoid":
        return e_a * (np.abs(1 - 2 * a) + e_a) + 3 * u * np.abs(a)
    return np.zeros_like(a)


def backward_activation(name, z, a, e_z, e_a, delta, e_delta, u, mine=None):
    """(dz, E(dz)) for dz = f'(z) ⊙ δ, or the softmax product a ⊙ (δ − Σδa).

    relu′ jumps at z = 0 (Keras takes relu′(0) = 0). Where |z| ≤ E(z) the two sides may take different
    branches, and the bound opens to all of |δ|, but only where they did: `mine` is the numpy side's
    output of the layer, whose sign gives its branch (relu(z) > 0 exactly when z > 0). Where both sides
    took the same branch there is nothing ambiguous, and the bound stays at rounding level. Without
    `mine`, every element within E(z) of the kink is opened.
    """
    if name == "softmax":
        s = np.sum(delta * a, axis=-1, keepdims=True)
        e_s = (np.sum(e_delta * (np.abs(a) + e_a) + np.abs(delta) * e_a, axis=-1, keepdims=True)
               + gamma(a.shape[-1], u) * np.sum(np.abs(delta * a), axis=-1, keepdims=True))
        dz = a * (delta - s)
        e_dz = (e_a * (np.abs(delta - s) + e_delta + e_s) + np.abs(a) * (e_delta + e_s)
                + 2 * u * np.abs(a) * (np.abs(delta) + np.abs(s)))
        return dz, e_dz
    slope = np.abs(slope_at(name, z, a))
    e_slope = slope_error(name, a, e_a, u)
    dz = delta * slope
    e_dz = e_delta * (slope + e_slope) + np.abs(delta) * e_slope + u * np.abs(dz)
    if name == "relu":  # near the kink the derivative itself may flip between 0 and 1
        e_dz = np.where(kink_open(np.abs(z) <= e_z, z > 0, None if mine is None else mine > 0),
                        np.abs(delta) + e_delta, e_dz)
    return dz, e_dz


def kink_open(near, branch_keras, branch_mine):
    """Where a bound must allow either side of a kink: within the error of the kink, and (when the
    numpy side's branch is known) where the two sides' branches differ."""
    return near if branch_mine is None else near & (branch_keras != branch_mine)


def loss_bounds(name, where, y, x, e_x, u, epsilon=1e-7, e_y=0.0, x_mine=None):
    """(E(L), δ, E(δ)) for the loss `name` evaluated on x (ŷ, or the logits z when where is set).

    δ = dL/dx in Keras's values; every bound is over x ± e_x. e_y bounds the targets'
    own rounding (label smoothing computes y(1 − s) + s/K, two roundings per side). x_mine is the
    numpy side's x: at a kink of the loss (|r| at r = 0, a clip's edge) the bound opens only where
    the two sides' values fall on different sides of it (kink_open).
    """
    T = TRANSCENDENTAL * u
    n, N = x.shape[-2] * x.shape[-1], x.shape[-2]
    if name == "mse":
        r = x - y
        e_r = e_x + e_y + u * np.abs(r)
        loss = _total(r * r) / n
        e_loss = _total(e_r * (2 * np.abs(r) + e_r)) / n + gamma(n + 2, u) * loss
        delta = 2 * r / n
        return e_loss, delta, 2 * e_r / n + 4 * u * np.abs(delta)
    if name == "mae":
        r = x - y
        e_r = e_x + e_y + u * np.abs(r)
        e_loss = _total(e_r) / n + gamma(n + 2, u) * _total(np.abs(r)) / n
        delta = np.sign(r) / n
        branch_mine = None if x_mine is None else np.sign(x_mine - y)
        return e_loss, delta, np.where(kink_open(np.abs(r) <= e_r, np.sign(r), branch_mine), 2.0 / n,
                                       u * np.abs(delta))
    if name == "binary_crossentropy" and where:
        e = np.exp(-np.abs(x))
        sigma = np.where(x >= 0, 1 / (1 + e), e / (1 + e))
        terms = np.abs(np.maximum(x, 0)) + np.abs(x * y) + np.log1p(e)
        e_loss = (_total(np.abs(sigma - y) * e_x + e_x ** 2 / 8 + np.abs(x) * e_y) / n
                  + gamma(n + 4, u) * _total(terms) / n + T * _total(np.log1p(e) + e) / n)
        delta = (sigma - y) / n
        e_delta = (activation_slope("sigmoid", x, e_x) * e_x + e_y + T * sigma + 2 * u * np.abs(sigma - y)) / n
        return e_loss, delta, e_delta
    if name == "binary_crossentropy":
        lo, hi = epsilon, 1 - epsilon
        p = np.clip(x, lo, hi)
        inside = (x >= lo) & (x <= hi)
        edge = kink_open((np.abs(x - lo) <= e_x) | (np.abs(x - hi) <= e_x), inside,
                         None if x_mine is None else (x_mine >= lo) & (x_mine <= hi))
        room_p, room_q = np.maximum(p - e_x, lo), np.maximum(1 - p - e_x, 1 - hi)
        delta = np.where(inside, (-y / p + (1 - y) / (1 - p)) / n, 0.0)
        e_delta = np.where(inside, (np.abs(y) / room_p ** 2 + np.abs(1 - y) / room_q ** 2) * e_x / n
                           + (1 / room_p + 1 / room_q) * e_y / n
                           + 4 * u * (np.abs(y / p) + np.abs((1 - y) / (1 - p))) / n, 0.0)
        e_delta = np.where(edge, np.abs(delta) + e_delta + (np.abs(y) / lo + np.abs(1 - y) / (1 - hi)) / n, e_delta)
        logs = np.abs(y * np.log(p)) + np.abs((1 - y) * np.log(1 - p))
        e_loss = (_total((np.abs(y) / room_p + np.abs(1 - y) / room_q) * e_x
                         + np.abs(np.log(p) - np.log(1 - p)) * e_y) / n
                  + gamma(n + 4, u) * _total(logs) / n + (T + 2 * u) * _total(np.abs(y) + np.abs(1 - y)) / n)
        return e_loss, delta, e_delta
    if name == "categorical_crossentropy" and where:
        k = x.shape[-1]
        m = x.max(axis=-1, keepdims=True)
        lse = m + np.log(np.sum(np.exp(x - m), axis=-1, keepdims=True))
        sm = np.exp(x - lse)
        e_sm = softmax_error(sm, e_x, u)
        e_lse = e_x.max(axis=-1, keepdims=True) + (k + 2) * T * (np.abs(lse) + 1)
        e_loss = (_total(np.abs(y) * (e_lse + e_x) + np.abs(lse - x) * e_y)
                  + gamma(k + 2, u) * _total(np.abs(y) * (np.abs(lse) + np.abs(x)))) / N + gamma(N, u) * np.abs(
                      _total(y * (lse - x)) / N)
        delta = (sm - y) / N
        return e_loss, delta, (e_sm + e_y) / N + 2 * u * np.abs(delta)
    if name == "categorical_crossentropy":
        k = x.shape[-1]
        lo, hi = epsilon, 1 - epsilon
        s = x.sum(axis=-1, keepdims=True)
        e_s = e_x.sum(axis=-1, keepdims=True) + gamma(k, u) * np.abs(x).sum(axis=-1, keepdims=True)
        q = x / s
        e_q = quotient_gap(x, e_x, s, e_s) + u * np.abs(q)
        qc = np.clip(q, lo, hi)
        inside = (q >= lo) & (q <= hi)
        edge = (np.abs(q - lo) <= e_q) | (np.abs(q - hi) <= e_q)
        if x_mine is not None:  # the numpy side's q as we compute it; within a few ulp of an edge, unknown
            q_mine = x_mine / x_mine.sum(axis=-1, keepdims=True)
            unsure = (np.abs(q_mine - lo) <= 4 * u * lo) | (np.abs(q_mine - hi) <= 4 * u)
            edge = edge & (unsure | (inside != ((q_mine >= lo) & (q_mine <= hi))))
        room = np.maximum(qc - e_q, lo)
        g = np.where(inside, -y / qc / N, 0.0)
        e_g = np.where(inside, (np.abs(y) * e_q / room + e_y) / (N * qc) + 2 * u * np.abs(g), 0.0)
        e_g = np.where(edge, np.abs(g) + e_g + np.abs(y) / (N * lo), e_g)
        t = np.sum(g * q, axis=-1, keepdims=True)
        e_t = (np.sum(e_g * (np.abs(q) + e_q) + np.abs(g) * e_q, axis=-1, keepdims=True)
               + gamma(k, u) * np.sum(np.abs(g * q), axis=-1, keepdims=True))
        delta = (g - t) / s
        e_delta = quotient_gap(g - t, e_g + e_t + u * np.abs(g - t), s, e_s) + u * np.abs(delta)
        e_loss = (_total(np.abs(y) * e_q / room + np.abs(np.log(qc)) * e_y)
                  + gamma(k + 2, u) * _total(np.abs(y * np.log(qc))) + T * _total(np.abs(y))) / N
        return e_loss, delta, e_delta
    raise ValueError(f"no error bound for loss {name!r}")


def step_bounds(weights, activations, X, y, zs, outputs, u, weight_error=None, loss="mse", loss_config=None,
                epsilon=1e-7, backend="tensorflow", x_error=0.0, mine=None):
    """Error bounds E for one side's forward outputs, loss and gradients.

    weights: [W0, b0, ...] in (units, inputs) convention; zs, outputs: the reference side's
    pre-activations and layer outputs; y: the targets after any label smoothing. weight_error:
    per-array bound on how far the two sides' input weights are apart (zero when both step from
    identical weights; the measured gap in free-running mode). Products of two inexact factors keep
    their cross term ((|x| + e_x)(|y| + e_y) − |x||y|), and slopes are maxima over the input's
    interval, so the bound holds for gaps of any size, not only to first order.
    mine: the numpy side's layer outputs, which decide its branch at a kink (relu′ at 0, |r| at 0, a
    clip's edge); without them every element near a kink gets the open bound.
    Returns {"forward": [...], "loss": float, "grads": [...]}.
    """
    loss_config = loss_config or {}
    Ws, bs = weights[0::2], weights[1::2]
    absW = [np.abs(W) for W in Ws]
    eWs, ebs = (weight_error[0::2], weight_error[1::2]) if weight_error is not None else ([None] * len(Ws),) * 2
    # Forward: z = a Wᵀ + b, a' = f(z). Terms that multiply the same matrix share one product:
    # γ|a||W|ᵀ + e_a|W|ᵀ = (γ|a| + e_a)|W|ᵀ.
    e_a, a, e_outputs, e_zs = np.zeros_like(X) + x_error, X, [], []
    for W, aW, b, eW, eb, z, out, name in zip(Ws, absW, bs, eWs, ebs, zs, outputs, activations):
        g = gamma(W.shape[-1] + 1, u)
        e_z = bound_product(g * np.abs(a) + e_a, _T(aW)) + g * np.abs(b)[..., None, :]
        if eW is not None:  # the two sides' weights differ by up to eW, eb
            e_z = e_z + bound_product(np.abs(a) + e_a, _T(eW)) + np.asarray(eb)[..., None, :]
        if name == "softmax":
            e_a = softmax_error(out, e_z, u)
        else:
            e_a = activation_slope(name, z, e_z) * e_z + ACTIVATION_ERROR[name] * u * np.abs(out)
        e_zs.append(e_z)
        e_outputs.append(e_a)
        a = out
    # Loss, and δ = dL/d(where the loss is evaluated).
    where = takes_logits(loss, loss_config.get("from_logits", False), activations[-1], backend)
    x, e_x = (zs[-1], e_zs[-1]) if where == "z" else (outputs[-1], e_outputs[-1])
    e_y = 2 * u * np.abs(y) + u * loss_config.get("label_smoothing", 0.0) if loss_config.get("label_smoothing") else 0.0
    x_mine = None if mine is None or where == "z" else mine[-1]
    e_loss, delta, e_delta = loss_bounds(loss, where, y, x, e_x, u, epsilon, e_y, x_mine)
    # Backward: dz = f'(z) ⊙ δ; dW = dzᵀ a_prev; db = Σ dz; δ_prev = dz W.
    e_grads, N = [], X.shape[-2]
    for l in reversed(range(len(Ws))):
        W, aW, eW = Ws[l], absW[l], eWs[l]
        a_prev = outputs[l - 1] if l > 0 else X
        e_a_prev = e_outputs[l - 1] if l > 0 else np.zeros_like(X) + x_error
        if l == len(Ws) - 1 and where == "z":
            dz, e_dz = delta, e_delta
        else:
            dz, e_dz = backward_activation(activations[l], zs[l], outputs[l], e_zs[l], e_outputs[l],
                                           delta, e_delta, u, None if mine is None else mine[l])
        # γ|dz|ᵀ|a| + E(dz)ᵀ(|a| + E(a)) + |dz|ᵀE(a) = (γ|dz| + E(dz))ᵀ|a| + (E(dz) + |dz|)ᵀE(a)
        abs_dz = np.abs(dz)
        e_dW = bound_product(_T(gamma(N, u) * abs_dz + e_dz), np.abs(a_prev))
        if l > 0 or np.any(x_error):
            e_dW = e_dW + bound_product(_T(e_dz + abs_dz), e_a_prev)
        e_db = gamma(N, u) * abs_dz.sum(axis=-2) + e_dz.sum(axis=-2)
        e_grads[:0] = [e_dW, e_db]
        if l == 0:
            break
        # δ itself where the product is cheap; else a bound of |δ| = |dz W| ≤ |dz||W|, which is all a
        # hidden layer's bound uses (softmax, which needs δ's sign, is only ever the last layer)
        delta = dz @ W if exact_size(dz, W) else bound_product(abs_dz, aW)
        e_delta = bound_product(gamma(W.shape[-2], u) * abs_dz + e_dz, aW)
        if eW is not None:
            e_delta = e_delta + bound_product(e_dz + abs_dz, eW)
    return {"forward": e_outputs, "loss": e_loss if np.ndim(e_loss) else float(e_loss), "grads": e_grads}


def step_tolerances(weights, activations, X, y, zs, outputs, u, weight_gap=None, **loss):
    """Tolerances between the two sides: 2·E for the rounding of both, plus the gap's propagation once.

    With weight_gap = |w_numpy − w_keras| (free-running mode), E(gap) = E(0) + P(gap), P the
    propagation of the gap; the tolerance is 2·E(0) + P(gap) = E(0) + E(gap). P is evaluated at
    the reference side's magnitudes; the other side's differ by the gap, which changes its
    rounding terms by O(n·u) relative, covered by the factor 1 + GAP_MARGIN.
    """
    e0 = step_bounds(weights, activations, X, y, zs, outputs, u, **loss)
    if weight_gap is None:
        return {"forward": [2 * e for e in e0["forward"]], "loss": 2 * e0["loss"],
                "grads": [2 * e for e in e0["grads"]]}
    eg = step_bounds(weights, activations, X, y, zs, outputs, u, weight_gap, **loss)
    k = 1 + GAP_MARGIN
    return {"forward": [a + k * b for a, b in zip(e0["forward"], eg["forward"])],
            "loss": e0["loss"] + k * eg["loss"],
            "grads": [a + k * b for a, b in zip(e0["grads"], eg["grads"])]}
