"""The planted-bug suite: every classic backprop bug is caught, in every mode that should catch it.

Modes: synced (default), free-running, and a golden file recorded from Keras beforehand. The README's
kill-rate table lists the same bugs; this test is what makes it true.
"""
import pytest

import networks
import numpy_impl
from compare import check, golden, protocol

X, Y = numpy_impl.seed_data()
BUGS = list(networks.BUGS)


def test_the_suite_has_at_least_15_bugs():
    assert len(BUGS) >= 15


def golden_reference(bug, tmp_path):
    net = bug()
    protocol.describe(net, X.shape[1], Y.shape[1])
    path = tmp_path / f"{bug.__name__}.npz"
    golden.save(path, golden.record(bug(), X, Y, steps=20))
    return golden.GoldenReference(str(path))


@pytest.mark.parametrize("mode", ["synced", "free-running", "golden"])
@pytest.mark.parametrize("bug", BUGS, ids=lambda c: c.__name__)
def test_planted_bug_is_caught(bug, mode, tmp_path):
    expected_step, quantity = networks.BUGS[bug]
    options = {"free_running": mode == "free-running"}
    if mode == "golden":
        options = {"golden": golden_reference(bug, tmp_path)}
    report = check(bug(), X, Y, steps=20, **options)
    m = report["first_mismatch"]
    assert not report["ok"] and m is not None, f"{bug.__name__} escaped in {mode} mode"
    assert m["step"] <= expected_step and m["abs_diff"] > m["tolerance"]
    if mode != "golden":  # from recorded weights a bug can show one quantity earlier
        assert (m["step"], m["quantity"]) == (expected_step, quantity)


def test_the_docstring_of_each_bug_names_it():
    assert all(bug.__doc__ and len(bug.__doc__) > 20 for bug in BUGS)
