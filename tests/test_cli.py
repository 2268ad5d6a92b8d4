"""python -m compare: exit codes 0/1/2, one-line errors, the JSON report's contract."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from compare.cli import main

from helpers import ROOT, clean_env


def run_main(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *fragments):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("python -m compare: error: "), err
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """Write a module into a temporary current directory; return its name for --impl."""
    monkeypatch.chdir(tmp_path)
    counter = iter(range(1000))

    def write(source):
        name = f"user_net_{os.getpid()}_{next(counter)}_{tmp_path.name.replace('-', '_')}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        return name
    return write


def test_default_run_checks_the_guides_network_for_100_steps(capsys, tmp_path):
    path = tmp_path / "r.json"
    code, out, err = run_main(capsys, "--json", str(path))
    report = json.loads(path.read_text())
    assert code == 0 and "steps checked: 100 of 100" in out and "verdict: OK" in out
    assert report["ok"] is True and report["steps_checked"] == 100
    assert report["first_mismatch"] is None and report["diagnosis"] is None
    assert set(report["max_diff"]) == {"weights", "forward", "loss", "gradient"}
    assert "timing" in report


def test_guide_as_written_exits_1_with_the_mismatch_in_json(capsys, tmp_path):
    path = tmp_path / "r.json"
    code, out, _ = run_main(capsys, "--impl", "numpy_impl:guide_as_written", "--json", str(path))
    m = json.loads(path.read_text())["first_mismatch"]
    assert code == 1 and "MISMATCH at step 0, gradient" in out and "−1.5 × Keras's" in out
    assert set(m) >= {"step", "quantity", "name", "index", "numpy", "keras", "abs_diff", "rel_diff", "tolerance"}
    assert m["step"] == 0 and m["quantity"] == "gradient" and m["rel_diff"] == pytest.approx(2.5)


def test_user_network_by_module_and_factory(capsys, plugin):
    name = plugin("""
        import numpy_impl
        def make():
            return numpy_impl.seed_network()
    """)
    code, out, _ = run_main(capsys, "--impl", f"{name}:make", "--steps", "7")
    assert code == 0 and "steps checked: 7 of 7" in out


@pytest.mark.parametrize("argv, fragments", [
    (["--steps", "0"], ["--steps", "received '0'"]),
    (["--steps", "x"], ["--steps", "received 'x'"]),
    (["--impl", "no_such_module_here:make"], ["cannot import module 'no_such_module_here'"]),
    (["--impl", "numpy_impl"], ["MODULE:FACTORY", "received 'numpy_impl'"]),
    (["--impl", "numpy_impl:no_factory"], ["no attribute 'no_factory'"]),
    (["--impl", "numpy_impl.guide:LEARNING_RATE"], ["is a float", "callable"]),
    (["--data", "missing.npz"], ["no such file 'missing.npz'"]),
    (["--json", "/no/such/folder/r.json"], ["cannot write --json", "No such file"]),
    (["--frobnicate"], ["unrecognized arguments: --frobnicate"]),
])
def test_bad_usage_is_one_line_and_exit_2(capsys, argv, fragments, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_main(capsys, *argv)
    assert_one_line_error(code, err, *fragments)


BAD_PLUGINS = {
    "factory_raises": ("""
        def make():
            raise RuntimeError("weights file not found")
    """, ["factory", "RuntimeError: weights file not found"]),
    "missing_method": ("""
        import numpy_impl
        class Net:
            activations = ["tanh", "linear"]
            learning_rate = 0.001
            def get_weights(self): return numpy_impl.seed_weights()
            def set_weights(self, w): pass
            def forward(self, X): return []
        def make(): return Net()
    """, ["lacks gradients, apply_gradients"]),
    "weights_do_not_chain": ("""
        import numpy as np, numpy_impl
        def make():
            net = numpy_impl.seed_network()
            net.weights[2] = np.ones((1, 3))
            return net
    """, ["layer 1 takes 3 inputs but layer 0 has 2 units"]),
    "activation_count": ("""
        import numpy_impl
        def make():
            net = numpy_impl.seed_network()
            net.activations = ["tanh"]
            return net
    """, ["returned 4 arrays; expected 2"]),
    "unknown_activation": ("""
        import numpy_impl
        def make():
            net = numpy_impl.seed_network()
            net.activations = ["tanh", "gelu"]
            return net
    """, ["unknown activation 'gelu'", "linear, relu, sigmoid, softmax, tanh"]),
    "bad_learning_rate": ("""
        import numpy_impl
        def make():
            net = numpy_impl.seed_network()
            net.learning_rate = float("nan")
            return net
    """, ["learning_rate must be a finite number > 0", "nan"]),
    "gradient_count": ("""
        import numpy_impl
        class Net(numpy_impl.Network):
            def gradients(self, X, y):
                loss, grads = super().gradients(X, y)
                return loss, grads[:3]
        def make(): return Net(numpy_impl.seed_weights(), ["tanh", "linear"], 0.001)
    """, ["network.gradients(X, y) returned 3 arrays; expected 4"]),
    "gradient_shape": ("""
        import numpy_impl
        class Net(numpy_impl.Network):
            def gradients(self, X, y):
                loss, grads = super().gradients(X, y)
                grads[0] = grads[0].T
                return loss, grads
        def make(): return Net(numpy_impl.seed_weights(), ["tanh", "linear"], 0.001)
    """, ["item 0 has shape (3, 2); expected (2, 3)"]),
    "gradients_not_a_pair": ("""
        import numpy_impl
        class Net(numpy_impl.Network):
            def gradients(self, X, y):
                return super().gradients(X, y)[1]
        def make(): return Net(numpy_impl.seed_weights(), ["tanh", "linear"], 0.001)
    """, ["must return (loss, grads)"]),
    "method_raises_mid_run": ("""
        import numpy_impl
        class Net(numpy_impl.Network):
            calls = 0
            def forward(self, X):
                self.calls += 1
                if self.calls == 4:
                    raise ZeroDivisionError("oops")
                return super().forward(X)
        def make(): return Net(numpy_impl.seed_weights(), ["tanh", "linear"], 0.001)
    """, ["network.forward(X) raised ZeroDivisionError: oops"]),
}


@pytest.mark.parametrize("case", list(BAD_PLUGINS))
def test_broken_plugins_are_one_line_and_exit_2(capsys, plugin, case):
    source, fragments = BAD_PLUGINS[case]
    code, _, err = run_main(capsys, "--impl", f"{plugin(source)}:make")
    assert_one_line_error(code, err, *fragments)


@pytest.mark.parametrize("arrays, fragments", [
    ({"X": np.ones((4, 3)), "y": np.ones((3, 1))}, ["X has 4 rows but y has 3"]),
    ({"X": np.ones((3, 3))}, ["holds arrays ['X']; expected X and y"]),
    ({"X": np.ones((0, 3)), "y": np.ones((0, 1))}, ["empty"]),
    ({"X": np.array([[1.0, np.nan, 2.0]]), "y": np.ones((1, 1))}, ["X holds nan at index [0, 1]"]),
    ({"X": np.ones((3, 3)), "y": np.ones((3, 2))}, ["last layer has 1 units but y has 2 columns"]),
    ({"X": np.ones((3, 4)), "y": np.ones((3, 1))}, ["first kernel takes 3 inputs but X has 4 columns"]),
    ({"X": np.array([["a", "b", "c"]]), "y": np.ones((1, 1))}, ["X must be numeric"]),
    ({"X": np.array([[1, 2, 3]], dtype=object), "y": np.ones((1, 1))}, ["object arrays"]),
])
def test_bad_data_files_are_one_line_and_exit_2(capsys, tmp_path, monkeypatch, arrays, fragments):
    monkeypatch.chdir(tmp_path)
    np.savez("d.npz", **arrays)
    code, _, err = run_main(capsys, "--data", "d.npz")
    assert_one_line_error(code, err, *fragments)


def test_corrupt_npz_is_one_line_and_exit_2(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d.npz").write_bytes(b"PK\x03\x04 this is not a zip")
    code, _, err = run_main(capsys, "--data", "d.npz")
    assert_one_line_error(code, err, "not a readable .npz file")


def test_npz_data_with_flat_y_runs_and_notes_the_reshape(capsys, tmp_path, monkeypatch):
    import numpy_impl
    monkeypatch.chdir(tmp_path)
    X, y = numpy_impl.seed_data()
    np.savez("d.npz", X=X, y=y.ravel())
    code, out, _ = run_main(capsys, "--data", "d.npz", "--steps", "5")
    assert code == 0 and "note: y of shape (3,) was reshaped to (3, 1)" in out


def test_no_json_file_is_left_behind_on_bad_input(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, _ = run_main(capsys, "--impl", "nope:make", "--json", "r.json")
    assert code == 2 and os.listdir(tmp_path) == []


def test_python_dash_m_compare_end_to_end_without_traceback(tmp_path):
    env = clean_env(PYTHONPATH=ROOT)
    ok = subprocess.run([sys.executable, "-m", "compare", "--steps", "20"], cwd=ROOT, env=env,
                        capture_output=True, text=True)
    bad = subprocess.run([sys.executable, "-m", "compare", "--impl", "numpy_impl:guide_as_written"],
                         cwd=ROOT, env=env, capture_output=True, text=True)
    usage = subprocess.run([sys.executable, "-m", "compare", "--impl", "x:y"], cwd=tmp_path, env=env,
                           capture_output=True, text=True)
    assert (ok.returncode, bad.returncode, usage.returncode) == (0, 1, 2)
    assert "verdict: OK" in ok.stdout and ok.stderr == ""
    assert "2/N of mean squared error is missing" in bad.stdout
    assert usage.stderr.count("\n") == 1 and "Traceback" not in usage.stderr


# --- options for any network (issue: general networks) ----------------------------------------

def test_digits_network_from_the_command_line(capsys, tmp_path):
    path = tmp_path / "r.json"
    code, out, _ = run_main(capsys, "--data", "digits", "--layers", "64,32,10", "--activations", "relu,softmax",
                            "--loss", "categorical_crossentropy", "--optimizer", "adam", "--batch-size", "32",
                            "--epochs", "1", "--json", str(path))
    report = json.loads(path.read_text())
    assert code == 0 and "steps checked: 57 of 57" in out
    assert report["network"]["layers"] == [64, 32, 10] and report["data"]["batch_size"] == 32
    assert report["network"]["optimizer"] == "adam" and report["network"]["learning_rate"] == 0.001


def test_random_data_is_shaped_for_the_network_and_seeded(capsys, tmp_path):
    paths = [tmp_path / f"r{i}.json" for i in range(3)]
    for path, seed in zip(paths, ("1", "1", "2")):
        code, _, _ = run_main(capsys, "--data", "random", "--layers", "5,4,3", "--activations", "tanh,sigmoid",
                              "--loss", "binary_crossentropy", "--optimizer", "sgd", "--optimizer-config",
                              '{"momentum": 0.9, "nesterov": true}', "--batch-size", "16", "--epochs", "2",
                              "--seed", seed, "--json", str(path))
        assert code == 0
    reports = [json.loads(p.read_text()) for p in paths]
    for r in reports:
        r.pop("timing")
    assert reports[0] == reports[1] and reports[0]["max_diff"] != reports[2]["max_diff"]
    assert reports[0]["data"]["rows"] == 64 and reports[0]["steps_checked"] == 8


def test_loss_config_reaches_keras(capsys):
    code, out, _ = run_main(capsys, "--data", "random", "--layers", "4,3", "--activations", "linear",
                            "--loss", "categorical_crossentropy", "--loss-config", '{"from_logits": true}')
    assert code == 0 and "loss categorical_crossentropy from_logits=True" in out


def test_float32_guide_check(capsys):
    code, out, _ = run_main(capsys, "--dtype", "float32", "--steps", "200")
    assert code == 0 and "float32, synced steps" in out


@pytest.mark.parametrize("argv, fragments", [
    (["--layers", "3"], ["--layers", "at least two widths"]),
    (["--layers", "3,x,1"], ["--layers", "comma-separated widths"]),
    (["--layers", "3,4,1", "--activations", "tanh"], ["one name per non-input layer (2", "received 1"]),
    (["--activations", "tanh,swish"], ["unknown activation 'swish'"]),
    (["--activations", "softmax,linear"], ["softmax is supported on the last layer only"]),
    (["--loss", "hinge"], ["unknown loss 'hinge'", "categorical_crossentropy"]),
    (["--optimizer", "nadam"], ["unknown optimizer 'nadam'", "rmsprop"]),
    (["--optimizer-config", "{bad"], ["--optimizer-config", "malformed JSON"]),
    (["--loss-config", "[1, 2]"], ["--loss-config", "JSON object"]),
    (["--optimizer-config", '{"learning_rate": 0.1}'], ["unknown option 'learning_rate'", "learning_rate"]),
    (["--optimizer", "adam", "--optimizer-config", '{"momentum": 0.9}'], ["unknown option 'momentum'", "beta_1"]),
    (["--optimizer", "sgd", "--optimizer-config", '{"momentum": 2}'], ["'momentum'", "in [0, 1]", "received 2"]),
    (["--loss", "binary_crossentropy", "--loss-config", '{"from_logits": "yes"}'], ["from_logits", "bool"]),
    (["--learning-rate", "0"], ["--learning-rate", "received '0'"]),
    (["--learning-rate", "nan"], ["--learning-rate", "received 'nan'"]),
    (["--learning-rate", "inf"], ["--learning-rate", "received 'inf'"]),
    (["--steps", "5", "--epochs", "2"], ["not allowed with argument"]),
    (["--batch-size", "-1"], ["--batch-size", "received '-1'"]),
    (["--dtype", "float16"], ["--dtype", "invalid choice"]),
    (["--data", "digits"], ["first kernel takes 3 inputs but X has 64 columns"]),
    (["--init", "guide", "--layers", "4,2,1"], ["--init guide needs --layers 3,2,1"]),
    (["--impl", "numpy_impl:seed_network", "--optimizer", "adam", "--layers", "3,2,1"],
     ["--layers, --optimizer describe the built-in network"]),
])
def test_bad_network_options_are_one_line_and_exit_2(capsys, argv, fragments, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_main(capsys, *argv)
    assert_one_line_error(code, err, *fragments)


# --- never silently wrong, never a traceback ---------------------------------------------------

def test_inf_in_targets_is_refused(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    np.savez("d.npz", X=np.ones((3, 3)), y=np.array([[1.0], [np.inf], [2.0]]))
    code, _, err = run_main(capsys, "--data", "d.npz")
    assert_one_line_error(code, err, "y holds inf at index [1, 0]; expected finite numbers")


def test_gradients_of_the_wrong_type_are_refused(capsys, plugin):
    name = plugin("""
        import numpy_impl
        class Net(numpy_impl.Network):
            def gradients(self, X, y):
                loss, grads = super().gradients(X, y)
                return loss, ["dW0", "db0", "dW1", "db1"]
        def make(): return Net(numpy_impl.seed_weights(), ["tanh", "linear"], 0.001)
    """)
    code, _, err = run_main(capsys, "--impl", f"{name}:make")
    assert_one_line_error(code, err, "network.gradients(X, y) item 0 must be a numeric array; received str")


def test_a_nan_gradient_from_a_plugin_is_a_mismatch_exit_1(capsys, plugin, tmp_path):
    name = plugin("""
        import numpy as np, numpy_impl
        class Net(numpy_impl.Network):
            calls = 0
            def gradients(self, X, y):
                loss, grads = super().gradients(X, y)
                self.calls += 1
                if self.calls == 4:
                    grads[0] = grads[0] * np.nan
                return loss, grads
        def make(): return Net(numpy_impl.seed_weights(), ["tanh", "linear"], 0.001)
    """)
    code, out, _ = run_main(capsys, "--impl", f"{name}:make", "--json", str(tmp_path / "r.json"))
    report = json.loads((tmp_path / "r.json").read_text())
    assert code == 1 and report["nonfinite"]["side"] == "numpy" and report["nonfinite"]["step"] == 3
    assert "the numpy side alone produced nan first, at step 3, gradient dW0[0, 0]" in out


def test_training_that_explodes_on_both_sides_is_stated_plainly(capsys, tmp_path):
    code, out, err = run_main(capsys, "--learning-rate", "10", "--json", str(tmp_path / "r.json"))
    report = json.loads((tmp_path / "r.json").read_text())
    assert code == 4 and err == "" and "training diverged on both sides alike" in out
    assert report["nonfinite"]["side"] == "both" and report["first_mismatch"] is None
    assert report["verdict"] == "diverged" and not report["ok"]


@pytest.mark.parametrize("option", ["--plot", "--junit"])
def test_unwritable_outputs_are_refused_before_running(capsys, option, tmp_path):
    code, _, err = run_main(capsys, option, str(tmp_path / "missing" / "out"))
    assert_one_line_error(code, err, f"cannot write {option}")
    assert os.listdir(tmp_path) == []
