"""The optional protocol method forward_and_gradients(X, y) → (outputs, loss, grads): used in place of forward(X)
and gradients(X, y) where a network's class defines it, never through a wrapper's delegation, and checked like them."""
import types

import pytest

import numpy_impl
from compare import check, protocol
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
    """numpy_impl's Network defines the method; a subclass with its own gradients (the guide's printed backprop)
    or forward is checked through them: the guide's sign flip is still caught at step 0."""
    assert numpy_impl.seed_network().forward_and_gradients is not None
    seed = numpy_impl.seed_network()
    guide = GuideAsWritten(seed.get_weights(), seed.activations, seed.learning_rate)
    assert guide.forward_and_gradients is None
    report = check(guide, X, Y, steps=3)
    assert not report["ok"] and report["first_mismatch"]["quantity"] == "gradient"


GRADIENTS, FORWARD = numpy_impl.Network.gradients, numpy_impl.Network.forward  # before any patch


def doubled(self, X, y):
    loss, grads = GRADIENTS(self, X, y)
    return loss, [2 * g for g in grads]


def shifted(self, X):
    return [a + 1e-9 for a in FORWARD(self, X)]


@pytest.mark.parametrize("where", ["instance", "class"])
@pytest.mark.parametrize("name, fn, quantity", [("gradients", doubled, "gradient"), ("forward", shifted, "forward")])
def test_a_method_set_on_the_instance_or_patched_on_the_class_is_the_one_checked(monkeypatch, where, name, fn,
                                                                                quantity):
    """Found by a review: the method was chosen by the class's own definitions, so a doubled gradients set on the
    instance (the way a test plants a bug) was never called and the check said OK."""
    net = numpy_impl.seed_network()
    if where == "instance":
        setattr(net, name, types.MethodType(fn, net))
    else:
        monkeypatch.setattr(numpy_impl.Network, name, fn)
    assert net.forward_and_gradients is None
    report = check(net, X, Y, steps=3)
    assert not report["ok"] and (report["first_mismatch"]["step"], report["first_mismatch"]["quantity"]) == (
        0, quantity)


class RaisingWrapper(Wrapper):
    """A wrapper whose own forward_and_gradients property raises AttributeError: Python would then answer the
    name from __getattr__, the inner network's method (found by a review)."""

    @property
    def forward_and_gradients(self):
        raise AttributeError("not here")


def test_a_wrappers_raising_property_is_an_error_not_the_inner_networks_method():
    with pytest.raises(InputError) as exc:
        check(RaisingWrapper(), X, Y, steps=2)
    assert "reading network.forward_and_gradients raised AttributeError: not here" in str(exc.value)


def test_numpy_impls_layered_networks_call_forward_apart():
    """A layered network's forward(X) must change no state (its moving statistics are the step's): numpy_impl's
    Stack has no forward_and_gradients, so its forward(X) is called and checked every step."""
    assert not hasattr(stack.cnn(), "forward_and_gradients")


class ShortGradients(Counting):
    @property
    def forward_and_gradients(self):
        def run(X, y):
            outputs, loss, grads = self._backprop(X, y)
            return outputs, loss, grads[:-1]
        return run


def test_a_short_gradient_list_names_the_gradients_of_the_method():
    with pytest.raises(InputError) as exc:
        check(ShortGradients(), X, Y, steps=2)
    assert "the gradients of network.forward_and_gradients(X, y) are 3 arrays; expected 4" in str(exc.value)


def test_another_networks_bound_method_set_on_the_network_is_not_its_own():
    """Found by a review: gradients bound to another network (a copy's cached method, a stale twin) passed the
    property's test of the function alone, and the check said OK on weights 1.5 × the network's."""
    import copy
    net, other = numpy_impl.seed_network(), numpy_impl.seed_network()
    other.set_weights([1.5 * w for w in other.get_weights()])
    net.gradients = other.gradients
    assert net.forward_and_gradients is None
    assert not check(net, X, Y, steps=3)["ok"]
    cached = numpy_impl.seed_network()
    cached.gradients = cached.gradients  # a bound method kept on the instance, then the network copied
    twin = copy.copy(cached)
    assert twin.forward_and_gradients is None
    assert not check(twin, X, Y, steps=3)["ok"]


class OddDict(numpy_impl.Network):
    """A network whose __getattribute__ answers __dict__ with a number (found by a review: a raw TypeError)."""

    def __init__(self):
        seed = numpy_impl.seed_network()
        super().__init__(seed.get_weights(), seed.activations, seed.learning_rate)

    def __getattribute__(self, name):
        return 7 if name == "__dict__" else object.__getattribute__(self, name)


def test_the_lookup_never_goes_through_the_networks_own_attribute_machinery():
    report = check(OddDict(), X, Y, steps=3)
    assert report["ok"] and protocol.COMBINED_NOTE in report["notes"]


def test_the_report_says_when_the_method_stood_in_for_forward_and_gradients():
    assert protocol.COMBINED_NOTE in check(numpy_impl.seed_network(), X, Y, steps=2)["notes"]
    seed = numpy_impl.seed_network()
    guide = GuideAsWritten(seed.get_weights(), seed.activations, seed.learning_rate)
    assert protocol.COMBINED_NOTE not in check(guide, X, Y, steps=2)["notes"]


class Raises(Counting):
    @property
    def forward_and_gradients(self):
        def run(X, y):
            raise RuntimeError("bad\nthing")
        return run


def test_a_message_with_line_breaks_is_one_line():
    with pytest.raises(InputError) as exc:
        check(Raises(), X, Y, steps=2)
    assert str(exc.value).endswith("network.forward_and_gradients(X, y) raised RuntimeError: bad / thing")
