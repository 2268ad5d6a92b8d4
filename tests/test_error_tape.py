"""The error tape (compare/error_tape.py) against exact arithmetic: on a recurrence whose signed Jacobians contract
while their absolute values expand, the bounds with named states hold every float64 value and gradient within
them of the exact value (mpmath, 40 digits), and do not compound, where absolute values alone do."""
import mpmath
import numpy as np
import pytest

from compare.error_tape import Tape

U64 = 2.0 ** -53
T, H = 60, 2
# 0.9 × a rotation by 45°: the signed product of T Jacobians shrinks as 0.9^T, that of |U| grows as 1.27^T
U = 0.9 * np.array([[1.0, -1.0], [1.0, 1.0]]) / np.sqrt(2.0)
X = np.random.default_rng(0).uniform(-0.3, 0.3, (2, T, H))  # 2 samples: tanh stays near its linear part
DOUT = np.array([[1.0, -0.5], [0.25, 2.0]])


def _taped(symbols):
    tape = Tape(U64, symbols)
    u = tape.leaf(U)
    h = tape.leaf(np.zeros((2, H)))
    for t in range(T):
        h = tape.name(tape.tanh(tape.add(tape.leaf(X[:, t]), tape.matmul(h, u))))
    (du,) = tape.backward(h, DOUT, [u])
    return h, du


def _exact(u):
    """h_T in 40 digits for a recurrent matrix u (mpmath matrices), per sample."""
    out = []
    for n in range(2):
        h = mpmath.matrix(1, H)
        for t in range(T):
            h = (mpmath.matrix([X[n, t].tolist()]) + h * u).apply(mpmath.tanh)
        out.append(h)
    return out


@pytest.fixture(scope="module")
def exact():
    mpmath.mp.dps = 40
    u = mpmath.matrix(U.tolist())
    h = np.array([[float(v) for v in row] for row in _exact(u)])
    step, du = mpmath.mpf(10) ** -25, np.zeros((H, H))
    for i in range(H):
        for j in range(H):
            up, down = u.copy(), u.copy()
            up[i, j] += step
            down[i, j] -= step
            loss = [sum(DOUT[n, k] * (a[k] - b[k]) for n, (a, b) in enumerate(zip(_exact(up), _exact(down)))
                        for k in range(H))]
            du[i, j] = float(loss[0] / (2 * step))  # central difference: error O(step²) = 1e-50
    return h, du


def test_named_states_bound_the_float64_error_of_values_and_gradients(exact):
    h_exact, du_exact = exact
    h, du = _taped(symbols=2 * T * H)
    assert h.c is not None and du.c is not None
    assert np.all(np.abs(h.v - h_exact) <= h.bound()), (np.abs(h.v - h_exact), h.bound())
    assert np.all(np.abs(du.v - du_exact) <= du.bound()), (np.abs(du.v - du_exact), du.bound())


def test_named_states_do_not_compound_where_absolute_values_do(exact):
    h_exact, _ = exact
    h, du = _taped(symbols=2 * T * H)
    h_abs, du_abs = _taped(symbols=0)  # no room for symbols: absolute values alone
    assert h_abs.c is None and np.all(np.abs(h_abs.v - h_exact) <= h_abs.bound())
    # the signed bound stays near u times the largest value (measured 4.1e-15 against 0.60, 62 u; 6.4e-14 against
    # 2.6 for dU, a sum over the T = 60 steps, 220 u); the absolute one grows as 1.27^T (2.2e-11 and 5.4e-7)
    assert np.max(h.bound()) < 100 * U64 * np.max(np.abs(h.v))
    assert np.max(du.bound()) < 10 * T * U64 * np.max(np.abs(du.v))
    assert np.max(h_abs.bound()) > 1e3 * np.max(h.bound()) and np.max(du_abs.bound()) > 1e6 * np.max(du.bound())


def test_a_sample_s_symbols_never_cancel_another_s():
    # h₁ = tanh(x) per sample, then Σ over the batch of h₁ (a bias gradient): the two samples' errors add
    tape = Tape(U64, symbols=1)
    h = tape.name(tape.tanh(tape.leaf(np.array([[0.5], [-0.5]]))))
    total = tape.sum_to(tape.mul(h, tape.leaf(np.array([[1.0], [1.0]]))), (1,))
    assert total.c.shape == (1, 2, 1)  # (element, sample, symbol)
    assert total.bound()[0] == pytest.approx(2 * h.c[0, 0, 0], rel=1e-12) and h.c[0, 0, 0] > 0
