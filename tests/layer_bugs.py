"""Planted mistakes in single layers, as people write them: each a course-style function with one mistake, the
layer it is checked as, and the cause the diagnosis must name (tests/test_layers.py). The correct functions
are numpy_impl/layers; each mistake is written the way it is made, not computed from the check's prediction.
"""
import numpy as np

from compare import adapters
from numpy_impl import layers as L

RNG = np.random.default_rng(11)
X4 = RNG.standard_normal((2, 3, 7, 6))       # NCHW, odd and even sizes
W4 = RNG.standard_normal((4, 3, 3, 3))
B4 = RNG.standard_normal(4)
X3 = RNG.standard_normal((3, 2, 9))          # (N, C, T)
W3 = RNG.standard_normal((4, 2, 3))


# --- convolution ---------------------------------------------------------------------------------------------
def conv_flipped(x, w, b, param):
    return L.conv_forward(x, w[:, :, ::-1, ::-1], b, param)


def conv_flipped_backward(dout, cache):
    dx, dw, db = L.conv_backward(dout, cache)
    return dx, dw[:, :, ::-1, ::-1], db


def conv_pad_first(x, w, b, param):
    """'same' with stride 2 on an even size padded as (1, 0) on each side that needs one: the extra at the start."""
    xp = np.pad(x, ((0, 0), (0, 0), (1, 0), (1, 0)))
    return L.conv_forward(xp, w, b, dict(param, pad="valid"))


def conv_valid_for_same(x, w, b, param):
    return L.conv_forward(x, w, b, dict(param, pad="valid"))


def conv_dw_mean(dout, cache):
    dx, dw, db = L.conv_backward(dout, cache)
    return dx, dw / dout.shape[0], db


def conv1d_flipped(x, w, b, param):
    return L.conv1d_forward(x, w[:, :, ::-1], b, param)


# --- pooling ---------------------------------------------------------------------------------------------------
def max_pool_every_element(dout, cache):
    """dx: the window's gradient copied to every element, as if the max were a sum."""
    xp_shape, win, (HH, WW), (sh, sw), pads = cache
    dx = np.zeros(xp_shape)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            dx[:, :, i * sh:i * sh + HH, j * sw:j * sw + WW] += dout[:, :, i:i + 1, j:j + 1]
    return dx


def max_pool_averaged(dout, cache):
    return max_pool_every_element(dout, cache) / (cache[2][0] * cache[2][1])


def avg_pool_sum(x, param):
    out, cache = L.avg_pool_forward(x, param)
    return out * param["pool_height"] * param["pool_width"], cache


def max_pool_no_stride(x, param):
    return L.max_pool_forward(x, dict(param, stride=1))


# --- normalization ---------------------------------------------------------------------------------------------
def bn_unbiased(x, gamma, beta, param):
    mode = param["mode"]
    if mode == "test":
        return L.batchnorm_forward(x, gamma, beta, param)
    axes = tuple(range(x.ndim - 1))
    mu, var = x.mean(axis=axes), x.var(axis=axes, ddof=1)
    momentum = param.get("momentum", 0.99)
    _, cache = L.batchnorm_forward(x, gamma, beta, dict(param))
    param["running_mean"] = param["running_mean"] * momentum + mu * (1 - momentum)
    param["running_var"] = param["running_var"] * momentum + var * (1 - momentum)
    return gamma * (x - mu) / np.sqrt(var + param.get("eps", 1e-3)) + beta, cache


def bn_no_mean_path(dout, cache):
    """dx through x̂ and the variance only: the mean's own path (−Σ dx̂/σ / m) left out."""
    x, mean, var, gamma, eps, axes = cache
    if axes is None:
        return L.batchnorm_backward(dout, cache)
    m = np.prod([x.shape[a] for a in axes])
    std_inv = 1 / np.sqrt(var + eps)
    xc, dxhat = x - mean, dout * gamma
    dvar = np.sum(dxhat * xc, axis=axes, keepdims=True) * -0.5 * std_inv ** 3
    _, dgamma, dbeta = L.batchnorm_backward(dout, cache)
    return dxhat * std_inv + dvar * 2 * xc / m, dgamma, dbeta


def bn_torch_eps(x, gamma, beta, param):
    return _with(param, "eps", 1e-5, lambda: L.batchnorm_forward(x, gamma, beta, param))


def _with(param, key, value, fn):
    missing = object()
    saved = param.get(key, missing)
    param[key] = value
    try:
        return fn()
    finally:
        if saved is missing:
            del param[key]
        else:
            param[key] = saved


def bn_torch_momentum(x, gamma, beta, param):
    momentum = param.get("momentum", 0.99)
    return _with(param, "momentum", 1 - momentum, lambda: L.batchnorm_forward(x, gamma, beta, param))


def bn_batch_stats_in_test(x, gamma, beta, param):
    return L.batchnorm_forward(x, gamma, beta, dict(param, mode="train"))


def ln_unbiased(x, gamma, beta, param):
    out, cache = L.layernorm_forward(x, gamma, beta, param)
    mu, var = x.mean(axis=-1, keepdims=True), x.var(axis=-1, keepdims=True, ddof=1)
    return gamma * (x - mu) / np.sqrt(var + 1e-3) + beta, cache


def ln_torch_eps(x, gamma, beta, param):
    return L.layernorm_forward(x, gamma, beta, {"eps": 1e-5})


# --- dropout -----------------------------------------------------------------------------------------------------
def dropout_backward_no_mask(dout, cache):
    keep, scale = cache
    return dout * scale


def dropout_not_inverted(x, param):
    out, (keep, scale) = L.dropout_forward(x, param)
    if param["mode"] == "test":
        return out, (keep, scale)
    return np.where(keep, x, 0.0), (keep, 1.0)


def dropout_backward_identity(dout, cache):
    return dout


# --- embedding ---------------------------------------------------------------------------------------------------
def embedding_overwrite(dout, cache):
    x, shape = cache
    dW = np.zeros(shape)
    dW[x] = dout  # fancy assignment: the last occurrence of an id wins
    return dW


def embedding_first_wins(dout, cache):
    x, shape = cache
    dW = np.zeros(shape)
    flat, rows = x.reshape(-1), dout.reshape(-1, shape[1])
    for i in range(len(flat) - 1, -1, -1):
        dW[flat[i]] = rows[i]
    return dW


def embedding_mean(dout, cache):
    return L.embedding_backward(dout, cache) / dout.shape[0]


# --- activations ---------------------------------------------------------------------------------------------------
def relu_ge(dout, cache):
    x = cache
    return dout * (x >= 0)


def softmax_diagonal(dout, a):
    return a * (1 - a) * dout


def tanh_of_input(x):
    out, _ = L.activation_forward(x, "tanh")
    return out, x


def tanh_grad_of_input(dout, cache):
    return dout * (1 - cache * cache)


def sigmoid_of_input(x):
    return L.activation_forward(x, "sigmoid")[0], x


def sigmoid_grad_of_input(dout, cache):
    return dout * cache * (1 - cache)


# --- dense, flatten ---------------------------------------------------------------------------------------------------
def affine_dw_transposed(dout, cache):
    dx, dw, db = L.affine_backward(dout, cache)
    return dx, dw.T, db


def affine_db_not_summed(dout, cache):
    dx, dw, db = L.affine_backward(dout, cache)
    return dx, dw, dout


def affine_dx_sign(dout, cache):
    dx, dw, db = L.affine_backward(dout, cache)
    return -dx, dw, db


def flatten_fortran(x):
    return x.reshape(x.shape[0], -1, order="F"), x.shape


def flatten_fortran_backward(dout, shape):
    return dout.reshape(shape, order="F")


def flatten_not_reshaped_back(dout, shape):
    return dout


def flatten_batch_folded(x):
    return x.reshape(-1), x.shape


def _conv(forward=L.conv_forward, backward=L.conv_backward, pad="same", stride=1):
    return adapters.conv(forward, backward, W4, B4, {"pad": pad, "stride": stride})


def _pool(forward, backward, kind="max", stride=2, pad="valid", size=2):
    return adapters.pool(forward, backward, {"pool_height": size, "pool_width": size, "stride": stride, "pad": pad}, kind)


def _bn(forward=L.batchnorm_forward, backward=L.batchnorm_backward):
    return adapters.batchnorm(forward, backward, RNG.standard_normal(5) + 1, RNG.standard_normal(5),
                              {"running_mean": RNG.standard_normal(5), "running_var": RNG.uniform(0.5, 2, 5)})


def _ln(forward=L.layernorm_forward):
    return adapters.layernorm(forward, L.layernorm_backward, RNG.standard_normal(5) + 1, RNG.standard_normal(5))


def _act(forward, backward, keras_layer):
    return adapters.elementwise(forward, backward, keras_layer)


XN = RNG.standard_normal((6, 5)) * 2 + 1
XR = RNG.standard_normal((6, 5))
XR[0, :2] = 0.0  # relu's kink is reached
IDS = np.array([[1, 3, 1, 0], [3, 3, 2, 1]])
TABLE = RNG.standard_normal((5, 3))
FLAT = {"class_name": "Flatten", "config": {}}

# (id, family, make() → (layer, x, training), expected cause)
BUGS = [
    ("conv flipped kernel", "conv", lambda: (_conv(conv_flipped, conv_flipped_backward), X4, True), "flipped_kernel"),
    ("conv 'same' extra at the start", "conv", lambda: (_conv(conv_pad_first, stride=2), X4[:, :, :6, :6], True),
     "same_padding_side"),
    ("conv 'valid' for 'same'", "conv", lambda: (_conv(conv_valid_for_same), X4, True), "output_shape_arithmetic"),
    ("conv dW divided by the batch", "conv", lambda: (_conv(backward=conv_dw_mean), X4, True), "batch_mean"),
    ("conv1d flipped kernel", "conv", lambda: (adapters.conv(conv1d_flipped, L.conv1d_backward, W3, B4, {"pad": "valid"}),
                                               X3, True), "flipped_kernel"),
    ("max pool gradient to every element", "pool", lambda: (_pool(L.max_pool_forward, max_pool_every_element), X4, True),
     "pool_every_element"),
    ("max pool gradient averaged", "pool", lambda: (_pool(L.max_pool_forward, max_pool_averaged), X4, True),
     "pool_averaged"),
    ("average pool sums", "pool", lambda: (_pool(avg_pool_sum, L.avg_pool_backward, "average"), X4, True), "pool_sum"),
    ("max pool stride ignored", "pool", lambda: (_pool(max_pool_no_stride, L.max_pool_backward), X4, True),
     "output_shape_arithmetic"),
    ("batch norm unbiased variance", "norm", lambda: (_bn(bn_unbiased), XN, True), "norm_unbiased_variance"),
    ("batch norm without the mean's path", "norm", lambda: (_bn(backward=bn_no_mean_path), XN, True), "norm_no_mean_path"),
    ("batch norm eps 1e-5", "norm", lambda: (_bn(bn_torch_eps), XN, True), "norm_epsilon"),
    ("batch norm PyTorch momentum", "norm", lambda: (_bn(bn_torch_momentum), XN, True), "norm_momentum_swapped"),
    ("batch norm batch statistics in inference", "norm", lambda: (_bn(bn_batch_stats_in_test), XN, False),
     "norm_wrong_mode"),
    ("layer norm unbiased variance", "norm", lambda: (_ln(ln_unbiased), XN, True), "norm_unbiased_variance"),
    ("layer norm eps 1e-5", "norm", lambda: (_ln(ln_torch_eps), XN, True), "norm_epsilon"),
    ("dropout gradient without the mask", "dropout",
     lambda: (adapters.dropout(L.dropout_forward, dropout_backward_no_mask, 0.3), XR, True), "dropout_no_mask"),
    ("dropout not inverted", "dropout",
     lambda: (adapters.dropout(dropout_not_inverted, L.dropout_backward, 0.3), XR, True), "dropout_not_inverted"),
    ("dropout gradient passed through", "dropout",
     lambda: (adapters.dropout(L.dropout_forward, dropout_backward_identity, 0.3), XR, True),
     "dropout_unmasked_unscaled"),
    ("embedding rows overwritten", "embedding",
     lambda: (adapters.embedding(L.embedding_forward, embedding_overwrite, TABLE), IDS, True), "embedding_overwrite_last"),
    ("embedding first occurrence wins", "embedding",
     lambda: (adapters.embedding(L.embedding_forward, embedding_first_wins, TABLE), IDS, True),
     "embedding_overwrite_first"),
    ("embedding gradient divided by the batch", "embedding",
     lambda: (adapters.embedding(L.embedding_forward, embedding_mean, TABLE), IDS, True), "batch_mean"),
    ("relu' = 1 at 0", "activation",
     lambda: (_act(lambda x: (np.maximum(x, 0), x), relu_ge, {"class_name": "ReLU", "config": {}}), XR, True),
     "relu_grad_at_zero"),
    ("softmax Jacobian diagonal", "activation",
     lambda: (_act(L.softmax_forward, softmax_diagonal, {"class_name": "Softmax", "config": {}}), XR, True),
     "softmax_diagonal"),
    ("tanh' from the input", "activation",
     lambda: (_act(tanh_of_input, tanh_grad_of_input, {"class_name": "Activation", "config": {"activation": "tanh"}}),
              XR, True), "tanh_grad_of_input"),
    ("sigmoid' from the input", "activation",
     lambda: (_act(sigmoid_of_input, sigmoid_grad_of_input,
                   {"class_name": "Activation", "config": {"activation": "sigmoid"}}), XR, True),
     "sigmoid_grad_of_input"),
    ("dense dW transposed", "dense",
     lambda: (adapters.dense(L.affine_forward, affine_dw_transposed, RNG.standard_normal((4, 5)), B4), XR, True),
     "transposed"),
    ("dense db not summed", "dense",
     lambda: (adapters.dense(L.affine_forward, affine_db_not_summed, RNG.standard_normal((4, 5)), B4), XR, True),
     "not_summed_over_batch"),
    ("dense dx sign", "dense",
     lambda: (adapters.dense(L.affine_forward, affine_dx_sign, RNG.standard_normal((4, 5)), B4), XR, True), "sign"),
    ("flatten in Fortran order", "reshape",
     lambda: (_act(flatten_fortran, flatten_fortran_backward, FLAT), X4, True), "flatten_order"),
    ("flatten gradient not reshaped back", "reshape",
     lambda: (_act(L.flatten_forward, flatten_not_reshaped_back, FLAT), X4, True), "not_reshaped_back"),
    ("flatten folds the batch", "reshape",
     lambda: (_act(flatten_batch_folded, L.flatten_backward, FLAT), X4, True), "batch_folded"),
]
