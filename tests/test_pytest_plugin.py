"""The pytest plugin in other people's projects: no name clash, no source of ours in a failure, usage errors."""
import os
import subprocess
import sys
from importlib.metadata import entry_points

import pytest

import numpy_keras_compare_pytest as plugin
from helpers import ROOT, clean_env

OURS = ("compare", "numpy_impl", "keras_impl", "numpy", "keras", "tensorflow")


def run_pytest(folder, *args, console_script=False):
    """pytest in a fresh process from `folder`, with our package only as installed (no PYTHONPATH)."""
    env = {k: v for k, v in clean_env().items() if k != "PYTHONPATH"}
    command = [os.path.join(os.path.dirname(sys.executable), "pytest")] if console_script else [sys.executable, "-m", "pytest"]
    return subprocess.run(command + ["-p", "no:cacheprovider", *args], cwd=folder, env=env, capture_output=True, text=True)


def test_plugin_is_registered_under_a_module_name_of_its_own():
    assert [e.value for e in entry_points(group="pytest11") if e.name == "numpy_keras_compare"] == ["numpy_keras_compare_pytest"]


def test_importing_the_plugin_loads_nothing_of_ours():
    script = f"import sys, numpy_keras_compare_pytest; print(sorted(m for m in {OURS!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=clean_env(), capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


@pytest.mark.parametrize("console_script", [False, True], ids=["python -m pytest", "pytest"])
def test_a_project_with_its_own_compare_module_runs_its_tests_unharmed(tmp_path, console_script):
    (tmp_path / "compare.py").write_text("def compare(a, b):\n    return a == b\n")
    (tmp_path / "test_mine.py").write_text("from compare import compare\n\n\ndef test_it():\n    assert compare(2, 2)\n")
    result = run_pytest(tmp_path, "-q", "--keras-dtype", "float32", console_script=console_script)  # our option: plugin loaded
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout and "Error while loading plugin" not in result.stderr


USER_TESTS = '''
import numpy_impl
from compare import assert_matches_keras

X, y = numpy_impl.seed_data()


def test_fixture(keras_check):
    keras_check(numpy_impl.guide_as_written(), X, y, steps=5)


def test_helper():
    assert_matches_keras(numpy_impl.guide_as_written(), X, y, steps=5)


def test_helper_with_a_message():
    assert_matches_keras(numpy_impl.guide_as_written(), X, y, steps=5, msg="the guide's backprop is off")


def test_fixture_with_a_message_callable(keras_check):
    keras_check(numpy_impl.guide_as_written(), X, y, steps=5, msg=lambda m: "CONTEXT " + m.splitlines()[0])
'''


def source_lines(*paths):
    """The stripped lines of our files that could not be mistaken for someone else's (12 characters or more)."""
    lines = set()
    for path in paths:
        with open(os.path.join(ROOT, path), encoding="utf-8") as f:
            lines |= {line.strip() for line in f if len(line.strip()) >= 12}
    return lines


@pytest.fixture(scope="module")
def failing_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("user")
    (folder / "test_user.py").write_text(USER_TESTS)
    return run_pytest(folder, "--tb=long")


def test_a_failure_prints_no_line_of_our_source(failing_run):
    out = failing_run.stdout + failing_run.stderr
    ours = source_lines("compare/assertions.py", "compare/checking.py", "numpy_keras_compare_pytest.py")
    shown = {line.lstrip(">E ").strip() for line in out.splitlines()} | {line.strip() for line in out.splitlines()}
    assert failing_run.returncode == 1 and "4 failed" in out
    assert sorted(shown & ours) == []
    assert "def assert_matches_keras" not in out and "functools.partial" not in out and "array([[" not in out
    assert out.count("E       AssertionError: numpy and Keras are not close at step 0, gradient dW0!") == 2


def test_msg_is_a_string_or_a_callable_of_the_default_message(failing_run):
    out = failing_run.stdout
    assert "AssertionError: the guide's backprop is off" in out
    assert "AssertionError: CONTEXT numpy and Keras are not close at step 0, gradient dW0!" in out


def test_msg_of_another_type_is_refused_in_one_line():
    from compare import assert_matches_keras
    import numpy_impl
    with pytest.raises(TypeError, match="^msg must be a string or a callable taking the default message; received int$"):
        assert_matches_keras(numpy_impl.seed_network(), *numpy_impl.seed_data(), steps=1, msg=3)


def test_an_unknown_backend_is_a_usage_error_when_pytest_starts(pytester):
    pytester.makepyfile(test_x="def test_x():\n    assert 1\n")
    result = pytester.runpytest_subprocess("--keras-backend", "theano")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --keras-backend 'theano' is not a Keras backend; expected one of tensorflow, jax, torch"])


def test_a_backend_that_is_not_installed_names_the_extra_to_install(monkeypatch):
    monkeypatch.setattr(plugin.importlib.util, "find_spec", lambda name: None)
    assert plugin.backend_problem("jax") == ("--keras-backend jax: the module 'jax' is not installed; "
                                             "install it with pip install 'numpy-keras-compare[jax]'")
    assert plugin.backend_problem("tensorflow").endswith("install it with pip install numpy-keras-compare")


def test_the_fixture_names_a_clashing_compare_module_in_one_line(tmp_path):
    (tmp_path / "compare.py").write_text("VALUE = 1\n")
    (tmp_path / "test_clash.py").write_text("def test_it(keras_check):\n    keras_check(None, None, None)\n")
    result = run_pytest(tmp_path, "-q")
    assert result.returncode == 1 and "1 failed" in result.stdout
    assert f"'compare' is {tmp_path / 'compare.py'}" in result.stdout and "rename that module" in result.stdout


WRITERS = ["tests/test_reports.py::test_plot_is_a_png_for_an_agreeing_and_a_failing_run",
           "tests/test_reports.py::test_junit_has_a_testcase_per_quantity_and_the_failure_report",
           "tests/test_cli.py::test_no_json_file_is_left_behind_on_bad_input"]


def test_tests_that_write_files_pass_under_xdist_and_leave_the_repository_alone():
    pytest.importorskip("xdist", reason="pytest-xdist is not installed (pip install -e '.[test]')")
    before = sorted(os.listdir(ROOT))
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "2", "-p", "no:cacheprovider", *WRITERS],
                            cwd=ROOT, env=clean_env(), capture_output=True, text=True)
    assert result.returncode == 0 and "3 passed" in result.stdout, result.stdout + result.stderr
    assert sorted(os.listdir(ROOT)) == before


def test_the_ci_workflow_covers_every_backend_the_plugin_accepts():
    with open(os.path.join(ROOT, "docs", "ci.md"), encoding="utf-8") as f:
        text = f.read()
    assert '        backend: [tensorflow, jax, torch]' in text and list(plugin.BACKENDS) == ["tensorflow", "jax", "torch"]
    assert '        python: ["3.11", "3.12"]' in text and "python -m compare check --golden" in text
    assert "pytest -p no:numpy_keras_compare" in text and "pytest -n auto" in text


GATEWAY_TESTS = '''
import os

import numpy_impl


def test_correct_network(keras_check):
    X, y = numpy_impl.seed_data()
    report = keras_check(numpy_impl.seed_network(), X, y, steps=5)
    assert report["steps_checked"] == 5 and os.environ["KERAS_BACKEND"] == "tensorflow"
    assert os.environ["PYTEST_XDIST_WORKER"] in ("gw0", "gw1")


def test_guide_as_written(keras_check):
    X, y = numpy_impl.seed_data()
    keras_check(numpy_impl.guide_as_written(), X, y, steps=5)
'''


def test_explicit_xdist_gateways_as_for_remote_hosts_run_the_fixture_in_each_worker(tmp_path):
    """`-d --tx SPEC` is the form xdist takes for workers on other hosts (`ssh=host//python=...`); here each
    gateway is a local interpreter named the same way, so the plugin, its option and keras_check travel to
    workers started by execnet rather than by -n."""
    pytest.importorskip("xdist", reason="pytest-xdist is not installed (pip install -e '.[test]')")
    (tmp_path / "test_gateways.py").write_text(GATEWAY_TESTS)
    result = run_pytest(tmp_path, "-q", "-d", "--tx", f"2*popen//python={sys.executable}", "--keras-backend",
                        "tensorflow", "-rA")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 failed, 1 passed" in result.stdout and "at step 0" in result.stdout
    assert "FAILED test_gateways.py::test_guide_as_written" in result.stdout
    assert "PASSED test_gateways.py::test_correct_network" in result.stdout


def test_a_refused_check_is_a_one_line_failure(tmp_path):
    """Found by a new user's trial: a layered network under --keras-dtype float32 (or a jax/torch backend), which the
    check refuses, had ended in a traceback through our source; it is one failure line."""
    (tmp_path / "test_layered.py").write_text(
        "from compare.data import load\nfrom numpy_impl import stack\n\n\n"
        "def test_cnn(keras_check):\n    keras_check(stack.cnn(), *load('digits'), steps=1, batch_size=32)\n")
    result = run_pytest(tmp_path, "-q", "--keras-dtype", "float32", "--tb=long")
    out = result.stdout + result.stderr
    assert result.returncode == 1 and "1 failed" in out
    assert "numpy-keras-compare refused the check: a network with layers is checked in float64" in out
    ours = source_lines("compare/checking.py", "compare/stack_check.py", "numpy_keras_compare_pytest.py")
    assert sorted({line.lstrip(">E ").strip() for line in out.splitlines()} & ours) == []
