"""Every Keras backend: its own autodiff, the precision it really computes in, and the same verdicts.

Keras picks its backend once per process, so each backend runs in a fresh one.
"""
import importlib.util
import json
import subprocess
import sys

import pytest

from helpers import ROOT, clean_env

SCRIPT = r"""
import json, sys
import numpy_impl
from compare import check
from compare.environment import use_backend
use_backend(sys.argv[1])
import keras_impl
X, y = numpy_impl.seed_data()
good = check(numpy_impl.seed_network(), X, y, steps=100, referee="exact")
again = check(numpy_impl.seed_network(), X, y, steps=100, referee="exact")
same = json.dumps({k: v for k, v in good.items() if k != "timing"}, default=str) == \
    json.dumps({k: v for k, v in again.items() if k != "timing"}, default=str)
bad = check(numpy_impl.guide_as_written(), X, y, steps=100, referee="exact")
fd = check(numpy_impl.guide_as_written(), X, y, steps=5, referee="finite_differences")
step = keras_impl.KerasStep(keras_impl.build_model([3, 2, 1], ["tanh", "linear"]), 0.001)
out = step.step(numpy_impl.seed_weights(), X, y)
sys.path.insert(0, "tests")
import diagnosis_bugs as bugs  # saturated cross-entropy, taken from the logits without a clip
saturated = {}
for name, options in (("bce", bugs.BCE), ("cce", bugs.CCE)):
    Xs, ys = bugs.data_for(options["sizes"], options["loss"])
    r = check(bugs.make(options, dict(init_scale=40.0)), Xs, ys, steps=5)
    saturated[name] = {"ok": r["ok"], "causes": r["causes"]}
print(json.dumps({"good": good, "bad": bad, "deterministic": same, "fd": fd["referee"], "keras_loss": out["loss"],
                  "gradient_dtype": str(step.model.trainable_variables[0].dtype), "saturated": saturated}, default=str))
"""


def run_backend(backend):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed (pip install -e '.[{backend}]'); CI installs it")
    result = subprocess.run([sys.executable, "-c", SCRIPT, backend], cwd=ROOT, env=clean_env(PYTHONPATH=ROOT),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("backend", ["tensorflow", "jax", "torch"])
def test_backend_agrees_detects_its_precision_and_catches_the_guides_bug(backend):
    r = run_backend(backend)
    good, bad = r["good"], r["bad"]
    assert good["backend"] == bad["backend"] == backend
    # The precision is read from the values: a float64 computation reproduces the exact loss of the
    # guide's network (238.12000783695962, to 1 ulp); a float32 one is ~1e-7 relative away.
    exact_loss = 238.12000783695962
    float64_values = abs(r["keras_loss"] - exact_loss) <= 2 * 2.0 ** -53 * exact_loss
    assert good["computed_dtype"] == ("float64" if float64_values else "float32")
    assert r["gradient_dtype"] == "float64"  # the label says float64 on every backend, whatever was computed
    assert r["deterministic"]  # two runs of the same check give the same report, timing aside
    assert good["ok"] and good["steps_checked"] == 100
    assert good["referee"]["verdict"] == "neither"
    m = bad["first_mismatch"]
    assert not bad["ok"] and (m["step"], m["quantity"]) == (0, "gradient")
    assert bad["diagnosis"].startswith("gradients are \u22121.5 × Keras's: the sign is flipped")
    assert bad["referee"]["verdict"] == "numpy"
    assert r["fd"]["verdict"] == "numpy"
    # Saturated sigmoid and softmax outputs, a numpy side on the logits: TensorFlow takes the logits too
    # (no clip, OK); jax and torch clip the probabilities to [ε, 1 − ε], so the numpy side lacks that clip.
    # In float32 (torch) the softmax's clipped elements' rounding can keep it from fitting: then no cause,
    # never a wrong one.
    sat = r["saturated"]
    if backend == "tensorflow":
        assert sat["bce"] == sat["cce"] == {"ok": True, "causes": []}
    else:
        assert not sat["bce"]["ok"] and sat["bce"]["causes"] == ["clipping absent"]
        assert not sat["cce"]["ok"] and sat["cce"]["causes"] in ([], ["clipping absent"])


def test_tensorflow_computes_in_float64():
    r = run_backend("tensorflow")
    assert r["good"]["computed_dtype"] == "float64"
    assert r["keras_loss"] == 238.12000783695962
