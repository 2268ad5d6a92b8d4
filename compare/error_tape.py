"""Values carried with their rounding-error bounds through a computation and its reverse-mode gradient.

Each node holds v (the value, computed in float64), e (a bound on one side's |computed − exact| not yet
named) and m (the magnitude of the uncancelled terms v is a sum of: a sum's rounding depends on its terms,
not on its result, and another order of evaluation, or autodiff differentiating a sum term by term, sums the
same terms). The rules, first order plus the products of errors (Higham, ch. 3):

    a ± b     e = e_a + e_b + u·(m_a + m_b)                 m = m_a + m_b
    a · b     e = |a|·e_b + |b|·e_a + r_a·r_b + u·|a·b|     m = m_a·m_b
    A @ B     e = e_A@|B| + |A|@e_B + r_A@r_B + γ_n·|A|@|B|  (n the inner size)   m = m_A@m_B
    Σ_k a     e = Σ e + γ_k·Σ m                              m = Σ m
    tanh(a)   e = (1 − y²)·e_a + 16u·|y|                     m = |y|
    sigmoid   e = y(1 − y)·e_a + 16u·y                       m = y

(r = e + ρ, a node's whole first-order error bound, with ρ below.)

Carried with absolute values from step to step, e compounds through a recurrence: h_t's bound is |U|ᵀ times
h_{t−1}'s, although the error itself is carried by the signed Jacobian, whose product over time may be small.
So a node can also carry signed forms (affine arithmetic): c[..., k] is v's first-order sensitivity to the
error symbol ε_k ∈ [−1, 1], one symbol per element of each state that was named (`name`: the state's e
becomes its symbols, e = 0 after). Forms go through every rule by the chain rule, signed:

    a ± b   c_a ± c_b      a · b   b·c_a + a·c_b      A @ B   c_A@B + A@c_B      tanh   (1 − y²)·c_a

and a node's bound is e + ρ, ρ = Σ_k |c_k|: the error of step t reaches step s through the product of the
Jacobians in between, signed, not through the product of their absolute values. Symbols belong to one
sample (the batch axis); a form whose node sums over the batch (a weight's gradient) keeps the sample as an
axis of its own, so that different samples' symbols never cancel.

`backward` runs reverse mode over the recorded nodes with TensorFlow's gradient formulas, each built from
the same rules: Mul → g·b and g·a, MatMul → g@Bᵀ and Aᵀ@g, TanhGrad → g·(1 − y·y),
SigmoidGrad → g·y·(1 − y), contributions to one node summed with `add`. The gradients come back as nodes:
their e and c bound their rounding. A gradient arriving at a named state is named in turn.
"""
import numpy as np

from .rounding import TRANSCENDENTAL, gamma

PER_SAMPLE, SUMMED = "per_sample", "summed"


class Node:
    """A value v, its error bound e and its terms' magnitude m; parents and the rule for their gradients.

    c: None (no signed error) or the forms: v.shape + (K,) with the sample along v's axis `ax`, or, for a
    node summed over the samples (ax None), v.shape + (N, K)."""

    def __init__(self, v, e, m, parents=(), back=None, c=None, ax=0):
        self.v, self.e, self.m = np.asarray(v, float), np.asarray(e, float), np.asarray(m, float)
        self.parents, self.back, self.c, self.ax = parents, back, c, ax
        self.state = False

    def rho(self):
        """Σ_k |c_k| per element: the error the named symbols can carry here (0 without forms)."""
        if self.c is None:
            return 0.0
        return np.abs(self.c).sum(axis=-1 if self.ax is not None else (-2, -1))

    def bound(self):
        """The node's whole first-order error bound, e + ρ."""
        return self.e + self.rho()


def _trail(x, node):
    """x (v's shape) with axes for node's symbol axes, to scale its forms elementwise."""
    x = np.asarray(x, float)
    return x[..., None] if node.ax is not None else x[..., None, None]


def _summed(*parts):
    """(c, ax): the sum of the forms (c, ax) that are not None, all on one sample axis; (None, 0) if none is."""
    parts = [(c, ax) for c, ax in parts if c is not None]
    if not parts:
        return None, 0
    if len({ax for _, ax in parts}) > 1:
        raise ValueError(f"forms on different sample axes ({', '.join(str(ax) for _, ax in parts)}) cannot be added")
    c = parts[0][0]
    for d, _ in parts[1:]:
        c = _plus(c, d)
    return c, parts[0][1]


def _plus(c, d):
    """c + d for forms over the first k and the first l symbols: the shorter one is 0 past its end (symbols are
    numbered in the order they are named, so a form made before a symbol existed holds no term for it)."""
    if c.shape[-1] < d.shape[-1]:
        c, d = d, c
    if c.shape[-1] == d.shape[-1]:
        return c + d
    out = c.copy()
    out[..., :d.shape[-1]] += d
    return out


def _padded(c, k):
    """Form c extended with zeros to k symbols."""
    if c.shape[-1] == k:
        return c
    out = np.zeros(c.shape[:-1] + (k,))
    out[..., :c.shape[-1]] = c
    return out


class Tape:
    """Records the nodes of one computation, in order, so that `backward` can walk them in reverse.

    symbols: the number of error symbols per sample that `name` may create (0: no forms, e alone)."""

    def __init__(self, u, symbols=0):
        self.u, self.nodes, self.symbols, self.used, self.recording = u, [], symbols, 0, True

    def _new(self, v, e, m, parents=(), back=None, c=None, ax=0):
        node = Node(v, e, m, parents, back, c, ax)
        if parents and self.recording:
            self.nodes.append(node)
        return node

    def leaf(self, v):
        """An exactly known input (x, a weight, dout, a constant): e = 0, no forms."""
        v = np.asarray(v, float)
        return Node(v, np.zeros_like(v), np.abs(v))

    def name(self, a):
        """a (samples along axis 0) with its e turned into symbols of its own, one per element and sample;
        its gradient, in `backward`, is named the same way. Without room for symbols: a unchanged.

        Its m restarts at |a|: a state (and its gradient) is a value both sides store and then use, so no order
        of evaluation regroups a sum across it; m carried on would compound through |U| like e did."""
        if a.v.ndim == 0 or self.used + a.v[0].size > self.symbols:
            return a
        n, size, k = a.v.shape[0], a.v[0].size, self.used + a.v[0].size
        c = np.zeros(a.v.shape + (k,)) if a.c is None else _padded(a.c, k)
        flat = c.reshape(n, size, k)
        flat[:, np.arange(size), self.used + np.arange(size)] = a.e.reshape(n, size)
        self.used = k
        node = self._new(a.v, np.zeros_like(a.e), np.abs(a.v), (a,), lambda g: [g], c, 0)
        node.state = True
        return node

    def add(self, a, b, sign=1.0):
        u = self.u
        c, ax = _summed((a.c, a.ax), (None if b.c is None else sign * b.c, b.ax))
        return self._new(a.v + sign * b.v, a.e + b.e + u * (a.m + b.m), a.m + b.m, (a, b),
                         lambda g: [g, g if sign > 0 else self.neg(g)], c, ax)

    def sub(self, a, b):
        return self.add(a, b, sign=-1.0)

    def neg(self, a):
        return Node(-a.v, a.e, a.m, c=None if a.c is None else -a.c, ax=a.ax)

    def mul(self, a, b):
        v = a.v * b.v
        e = np.abs(a.v) * b.e + np.abs(b.v) * a.e + a.bound() * b.bound() + self.u * np.abs(v)
        c, ax = _summed(*((_trail(y, x) * x.c, x.ax) for x, y in ((a, b.v), (b, a.v)) if x.c is not None))
        return self._new(v, e, a.m * b.m, (a, b), lambda g: [self.mul(g, b), self.mul(g, a)], c, ax)

    def matmul(self, a, b):
        g_n = gamma(a.v.shape[-1], self.u)
        v = a.v @ b.v
        e = a.e @ np.abs(b.v) + np.abs(a.v) @ b.e + a.bound() @ b.bound() + g_n * (np.abs(a.v) @ np.abs(b.v))
        c, ax = _matmul_forms(a, b)
        return self._new(v, e, a.m @ b.m, (a, b), lambda g: [self.matmul(g, _t(b)), self.matmul(_t(a), g)], c, ax)

    def take(self, a, index):
        """a[index] (a slice or a split: exact); its gradient is g placed in zeros of a's shape."""
        c = None if a.c is None else a.c[index]
        return self._new(a.v[index], a.e[index], a.m[index], (a,), lambda g: [_placed(g, a.v.shape, index)], c, a.ax)

    def stack(self, nodes, axis=1):
        """The nodes stacked along a new axis (return_sequences' (N, T, H)): exact; each gets its slice of g."""
        forms = [n for n in nodes if n.c is not None]
        c = None
        if forms:
            k = max(n.c.shape[-1] for n in forms)
            trail = forms[0].c.shape[forms[0].v.ndim:-1] + (k,)
            c = np.stack([_padded(n.c, k) if n.c is not None else np.zeros(n.v.shape + trail) for n in nodes], axis=axis)
        node = self._new(*(np.stack([getattr(n, k) for n in nodes], axis=axis) for k in "vem"), tuple(nodes),
                         c=c, ax=forms[0].ax if forms else 0)
        node.back = lambda g: [Node(*(np.take(getattr(g, k), i, axis=axis) for k in "vem"),
                                    c=None if g.c is None else np.take(g.c, i, axis=axis), ax=g.ax)
                               for i in range(len(nodes))]
        return node

    def tanh(self, a):
        y = np.tanh(a.v)
        one = self.leaf(1.0)
        slope = 1 - y * y
        c = None if a.c is None else _trail(slope, a) * a.c
        node = self._new(y, slope * a.e + TRANSCENDENTAL * self.u * np.abs(y), np.abs(y), (a,), c=c, ax=a.ax)
        node.back = lambda g: [self.mul(g, self.sub(one, self.mul(node, node)))]
        return node

    def sigmoid(self, a):
        e = np.exp(-np.abs(a.v))  # no overflow: σ(a) = 1/(1 + e) for a ≥ 0, e/(1 + e) below
        y = np.where(a.v >= 0, 1 / (1 + e), e / (1 + e))
        one = self.leaf(1.0)
        slope = y * (1 - y)
        c = None if a.c is None else _trail(slope, a) * a.c
        node = self._new(y, slope * a.e + TRANSCENDENTAL * self.u * y, y, (a,), c=c, ax=a.ax)
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
        c, ax = _summed_forms(g, axes, shape)
        return Node(g.v.sum(axis=axes).reshape(shape), g.e.sum(axis=axes).reshape(shape) + gamma(k, self.u) * m, m,
                    c=c, ax=ax)

    def backward(self, out, dout, leaves, e_dout=None):
        """The gradient nodes of `leaves` for out's upstream gradient dout, by reverse mode; e_dout: a bound on
        dout's own error (None: exact), carried with the rules like any other error."""
        start = self.leaf(dout)
        if e_dout is not None:
            start = self._new(start.v, np.broadcast_to(e_dout, start.v.shape), start.m)
        grads, self.recording = {id(out): start}, False
        for node in reversed(list(self.nodes)):
            g = grads.pop(id(node), None)
            if g is None:
                continue
            if node.state:
                g = _plain(self.name(g))
            for parent, contribution in zip(node.parents, node.back(g)):
                contribution = self.sum_to(contribution, parent.v.shape)
                key = id(parent)
                grads[key] = contribution if key not in grads else _plain(self.add(grads[key], contribution))
        return [grads.get(id(leaf), self.leaf(np.zeros_like(leaf.v))) for leaf in leaves]


def _matmul_forms(a, b):
    """The forms of A @ B (2-D): rows of samples times a matrix without forms stay per sample; a product over
    the samples (Aᵀ@g, a weight's gradient) keeps them as an axis of its own."""
    if a.c is None and b.c is None:
        return None, 0
    contracts = (a.c is not None and a.ax == 1) or (b.c is not None and b.ax == 0)
    if contracts and (a.c is None or a.ax == 1) and (b.c is None or b.ax == 0):
        return _summed((None if a.c is None else np.einsum("pnk,nq->pqnk", a.c, b.v), None),
                       (None if b.c is None else np.einsum("pn,nqk->pqnk", a.v, b.c), None))
    if not contracts and a.ax == 0 and b.c is None:
        return np.einsum("pnk,nq->pqk", a.c, b.v), 0
    raise ValueError("forms of this product are not supported (samples on both sides, not contracted)")


def _summed_forms(g, axes, shape):
    """g's forms summed over `axes` (reshaped to `shape`): summing over the sample axis moves the samples to
    an axis of their own."""
    if g.c is None:
        return None, 0
    if g.ax is not None and g.ax in axes:
        c = np.moveaxis(g.c, g.ax, -2)  # samples next to the symbols
        rest = tuple(a if a < g.ax else a - 1 for a in axes if a != g.ax)
        c = c.sum(axis=rest) if rest else c
        return c.reshape(tuple(shape) + c.shape[-2:]), None
    if g.ax is not None:
        raise ValueError("summing forms over axes other than the samples' is not supported")
    return g.c.sum(axis=axes).reshape(tuple(shape) + g.c.shape[-2:]), None


def _t(a):
    c = None if a.c is None else np.swapaxes(a.c, 0, 1)
    ax = None if a.ax is None else 1 - a.ax
    return Node(a.v.T, a.e.T, a.m.T, c=c, ax=ax)


def _plain(node):
    """A gradient's node, cut from the tape (gradients are not differentiated again)."""
    return Node(node.v, node.e, node.m, c=node.c, ax=node.ax)


def _placed(g, shape, index):
    v, e, m = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    v[index], e[index], m[index] = g.v, g.e, g.m
    c = None
    if g.c is not None:
        c = np.zeros(tuple(shape) + g.c.shape[g.v.ndim:])
        c[index] = g.c
    return Node(v, e, m, c=c, ax=g.ax)
