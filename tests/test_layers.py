"""Every layer kind the single-layer check accepts: the project's own numpy layers pass, a 1e-7 relative
mistake is caught, and every planted mistake (tests/layer_bugs.py) is caught with its cause named."""
import collections

import numpy as np
import pytest

from compare import adapters, check_layer
from compare.rules.layers import LAYERS
from layer_bugs import BUGS
from layer_bugs_recurrent import BUGS as RECURRENT_BUGS
from layer_cases import KINDS, case
from numpy_impl import layers as L

SEEDS = range(6)  # per kind here; benchmarks/layer_false_alarms.py runs 1,000 (docs/tolerances.md)


COARSE_KINDS = ("SimpleRNN", "LSTM", "GRU(reset_after)", "GRU(reset_before)")  # may be inconclusive, never OK


@pytest.mark.parametrize("kind", list(KINDS))
def test_correct_layers_pass_with_no_diagnosis(kind):
    for seed in SEEDS:
        layer, x, training = case(kind, seed)
        report = check_layer(layer, x, training=training, seed=seed)
        assert report["first_mismatch"] is None and report["diagnosis"] is None, (seed, report["first_mismatch"])
        assert all(c["mismatched"] == 0 for c in report["compared"])
        expected = "inconclusive" if report["coarse"] else "OK"
        assert report["verdict"] == expected and report["ok"] is (expected == "OK")
        assert not report["coarse"] or kind in COARSE_KINDS


def test_at_30_steps_a_correct_gru_is_ok_and_a_doubled_recurrent_gradient_fails():
    """Found by an adversarial review: at T = 30 the first recurrent bound (absolute values through time) on dU
    grew past dU itself, and a GRU whose dU was doubled passed (then: "inconclusive"). Carried through the
    signed Jacobians (compare/error_tape.py), the bound stays at rounding level."""
    from compare import adapters
    from numpy_impl import layers as L
    rng = np.random.default_rng(4)
    d, h = 3, 4
    Wx, Wh, b = rng.standard_normal((d, 3 * h)), rng.standard_normal((h, 3 * h)), rng.standard_normal((2, 3 * h))

    def doubled(dh, cache):
        dx, dh0, dWx, dWh, db = L.gru_backward(dh, cache)
        return dx, dh0, dWx, 2 * dWh, db
    x = rng.standard_normal((2, 30, d))
    report = check_layer(adapters.gru(L.gru_forward, L.gru_backward, Wx, Wh, b, True), x)
    assert report["verdict"] == "OK" and report["ok"] is True and not report["coarse"]
    report = check_layer(adapters.gru(L.gru_forward, doubled, Wx, Wh, b, True), x)
    m = report["first_mismatch"]
    assert report["verdict"] == "FAIL" and m["name"].endswith("recurrent_kernel") and m["abs_diff"] > m["tolerance"]


@pytest.mark.parametrize("kind", list(KINDS))
def test_an_output_off_by_1e_7_relative_is_caught(kind):
    layer, x, training = case(kind, 0)
    forward = layer.forward
    layer.forward = lambda x, training=True: forward(x, training) * (1 + 1e-7)
    report = check_layer(layer, x, training=training)
    m = report["first_mismatch"]
    assert report["ok"] is False and m["quantity"] == "output" and m["abs_diff"] > m["tolerance"]


def test_every_class_the_check_accepts_is_drawn():
    drawn = {kind.split("(")[0] for kind in KINDS}
    assert drawn == set(LAYERS)


@pytest.mark.parametrize("name, family, make, cause", BUGS + RECURRENT_BUGS, ids=[b[0] for b in BUGS + RECURRENT_BUGS])
def test_each_planted_mistake_is_caught_and_its_cause_named(name, family, make, cause):
    layer, x, training = make()
    report = check_layer(layer, x, training=training)
    assert report["ok"] is False
    assert report["causes"] == [cause], report["diagnosis"]


def test_each_family_has_at_least_three_planted_mistakes():
    families = collections.Counter(family for _, family, _, _ in BUGS)
    assert min(families.values()) >= 3, families


def test_a_channels_first_convolution_is_moved_to_keras_layout_and_back():
    rng = np.random.default_rng(3)
    w, b = rng.standard_normal((5, 3, 3, 2)), rng.standard_normal(5)
    layer = adapters.conv(L.conv_forward, L.conv_backward, w, b, {"stride": 2, "pad": "same"})
    report = check_layer(layer, rng.standard_normal((2, 3, 9, 8)))
    assert report["ok"] is True and report["layout"] == {"input": "NCHW", "output": "NCHW", "keras_input": "NHWC"}
    assert report["output_shape"] == [2, 5, 5, 4] and report["weights"][0]["shape"] == [3, 2, 3, 5]
    layer.layout = "NHWC"  # the same arrays declared channels-last: C = 9 does not fit the kernel
    with pytest.raises(Exception, match="Keras refuses it|has shape"):
        check_layer(layer, rng.standard_normal((2, 3, 9, 8)))


def test_a_course_pad_keras_cannot_express_is_refused_in_one_line():
    with pytest.raises(ValueError, match="no Keras layer pads 2 here"):
        adapters.conv(L.conv_forward, L.conv_backward, np.ones((1, 1, 3, 3)), np.ones(1), {"pad": 2})


def test_the_report_names_keras_details_for_batch_normalization():
    layer, x, _ = case("BatchNormalization", 1)
    notes = " ".join(check_layer(layer, x, training=True)["notes"])
    assert "ε = " in notes and "biased variance" in notes and "moving" in notes


@pytest.mark.parametrize("name, config, shape", [("Flatten", {}, (4, 3, 2, 5)), ("Reshape", {"target_shape": [6, 5]}, (4, 30)),
                                                 ("Reshape", {"target_shape": [2, 3, 5]}, (4, 6, 5)),
                                                 ("Flatten", {"data_format": "channels_first"}, (4, 3, 2, 5)),
                                                 ("Flatten", {"data_format": "channels_first"}, (4, 3, 2))])
def test_a_rearrangement_moves_its_upstream_error_back_as_keras_moves_dout(name, config, shape):
    """Flatten and Reshape are bounded without a VJP (compare/layer_tolerance.py _rearrangement): their outputs
    must be equal, and in a network dx carries dout's error moved back, which must be where Keras's own autodiff
    of the layer moves an upstream gradient."""
    from compare.layer_tolerance import bounds
    from compare.rounding import underflow
    from keras_impl.layer import build, forward_and_vjp
    rng = np.random.default_rng(0)
    layer = build(name, config, shape, "float64")
    x = rng.normal(size=shape)
    out = np.asarray(layer(x))
    e_dout = rng.uniform(size=out.shape)
    _, moved, _, _ = forward_and_vjp(layer, x, e_dout)  # Keras's VJP of the layer on e_dout
    u = 2.0 ** -53
    b = bounds(LAYERS[name], layer, x, np.zeros_like(out), [], out, out, True, u, e_dout=e_dout)
    floor = 2 * underflow(u)
    assert np.array_equal(b["output"], np.full(out.shape, floor))
    assert np.array_equal(b["input_gradient"], floor + 2 * moved)
    assert b["weights"] == []
