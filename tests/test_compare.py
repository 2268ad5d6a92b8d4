"""compare.check() on the guide's network: agreement for 10,000 steps, and every planted bug caught."""
import json

import numpy as np
import pytest

import networks
import numpy_impl
from compare import check, protocol

X, Y = numpy_impl.seed_data()
GUIDE_DIAGNOSIS = ("gradients are \u22121.5 × Keras's: the sign is flipped (the update climbs the loss) "
                   "and the 2/N of mean squared error is missing")


def test_seed_network_agrees_with_keras_for_10000_steps():
    report = check(numpy_impl.seed_network(), X, Y, steps=10_000)
    assert report["ok"] and report["steps_checked"] == 10_000
    assert report["first_mismatch"] is None and report["diagnosis"] is None
    ratios = {q: s["tolerance_ratio"] for q, s in report["max_diff"].items()}
    assert all(r <= 1 for r in ratios.values())
    # Steps really differ by rounding (so the comparison is not vacuous) and stay far inside elsewhere.
    assert report["max_diff"]["gradient"]["abs_diff"] > 0 and ratios["gradient"] < 0.5


def test_guide_as_written_fails_at_step_0_on_a_gradient_with_the_diagnosis():
    report = check(numpy_impl.guide_as_written(), X, Y, steps=100)
    m = report["first_mismatch"]
    assert not report["ok"] and report["steps_checked"] == 1
    assert (m["step"], m["quantity"]) == (0, "gradient") and m["name"].startswith("d")
    assert m["numpy"] == pytest.approx(-1.5 * m["keras"], rel=1e-8)
    assert m["abs_diff"] > m["tolerance"] > 0
    assert report["diagnosis"] == GUIDE_DIAGNOSIS


@pytest.mark.parametrize("bug", list(networks.BUGS), ids=lambda c: c.__name__)
def test_planted_bug_is_caught_where_it_first_shows(bug):
    step, quantity = networks.BUGS[bug]
    report = check(bug(), X, Y, steps=100)
    m = report["first_mismatch"]
    assert not report["ok"]
    assert (m["step"], m["quantity"]) == (step, quantity)
    assert m["abs_diff"] > m["tolerance"]


@pytest.mark.parametrize("bug, diagnosis", [
    (networks.SignFlipped, "gradients are \u22121 × Keras's: the sign is flipped (the update climbs the loss)"),
    (networks.SumNotMean, "gradients are 3 × Keras's: the loss is summed over the batch, not averaged over it (the "
                          "1/N of the mean is missing; declare loss_config reduction \"sum\" if it is meant)"),
    (networks.HalfSquare, "gradients are 0.5 × Keras's: the factor 2 of the square is missing (a ½ in the loss; "
                          "declare loss_scale = 0.5 if it is meant)"),
    (networks.GuideSignAndScale, GUIDE_DIAGNOSIS),
    (networks.LearningRateDrift, "updates are 1.0000001 × Keras's: the learning rate in effect is 0.0010000001, "
                                 "not the declared 0.001 (no other known cause fits; any mistake that scales every "
                                 "update of this step by the same factor, e.g. a β₁ other than declared at Adam's "
                                 "first step, looks the same)"),
    (networks.FrozenBias, "b0, b1 are never updated (the other updates agree)"),
    (networks.WrongDerivative, "layer 0 (tanh): the derivative is taken from z as if it were the output (e.g. 1 − z² "
                               "for tanh′)"),
    (networks.StaleWeights, "layer 1 (linear): the backprop through its kernel uses the weights of the previous step "
                            "(kept before the update)"),
], ids=lambda x: x.__name__ if isinstance(x, type) else "")
def test_the_guides_bugs_get_their_diagnosis_in_words(bug, diagnosis):
    assert check(bug(), X, Y, steps=100)["diagnosis"] == diagnosis


@pytest.mark.parametrize("make", networks.CORRECT[1:], ids=lambda c: c.__name__)
def test_correct_networks_written_differently_pass_10000_steps(make):
    report = check(make(), X, Y, steps=10_000)
    assert report["ok"] and report["steps_checked"] == 10_000


def test_learning_rate_off_by_one_part_in_ten_million_is_caught_at_step_0():
    report = check(networks.LearningRateDrift(), X, Y, steps=100)
    m = report["first_mismatch"]
    assert m["step"] == 0 and m["abs_diff"] > 100 * m["tolerance"]


def test_free_running_reports_drift_and_stops_where_trajectories_decorrelate():
    report = check(numpy_impl.seed_network(), X, Y, steps=10_000, free_running=True)
    drift = report["drift"]
    # Fewer steps compared than asked for is never an OK: the verdict says so.
    assert not report["ok"] and report["verdict"] == "incomplete" and report["mode"] == "free-running"
    assert report["first_mismatch"] is None
    # At lr 0.001 this network trains into an edge-of-stability oscillation near step 1,900, where
    # rounding differences grow exponentially: the drift passes 1e-6 relative and comparison stops.
    assert 1000 < drift["decorrelated_at"] < 10_000
    assert report["steps_checked"] == drift["decorrelated_at"]
    assert drift["max_rel"] > drift["limit_rel"]
    assert sum("drifted" in note for note in report["notes"]) == 1


def test_free_running_still_catches_bugs_from_step_0():
    report = check(networks.LearningRateDrift(), X, Y, steps=100, free_running=True)
    assert report["first_mismatch"]["step"] == 0


def test_free_running_agrees_before_the_drift_starts():
    report = check(numpy_impl.seed_network(), X, Y, steps=500, free_running=True)
    assert report["ok"] and report["steps_checked"] == 500 and report["drift"]["decorrelated_at"] is None
    assert 0 < report["drift"]["max_abs"] < 1e-10


def test_divergence_on_both_sides_is_reported_not_raised():
    report = check(numpy_impl.Network(numpy_impl.seed_weights(), ["tanh", "linear"], 10.0), X, Y, steps=100)
    nf = report["nonfinite"]
    assert not report["ok"] and nf["side"] == "both"
    assert nf["step"] > 0 and "diverged on both sides" in report["diagnosis"]
    json.dumps(report, allow_nan=False)  # the report stays valid JSON


class NanGradientAtStep2(networks.GuideStyle):
    calls = 0

    def gradients(self, X, y):
        loss, grads = super().gradients(X, y)
        self.calls += 1
        if self.calls == 3:
            grads[3] = np.array([np.nan])
        return loss, grads


def test_a_nan_gradient_from_numpy_is_a_mismatch_naming_side_and_step():
    report = check(NanGradientAtStep2(), X, Y, steps=10)
    assert not report["ok"]
    assert report["nonfinite"] == {"step": 2, "quantity": "gradient", "name": "db1", "side": "numpy",
                                   "index": [0], "value": "nan"}
    assert report["first_mismatch"]["numpy"] == "nan"
    assert report["diagnosis"].startswith("the numpy side alone produced nan first, at step 2, gradient db1[0]")
    json.dumps(report, allow_nan=False)


class StatefulNetwork(networks.GuideStyle):
    """Keeps its forward cache between calls and applies the gradients it computed last."""

    def gradients(self, X, y):
        self._cache = super().gradients(X, y)
        return self._cache

    def apply_gradients(self, grads):
        super().apply_gradients(self._cache[1])


def test_a_network_with_state_of_its_own_is_checked():
    assert check(StatefulNetwork(), X, Y, steps=200)["ok"]


def test_y_of_shape_n_is_reshaped_and_the_report_says_so():
    report = check(numpy_impl.seed_network(), X, Y.ravel(), steps=3)
    assert report["ok"] and report["notes"] == ["y of shape (3,) was reshaped to (3, 1)", protocol.COMBINED_NOTE]


def test_reports_are_identical_across_runs_but_for_timing():
    a, b = (check(networks.SignFlipped(), X, Y, steps=5) for _ in range(2))
    c, d = (check(numpy_impl.seed_network(), X, Y, steps=300) for _ in range(2))
    for r in (a, b, c, d):
        assert r.pop("timing")["total_s"] > 0
    assert json.dumps(a) == json.dumps(b) and json.dumps(c) == json.dumps(d)


@pytest.mark.parametrize("loss, N, k, expected", [
    # (factor, cause id) by hand: N rows, k outputs; mse averages N·k terms, its δ carries 2/(N·k)
    ("mse", 4, 3, {-1.0: "sign flipped", 6.0: "2/N missing", 0.5: "half", 1.5: "half sum over outputs",
                   4.0: "summed over the batch", 12.0: "summed", 3.0: "summed over outputs", -6.0: "sign flipped, 2/N missing",
                   2.0: "half sum over batch", 1 / 12: "mean twice"}),
    ("categorical_crossentropy", 5, 3, {-1.0: "sign flipped", 5.0: "summed over the batch", 0.2: "mean twice",
                                        -5.0: "sign flipped, summed over the batch"}),
])
def test_scale_causes_cover_sign_scale_and_combinations(loss, N, k, expected):
    from compare.diagnosis.gradients import scale_causes
    found = scale_causes({"spec": {"loss": loss}, "y": np.zeros((N, k))})
    factors = [f for f, _, _ in found]
    assert len(set(factors)) == len(factors)  # one cause per factor, the first in order of preference
    for factor, cause in expected.items():
        assert [c for f, c, _ in found if abs(f - factor) <= 1e-12 * abs(factor)] == [cause], factor


def test_constant_ratio_needs_every_element_to_agree():
    from compare.diagnosis.ratios import constant_ratio
    ref = [np.array([1.0, -2.0, 4.0])]
    tol = [np.full(3, 1e-15)]
    assert constant_ratio([-1.5 * ref[0]], ref, tol) == -1.5
    assert constant_ratio([np.array([-1.5, 3.0, -6.1])], ref, tol) is None
