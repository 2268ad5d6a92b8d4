"""numpy_impl against the guide's printed numbers, 50-digit arithmetic and Keras's autodiff."""
import numpy as np
import pytest

import numpy_impl
from compare import tolerance
from exact import exact_loss_and_grads


def test_seed_data_is_the_guides():
    X, y = numpy_impl.seed_data()
    assert X.shape == (3, 3) and y.shape == (3, 1)
    np.testing.assert_array_equal(y.ravel(), [4.0, 29.0, 9.0])


def test_forward_reproduces_the_guides_predictions():
    X, _ = numpy_impl.seed_data()
    hidden, predicted = numpy_impl.seed_network().forward(X)
    assert hidden.shape == (3, 2) and predicted.shape == (3, 1)
    # The guide prints 8 decimals, so they agree to half a unit in the last place.
    np.testing.assert_allclose(predicted.ravel(), [2.98367463, 2.98009578, 2.97574147], rtol=0, atol=5e-9)


def test_loss_is_the_guides_mse_to_one_ulp():
    X, y = numpy_impl.seed_data()
    loss, _ = numpy_impl.seed_network().gradients(X, y)
    assert abs(loss - 238.12000783695962) <= np.spacing(238.12000783695962)


def test_gradients_agree_with_50_digit_arithmetic_within_the_rounding_bound():
    """|numpy − exact| ≤ E per element, E the one-side bound that compare's tolerances are built from."""
    X, y = numpy_impl.seed_data()
    net = numpy_impl.seed_network()
    weights = net.get_weights()
    loss, grads = net.gradients(X, y)
    exact_loss, exact_grads = exact_loss_and_grads(weights, X, y)
    zs = [X @ weights[0].T + weights[1]]
    outputs = net.forward(X)
    zs.append(outputs[0] @ weights[2].T + weights[3])
    bounds = tolerance.step_bounds(weights, net.activations, X, y, zs, outputs, 2.0 ** -53)
    assert abs(loss - exact_loss) <= bounds["loss"]
    for g, e, b in zip(grads, exact_grads, bounds["grads"]):
        assert np.all(np.abs(g - e) <= b + np.spacing(np.abs(e)))
    # The saturated first hidden unit: float64 keeps only ~7 of its gradient's digits' worth of bound.
    assert bounds["grads"][0][0, 0] / abs(exact_grads[0][0, 0]) > 1e-11
    assert bounds["grads"][0][1, 0] / abs(exact_grads[0][1, 0]) < 1e-13


def test_guide_as_written_is_minus_one_and_a_half_times_the_true_gradient():
    X, y = numpy_impl.seed_data()
    _, wrong = numpy_impl.guide_as_written().gradients(X, y)
    _, exact = exact_loss_and_grads(numpy_impl.seed_weights(), X, y)
    for w, e in zip(wrong, exact):
        # 1e-8: the saturated unit's gradient carries ~1e-10 relative rounding error in float64.
        np.testing.assert_allclose(w, -1.5 * e, rtol=1e-8)


def test_guide_as_written_climbs_the_loss_and_seed_network_descends():
    X, y = numpy_impl.seed_data()
    for make, sign in ((numpy_impl.guide_as_written, 1), (numpy_impl.seed_network, -1)):
        net = make()
        before, grads = net.gradients(X, y)
        net.apply_gradients(grads)
        after, _ = net.gradients(X, y)
        assert np.sign(after - before) == sign


def test_seed_network_is_fresh_each_call():
    a, b = numpy_impl.seed_network(), numpy_impl.seed_network()
    X, y = numpy_impl.seed_data()
    a.apply_gradients(a.gradients(X, y)[1])
    np.testing.assert_array_equal(b.get_weights()[0], numpy_impl.seed_weights()[0])
    assert a.learning_rate == b.learning_rate == 0.001


def test_unknown_activation_is_refused_with_the_valid_names():
    with pytest.raises(ValueError, match="unknown activation 'swish'.*tanh"):
        numpy_impl.Network(numpy_impl.seed_weights(), ["swish", "linear"], 0.001)
