"""Golden trajectories: record Keras once, check numpy networks against the file without Keras, diff two files."""
import json
import subprocess
import sys

import numpy as np
import pytest

import networks
import numpy_impl
from compare import check, golden
from compare.cli import main
from helpers import ROOT, clean_env


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("golden")
    paths = {"guide": folder / "guide.npz", "adam": folder / "adam.npz", "again": folder / "again.npz"}
    assert main(["record", "--out", str(paths["guide"]), "--steps", "150"]) == 0
    assert main(["record", "--out", str(paths["again"]), "--steps", "150"]) == 0
    assert main(["record", "--out", str(paths["adam"]), "--data", "random", "--layers", "5,4,3",
                 "--activations", "tanh,softmax", "--loss", "categorical_crossentropy", "--optimizer", "adam",
                 "--batch-size", "16", "--epochs", "3", "--seed", "4"]) == 0
    return paths


def test_recorded_file_holds_the_trajectory_config_and_versions(recorded):
    with np.load(recorded["guide"], allow_pickle=False) as f:
        config, versions = json.loads(str(f["config"])), json.loads(str(f["versions"]))
        assert f["w0"].shape == (151, 2, 3) and f["g0"].shape == (150, 2, 3) and f["loss"].shape == (150,)
        assert f["loss"][0] == 238.12000783695962
        np.testing.assert_array_equal(f["w0"][0], [[0.5, 0.5, 0.5], [0.1, 0.1, 0.1]])
    assert config["spec"]["sizes"] == [3, 2, 1] and config["steps"] == 150
    assert set(versions) == {"keras", "tensorflow", "numpy", "numpy-keras-compare"}


def test_check_against_the_golden_file_passes_without_importing_keras(recorded):
    script = ("import sys; from compare.cli import main; code = main(['check', '--golden', sys.argv[1], '-q']); "
              "print(code, sorted({m.split('.')[0] for m in sys.modules} & {'keras', 'tensorflow', 'jax', 'torch'}))")
    result = subprocess.run([sys.executable, "-c", script, str(recorded["guide"])], cwd=ROOT,
                            env=clean_env(PYTHONPATH=ROOT), capture_output=True, text=True)
    assert result.stdout.strip().splitlines()[-1] == "0 []", result.stdout + result.stderr
    assert "verdict: OK" in result.stdout


def test_check_catches_guide_as_written_with_the_diagnosis(capsys, recorded):
    code, out, _ = run(capsys, "check", "--golden", str(recorded["guide"]), "--impl", "numpy_impl:guide_as_written")
    assert code == 1 and "MISMATCH at step 0, gradient" in out and "\u22121.5 × Keras's" in out


def test_check_follows_recorded_mini_batches_and_optimizer(capsys, recorded, tmp_path):
    code, out, _ = run(capsys, "check", "--golden", str(recorded["adam"]), "--json", str(tmp_path / "r.json"))
    report = json.loads((tmp_path / "r.json").read_text())
    assert code == 0 and report["steps_checked"] == 12 and report["network"]["optimizer"] == "adam"


def test_a_network_that_keeps_and_updates_the_given_arrays_passes_against_the_file(recorded):
    # It used to move the recorded weights themselves: a false alarm at step 0, weights (entering).
    report = check(networks.AdoptsGivenArrays(), *numpy_impl.seed_data(), golden=golden.GoldenReference(str(recorded["guide"])))
    assert report["ok"] and report["steps_checked"] == 150


def test_diff_of_two_recordings_of_the_same_run_is_identical(capsys, recorded):
    code, out, _ = run(capsys, "diff", str(recorded["guide"]), str(recorded["again"]))
    assert code == 0 and "identical: all 150 steps are bit for bit the same" in out


def test_diff_shows_what_moved(capsys, recorded, tmp_path):
    with np.load(recorded["guide"], allow_pickle=False) as f:
        arrays = dict(f.items())
    arrays["g2"] = arrays["g2"].copy()
    # as if an upgrade changed the last bit of one gradient from step 40 on; the file's hash recomputed
    arrays["g2"][40:] = np.nextafter(arrays["g2"][40:], np.inf)
    arrays["sha256"] = np.array(golden.content_hash(arrays))
    moved = tmp_path / "moved.npz"
    np.savez(moved, **arrays)
    code, out, _ = run(capsys, "diff", str(recorded["guide"]), str(moved))
    assert code == 1 and "first differ at step 40 of 150" in out
    assert [line.split() for line in out.splitlines() if line.strip().startswith("gradient")][0][-1] == "dW1"


@pytest.mark.parametrize("content, fragment", [
    ("missing", "no golden file"),
    (b"PK\x03\x04 not a zip", "not a golden .npz file (received a damaged zip archive)"),
    ({"X": np.ones((2, 2)), "y": np.ones((2, 1))}, "not a golden trajectory of this tool"),
    ({"X": np.array([[1, 2]], dtype=object)}, "not a readable golden file"),
])
def test_bad_golden_files_are_one_line_and_exit_2(capsys, tmp_path, content, fragment):
    path = tmp_path / "g.npz"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, dict):
        np.savez(path, **content)
    code, _, err = run(capsys, "check", "--golden", str(path))
    assert code == 2 and len(err.strip().splitlines()) == 1 and fragment in err


def test_damaged_golden_file_is_refused(capsys, recorded, tmp_path):
    with np.load(recorded["guide"], allow_pickle=False) as f:
        arrays = {k: v for k, v in f.items() if k != "g1"}
    np.savez(tmp_path / "damaged.npz", **arrays)
    code, _, err = run(capsys, "check", "--golden", str(tmp_path / "damaged.npz"))
    assert code == 2 and "damaged golden file" in err and "g1" in err


def test_diff_refuses_different_configurations(capsys, recorded):
    code, _, err = run(capsys, "diff", str(recorded["guide"]), str(recorded["adam"]))
    assert code == 2 and "record different configurations" in err


def test_a_golden_file_brings_its_own_data_and_length(tmp_path):
    """Found by a new user's trial: check(net, None, None, golden=...) had refused a Dense file ("X must be numeric;
    received dtype object"), and assert_matches_keras asked for 100 steps of a 3-step file."""
    import numpy_impl
    from compare import assert_matches_keras, check
    from compare.golden import save
    from compare.golden.record import record
    path = str(tmp_path / "g.npz")
    save(path, record(numpy_impl.seed_network(), *numpy_impl.seed_data(), steps=3))
    report = check(numpy_impl.seed_network(), None, None, golden=path)
    assert report["mode"] == "golden" and report["ok"] and report["steps_checked"] == 3
    assert assert_matches_keras(numpy_impl.seed_network(), None, None, golden=path)["steps_checked"] == 3
