"""Referees: exact 50-digit arithmetic and finite differences say which side is wrong."""
import importlib

import mpmath
import numpy as np
import pytest

import networks
import numpy_impl
from compare import InputError, check, data, exact
from exact import exact_loss_and_grads

X, Y = numpy_impl.seed_data()


def test_exact_step_matches_independent_numerical_differentiation_on_the_guide():
    result = exact.step(numpy_impl.seed_weights(), ["tanh", "linear"], X, Y, 0.001)
    loss, grads = exact_loss_and_grads(numpy_impl.seed_weights(), X, Y)
    assert float(result["loss"]) == loss
    for mine, ref in zip(result["grads"], grads):
        np.testing.assert_allclose(np.array(mine, dtype=float), ref, rtol=1e-13)


@pytest.mark.parametrize("activations, loss, loss_config", [
    (["tanh", "sigmoid"], "binary_crossentropy", {}),
    (["relu", "linear"], "binary_crossentropy", {"from_logits": True}),
    (["sigmoid", "softmax"], "categorical_crossentropy", {"label_smoothing": 0.1}),
    (["tanh", "relu"], "categorical_crossentropy", {}),
    (["tanh", "softmax"], "mse", {}),
    (["sigmoid", "linear"], "mae", {}),
    (["elu", "sigmoid"], "binary_crossentropy", {}),
])
def test_exact_gradients_are_the_derivative_of_the_exact_loss(activations, loss, loss_config):
    """The exact backprop against mpmath.diff of the exact loss alone, for each loss path."""
    sizes = [3, 4, 3]
    weights = numpy_impl.glorot_uniform(sizes, 5)
    weights[1] += 0.3
    weights[3] += 3.0  # relu outputs stay positive, so categorical rows have a sum
    Xr, yr = data.random_data(3, 3, loss, 5, rows=4)
    Xr = np.abs(Xr) if activations[-1] == "relu" else Xr
    result = exact.step(weights, activations, Xr, yr, 0.01, loss=loss, loss_config=loss_config)
    flat = [mpmath.mpf(float(v)) for w in weights for v in w.ravel()]
    sizes_flat = np.cumsum([0] + [w.size for w in weights])

    def loss_at(i, t):
        with mpmath.workdps(exact.DIGITS):
            shifted = [np.array(w, dtype=object) for w in weights]
            k = int(np.searchsorted(sizes_flat, i, side="right") - 1)
            shifted[k].reshape(-1)[i - sizes_flat[k]] = t
            return exact.step(shifted, activations, Xr, yr, 0.01, loss=loss, loss_config=loss_config)["loss"]
    mine = np.concatenate([np.array(g, dtype=float).ravel() for g in result["grads"]])
    for i in (0, 5, 13, len(flat) - 4, len(flat) - 1):
        with mpmath.workdps(30):
            numeric = float(mpmath.diff(lambda t: loss_at(i, t), flat[i]))
        assert mine[i] == pytest.approx(numeric, rel=1e-9, abs=1e-12)


def test_exact_referee_on_the_guides_network_finds_neither_side_wrong_and_shows_the_lost_digits():
    referee = check(numpy_impl.seed_network(), X, Y, steps=10, referee="exact")["referee"]
    assert referee["verdict"] == "neither" and referee["step"] == 0
    numpy_grad, keras_grad = referee["numpy"]["gradient"], referee["keras"]["gradient"]
    # float64 keeps only ~10 of 16 digits of the saturated unit's gradient, on both sides.
    assert 1e-11 < numpy_grad["max_elementwise_rel"] < 1e-9 and numpy_grad["where"].startswith("dW0[0,")
    assert 1e-11 < keras_grad["max_elementwise_rel"] < 1e-9 and keras_grad["max_ulps"] > 1e5
    assert numpy_grad["error_over_bound"] < 1 and keras_grad["error_over_bound"] < 1


def test_exact_referee_names_the_numpy_side_for_guide_as_written():
    report = check(numpy_impl.guide_as_written(), X, Y, steps=10, referee="exact")
    assert report["referee"]["verdict"] == "numpy"
    assert report["referee"]["keras"]["gradient"]["error_over_bound"] < 1


class WrongKeras:
    """Wraps the Keras step and scales its gradients: a stand-in for a bug on the Keras side."""

    def __init__(self, inner, factor):
        self.inner, self.factor = inner, factor

    def step(self, weights, X, y):
        out = self.inner.step(weights, X, y)
        out["grads"] = [g * self.factor for g in out["grads"]]
        return out

    def steps(self, weights, Xs, ys):
        out = self.inner.steps(weights, Xs, ys)
        out["grads"] = [g * self.factor for g in out["grads"]]
        return out

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.mark.parametrize("referee", ["exact", "finite_differences"])
@pytest.mark.parametrize("make, verdict", [(numpy_impl.seed_network, "keras"), (numpy_impl.guide_as_written, "both")])
def test_referees_name_keras_or_both_when_keras_is_wrong(monkeypatch, referee, make, verdict):
    environment = importlib.import_module("compare.environment")
    real = environment.keras_step
    monkeypatch.setattr(environment, "keras_step", lambda spec, dtype: WrongKeras(real(spec, dtype), 1.01))
    report = check(make(), X, Y, steps=5, referee=referee)
    assert not report["ok"] and report["referee"]["verdict"] == verdict


def test_finite_differences_name_the_numpy_side_and_report_their_own_error():
    report = check(networks.WrongDerivative(), X, Y, steps=5, referee="finite_differences")
    r = report["referee"]
    assert r["verdict"] == "numpy" and r["coordinates"] == 11 and r["loss_oracle"] == "keras"
    assert 0 < r["error_estimate"] < 1e-6
    assert r["keras"]["max_diff_over_allowance"] < 1 < r["numpy"]["max_diff_over_allowance"]


def test_finite_differences_sample_coordinates_of_a_large_network():
    Xd, yd = data.load("digits")
    net = numpy_impl.Network(numpy_impl.glorot_uniform([64, 32, 10], 0), ["relu", "softmax"], 0.001,
                             loss="categorical_crossentropy", optimizer="adam")
    r = check(net, Xd, yd, steps=3, batch_size=32, referee="finite_differences")["referee"]
    assert r["verdict"] == "neither" and r["coordinates"] == 200 and r["parameters"] == 2410


def test_finite_differences_do_not_judge_an_update_bug():
    r = check(networks.LearningRateDrift(), X, Y, steps=5, referee="finite_differences")["referee"]
    assert r["verdict"] is None and "gradients only" in r["note"]


def test_exact_referee_refuses_large_networks_before_running():
    net = numpy_impl.Network(numpy_impl.glorot_uniform([64, 32, 10], 0), ["relu", "linear"], 0.01)
    Xd, yd = data.load("digits")
    with pytest.raises(InputError, match="up to 500 parameters; this network has 2410"):
        check(net, Xd, yd, steps=1, referee="exact")


@pytest.mark.parametrize("side, exact, bound, wrong", [
    (np.nan, 1.0, 1e-16, True),          # a NaN against a finite value: an infinite error
    (np.nan, np.inf, 1e-16, True),       # NaN against inf is not "the same non-finite value"
    (np.inf, -np.inf, 1e-16, True),      # opposite infinities: the allowance is not a number, the ratio counts as past
    (1.0, np.inf, 1e-16, True),
    (1.0 + 1e-12, 1.0, np.nan, True),    # a bound that is not a number vouches for nothing
    (np.inf, np.inf, 1e-16, False),      # the same value
    (1.0 + 2.0 ** -52, 1.0, 2.0 ** -53, False),  # one ulp: within E + half an ulp of the rounded reference
    (1.0 + 2.0 ** -51, 1.0, 2.0 ** -53, True),   # two ulps: past it
])
def test_side_errors_count_every_non_finite_and_unbounded_difference(side, exact, bound, wrong):
    """Found by reviews: NaN ratios had read as 0 (max(0.0, nan) is 0.0), so a NaN side passed the exact referee."""
    from compare.referee import side_errors
    values = {"forward": ({"names": ["a1"], "arrays": [np.array([side])]}, [np.array([exact])], [np.array([bound])])}
    assert side_errors(values, 2.0 ** -53)[1] is wrong


def test_rel_to_tensor_is_taken_only_for_a_tensor_above_its_rounding():
    """A tensor whose exact value is 0 to 50 digits (a bias's gradient before batch normalization) had a relative
    error of 1e+35 in the report; its relative figures are 0 and its ratio to the bound stays."""
    from compare.referee import side_errors
    values = {"gradient": ({"names": ["db"], "arrays": [np.array([3e-17, -1e-17])]}, [np.array([1e-51, -2e-52])],
                           [np.array([1e-16, 1e-16])])}
    errors, wrong = side_errors(values, 2.0 ** -53)
    g = errors["gradient"]
    assert not wrong and g["rel_to_tensor"] == 0 and g["max_elementwise_rel"] == 0 and g["where"] is None
    assert g["error_over_bound"] == pytest.approx(0.3) and g["where_over_bound"] == "db[0]"


def test_a_golden_replay_whose_entering_weights_differ_gets_a_note_not_a_traceback(tmp_path):
    """Found by a review: a Dense golden replay with referee="exact" whose network does not take the weights it is
    given stopped at the entering weights, before the step's tolerances, and the referee raised KeyError('tol')."""
    from compare.golden import open_file, save
    from compare.golden.record import record
    save(str(tmp_path / "g.npz"), record(numpy_impl.seed_network(), X, Y, steps=3))
    net = numpy_impl.seed_network()
    real = net.set_weights
    net.set_weights = lambda ws: real([np.float32(w).astype(float) for w in ws])  # rounds what it is given
    report = check(net, X, Y, golden=open_file(str(tmp_path / "g.npz")), referee="exact")
    assert report["verdict"] == "mismatch" and report["first_mismatch"]["quantity"] == "weights"
    assert report["referee"]["verdict"] is None and "nothing to referee" in report["referee"]["note"]
