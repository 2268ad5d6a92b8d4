"""The single-layer check's protocol, inputs and reports: every user mistake is one line, never an OK."""
import json
import subprocess
import sys

import numpy as np
import pytest

from compare import InputError, assert_layer_matches_keras, check_layer
from helpers import ROOT, clean_env

RNG = np.random.default_rng(0)
X = RNG.standard_normal((5, 3))


class MyDense:
    """A user's Dense layer, in Keras's shapes: kernel (inputs, units)."""

    keras_layer = {"class_name": "Dense", "config": {"units": 4}}

    def __init__(self, kernel=None, bias=None):
        rng = np.random.default_rng(1)
        self.kernel = rng.standard_normal((3, 4)) if kernel is None else kernel
        self.bias = rng.standard_normal(4) if bias is None else bias

    def get_weights(self):
        return [self.kernel, self.bias]

    def set_weights(self, weights):
        self.kernel, self.bias = weights

    def forward(self, x, training=True):
        self.x = x
        return x @ self.kernel + self.bias

    def backward(self, dout):
        return dout @ self.kernel.T, [self.x.T @ dout, dout.sum(axis=0)]


def variant(**methods):
    """MyDense with some methods or attributes replaced."""
    return type("Variant", (MyDense,), methods)()


def test_a_correct_dense_layer_passes_and_the_report_has_the_contract_fields():
    report = check_layer(MyDense(), X)
    assert report["ok"] is True and report["first_mismatch"] is None and report["diagnosis"] is None
    assert report["layer"] == {"class_name": "Dense", "config": {"units": 4}, "call": {}}
    assert [c["name"] for c in report["compared"]] == ["out", "dx", "dkernel", "dbias", "kernel", "bias"]
    assert all(0 <= c["largest_ratio"] <= 1 and c["mismatched"] == 0 for c in report["compared"])


@pytest.mark.parametrize("where, quantity, name", [("out", "output", "out"), ("dx", "input_gradient", "dx"),
                                                    ("dkernel", "weight_gradient", "dkernel")])
def test_a_bug_of_1e_7_relative_is_caught_where_it_is(where, quantity, name):
    def forward(self, x, training=True):
        self.x = x
        return (x @ self.kernel + self.bias) * (1 + 1e-7 * (where == "out"))

    def backward(self, dout):
        return dout @ self.kernel.T * (1 + 1e-7 * (where == "dx")), \
            [self.x.T @ dout * (1 + 1e-7 * (where == "dkernel")), dout.sum(axis=0)]
    report = check_layer(variant(forward=forward, backward=backward), X)
    m = report["first_mismatch"]
    assert report["ok"] is False and m["quantity"] == quantity and m["name"] == name
    assert set(m) >= {"quantity", "name", "index", "numpy", "keras", "abs_diff", "tolerance"}
    assert m["abs_diff"] > m["tolerance"] > 0 and abs(m["numpy"] - m["keras"]) == pytest.approx(m["abs_diff"])


def test_a_weight_gradient_divided_by_the_batch_size_is_named():
    def backward(self, dout):
        return dout @ self.kernel.T, [self.x.T @ dout / len(dout), dout.sum(axis=0)]
    report = check_layer(variant(backward=backward), X)
    assert report["causes"] == ["batch_mean"] and "divided by the batch size 5" in report["diagnosis"]


@pytest.mark.parametrize("grads, cause", [(lambda s, d: [(s.x.T @ d).T, d.sum(axis=0)], "transposed"),
                                          (lambda s, d: [s.x.T @ d, d], "not_summed_over_batch")])
def test_gradients_shaped_wrong_are_explained_from_the_shapes(grads, cause):
    report = check_layer(variant(backward=lambda self, dout: (dout @ self.kernel.T, grads(self, dout))), X)
    assert report["ok"] is False and report["causes"] == [cause]
    assert report["first_mismatch"]["numpy_shape"] != report["first_mismatch"]["keras_shape"]


def test_a_layer_that_writes_to_its_input_is_a_protocol_error():
    def forward(self, x, training=True):
        x /= np.abs(x).max()
        self.x = x
        return x @ self.kernel + self.bias
    with pytest.raises(InputError, match="wrote to its input"):
        check_layer(variant(forward=forward), X)


@pytest.mark.parametrize("attrs, fragment", [
    ({"keras_layer": None}, "expected a layer (an object with keras_layer"),
    ({"keras_layer": 5}, "keras_layer must be a dict"),
    ({"keras_layer": {"class_name": "Conv3D", "config": {}}}, "unknown layer class 'Conv3D'; expected one of"),
    ({"keras_layer": {"class_name": "Dense", "config": {"units": -1}}}, "Keras refuses it"),
    ({"keras_layer": {"class_name": "Dense", "config": {"units": 4, "activation": "tanh"}}}, "check the activation as a layer"),
    ({"keras_layer": {"class_name": "Dense", "config": {"units": 4}, "mode": 1}}, "unknown keys ['mode']"),
    ({"get_weights": lambda self: [self.kernel]}, "returned a list of 1: [array (3, 4)]; expected a list of 2 arrays in the Keras layer's order: kernel (3, 4), bias (4,)"),
    ({"get_weights": lambda self: [self.kernel.T, self.bias]}, "kernel has shape (4, 3); Keras's kernel is (3, 4)"),
    ({"backward": lambda self, d: d @ self.kernel.T}, "expected (dx, grads)"),
    ({"backward": lambda self, d: (None, [self.x.T @ d, d.sum(0)])}, "returned dx None"),
    ({"forward": lambda self, x, training=True: sys.exit(3)}, "called sys.exit(3)"),
    ({"layout": "NCX"}, "does not name the 2 axes"),
])
def test_protocol_mistakes_are_one_line_input_errors(attrs, fragment):
    with pytest.raises(InputError) as error:
        check_layer(variant(**attrs), X)
    assert fragment in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("kwargs, fragment", [
    ({"x": np.array([[1.0, np.nan, 0.0]] * 2)}, "not finite"),
    ({"x": np.ones((2, 3, 1, 1))}, "Dense takes an input of 2 axes (NF) or 3 axes (NTF)"),
    ({"dout": np.ones((5, 3))}, "dout has shape (5, 3); expected the output's shape (5, 4)"),
    ({"dtype": "float16"}, "dtype 'float16'"),
    ({"seed": -1}, "seed must be an integer >= 0"),
    ({"training": "yes"}, "training must be True or False"),
])
def test_bad_inputs_are_one_line_input_errors(kwargs, fragment):
    with pytest.raises(InputError) as error:
        check_layer(MyDense(), **{"x": X, **kwargs})
    assert fragment in str(error.value)


def test_dropout_gets_keras_own_mask_and_passes_with_it():
    seen = {}

    class Dropout:
        keras_layer = {"class_name": "Dropout", "config": {"rate": 0.4, "seed": 7}}

        def get_weights(self):
            return []

        def set_weights(self, weights):
            pass

        def set_noise(self, mask):
            seen["mask"] = mask

        def forward(self, x, training=True):
            self.training = training
            return x * seen["mask"] / 0.6 if training else x

        def backward(self, dout):
            return (dout * seen["mask"] / 0.6 if self.training else dout), []
    x = RNG.standard_normal((50, 8))
    report = check_layer(Dropout(), x)
    assert report["ok"] is True and 0.3 < 1 - seen["mask"].mean() < 0.5  # the rate 0.4, from 400 draws (σ 0.025)
    assert set(np.unique(seen["mask"])) == {0.0, 1.0}
    out = report["compared"][0]  # where kept, the bound is γ_3·|out|: the abs twin drew the same mask
    assert out["numpy"] != 0 and out["tolerance"] > 1e-17 and out["mismatched"] == 0
    assert check_layer(Dropout(), x, training=False)["ok"] is True


def test_assert_layer_matches_keras_raises_with_the_element_and_the_diagnosis():
    def backward(self, dout):
        return -(dout @ self.kernel.T), [self.x.T @ dout, dout.sum(axis=0)]
    with pytest.raises(AssertionError) as error:
        assert_layer_matches_keras(variant(backward=backward), X)
    text = str(error.value)
    assert "input gradient dx[" in text and "diagnosis: dx has the opposite sign of Keras's" in text
    assert assert_layer_matches_keras(MyDense(), X)["ok"] is True


LAYER_MODULE = '''
import numpy as np
from compare import adapters
from numpy_impl.layers import norm


def bn():
    return adapters.batchnorm(norm.batchnorm_forward, norm.batchnorm_backward, np.ones(4), np.zeros(4), {})


def bn_unbiased():
    def forward(x, gamma, beta, param):
        out, cache = norm.batchnorm_forward(x, gamma, beta, param)
        m = x.size // x.shape[-1]
        v = x.reshape(-1, x.shape[-1]).var(axis=0)
        return (x - x.reshape(-1, x.shape[-1]).mean(0)) / np.sqrt(v * m / (m - 1) + 1e-3) * gamma + beta, cache
    return adapters.batchnorm(forward, norm.batchnorm_backward, np.ones(4), np.zeros(4), {})
'''


def run_cli(tmp_path, *args):
    (tmp_path / "my_layers.py").write_text(LAYER_MODULE)
    env = clean_env()
    env["PYTHONPATH"] = ROOT
    return subprocess.run([sys.executable, "-m", "compare", "layer", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True)


def test_the_command_line_exits_0_1_2_and_writes_the_json_contract(tmp_path):
    ok = run_cli(tmp_path, "--impl", "my_layers:bn", "--input-shape", "6,3,3,4", "--json", "ok.json")
    assert ok.returncode == 0 and "verdict: OK" in ok.stdout, ok.stderr
    report = json.loads((tmp_path / "ok.json").read_text())
    assert report["ok"] is True and report["layer"]["class_name"] == "BatchNormalization"
    assert [c["name"] for c in report["compared"]] == ["out", "dx", "dgamma", "dbeta", "gamma", "beta", "moving_mean",
                                                        "moving_variance"]
    bad = run_cli(tmp_path, "--impl", "my_layers:bn_unbiased", "--input-shape", "6,4", "--json", "bad.json", "-q")
    assert bad.returncode == 1 and bad.stdout.startswith("verdict: FAIL") and bad.stdout.count("\n") == 1
    m = json.loads((tmp_path / "bad.json").read_text())
    assert m["first_mismatch"]["quantity"] == "output" and m["causes"] == ["norm_unbiased_variance"]
    usage = run_cli(tmp_path, "--impl", "my_layers:bn", "--input-shape", "6,x")
    assert usage.returncode == 2 and usage.stderr.count("\n") == 1 and "argument --input-shape: expects comma-separated sizes" in usage.stderr
    inference = run_cli(tmp_path, "--impl", "my_layers:bn", "--input-shape", "6,4", "--inference")
    assert inference.returncode == 0 and ", inference," in inference.stdout


@pytest.mark.parametrize("mine, keras, tol, mismatched", [
    ([1.0, 2.0], [1.0, 2.0], [0.0, 0.0], 0),               # equal at tolerance 0
    ([1.0, 2.0 + 1e-15], [1.0, 2.0], [0.0, 0.0], 1),       # any difference at tolerance 0
    ([1.0, 2.0], [1.0, 2.0], [np.nan, 1.0], 2),            # no bound, no pass
    ([1.0, 2.0], [1.0, 2.0], [np.inf, 1.0], 2),
    ([1.0, 2.0], [1.0, 2.0], [-1.0, 1.0], 2),
    ([np.nan, 2.0], [1.0, 2.0], [1.0, 1.0], 1),            # a NaN on one side
    ([1.0, 2.5], [1.0, 2.0], [1.0, 0.5], 0),               # at the bound exactly
])
def test_an_element_passes_only_within_a_finite_nonnegative_tolerance(mine, keras, tol, mismatched):
    from compare.layer_compare import compare
    result = compare("output", "out", np.array(mine), np.array(keras), np.array(tol))
    assert result["mismatched"] == mismatched
    assert (result["largest_ratio"] > 1) == (mismatched > 0)


class Accumulates(MyDense):
    """Gradients added to a buffer that is never reset: right on the first call only."""

    def backward(self, dout):
        self.total = getattr(self, "total", 0) + self.x.T @ dout
        return dout @ self.kernel.T, [self.total, dout.sum(axis=0)]


def test_a_layer_that_keeps_its_gradients_from_call_to_call_fails_at_the_second_call():
    report = check_layer(Accumulates(), X)
    m = report["first_mismatch"]
    assert report["ok"] is False and m["call"] == 2 and m["name"] == "dkernel"
    assert report["causes"] == ["second_call_differs"]


@pytest.mark.parametrize("where", ["forward", "backward"])
def test_a_layer_that_changes_its_own_weights_during_the_call_fails(where):
    def forward(self, x, training=True):
        self.x, self.used = x, self.kernel
        out = x @ self.kernel + self.bias
        if where == "forward":
            self.kernel = self.kernel + 1.0  # every value it returns is right: only its weights give it away
        return out

    def backward(self, dout):
        grads = [self.x.T @ dout, dout.sum(axis=0)]
        if where == "backward":
            self.kernel = self.kernel - 0.1 * grads[0]  # an SGD step inside backward
        return dout @ self.used.T, grads
    report = check_layer(variant(forward=forward, backward=backward), X)
    m = report["first_mismatch"]
    assert report["ok"] is False and m["quantity"] == "state" and m["name"] == "kernel" and m["tolerance"] == 0


def test_a_backward_that_changes_the_array_forward_returned_is_a_protocol_error():
    class Sigmoid:
        keras_layer = {"class_name": "Activation", "config": {"activation": "sigmoid"}}
        get_weights, set_weights = (lambda self: []), (lambda self, w: None)

        def forward(self, x, training=True):
            self.y = 1 / (1 + np.exp(-x))
            return self.y

        def backward(self, dout):
            s = self.y
            s *= 1 - s
            return dout * s, []
    with pytest.raises(InputError, match="changed the array layer.forward"):
        check_layer(Sigmoid(), X)


@pytest.mark.parametrize("layer, x, fragment", [
    (type("NoGet", (MyDense,), {"get_weights": None})(), X, "has no get_weights()"),
    (type("BadCall", (MyDense,), {"keras_layer": {"class_name": "Dense", "config": {"units": 4}, "call": {"foo": 1}}})(),
     X, "Keras refuses it"),
    (5, X, "expected a layer (an object with keras_layer"),
    (MyDense(), np.float64(2.0), "expected an array with a batch axis first"),
])
def test_more_protocol_mistakes_are_one_line(layer, x, fragment):
    with pytest.raises(InputError) as error:
        check_layer(layer, x)
    assert fragment in str(error.value) and "\n" not in str(error.value)


def test_embedding_ids_outside_the_table_are_refused_and_float32_tables_agree():
    from compare import adapters
    from numpy_impl import layers as L
    table = np.random.default_rng(2).standard_normal((7, 3))
    layer = adapters.embedding(L.embedding_forward, L.embedding_backward, table)
    for ids in ([[7, 1]], [[-1, 2]]):
        with pytest.raises(InputError, match=r"expected ids in \[0, 7\)"):
            check_layer(layer, np.array(ids))
    report = check_layer(layer, np.array([[1, 1, 6], [0, 2, 1]]), dtype="float32")  # the table handed back rounded
    assert report["ok"] is True


def test_dropout_at_rate_0_keeps_everything():
    from compare import adapters
    from numpy_impl import layers as L
    assert check_layer(adapters.dropout(L.dropout_forward, L.dropout_backward, 0.0), X)["ok"] is True


KINK_MODULE = '''
import numpy as np


class ReluGe:
    keras_layer = {"class_name": "ReLU", "config": {}}
    def get_weights(self): return []
    def set_weights(self, w): pass
    def forward(self, x, training=True):
        self.x = x
        return np.maximum(x, 0)
    def backward(self, dout): return dout * (self.x >= 0), []


def relu_ge():
    return ReluGe()
'''


def test_the_command_line_draws_exact_zeros_for_relu_so_its_kink_is_checked(tmp_path):
    (tmp_path / "kinks.py").write_text(KINK_MODULE)
    env = clean_env()
    env["PYTHONPATH"] = ROOT
    result = subprocess.run([sys.executable, "-m", "compare", "layer", "--impl", "kinks:relu_ge", "--input-shape", "4,6"],
                            cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 1 and "relu′(0) is taken as 1" in result.stdout, result.stdout + result.stderr
