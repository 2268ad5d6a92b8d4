"""SimpleRNN, LSTM and GRU: the project's numpy layers pass, a 1e-7 relative mistake is caught, each planted mistake
(tests/layer_bugs_recurrent.py) is caught with its cause named, and the course adapters map gates and states."""
import numpy as np
import pytest

from compare import adapters, check_layer, layer_check
from compare.layer_report import verdict_line
from keras_impl import convert
from layer_cases_recurrent import KINDS, case, keras_like
from numpy_impl.layers import recurrent as R

SEEDS = range(4)  # per kind; benchmarks/layer_false_alarms_recurrent.py runs 1,000


@pytest.mark.parametrize("kind", list(KINDS))
def test_correct_layers_pass_with_no_diagnosis(kind):
    sequences = set()
    for seed in SEEDS:
        layer, x, training = case(kind, seed)
        report = check_layer(layer, x, training=training, seed=seed)
        assert report["first_mismatch"] is None, (seed, report["first_mismatch"])
        assert report["verdict"] == ("inconclusive" if report["coarse"] else "OK")  # never OK on a coarse bound
        assert report["diagnosis"] is None and len([c for c in report["compared"] if c["quantity"] != "state"]) == 5
        sequences.add(layer.keras_layer["config"]["return_sequences"])
    assert sequences == {True, False}


@pytest.mark.parametrize("kind", list(KINDS))
def test_an_output_off_by_1e_7_relative_is_caught(kind):
    layer, x, training = case(kind, 0)
    forward = layer.forward
    layer.forward = lambda x, training=True: forward(x, training) * (1 + 1e-7)
    m = check_layer(layer, x, training=training)["first_mismatch"]
    assert m["quantity"] == "output" and m["abs_diff"] > m["tolerance"]


def _off(layer, which):
    """layer with the largest element of its backward's tensor `which` (0 dx, then the weight gradients) off by
    1e-7 relative (the whole tensor off is caught whenever that element alone is)."""
    backward = layer.backward

    def off(dout):
        dx, grads = backward(dout)
        tensors = [np.array(dx)] + [np.array(g) for g in grads]
        wrong = tensors[which]
        wrong[np.unravel_index(np.argmax(np.abs(wrong)), wrong.shape)] *= 1 + 1e-7
        return tensors[0], tensors[1:]
    layer.backward = off
    return layer


@pytest.mark.parametrize("kind", list(KINDS))
def test_over_30_steps_a_correct_layer_is_ok_and_1e_7_in_any_gradient_is_caught(kind):
    # the bound carries each step's rounding through the signed Jacobians (compare/error_tape.py): it does not
    # compound with |U|, which at T = 30 let a doubled recurrent-kernel gradient pass
    layer, x = keras_like(kind, 0)
    assert check_layer(layer, x)["verdict"] == "OK"
    for which, name in enumerate(["x", "kernel", "recurrent_kernel", "bias"]):
        m = check_layer(_off(keras_like(kind, 0)[0], which), x)["first_mismatch"]
        assert m is not None and m["name"].split("/")[-1] in (name, "d" + name), name
        assert m["abs_diff"] > m["tolerance"]


def test_lstm_gates_map_course_order_to_keras_and_back():
    b = np.arange(8.0)  # H = 2: i = 0 1, f = 2 3, o = 4 5, g = 6 7
    assert convert.lstm_gates_to_keras(b).tolist() == [0, 1, 2, 3, 6, 7, 4, 5]
    assert convert.lstm_gates_from_keras(convert.lstm_gates_to_keras(b)).tolist() == b.tolist()


def test_the_adapters_declare_keras_layers_and_feed_the_last_step_only():
    rng = np.random.default_rng(1)
    Wx, Wh = rng.standard_normal((2, 9)), rng.standard_normal((3, 9))
    layer = adapters.gru(R.gru_forward, R.gru_backward, Wx, Wh, rng.standard_normal(9), False, reset_after=False)
    assert layer.keras_layer == {"class_name": "GRU", "config": {"units": 3, "return_sequences": False,
                                                                 "reset_after": False}}
    x = rng.standard_normal((2, 4, 2))
    assert layer.forward(x).shape == (2, 3)
    dx, grads = layer.backward(np.ones((2, 3)))
    assert dx.shape == x.shape and [g.shape for g in grads] == [(2, 9), (3, 9), (9,)]
    with pytest.raises(Exception, match=r"reset_after=True has a bias \(2, 9\)"):
        adapters.gru(R.gru_forward, R.gru_backward, Wx, Wh, np.zeros(9))


def test_the_report_names_keras_details_per_class():
    notes = {kind: " ".join(check_layer(*case(kind, 1)[:2])["notes"]) for kind in KINDS}
    assert "(i, f, c, o)" in notes["LSTM"] and "(i, f, o, g)" in notes["LSTM"]
    assert "(2, 3H)" in notes["GRU(reset_after)"] and "z·h_{t−1} + (1 − z)·hh" in notes["GRU(reset_after)"]
    assert "reset_after=False" in notes["GRU(reset_before)"] and "sigmoid" in notes["GRU(reset_before)"]
    assert "tanh" in notes["SimpleRNN"] and "(i, f, c, o)" not in notes["SimpleRNN"]


def test_past_the_forms_memory_the_bound_falls_back_to_absolute_values_and_never_to_a_wrong_ok(monkeypatch):
    from compare import bounds_recurrent
    layer, x = keras_like("GRU(reset_after)", 0)
    assert bounds_recurrent.symbols("GRU", x.shape, 6) == 2 * 30 * 6  # room for the forms at this size
    # x_t's gradients hold forms too: with D ≫ H they dominate (8 × 300 × 500 × 1,000 symbols: 9.6 GB)
    assert bounds_recurrent.symbols("SimpleRNN", (8, 500, 300), 1) == 0
    monkeypatch.setattr(bounds_recurrent, "FORMS_BYTES", 0)
    assert bounds_recurrent.symbols("GRU", x.shape, 6) == 0
    report = check_layer(layer, x)  # correct: compounded bounds may be too coarse to vouch, never a FAIL
    assert report["first_mismatch"] is None and report["verdict"] in ("OK", "inconclusive")
    report = check_layer(_off(keras_like("GRU(reset_after)", 0)[0], 2), x)  # drecurrent_kernel off by 1e-7
    assert report["ok"] is False and report["verdict"] in ("FAIL", "inconclusive")
    # found by an adversarial review: over 120 steps the absolute bound overflowed to inf and NaN, and a NaN
    # tolerance fails every element: a correct layer got FAIL. An overflowed bound allows anything: inconclusive
    layer, x = keras_like("SimpleRNN", 0, n=1, t=120, d=4, h=16)
    report = check_layer(layer, x)
    assert report["verdict"] == "inconclusive" and report["first_mismatch"] is None
    assert all(np.isfinite(c["largest_tolerance"]) for c in report["compared"])
    assert "dx" in [c["name"] for c in report["coarse"]]
    assert "dx (its bound overflowed)" in verdict_line(report)
    # an overflowed bound on a tensor whose values are all 0 (dout 0 there) is inconclusive too, never OK
    # (found by a review: the 10⁻⁶-of-the-largest-value rule skips a tensor of zeros)
    compared = [{"quantity": "weight_gradient", "name": "dbias", "largest_value": 0.0,
                 "largest_tolerance": float(np.finfo(np.float64).max)}]
    assert layer_check.coarse_tensors(compared, "float64") == [{"name": "dbias", "resolution": float("inf")}]
