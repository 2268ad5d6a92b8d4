"""The plug-in protocol: load a user's network and check that it keeps to it.

A network is any object with `activations`, `learning_rate`, `get_weights()`, `set_weights(w)`,
`forward(X)`, `gradients(X, y)` → (loss, grads) and `apply_gradients(grads)`; see the README.
"""
import importlib
import math
import os
import sys

import numpy as np

from .errors import InputError

METHODS = ("get_weights", "set_weights", "forward", "gradients", "apply_gradients")
KNOWN_ACTIVATIONS = ("linear", "relu", "sigmoid", "softmax", "tanh")
LOSS_OPTIONS = {"from_logits": bool, "label_smoothing": float}


def load_factory(spec):
    """'MODULE:FACTORY' → the network the zero-argument FACTORY returns; MODULE importable from the current directory."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise InputError(f"--impl expects MODULE:FACTORY, e.g. numpy_impl:seed_network; received {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # the user's module: any import failure is their input
        raise InputError(f"cannot import module {module_name!r} from --impl {spec!r}: {type(exc).__name__}: {exc}")
    factory = module
    for part in attr.split("."):
        if not hasattr(factory, part):
            raise InputError(f"module {module_name!r} has no attribute {attr!r} (from --impl {spec!r})")
        factory = getattr(factory, part)
    if not callable(factory):
        raise InputError(f"{spec} is a {type(factory).__name__}, expected a zero-argument callable that returns a network")
    return call(f"factory {spec}", factory)


def call(what, fn, *args):
    """fn(*args), with any exception from the user's code turned into a one-line InputError."""
    try:
        return fn(*args)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{what} raised {type(exc).__name__}: {exc}") from None


def as_float_array(value, what):
    """`value` as a float64 array, or an InputError naming what was received."""
    if type(value) is np.ndarray and value.dtype == np.float64:  # the usual case, checked every step
        return value
    try:
        arr = np.asarray(value)
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise TypeError
        return arr.astype(np.float64, copy=False)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a numeric array; received {type(value).__name__}"
                         f"{' of dtype ' + str(np.asarray(value, dtype=object).dtype) if isinstance(value, np.ndarray) else ''}") from None


def describe(network, n_inputs, n_outputs):
    """Check the protocol's attributes and weight shapes; return the network's spec as a dict.

    spec: sizes (every layer's width, the input included: [3, 2, 1] for the guide's network),
    activations, learning_rate, loss, loss_config, optimizer, optimizer_config.
    """
    missing = [m for m in METHODS if not callable(getattr(network, m, None))]
    missing += [a for a in ("activations", "learning_rate") if not hasattr(network, a)]
    if missing:
        raise InputError(f"the network ({type(network).__name__}) lacks {', '.join(missing)}; "
                         f"the protocol needs activations, learning_rate and methods {', '.join(METHODS)}")
    activations = network.activations
    if isinstance(activations, str) or not all(isinstance(a, str) for a in _iterable(activations)):
        raise InputError(f"network.activations must be a list of activation names; received {activations!r}")
    activations = list(activations)
    if not activations:
        raise InputError("network.activations is empty; expected one activation name per layer, e.g. "
                         "['tanh', 'linear']")
    unknown = [a for a in activations if a not in KNOWN_ACTIVATIONS]
    if unknown:
        raise InputError(f"unknown activation {unknown[0]!r}; expected one of {', '.join(KNOWN_ACTIVATIONS)}")
    if "softmax" in activations[:-1]:
        raise InputError(f"softmax is supported on the last layer only; received activations {activations}")
    lr = network.learning_rate
    if isinstance(lr, bool) or not isinstance(lr, (int, float, np.floating, np.integer)) or not math.isfinite(lr) or lr <= 0:
        raise InputError(f"network.learning_rate must be a finite number > 0; received {lr!r}")
    weights = weights_of(network, len(activations))
    sizes = [weights[0].shape[1]] + [w.shape[0] for w in weights[0::2]]
    if sizes[0] != n_inputs:
        raise InputError(f"the first kernel takes {sizes[0]} inputs but X has {n_inputs} columns")
    if sizes[-1] != n_outputs:
        raise InputError(f"the last layer has {sizes[-1]} units but y has {n_outputs} columns")
    spec = {"sizes": sizes, "activations": activations, "learning_rate": float(lr)}
    spec.update(training_spec(network))
    return spec


def training_spec(network):
    """The network's loss and optimizer, by Keras name and keyword arguments; mse and sgd when undeclared."""
    from numpy_impl.losses import LOSSES
    from numpy_impl.optimizers import OPTIMIZERS
    loss = getattr(network, "loss", "mse")
    optimizer = getattr(network, "optimizer", "sgd")
    if not isinstance(loss, str) or loss not in LOSSES:
        raise InputError(f"unknown loss {loss!r}; expected one of {', '.join(sorted(LOSSES))}")
    if not isinstance(optimizer, str) or optimizer not in OPTIMIZERS:
        raise InputError(f"unknown optimizer {optimizer!r}; expected one of {', '.join(sorted(OPTIMIZERS))}")
    loss_config = _config(network, "loss_config", LOSS_OPTIONS if loss in ("binary_crossentropy",
                                                                           "categorical_crossentropy") else {})
    optimizer_config = _config(network, "optimizer_config", OPTIMIZERS[optimizer].defaults)
    return {"loss": loss, "loss_config": loss_config, "optimizer": optimizer, "optimizer_config": optimizer_config}


def _config(network, attr, allowed):
    config = getattr(network, attr, None) or {}
    if not isinstance(config, dict):
        raise InputError(f"network.{attr} must be a dict of keyword arguments; received {config!r}")
    for key, value in config.items():
        if key not in allowed:
            valid = ", ".join(sorted(allowed)) or "none"
            hint = " (the learning rate is the network's learning_rate)" if key == "learning_rate" else ""
            raise InputError(f"{attr} has unknown option {key!r}{hint}; valid options: {valid}")
        default = allowed[key]
        kind = default if isinstance(default, type) else type(default)
        ok = (isinstance(value, bool) if kind is bool else
              value is None or (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)))
        if not ok:
            raise InputError(f"{attr} option {key!r} must be a {'bool' if kind is bool else 'finite number'}; "
                             f"received {value!r}")
    return dict(config)


def _iterable(x):
    try:
        return list(x)
    except TypeError:
        return [None]


def weights_of(network, n_layers):
    """network.get_weights() as float64 arrays, checked to form a dense stack of n_layers layers."""
    weights = call("network.get_weights()", network.get_weights)
    if not isinstance(weights, (list, tuple)):
        raise InputError(f"network.get_weights() must return a list of arrays; received {type(weights).__name__}")
    if len(weights) != 2 * n_layers:
        raise InputError(f"network.get_weights() returned {len(weights)} arrays; expected {2 * n_layers} "
                         f"(a kernel and a bias for each of the {n_layers} activations)")
    weights = [as_float_array(w, f"weight {i} from get_weights()") for i, w in enumerate(weights)]
    for l, (W, b) in enumerate(zip(weights[0::2], weights[1::2])):
        if W.ndim != 2 or b.ndim != 1 or b.shape[0] != W.shape[0]:
            raise InputError(f"layer {l}: expected a kernel (units, inputs) and a bias (units,); "
                             f"received shapes {W.shape} and {b.shape}")
        if l > 0 and W.shape[1] != weights[2 * l - 2].shape[0]:
            raise InputError(f"layer {l} takes {W.shape[1]} inputs but layer {l - 1} has "
                             f"{weights[2 * l - 2].shape[0]} units: the weights do not chain")
    return weights


def checked_list(value, shapes, what):
    """A list of float64 arrays with exactly the given shapes, or an InputError saying what differs."""
    if not isinstance(value, (list, tuple)):
        raise InputError(f"{what} must be a list of {len(shapes)} arrays; received {type(value).__name__}")
    if len(value) != len(shapes):
        raise InputError(f"{what} returned {len(value)} arrays; expected {len(shapes)}")
    arrays = [as_float_array(v, f"{what} item {i}") for i, v in enumerate(value)]
    for i, (a, shape) in enumerate(zip(arrays, shapes)):
        if a.shape != tuple(shape):
            raise InputError(f"{what} item {i} has shape {a.shape}; expected {tuple(shape)}")
    return arrays


def checked_gradients(result, shapes):
    """network.gradients(X, y) → (loss, grads), checked for form, count and shapes."""
    if not isinstance(result, (list, tuple)) or len(result) != 2:
        raise InputError(f"network.gradients(X, y) must return (loss, grads); received {type(result).__name__}")
    loss, grads = result
    try:
        loss = float(np.asarray(loss, dtype=np.float64).reshape(()))
    except (TypeError, ValueError):
        raise InputError(f"network.gradients(X, y) returned loss {loss!r}; expected a float") from None
    return loss, checked_list(grads, shapes, "network.gradients(X, y)")
