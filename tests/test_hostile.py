"""Issue 12: never an OK on a network that is wrong or was not checked, never a traceback on bad input.

Hostile plug-ins (tests/hostile.py) change their inputs, end the process or dodge the protocol; data
and files are damaged or odd. Each test fails on the code before issue 12 and asserts the exact ending:
an exit status, a one-line error naming the cause, or a mismatch.
"""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import hostile
import networks
import numpy_impl
from compare import InputError, check
from compare.cli import main
from helpers import ROOT, clean_env

X, Y = numpy_impl.seed_data()


def run_main(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code, err, *fragments):
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("python -m compare: error: "), (code, err)
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def python_m_compare(*argv, cwd=ROOT, **kwargs):
    """python -m compare in a fresh process (supervised, as a user runs it): (status, stdout, stderr)."""
    env = clean_env(PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, "tests")]))
    out = subprocess.run([sys.executable, "-m", "compare", *argv], cwd=cwd, capture_output=True, text=True,
                         env=env, timeout=300, **kwargs)
    return out.returncode, out.stdout, out.stderr


# --- the network changes what it is given ---------------------------------------------------------

@pytest.mark.parametrize("net", [hostile.ScalesXInForward, hostile.ScalesXInGradients, hostile.ShiftsY,
                                 hostile.StandardisesInPlace, hostile.KeepsAndChangesX])
@pytest.mark.parametrize("free_running", [False, True])
def test_a_network_that_writes_to_its_input_is_a_protocol_error_naming_it(net, free_running):
    with pytest.raises(InputError, match=r"wrote to its input .*read-only"):
        check(net(), X, Y, steps=5, free_running=free_running)


@pytest.mark.parametrize("free_running", [False, True])
def test_a_network_that_makes_its_batch_writable_changes_only_its_own_copy(free_running):
    # Its changed data never reaches Keras: the forward outputs differ at step 0.
    report = check(hostile.ForcesWritable(), X, Y, steps=5, free_running=free_running)
    assert not report["ok"] and report["first_mismatch"]["step"] == 0
    assert report["first_mismatch"]["quantity"] == "forward"


def test_the_users_arrays_are_never_changed_by_the_check():
    X0, Y0 = X.copy(), Y.copy()
    check(hostile.ForcesWritable(), X, Y, steps=3)
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(Y, Y0)


def test_nan_that_starts_on_the_numpy_side_says_so():
    # A 1-row batch standardised (on a copy) is NaN on the numpy side only.
    report = check(hostile.StandardisesACopy(), X, Y, steps=3, batch_size=1)
    assert not report["ok"] and report["nonfinite"]["side"] == "numpy"
    assert "numpy side alone" in report["diagnosis"] and "diverged on both" not in report["diagnosis"]


# --- the network leaves ----------------------------------------------------------------------------

@pytest.mark.parametrize("net, fragment", [
    (hostile.SysExitInGradients, "network.gradients(X, y) called sys.exit(0)"),
    (hostile.SysExitLater, "network.apply_gradients(grads) called sys.exit(0)"),
    (hostile.RaisesBaseException, "network.forward(X) raised GeneratorExit"),
    (hostile.PropertyRaises, "reading the network.loss raised RuntimeError: no loss today"),
])
def test_every_way_out_of_the_users_code_is_an_input_error(net, fragment):
    with pytest.raises(InputError) as info:
        check(net(), X, Y, steps=20)
    assert fragment in str(info.value)


def test_sys_exit_at_import_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "unguarded.py").write_text("import sys\ndef main():\n    return 0\nsys.exit(main())\n")
    code, out, err = python_m_compare("--impl", "unguarded:main", cwd=tmp_path)
    one_line_error(code, err, "cannot import module 'unguarded'", "sys.exit(0)", "__main__")
    assert out == ""


@pytest.mark.parametrize("factory, fragment", [
    ("sys_exit", "called sys.exit(0)"),
    ("os_exit", "exited with status 0 before the check finished"),
    ("exiting_list", "the network's code (tests/hostile.py"),
    ("property_raises", "no loss today"),
    ("raises_in_forward", "GeneratorExit"),
])
def test_python_m_compare_never_exits_0_when_the_network_ends_the_process(factory, fragment):
    code, out, err = python_m_compare("--impl", f"hostile:{factory}", "--steps", "20", "--json", os.devnull)
    one_line_error(code, err, fragment)
    assert "OK" not in out


def test_a_users_keyboard_interrupt_ends_the_run_as_interrupted(tmp_path, capsys):
    (tmp_path / "kbd.py").write_text(
        "import hostile\nclass K(hostile.Wrapper):\n    def forward(self, X):\n        raise KeyboardInterrupt\n"
        "def make():\n    return K()\n")
    sys.path.insert(0, str(tmp_path))
    try:
        code, out, err = run_main(capsys, "--impl", "kbd:make", "--steps", "3")
    finally:
        sys.path.remove(str(tmp_path))
    assert code == 130 and err.strip() == "python -m compare: interrupted" and "verdict" not in out


# --- fewer steps than asked -----------------------------------------------------------------------

def test_fewer_steps_compared_than_asked_is_never_a_plain_ok(tmp_path):
    code, out, err = python_m_compare("--free-running", "--steps", "4000", "-q", "--json", str(tmp_path / "r.json"))
    report = json.loads((tmp_path / "r.json").read_text())
    assert code == 3 and report["verdict"] == "incomplete" and not report["ok"]
    assert report["steps_checked"] < 4000 == report["steps_requested"]
    assert out.startswith("verdict: INCOMPLETE") and f"{report['steps_checked']} steps compared" in out


# --- precision: from Keras, never from the values ---------------------------------------------------

class ExactInFloat32(numpy_impl.Network):
    """Dyadic weights, relu: on integer data every value is exact in float32. The update's learning
    rate is off by one part in a million."""

    def __init__(self):
        weights = [np.array([[0.5, -0.25, 1.0], [0.75, 0.5, -0.5]]), np.array([0.25, -0.5]),
                   np.array([[1.0, -0.5]]), np.array([0.5])]
        super().__init__(weights, ["relu", "linear"], 2.0 ** -10)

    def apply_gradients(self, grads):
        self.weights = [w - self.learning_rate * (1 + 1e-6) * g for w, g in zip(self.weights, grads)]


# Four rows of small integers: every output, the 2/N of the loss and every gradient is exact in float32.
XI = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 10.0], [0.0, 1.0, -2.0]])
YI = np.array([[1.0], [-2.0], [3.0], [0.0]])


def test_values_exact_in_float32_do_not_make_the_check_use_float32_tolerances():
    Xi, yi = XI, YI
    report = check(ExactInFloat32(), Xi, yi, steps=5)
    assert report["computed_dtype"] == "float64"
    assert not any("23704" in note for note in report["notes"])
    assert not report["ok"] and report["first_mismatch"]["step"] == 0
    assert report["first_mismatch"]["quantity"] == "weights"


def test_a_correct_network_on_values_exact_in_float32_passes_in_float64():
    Xi, yi = XI, YI
    report = check(numpy_impl.Network(ExactInFloat32().weights, ["relu", "linear"], 2.0 ** -10), Xi, yi, steps=50)
    assert report["ok"] and report["computed_dtype"] == "float64"


# --- kinks: decided from both sides' values -------------------------------------------------------

class Relu:
    """relu → linear, written by hand, with a choice of conventions at the kinks."""

    activations = ["relu", "linear"]
    learning_rate = 0.01

    def __init__(self, loss="mse", relu_at_zero=0.0, sign_at_zero=0.0, bias_grad="sum"):
        rng = np.random.default_rng(5)
        self.W = [rng.normal(size=(4, 3)), np.zeros(4), rng.normal(size=(1, 4)), np.zeros(1)]
        self.loss, self.relu_at_zero, self.sign_at_zero, self.bias_grad = loss, relu_at_zero, sign_at_zero, bias_grad

    def get_weights(self):
        return [w.copy() for w in self.W]

    def set_weights(self, weights):
        self.W = [np.array(w, dtype=float) for w in weights]

    def forward(self, X):
        z = X @ self.W[0].T + self.W[1]
        h = np.maximum(z, 0)
        return [h, h @ self.W[2].T + self.W[3]]

    def gradients(self, X, y):
        z = X @ self.W[0].T + self.W[1]
        h, out = self.forward(X)
        r = out - y
        if self.loss == "mse":
            loss, d_out = np.mean(r ** 2), 2 * r / r.size
        else:
            loss, d_out = np.mean(np.abs(r)), np.where(r == 0, self.sign_at_zero, np.sign(r)) / r.size
        slope = np.where(z > 0, 1.0, np.where(z == 0, self.relu_at_zero, 0.0))
        d_h = (d_out @ self.W[2]) * slope
        reduce = (lambda d: d.sum(axis=0)) if self.bias_grad == "sum" else (lambda d: d.mean(axis=0))
        return float(loss), [d_h.T @ X, reduce(d_h), d_out.T @ h, reduce(d_out)]

    def apply_gradients(self, grads):
        self.W = [w - self.learning_rate * g for w, g in zip(self.W, grads)]


def zero_row_data(loss):
    """Ordinary rows and one all-zero row, where with zero biases every z is exactly 0. For mean absolute
    error its target is 0, so that ŷ − y = 0 there exactly; else 1, so that dL/dŷ is not 0 there."""
    rng = np.random.default_rng(9)
    Xz = np.vstack([rng.normal(size=(5, 3)), np.zeros((1, 3))])
    yz = np.vstack([rng.normal(size=(5, 1)), np.full((1, 1), 0.0 if loss == "mae" else 1.0)])
    return Xz, yz


@pytest.mark.parametrize("net, loss", [
    (lambda: Relu(relu_at_zero=1.0), "mse"),               # relu′(0) = 1 (z >= 0)
    (lambda: Relu("mae", sign_at_zero=1.0), "mae"),       # d|r|/dr at 0 = +1
    (lambda: Relu(bias_grad="mean"), "mse"),               # a bias-gradient bug, on data with a zero row
])
def test_a_convention_at_a_kink_is_caught_where_both_sides_computed_it_exactly(net, loss):
    Xz, yz = zero_row_data(loss)
    report = check(net(), Xz, yz, steps=3)
    m = report["first_mismatch"]
    assert not report["ok"] and m["step"] == 0 and m["quantity"] == "gradient"
    assert m["abs_diff"] > 1e6 * m["tolerance"]


@pytest.mark.parametrize("loss", ["mse", "mae"])
def test_keras_conventions_at_the_kinks_pass_on_the_same_data(loss):
    Xz, yz = zero_row_data(loss)
    report = check(Relu(loss), Xz, yz, steps=200)
    assert report["ok"], report["first_mismatch"]


def test_the_bias_bug_is_caught_at_step_0_on_ordinary_data_too():
    rng = np.random.default_rng(9)
    report = check(Relu(bias_grad="mean"), rng.normal(size=(6, 3)), rng.normal(size=(6, 1)), steps=3)
    assert report["first_mismatch"]["step"] == 0


# --- tolerances that are not finite numbers ≥ 0 ---------------------------------------------------

@pytest.mark.parametrize("bad", [np.nan, np.inf, -1e-3])
def test_a_tolerance_that_is_not_a_finite_number_fails_the_comparison(bad):
    from compare.tally import Stop, Tally
    tally = Tally()
    tally.begin_step()
    tol = np.full((2, 3), 1e-12)
    tol[1, 2] = bad
    mine, keras = np.ones((2, 3)), np.ones((2, 3)) + 55.0
    with pytest.raises(Stop) as info:
        tally.compare(0, "gradient", None, ["dW0"], [mine], [keras], [tol])
    m = info.value.mismatch
    assert m["unbounded"] and m["index"] == [1, 2] and "could not bound" in info.value.diagnosis


def test_stacked_summaries_fail_a_step_whose_tolerance_is_nan():
    from compare.tally import failing, summarize
    tol = np.full((3, 2, 2), 1e-9)
    tol[1, 0, 0] = np.nan
    _, _, rmax, nonfinite = summarize(np.zeros((3, 2, 2)), np.zeros((3, 2, 2)), tol)
    assert failing(rmax, nonfinite).tolist() == [False, True, False]


# --- bad input: one line, exit 2 -------------------------------------------------------------------

def test_a_plain_npy_as_data_is_one_line(capsys, tmp_path):
    np.save(tmp_path / "d.npy", X)
    one_line_error(*run_main(capsys, "--data", str(tmp_path / "d.npy"))[::2], "single .npy array", ".npz")


def test_an_npz_whose_header_declares_75_gib_but_holds_64_bytes_is_one_line(capsys, tmp_path):
    import io
    import zipfile
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False,
                                                  "shape": (100_000, 100_000)})
    with zipfile.ZipFile(tmp_path / "forged.npz", "w") as archive:
        archive.writestr("X.npy", header.getvalue() + b"\0" * 64)
        y_bytes = io.BytesIO()
        np.save(y_bytes, Y)
        archive.writestr("y.npy", y_bytes.getvalue())
    one_line_error(*run_main(capsys, "--data", str(tmp_path / "forged.npz"))[::2], "74.5 GiB", "64 bytes")


def test_a_network_too_large_for_memory_is_refused_before_allocating(capsys):
    one_line_error(*run_main(capsys, "--layers", "100000,100000,1")[::2], "10,000,200,001 parameters", "GiB")


@pytest.mark.parametrize("optimizer, config, fragment", [
    ("adam", {"epsilon": None}, "'epsilon' must be a finite number ≥ 0; received None"),
    ("rmsprop", {"rho": None}, "'rho' must be a finite number in [0, 1); received None"),
    ("adam", {"beta_1": 1.5}, "'beta_1' must be a finite number in [0, 1)"),
    ("sgd", {"momentum": -0.1}, "'momentum' must be a finite number in [0, 1]"),
    ("adagrad", {"initial_accumulator_value": -1}, "'initial_accumulator_value' must be a finite number ≥ 0"),
    ("adamw", {"weight_decay": "0.1"}, "'weight_decay' must be a finite number ≥ 0; received '0.1'"),
    ("adam", {"weight_decay": "0.1"}, "'weight_decay' must be a finite number ≥ 0 or null"),
    ("rmsprop", {"centered": 1}, "'centered' must be a bool"),
])
def test_optimizer_config_values_are_checked_before_keras_sees_them(capsys, optimizer, config, fragment):
    code, _, err = run_main(capsys, "--optimizer", optimizer, "--optimizer-config", json.dumps(config),
                            "--steps", "2")
    one_line_error(code, err, fragment)


def test_walkthrough_with_a_plugin_that_raises_is_one_line(capsys):
    one_line_error(*run_main(capsys, "walkthrough", "--impl", "hostile:raises_in_forward")[::2],
                   "network.forward(X) raised GeneratorExit")


@pytest.mark.parametrize("value", [1e-310, -4e-320])
def test_subnormal_data_is_refused_with_the_reason(value):
    Xs = X.copy()
    Xs[1, 2] = value
    with pytest.raises(InputError, match=r"subnormal .* at index \[1, 2\].*flush"):
        check(numpy_impl.seed_network(), Xs, Y, steps=2)


def test_values_subnormal_in_float32_are_refused_for_a_float32_check():
    Xs = X.copy()
    Xs[0, 0] = 1e-40  # a normal float64, a subnormal float32
    with pytest.raises(InputError, match="subnormal float32"):
        check(numpy_impl.seed_network(), Xs, Y, steps=2, dtype="float32")


def test_non_finite_initial_weights_are_refused():
    net = numpy_impl.seed_network()
    net.weights[2][0, 1] = np.nan
    with pytest.raises(InputError, match=r"item 2 holds nan at index \[0, 1\] before any training"):
        check(net, X, Y, steps=2)


def test_the_batch_size_reported_is_the_one_used():
    report = check(numpy_impl.seed_network(), X, Y, steps=2, batch_size=10)
    assert report["data"]["batch_size"] == 3 and report["data"]["steps_per_epoch"] == 1
    assert "batch size 10 is larger than the 3 rows" in " ".join(report["notes"])


# --- output files ----------------------------------------------------------------------------------

def test_json_to_a_symlink_writes_its_target_and_keeps_the_link(capsys, tmp_path):
    target, link = tmp_path / "target.json", tmp_path / "link.json"
    link.symlink_to(target)
    assert run_main(capsys, "--steps", "2", "--json", str(link), "-q")[0] == 0
    assert link.is_symlink() and json.loads(target.read_text())["ok"] is True


def test_json_to_a_device_writes_through_and_never_replaces_it(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    code, _, _ = python_m_compare("--steps", "2", "--json", str(fifo), "-q")
    text = reader.communicate(timeout=60)[0]
    assert code == 0 and json.loads(text)["steps_checked"] == 2
    assert fifo.is_fifo()


def test_json_dash_writes_the_report_to_stdout_and_the_text_to_stderr():
    code, out, err = python_m_compare("--steps", "2", "--json", "-")
    assert code == 0 and json.loads(out)["ok"] is True and "verdict: OK" in err


def test_report_files_follow_the_umask(tmp_path):
    code, _, _ = python_m_compare("--steps", "2", "--json", str(tmp_path / "r.json"), "-q",
                                  preexec_fn=lambda: os.umask(0o022))
    assert code == 0 and oct((tmp_path / "r.json").stat().st_mode & 0o777) == oct(0o644)


# --- Ctrl-C ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("delay", [0.3, 1.5, 4.0])
@pytest.mark.parametrize("whole_group", [True, False])
def test_ctrl_c_at_any_moment_ends_with_130_one_line_and_no_report(tmp_path, delay, whole_group):
    env = clean_env(PYTHONPATH=ROOT)
    p = subprocess.Popen([sys.executable, "-m", "compare", "--steps", "500000", "--json", "r.json"], cwd=tmp_path,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)
    time.sleep(delay)
    os.killpg(p.pid, signal.SIGINT) if whole_group else p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130 and err.decode().strip() == "python -m compare: interrupted" and out == b""
    assert os.listdir(tmp_path) == []


# --- the planted bugs are still caught where inputs are read-only ------------------------------------

@pytest.mark.parametrize("bug", [networks.BiasAveraged, networks.LearningRateDrift])
def test_planted_bugs_still_fail_at_step_0(bug):
    assert check(bug(), X, Y, steps=3)["first_mismatch"]["step"] == 0


# --- second round: cases an adversarial review found --------------------------------------------------

def test_outputs_exact_in_float32_in_any_precision_do_not_make_the_probe_decide_float32():
    X2, y2 = np.random.default_rng(1).normal(size=(16, 3)), np.random.default_rng(2).normal(size=(16, 2))
    report = check(hostile.MaeLrDrift(), X2, y2, steps=5)
    assert report["computed_dtype"] == "float64" and report["first_mismatch"]["step"] == 0
    softmax = numpy_impl.Network(numpy_impl.glorot_uniform([3, 4, 1], 0), ["tanh", "softmax"], 0.01)
    assert check(softmax, X2, y2[:, :1], steps=2)["computed_dtype"] == "float64"  # a 1-unit softmax is 1.0


def test_a_clip_convention_is_caught_where_both_sides_sit_exactly_on_the_edge():
    report = check(hostile.ExclusiveClip(), np.eye(3)[:2], np.eye(2), steps=3)
    assert not report["ok"] and report["first_mismatch"]["quantity"] == "gradient"


@pytest.mark.parametrize("factory", ["adam_runs_sgd", "hidden_scaled"])
def test_the_walkthrough_never_says_agree_for_a_wrong_network(capsys, factory):
    code, out, _ = run_main(capsys, "walkthrough", "--impl", f"hostile:{factory}", "--epochs", "5")
    assert code == 1 and "DISAGREE" in out and "all five stages agree" not in out


@pytest.fixture(scope="module")
def guide_golden(tmp_path_factory):
    path = tmp_path_factory.mktemp("golden") / "guide.npz"
    assert main(["record", "--out", str(path), "--steps", "10"]) == 0
    return path


def forged(source, target, **config_changes):
    """The golden file with config fields changed and its hash recomputed."""
    from compare import golden
    with np.load(source, allow_pickle=False) as npz:
        arrays = dict(npz.items())
    config = json.loads(str(arrays["config"]))
    config.update(config_changes)
    arrays["config"] = np.array(json.dumps(config))
    arrays["sha256"] = np.array(golden.content_hash(arrays))
    np.savez(target, **arrays)
    return str(target)


@pytest.mark.parametrize("changes, fragment", [
    ({"computed_dtype": "float32", "backend": "jax"}, "pre-activations z0 are float64-accurate"),
    ({"dtype": "float32", "computed_dtype": "float32"}, "not float32 numbers"),
])
def test_a_golden_file_that_claims_float32_must_show_it_in_its_values(capsys, guide_golden, tmp_path, changes,
                                                                      fragment):
    path = forged(guide_golden, tmp_path / "f.npz", **changes)
    one_line_error(*run_main(capsys, "check", "--golden", path, "--impl", "networks:LearningRateDrift")[::2],
                   fragment)


@pytest.mark.parametrize("argv, fragment", [
    (["--optimizer", "sgd", "--optimizer-config", '{"momentum": 1' + "0" * 400 + "}"], "'momentum' must be"),
    (["--optimizer-config", '{"a": ' + "[" * 20000 + "]" * 20000 + "}"], "JSON that cannot be read"),
    (["--impl", "hostile:huge_learning_rate"], "learning_rate must be a finite number"),
    (["--impl", "hostile:returns_none", "--data", "random"], "lacks get_weights"),
    (["--impl", "hostile:string_loss"], "expected a float"),
    (["--impl", "hostile:activations_dict"], "must be a list (or tuple)"),
    (["--impl", "hostile:runs_compare"], "cannot run inside a check"),
    (["--json", ""], "expects a file's path"),
    (["--json", "out/"], "expects a file's path"),
    (["--impl", ""], "expects MODULE:FACTORY"),
])
def test_more_bad_input_is_one_line(capsys, argv, fragment):
    one_line_error(*run_main(capsys, *argv, "--steps", "2")[::2], fragment)


def test_a_golden_config_with_a_huge_integer_is_one_line(capsys, guide_golden, tmp_path):
    path = forged(guide_golden, tmp_path / "h.npz", spec={**json.loads(str(np.load(guide_golden)["config"]))["spec"],
                                                          "learning_rate": 10 ** 400})
    one_line_error(*run_main(capsys, "check", "--golden", path)[::2], "learning_rate")


@pytest.mark.parametrize("option", ["--json", "--plot", "--junit"])
def test_a_full_device_is_one_line(capsys, option):
    one_line_error(*run_main(capsys, "--steps", "2", "-q", option, "/dev/full")[::2], "No space left")


def test_a_name_too_long_is_refused_before_the_check(capsys, tmp_path):
    one_line_error(*run_main(capsys, "--json", str(tmp_path / ("a" * 300 + ".json")))[::2], "too long")


def test_a_symlink_loop_is_refused_and_kept(capsys, tmp_path):
    loop = tmp_path / "self"
    loop.symlink_to(loop)
    one_line_error(*run_main(capsys, "--steps", "2", "--json", str(loop))[::2], "--json")
    assert loop.is_symlink()


def test_a_keras_impl_py_of_the_user_never_stands_in_for_the_projects(tmp_path):
    (tmp_path / "keras_impl.py").write_text("NOTE = 'the user\\'s own'\n")
    (tmp_path / "mine.py").write_text("import numpy_impl\ndef make():\n    return numpy_impl.seed_network()\n")
    code, out, err = python_m_compare("--impl", "mine:make", "--steps", "3", "-q", cwd=tmp_path)
    assert code == 0 and out.startswith("verdict: OK"), err


def test_data_too_large_for_the_dtype_is_one_line():
    Xl = X.astype(np.longdouble)
    Xl[0, 0] = np.longdouble(10) ** 400
    with pytest.raises(InputError, match="holds inf at index"):
        check(numpy_impl.seed_network(), Xl, Y, steps=2)
    Xf = X.copy()
    Xf[0, 0] = 1e39
    with pytest.raises(InputError, match="beyond the largest float32 number"):
        check(numpy_impl.seed_network(), Xf, Y, steps=2, dtype="float32")


def test_the_one_line_reaches_the_real_stderr_when_the_network_replaced_it():
    code, out, err = python_m_compare("--impl", "hostile:replaces_stderr", "--steps", "2")
    one_line_error(code, err, "after replacing stderr")


def test_a_network_that_closes_stdout_gets_one_line():
    code, out, err = python_m_compare("--impl", "hostile:closes_stdout", "--steps", "2")
    one_line_error(code, err, "cannot print the report")


def test_an_exception_python_ignores_is_a_note_not_noise():
    report = check(hostile.RaisesInAThread(), X, Y, steps=2)
    assert report["ok"] and any("ZeroDivisionError" in n and "thread helper" in n for n in report["notes"])


def test_sigterm_during_start_up_is_one_line(tmp_path):
    p = subprocess.Popen([sys.executable, "-m", "compare", "--steps", "500000"], cwd=tmp_path,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env(PYTHONPATH=ROOT))
    time.sleep(0.3)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 143 and err.decode().strip() == "python -m compare: ended by SIGTERM" and out == b""
