"""The optional protocol method forward_and_gradients(X, y) → (outputs, loss, grads): used in place of forward(X)
and gradients(X, y) where a network's class defines it, never through a wrapper's delegation, and checked like them."""
import pytest

import numpy_impl
from compare import check
from compare.errors import InputError
from numpy_impl import stack
from numpy_impl.guide import GuideAsWritten

X, Y = numpy_impl.seed_data()


class Counting(numpy_impl.Network):
    """The guide's network counting its calls; `shift` moves its first layer's outputs in forward_and_gradients."""

    def __init__(self, shift=0.0, shape=None):
        net = numpy_impl.seed_network()
        super().__init__(net.get_weights(), net.activations, net.learning_rate)
        self.calls, self.shift, self.shape = {"forward": 0, "combined": 0}, shift, shape

    def forward(self, X):
        self.calls["forward"] += 1
        return super().forward(X)

    @property
    def forward_and_gradients(self):
        def run(X, y):
            self.calls["combined"] += 1
            outputs, loss, grads = self._backprop(X, y)
            outputs = [outputs[0] + self.shift] + outputs[1:]
            return (outputs, loss) if self.shape == "pair" else (outputs, loss, grads)
        return run


def test_a_network_with_the_combined_method_is_checked_through_it_alone():
    net = Counting()
    report = check(net, X, Y, steps=20)
    assert report["ok"] and report["steps_checked"] == 20
    assert net.calls == {"forward": 0, "combined": 20}


def test_its_outputs_are_compared_against_keras():
    report = check(Counting(shift=1e-9), X, Y, steps=5)
    assert not report["ok"]
    assert (report["first_mismatch"]["step"], report["first_mismatch"]["quantity"], report["first_mismatch"]["name"]) \
        == (0, "forward", "a0")


def test_a_malformed_return_is_one_line_naming_the_method():
    with pytest.raises(InputError) as exc:
        check(Counting(shape="pair"), X, Y, steps=2)
    assert "network.forward_and_gradients(X, y) must return (outputs, loss, grads)" in str(exc.value)
    assert "received tuple of 2" in str(exc.value) and "\n" not in str(exc.value)


class Wrapper:
    """A user's wrapper that forwards every attribute to the network inside and overrides gradients (doubled)."""

    def __init__(self):
        self.inner = numpy_impl.seed_network()

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def gradients(self, X, y):
        loss, grads = self.inner.gradients(X, y)
        return loss, [2 * g for g in grads]


def test_a_wrappers_own_gradients_are_not_replaced_by_the_inner_networks_method():
    report = check(Wrapper(), X, Y, steps=3)
    assert not report["ok"]
    assert (report["first_mismatch"]["step"], report["first_mismatch"]["quantity"]) == (0, "gradient")


def test_subclasses_that_override_forward_or_gradients_are_checked_through_those():
    """numpy_impl's own networks define the method; a subclass with its own gradients (the guide's printed
    backprop) or forward is checked through them: the guide's sign flip is still caught at step 0."""
    assert numpy_impl.seed_network().forward_and_gradients is not None
    seed = numpy_impl.seed_network()
    guide = GuideAsWritten(seed.get_weights(), seed.activations, seed.learning_rate)
    assert guide.forward_and_gradients is None
    report = check(guide, X, Y, steps=3)
    assert not report["ok"] and report["first_mismatch"]["quantity"] == "gradient"
    assert stack.cnn().forward_and_gradients is not None
    cnn = stack.cnn()
    own = type("Own", (stack.Stack,), {"gradients": lambda self, X, y: stack.Stack.gradients(self, X, y)})
    assert own(cnn.modules, cnn.loss, cnn.optimizer, cnn.learning_rate).forward_and_gradients is None
