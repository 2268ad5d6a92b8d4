"""Golden files of layered networks (compare/golden/layered.py): recorded from a passing live check, played back
without TensorFlow or Keras, with the live check's comparisons; a network whose layer outputs are not the recorded
ones bit for bit is "inconclusive" past that layer; an edited or foreign file is refused in one line."""
import json
import subprocess
import sys

import numpy as np
import pytest

from compare import check
from compare.errors import InputError
from compare.golden import open_file, save
from compare.golden.layered import record_layers
from numpy_impl import stack

from helpers import ROOT, clean_env
from network_bugs import BUGS


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    from compare.data import load
    X, y = load("digits")
    path = tmp_path_factory.mktemp("golden") / "cnn-bn.npz"
    save(str(path), record_layers(stack.MODELS["cnn-bn"](), X, y, steps=4, batch_size=32))
    return path


def test_the_file_plays_back_without_keras_and_agrees(recorded):
    script = ("import sys; from compare.cli import main; code = main(['check', '--golden', sys.argv[1], '--model', "
              "'cnn-bn', '-q']); print(code, sorted({m.split('.')[0] for m in sys.modules} & "
              "{'keras', 'tensorflow', 'jax', 'torch'}))")
    done = subprocess.run([sys.executable, "-c", script, str(recorded)], cwd=ROOT, env=clean_env(PYTHONPATH=ROOT),
                          capture_output=True, text=True)
    assert done.stdout.strip().splitlines()[-1] == "0 []", done.stdout + done.stderr
    assert "verdict: OK: numpy and Keras agree at every step checked (4 of 4)" in done.stdout


def test_check_takes_the_files_path_as_the_command_line_does(recorded):
    """Found by a new user's trial: check(..., golden="file.npz") had been refused as "a file recorded for a Dense
    network"; a path is opened as the command line opens it."""
    report = check(stack.cnn(batch_norm=True, dropout=0.25), None, None, golden=str(recorded))
    assert report["mode"] == "golden" and report["verdict"] == "ok" and report["steps_checked"] == 4


def test_a_planted_bug_is_caught_from_the_file_with_its_layer(recorded):
    golden = open_file(recorded)
    net = stack.cnn(batch_norm=True, dropout=0.25)
    old = net.modules[1]

    class Flipped(stack.Conv2D):
        def backward(self, dout):
            dx, grads = super().backward(dout)
            return dx, [-grads[0], grads[1]]
    net.modules[1] = Flipped(old.weights[0], old.weights[1])
    report = check(net, golden.files["X"], golden.files["y"], golden=golden)
    m = report["first_mismatch"]
    assert report["mode"] == "golden" and (m["step"], m["name"]) == (0, "d1:Conv2D/kernel")
    assert "sign_flipped" in report["causes"]
    assert BUGS  # the live suite's planted bugs are tests/test_networks_layered.py's


def test_outputs_within_tolerance_but_not_bit_identical_are_inconclusive(recorded):
    class OneUlp(stack.Dense):  # the same layer, its output moved by one part in 2^52: within the tolerance
        def forward(self, x, training, update):
            return super().forward(x, training, update) * (1 + 2.0 ** -52)
    net = stack.MODELS["cnn-bn"]()
    i = next(i for i, m in enumerate(net.modules) if isinstance(m, stack.Dense))
    net.modules[i] = OneUlp(*net.modules[i].weights)
    golden = open_file(recorded)
    report = check(net, golden.files["X"], golden.files["y"], golden=golden)
    assert report["verdict"] == "inconclusive" and not report["ok"] and report["steps_checked"] == 0
    assert "not the recorded one bit for bit" in report["notes"][-1] and f"{i}:Dense" in report["notes"][-1]


def test_an_edited_file_and_a_file_of_another_network_are_refused(recorded, tmp_path):
    with np.load(recorded, allow_pickle=False) as f:
        arrays = dict(f)
    arrays["loss"] = arrays["loss"] * (1 + 1e-12)
    edited = tmp_path / "edited.npz"
    np.savez_compressed(edited, **arrays)
    with pytest.raises(InputError, match="edited after it was recorded"):
        open_file(edited)
    golden = open_file(recorded)
    with pytest.raises(InputError, match=r"recorded for other layers: at layers\[2\] it holds .*BatchNormalization"):
        check(stack.cnn(), golden.files["X"], golden.files["y"], golden=golden)
    config = json.loads(str(arrays["config"]))
    assert config["steps"] == 4 and config["layer_names"][2] == "2:BatchNormalization"


def test_a_network_that_fails_the_live_check_is_not_recorded():
    from compare.data import load
    X, y = load("digits")
    with pytest.raises(InputError, match="does not pass the live check .mismatch, at step 0, d1:Conv2D/kernel"):
        record_layers(BUGS["conv_gradient_sign"][0](), X, y, steps=2, batch_size=32)



def _forged(recorded, tmp_path, change):
    """The recorded file with `change(arrays)` applied and its content hash computed again (a deliberate edit)."""
    from compare.golden.record import HASH, content_hash
    with np.load(recorded, allow_pickle=False) as f:
        arrays = dict(f)
    change(arrays)
    arrays[HASH] = np.array(content_hash(arrays))
    path = tmp_path / "forged.npz"
    np.savez_compressed(path, **arrays)
    return path


def _config(arrays, **changes):
    config = json.loads(str(arrays["config"]))
    config.update(changes)
    arrays["config"] = np.array(json.dumps(config))


@pytest.mark.parametrize("change, words", [
    (lambda a: a.update({k: v * 1e12 + 1 for k, v in a.items() if k.startswith("tol_")}), "more than 1e-06"),
    (lambda a: a.pop("keras_outputs/3"), "arrays keras_outputs"),
    (lambda a: _config(a, steps=10), "row_offsets must rise"),
    (lambda a: _config(a, dtype="float32"), "dtype must be float64"),
    (lambda a: a.update(rows=a["rows"] + 5000), "rows must index"),
    (lambda a: a.update(row_offsets=a["row_offsets"][:-1]), "row_offsets must rise"),
    (lambda a: _config(a, trainable=[99]), "trainable/frozen must index"),
    (lambda a: a.update(loss=a["loss"].astype(str)), "loss must hold 4 finite float64"),
    (lambda a: a.update(config=np.array("[1, 2]")), "must be JSON objects"),
])
def test_a_forged_file_with_its_hash_recomputed_is_refused_in_one_line(recorded, tmp_path, change, words):
    """Found by a review: such files passed a wrong network (tolerances inflated) or raised tracebacks."""
    with pytest.raises(InputError) as exc:
        open_file(_forged(recorded, tmp_path, change))
    assert words in str(exc.value) and "damaged golden file" in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize("model", sorted(stack.MODELS))
def test_weights_set_back_give_the_same_outputs_bit_for_bit(model):
    """A golden replay sets the recorded weights and needs the network's outputs bit for bit: set_weights must not
    leave transposed views (x @ W.T then takes another BLAS path, one ulp apart on AVX-512 OpenBLAS: found when
    this file's replays read "inconclusive" on a new machine)."""
    from compare.data import load
    X, _ = load("sequences") if model == "transformer" else load("digits")
    X = X[:32] if model == "transformer" else X[:32].reshape(32, 1, 8, 8)
    net = stack.MODELS[model]()
    net.set_noise([np.ones((32, 72))] if model == "cnn-bn" else [])
    net.apply_gradients(net.gradients(X, np.eye(net.layers[-2]["config"].get("units", 10))[
        np.zeros(X.shape[:2] if model == "transformer" else X.shape[:1], int)])[1])  # weights the optimizer made
    before = net.forward(X)
    net.set_weights(net.get_weights())
    assert all(np.array_equal(a, b) for a, b in zip(before, net.forward(X)))
    assert all(w.flags.c_contiguous for m in net.modules for w in m.weights)


def _edited(source, target, key, index, factor):
    """A copy of a layered file with one element of `key` scaled and its hash computed again (a re-recording whose
    Keras moved there)."""
    from compare.golden.record import HASH, content_hash
    files = dict(np.load(source, allow_pickle=False))
    a = files[key].copy()
    a.reshape(-1)[index] *= factor
    files[key] = a
    files[HASH] = np.array(content_hash(files))
    np.savez_compressed(target, **files)
    return str(target)


def test_diff_compares_two_recordings_of_a_layered_network(recorded, tmp_path):
    """Found by a new user's trial: diff refused every layered file ("not a golden trajectory of this tool")."""
    from compare.cli import main
    from compare.golden import diff
    same = diff(str(recorded), str(recorded))
    assert same["identical"] and same["first_changed_step"] is None and same["steps"] == 4
    g = open_file(recorded)
    k = g.config["trainable"].index(6)  # the Dense kernel's gradient
    moved = diff(str(recorded), _edited(recorded, tmp_path / "b.npz", f"grads/{k}", 3 * 720 + 5, 1 + 1e-9))
    assert not moved["identical"] and moved["first_changed_step"] == 3 and moved["changed"] == ["d7:Dense/kernel"]
    assert moved["moved"]["gradient"]["max_rel"] == pytest.approx(1e-9, rel=1e-6)
    assert moved["moved"]["forward"]["name"] is None
    assert main(["diff", str(recorded), str(tmp_path / "b.npz")]) == 1
    other = _edited(recorded, tmp_path / "c.npz", "numpy_outputs/1", 7, 2.0)  # another numpy side
    with pytest.raises(InputError, match="record different runs: numpy_outputs/1"):
        diff(str(recorded), other)
