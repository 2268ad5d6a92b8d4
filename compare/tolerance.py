"""Per-element tolerances from a first-order rounding-error bound of one training step.

Each side's computed value q̂ differs from the exact q by at most E(q), built with the
standard rules (Higham, *Accuracy and Stability of Numerical Algorithms*, ch. 3):

    sum or dot product of n terms   |error| ≤ γ_n · Σ|terms|,  γ_n = n·u / (1 - n·u)
    one rounded operation           |error| ≤ u·|result|
    input errors e_a propagate       linearly, through |W|, |f'|, |δ| ...

u is the unit roundoff (2⁻⁵³ in float64). The tolerance between the two sides is 2·E: both
round independently. The bound is tight where values are large and honest where they cancel:
for the guide's saturated hidden unit (tanh ≈ 0.9999998) the term 2|a|·E(a) of 1 − a² lets
that unit's gradient differ by ~1e-9 relative, while every other element stays near 1e-15.
"""
import numpy as np

# Allowed error of one side's activation function, in units of u·|a| (TensorFlow's float64
# tanh is up to 6 ulp from the exact value, numpy's 1 ulp; 16·u·|a| ≥ 8 ulp).
# Free-running mode: the relative drift max|Δw| / max|w| past which the trajectories are declared
# decorrelated. Past it the tolerances, which grow with the drift, could no longer catch a learning
# rate off by 1e-7, so the check says so and stops comparing.
DRIFT_LIMIT = 1e-6
GAP_MARGIN = 1e-9

ACTIVATION_ERROR = {"linear": 0.0, "relu": 0.0, "tanh": 16.0, "sigmoid": 16.0}


def gamma(n, u):
    """γ_n = n·u / (1 − n·u): the relative error bound of a sum of n terms."""
    return n * u / (1 - n * u)


def activation_slope(name, z, a, e_z):
    """max |f'| over the interval z ± e_z, so a propagated error needs no second-order term."""
    if name == "tanh":
        return 1 - np.tanh(np.maximum(np.abs(z) - e_z, 0)) ** 2
    if name == "sigmoid":
        s = 1 / (1 + np.exp(-np.maximum(np.abs(z) - e_z, 0)))
        return s * (1 - s)
    if name == "relu":
        return (z > -e_z).astype(z.dtype)
    return np.ones_like(z)


def slope_error(name, a, e_a, u):
    """Bound on the error of f'(z) computed from a computed a: |(1 − a²) − (1 − b²)| ≤ e_a·(2|a| + e_a)."""
    if name == "tanh":
        return e_a * (2 * np.abs(a) + e_a) + 3 * u
    if name == "sigmoid":
        return e_a * (np.abs(1 - 2 * a) + e_a) + 3 * u * np.abs(a)
    return np.zeros_like(a)


def step_bounds(weights, activations, X, y, zs, outputs, u, weight_error=None):
    """Error bounds E for one side's forward outputs, loss and gradients.

    weights: [W0, b0, ...] in (units, inputs) convention; zs, outputs: the reference side's
    pre-activations and layer outputs. weight_error: per-array bound on how far the two sides'
    input weights are apart (zero when both step from identical weights; the measured gap in
    free-running mode). Products of two inexact factors keep their cross term
    ((|x| + e_x)(|y| + e_y) − |x||y|), and slopes are maxima over the input's interval, so the
    bound holds for gaps of any size, not only to first order.
    Returns {"forward": [...], "loss": float, "grads": [...]}.
    """
    Ws, bs = weights[0::2], weights[1::2]
    if weight_error is None:
        weight_error = [np.zeros_like(w) for w in weights]
    eWs, ebs = weight_error[0::2], weight_error[1::2]
    # Forward: z = a W^T + b, a' = f(z).
    e_a, a, e_outputs, e_zs = np.zeros_like(X), X, [], []
    for W, b, eW, eb, z, out, name in zip(Ws, bs, eWs, ebs, zs, outputs, activations):
        n_in = W.shape[1]
        e_z = (gamma(n_in + 1, u) * (np.abs(a) @ np.abs(W).T + np.abs(b))
               + e_a @ (np.abs(W) + eW).T + np.abs(a) @ eW.T + eb)
        e_a = activation_slope(name, z, out, e_z) * e_z + ACTIVATION_ERROR[name] * u * np.abs(out)
        e_zs.append(e_z)
        e_outputs.append(e_a)
        a = out
    # Loss: L = mean(r²), r = ŷ − y, over n elements; |r_1² − r_2²| ≤ e_r (2|r| + e_r).
    y_hat, n = outputs[-1], y.size
    r = y_hat - y
    e_r = e_outputs[-1] + u * np.abs(r)
    loss = np.mean(r * r)
    e_loss = np.sum(e_r * (2 * np.abs(r) + e_r) + u * r * r) / n + gamma(n + 2, u) * loss
    # Backward: δ = dL/dŷ = 2r/n; dz = δ ⊙ f'(z); dW = dzᵀ a_prev; db = Σ dz; δ_prev = dz W.
    delta = 2 * r / n
    e_delta = 2 * e_r / n + 4 * u * np.abs(delta)
    e_grads, N = [], X.shape[0]
    for l in reversed(range(len(Ws))):
        name, z, out, W, eW = activations[l], zs[l], outputs[l], Ws[l], eWs[l]
        a_prev = outputs[l - 1] if l > 0 else X
        e_a_prev = e_outputs[l - 1] if l > 0 else np.zeros_like(X)
        slope = np.abs(ACTIVATION_SLOPE_AT[name](z, out))
        e_slope = slope_error(name, out, e_outputs[l], u)
        dz = delta * slope
        e_dz = e_delta * (slope + e_slope) + np.abs(delta) * e_slope + u * np.abs(dz)
        if name == "relu":  # near the kink the derivative itself may flip between 0 and 1
            e_dz = np.where(np.abs(z) <= e_zs[l], np.abs(delta) + e_delta, e_dz)
        e_dW = (gamma(N, u) * np.abs(dz).T @ np.abs(a_prev) + e_dz.T @ (np.abs(a_prev) + e_a_prev)
                + np.abs(dz).T @ e_a_prev)
        e_db = gamma(N, u) * np.abs(dz).sum(axis=0) + e_dz.sum(axis=0)
        e_grads[:0] = [e_dW, e_db]
        delta = dz @ W
        e_delta = (gamma(W.shape[0], u) * np.abs(dz) @ np.abs(W) + e_dz @ (np.abs(W) + eW)
                   + np.abs(dz) @ eW)
    return {"forward": e_outputs, "loss": float(e_loss), "grads": e_grads}


# f'(z) at the reference point, from the layer's output a, as Keras's autodiff evaluates it.
ACTIVATION_SLOPE_AT = {
    "tanh": lambda z, a: 1 - a * a,
    "sigmoid": lambda z, a: a * (1 - a),
    "relu": lambda z, a: (z > 0).astype(z.dtype),
    "linear": lambda z, a: np.ones_like(z),
}


def step_tolerances(weights, activations, X, y, zs, outputs, u, weight_gap=None):
    """Tolerances between the two sides: 2·E for the rounding of both, plus the gap's propagation once.

    With weight_gap = |w_numpy − w_keras| (free-running mode), E(gap) = E(0) + P(gap), P the
    propagation of the gap; the tolerance is 2·E(0) + P(gap) = E(0) + E(gap). P is evaluated at
    the reference side's magnitudes; the other side's differ by the gap, which changes its
    rounding terms by O(n·u) relative, covered by the factor 1 + GAP_MARGIN.
    """
    e0 = step_bounds(weights, activations, X, y, zs, outputs, u)
    if weight_gap is None:
        return {"forward": [2 * e for e in e0["forward"]], "loss": 2 * e0["loss"],
                "grads": [2 * e for e in e0["grads"]]}
    eg = step_bounds(weights, activations, X, y, zs, outputs, u, weight_gap)
    k = 1 + GAP_MARGIN
    return {"forward": [a + k * b for a, b in zip(e0["forward"], eg["forward"])],
            "loss": e0["loss"] + k * eg["loss"],
            "grads": [a + k * b for a, b in zip(e0["grads"], eg["grads"])]}


def update_tolerances(weights_out, grads, grad_tol, learning_rate, u, weight_gap=None):
    """Tolerance on w' = w − lr·g between the sides: 2u·|w'| + 2u·|lr·g| + lr·tol(g) (+ the entering gap)."""
    tol = [2 * u * np.abs(w) + 2 * u * np.abs(learning_rate * g) + learning_rate * t
           for w, g, t in zip(weights_out, grads, grad_tol)]
    if weight_gap is not None:
        tol = [t + gap for t, gap in zip(tol, weight_gap)]
    return tol
