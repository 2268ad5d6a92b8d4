"""The project as a citizen of its ecosystem: its version (compare.__version__, --version, the report), its
package metadata, the name its usage line shows, and golden files that are compressed, identified in the
report, and refused in one line when they are not .npz archives."""
import hashlib
import json
import os
import pathlib
import pickle
import shutil
import subprocess
import sys
import tomllib
import zipfile
from importlib import metadata

import numpy as np
import pytest

import compare
import numpy_impl
from compare import check
from compare.cli import invoked_as, main
from compare.version import SCHEMA_VERSION, source_version, tool_version, version_line
from helpers import ROOT, clean_env

PYPROJECT = tomllib.loads(pathlib.Path(ROOT, "pyproject.toml").read_text())["project"]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- the version ---------------------------------------------------------------------------------------------

def test_the_version_is_the_installed_one_and_pyprojects():
    assert compare.__version__ == metadata.version("numpy-keras-compare") == PYPROJECT["version"]


def test_a_source_tree_never_installed_reads_its_pyproject(monkeypatch, tmp_path):
    monkeypatch.setattr("compare.version.installed_version", lambda name: None)
    assert tool_version() == PYPROJECT["version"]
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "another"\nversion = "9.9"\n')
    assert source_version(tmp_path / "pyproject.toml") is None  # another project's version is not ours
    assert tool_version(root=str(tmp_path)) == "unknown"


def test_version_option_names_the_tool_keras_and_its_backend(capsys):
    code, out, err = run(capsys, "--version")
    line = f"numpy-keras-compare {compare.__version__} (keras {metadata.version('keras')}, tensorflow " \
           f"{metadata.version('tensorflow')}, numpy {metadata.version('numpy')}, Python "
    assert code == 0 and err == "" and out.startswith(line) and out == version_line() + "\n"
    jax = version_line("jax").split("(")[1].split(", ")[1]
    assert jax == f"jax {_installed('jax') or 'not installed'}"


def _installed(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def test_version_option_imports_neither_tensorflow_nor_keras():
    code = ("import sys; from compare.cli import main; status = main(['--version']); "
            "print(status, sorted(m for m in ('keras', 'tensorflow') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=clean_env(PYTHONPATH=ROOT),
                            capture_output=True, text=True)
    assert result.stdout.splitlines()[-1] == "0 []", result.stderr


def test_the_report_holds_its_schema_version_and_the_tools_version():
    report = check(numpy_impl.seed_network(), *numpy_impl.seed_data(), steps=1)
    assert report["schema_version"] == SCHEMA_VERSION == 1 and isinstance(report["schema_version"], int)
    assert report["versions"]["numpy-keras-compare"] == compare.__version__
    assert report["mode"] == "synced" and report["golden"] is None


# --- package metadata and the name in the usage line ---------------------------------------------------------

def test_pyproject_declares_license_authors_and_the_pythons_tensorflow_has_wheels_for():
    assert PYPROJECT["license"] == {"text": "MIT"} and "MIT License" in pathlib.Path(ROOT, "LICENSE").read_text()
    assert PYPROJECT["authors"][0]["name"]
    assert PYPROJECT["requires-python"] == ">=3.11,<3.14"
    tensorflow = metadata.metadata("tensorflow").get_all("Classifier")
    assert "Programming Language :: Python :: 3.14" not in tensorflow  # the upper bound's reason
    assert metadata.metadata("numpy-keras-compare")["License"] == "MIT"


@pytest.mark.parametrize("argv0, name", [
    ("/venv/bin/numpy-keras-compare", "numpy-keras-compare"),
    ("C:\\venv\\Scripts\\numpy-keras-compare.exe".replace("\\", os.sep), "numpy-keras-compare"),
    ("/src/compare/__main__.py", "python -m compare"),
    ("-c", "python -m compare"),
    ("", "python -m compare"),
])
def test_the_command_is_named_as_it_was_invoked(argv0, name):
    assert invoked_as(argv0) == name


@pytest.mark.parametrize("command, name", [
    ([os.path.join(os.path.dirname(sys.executable), "numpy-keras-compare")], "numpy-keras-compare"),
    ([sys.executable, "-m", "compare"], "python -m compare"),
])
def test_usage_and_errors_show_the_name_it_was_invoked_as(tmp_path, command, name):
    if not shutil.which(command[0]):
        pytest.skip(f"{command[0]} is not installed")
    usage = subprocess.run([*command, "--help"], cwd=tmp_path, env=clean_env(), capture_output=True, text=True)
    wrong = subprocess.run([*command, "--steps", "0"], cwd=tmp_path, env=clean_env(), capture_output=True, text=True)
    assert usage.returncode == 0 and usage.stdout.startswith(f"usage: {name} [-h]")
    assert wrong.returncode == 2 and wrong.stderr.splitlines() == [
        f"{name}: error: argument --steps: expected an integer > 0; received '0' (see {name} --help)"]


# --- golden files ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    path = tmp_path_factory.mktemp("citizen") / "guide.npz"
    assert main(["record", "--out", str(path), "--steps", "20"]) == 0
    return path


def test_golden_files_are_compressed_and_uncompressed_ones_still_load(recorded, tmp_path, capsys):
    with zipfile.ZipFile(recorded) as z:
        assert {m.compress_type for m in z.infolist()} == {zipfile.ZIP_DEFLATED}
    with np.load(recorded, allow_pickle=False) as f:
        arrays = dict(f.items())
    plain = tmp_path / "plain.npz"
    np.savez(plain, **arrays)  # as earlier versions recorded
    with zipfile.ZipFile(plain) as z:
        assert {m.compress_type for m in z.infolist()} == {zipfile.ZIP_STORED}
    assert os.path.getsize(recorded) < os.path.getsize(plain)
    code, out, err = run(capsys, "check", "--golden", str(plain), "-q")
    assert (code, err) == (0, "") and "agree at every step checked (20 of 20)" in out


def test_a_golden_report_names_its_file_and_hash(recorded, tmp_path, capsys):
    code, out, _ = run(capsys, "check", "--golden", str(recorded), "--json", str(tmp_path / "r.json"))
    report = json.loads((tmp_path / "r.json").read_text())
    sha = hashlib.sha256(recorded.read_bytes()).hexdigest()
    assert code == 0 and report["mode"] == "golden"
    assert report["golden"] == {"path": str(recorded), "sha256": sha, "format": 2,
                                "recorded_with": report["golden"]["recorded_with"]}
    assert report["golden"]["recorded_with"]["numpy-keras-compare"] == compare.__version__
    assert f"golden file {recorded} (sha256 {sha[:16]}…, format v2)" in out.splitlines()[1]
    assert out.splitlines()[0].endswith("golden steps")


@pytest.mark.parametrize("content, received", [
    (pickle.dumps({"X": [1.0]}), "a Python pickle, which is never loaded"),
    ("pickle+zip", "a Python pickle with a zip archive appended, which is never loaded"),
    (b"", "an empty file"),
])
def test_a_pickle_is_not_a_golden_file_and_is_never_loaded(tmp_path, capsys, content, received):
    path = tmp_path / "g.npz"
    if content == "pickle+zip":  # zipfile.is_zipfile says yes; np.load would see the pickle first
        np.savez(tmp_path / "inner.npz", X=np.ones(2))
        content = pickle.dumps({"X": [1.0]}) + (tmp_path / "inner.npz").read_bytes()
    path.write_bytes(content)
    code, _, err = run(capsys, "check", "--golden", str(path))
    line = (f"python -m compare: error: {path} is not a golden .npz file (received {received}); expected the .npz "
            "archive that python -m compare record writes")
    assert code == 2 and err.splitlines() == [line]
    assert "unsafely" not in err and "allow_pickle" not in err


def test_data_that_begins_with_a_pickle_is_refused_without_numpys_advice(tmp_path, capsys):
    path = tmp_path / "d.npz"
    np.savez(tmp_path / "inner.npz", X=np.ones((3, 3)), y=np.ones((3, 1)))
    path.write_bytes(pickle.dumps([1]) + (tmp_path / "inner.npz").read_bytes())
    code, _, err = run(capsys, "--data", str(path))
    assert code == 2 and len(err.splitlines()) == 1 and "begins with a Python pickle, which is never loaded" in err
    assert "unsafely" not in err

