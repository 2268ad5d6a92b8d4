"""Where Keras runs: the backend chosen before Keras loads, the device, the versions, the Keras step built
once per architecture, and the precision Keras actually computes in."""
import importlib.util
import json
import os
import sys

import numpy as np

from . import data
from .errors import InputError
from .rounding import UNIT_ROUNDOFF, gamma

DTYPES = ("float64", "float32")
BACKENDS = ("tensorflow", "jax", "torch")


def use_backend(backend):
    """Select Keras's backend before Keras is imported; refuse a switch once it is loaded."""
    backend = backend or os.environ.get("KERAS_BACKEND", "tensorflow")
    if backend not in BACKENDS:
        raise InputError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    if "keras" in sys.modules:
        loaded = sys.modules["keras"].backend.backend()
        if loaded != backend:
            raise InputError(f"Keras is already loaded with the {loaded} backend in this process; start a new one "
                             f"with KERAS_BACKEND={backend} (python -m compare --backend {backend} does this)")
        return backend
    if importlib.util.find_spec(backend) is None:
        extra = f" (pip install torch==2.13.0, then pip install -e '.[{backend}]')" if backend == "torch" else \
            f" (pip install -e '.[{backend}]')"
        raise InputError(f"--backend {backend} needs the {backend} package, which is not installed{extra}")
    os.environ["KERAS_BACKEND"] = backend
    return backend


def computed_precision(keras_step, spec, dtype, rows=4):
    """The precision Keras computes this step in: `dtype`, or float32 where Keras computes float32 although
    float64 was requested (jax and torch, keras-team/keras issue 23704, whose tensors still say float64).

    Decided once per KerasStep by a probe: one step from seeded weights and data that are not exact in
    float32 (full 53-bit mantissas), then the optimizer reset. Never from the values being checked,
    which may happen to be exact in float32 (small integers, dyadic fractions).
    """
    if dtype == "float32":
        return "float32"
    if getattr(keras_step, "computed_dtype", None) is None:  # keras_step: a KerasStep
        from numpy_impl.init import glorot_uniform
        sizes = spec["sizes"]
        weights = glorot_uniform(sizes, seed=1)
        weights[1::2] = [np.random.default_rng(2).uniform(-0.5, 0.5, len(b)) for b in weights[1::2]]
        X, y = data.random_data(sizes[0], sizes[-1], spec["loss"], seed=3, rows=rows)
        out = keras_step.step(weights, X, y)
        keras_step.reset(spec["learning_rate"])
        keras_step.computed_dtype = "float32" if float32_evidence(out, weights, X, spec["activations"]) else "float64"
    return keras_step.computed_dtype


def float32_evidence(out, weights, X, activations):
    """Whether a step computed from float64 `weights` and `X` (not exact in float32) shows float32
    arithmetic: Keras changed the weights it loaded, a layer's pre-activations are all exact in float32
    (a_prev·Wᵀ + b from full 53-bit mantissas essentially never is, in float64), or a layer's
    pre-activation (or output) is further from a_prev·Wᵀ + b (or f(z)) than FLOAT32_MARGIN times what
    float64 rounding allows. float32 rounding is 2²⁹ times float64's, so the margin separates the two
    surely, and a bound that is merely a little tight never loosens a check. Outputs and gradients are
    not tested for exactness: some are exact in any precision (a 1-unit softmax is 1; mean absolute
    error's output bias gradient is a count over n)."""
    from numpy_impl import ops
    from .rules import activations as activation_rules
    if any(not np.array_equal(w, k) for w, k in zip(weights, out["weights_in"])):
        return True
    for t in out["zs"]:
        nonzero = t[t != 0]
        if nonzero.size > 1 and np.array_equal(nonzero.astype(np.float32).astype(np.float64), nonzero):
            return True
    u, a_prev, tiny = UNIT_ROUNDOFF["float64"], X, np.finfo(np.float64).tiny
    for W, b, z, a, name in zip(weights[0::2], weights[1::2], out["zs"], out["activations"], activations):
        bound = 2 * gamma(W.shape[1] + 1, u) * (np.abs(a_prev) @ np.abs(W).T + np.abs(b))
        if np.any(np.abs(z - (a_prev @ W.T + b)) > FLOAT32_MARGIN * bound):
            return True
        f = ops.ACTIVATIONS[name][0](z)
        if np.any(np.abs(a - f) > FLOAT32_MARGIN * activation_rules.get(name)["output_bound"](z, f, u, tiny)):
            return True
        a_prev = a
    return False


FLOAT32_MARGIN = 2.0 ** 10


_KERAS_STEPS = {}


def keras_step(spec, dtype):
    """A KerasStep for this architecture, loss and optimizer, built and traced once per process, reset."""
    key = json.dumps([spec["sizes"], spec["activations"], spec["loss"], spec["loss_config"], spec["optimizer"],
                      spec["optimizer_config"], dtype, spec.get("loss_scale", 1.0)], sort_keys=True)
    if key not in _KERAS_STEPS:
        from keras_impl import KerasStep, build_model
        model = build_model(spec["sizes"], spec["activations"], dtype)
        try:
            _KERAS_STEPS[key] = KerasStep(model, spec["learning_rate"], spec["loss"], spec["loss_config"],
                                          spec["optimizer"], spec["optimizer_config"],
                                          loss_scale=spec.get("loss_scale", 1.0))
        except (ValueError, TypeError) as exc:  # Keras's own check of a hyper-parameter's value
            raise InputError(f"Keras refused loss {spec['loss']} {spec['loss_config']} or optimizer "
                             f"{spec['optimizer']} {spec['optimizer_config']}: {exc}") from None
    step = _KERAS_STEPS[key]
    step.reset(spec["learning_rate"])
    return step


def versions():
    import keras
    backend = keras.backend.backend()
    return {"keras": keras.__version__, backend: sys.modules[backend].__version__, "numpy": np.__version__}


def device(backend):
    """Where Keras computed: the first device of the backend ('cpu', 'gpu', 'cuda')."""
    if backend == "jax":
        import jax
        return jax.devices()[0].platform
    if backend == "torch":
        import torch
        return "cuda" if torch.cuda.is_available() else "cpu"
    import tensorflow as tf
    return "gpu" if tf.config.list_logical_devices("GPU") else "cpu"
