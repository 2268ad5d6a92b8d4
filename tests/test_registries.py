"""One rule, one place: compare, numpy_impl and keras_impl know the same activations, losses and
optimizers, and an unknown name is refused on every side, never defaulted."""
import numpy as np
import pytest

import keras_impl.model
import numpy_impl.losses
import numpy_impl.ops
import numpy_impl.optimizers
from compare import InputError, exact, protocol, rules
from compare.rules import activations, losses, optimizers

import numpy_impl


@pytest.mark.parametrize("compare_side, numpy_side, keras_side", [
    (activations.ACTIVATIONS, numpy_impl.ops.ACTIVATIONS, keras_impl.model.ACTIVATIONS),
    (losses.LOSSES, numpy_impl.losses.LOSSES, keras_impl.model.LOSSES),
    (optimizers.OPTIMIZERS, numpy_impl.optimizers.OPTIMIZERS, keras_impl.model.OPTIMIZERS),
])
def test_every_side_knows_the_same_names(compare_side, numpy_side, keras_side):
    assert set(compare_side) == set(numpy_side) == set(keras_side)


def test_every_optimizer_option_has_a_range_or_is_a_bool():
    for name, optimizer in numpy_impl.optimizers.OPTIMIZERS.items():
        numeric = {k for k, v in optimizer.defaults.items() if not isinstance(v, bool)}
        assert numeric == set(optimizers.OPTIMIZERS[name]["ranges"]), name


@pytest.mark.parametrize("module, kind", [(activations, "activation"), (losses, "loss"), (optimizers, "optimizer")])
def test_an_unknown_name_is_refused_with_the_valid_ones(module, kind):
    with pytest.raises(InputError, match=f"unknown {kind} 'gelu'; expected one of .*"):
        module.get("gelu")


def test_the_rules_refuse_names_the_tolerance_once_defaulted():
    # before: an unknown activation got slope 1 in the bound and the identity in the exact referee
    weights = numpy_impl.glorot_uniform([2, 2, 1], 0)
    X, y = np.ones((2, 2)), np.ones((2, 1))
    with pytest.raises(InputError, match="unknown activation 'gelu'"):
        exact.step(weights, ["gelu", "linear"], X, y, 0.1)
    with pytest.raises(InputError, match="unknown optimizer 'lion'"):
        exact.step(weights, ["tanh", "linear"], X, y, 0.1, optimizer="lion")


def test_keras_side_refuses_an_unknown_activation():
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        keras_impl.model.build_model([2, 2, 1], ["gelu", "linear"])


def test_protocol_takes_its_names_from_the_rules():
    net = numpy_impl.Network(numpy_impl.glorot_uniform([2, 3, 1], 0), ["elu", "linear"], 0.01)
    spec = protocol.describe(net, 2, 1)
    assert spec["activations"] == ["elu", "linear"]
    net.activations = ["softmax", "linear"]
    with pytest.raises(InputError, match="softmax is supported on the last layer only"):
        protocol.describe(net, 2, 1)
    assert rules.lookup({"a": 1}, "thing", "a") == 1


@pytest.mark.parametrize("config, fragment", [({"num_heads": 2, "key_dim": 4, "use_gate": True}, "use_gate=True"),
                                              ({"num_heads": 2, "key_dim": 4, "sliding_window": 3}, "sliding_window=3")])
def test_attention_options_keras_added_and_no_bound_covers_are_refused(config, fragment):
    """Keras 3.15's MultiHeadAttention gained a gate (its own weights) and a sliding window (a mask): neither the
    bound (compare/bounds_attention.py) nor the exact referee computes them, so the check refuses them."""
    from compare.rules import layers
    assert fragment in layers.get("MultiHeadAttention")["refuse"](config)
