"""Every code block of docs/numpy-to-keras.md runs, and the walkthrough command agrees with it."""
import os
import re
import subprocess
import sys

from helpers import ROOT, clean_env


def test_every_code_block_of_the_migration_guide_runs_in_order():
    text = open(os.path.join(ROOT, "docs", "numpy-to-keras.md"), encoding="utf-8").read()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 6
    namespace = {}
    for block in blocks:
        exec(compile(block, "docs/numpy-to-keras.md", "exec"), namespace)  # each block asserts its agreement
    assert namespace["grad_diff"] > 0 and namespace["loop_diff"] < 1e-13


def test_walkthrough_command_runs_the_five_stages():
    good = subprocess.run([sys.executable, "-m", "compare", "walkthrough", "--epochs", "20"], cwd=ROOT,
                          env=clean_env(PYTHONPATH=ROOT), capture_output=True, text=True)
    assert good.returncode == 0, good.stderr
    assert [line.split(":")[0] for line in good.stdout.splitlines() if line.startswith("Stage")] == \
        [f"Stage {n}" for n in range(1, 6)]
    assert good.stdout.count("  agree: largest |diff|") == 5 and "all five stages agree" in good.stdout
    bad = subprocess.run([sys.executable, "-m", "compare", "walkthrough", "--impl", "numpy_impl:guide_as_written",
                          "--epochs", "20"], cwd=ROOT, env=clean_env(PYTHONPATH=ROOT), capture_output=True, text=True)
    assert bad.returncode == 1
    stages = bad.stdout.split("Stage ")[1:]
    assert "agree:" in stages[0] and "agree:" in stages[1] and "DISAGREE" in stages[2]
