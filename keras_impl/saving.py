"""A numpy network as a real Keras model, and back: the end of the migration.

`to_keras_model(network)` builds the compiled `keras.Sequential` of the network (architecture, weights,
loss, optimizer with its state: momenta, accumulators, step count); `export(network, path)` saves it as a
`.keras` file. `from_keras_model(model)` and `load(path)` give back a `numpy_impl.Network` with the same
weights, loss, optimizer and state, so training continues on either side from where it stopped.

Neither changes the process's floatx: the model is built in the network's own dtype inside `_floatx`,
which restores the caller's setting afterwards.
"""
import contextlib

from . import quiet_tensorflow

quiet_tensorflow()

import keras
import numpy as np

from .convert import from_keras, to_keras
from .model import ACTIVATIONS, LOSSES, OPTIMIZERS, build_model

# numpy_impl's name for each slot of an optimizer's state → the suffix of Keras's variable for it
STATE_NAMES = {
    "sgd": {"m": "momentum"},
    "adam": {"m": "momentum", "v": "velocity", "v_hat": "velocity_hat"},
    "adamw": {"m": "momentum", "v": "velocity", "v_hat": "velocity_hat"},
    "rmsprop": {"v": "velocity", "m": "momentum", "a": "average_gradient"},
    "adagrad": {"acc": "accumulator"},
}
LOSS_OPTIONS = ("from_logits", "label_smoothing", "reduction")


@contextlib.contextmanager
def _floatx(dtype):
    """keras.config.floatx() set to dtype while Keras objects are made (a learning rate or loss made under
    float32 keeps float32), and the caller's setting restored afterwards."""
    before = keras.config.floatx()
    keras.config.set_floatx(dtype)
    try:
        yield
    finally:
        keras.config.set_floatx(before)


def to_keras_model(network):
    """The compiled keras.Sequential of a numpy_impl.Network: its layers and weights, its loss (with
    loss_config) and its optimizer (with optimizer_config and the learning rate), the optimizer's state
    copied in. A network with loss_scale ≠ 1 has no Keras loss to save it with: refused."""
    if getattr(network, "loss_scale", 1.0) != 1.0:
        raise ValueError(f"loss_scale {network.loss_scale!r} has no Keras loss to save it with; a .keras model "
                         "takes loss_scale 1 (fold the factor into the learning rate for plain SGD)")
    dtype = np.dtype(network.dtype).name
    weights = network.get_weights()
    sizes = [weights[0].shape[1]] + [w.shape[0] for w in weights[0::2]]
    with _floatx(dtype):
        model = build_model(sizes, network.activations, dtype)
        model.set_weights(to_keras(weights))
        optimizer = OPTIMIZERS[network.optimizer](learning_rate=network.learning_rate, **network.optimizer_config)
        model.compile(loss=LOSSES[network.loss](dtype=dtype, **network.loss_config), optimizer=optimizer)
        optimizer.build(model.trainable_variables)
    _set_state(optimizer, model, network)
    return model


def export(network, path):
    """Save the network as a .keras file (weights, architecture, loss, optimizer and its state)."""
    if not str(path).endswith(".keras"):
        raise ValueError(f"a Keras model file ends in .keras; received {str(path)!r}")
    to_keras_model(network).save(path)


def from_keras_model(model):
    """A numpy_impl.Network from a keras.Sequential of Dense layers: the same weights (bit for bit), and
    when the model is compiled, its loss and optimizer with their options and the optimizer's state."""
    from numpy_impl import Network
    dense = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    names = {(v or "linear"): k for k, v in ACTIVATIONS.items()}
    activations = []
    for layer in dense:
        if not isinstance(layer, keras.layers.Dense) or not layer.use_bias:
            raise ValueError(f"only Dense layers with a bias can become a numpy network; received "
                             f"{type(layer).__name__} {layer.name!r}")
        name = layer.activation.__name__
        if name not in names:
            raise ValueError(f"layer {layer.name!r} has activation {name!r}; expected one of {', '.join(names)}")
        activations.append(names[name])
    weights = [np.array(w) for w in from_keras(model.get_weights())]
    dtype = weights[0].dtype.name
    optimizer, loss = getattr(model, "optimizer", None), getattr(model, "loss", None)
    if optimizer is None or loss is None:
        return Network(weights, activations, 0.01, dtype=dtype)
    opt_name = next((k for k, cls in OPTIMIZERS.items() if type(optimizer) is cls), None)
    loss_name = next((k for k, cls in LOSSES.items() if type(loss) is cls), None)
    if opt_name is None or loss_name is None:
        raise ValueError(f"the model's optimizer {type(optimizer).__name__} and loss {type(loss).__name__} must be "
                         f"among {', '.join(c.__name__ for c in OPTIMIZERS.values())} and "
                         f"{', '.join(c.__name__ for c in LOSSES.values())}")
    from numpy_impl.optimizers import OPTIMIZERS as NUMPY_OPTIMIZERS
    config = optimizer.get_config()
    defaults = NUMPY_OPTIMIZERS[opt_name].defaults
    optimizer_config = {k: config[k] for k in defaults if k in config and config[k] != defaults[k]}
    loss_config = {k: v for k, v in loss.get_config().items() if k in LOSS_OPTIONS}
    loss_config = {k: v for k, v in loss_config.items() if v != _default_loss_option(loss_name, k)}
    network = Network(weights, activations, float(optimizer.learning_rate.numpy()), loss=loss_name,
                      loss_config=loss_config, optimizer=opt_name, optimizer_config=optimizer_config, dtype=dtype)
    _get_state(optimizer, model, network)
    return network


def load(path, dtype="float64"):
    """The numpy network of a saved .keras model (keras.saving.load_model, compiled), loaded under floatx
    `dtype` (the optimizer's learning rate is made in floatx: under float32, 0.001 would come back as
    0.0010000000474974513)."""
    with _floatx(dtype):
        model = keras.saving.load_model(path)
    return from_keras_model(model)


def _default_loss_option(loss, option):
    return {"from_logits": False, "label_smoothing": 0.0, "reduction": "sum_over_batch_size"}.get(option)


def _slots(optimizer, model, name):
    """{(weight index, numpy slot): Keras's optimizer variable} for the model's trainable variables."""
    by_path = {v.path.split("/", 1)[1]: v for v in optimizer.variables}
    out = {}
    for i, variable in enumerate(model.trainable_variables):
        for slot, suffix in STATE_NAMES[name].items():
            found = by_path.get(f"{variable.path.replace('/', '_')}_{suffix}")
            if found is not None:
                out[i, slot] = found
    return out


def _set_state(optimizer, model, network):
    """Copy the numpy optimizer's state (transposed to Keras's kernels) and step count into Keras's."""
    state, iterations = network.optimizer_state()
    if state is None:
        return
    for (i, slot), variable in _slots(optimizer, model, network.optimizer).items():
        if slot in state[i]:
            variable.assign(to_keras([state[i][slot]])[0])
    optimizer.iterations.assign(iterations)


def _get_state(optimizer, model, network):
    """Copy Keras's optimizer state and step count into the numpy network's optimizer."""
    iterations = int(optimizer.iterations.numpy())
    if iterations == 0:
        return
    state = [{} for _ in model.trainable_variables]
    for (i, slot), variable in _slots(optimizer, model, network.optimizer).items():
        state[i][slot] = from_keras([np.array(variable.numpy())])[0]
    network.set_optimizer_state(state, iterations)
