"""Any dense stack, loss, optimizer and mini-batch schedule: agreement, planted bugs, and Keras's details."""
import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import numpy_impl
from compare import check, data
from compare.checking import batches
from numpy_impl import losses, optimizers

OPTIMIZER_CONFIGS = [
    ("sgd", {}), ("sgd", {"momentum": 0.9}), ("sgd", {"momentum": 0.5, "nesterov": True}),
    ("adam", {}), ("adam", {"amsgrad": True, "beta_1": 0.8}), ("adamw", {}), ("adamw", {"weight_decay": 0.1}),
    ("rmsprop", {}), ("rmsprop", {"momentum": 0.9, "centered": True}), ("adagrad", {}),
    ("adagrad", {"initial_accumulator_value": 0.3}), ("sgd", {"weight_decay": 0.01}),
]


@st.composite
def configs(draw):
    """A random dense stack with a loss that suits its last layer, an optimizer, data and batches."""
    sizes = draw(st.lists(st.integers(1, 6), min_size=3, max_size=5))
    hidden = draw(st.lists(st.sampled_from(["tanh", "sigmoid", "relu", "elu", "linear"]),
                           min_size=len(sizes) - 2, max_size=len(sizes) - 2))
    loss, last, loss_config = draw(st.sampled_from([
        ("mse", "linear", {}), ("mse", "tanh", {}), ("mae", "linear", {}), ("mse", "softmax", {}),
        ("binary_crossentropy", "sigmoid", {}), ("binary_crossentropy", "linear", {"from_logits": True}),
        ("binary_crossentropy", "sigmoid", {"label_smoothing": 0.1}),
        ("categorical_crossentropy", "softmax", {}), ("categorical_crossentropy", "linear", {"from_logits": True}),
    ]))
    if loss == "categorical_crossentropy" or last == "softmax":
        sizes[-1] = max(sizes[-1], 2)
    optimizer, optimizer_config = draw(st.sampled_from(OPTIMIZER_CONFIGS))
    seed = draw(st.integers(0, 2 ** 16))
    rows = draw(st.integers(2, 24))
    return dict(sizes=sizes, activations=hidden + [last], loss=loss, loss_config=loss_config, optimizer=optimizer,
                optimizer_config=optimizer_config, seed=seed, rows=rows,
                batch_size=draw(st.integers(1, rows)), learning_rate=draw(st.sampled_from([0.001, 0.01, 0.1])))


def build(cfg, cls=numpy_impl.Network):
    net = cls(numpy_impl.glorot_uniform(cfg["sizes"], cfg["seed"]), cfg["activations"], cfg["learning_rate"],
              loss=cfg["loss"], loss_config=cfg["loss_config"], optimizer=cfg["optimizer"],
              optimizer_config=cfg["optimizer_config"])
    X, y = data.random_data(cfg["sizes"][0], cfg["sizes"][-1], cfg["loss"], cfg["seed"], rows=cfg["rows"])
    return net, X, y


SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(configs())
def test_numpy_side_agrees_with_keras_on_random_configurations(cfg):
    net, X, y = build(cfg)
    report = check(net, X, y, steps=5, batch_size=cfg["batch_size"], seed=cfg["seed"])
    assert report["ok"], (report["first_mismatch"], report["diagnosis"])
    assert report["steps_checked"] == 5
    assert all(s["tolerance_ratio"] <= 1 for s in report["max_diff"].values())


class FlippedSign(numpy_impl.Network):
    def gradients(self, X, y):
        loss, grads = super().gradients(X, y)
        return loss, [-g for g in grads]


class DoubledGradient(numpy_impl.Network):
    def gradients(self, X, y):
        loss, grads = super().gradients(X, y)
        return loss, [2 * g for g in grads]


class FrozenLastLayer(numpy_impl.Network):
    def apply_gradients(self, grads):
        frozen = self.weights[-2:]
        super().apply_gradients(grads)
        self.weights[-2:] = frozen


class NoBiasInForward(numpy_impl.Network):
    def _forward(self, X):
        saved = self.weights
        self.weights = [w if i % 2 == 0 else np.zeros_like(w) for i, w in enumerate(saved)]
        try:
            return super()._forward(X)
        finally:
            self.weights = saved


class LearningRateOff(numpy_impl.Network):
    def apply_gradients(self, grads):
        declared = self.learning_rate
        self.learning_rate = declared * (1 + 1e-3)
        super().apply_gradients(grads)
        self.learning_rate = declared


@SETTINGS
@given(configs(), st.sampled_from([FlippedSign, DoubledGradient, FrozenLastLayer, NoBiasInForward,
                                   LearningRateOff]))
def test_planted_bugs_are_caught_in_random_configurations(cfg, bug):
    correct, X, y = build(cfg)
    _, grads = correct.gradients(X[:cfg["batch_size"]], y[:cfg["batch_size"]])
    assume(max(np.abs(g).max() for g in grads) > 1e-6)  # a bug in a zero gradient changes nothing
    net, X, y = build(cfg, bug)
    report = check(net, X, y, steps=4, batch_size=cfg["batch_size"], seed=cfg["seed"])
    assert not report["ok"] and report["first_mismatch"] is not None


def test_digits_64_32_10_relu_softmax_adam_batch_32_one_epoch_agrees():
    X, y = data.load("digits")
    assert X.shape == (1797, 64) and y.shape == (1797, 10) and 0 <= X.min() and X.max() == 1
    net = numpy_impl.Network(numpy_impl.glorot_uniform([64, 32, 10], 0), ["relu", "softmax"], 0.001,
                             loss="categorical_crossentropy", optimizer="adam")
    report = check(net, X, y, epochs=1, batch_size=32, seed=0)
    assert report["ok"] and report["steps_checked"] == 57  # ceil(1797 / 32)
    assert report["data"]["steps_per_epoch"] == 57


def test_batches_are_one_seeded_permutation_per_epoch():
    schedule = batches(10, 4, seed=3)
    first = [next(schedule) for _ in range(3)]
    second = [next(schedule) for _ in range(3)]
    assert [e for e, _ in first + second] == [0, 0, 0, 1, 1, 1]
    assert [len(r) for _, r in first] == [4, 4, 2]
    assert sorted(np.concatenate([r for _, r in first])) == list(range(10))
    assert not np.array_equal(np.concatenate([r for _, r in first]), np.concatenate([r for _, r in second]))
    again = batches(10, 4, seed=3)
    assert all(np.array_equal(next(again)[1], r) for _, r in first)


def test_glorot_uniform_limits_match_keras():
    ours = numpy_impl.glorot_uniform([50, 30], seed=1)[0]
    theirs = np.asarray(keras.initializers.GlorotUniform(seed=1)((50, 30)))
    limit = np.sqrt(6 / 80)
    assert ours.shape == (30, 50)
    for sample in (ours, theirs):
        assert np.abs(sample).max() <= limit and np.abs(sample).max() > 0.97 * limit
    np.testing.assert_array_equal(ours, numpy_impl.glorot_uniform([50, 30], seed=1)[0])


# --- one focused test per Keras detail -----------------------------------------------------

def test_epsilon_is_keras_config_epsilon():
    assert losses.EPSILON == keras.config.epsilon()


def _pair(activations, loss, loss_config=None, sizes=(3, 4, 2), seed=0, optimizer="sgd", optimizer_config=None,
          cls=numpy_impl.Network, rows=12):
    net = cls(numpy_impl.glorot_uniform(list(sizes), seed), activations, 0.05, loss=loss, loss_config=loss_config,
              optimizer=optimizer, optimizer_config=optimizer_config)
    X, y = data.random_data(sizes[0], sizes[-1], loss, seed, rows=rows)
    return net, X * 3, y


def test_probabilities_are_clipped_to_epsilon(monkeypatch):
    # A tanh output gives "probabilities" below 0: Keras clips them to ε, so their gradient is 0.
    net, X, y = _pair(["relu", "tanh"], "binary_crossentropy")
    assert (net.forward(X)[-1] < 1e-7).any()  # the clip is active in this configuration
    assert check(net, X, y, steps=20)["ok"]
    unclipped = (lambda p, y: losses.binary_crossentropy(p, y, epsilon=0.0), losses.binary_crossentropy_logits)
    monkeypatch.setitem(losses.LOSSES, "binary_crossentropy", unclipped)
    net, X, y = _pair(["relu", "tanh"], "binary_crossentropy")
    report = check(net, X, y, steps=20)
    assert not report["ok"] and report["first_mismatch"]["step"] == 0
    assert report["first_mismatch"]["quantity"] in ("loss", "gradient")


class NoRenormalisation(numpy_impl.Network):
    """Categorical cross-entropy on raw relu outputs, without Keras's division by the row sum."""

    def gradients(self, X, y):
        zs, activations = self._forward(X)
        loss, grads = super().gradients(X, y)
        p = np.clip(activations[-1], 1e-7, 1 - 1e-7)
        return float(np.mean(-np.sum(y * np.log(p), axis=-1))), grads


def test_categorical_probabilities_are_renormalised_per_row():
    net, X, y = _pair(["tanh", "sigmoid"], "categorical_crossentropy", sizes=(3, 4, 3))
    net.activations = ["tanh", "relu"]  # relu rows do not sum to 1
    X = np.abs(X) + 0.5
    assert check(net, X, y, steps=10)["ok"]
    bad = NoRenormalisation(numpy_impl.glorot_uniform([3, 4, 3], 0), ["tanh", "relu"], 0.05,
                            loss="categorical_crossentropy")
    report = check(bad, X, y, steps=10)
    assert not report["ok"] and report["first_mismatch"]["quantity"] == "loss"


class ProbabilityFormula(numpy_impl.Network):
    """Binary cross-entropy on the sigmoid's output with clipping, as from_logits=False reads."""

    def gradients(self, X, y):
        loss, grads = super().gradients(X, y)
        p = np.clip(self.forward(X)[-1], 1e-7, 1 - 1e-7)
        return float(np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p)))), grads


def test_sigmoid_output_makes_keras_use_the_logits_formula():
    net, X, y = _pair(["tanh", "sigmoid"], "binary_crossentropy", sizes=(3, 1), seed=1)
    net.weights = [np.array([[30.0, 0.0, 0.0]]), np.array([0.0])]  # saturates the sigmoid
    X, y = np.array([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]]), np.array([[0.0], [1.0]])
    net.activations = ["sigmoid"]
    report = check(net, X, y, steps=3)
    assert report["ok"] and report["max_diff"]["loss"]["abs_diff"] < 1e-12
    assert any("pre-activation of the last (sigmoid) layer" in n for n in report["notes"])
    bad = ProbabilityFormula([np.array([[30.0, 0.0, 0.0]]), np.array([0.0])], ["sigmoid"], 0.05,
                             loss="binary_crossentropy")
    report = check(bad, X, y, steps=3)
    m = report["first_mismatch"]
    assert m["quantity"] == "loss" and m["keras"] == pytest.approx(30.0) and m["numpy"] < 16.2


def test_target_of_shape_n_is_expanded_for_a_one_unit_output():
    net, X, y = _pair(["tanh", "sigmoid"], "binary_crossentropy", sizes=(3, 4, 1))
    report = check(net, X, y.ravel(), steps=3)
    assert report["ok"] and report["notes"][0] == "y of shape (12,) was reshaped to (12, 1)"


@pytest.mark.parametrize("optimizer, config, cast", [
    ("sgd", {"momentum": 0.9}, "momentum"),
    ("adam", {}, "beta_1"),
    ("adamw", {"weight_decay": 0.1}, "weight_decay"),
    ("adagrad", {"initial_accumulator_value": 0.3}, "initial_accumulator_value"),
])
def test_float32_cast_hyperparameters_are_reproduced_and_explained(monkeypatch, optimizer, config, cast):
    net, X, y = _pair(["tanh", "linear"], "mse", optimizer=optimizer, optimizer_config=config)
    report = check(net, X, y, steps=20)
    assert report["ok"]
    assert any(f"{cast}=" in n and "float32" in n for n in report["notes"])
    class ExactConstants(numpy_impl.Network):  # a numpy side that keeps the exact float64 value
        def apply_gradients(self, grads):
            with monkeypatch.context() as patch:  # its own optimizer only, not compare's replica of Keras's
                patch.setattr(optimizers, "f32", lambda x: x)
                super().apply_gradients(grads)
    net, X, y = _pair(["tanh", "linear"], "mse", optimizer=optimizer, optimizer_config=config, cls=ExactConstants)
    report = check(net, X, y, steps=20)
    assert not report["ok"] and report["first_mismatch"]["quantity"] == "weights"
    assert report["causes"] == ["no float32 cast"] and f"{cast}=" in report["diagnosis"]


def test_rmsprop_and_adagrad_put_epsilon_inside_the_sqrt(monkeypatch):
    for name in ("rmsprop", "adagrad"):
        net, X, y = _pair(["tanh", "linear"], "mse", optimizer=name, optimizer_config={"epsilon": 1e-3})
        assert check(net, X, y, steps=5)["ok"]
    class EpsilonOutside(optimizers.Adagrad):
        def update(self, i, w, g, lr):
            s = self.state[i]
            s["acc"] = s["acc"] + g * g
            return w - (lr * g) / (np.sqrt(s["acc"]) + self.config["epsilon"])
    monkeypatch.setitem(optimizers.OPTIMIZERS, "adagrad", EpsilonOutside)
    net, X, y = _pair(["tanh", "linear"], "mse", optimizer="adagrad", optimizer_config={"epsilon": 1e-3})
    assert not check(net, X, y, steps=5)["ok"]


def test_float32_check_agrees_and_still_catches_a_wrong_sign():
    net = numpy_impl.Network(numpy_impl.seed_weights(), ["tanh", "linear"], 0.001, dtype="float32")
    X, y = numpy_impl.seed_data()
    report = check(net, X, y, steps=1000, dtype="float32")
    assert report["ok"] and report["dtype"] == "float32"
    assert report["max_diff"]["gradient"]["abs_diff"] > 1e-7  # float32-sized differences, inside float32 bounds
    bad = FlippedSign(numpy_impl.seed_weights(), ["tanh", "linear"], 0.001, dtype="float32")
    assert check(bad, X, y, steps=10, dtype="float32")["diagnosis"].startswith("gradients are \u22121 ×")


class DeclaresEverything:
    """A plug-in written from scratch that declares loss, optimizer and their configs."""

    activations = ["tanh", "softmax"]
    learning_rate = 0.01
    loss, loss_config = "categorical_crossentropy", {"label_smoothing": 0.1}
    optimizer, optimizer_config = "adam", {"amsgrad": True}

    def __init__(self):
        self._net = numpy_impl.Network(numpy_impl.glorot_uniform([4, 5, 3], 7), self.activations, self.learning_rate,
                                       self.loss, self.loss_config, self.optimizer, self.optimizer_config)
        self.get_weights, self.set_weights = self._net.get_weights, self._net.set_weights
        self.forward, self.gradients = self._net.forward, self._net.gradients
        self.apply_gradients = self._net.apply_gradients


def test_plugin_declaring_loss_and_optimizer_is_checked_with_them():
    X, y = data.random_data(4, 3, "categorical_crossentropy", 0, rows=20)
    report = check(DeclaresEverything(), X, y, steps=30, batch_size=8)
    assert report["ok"]
    assert report["network"]["loss"] == "categorical_crossentropy"
    assert report["network"]["optimizer_config"] == {"amsgrad": True}
