"""Values carried with their rounding-error bounds through a computation and its reverse-mode gradient.

Each node holds v (the value, computed in float64), e (a bound on one side's |computed − exact|) and m (the
magnitude of the uncancelled terms v is a sum of: a sum's rounding depends on its terms, not on its result,
and another order of evaluation, or autodiff differentiating a sum term by term, sums the same terms). The
rules, first order plus the products of errors (Higham, ch. 3):

    a ± b     e = e_a + e_b + u·(m_a + m_b)                 m = m_a + m_b
    a · b     e = |a|·e_b + |b|·e_a + e_a·e_b + u·|a·b|     m = m_a·m_b
    A @ B     e = e_A@|B| + |A|@e_B + e_A@e_B + γ_n·|A|@|B|  (n the inner size)   m = m_A@m_B
    Σ_k a     e = Σ e + γ_k·Σ m                              m = Σ m
    tanh(a)   e = (1 − y²)·e_a + 16u·|y|                     m = |y|
    sigmoid   e = y(1 − y)·e_a + 16u·y                       m = y

`backward` runs reverse mode over the recorded nodes with TensorFlow's gradient formulas, each built from
the same rules: Mul → g·b and g·a, MatMul → g@Bᵀ and Aᵀ@g, TanhGrad → g·(1 − y·y),
SigmoidGrad → g·y·(1 − y), contributions to one node summed with `add`. The gradients come back as nodes: their e bounds their rounding.
"""
import numpy as np

from .rounding import TRANSCENDENTAL, gamma


class Node:
    """A value v, its error bound e and its terms' magnitude m; parents and the rule for their gradients."""

    def __init__(self, v, e, m, parents=(), back=None):
        self.v, self.e, self.m = np.asarray(v, float), np.asarray(e, float), np.asarray(m, float)
        self.parents, self.back = parents, back


class Tape:
    """Records the nodes of one computation, in order, so that `backward` can walk them in reverse."""

    def __init__(self, u):
        self.u, self.nodes = u, []

    def _new(self, v, e, m, parents=(), back=None):
        node = Node(v, e, m, parents, back)
        if parents:
            self.nodes.append(node)
        return node

    def leaf(self, v):
        """An exactly known input (x, a weight, dout, a constant): e = 0."""
        v = np.asarray(v, float)
        return Node(v, np.zeros_like(v), np.abs(v))

    def add(self, a, b, sign=1.0):
        u = self.u
        return self._new(a.v + sign * b.v, a.e + b.e + u * (a.m + b.m), a.m + b.m, (a, b),
                         lambda g: [g, g if sign > 0 else self.neg(g)])

    def sub(self, a, b):
        return self.add(a, b, sign=-1.0)

    def neg(self, a):
        return Node(-a.v, a.e, a.m)

    def mul(self, a, b):
        v = a.v * b.v
        e = np.abs(a.v) * b.e + np.abs(b.v) * a.e + a.e * b.e + self.u * np.abs(v)
        return self._new(v, e, a.m * b.m, (a, b), lambda g: [self.mul(g, b), self.mul(g, a)])

    def matmul(self, a, b):
        g_n = gamma(a.v.shape[-1], self.u)
        v = a.v @ b.v
        e = a.e @ np.abs(b.v) + np.abs(a.v) @ b.e + a.e @ b.e + g_n * (np.abs(a.v) @ np.abs(b.v))
        return self._new(v, e, a.m @ b.m, (a, b), lambda g: [self.matmul(g, _t(b)), self.matmul(_t(a), g)])

    def take(self, a, index):
        """a[index] (a slice or a split: exact); its gradient is g placed in zeros of a's shape."""
        return self._new(a.v[index], a.e[index], a.m[index], (a,), lambda g: [_placed(g, a.v.shape, index)])

    def stack(self, nodes, axis=1):
        """The nodes stacked along a new axis (return_sequences' (N, T, H)): exact; each gets its slice of g."""
        node = self._new(*(np.stack([getattr(n, k) for n in nodes], axis=axis) for k in "vem"), tuple(nodes))
        node.back = lambda g: [Node(*(np.take(getattr(g, k), i, axis=axis) for k in "vem")) for i in range(len(nodes))]
        return node

    def tanh(self, a):
        y = np.tanh(a.v)
        one = self.leaf(1.0)
        node = self._new(y, (1 - y * y) * a.e + TRANSCENDENTAL * self.u * np.abs(y), np.abs(y), (a,))
        node.back = lambda g: [self.mul(g, self.sub(one, self.mul(node, node)))]
        return node

    def sigmoid(self, a):
        e = np.exp(-np.abs(a.v))  # no overflow: σ(a) = 1/(1 + e) for a ≥ 0, e/(1 + e) below
        y = np.where(a.v >= 0, 1 / (1 + e), e / (1 + e))
        one = self.leaf(1.0)
        node = self._new(y, y * (1 - y) * a.e + TRANSCENDENTAL * self.u * y, y, (a,))
        node.back = lambda g: [self.mul(self.mul(g, node), self.sub(one, node))]
        return node

    def sum_to(self, g, shape):
        """g summed over the axes a broadcast added (a bias's batch axis): Σ_k with its γ_k."""
        if g.v.shape == tuple(shape):
            return g
        lead = g.v.ndim - len(shape)
        axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1 and g.v.shape[lead + i] != 1)
        k = int(np.prod([g.v.shape[a] for a in axes]))
        m = g.m.sum(axis=axes).reshape(shape)
        return Node(g.v.sum(axis=axes).reshape(shape), g.e.sum(axis=axes).reshape(shape) + gamma(k, self.u) * m, m)

    def backward(self, out, dout, leaves):
        """The gradient nodes of `leaves` for out's upstream gradient dout (exact), by reverse mode."""
        grads = {id(out): self.leaf(dout)}
        for node in reversed(list(self.nodes)):
            g = grads.pop(id(node), None)
            if g is None:
                continue
            for parent, contribution in zip(node.parents, node.back(g)):
                contribution = self.sum_to(contribution, parent.v.shape)
                key = id(parent)
                grads[key] = contribution if key not in grads else _plain(self.add(grads[key], contribution))
        return [grads.get(id(leaf), self.leaf(np.zeros_like(leaf.v))) for leaf in leaves]


def _t(a):
    return Node(a.v.T, a.e.T, a.m.T)


def _plain(node):
    """A gradient's node, cut from the tape (gradients are not differentiated again)."""
    return Node(node.v, node.e, node.m)


def _placed(g, shape, index):
    v, e, m = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    v[index], e[index], m[index] = g.v, g.e, g.m
    return Node(v, e, m)
