"""The diagnosis names the right cause of a planted mistake, or says that no known cause fits, never a wrong
one; correct networks get none; the localisation names the layer where the backprop goes wrong."""
import numpy as np
import pytest

import diagnosis_bugs as bugs
import networks
import numpy_impl
from compare import check


def run(options, hooks=None, steps=10, seed=0):
    X, y = bugs.data_for(options["sizes"], options.get("loss", "mse"))
    return check(bugs.make(options, hooks, seed), X, y, steps=steps)


@pytest.mark.parametrize("name, options, hooks, cause", bugs.CASES, ids=[c[0] for c in bugs.CASES])
def test_each_planted_mistake_gets_its_cause_and_no_other(name, options, hooks, cause):
    report = run(options, hooks)
    assert not report["ok"], f"{name} escaped"
    assert report["causes"] == [cause], (report["first_mismatch"], report["diagnosis"])


@pytest.mark.parametrize("options", bugs.CORRECT, ids=lambda o: "-".join(map(str, o["sizes"])) + "-" + o.get(
    "loss", "mse") + "-" + o.get("optimizer", "sgd"))
def test_correct_networks_get_no_diagnosis(options):
    report = run(options, steps=40)
    assert report["ok"] and report["diagnosis"] is None and report["causes"] == []


def test_a_bug_in_the_second_hidden_layers_backprop_is_located_there():
    report = run(bugs.DEEP, dict(dz=bugs.at(1, lambda z, a, d: d * 0.5)))  # a factor no cause explains
    assert report["first_mismatch"]["name"] == "dW0"  # the first tensor compared that fails is the lowest layer's
    assert report["location"]["where"] == "backprop" and report["location"]["layer"] == 1
    status = {s["tensor"]: s["agrees"] for s in report["tensors"]}
    assert status["dW2"] and status["db2"] and not status["dW1"] and not status["db1"] and not status["dW0"]
    assert report["causes"] == [] and report["diagnosis"].startswith("no known cause fits")
    assert "layer 1" in report["diagnosis"]


def test_tensors_are_listed_in_backprop_order():
    report = run(bugs.DEEP, dict(delta_factor=-1.0))
    order = [s["tensor"] for s in report["tensors"]]
    assert order[0] == "loss" and order.index("a2") < order.index("dW2") < order.index("a1") < order.index("dW0")


@pytest.mark.parametrize("bug", list(networks.BUGS), ids=lambda b: b.__name__)
def test_the_guide_planted_bugs_get_a_cause_or_none_never_a_wrong_one(bug):
    X, Y = numpy_impl.seed_data()
    report = check(bug(), X, Y, steps=20)
    expected = {"SignFlipped": "sign flipped", "SumNotMean": "summed over the batch", "HalfSquare": "half",
                "WrongDerivative": "derivative at z at layer 0", "NoActivationDerivative": "no derivative at layer 0",
                "FrozenBias": "never updated", "BiasAveraged": "bias gradients averaged",
                "StaleWeights": "stale weights at layer 1", "LearningRateDrift": "learning rate",
                "Float32Arithmetic": "float32", "NoBiasForward": "no bias at layer 0", "SwappedUnits": None,
                "GuideSignAndScale": "sign flipped, 2/N missing", "TransposedKernel": "transposed kernel at layer 0",
                "MomentumNotCarried": "momentum not carried", "AdamBiasCorrectionOffByOne": "bias correction off by +1",
                "LossSummed": "summed over the batch", "WeightDecayForgotten": "weight decay forgotten"}
    cause = expected[bug.__name__]
    assert report["causes"] == ([cause] if cause else [])


@pytest.mark.parametrize("options", [bugs.BCE, dict(bugs.MSE, activations=["tanh", "sigmoid"]), bugs.CCE,
                                     dict(bugs.CCE, activations=["tanh", "softmax"])],
                         ids=["bce-sigmoid", "mse-sigmoid", "cce-relu-softmax", "cce-tanh-softmax"])
@pytest.mark.parametrize("scale", [40.0, 300.0])
def test_saturated_outputs_of_a_correct_network_pass(options, scale):
    """Outputs of 1e−20 to below the smallest normal number (σ(−45), softmax rows 400 apart): a correct
    network must not be failed by the bounds' own underflow (σ′ = σ(1 − σ) cancelling to 0, a flushed
    exp), and then the clipping the cross-entropies would add must be what separates a clipped network."""
    X, y = bugs.data_for(options["sizes"], options.get("loss", "mse"))
    net = bugs.make(options, dict(init_scale=scale))
    a = net.forward(X)[-1]
    assert np.any((a < 1e-15) | (a > 1 - 1e-15))  # the outputs do saturate
    report = check(net, X, y, steps=10)
    assert report["ok"] and report["causes"] == [], report["first_mismatch"]


def test_docs_list_every_planted_cause():
    import pathlib
    import re
    text = (pathlib.Path(__file__).parent.parent / "docs" / "diagnosis.md").read_text()
    listed = set(re.findall(r"`([^`]+)`", text))
    generic = lambda cause: re.sub(r"layer \d+", "layer l", re.sub(r"^\w+ at layer", "<activation> at layer", cause))  # noqa: E731
    missing = {c for _, _, _, c in bugs.CASES if c not in listed and generic(c) not in listed
               and c.replace("+1", "±1") not in listed}
    assert missing == set()
