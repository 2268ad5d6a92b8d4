"""The README's commands and example are real: the example runs and passes, from the CLI and from Python."""
import os
import re
import subprocess
import sys

import pytest

from helpers import ROOT, clean_env
README = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_readme_opens_with_the_install_and_test_commands():
    commands = re.findall(r"^    (\S.*)$", README, flags=re.M)[:2]
    assert commands[0].endswith("pip install -e '.[test]' && python -m compare")
    assert commands[1] == ". .venv/bin/activate && python -m pytest -q -n 2"
    ci = open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8").read()
    assert commands[1] in ci


@pytest.fixture
def example(tmp_path):
    module, usage = python_blocks()[:2]  # the plug-in example and its use come first
    (tmp_path / "my_network.py").write_text(module)
    (tmp_path / "use_it.py").write_text(usage)
    return tmp_path


def test_readme_example_passes_from_the_cli(example):
    env = clean_env(PYTHONPATH=ROOT)
    result = subprocess.run([sys.executable, "-m", "compare", "--impl", "my_network:make_network",
                             "--steps", "1000"], cwd=example, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "steps checked: 1000 of 1000" in result.stdout


def test_readme_example_passes_from_python(example):
    env = clean_env(PYTHONPATH=os.pathsep.join([ROOT, str(example)]))
    result = subprocess.run([sys.executable, "use_it.py"], cwd=example, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_readme_example_with_a_planted_bug_fails(example):
    source = (example / "my_network.py").read_text().replace("2 * (y_hat - y) / y.size", "(y_hat - y)")
    (example / "my_network.py").write_text(source)
    env = clean_env(PYTHONPATH=ROOT)
    result = subprocess.run([sys.executable, "-m", "compare", "--impl", "my_network:make_network"],
                            cwd=example, env=env, capture_output=True, text=True)
    assert result.returncode == 1 and "gradients are 1.5 × Keras's" in result.stdout
