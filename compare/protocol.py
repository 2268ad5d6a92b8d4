"""The plug-in protocol: load a user's network and check that it keeps to it.

A network is any object with `activations`, `learning_rate`, `get_weights()`, `set_weights(w)`,
`forward(X)`, `gradients(X, y)` → (loss, grads) and `apply_gradients(grads)`; see the README.
"""
import importlib
import math
import os
import sys

import numpy as np

from .errors import InputError, message_of, show

from .rules import activations as activation_rules, losses as loss_rules, optimizers as optimizer_rules

METHODS = ("get_weights", "set_weights", "forward", "gradients", "apply_gradients")


def load_factory(spec):
    """'MODULE:FACTORY' → the network the zero-argument FACTORY returns; MODULE importable from the current directory."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise InputError(f"--impl expects MODULE:FACTORY, e.g. numpy_impl:seed_network; received {spec!r}")
    cwd, added = os.getcwd(), os.getcwd() not in sys.path
    if added:  # first while the user's module is imported, then last: a keras_impl.py (or numpy_impl.py,
        sys.path.insert(0, cwd)  # compare.py) of the user's never stands in for this project's packages
    try:
        module = call("import", importlib.import_module, module_name)
    except InputError as exc:  # the user's module: any way its import fails is their input
        reason = str(exc).removeprefix("import raised ").removeprefix("import ")
        if reason.startswith("called sys.exit"):
            reason = reason.split(";")[0] + " while being imported (guard it: if __name__ == '__main__': ...)"
        raise InputError(f"cannot import module {module_name!r} from --impl {spec!r}: {reason}") from None
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)
            sys.path.append(cwd)
    factory = module
    for part in attr.split("."):
        factory = attribute(factory, part, _MISSING, f"module {module_name!r}")
        if factory is _MISSING:
            raise InputError(f"module {module_name!r} has no attribute {attr!r} (from --impl {spec!r})")
    if not callable(factory):
        raise InputError(f"{spec} is a {type(factory).__name__}, expected a zero-argument callable that returns a network")
    return call(f"factory {spec}", factory)


_MISSING = object()


def call(what, fn, *args):
    """fn(*args), with any way the user's code leaves turned into a one-line InputError: an exception
    of any kind, SystemExit (sys.exit inside a plug-in must not end the check with its status) and
    GeneratorExit included. Only KeyboardInterrupt, a person's Ctrl-C, passes through."""
    try:
        return fn(*args)
    except (InputError, KeyboardInterrupt):
        raise
    except SystemExit as exc:
        raise InputError(f"{what} called sys.exit({exc.code!r}); the check needs it to return, not to end the "
                         "process") from None
    except ValueError as exc:
        if "read-only" in message_of(exc):  # the arrays the check hands out are the only read-only ones
            raise InputError(f"{what} wrote to its input ({message_of(exc)}): the arrays the check passes are "
                             "read-only, so that no network can change the data behind the check's back; copy "
                             "one before changing it (X = X.copy())") from None
        raise InputError(f"{what} raised ValueError: {message_of(exc)}") from None
    except MemoryError:
        raise InputError(f"{what} ran out of memory") from None
    except BaseException as exc:  # noqa: B036 - the user's code, whatever it raises
        raise InputError(f"{what} raised {type(exc).__name__}: {message_of(exc)}") from None


def attribute(obj, name, default, what="the network"):
    """getattr(obj, name, default) where a property of the user's object may raise anything."""
    def read():
        return getattr(obj, name, default)
    return call(f"reading {what}.{name}", read)


def read_only(array):
    """`array` marked read-only: what the check hands to the network it cannot change behind the check's
    back. A network that writes to it raises, and `call` names that as writing to its input."""
    array.flags.writeable = False
    return array


def as_float_array(value, what):
    """`value` as a float64 array, or an InputError naming what was received."""
    if type(value) is np.ndarray and value.dtype == np.float64:  # the usual case, checked every step
        return value

    def convert():
        try:
            arr = np.asarray(value)
            if arr.dtype == object or not (np.issubdtype(arr.dtype, np.floating)
                                           or np.issubdtype(arr.dtype, np.integer)):
                raise TypeError
            return arr.astype(np.float64, copy=False)
        except (TypeError, ValueError):
            dtype = f" of dtype {value.dtype}" if isinstance(value, np.ndarray) else ""
            raise InputError(f"{what} must be a numeric array; received {type(value).__name__}{dtype}") from None
    return call(f"converting {what} to an array", convert)


def describe(network, n_inputs, n_outputs):
    """Check the protocol's attributes and weight shapes; return the network's spec as a dict.

    spec: sizes (every layer's width, the input included: [3, 2, 1] for the guide's network),
    activations, learning_rate, loss, loss_config (its reduction included), loss_scale, optimizer,
    optimizer_config.
    """
    missing = [m for m in METHODS if not callable(attribute(network, m, None))]
    missing += [a for a in ("activations", "learning_rate") if attribute(network, a, _MISSING) is _MISSING]
    if missing:
        raise InputError(f"the network ({type(network).__name__}) lacks {', '.join(missing)}; "
                         f"the protocol needs activations, learning_rate and methods {', '.join(METHODS)}")
    given = attribute(network, "activations", None)
    activations = call("reading network.activations",
                       lambda: _iterable(given) if isinstance(given, (list, tuple)) else None)
    if activations is None or not all(isinstance(a, str) for a in activations):
        raise InputError(f"network.activations must be a list (or tuple) of activation names; received "
                         f"{show(given)}")
    if not activations:
        raise InputError("network.activations is empty; expected one activation name per layer, e.g. "
                         "['tanh', 'linear']")
    for name in activations:
        activation_rules.get(name)
    inner = [a for a in activations[:-1] if a in activation_rules.LAST_LAYER_ONLY]
    if inner:
        raise InputError(f"{inner[0]} is supported on the last layer only; received activations {activations}")
    lr = attribute(network, "learning_rate", None)
    if not finite_number(lr) or lr <= 0:
        raise InputError(f"network.learning_rate must be a finite number > 0; received {show(lr)}")
    weights = weights_of(network, len(activations))
    refuse_nonfinite(weights, [f"item {i}" for i in range(len(weights))])
    sizes = [weights[0].shape[1]] + [w.shape[0] for w in weights[0::2]]
    if sizes[0] != n_inputs:
        raise InputError(f"the first kernel takes {sizes[0]} inputs but X has {n_inputs} columns")
    if sizes[-1] != n_outputs:
        raise InputError(f"the last layer has {sizes[-1]} units but y has {n_outputs} columns")
    spec = {"sizes": sizes, "activations": activations, "learning_rate": float(lr)}
    spec.update(training_spec(network))
    return spec


def refuse_nonfinite(weights, names):
    """An InputError naming the first weight (by `names`) that holds a value that is not finite, before any training."""
    bad = next(((name, w) for name, w in zip(names, weights) if not np.all(np.isfinite(w))), None)
    if bad:
        name, w = bad
        where = [int(j) for j in np.argwhere(~np.isfinite(w))[0]]
        raise InputError(f"network.get_weights() {name} holds {w[tuple(where)]} at index {where} before any "
                         "training; expected finite initial weights")


def training_spec(network):
    """The network's loss and optimizer, by Keras name and keyword arguments; mse and sgd when undeclared.
    loss_scale (default 1): a declared constant multiplying Keras's loss (0.5 for ½·mean, k/2 for the textbook
    quadratic cost), applied inside the Keras side's differentiated function."""
    from numpy_impl.optimizers import OPTIMIZERS
    loss = attribute(network, "loss", "mse")
    optimizer = attribute(network, "optimizer", "sgd")
    loss_rule = loss_rules.get(loss)
    optimizer_rules.get(optimizer)
    loss_config = checked_config("loss_config", attribute(network, "loss_config", None), loss_rule["options"],
                                 loss_rule["ranges"])
    optimizer_config = checked_config("optimizer_config", attribute(network, "optimizer_config", None),
                                      OPTIMIZERS[optimizer].defaults, optimizer_rules.get(optimizer)["ranges"])
    scale = attribute(network, "loss_scale", 1.0)
    if not finite_number(scale) or scale <= 0:
        raise InputError(f"network.loss_scale must be a finite number > 0 (the constant multiplying Keras's loss, "
                         f"e.g. 0.5); received {show(scale)}")
    return {"loss": loss, "loss_config": loss_config, "loss_scale": float(scale), "optimizer": optimizer,
            "optimizer_config": optimizer_config}


def finite_number(value):
    """Whether `value` is a real number (not a bool) whose float is finite: an integer too large for a
    float (10**400) is not."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def checked_config(attr, config, allowed, ranges):
    """A copy of the keyword arguments `config`, each option known, of its type and in its range.

    `allowed` maps each option to its default (or its type): a bool option takes true/false; a name (a str
    default) one of the names `ranges` accepts; a numeric one a finite number in `ranges` (low, high, high
    included: the rules entry's), and null only where the default itself is None (weight_decay).
    """
    config = {} if config is None else config
    if not isinstance(config, dict):
        raise InputError(f"{attr} must be a dict of keyword arguments; received {show(config)}")
    out = {}
    for key, value in config.items():
        if key not in allowed:
            valid = ", ".join(sorted(allowed)) or "none"
            hint = " (the learning rate is the network's learning_rate)" if key == "learning_rate" else ""
            raise InputError(f"{attr} has unknown option {show(key)}{hint}; valid options: {valid}")
        default = allowed[key]
        kind = default if isinstance(default, type) else type(default)
        if kind is bool:
            if not isinstance(value, bool):
                raise InputError(f"{attr} option {key!r} must be a bool (true or false); received {show(value)}")
        elif kind is str:  # a name: ranges holds (the accepted ones, the refused ones with the reason)
            accepted, refused = ranges[key]
            if not isinstance(value, str) or value not in accepted:
                why = f" ({refused[value]})" if _hashable(value) and value in refused else ""
                raise InputError(f"{attr} option {key!r} must be one of {', '.join(map(repr, accepted))}; received "
                                 f"{show(value)}{why}")
        elif value is None and default is None:
            pass
        else:
            low, high, closed = ranges.get(key, (-math.inf, math.inf, False))
            number = finite_number(value)
            if not number or not (low <= value and (value <= high if closed else value < high)):
                expected = f"in [{low:g}, {high:g}{']' if closed else ')'}" if math.isfinite(high) else f"≥ {low:g}"
                null = " or null" if default is None else ""
                raise InputError(f"{attr} option {key!r} must be a finite number {expected}{null}; "
                                 f"received {show(value)}")
            value = float(value)
        out[key] = value
    return out


def _hashable(value):
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _iterable(x):
    try:
        return list(x)
    except TypeError:
        return None


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


def checked_list(value, shapes, what, verb="returned"):
    """A list of float64 arrays with exactly the given shapes, or an InputError saying what differs."""
    if not isinstance(value, (list, tuple)):
        raise InputError(f"{what} must be a list of {len(shapes)} arrays; received {type(value).__name__}")
    if len(value) != len(shapes):
        raise InputError(f"{what} {verb} {len(value)} array{'' if len(value) == 1 else 's'}; expected {len(shapes)}")
    arrays = [as_float_array(v, f"{what} item {i}") for i, v in enumerate(value)]
    for i, (a, shape) in enumerate(zip(arrays, shapes)):
        if a.shape != tuple(shape):
            raise InputError(f"{what} item {i} has shape {a.shape}; expected {tuple(shape)}")
    return arrays


def checked_gradients(result, shapes, what="network.gradients(X, y)"):
    """network.gradients(X, y) → (loss, grads), checked for form, count and shapes; what: the call that returned
    them (forward_and_gradients's gradients are named as such)."""
    if not isinstance(result, (list, tuple)) or len(result) != 2:
        raise InputError(f"{what} must return (loss, grads); received {type(result).__name__}")
    loss, grads = result

    def as_float():
        try:
            if np.asarray(loss).dtype.kind not in "fiu":
                raise TypeError
            return float(np.asarray(loss, dtype=np.float64).reshape(()))
        except (TypeError, ValueError):
            raise InputError(f"{what} returned loss {show(loss)}; expected a float") from None
    grads_what, verb = (f"the gradients of {what}", "are") if what == COMBINED_CALL else (what, "returned")
    return call(f"converting the loss from {what}", as_float), checked_list(grads, shapes, grads_what, verb)


# The optional method that returns the layer outputs with the loss and gradients, for a network that computes
# them anyway: the check then calls it instead of forward(X) and gradients(X, y), one forward pass fewer.
COMBINED = "forward_and_gradients"
COMBINED_CALL = "network.forward_and_gradients(X, y)"
COMBINED_NOTE = ("the network's forward_and_gradients(X, y) (the protocol's optional method) was checked in place of "
                 "forward(X) and gradients(X, y), which were not called")


def combined(network):
    """network.forward_and_gradients where the network itself defines it (the instance, or its class), callable;
    else None. Looked up as Python looks it up (a data descriptor of the class, then the instance's own
    attributes, then the class's), but never through __getattr__ or __getattribute__: a wrapper that forwards
    unknown attributes to a network inside it and overrides its gradients must not have the inner network's method
    stand in for its own gradients (nor when its own property raises AttributeError, which Python would answer from
    __getattr__). Whatever the user's code raises on the way is a one-line InputError."""
    def lookup():
        if isinstance(network, type):  # a class as the network (rare): its attribute as Python gives it
            import inspect
            found = inspect.getattr_static(network, COMBINED, None)
            getter = None if found is None else inspect.getattr_static(type(found), "__get__", None)
            return found if getter is None else getter(found, None, network)
        found = next((base.__dict__[COMBINED] for base in type(network).__mro__ if COMBINED in base.__dict__), None)
        kind = type(found)  # a descriptor's methods are looked up on its type
        if found is not None and (hasattr(kind, "__set__") or hasattr(kind, "__delete__")):  # a property: first
            return kind.__get__(found, network, type(network))
        try:
            own = object.__getattribute__(network, "__dict__")  # the instance's own attributes, as Python sees them
        except AttributeError:
            own = {}
        if isinstance(own, dict) and COMBINED in own:
            return own[COMBINED]  # an instance attribute: not bound
        return found if found is None or not hasattr(kind, "__get__") else kind.__get__(found, network, type(network))
    method = call(f"reading network.{COMBINED}", lookup)
    return method if callable(method) else None


def outputs_and_gradients(network, X_of, y_of, checked_outputs):
    """One batch's layer outputs and (loss, grads) as the network returns them, and the call that gave the
    gradients: forward_and_gradients(X, y) where the network defines it, else forward(X) then gradients(X, y).
    X_of(), y_of(): a fresh read-only copy for each call. checked_outputs(outputs, name, combined) checks the
    outputs as soon as they come, before gradients is called."""
    method = combined(network)
    if method is not None:
        outputs, result = split_combined(call(COMBINED_CALL, method, X_of(), y_of()))
        return checked_outputs(outputs, f"the outputs of {COMBINED_CALL}", True), result, COMBINED_CALL
    outputs = checked_outputs(call("network.forward(X)", network.forward, X_of()), "network.forward(X)", False)
    return outputs, call("network.gradients(X, y)", network.gradients, X_of(), y_of()), "network.gradients(X, y)"


def split_combined(result):
    """forward_and_gradients(X, y)'s (outputs, loss, grads) → (outputs, (loss, grads)); an InputError otherwise."""
    if not isinstance(result, (list, tuple)) or len(result) != 3:
        size = f" of {len(result)}" if isinstance(result, (list, tuple)) else ""
        raise InputError(f"{COMBINED_CALL} must return (outputs, loss, grads), outputs as forward(X) returns them; "
                         f"received {type(result).__name__}{size}")
    return result[0], (result[1], result[2])
