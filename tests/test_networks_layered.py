"""Whole layered networks (compare/stack_check.py): the project's own CNN, CNN with batch norm and dropout, LSTM
and GRU agree with Keras step after step; planted mistakes are caught at the right step, layer and tensor, with
the right cause; a broken protocol is a one-line error."""
import re

import numpy as np
import pytest

from compare import check
from compare.errors import InputError
from numpy_impl import stack

from network_bugs import BUGS


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits
    d = load_digits()
    return d.data / 16.0, np.eye(10)[d.target]


@pytest.fixture(scope="module")
def sequences():
    from compare.data import sequences
    return sequences()


def data_for(model, digits, sequences):
    return sequences if model == "transformer" else digits


# Steps per network in the suite: a whole epoch of the CNN (57 batches of 32); the others fewer, as each step of
# theirs costs more (a GRU's bound carries signed forms through time: about 1 s a step at batch 32). Their 200-step
# runs are benchmarks/networks.py's.
STEPS = {"cnn": 57, "cnn-bn": 20, "lstm": 20, "gru": 3, "transformer": 16}


@pytest.mark.parametrize("model", sorted(STEPS))
def test_the_projects_networks_agree_with_keras(digits, sequences, model):
    X, y = data_for(model, digits, sequences)
    report = check(stack.MODELS[model](), X, y, steps=STEPS[model], batch_size=32)
    assert report["verdict"] == "ok", (report["diagnosis"], report["notes"])
    assert report["steps_checked"] == STEPS[model]
    for quantity in ("weights", "forward", "loss", "gradient"):
        assert report["max_diff"][quantity]["compared"]
        assert report["max_diff"][quantity]["tolerance_ratio"] <= 1
    # every layer's output and every weight was compared: the names carry the layer's index and class
    assert report["network"]["layers"] == stack.MODELS[model]().layers


@pytest.mark.parametrize("bug", sorted(BUGS))
def test_planted_bug_is_caught_at_its_layer(digits, sequences, bug):
    factory, step, quantity, tensor, cause = BUGS[bug]
    network = factory()
    X, y = data_for("transformer" if network.modules[0].keras_layer["class_name"] == "Embedding" else "",
                    digits, sequences)
    report = check(network, X, y, steps=step + 2, batch_size=32)
    m = report["first_mismatch"]
    assert report["verdict"] == "mismatch", report["notes"]
    assert (m["step"], m["quantity"], m["name"]) == (step, quantity, tensor), m
    assert report["location"]["layer"] == tensor.lstrip("d").split("/")[0]
    if cause is None:
        assert report["diagnosis"]
    else:
        assert cause in report["causes"], report["diagnosis"]


def test_a_mistake_of_one_part_in_ten_million_in_one_gradient_element_is_caught(digits):
    class Off(stack.Stack):
        def gradients(self, X, y):
            loss, grads = super().gradients(X, y)
            g = grads[0]
            i = np.unravel_index(np.argmax(np.abs(g)), g.shape)
            g[i] *= 1 + 1e-7
            return loss, grads
    net = stack.cnn()
    X, y = digits
    report = check(Off(net.modules, net.loss, net.optimizer, net.learning_rate), X, y, steps=2, batch_size=32)
    assert (report["first_mismatch"]["quantity"], report["first_mismatch"]["name"]) == ("gradient", "d1:Conv2D/kernel")
    assert report["causes"] == []  # one element: no factor explains it (a review found "constant factor 1" named)


def test_the_moving_statistics_after_each_step_are_compared(digits):
    class Nudged(stack.BatchNorm):  # the moving variance off by one part in 10⁹ after the update
        def forward(self, x, training, update):
            out = super().forward(x, training, update)
            if update:
                self.weights[3] = self.weights[3] * (1 + 1e-9)
            return out
    X, y = digits
    net = stack.cnn(batch_norm=True)
    net.modules[2] = Nudged(8)
    report = check(net, X, y, steps=2, batch_size=32)
    m = report["first_mismatch"]
    assert (m["step"], m["quantity"], m.get("phase"), m["name"]) == (0, "weights", "after",
                                                                      "2:BatchNormalization/moving_variance")


class Broken(stack.Stack):
    """A CNN whose protocol breaks in the way `how` says."""

    def __init__(self, how):
        net = stack.cnn()
        super().__init__(net.modules, net.loss, net.optimizer, net.learning_rate)
        self.how = how
        if how in ("layout_int", "layout_wrong"):
            self.layout = 5 if how == "layout_int" else "NHWC"

    @property
    def layers(self):
        if self.how == "unknown_layer":
            return [{"class_name": "Conv3D", "config": {}}] + super().layers[1:]
        if self.how == "activation_inside":
            return [dict(d, config={**d["config"], "activation": "relu"}) if d["class_name"] == "Conv2D" else d
                    for d in super().layers]
        return super().layers

    def get_weights(self):
        w = super().get_weights()
        if self.how == "nan_weights":
            w[0] = w[0].copy()
            w[0][0, 0, 0, 0] = np.nan
        return w[:-1] if self.how == "weights_missing" else [w[0].T] + w[1:] if self.how == "kernel_transposed" else w

    def forward(self, X):
        out = super().forward(X)
        if self.how == "floats":
            return [float(a.ravel()[0]) for a in out]
        return out[:-1] if self.how == "outputs_missing" else out


@pytest.mark.parametrize("how, words", [
    ("unknown_layer", "Conv3D"),
    ("activation_inside", "activation='relu' inside the layer"),
    ("weights_missing", "returned a list of 3: [array (3, 3, 1, 8), array (8,), array (72, 10)]; expected 4 arrays"),
    ("kernel_transposed", "1:Conv2D/kernel has shape (8, 1, 3, 3); Keras's is (3, 3, 1, 8)"),
    ("outputs_missing", "must return a list of 7 arrays"),
    # found by a review:
    ("layout_int", "network.layout must be the axis letters"),
    ("nan_weights", "1:Conv2D/kernel holds nan at index [0, 0, 0, 0] before any training"),
    ("floats", "network.forward(X) item 0 (0:Reshape) has shape ()"),
    ("layout_wrong", "has shape"),
])
def test_a_broken_protocol_is_one_line_naming_it(digits, how, words):
    X, y = digits
    if how == "layout_wrong":  # a check of another layout first: nothing of it is reused
        check(stack.cnn(), X, y, steps=1, batch_size=32)
    with pytest.raises(InputError) as exc:
        check(Broken(how), X, y, steps=1, batch_size=32)
    assert words in str(exc.value) and "\n" not in str(exc.value)


def test_options_a_layered_network_does_not_take_yet_are_refused(digits, tmp_path):
    X, y = digits
    with pytest.raises(InputError, match="golden"):
        check(stack.cnn(), X, y, steps=1, golden=object())


def test_after_training_the_network_is_compared_in_inference_mode(digits):
    X, y = digits
    report = check(stack.MODELS["cnn-bn"](), X, y, steps=3, batch_size=32)
    assert report["verdict"] == "ok" and report["inference"] == {"rows": len(X), "compared": True}

    class BatchStatisticsAlways(stack.BatchNorm):  # normalises with the batch's statistics in inference too
        def forward(self, x, training, update):
            return super().forward(x, True, update and training)
    net = stack.MODELS["cnn-bn"]()
    net.modules[2] = BatchStatisticsAlways(8)
    report = check(net, X, y, steps=3, batch_size=32)
    m = report["first_mismatch"]
    assert (m["quantity"], m["phase"], m["name"]) == ("forward", "inference", "2:BatchNormalization")
    assert report["steps_checked"] == 3 and "inference_mode" in report["causes"]


def test_the_command_line_runs_the_projects_networks(tmp_path):
    import json
    import subprocess
    import sys
    from helpers import ROOT, clean_env
    out = tmp_path / "r.json"
    done = subprocess.run([sys.executable, "-m", "compare", "--model", "transformer", "--steps", "3", "--json",
                           str(out)], cwd=ROOT, env=clean_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    assert report["verdict"] == "ok" and report["steps_checked"] == 3
    assert [d["class_name"] for d in report["network"]["layers"]][:3] == ["Embedding", "MultiHeadAttention", "Add"]
    refused = subprocess.run([sys.executable, "-m", "compare", "--model", "cnn", "--layers", "64,10"], cwd=ROOT,
                             env=clean_env(), capture_output=True, text=True)
    assert refused.returncode == 2 and "--model cnn" in refused.stderr and "--layers" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def test_the_walkthrough_takes_the_cnn_to_model_fit():
    import subprocess
    import sys
    from helpers import ROOT, clean_env
    done = subprocess.run([sys.executable, "-m", "compare", "walkthrough", "--model", "cnn"], cwd=ROOT, env=clean_env(),
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("  agree: largest |diff|") == 5 and "all five stages agree" in done.stdout


def test_model_fit_ends_where_keras_own_loop_ends_and_both_have_trained(digits):
    import tensorflow as tf
    from compare import walkthrough_layers as w
    from compare.stack_check import describe
    X, y = digits
    net = stack.cnn()
    spec = describe(net, X, y)
    start = net.get_weights()
    fitted, looped = w._fit(spec, X[:320], y[:320], start), w._loop(spec, X[:320], y[:320], start, tf)
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(fitted, looped)) <= 1e-12
    assert min(float(np.max(np.abs(a - b))) for a, b in zip(fitted, start)) > 1e-4  # ten Adam steps moved every array


def test_free_running_measures_the_drift_of_keras_own_training(digits):
    X, y = digits
    report = check(stack.MODELS["cnn-bn"](), X, y, steps=20, batch_size=32, free_running=True)
    assert report["verdict"] == "ok" and report["mode"] == "free-running"
    assert 0 <= report["drift"]["max_rel"] <= 1e-9 and report["drift"]["decorrelated_at"] is None
    from network_bugs import BUGS
    report = check(BUGS["learning_rate_1e-7"][0](), X, y, steps=3, batch_size=32, free_running=True)
    assert (report["first_mismatch"]["step"], report["first_mismatch"]["quantity"]) == (0, "weights")


def test_free_running_stops_where_the_trajectories_decorrelate(digits, monkeypatch):
    from compare import sequence
    monkeypatch.setattr(sequence, "DRIFT_LIMIT", 1e-300)  # any drift at all passes it
    X, y = digits
    report = check(stack.MODELS["cnn-bn"](), X, y, steps=20, batch_size=32, free_running=True)
    assert report["verdict"] == "incomplete" and report["steps_checked"] < 20
    assert report["drift"]["decorrelated_at"] == report["steps_checked"]  # that step's update is not vouched for


def test_assert_matches_keras_takes_a_layered_network_and_fails_with_the_layer(digits):
    from compare import assert_matches_keras
    from network_bugs import BUGS
    X, y = digits
    assert_matches_keras(stack.cnn(), X, y, steps=3, batch_size=32)
    with pytest.raises(AssertionError) as exc:
        assert_matches_keras(BUGS["conv_gradient_sign"][0](), X, y, steps=3, batch_size=32)
    assert "d1:Conv2D/kernel" in str(exc.value) and "sign is flipped" in str(exc.value)


def test_the_report_files_describe_a_layered_network(tmp_path):
    import json
    import subprocess
    import sys
    import xml.etree.ElementTree as ET
    from helpers import ROOT, clean_env
    files = {name: tmp_path / name for name in ("r.json", "p.png", "j.xml")}
    done = subprocess.run([sys.executable, "-m", "compare", "--model", "cnn", "--steps", "2", "--json", str(files["r.json"]),
                           "--plot", str(files["p.png"]), "--junit", str(files["j.xml"])], cwd=ROOT, env=clean_env(),
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "network Reshape → Conv2D → ReLU → MaxPooling2D → Flatten → Dense → Softmax, 810 parameters" in done.stdout
    suite = ET.parse(files["j.xml"]).getroot()[0]
    assert suite.get("name") == "numpy-keras-compare/Reshape-Conv2D-ReLU-MaxPooling2D-Flatten-Dense-Softmax/tensorflow/float64"
    assert suite.get("failures") == "0" and int(suite.get("tests")) == 5
    assert files["p.png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(files["r.json"].read_text())["network"]["parameters"] == 810


def test_the_finite_difference_referee_names_the_side_whose_gradient_is_wrong(digits):
    from network_bugs import BUGS
    X, y = digits
    fine = check(stack.cnn(), X, y, steps=2, batch_size=32, referee="finite_differences")["referee"]
    assert fine["verdict"] == "neither" and fine["step"] == 0 and fine["coordinates"] + fine["kinks"] == 200
    # zero biases put the convolution's background outputs exactly at relu's kink: such coordinates are left out
    assert fine["kinks"] >= 1
    flipped = check(BUGS["conv_gradient_sign"][0](), X, y, steps=2, batch_size=32, referee="finite_differences")
    assert flipped["referee"]["verdict"] == "numpy" and flipped["referee"]["keras"]["max_diff_over_allowance"] <= 1


def test_the_exact_referee_judges_every_quantity_of_a_layered_step(digits):
    """compare/exact_stack.py: each layer in 50 digits on the numpy side's input (Keras's forced step), the
    gradients through the exact layers. A correct network: neither side; planted bugs in a gradient, a moving
    statistic and an update: the numpy side, Keras within its bound."""
    from network_bugs import BUGS
    X, y = digits
    fine = check(stack.cnn(batch_norm=True, dropout=0.25), X, y, steps=2, batch_size=32, referee="exact")["referee"]
    assert fine["verdict"] == "neither" and fine["step"] == 0 and fine["digits"] == 50
    assert set(fine["numpy"]) == {"forward", "loss", "gradient", "state", "weights"}
    for side in ("numpy", "keras"):
        assert all(0 < q["error_over_bound"] <= 1 for q in fine[side].values() if q["abs_error"] > 0)
    for name in ("conv_gradient_sign", "bn_momentum", "learning_rate_1e-7"):
        make, step, quantity, tensor, _ = BUGS[name]
        judged = check(make(), X, y, steps=step + 1, batch_size=32, referee="exact")["referee"]
        assert judged["verdict"] == "numpy", name
        wrong = {"gradient": "gradient", "weights": "state" if "moving" in tensor else "weights"}[quantity]
        assert judged["numpy"][wrong]["error_over_bound"] > 1e3, name
        assert max(q["error_over_bound"] for q in judged["keras"].values()) <= 1, name


@pytest.mark.parametrize("bug", ["lstm_state_carried", "attention_not_causal"])
def test_the_exact_referee_names_the_numpy_side_of_recurrent_and_attention_bugs(digits, sequences, bug):
    """A state carried across batches (step 1: the update is not refereed, the optimizer has state) and attention
    without its causal mask: the numpy side's output is wrong, Keras's within its bound."""
    from network_bugs import BUGS
    make, step, quantity, tensor, _ = BUGS[bug]
    X, y = sequences if "attention" in bug else digits
    judged = check(make(), X, y, steps=step + 1, batch_size=32, referee="exact")["referee"]
    assert judged["verdict"] == "numpy" and judged["step"] == step
    assert judged["numpy"]["forward"]["error_over_bound"] > 1e3
    assert max(q["error_over_bound"] for q in judged["keras"].values()) <= 1
    assert ("weights" in judged["numpy"]) == (step == 0)


def test_the_exact_referee_names_keras_where_keras_is_wrong(digits, monkeypatch):
    """Keras's forced step with one gradient element off by one part in a million: the check stops there and the
    referee, computing the step itself, finds the numpy side right and Keras wrong."""
    from keras_impl.stack import ForcedStep
    X, y = digits
    real = ForcedStep.step

    def off(self, *args):
        values = real(self, *args)
        values["grads"][0] = values["grads"][0].copy()
        values["grads"][0].reshape(-1)[5] *= 1 + 1e-6
        return values
    monkeypatch.setattr(ForcedStep, "step", off)
    report = check(stack.cnn(), X, y, steps=2, batch_size=32, referee="exact")
    assert report["verdict"] == "mismatch" and report["referee"]["verdict"] == "keras"
    at = [int(i) for i in np.unravel_index(5, (3, 3, 1, 8))]  # the kernel's shape in Keras
    assert report["referee"]["keras"]["gradient"]["where"] == f"d1:Conv2D/kernel{at}"
    assert max(q["error_over_bound"] for q in report["referee"]["numpy"].values()) <= 1


class PoolOnly:
    """A global average over a large image, then Dense: few weights, much arithmetic (found by a review: a layer
    without weights had been charged its output's size, and X not at all)."""
    layers = [{"class_name": "GlobalAveragePooling2D", "config": {}}, {"class_name": "Dense", "config": {"units": 3}},
              {"class_name": "Softmax", "config": {}}]
    loss, optimizer, learning_rate = "categorical_crossentropy", "sgd", 0.1

    def get_weights(self):
        return [np.zeros((4, 3)), np.zeros(3)]

    set_weights = forward = gradients = apply_gradients = get_weights


def test_the_exact_referee_refuses_a_network_too_large_for_50_digit_arithmetic(digits):
    from compare.exact_stack import MAX_PRODUCTS
    X, y = digits
    with pytest.raises(InputError, match=f"up to {MAX_PRODUCTS:,} products.*finite_differences"):
        check(stack.cnn(filters=512), X, y, steps=1, batch_size=32, referee="exact")
    images = np.random.default_rng(0).normal(size=(32, 300, 300, 4))
    with pytest.raises(InputError, match=f"up to {MAX_PRODUCTS:,} products"):
        check(PoolOnly(), images, np.eye(3)[np.arange(32) % 3], steps=1, batch_size=32, referee="exact")



def test_a_mismatch_of_a_layered_network_is_reported_in_full_from_the_command_line(tmp_path):
    """Found by a new user's trial: every failing layered network had crashed the text report (its location had no
    "text") and, with it, the JSON and JUnit files. Now: the mismatch, the location, the diagnosis, the referee's
    lines and the verdict, exit code 1, and both files written."""
    import json
    import os
    import subprocess
    import sys
    import xml.etree.ElementTree as ET
    from helpers import ROOT, clean_env
    files = {name: tmp_path / name for name in ("r.json", "j.xml")}
    done = subprocess.run([sys.executable, "-m", "compare", "--impl", "network_bugs:conv_gradient_sign", "--data",
                           "digits", "--batch-size", "32", "--steps", "2", "--referee", "exact", "--json",
                           str(files["r.json"]), "--junit", str(files["j.xml"])], cwd=ROOT,
                          env=clean_env(PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, "tests")])),
                          capture_output=True, text=True)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    out = done.stdout
    assert "…" not in out  # piped, the tables had been cut to 80 columns ("gradie…", "1.35e-…")
    assert "location: the backprop first goes wrong at layer 1:Conv2D: its gradient d1:Conv2D/kernel disagrees" in out
    assert "diagnosis: the gradients of every layer after 1:Conv2D agree" in out and "sign is flipped" in out
    assert "referee exact (50 digits) at step 0: the numpy side is wrong" in out
    assert "numpy  wrong: gradient d1:Conv2D/kernel[" in out and out.rstrip().splitlines()[-1].startswith("verdict: FAIL")
    report = json.loads(files["r.json"].read_text())
    assert report["location"]["where"] == "backprop" and report["location"]["layer"] == "1:Conv2D"
    assert report["causes"] == ["sign_flipped"] and report["referee"]["verdict"] == "numpy"
    assert ET.parse(files["j.xml"]).getroot()[0].get("failures") == "1"


def test_large_logits_are_no_false_alarm(digits):
    """Found by a review: at learning rate 10 the logits reach 1e4 and a softmax of 1 − 1.2e-13 rounds to 1.0 on
    one side (exp(z − lse), lse rounded by u·|lse|): the loss rule's bound of the softmax now carries that term."""
    X, y = digits
    report = check(stack.cnn(learning_rate=10.0), X, y, steps=4, batch_size=32)
    assert report["verdict"] == "ok", report["diagnosis"]


def test_a_double_update_and_an_unbiased_variance_are_told_apart(digits):
    class Twice(stack.BatchNorm):  # forward(X) updates the moving statistics too
        def forward(self, x, training, update):
            return super().forward(x, training, training)

    class Unbiased(stack.BatchNorm):  # the moving variance from the unbiased (m − 1) estimate
        def forward(self, x, training, update):
            old = self.weights[3]
            out = super().forward(x, training, update)
            if update:
                m = x.size // x.shape[1]
                var = np.moveaxis(x, 1, -1).reshape(-1, x.shape[1]).var(axis=0, ddof=1)
                self.weights[3] = old * 0.99 + var * (1 - 0.99)
                assert m > 1
            return out
    X, y = digits
    causes = []
    for module in (Twice(8), Unbiased(8)):
        net = stack.cnn(batch_norm=True)
        net.modules[2] = module
        report = check(net, X, y, steps=2, batch_size=32)
        assert report["first_mismatch"]["name"].startswith("2:BatchNormalization/moving_")
        causes.append(report["causes"])
    assert causes == [["double_update"], []]


def test_a_layer_that_reaches_nothing_has_zero_gradients(digits):
    net = stack.cnn()
    side = stack.Dense(np.random.default_rng(1).uniform(-0.1, 0.1, (3, 72)), np.zeros(3))
    side.inputs = [4]
    net.modules.insert(5, side)
    for m in net.modules[6:]:  # the layers after it read what they read before
        m.inputs = [4] if isinstance(m, stack.Dense) else [6]
    X, y = digits
    report = check(net, X, y, steps=2, batch_size=32)
    assert report["verdict"] == "ok", report["diagnosis"]


def test_data_that_does_not_fit_the_network_is_refused(digits, sequences):
    X, y = digits
    for bad_y, shape in ((np.argmax(y, axis=1), "(1797, 1)"), (y[:, :9], "(1797, 9)")):
        with pytest.raises(InputError, match=rf"y has shape {re.escape(shape)}; the network's output is \(1797, 10\)"):
            check(stack.cnn(), X, bad_y, steps=1, batch_size=32)
    with pytest.raises(InputError, match="X must have a batch axis"):
        check(stack.cnn(), X[:0], y[:0], steps=1)
    Xs, ys = sequences
    for bad in (Xs + 0.5, np.where(Xs == 3, 8, Xs)):
        with pytest.raises(InputError, match=r"an Embedding reads whole ids in \[0, 8\)"):
            check(stack.MODELS["transformer"](), bad, ys, steps=1, batch_size=32)



def test_a_bound_that_overflows_makes_the_check_inconclusive_not_a_mismatch(digits):
    """Found by benchmarks/network_false_alarms.py: at a learning rate of 1.6 an LSTM's gates saturate and the bound of
    its kernel's update overflows at step 1; that step cannot be judged, and the check says so (exit 3)."""
    X, y = digits
    report = check(stack.recurrent("lstm", 650, learning_rate=1.6260715395922183), X, y, steps=5, batch_size=32,
                   seed=717)
    assert report["verdict"] == "inconclusive" and report["first_mismatch"] is None
    assert report["steps_checked"] == 1 and "1:LSTM/lstm_cell/kernel (updated)" in report["notes"][-1]
    assert "overflowed (Keras's values are finite there) and everything else agreed" in report["notes"][-1]


def test_an_overflowed_bound_does_not_hide_a_visible_mistake(digits):
    """Found by a review: at learning rate 1 the LSTM kernel's update bound overflows at step 1, and a gradient
    doubled from step 1 was reported inconclusive; the other tensors are compared first, so it is a mismatch."""
    class DoubledLater(stack.Stack):
        calls = 0

        def gradients(self, X, y):
            loss, grads = super().gradients(X, y)
            self.calls += 1
            return loss, [g * 2 if self.calls > 1 else g for g in grads]
    net = stack.recurrent("lstm", 650, learning_rate=1.6260715395922183)
    X, y = digits
    report = check(DoubledLater(net.modules, net.loss, net.optimizer, net.learning_rate), X, y, steps=3,
                   batch_size=32, seed=717)
    assert report["verdict"] == "mismatch" and report["first_mismatch"]["step"] == 1


def test_the_referee_judges_the_mismatching_element(digits):
    class BiasDoubled(stack.Conv2D):  # found by a review: the draw of 200 coordinates could miss all 8 biases
        def backward(self, dout):
            dx, grads = super().backward(dout)
            return dx, [grads[0], 2 * grads[1]]
    net = stack.cnn()
    net.modules[1] = BiasDoubled(*net.modules[1].weights)
    X, y = digits
    report = check(net, X, y, steps=2, batch_size=32, referee="finite_differences")
    assert report["first_mismatch"]["name"] == "d1:Conv2D/bias"
    judged = report["referee"]
    assert judged["verdict"] == "numpy" or "kink at the mismatching element" in judged.get("note", "")


def test_free_running_past_the_drift_limit_at_the_last_step_is_incomplete(sequences):
    X, y = sequences  # the transformer's embedding: Keras's own (per-occurrence) Adam drifts at step 0
    report = check(stack.MODELS["transformer"](), X, y, steps=1, batch_size=32, free_running=True)
    assert report["verdict"] == "incomplete" and report["drift"]["decorrelated_at"] == 0


class Convention(stack.Stack):
    """The CNN under a declared loss convention: loss_config's reduction and loss_scale, as Dense networks take them;
    `applies` says whether its own loss and gradients follow it (a mistake when not)."""

    def __init__(self, reduction="sum_over_batch_size", scale=1.0, applies=True):
        net = stack.cnn()
        super().__init__(net.modules, net.loss, net.optimizer, net.learning_rate)
        self.loss_config, self.loss_scale, self.applies = {"reduction": reduction}, scale, applies

    def gradients(self, X, y):
        loss, grads = super().gradients(X, y)
        c = self.loss_scale * (len(X) if self.loss_config["reduction"] == "sum" else 1) if self.applies else 1.0
        return loss * c, [g * c for g in grads]


def test_a_declared_loss_convention_is_checked(digits):
    X, y = digits
    for reduction, scale in (("sum", 1.0), ("sum_over_batch_size", 0.5), ("sum", 0.1)):
        report = check(Convention(reduction, scale), X, y, steps=3, batch_size=32)
        assert report["verdict"] == "ok", (reduction, scale, report["diagnosis"])
    report = check(Convention("sum", applies=False), X, y, steps=2, batch_size=32)  # declares a sum, computes a mean
    assert report["first_mismatch"]["quantity"] == "loss" and "extra_mean" in report["causes"]


class SigmoidNet:
    """Dense → Activation('sigmoid') under binary cross-entropy, SGD, written by hand: Keras takes the loss from the
    sigmoid's input (keras/src/backend/tensorflow/nn.py _get_logits); `clipped` takes it from the probabilities,
    clipped to [1e-7, 1 − 1e-7] as a from-probabilities cross-entropy does."""
    layers = [{"class_name": "Dense", "config": {"units": 2}}, {"class_name": "Activation",
                                                               "config": {"activation": "sigmoid"}}]
    loss, optimizer, learning_rate = "binary_crossentropy", "sgd", 0.1

    def __init__(self, clipped=False, scale=1.0):
        rng = np.random.default_rng(3)
        self.W, self.b, self.clipped = rng.normal(0, scale, (3, 2)), np.zeros(2), clipped

    def get_weights(self):
        return [self.W, self.b]

    def set_weights(self, weights):
        self.W, self.b = (np.array(w) for w in weights)

    def forward(self, X):
        z = X @ self.W + self.b
        return [z, 1 / (1 + np.exp(-z))]

    def gradients(self, X, y):
        z, p = self.forward(X)
        n = y.size
        if self.clipped:
            q = np.clip(p, 1e-7, 1 - 1e-7)
            loss = -np.mean(y * np.log(q) + (1 - y) * np.log(1 - q))
            dz = (-y / q + (1 - y) / (1 - q)) * ((p > 1e-7) & (p < 1 - 1e-7)) * p * (1 - p) / n
        else:
            loss = np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))))
            dz = (p - y) / n
        return loss, [X.T @ dz, dz.sum(0)]

    def apply_gradients(self, grads):
        self.W, self.b = self.W - self.learning_rate * grads[0], self.b - self.learning_rate * grads[1]


def test_a_sigmoid_last_layer_is_differentiated_from_its_input_as_keras_does():
    """Found while building the exact referee: a layered network ending in a sigmoid had its loss bounded, and
    refereed, from the probabilities, where Keras takes binary cross-entropy from the sigmoid's input. Saturated
    outputs (logits near ±30) tell the two apart: the logits' version agrees with Keras and the exact referee finds
    neither side wrong; the clipped probabilities' version is a mismatch in the loss, the numpy side's."""
    rng = np.random.default_rng(4)
    X, y = rng.normal(0, 10, (16, 3)), rng.integers(0, 2, (16, 2)).astype(float)
    good = check(SigmoidNet(scale=3.0), X, y, steps=3, batch_size=16, referee="exact")
    assert good["verdict"] == "ok" and good["referee"]["verdict"] == "neither", good["diagnosis"]
    assert float(np.abs(X @ SigmoidNet(scale=3.0).W).max()) > 20  # saturated: the clipping matters
    bad = check(SigmoidNet(clipped=True, scale=3.0), X, y, steps=3, batch_size=16, referee="exact")
    assert bad["verdict"] == "mismatch" and bad["first_mismatch"]["quantity"] == "loss"
    assert bad["referee"]["verdict"] == "numpy"


def _with_optimizer(net, name, learning_rate):
    from numpy_impl.optimizers import OPTIMIZERS
    net.optimizer, net.learning_rate, net._optimizer = name, learning_rate, OPTIMIZERS[name](learning_rate)
    return net


def test_the_exact_referee_allows_each_side_the_rounding_of_the_exact_value(digits):
    """Found by a review: an SGD update that is exactly fl(w − fl(lr·g)) can sit 1 ulp from the exact value rounded
    to float64, 1.16 of the side's bound, and both sides were called wrong; each side is held to its bound plus half
    an ulp of the reference. With SGD the update is refereed at every step: a learning rate off by 1e-6 from step 1
    is the numpy side's."""
    X, y = digits
    fine = check(_with_optimizer(stack.cnn(seed=2), "sgd", 0.05), X, y, steps=1, batch_size=32, referee="exact",
                 seed=2)["referee"]
    assert fine["verdict"] == "neither" and "weights" in fine["numpy"]
    assert max(q["error_over_bound"] for side in ("numpy", "keras") for q in fine[side].values()) <= 1

    net = _with_optimizer(stack.cnn(), "sgd", 0.05)
    apply = net._optimizer.apply
    calls = []

    def late(weights, grads):  # the learning rate off by one part in a million from the second step on
        calls.append(1)
        net._optimizer.learning_rate = 0.05 * (1 + 1e-6) if len(calls) > 1 else 0.05
        return apply(weights, grads)
    net._optimizer.apply = late
    report = check(net, X, y, steps=3, batch_size=32, referee="exact")
    assert report["first_mismatch"]["step"] == 1 and report["referee"]["verdict"] == "numpy"
    assert report["referee"]["numpy"]["weights"]["error_over_bound"] > 1e3


def test_the_exact_referee_reads_a_nan_as_wrong_and_does_not_call_an_unjudged_mismatch_neither(digits):
    """Found by a review: a NaN in the numpy side's output read as no error ("neither"); and a mismatch in the
    updated weights at a later step of Adam, which the exact referee cannot compute without the optimizer's state,
    read "neither": now its verdict is null with a note."""
    X, y = digits

    class NaNDense(stack.Dense):
        def forward(self, x, training, update):
            out = super().forward(x, training, update).copy()
            out[0, 0] = np.nan
            return out
    net = stack.cnn()
    old = net.modules[5]
    net.modules[5] = NaNDense(*old.weights)
    judged = check(net, X, y, steps=1, batch_size=32, referee="exact")["referee"]
    assert judged["verdict"] == "numpy" and judged["numpy"]["forward"]["error_over_bound"] == np.inf

    net = stack.cnn()
    apply, calls = net._optimizer.apply, []

    def late(weights, grads):
        calls.append(1)
        net._optimizer.learning_rate = 1e-3 * (1 + 1e-6) if len(calls) > 1 else 1e-3
        return apply(weights, grads)
    net._optimizer.apply = late
    report = check(net, X, y, steps=3, batch_size=32, referee="exact")
    assert report["first_mismatch"]["step"] == 1 and report["first_mismatch"]["phase"] == "updated"
    assert report["referee"]["verdict"] is None and "did not judge" in report["referee"]["note"]


def test_a_mismatch_in_inference_mode_is_refereed_on_its_row(digits):
    """Found by a review: a mismatch in the inference pass after training had been refereed at step 0 ("neither").
    The exact referee judges the inference pass on the mismatching element's row; finite differences say why they
    cannot."""
    class BatchStatsInInference(stack.BatchNorm):
        def forward(self, x, training, update):
            return super().forward(x, True, update if training else False)
    X, y = digits
    for referee in ("exact", "finite_differences"):
        net = stack.cnn(batch_norm=True)
        net.modules[2] = BatchStatsInInference(8)
        report = check(net, X, y, steps=2, batch_size=32, referee=referee)
        m, judged = report["first_mismatch"], report["referee"]
        assert m["phase"] == "inference" and m["name"] == "2:BatchNormalization"
        if referee == "exact":
            assert judged["verdict"] == "numpy" and judged["phase"] == "inference"
            assert f"row {m['index'][0]}" in judged["note"]
            assert judged["numpy"]["forward"]["error_over_bound"] > 1e3
            assert judged["keras"]["forward"]["error_over_bound"] <= 1
        else:
            assert judged["verdict"] is None and "inference pass" in judged["note"]


def test_referee_names_are_checked_and_a_layered_golden_replay_refuses_one(digits, tmp_path):
    from compare.golden import open_file, save
    from compare.golden.layered import record_layers
    X, y = digits
    for name in ("Exact", "exakt"):
        with pytest.raises(InputError, match=f"unknown referee '{name}'"):
            check(stack.cnn(), X, y, steps=1, batch_size=32, referee=name)
    save(str(tmp_path / "g.npz"), record_layers(stack.cnn(), X, y, steps=1, batch_size=32))
    with pytest.raises(InputError, match="takes no referee"):
        check(stack.cnn(), None, None, golden=open_file(str(tmp_path / "g.npz")), referee="exact")


def test_an_update_mistake_of_a_layered_network_is_named_by_the_optimizers_known_causes(digits):
    """Found by a new user's trial: a textbook Adam (β1, β2 exact in β^t, where Keras on TensorFlow rounds them
    through float32) failed on the update with no cause named, where a Dense network's diagnosis names it. The
    layered diagnosis now tries the optimizer's known mistakes (compare/diagnosis/updates.py) at step 0."""
    from numpy_impl.optimizers import Adam

    class ExactBetas(Adam):
        def update(self, i, w, g, lr):
            b1, b2, eps = self.config["beta_1"], self.config["beta_2"], self.config["epsilon"]
            t = self.iterations + 1
            alpha = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
            s = self.state[i]
            s["m"] = s["m"] + (g - s["m"]) * (1 - b1)
            s["v"] = s["v"] + (g * g - s["v"]) * (1 - b2)
            return w - (s["m"] * alpha) / (np.sqrt(s["v"]) + eps)
    X, y = digits
    net = stack.cnn()
    net._optimizer.__class__ = ExactBetas
    report = check(net, X, y, steps=2, batch_size=32)
    m = report["first_mismatch"]
    assert (m["step"], m["quantity"], m["phase"]) == (0, "weights", "updated")
    assert report["causes"] == ["no float32 cast"] and "beta_1=0.9, beta_2=0.999 exactly" in report["diagnosis"]
    assert report["location"]["where"] == "update"


def test_a_state_carried_in_gradients_only_is_not_blamed_on_the_loss(digits):
    """Found by a new user's trial: an LSTM whose gradients(X, y) starts from the last batch's state while forward(X)
    starts from zeros agrees at every layer output and differs in the loss from step 1; the diagnosis had said "the
    mistake is in the loss's value". It now says the loss or another forward pass, and names the state."""
    from network_bugs import CarriedState

    class CarriedInGradients(CarriedState):
        def forward(self, x, training, update):
            if not update:  # forward(X): from zeros, as it should
                return stack.Recurrent.forward(self, x, training, update)
            return super().forward(x, training, update)
    X, y = digits
    net = stack.recurrent("lstm")
    net.modules[1] = CarriedInGradients("lstm", *net.modules[1].weights)
    report = check(net, X, y, steps=3, batch_size=32)
    m = report["first_mismatch"]
    assert (m["step"], m["quantity"]) == (1, "loss") and report["causes"] == ["state_between_steps"]
    assert "another forward pass than forward(X) returned" in report["diagnosis"]
    assert "it agreed at step 0 and differs now" in report["diagnosis"]


@pytest.mark.parametrize("options, fragment", [(["--epochs", "2"], "walks through one epoch"),
                                               (["--data", "guide"], "walks through the digits")])
def test_the_layered_walkthrough_refuses_options_it_cannot_honour(capsys, options, fragment):
    """Found by a new user's trial: --epochs and --data had been silently ignored by walkthrough --model."""
    from compare.cli import main
    assert main(["walkthrough", "--model", "lstm", *options]) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1


def test_the_walkthrough_names_what_the_networks_own_layers_need():
    """Found by a new user's trial: the GRU's walkthrough named a convolution's kernel and Flatten's order."""
    from compare.walkthrough_layers import stages
    spec = {"layers": stack.MODELS["gru"]().layers, "optimizer": "adam", "optimizer_config": {},
            "loss": "categorical_crossentropy"}
    needs = stages(spec)[0][3]
    assert "GRU's gates (z, r, h)" in needs and "Dense kernel (inputs, units)" in needs
    assert "Conv2D" not in needs and "Flatten" not in needs


def test_a_layers_forward_mistake_in_a_network_is_named_by_the_single_layer_causes(digits):
    """Found by a new user's trial: an LSTM's gates in CS231n's order were named by the single-layer check and not in
    a network. A forward mismatch now tries the layer's known mistakes (compare/diagnosis/layers.py), Keras's layer
    rerun on the numpy side's input with each planted; the planted-bug suite's true convolution and attention bugs
    are named too (tests/network_bugs.py)."""
    class Unmapped(stack.Recurrent):  # Keras-order weights read as the course's (i, f, o, g)
        def keras(self, weights):
            return [np.array(w) for w in weights]

        def course(self, weights):
            return [np.array(w, dtype=float) for w in weights]
    X, y = digits
    net = stack.recurrent("lstm")
    net.modules[1] = Unmapped("lstm", *net.modules[1].keras(net.modules[1].weights))
    report = check(net, X, y, steps=1, batch_size=32)
    assert report["first_mismatch"]["name"] == "1:LSTM" and report["causes"] == ["lstm_gate_order"]
    assert "CS231n's order (i, f, o, g)" in report["diagnosis"]
