"""Synced mode in chunks: the stacked comparison, the vectorised Keras steps and the cheaper large-product
bound must give the verdicts, the places and (where Keras runs step by step) the very numbers of a check
done one step at a time."""
import importlib
import json

import numpy as np
import pytest

import networks
import numpy_impl
from compare import check, data, tolerance
from compare.errors import InputError
from compare.tally import summarize

X, Y = numpy_impl.seed_data()
chunks_module = importlib.import_module("compare.chunks")


def _without_timing(report):
    return json.dumps({k: v for k, v in report.items() if k != "timing"}, sort_keys=True, default=str)


def _digits_adam():
    Xd, yd = data.load("digits")[:2]
    sizes = [Xd.shape[1], 16, yd.shape[1]]
    net = numpy_impl.Network(numpy_impl.glorot_uniform(sizes, 3), ["tanh", "softmax"], 0.01,
                             loss="categorical_crossentropy", optimizer="adam")
    return net, Xd[:200], yd[:200]


def test_chunks_report_exactly_what_step_by_step_reports(monkeypatch):
    """Adam keeps state, so Keras runs step() after step() either way: the chunked tolerances, comparisons
    and tally must then reproduce the one-step-at-a-time report bit for bit, history included."""
    net, Xd, yd = _digits_adam()
    chunked = check(net, Xd, yd, steps=40, batch_size=64, history=True)
    monkeypatch.setattr(chunks_module, "CHUNK", 1)
    net, Xd, yd = _digits_adam()
    one_by_one = check(net, Xd, yd, steps=40, batch_size=64, history=True)
    assert chunked["ok"] and chunked["steps_checked"] == 40
    assert _without_timing(chunked) == _without_timing(one_by_one)


def test_vectorised_keras_steps_agree_with_step_within_the_step_tolerance():
    """KerasStep.steps (one vectorised call) against step() (what fit computes): the same values up to
    rounding, and within the rounding bound of one side (half the tolerance between two)."""
    from keras_impl import KerasStep, build_model
    from keras_impl.model import stack
    net = numpy_impl.seed_network()
    ks = KerasStep(build_model([3, 2, 1], ["tanh", "linear"]), net.learning_rate)
    weights = []
    for _ in range(100):
        weights.append(net.get_weights())
        net.apply_gradients(net.gradients(X, Y)[1])
    W = [np.stack([w[i] for w in weights]) for i in range(4)]
    assert ks.batched(len(X))
    together = ks.steps(W, np.broadcast_to(X, (100,) + X.shape), np.broadcast_to(Y, (100,) + Y.shape))
    alone = stack([ks.step(w, X, Y) for w in weights])
    assert all(np.array_equal(a, b) for a, b in zip(together["weights_in"], W))
    tol = tolerance.step_tolerances(alone["weights_in"], ["tanh", "linear"], np.broadcast_to(X, (100,) + X.shape),
                                    np.broadcast_to(Y, (100,) + Y.shape), alone["zs"], alone["activations"], 2.0 ** -53)
    for key, t in (("activations", tol["forward"]), ("grads", tol["grads"])):
        for a, b, e in zip(together[key], alone[key], t):
            assert a.shape == b.shape and np.all(np.abs(a - b) <= e / 2)
    assert np.all(np.abs(together["loss"] - alone["loss"]) <= tol["loss"] / 2)


def test_stacked_tolerances_are_the_per_step_tolerances():
    from keras_impl import KerasStep, build_model
    net = numpy_impl.seed_network()
    ks = KerasStep(build_model([3, 2, 1], ["tanh", "linear"]), net.learning_rate)
    refs = []
    for _ in range(5):
        refs.append(ks.step(net.get_weights(), X, Y))
        net.apply_gradients(net.gradients(X, Y)[1])
    u = 2.0 ** -53
    stacked = {k: ([np.stack([r[k][i] for r in refs]) for i in range(len(refs[0][k]))]) for k in ("weights_in", "zs",
                                                                                                 "activations")}
    Xs, Ys = np.broadcast_to(X, (5,) + X.shape), np.broadcast_to(Y, (5,) + Y.shape)
    together = tolerance.step_tolerances(stacked["weights_in"], ["tanh", "linear"], Xs, Ys, stacked["zs"],
                                         stacked["activations"], u)
    assert together["loss"].shape == (5,)
    for k, r in enumerate(refs):
        alone = tolerance.step_tolerances(r["weights_in"], ["tanh", "linear"], X, Y, r["zs"], r["activations"], u)
        assert np.isclose(together["loss"][k], alone["loss"], rtol=1e-12, atol=0)
        for key in ("forward", "grads"):
            for a, b in zip(together[key], alone[key]):
                np.testing.assert_allclose(a[k], b, rtol=1e-12, atol=0)


def test_summaries_are_right_for_arrays_against_their_memory_order():
    """A transposed view on one side (Keras's kernels are (inputs, units)) must not change the ratios."""
    rng = np.random.default_rng(0)
    mine = rng.normal(size=(3, 40, 30))
    ref = np.ascontiguousarray(np.swapaxes(mine, 1, 2)).swapaxes(1, 2) + rng.normal(size=(3, 40, 30)) * 1e-12
    tol = np.full((3, 40, 30), 1e-12)
    dmax, tol_at, rmax, nonfinite = summarize(mine, ref, tol)
    diff = np.abs(mine - ref).reshape(3, -1)
    np.testing.assert_array_equal(dmax, diff.max(axis=1))
    np.testing.assert_allclose(rmax, diff.max(axis=1) / 1e-12, rtol=1e-15)
    assert not nonfinite.any() and np.all(tol_at == 1e-12)


def test_summaries_rank_zero_tolerances_and_non_finite_values_as_brute_force_does():
    """Where a tolerance is 0 an equal element has ratio 0 and a differing one inf; with every tolerance > 0 the
    NaN-clearing pass is skipped, and a NaN or inf value still makes its step non-finite (failing)."""
    from compare.tally import failing
    rng = np.random.default_rng(2)
    mine = rng.normal(size=(4, 6, 5))
    ref = mine + rng.normal(size=mine.shape) * 1e-13
    tol = np.full(mine.shape, 1e-12)
    tol[0] = 0.0  # step 0: zero tolerance on equal elements, ratio 0
    ref[0] = mine[0]
    tol[1, 2, 3] = 0.0  # step 1: one zero tolerance against a nonzero difference: ratio inf
    ref[2, 1, 1] = np.nan  # steps 2 and 3: a non-finite value with every tolerance positive
    ref[3, 4, 0] = np.inf
    dmax, tol_at, rmax, nonfinite = summarize(mine, ref, tol)
    assert rmax[0] == 0 and dmax[0] == 0 and rmax[1] == np.inf
    assert nonfinite.tolist() == [False, False, True, True]
    assert failing(rmax, nonfinite).tolist() == [False, True, True, True]
    ok = np.abs(mine[1] - ref[1]) / tol[1]
    assert np.max(ok[np.isfinite(ok)]) < 1  # step 1 fails on the zero tolerance alone


@pytest.mark.parametrize("scale", [1.0, 1e-160, 1e-300])
def test_cauchy_schwarz_bound_is_never_below_the_product(scale):
    rng = np.random.default_rng(1)
    P = np.abs(rng.normal(size=(2, 64, 300))) * scale
    Q = np.abs(rng.normal(size=(2, 300, 250)))
    Q[:, :, :5] = 0
    P[:, :3] *= 1e-200
    bound = tolerance.bound_product(P, Q)  # 64·300·250 > EXACT_PRODUCT_LIMIT: the bound, not the product
    assert 64 * 300 * 250 > tolerance.EXACT_PRODUCT_LIMIT
    assert bound.shape == (2, 64, 250) and np.all(bound >= P @ Q)
    small = tolerance.bound_product(P[:, :2, :10], Q[:, :10, :3])
    np.testing.assert_array_equal(small, P[:, :2, :10] @ Q[:, :10, :3])


def test_with_every_product_bounded_the_check_still_agrees_and_still_catches_a_tiny_learning_rate_error(
        monkeypatch):
    monkeypatch.setattr(tolerance, "EXACT_PRODUCT_LIMIT", 0)
    report = check(numpy_impl.seed_network(), X, Y, steps=300)
    assert report["ok"] and report["steps_checked"] == 300
    net = numpy_impl.seed_network()
    net.learning_rate *= 1 + 1e-7
    net._optimizer.learning_rate = net.learning_rate

    class KerasRate:  # the numpy side trains at lr·(1 + 1e-7); Keras is told the plain rate
        def __getattr__(self, name):
            return getattr(net, name)
        learning_rate = numpy_impl.seed_network().learning_rate
    wrong = check(KerasRate(), X, Y, steps=5)
    assert not wrong["ok"] and (wrong["first_mismatch"]["step"], wrong["first_mismatch"]["quantity"]) == (0, "weights")


class InPlace:
    """get_weights() returns the network's own arrays, which apply_gradients then changes in place."""

    activations, learning_rate = ["tanh", "linear"], 0.001

    def __init__(self):
        self.inner = numpy_impl.seed_network()
        self.weights = self.inner.get_weights()

    def get_weights(self):
        return self.weights

    def set_weights(self, weights):
        for w, v in zip(self.weights, weights):
            w[...] = v

    def forward(self, X):
        self.inner.set_weights(self.weights)
        return self.inner.forward(X)

    def gradients(self, X, y):
        self.inner.set_weights(self.weights)
        return self.inner.gradients(X, y)

    def apply_gradients(self, grads):
        for w, g in zip(self.weights, grads):
            w -= self.learning_rate * g


def test_a_network_that_updates_its_arrays_in_place_is_read_before_it_moves_on():
    report = check(InPlace(), X, Y, steps=200)
    assert report["ok"] and report["steps_checked"] == 200


class BreaksAt:
    """The guide's network, whose gradients come back with a wrong shape from step `at` on."""

    def __init__(self, at):
        self.inner, self.at, self.calls = numpy_impl.seed_network(), at, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def gradients(self, X, y):
        self.calls += 1
        loss, grads = self.inner.gradients(X, y)
        return (loss, grads[:-1]) if self.calls > self.at else (loss, grads)


def test_a_protocol_error_in_the_middle_of_a_chunk_is_a_one_line_error():
    with pytest.raises(InputError, match=r"network.gradients\(X, y\) returned 3 arrays; expected 4"):
        check(BreaksAt(10), X, Y, steps=100)


def test_a_mismatch_before_a_protocol_error_in_the_same_chunk_is_reported_first():
    """Stale weights first show at step 1; the gradients break at step 5, later in the same chunk."""
    late = BreaksAt(5)
    late.inner = networks.StaleWeights()
    report = check(late, X, Y, steps=100)
    assert not report["ok"] and (report["first_mismatch"]["step"], report["first_mismatch"]["quantity"]) == (
        1, "gradient")
