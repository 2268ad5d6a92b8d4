"""Reports that do not mislead: one element per summary row, "–" for what was never compared, a verdict
line that says where and how much, JUnit cases named after the quantity, a verdict of its own for both
sides diverging alike, and a plot of an early mismatch that shows the failing tensor."""
import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import networks
import numpy_impl
from compare import check
from compare.cli import main
from compare.plot import figure
from compare.report import summary
from compare.tally import Stop, Tally

X, Y = numpy_impl.seed_data()
QUANTITIES = ("weights", "forward", "loss", "gradient")


def rows(text):
    """{quantity: the words of its row} of the terminal summary table."""
    return {line.split()[0]: line.split() for line in text.splitlines()
            if line.split() and line.split()[0] in QUANTITIES and len(line.split()) >= 5}


def steps_to_overflow(learning_rate):
    """The first step at which the numpy network's loss is no longer finite (independent of the check)."""
    net = numpy_impl.Network(numpy_impl.seed_weights(), ["tanh", "linear"], learning_rate)
    for step in range(1000):
        with np.errstate(all="ignore"):
            loss, grads = net.gradients(X, Y)
            if not np.isfinite(loss):
                return step
            net.apply_gradients(grads)
    raise AssertionError("no overflow")


# --- the summary table: one element per row ---------------------------------------------------------

@pytest.fixture(scope="module")
def diverging():
    """Learning rate 10: the largest |diff| (weights ~1e138) and the largest ratio are different elements."""
    net = numpy_impl.Network(numpy_impl.seed_weights(), ["tanh", "linear"], 10.0)
    return check(net, X, Y, steps=100)


def test_each_element_of_the_summary_carries_its_own_numbers(diverging):
    for q in QUANTITIES:
        for e in (diverging["max_diff"][q]["largest_ratio"], diverging["max_diff"][q]["largest_abs_diff"]):
            assert e["abs_diff"] == abs(e["numpy"] - e["keras"])
            if e["abs_diff"] > 0:
                assert e["ratio"] == e["abs_diff"] / e["tolerance"]
        r, d = diverging["max_diff"][q]["largest_ratio"], diverging["max_diff"][q]["largest_abs_diff"]
        assert d["abs_diff"] >= r["abs_diff"] and r["ratio"] >= d["ratio"]
    w = diverging["max_diff"]["weights"]
    assert w["largest_abs_diff"]["abs_diff"] > 1e100 > w["largest_ratio"]["abs_diff"]  # two elements, not one mixed


def test_a_summary_row_shows_one_element_its_ratio_is_its_diff_over_its_tolerance(diverging):
    for q, words in rows(summary(diverging)).items():
        ratio, diff, tol = (float(w) for w in words[1:4])
        assert ratio == pytest.approx(diff / tol, rel=2e-2)  # each printed to 3 significant digits
        e = diverging["max_diff"][q]["largest_ratio"]
        assert words[4:6] == ["step", f"{e['step']},"] and float(words[1]) == pytest.approx(e["ratio"], rel=5e-3)


def test_the_largest_element_is_keras_own_value_at_its_index():
    report = check(numpy_impl.guide_as_written(), X, Y, steps=3)
    e = report["max_diff"]["gradient"]["largest_ratio"]
    assert (e["step"], e["name"], e["index"]) == (0, "dW0", [1, 1])
    assert (e["numpy"], e["keras"]) == (7.733288625930857, -5.15552575062055)  # the README's, from Keras


def test_quantities_never_compared_show_a_dash_not_zero():
    report = check(networks.NoBiasForward(), X, Y, steps=10)  # stops at the forward pass of step 0
    assert [report["max_diff"][q]["compared"] for q in QUANTITIES] == [True, True, False, False]
    assert report["max_diff"]["loss"]["abs_diff"] is None and report["max_diff"]["gradient"]["largest_ratio"] is None
    table = rows(summary(report))
    assert table["loss"][1:] == ["\u2013"] * 4 and table["gradient"][1:] == ["\u2013"] * 4
    assert float(table["forward"][1]) > 1e13


# --- the verdict line, and -q -------------------------------------------------------------------------

def test_quiet_names_the_step_tensor_index_and_values_of_a_mismatch(capsys):
    assert main(["--impl", "numpy_impl:guide_as_written", "-q"]) == 1
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("verdict: FAIL: numpy and Keras disagree at step 0, gradient dW0[1, 1]")
    assert "numpy 7.733288625930857, keras -5.15552575062055" in out and "(1 of 100 steps compared)" in out


def test_quiet_says_a_free_running_check_compared_fewer_steps_than_asked(capsys, tmp_path):
    code = main(["--free-running", "--steps", "2500", "-q", "--json", str(tmp_path / "r.json")])
    report = json.loads((tmp_path / "r.json").read_text())
    out = capsys.readouterr().out
    assert code == 3 and report["verdict"] == "incomplete" and report["steps_checked"] < 2500
    assert out.startswith("verdict: INCOMPLETE") and "OK" not in out
    assert f"the {report['steps_checked']} steps compared, but 2500 were asked for" in out


# --- diverging alike ------------------------------------------------------------------------------------

def test_both_sides_diverging_alike_is_its_own_verdict_exit_4(capsys, tmp_path):
    code = main(["--learning-rate", "10", "--json", str(tmp_path / "r.json")])
    report, out = json.loads((tmp_path / "r.json").read_text()), capsys.readouterr().out
    step = steps_to_overflow(10.0)
    assert code == 4 and report["verdict"] == "diverged" and not report["ok"]
    assert report["nonfinite"]["step"] == step and report["nonfinite"]["quantity"] == "loss"
    assert report["first_mismatch"] is None and report["steps_checked"] == step + 1
    assert f"verdict: DIVERGED: both sides diverged alike at step {step} (inf first in loss" in out
    assert "numpy and Keras disagree" not in out


class OverflowsAlone(networks.GuideStyle):
    """Correct, but its loss overflows (on the numpy side only) from the third call on."""
    calls = 0

    def gradients(self, X, y):
        loss, grads = super().gradients(X, y)
        self.calls += 1
        return (loss * 1e308 * 10 if self.calls >= 3 else loss), grads


def test_a_divergence_on_the_numpy_side_alone_stays_a_mismatch():
    report = check(OverflowsAlone(), X, Y, steps=10)
    assert report["verdict"] == "mismatch" and report["nonfinite"]["side"] == "numpy"
    assert report["first_mismatch"]["step"] == 2 and report["first_mismatch"]["name"] == "loss"


@pytest.mark.parametrize("numpy_side, keras_side, verdict", [
    ([np.inf, 1.0], [np.inf, 1.0], "diverged"),              # the same infinity, the rest agreeing
    ([np.nan, 1.0], [np.nan, 1.0], "diverged"),
    ([np.inf, 1.0], [np.inf, 2.0], "mismatch"),              # alike where infinite, but 1 against 2
    ([np.inf, 1.0], [-np.inf, 1.0], "mismatch"),             # opposite infinities
    ([np.inf, np.nan], [np.nan, np.inf], "mismatch"),        # non-finite at the same places, not the same values
    ([np.inf, 1.0], [1.0, np.inf], "mismatch"),              # at different places
])
def test_divergence_alike_needs_the_same_non_finite_values_and_agreement_elsewhere(numpy_side, keras_side, verdict):
    tally = Tally()
    tally.begin_step()
    with pytest.raises(Stop) as info:
        tally.compare(4, "gradient", None, ["dW0"], [np.array(numpy_side)], [np.array(keras_side)],
                      [np.full(2, 1e-12)])
    stop = info.value
    assert ("diverged" if stop.nonfinite and stop.nonfinite.get("alike") else "mismatch") == verdict
    if verdict == "mismatch":
        assert stop.mismatch is not None and stop.mismatch["step"] == 4


# --- JUnit ----------------------------------------------------------------------------------------------

def junit(tmp_path, *args):
    main([*args, "-q", "--junit", str(tmp_path / "r.xml")])
    root = ET.parse(tmp_path / "r.xml").getroot()
    assert root.tag == "testsuites" and len(root) == 1
    suite = root.find("testsuite")
    return suite, {c.get("name"): c for c in suite.findall("testcase")}


def test_junit_testcases_are_named_after_the_quantity_and_the_failure_says_where(tmp_path, capsys):
    suite, cases = junit(tmp_path, "--impl", "numpy_impl:guide_as_written")
    assert list(cases) == ["weights", "forward", "loss", "gradient", "every step asked for was compared"]
    message = cases["gradient"].find("failure").get("message")
    assert message.startswith("step 0, gradient dW0[1, 1]: numpy 7.733288625930857, keras -5.15552575062055, |diff| 12.88")
    assert "tolerance 9.7" in message and "verdict mismatch (1 of 100 steps compared)" in message
    assert (suite.get("failures"), suite.get("skipped")) == ("1", "1")
    assert "not compared" in cases["every step asked for was compared"].find("skipped").get("message")


def test_junit_skips_what_was_never_compared(tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(networks.__file__.rsplit("/", 1)[0])
    _, cases = junit(tmp_path, "--impl", "networks:NoBiasForward")
    assert cases["forward"].find("failure").get("message").startswith("step 0, forward a0[2, 1]: numpy 0.83365460")
    for q in ("loss", "gradient"):
        assert cases[q].find("failure") is None and cases[q].find("system-out") is None
        assert cases[q].find("skipped").get("message") == f"{q} was not compared: the check stopped at step 0, forward a0"


def test_junit_of_a_divergence_alike(tmp_path, capsys):
    suite, cases = junit(tmp_path, "--learning-rate", "10")
    failure = cases["loss"].find("failure")
    assert failure.get("type") == "diverged" and suite.get("failures") == "1"
    assert failure.get("message").startswith(f"step {steps_to_overflow(10.0)}, loss")


# --- the plot ---------------------------------------------------------------------------------------------

def test_plot_of_a_step_0_mismatch_shows_the_failing_tensor_per_element():
    report = check(numpy_impl.guide_as_written(), X, Y, steps=1, history=True)
    fig = figure(report)
    values, diffs = fig.axes[:2]
    assert len(fig.axes) == 2  # one step: no loss curve
    keras_line, numpy_line = values.get_lines()
    np_grad = numpy_impl.guide_as_written().gradients(X, Y)[1][0]
    true_grad = numpy_impl.seed_network().gradients(X, Y)[1][0]  # agrees with Keras to rounding
    np.testing.assert_array_equal(numpy_line.get_xdata(), np.arange(6))
    np.testing.assert_array_equal(numpy_line.get_ydata(), np_grad.ravel())
    np.testing.assert_allclose(keras_line.get_ydata(), true_grad.ravel(), rtol=0, atol=1e-12)
    for line in values.get_lines() + diffs.get_lines():
        assert line.get_linestyle() == "None" and line.get_marker() not in (None, "None", "")
    diff_line, tol_line = diffs.get_lines()
    assert diffs.get_yscale() == "log"
    np.testing.assert_allclose(diff_line.get_ydata(), np.abs(np_grad - true_grad).ravel(), rtol=0, atol=1e-12)
    assert np.all(tol_line.get_ydata() > 0) and np.all(tol_line.get_ydata() < 1e-11)


def test_plot_over_steps_draws_no_zero_on_a_log_axis_and_marks_single_points():
    report = check(numpy_impl.seed_network(), X, Y, steps=30, history=True)
    fig = figure(report)
    for ax in fig.axes[1:]:
        for line in ax.get_lines():
            y = np.asarray(line.get_ydata(), dtype=float)
            if ax.get_yscale() == "log":
                assert not np.any(y <= 0)
    weights_tol = np.asarray(report["history"]["weights"]["tolerance"])
    drawn = np.asarray(fig.axes[1].get_lines()[1].get_ydata(), dtype=float)
    assert np.all(np.isnan(drawn[weights_tol == 0])) and np.all(drawn[weights_tol > 0] > 0)
    one = figure(check(numpy_impl.seed_network(), X, Y, steps=1, history=True))
    assert all(line.get_marker() not in (None, "None", "") for line in one.axes[0].get_lines())
