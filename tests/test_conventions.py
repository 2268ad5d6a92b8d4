"""Declared conventions (issue 14): a network may declare a loss convention Keras supports (loss_config
"reduction", network.loss_scale), and the Keras side is built with it; undeclared, the same network fails
with the diagnosis that names it. The networks here are written independently of numpy_impl: the textbook
one after Nielsen's network.py, the library one as a framework's summed cross-entropy."""
import json

import numpy as np
import pytest

import numpy_impl
from compare import InputError, check, data, golden
from compare.cli import main

DIGITS_X, DIGITS_Y = data.load("digits")[:2]
ERROR = "python -m compare: error: "


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


class Textbook:
    """Nielsen's network.py, a mini-batch at a time: column vectors (a column per example), sigmoid layers,
    the quadratic cost C = 1/(2m)·Σ_x ‖y − a‖², delta = (a − y)·σ′(z), and SGD w ← w − (η/m)·Σ_x ∇_x,
    here w ← w − η·g with g = (1/m)·Σ_x ∇_x = dC/dw. C is k/2 × Keras's mean squared error over k outputs,
    so it declares loss_scale = k/2. The protocol's weights are (units, inputs) kernels and (units,) biases."""

    activations = ["sigmoid", "sigmoid"]

    def __init__(self, sizes, eta, seed=0, loss_scale=None, eta_in_effect=None):
        rng = np.random.default_rng(seed)
        self.weights = [rng.standard_normal((n, m)) for m, n in zip(sizes[:-1], sizes[1:])]
        self.biases = [rng.standard_normal((n, 1)) for n in sizes[1:]]
        self.learning_rate, self.eta = eta, eta if eta_in_effect is None else eta_in_effect
        if loss_scale is not None:
            self.loss_scale = loss_scale

    def get_weights(self):
        return [a.copy() for w, b in zip(self.weights, self.biases) for a in (w, b.ravel())]

    def set_weights(self, weights):
        self.weights = [np.array(w, dtype=float) for w in weights[0::2]]
        self.biases = [np.array(b, dtype=float).reshape(-1, 1) for b in weights[1::2]]

    def feedforward(self, a):
        """zs and activations of each layer for columns a (inputs, m): z = w·a + b, a' = σ(z)."""
        zs, activations = [], [a]
        for w, b in zip(self.weights, self.biases):
            zs.append(w @ activations[-1] + b)
            activations.append(sigmoid(zs[-1]))
        return zs, activations

    def forward(self, X):
        return [a.T for a in self.feedforward(X.T)[1][1:]]

    def gradients(self, X, y):
        m, Y = X.shape[0], y.T
        zs, activations = self.feedforward(X.T)
        nabla_w, nabla_b = [None] * len(self.weights), [None] * len(self.biases)
        delta = (activations[-1] - Y) * sigmoid(zs[-1]) * (1 - sigmoid(zs[-1]))
        nabla_w[-1], nabla_b[-1] = delta @ activations[-2].T, delta.sum(axis=1)
        for l in range(2, len(self.weights) + 1):
            sp = sigmoid(zs[-l]) * (1 - sigmoid(zs[-l]))
            delta = (self.weights[-l + 1].T @ delta) * sp
            nabla_w[-l], nabla_b[-l] = delta @ activations[-l - 1].T, delta.sum(axis=1)
        cost = np.sum((activations[-1] - Y) ** 2) / (2 * m)
        return cost, [g / m for pair in zip(nabla_w, nabla_b) for g in pair]

    def apply_gradients(self, grads):
        self.set_weights([w - self.eta * g for w, g in zip(self.get_weights(), grads)])


class SummedCrossEntropy:
    """A library-style tanh/softmax classifier whose loss is the cross-entropy summed over the batch,
    L = Σ_rows Σ_k y·(logsumexp(z) − z), with dL/dz = softmax(z) − y (no 1/N); plain SGD."""

    activations = ["tanh", "softmax"]
    loss = "categorical_crossentropy"

    def __init__(self, sizes, lr, seed=0, reduction=None):
        rng = np.random.default_rng(seed)
        self.params = []
        for m, n in zip(sizes[:-1], sizes[1:]):
            self.params += [rng.uniform(-1, 1, (n, m)) / np.sqrt(m), np.zeros(n)]
        self.learning_rate = lr
        if reduction is not None:
            self.loss_config = {"reduction": reduction}

    def get_weights(self):
        return [p.copy() for p in self.params]

    def set_weights(self, weights):
        self.params = [np.array(w, dtype=float) for w in weights]

    def _run(self, X):
        W0, b0, W1, b1 = self.params
        h = np.tanh(X @ W0.T + b0)
        z = h @ W1.T + b1
        shifted = z - z.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        total = e.sum(axis=1, keepdims=True)
        return h, shifted - np.log(total), e / total

    def forward(self, X):
        h, _, p = self._run(X)
        return [h, p]

    def gradients(self, X, y):
        h, log_p, p = self._run(X)
        dz = p - y
        dh = (dz @ self.params[2]) * (1 - h * h)
        return float(-np.sum(y * log_p)), [dh.T @ X, dh.sum(axis=0), dz.T @ h, dz.sum(axis=0)]

    def apply_gradients(self, grads):
        self.params = [p - self.learning_rate * g for p, g in zip(self.params, grads)]


def test_a_textbook_network_passes_1000_steps_when_it_declares_its_convention():
    report = check(Textbook([64, 30, 10], 3.0, loss_scale=5.0), DIGITS_X, DIGITS_Y, steps=1000, batch_size=10)
    assert report["ok"] and report["steps_checked"] == 1000, report["diagnosis"]
    assert report["loss_convention"] == {"reduction": "sum_over_batch_size", "loss_scale": 5.0, "declared": True,
                                         "text": "loss: mse, reduction sum_over_batch_size, × 5 (declared)"}
    assert max(q["tolerance_ratio"] for q in report["max_diff"].values()) < 1


def test_undeclared_the_textbook_network_fails_at_step_0_with_its_convention_named():
    report = check(Textbook([64, 30, 10], 3.0), DIGITS_X, DIGITS_Y, steps=1000, batch_size=10)
    assert not report["ok"] and report["first_mismatch"]["step"] == 0
    assert report["causes"] == ["half sum over outputs"]
    assert "½·Σ over outputs (k/2 × Keras's mean squared error)" in report["diagnosis"]
    assert report["loss_convention"]["declared"] is False


def test_declared_the_tolerance_still_catches_a_learning_rate_off_by_1e_7():
    net = Textbook([64, 30, 10], 3.0, loss_scale=5.0, eta_in_effect=3.0 * (1 + 1e-7))
    report = check(net, DIGITS_X, DIGITS_Y, steps=10, batch_size=10)
    m = report["first_mismatch"]
    assert m["step"] == 0 and m["quantity"] == "weights" and m["abs_diff"] > 1e4 * m["tolerance"]
    assert report["causes"] == ["learning rate"]


def test_summed_cross_entropy_passes_when_it_declares_reduction_sum():
    net = SummedCrossEntropy([64, 16, 10], 0.01, reduction="sum")
    report = check(net, DIGITS_X, DIGITS_Y, steps=200, batch_size=32)
    assert report["ok"], report["diagnosis"]
    assert report["loss_convention"]["reduction"] == "sum" and report["network"]["loss_config"] == {"reduction": "sum"}


def test_undeclared_summed_cross_entropy_fails_summed_over_the_batch():
    report = check(SummedCrossEntropy([64, 16, 10], 0.01), DIGITS_X, DIGITS_Y, steps=200, batch_size=32)
    assert not report["ok"] and report["first_mismatch"]["step"] == 0
    assert report["causes"] == ["summed over the batch"]


@pytest.mark.parametrize("reduction, scale", [("sum", 1.0), ("sum", 5.0), ("mean", 0.1), ("sum_over_batch_size", 5.0)])
def test_the_built_in_network_runs_with_a_declared_convention_and_a_tiny_error_is_still_caught(reduction, scale):
    X, y = numpy_impl.seed_data()

    def network(lr_in_effect=None):
        net = numpy_impl.Network(numpy_impl.seed_weights(), ["tanh", "linear"], 1e-3 / scale,
                                 loss_config={"reduction": reduction}, loss_scale=scale)
        if lr_in_effect:
            net.apply_gradients = lambda g: net.set_weights([w - lr_in_effect * d
                                                             for w, d in zip(net.get_weights(), g)])
        return net
    assert check(network(), X, y, steps=200)["ok"]
    report = check(network(1e-3 / scale * (1 + 1e-7)), X, y, steps=5)
    assert report["first_mismatch"]["step"] == 0 and report["first_mismatch"]["quantity"] == "weights"


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), float("inf"), "a", True, None, [5]])
def test_a_bad_loss_scale_is_refused_naming_what_was_received(value):
    net = Textbook([3, 2, 1], 0.1)
    net.loss_scale = value
    with pytest.raises(InputError, match=r"network\.loss_scale must be a finite number > 0 .*; received "):
        check(net, *numpy_impl.seed_data(), steps=1)


@pytest.mark.parametrize("value, why", [("none", "one loss value per step"), (None, "one loss value per step"),
                                        ("bogus", ""), (5, ""), (["sum"], "")])
def test_a_reduction_keras_has_not_or_that_gives_no_scalar_is_refused(value, why):
    net = SummedCrossEntropy([64, 16, 10], 0.01)
    net.loss_config = {"reduction": value}
    with pytest.raises(InputError, match="loss_config option 'reduction' must be one of 'sum_over_batch_size', "
                                         f"'mean', 'mean_with_sample_weight', 'sum'; received .*{why}"):
        check(net, DIGITS_X[:20], DIGITS_Y[:20], steps=1)


@pytest.mark.parametrize("argv, fragment", [
    (["--loss-scale", "0"], "argument --loss-scale: expected a finite number > 0; received '0'"),
    (["--loss-scale", "nan"], "received 'nan'"),
    (["--loss-scale", "a"], "received 'a'"),
    (["--loss-config", '{"reduction": "none"}'], "received 'none' (it gives one loss per row"),
    (["--loss-config", '{"reduction": "bogus"}'], "must be one of 'sum_over_batch_size', 'mean', "),
    (["--impl", "numpy_impl:seed_network", "--loss-scale", "5"], "--loss-scale describes the built-in network"),
])
def test_bad_convention_options_are_one_line_and_exit_2(capsys, argv, fragment):
    code = main(argv)
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith(ERROR) and fragment in lines[0], lines


def test_the_terminal_report_says_which_convention_was_declared(capsys, tmp_path):
    code = main(["--loss-scale", "5", "--loss-config", '{"reduction": "sum"}', "--learning-rate", "1e-4",
                 "--steps", "20", "--json", str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    assert code == 0 and "loss: mse, reduction sum, × 5 (declared)" in out.splitlines()
    report = json.loads((tmp_path / "r.json").read_text())
    assert {k: report["loss_convention"][k] for k in ("reduction", "loss_scale", "declared")} == \
        {"reduction": "sum", "loss_scale": 5.0, "declared": True}


def _arrays(path):
    with np.load(path, allow_pickle=False) as f:
        return {k: v.copy() for k, v in f.items()}


def _with_spec(src, dst, change):
    """dst: the golden file src with its config's spec changed by `change` and its content hash recomputed."""
    arrays = _arrays(src)
    config = json.loads(str(arrays["config"]))
    change(config["spec"])
    arrays["config"] = np.array(json.dumps(config))
    arrays["sha256"] = np.array(golden.content_hash(arrays))
    np.savez(dst, **arrays)
    return dst


def test_a_golden_file_records_and_checks_the_convention(capsys, tmp_path):
    path = tmp_path / "sum5.npz"
    options = ["--data", "random", "--layers", "4,3,2", "--batch-size", "16", "--loss-scale", "5", "--loss-config",
               '{"reduction": "sum"}', "--learning-rate", "0.001", "--seed", "2"]
    assert main(["record", "--out", str(path), "--steps", "30", *options]) == 0
    spec = json.loads(str(_arrays(path)["config"]))["spec"]
    assert spec["loss_scale"] == 5.0 and spec["loss_config"] == {"reduction": "sum"}
    capsys.readouterr()
    assert main(["check", "--golden", str(path), "-q"]) == 0
    # a network that declares another convention is refused, naming the field
    file = golden.GoldenReference(path)
    assert file.config["spec"]["loss_scale"] == 5.0
    with pytest.raises(InputError, match="recorded for loss_scale 5.0, but the network checked declares "
                                         "loss_scale 1.0"):
        file.verify({**file.config["spec"], "loss_scale": 1.0})
    with pytest.raises(InputError, match="recorded for loss_config .*\"reduction\": \"sum\""):
        file.verify({**file.config["spec"], "loss_config": {}})


def test_a_golden_file_without_the_fields_takes_the_defaults_and_bad_values_are_refused(capsys, tmp_path):
    path = tmp_path / "guide.npz"
    assert main(["record", "--out", str(path), "--steps", "20"]) == 0
    old = _with_spec(path, tmp_path / "old.npz", lambda spec: spec.pop("loss_scale"))
    assert golden.GoldenReference(old).config["spec"]["loss_scale"] == 1.0
    capsys.readouterr()
    assert main(["check", "--golden", str(old), "-q"]) == 0
    for field, value, fragment in (("loss_scale", 0, "config spec.loss_scale must be a finite number > 0; received 0"),
                                   ("loss_scale", "a", "spec.loss_scale must be a finite number > 0; received 'a'"),
                                   ("loss_config", {"reduction": "none"}, "config spec: loss_config option "
                                                                          "'reduction' must be one of")):
        bad = _with_spec(path, tmp_path / "bad.npz", lambda spec: spec.update({field: value}))
        capsys.readouterr()
        assert main(["check", "--golden", str(bad)]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and fragment in lines[0], lines
    # a recorded convention the trajectory does not follow is caught by the file's consistency with itself
    lying = _with_spec(path, tmp_path / "lying.npz", lambda spec: spec.update(loss_scale=5.0))
    assert main(["check", "--golden", str(lying)]) == 2
    assert "disagrees with the values it was computed from" in capsys.readouterr().err


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "mean", "mean_with_sample_weight", "sum"])
def test_each_reduction_is_keras_own_factor_on_the_mean(reduction):
    """Keras's loss with the reduction against Keras's default one: the factor the rules and numpy_impl use."""
    import keras_impl.model
    from compare.rules import losses
    rng = np.random.default_rng(0)
    y = np.eye(4)[rng.integers(0, 4, 7)]
    p = rng.uniform(0.05, 1, (7, 4))
    p /= p.sum(axis=1, keepdims=True)
    for name, cls in keras_impl.model.LOSSES.items():
        k_mean, k_reduced = (float(cls(dtype="float64", reduction=r)(y, p)) for r in ("sum_over_batch_size", reduction))
        assert k_reduced == pytest.approx(losses.REDUCTIONS[reduction](7) * k_mean, rel=1e-14), name
        assert numpy_impl.losses.REDUCTIONS[reduction](7) == losses.REDUCTIONS[reduction](7)


def test_keras_knows_every_reduction_accepted_or_refused_and_refuses_another():
    import keras
    from compare.rules import losses
    for name in list(losses.REDUCTIONS) + list(losses.REFUSED_REDUCTIONS):
        keras.losses.MeanSquaredError(reduction=name)
    with pytest.raises(ValueError, match="reduction"):
        keras.losses.MeanSquaredError(reduction="bogus")
    assert set(losses.REDUCTIONS) == set(numpy_impl.losses.REDUCTIONS)


def test_the_loss_scale_is_inside_keras_autodiff():
    """Keras's gradients with loss_scale 5 are 5 × its gradients without (from the tape, not multiplied after)."""
    from keras_impl import KerasStep, build_model
    X, y = numpy_impl.seed_data()
    weights = numpy_impl.seed_weights()
    plain = KerasStep(build_model([3, 2, 1], ["tanh", "linear"]), 1e-3).step(weights, X, y)
    scaled = KerasStep(build_model([3, 2, 1], ["tanh", "linear"]), 1e-3, loss_scale=5.0).step(weights, X, y)
    assert scaled["loss"] == pytest.approx(5 * plain["loss"], rel=1e-15)
    for g5, g1 in zip(scaled["grads"], plain["grads"]):
        np.testing.assert_allclose(g5, 5 * g1, rtol=1e-9)


def test_the_exact_referee_finds_neither_side_wrong_under_a_declared_convention():
    X, y = numpy_impl.seed_data()
    net = numpy_impl.Network(numpy_impl.seed_weights(), ["tanh", "linear"], 1e-4, loss_config={"reduction": "sum"},
                             loss_scale=5.0)
    report = check(net, X, y, steps=3, referee="exact")
    assert report["ok"] and report["referee"]["verdict"] == "neither"
    assert report["referee"]["numpy"]["loss"]["error_over_bound"] <= 1
