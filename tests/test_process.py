"""compare.tune_process: the settings python -m compare gives the process that runs the check (README, Performance).

Its malloc setting's effect on page faults is measured by benchmarks/run.py, not asserted here: on the
same code the count ranged from 117 to 2,453 a step on the shared 2-core machine, with and without it.
"""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_python_m_compare_sets_the_openblas_thread_timeout(tmp_path):
    (tmp_path / "probe.py").write_text(
        "import os, numpy_impl\n"
        "def make():\n"
        "    print('OPENBLAS_THREAD_TIMEOUT=' + os.environ.get('OPENBLAS_THREAD_TIMEOUT', 'unset'))\n"
        "    return numpy_impl.seed_network()\n")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    out = subprocess.run([sys.executable, "-m", "compare", "--impl", "probe:make", "--steps", "1", "--quiet"],
                         cwd=tmp_path, capture_output=True, text=True, env=dict(env, PYTHONPATH=ROOT), timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "OPENBLAS_THREAD_TIMEOUT=4" in out.stdout.splitlines()
