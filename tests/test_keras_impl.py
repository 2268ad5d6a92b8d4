"""keras_impl: the weight mapping, float64 throughout, and one step made only of Keras's own numbers."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_impl
import numpy_impl
from compare import tolerance
from exact import exact_loss_and_grads


def _step(compiled=True):
    model = keras_impl.build_model([3, 2, 1], ["tanh", "linear"])
    return keras_impl.KerasStep(model, 0.001, compiled=compiled)


def test_transposition_round_trips_exactly():
    rng = np.random.default_rng(0)
    weights = [rng.normal(size=(5, 3)), rng.normal(size=5), rng.normal(size=(2, 5)), rng.normal(size=2)]
    kernels = keras_impl.to_keras(weights)
    assert [k.shape for k in kernels] == [(3, 5), (5,), (5, 2), (2,)]
    for w, back in zip(weights, keras_impl.from_keras(kernels)):
        np.testing.assert_array_equal(w, back)


def test_model_loss_and_optimizer_are_float64():
    step = _step()
    assert [v.dtype for v in step.model.trainable_variables] == ["float64"] * 4
    assert step.optimizer.learning_rate.dtype == "float64"
    X, y = numpy_impl.seed_data()
    assert step.loss_fn(y, step.model(X)).dtype == "float64"


def test_model_takes_the_numpy_weights_transposed():
    model = keras_impl.build_model([3, 2, 1], ["tanh", "linear"])
    model.set_weights(keras_impl.to_keras(numpy_impl.seed_weights()))
    X, _ = numpy_impl.seed_data()
    # The guide's predictions as printed (8 decimals).
    np.testing.assert_allclose(np.asarray(model(X)).ravel(), [2.98367463, 2.98009578, 2.97574147], atol=5e-9)


def test_step_forward_and_loss_are_the_models_own():
    X, y = numpy_impl.seed_data()
    weights = numpy_impl.seed_weights()
    out = _step().step(weights, X, y)
    model = keras_impl.build_model([3, 2, 1], ["tanh", "linear"])
    model.set_weights(keras_impl.to_keras(weights))
    np.testing.assert_array_equal(out["activations"][-1], np.asarray(model(X)))
    np.testing.assert_array_equal(out["activations"][0], np.asarray(keras.activations.tanh(out["zs"][0])))
    assert out["loss"] == float(keras.losses.MeanSquaredError()(y, model(X)))
    assert out["loss"] == 238.12000783695962


def test_step_gradients_are_keras_autodiff_and_near_exact():
    X, y = numpy_impl.seed_data()
    weights = numpy_impl.seed_weights()
    out = _step().step(weights, X, y)
    model = keras_impl.build_model([3, 2, 1], ["tanh", "linear"])
    model.set_weights(keras_impl.to_keras(weights))
    with tf.GradientTape() as tape:
        loss = keras.losses.MeanSquaredError()(y, model(X))
    expected = keras_impl.from_keras([g.numpy() for g in tape.gradient(loss, model.trainable_variables)])
    for got, want in zip(out["grads"], expected):
        np.testing.assert_array_equal(got, want)
    # And Keras itself is within the one-side rounding bound of the 50-digit gradient.
    _, exact = exact_loss_and_grads(weights, X, y)
    bounds = tolerance.step_bounds(weights, ["tanh", "linear"], X, y, out["zs"], out["activations"], 2.0 ** -53)
    for got, e, b in zip(out["grads"], exact, bounds["grads"]):
        assert np.all(np.abs(got - e) <= b + np.spacing(np.abs(e)))


def test_weights_in_are_the_loaded_weights_and_weights_out_are_one_fit_step():
    X, y = numpy_impl.seed_data()
    weights = numpy_impl.seed_weights()
    out = _step().step(weights, X, y)
    for w, got in zip(weights, out["weights_in"]):
        np.testing.assert_array_equal(w, got)
    model = keras_impl.build_model([3, 2, 1], ["tanh", "linear"])
    model.set_weights(keras_impl.to_keras(weights))
    model.compile(optimizer=keras.optimizers.SGD(0.001), loss=keras.losses.MeanSquaredError())
    model.fit(X, y, batch_size=3, epochs=1, shuffle=False, verbose=0)
    for got, want in zip(out["weights_out"], keras_impl.from_keras(model.get_weights())):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("activations, loss", [(["relu", "sigmoid", "softmax"], "categorical_crossentropy"),
                                               (["tanh", "relu", "linear"], "mse"), (["elu", "elu", "linear"], "mae")])
def test_every_layer_output_and_update_are_the_layers_and_fits_own(activations, loss):
    # step() applies each layer's activation to its own z instead of calling the layer a second
    # time; every output must still be the layer's call, bit for bit, and the update fit's.
    rng = np.random.default_rng(5)
    sizes = [4, 6, 5, 3]
    weights = numpy_impl.glorot_uniform(sizes, 5)
    X, y = rng.normal(size=(7, 4)), rng.dirichlet(np.ones(3), size=7)
    out = keras_impl.KerasStep(keras_impl.build_model(sizes, activations), 0.01, loss=loss).step(weights, X, y)
    model = keras_impl.build_model(sizes, activations)
    model.set_weights(keras_impl.to_keras(weights))
    a = X
    for layer, got in zip(model.layers, out["activations"]):
        a = layer(a)
        np.testing.assert_array_equal(got, np.asarray(a))
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss=loss)
    model.fit(X, y, batch_size=7, epochs=1, shuffle=False, verbose=0)
    for got, want in zip(out["weights_out"], keras_impl.from_keras(model.get_weights())):
        np.testing.assert_array_equal(got, want)
    assert np.abs(out["weights_out"][0] - weights[0]).max() > 1e-4  # it trained


@pytest.mark.parametrize("n_steps", [1, 25])
def test_compiled_eager_and_fit_end_with_identical_weights(n_steps):
    X, y = numpy_impl.seed_data()
    ends = []
    for compiled in (True, False):
        step, weights = _step(compiled=compiled), numpy_impl.seed_weights()
        for _ in range(n_steps):
            weights = step.step(weights, X, y)["weights_out"]
        ends.append(weights)
    model = keras_impl.build_model([3, 2, 1], ["tanh", "linear"])
    model.set_weights(keras_impl.to_keras(numpy_impl.seed_weights()))
    model.compile(optimizer=keras.optimizers.SGD(0.001), loss=keras.losses.MeanSquaredError())
    model.fit(X, y, batch_size=3, epochs=n_steps, shuffle=False, verbose=0)
    ends.append(keras_impl.from_keras(model.get_weights()))
    moved = np.abs(ends[0][2] - numpy_impl.seed_weights()[2]).max()
    assert moved > 1e-3  # the weights really trained
    for other in ends[1:]:
        for a, b in zip(ends[0], other):
            np.testing.assert_array_equal(a, b)


def test_tensorflows_elu_is_within_its_rule_and_the_rule_is_needed():
    """TensorFlow computes elu as exp(z) − 1 (Eigen), not expm1: near 0 the cancellation leaves an error
    of u·e^z, far above 16u·|a|. compare/rules/activations.py allows 16u·(a + 1) + u·|a| for z < 0;
    measured against 50-digit values on 20,000 points."""
    import mpmath
    import tensorflow as tf
    from compare.rounding import UNIT_ROUNDOFF
    from compare.rules.activations import ACTIVATIONS
    u = UNIT_ROUNDOFF["float64"]
    z = np.concatenate([np.random.default_rng(3).normal(size=10_000) * 3, -np.logspace(-12, 1.5, 10_000)])
    keras_a = tf.nn.elu(tf.constant(z)).numpy()
    exact_a = np.array([float(mpmath.expm1(mpmath.mpf(v))) if v < 0 else v for v in z])
    err = np.abs(keras_a - exact_a)
    own_error = ACTIVATIONS["elu"]["forward_error"](z, exact_a, np.zeros_like(z), u)
    assert np.all(err <= own_error)
    assert np.max(err / np.maximum(16 * u * np.abs(exact_a), np.finfo(float).tiny)) > 100  # 16u·|a| would not do
