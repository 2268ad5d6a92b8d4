"""Seeded random single-layer cases (the recurrent and attention ones in layer_cases_recurrent.py and
layer_cases_attention.py): the project's own numpy layers (numpy_impl/layers, through the course
adapters of compare/adapters.py) in random configurations, shapes and value scales.

case(kind, seed) → (layer, x, training). Used by tests/test_layers.py (a few draws per kind) and by
benchmarks/layer_false_alarms.py (1,000 per kind, the figures in docs/tolerances.md).
"""
import numpy as np

from compare import adapters
from numpy_impl import layers as L


def _values(rng, shape, offset=False):
    """Normal values times 10^U(−2, 2), plus for normalization layers an offset up to ±10^3 (a large mean
    against a small spread is where the statistics lose digits)."""
    x = rng.standard_normal(shape) * 10.0 ** rng.uniform(-2, 2)
    if offset:
        x = x + rng.choice([0.0, 1.0, -1.0]) * 10.0 ** rng.uniform(-2, 3)
    return x


def _conv(rng, dims):
    n, c, f = rng.integers(1, 4), rng.integers(1, 5), rng.integers(1, 6)
    k = tuple(int(v) for v in rng.integers(1, 5, dims))
    dilated = rng.random() < 0.3
    stride = 1 if dilated else int(rng.integers(1, 4))
    dilation = int(rng.integers(2, 3)) if dilated else 1
    pad = rng.choice(["same", "valid"])
    size = tuple(int(v) for v in rng.integers(max(k) * dilation, 12, dims))
    w, b = _values(rng, (f, c) + k), _values(rng, (f,))
    forward, backward = (L.conv_forward, L.conv_backward) if dims == 2 else (L.conv1d_forward, L.conv1d_backward)
    layer = adapters.conv(forward, backward, w, b, {"stride": stride, "pad": str(pad), "dilation": dilation})
    return layer, _values(rng, (n, c) + size), True


def _pool(rng, kind):
    ph, pw = (int(v) for v in rng.integers(1, 4, 2))
    stride = int(rng.integers(1, 4))
    pad = str(rng.choice(["same", "valid"]))
    x = _values(rng, (int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(ph, 10)), int(rng.integers(pw, 10))))
    functions = {"max": (L.max_pool_forward, L.max_pool_backward), "average": (L.avg_pool_forward, L.avg_pool_backward)}
    param = {"pool_height": ph, "pool_width": pw, "stride": stride, "pad": pad}
    return adapters.pool(*functions[kind], param, kind=kind), x, True


def _activation(rng, name):
    x = _values(rng, (int(rng.integers(1, 6)), int(rng.integers(1, 9))))
    if name == "relu":
        x[rng.random(x.shape) < 0.2] = 0.0  # the kink itself: relu′(0) = 0 on both sides
        return adapters.elementwise(L.relu_forward, L.relu_backward, {"class_name": "ReLU", "config": {}}), x, True
    if name == "softmax":
        return adapters.elementwise(L.softmax_forward, L.softmax_backward, {"class_name": "Softmax", "config": {}}), x, True
    return adapters.elementwise(lambda v: L.activation_forward(v, name), L.activation_backward,
                                {"class_name": "Activation", "config": {"activation": name}}), x, True


def _dense(rng):
    d, units = int(rng.integers(1, 9)), int(rng.integers(1, 7))
    shape = (int(rng.integers(1, 6)),) + ((int(rng.integers(1, 5)),) if rng.random() < 0.3 else ()) + (d,)
    return adapters.dense(L.affine_forward, L.affine_backward, _values(rng, (units, d)), _values(rng, (units,))), \
        _values(rng, shape), True


def _dropout(rng):
    rate = float(rng.uniform(0.05, 0.8))
    return adapters.dropout(L.dropout_forward, L.dropout_backward, rate), _values(rng, (int(rng.integers(2, 9)), 6)), \
        bool(rng.random() < 0.7)


def _embedding(rng):
    v, d = int(rng.integers(2, 12)), int(rng.integers(1, 6))
    ids = rng.integers(0, v, (int(rng.integers(1, 5)), int(rng.integers(1, 8))))  # repeats are likely
    return adapters.embedding(L.embedding_forward, L.embedding_backward, _values(rng, (v, d))), ids, True


def _batchnorm(rng):
    shape = [(8, 5), (4, 3, 3, 2), (16, 7), (2, 6), (3, 4, 2, 3)][int(rng.integers(5))]
    d = shape[-1]
    param = {"running_mean": _values(rng, (d,)), "running_var": rng.uniform(0.1, 3.0, d),
             "momentum": float(rng.choice([0.99, 0.9])), "eps": float(rng.choice([1e-3, 1e-5]))}
    layer = adapters.batchnorm(L.batchnorm_forward, L.batchnorm_backward, _values(rng, (d,)), _values(rng, (d,)), param)
    return layer, _values(rng, shape, offset=True), bool(rng.random() < 0.6)


def _layernorm(rng):
    shape = [(8, 5), (4, 3, 6), (2, 9), (3, 2, 2, 4)][int(rng.integers(4))]
    d = shape[-1]
    layer = adapters.layernorm(L.layernorm_forward, L.layernorm_backward, _values(rng, (d,)), _values(rng, (d,)))
    return layer, _values(rng, shape, offset=True), True


def _flatten(rng):
    x = _values(rng, tuple(int(v) for v in rng.integers(1, 5, int(rng.integers(2, 5)))))
    return adapters.elementwise(L.flatten_forward, L.flatten_backward, {"class_name": "Flatten", "config": {}}), x, True


def _reshape(rng):
    x = _values(rng, (int(rng.integers(1, 4)), 6, 4))
    target = [(4, 6), (24,), (2, 3, 4), (-1, 2)][int(rng.integers(4))]
    return adapters.elementwise(lambda v: L.reshape_forward(v, target), L.reshape_backward,
                                {"class_name": "Reshape", "config": {"target_shape": target}}), x, True


def _global_pool(rng):
    x = _values(rng, tuple(int(v) for v in rng.integers(1, 7, 4)))
    return adapters.global_average_pool(L.global_avg_pool_forward, L.global_avg_pool_backward), x, True


def _attention(rng, causal):
    import layer_cases_attention
    return layer_cases_attention.case(int(rng.integers(2 ** 31)), causal=causal)


def _recurrent(rng, kind):
    import layer_cases_recurrent
    return layer_cases_recurrent.KINDS[kind](rng)


KINDS = {
    "Dense": _dense,
    "Conv1D": lambda rng: _conv(rng, 1),
    "Conv2D": lambda rng: _conv(rng, 2),
    "MaxPooling2D": lambda rng: _pool(rng, "max"),
    "AveragePooling2D": lambda rng: _pool(rng, "average"),
    "GlobalAveragePooling2D": _global_pool,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "BatchNormalization": _batchnorm,
    "LayerNormalization": _layernorm,
    "Dropout": _dropout,
    "Embedding": _embedding,
    "ReLU": lambda rng: _activation(rng, "relu"),
    "Softmax": lambda rng: _activation(rng, "softmax"),
    "Activation(tanh)": lambda rng: _activation(rng, "tanh"),
    "Activation(sigmoid)": lambda rng: _activation(rng, "sigmoid"),
    "Activation(elu)": lambda rng: _activation(rng, "elu"),
    "SimpleRNN": lambda rng: _recurrent(rng, "SimpleRNN"),
    "LSTM": lambda rng: _recurrent(rng, "LSTM"),
    "GRU(reset_after)": lambda rng: _recurrent(rng, "GRU(reset_after)"),
    "GRU(reset_before)": lambda rng: _recurrent(rng, "GRU(reset_before)"),
    "MultiHeadAttention": lambda rng: _attention(rng, False),
    "MultiHeadAttention(causal)": lambda rng: _attention(rng, True),
}


def case(kind, seed):
    """(layer, x, training) for `kind`, drawn from seed."""
    return KINDS[kind](np.random.default_rng([seed, list(KINDS).index(kind)]))
