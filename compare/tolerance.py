"""Per-element tolerances from a rounding-error bound of one training step: the propagation through
the network. What each activation and loss contributes is in compare/rules; the rounding rules every
bound is built from (γ_n, u, the transcendental functions' 8 ulp) in compare/rounding.py. Inexact
inputs propagate through |W|, |f'|, |δ|; products keep their cross term.

The tolerance between the two sides is 2·E: both round independently. See docs/tolerances.md for the
table of rules and measurements.

Every function also takes a stack of steps: arrays with a leading step axis (K, ...), the batch
and feature axes last, and then returns one bound per step (the loss bound has shape (K,)).
"""
import numpy as np

from numpy_impl.losses import takes_logits

from .rounding import gamma
from .rules import activations as activation_rules, losses as loss_rules

# Free-running mode: the margin on the propagated gap between the two sides' weights (step_tolerances).
GAP_MARGIN = 1e-9


def _T(a):
    """aᵀ of the last two axes (a stack of matrices stays a stack)."""
    return np.swapaxes(a, -1, -2)


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


def step_bounds(weights, activations, X, y, zs, outputs, u, weight_error=None, loss="mse", loss_config=None,
                epsilon=1e-7, backend="tensorflow", x_error=0.0, numpy_forward=None, loss_scale=1.0, loss_value=None):
    """Error bounds E for one side's forward outputs, loss and gradients.

    weights: [W0, b0, ...] in (units, inputs) convention; zs, outputs: the reference side's
    pre-activations and layer outputs; y: the targets after any label smoothing. weight_error:
    per-array bound on how far the two sides' input weights are apart (zero when both step from
    identical weights; the measured gap in free-running mode). Products of two inexact factors keep
    their cross term ((|x| + e_x)(|y| + e_y) − |x||y|), and slopes are maxima over the input's
    interval, so the bound holds for gaps of any size, not only to first order.
    numpy_forward: the numpy side's layer outputs, which decide its branch at a kink (relu′ at 0, |r| at 0, a
    clip's edge); without them every element near a kink gets the open bound. loss_scale and the
    loss_config's reduction: a declared convention, Keras's loss times c = loss_scale × (N for "sum"); the
    loss's bounds and δ are scaled by c, with the rounding of the product where c is not a power of two
    (loss_value, Keras's loss, sizes it). Returns {"forward": [...], "loss": float, "grads": [...]}.
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
        e_a = activation_rules.get(name)["forward_error"](z, out, e_z, u)
        e_zs.append(e_z)
        e_outputs.append(e_a)
        a = out
    # Loss, and δ = dL/d(where the loss is evaluated).
    loss_input = takes_logits(loss, loss_config.get("from_logits", False), activations[-1], backend)
    x, e_x = (zs[-1], e_zs[-1]) if loss_input == "z" else (outputs[-1], e_outputs[-1])
    e_y = 2 * u * np.abs(y) + u * loss_config.get("label_smoothing", 0.0) if loss_config.get("label_smoothing") else 0.0
    x_numpy = None if numpy_forward is None or loss_input == "z" else numpy_forward[-1]
    e_loss, delta, e_delta = loss_rules.get(loss)["bounds"](loss_input, y, x, e_x, u, epsilon, e_y, x_numpy)
    c = loss_rules.convention_factor(loss_config, loss_scale, X.shape[-2])
    if c != 1:
        e_loss, delta, e_delta = loss_rules.scaled(c, loss_rules.scale_roundings(c, loss_scale, u), u, e_loss, delta,
                                                   e_delta, loss_value)
    # Backward: dz = f'(z) ⊙ δ; dW = dzᵀ a_prev; db = Σ dz; δ_prev = dz W.
    e_grads, N = [], X.shape[-2]
    for l in reversed(range(len(Ws))):
        W, aW, eW = Ws[l], absW[l], eWs[l]
        a_prev = outputs[l - 1] if l > 0 else X
        e_a_prev = e_outputs[l - 1] if l > 0 else np.zeros_like(X) + x_error
        if l == len(Ws) - 1 and loss_input == "z":
            dz, e_dz = delta, e_delta
        else:
            dz, e_dz = activation_rules.get(activations[l])["backward"](
                zs[l], outputs[l], e_zs[l], e_outputs[l], delta, e_delta, u, None if numpy_forward is None else numpy_forward[l])
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
