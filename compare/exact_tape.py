"""Reverse-mode differentiation over arrays of 50-digit numbers (mpmath.mpf in numpy object arrays).

The exact referee of layered networks (compare/exact_layers.py) writes each Keras layer's forward pass with
these primitives; its gradients then come from the primitives' own textbook derivatives, never from a layer's
hand-written backward pass. A Node holds a value and, for each input, the map from the node's gradient to
that input's share of it (its vector-Jacobian product).

    add, mul        broadcasting: d(a + b) = g, d(a·b) = g·b; summed back over broadcast axes
    einsum(s, a, b) a contraction: d a = einsum("out,b->a", g, b), and likewise for b
    apply(f, f')    elementwise: d a = g · f'(a, f(a))
    rows(f, vjp)    a function of each row (the last axis): an activation rule's exact and exact_backward
    take(a, idx)    out = a.ravel()[idx], idx −1 reading `pad`: every rearrangement (reshape, windows, gather);
                    d a = the sum of g over the places each element was read to (np.add.at)
    part(a, key)    a[key] for slices and integers (a time step, a gate's columns): d a = g put back at key
    stack(ns, axis) the values stacked along a new axis (a sequence's steps): each one's gradient its slice
    max_last(a)     the maximum over the last axis; d a routes g to the first maximal element (TensorFlow's
                    MaxPoolGrad: a tie goes to the first element of the window in row-major order)
    total(a, axes)  the sum over axes
    forced(v, a)    the value v (the numpy side's), its gradient passed to a: Keras's forced step
                    (keras_impl/stack.py), a_numpy + (a_keras − stop_gradient(a_keras))
"""
import mpmath
import numpy as np

ZERO = mpmath.mpf(0)
_mpf = np.frompyfunc(lambda v: v if isinstance(v, mpmath.mpf) else mpmath.mpf(float(v)), 1, 1)


def mp(a):
    """An array of floats (or ints) as an object array of the exact mpf values of its elements."""
    a = np.asarray(a)
    return _mpf(a).astype(object) if a.ndim else np.array(_mpf(a), dtype=object)


def floats(a):
    return np.asarray(np.vectorize(float, otypes=[float])(a) if np.ndim(a) else float(a), dtype=np.float64)


class Node:
    __slots__ = ("value", "inputs", "grad")

    def __init__(self, value, inputs=()):
        self.value, self.inputs, self.grad = value, inputs, None


def const(a):
    return Node(a if isinstance(a, np.ndarray) and a.dtype == object else mp(a))


def forced(value, source):
    return Node(mp(value), ((source, lambda g: g),))


def _unbroadcast(g, shape):
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    for axis, n in enumerate(shape):
        if n == 1 and g.shape[axis] != 1:
            g = g.sum(axis=axis, keepdims=True)
    return g


def add(a, b):
    return Node(a.value + b.value, ((a, lambda g: _unbroadcast(g, a.value.shape)),
                                    (b, lambda g: _unbroadcast(g, b.value.shape))))


def mul(a, b):
    return Node(a.value * b.value, ((a, lambda g: _unbroadcast(g * b.value, a.value.shape)),
                                    (b, lambda g: _unbroadcast(g * a.value, b.value.shape))))


def scale(a, c):
    """a · c for an exact constant c (a number or an array broadcast against a)."""
    return Node(a.value * c, ((a, lambda g: _unbroadcast(g * c, a.value.shape)),))


def einsum(spec, a, b):
    ins, out = spec.split("->")
    sa, sb = ins.split(",")
    return Node(np.einsum(spec, a.value, b.value),
                ((a, lambda g: np.einsum(f"{out},{sb}->{sa}", g, b.value)),
                 (b, lambda g: np.einsum(f"{out},{sa}->{sb}", g, a.value))))


def apply(f, df, a):
    """f elementwise, with df(x, f(x)) its derivative."""
    out = np.frompyfunc(f, 1, 1)(a.value)
    return Node(out, ((a, lambda g: g * np.frompyfunc(df, 2, 1)(a.value, out)),))


def rows(f, vjp, a):
    """f of each row of the last axis (row → row, lists of mpf); vjp(z, f(z), g) → the row's dz."""
    z = a.value.reshape(-1, a.value.shape[-1])
    out = np.array([f(list(r)) for r in z], dtype=object).reshape(a.value.shape)
    o = out.reshape(z.shape)
    return Node(out, ((a, lambda g: np.array([vjp(list(zr), list(orow), list(gr)) for zr, orow, gr in
                                              zip(z, o, g.reshape(z.shape))], dtype=object).reshape(a.value.shape)),))


def stack(nodes, axis):
    """The nodes' values stacked along a new axis; each one's gradient is its slice of g."""
    return Node(np.stack([n.value for n in nodes], axis=axis),
                tuple((n, lambda g, t=t: np.take(g, t, axis=axis)) for t, n in enumerate(nodes)))


def reshape(a, shape):
    return Node(a.value.reshape(shape), ((a, lambda g: g.reshape(a.value.shape)),))


class _At:
    """A gradient for a[key] only (part's): added in place, so that reading a sequence one step at a time costs
    O(T), not a whole zero gradient per step."""
    __slots__ = ("key", "g")

    def __init__(self, key, g):
        self.key, self.g = key, g


def part(a, key):
    """a.value[key] for a basic index (slices, integers): d a is g placed back at key, zeros elsewhere."""
    return Node(a.value[key], ((a, lambda g: _At(key, g)),))


def take(a, idx, pad=ZERO):
    idx = np.asarray(idx)
    flat = np.append(a.value.ravel(), pad).astype(object)
    at = np.where(idx < 0, flat.size - 1, idx)

    def back(g):
        out = np.full(flat.size, ZERO, dtype=object)
        np.add.at(out, at.ravel(), g.ravel())
        return out[:-1].reshape(a.value.shape)
    return Node(flat[at], ((a, back),))


def max_last(a):
    v = a.value
    first = np.zeros(v.shape[:-1], dtype=int)
    best = v[..., 0].copy()
    for k in range(1, v.shape[-1]):
        more = np.frompyfunc(lambda x, y: x > y, 2, 1)(v[..., k], best).astype(bool)
        first = np.where(more, k, first)
        best = np.where(more, v[..., k], best)

    def back(g):
        out = np.full(v.shape, ZERO, dtype=object)
        np.put_along_axis(out, first[..., None], g[..., None], axis=-1)
        return out
    return Node(best, ((a, back),))


def total(a, axes, keepdims=False):
    axes = tuple(axes)
    out = a.value.sum(axis=axes, keepdims=keepdims)
    return Node(np.asarray(out, dtype=object), ((a, lambda g: np.broadcast_to(
        g if keepdims else np.expand_dims(g, axes), a.value.shape).copy()),))


def backward(seeds):
    """Accumulate into each node's .grad the gradient of Σ ⟨seed, node⟩ over (node, seed) pairs."""
    order, seen, stack = [], set(), [(n, False) for n, _ in seeds]
    while stack:  # a post-order of the graph: each node after every node it was computed from
        n, done = stack.pop()
        if done:
            order.append(n)
            continue
        if id(n) in seen:
            continue
        seen.add(id(n))
        stack.append((n, True))
        stack += [(p, False) for p, _ in n.inputs if id(p) not in seen]
    for n, seed in seeds:
        n.grad = seed if n.grad is None else n.grad + seed
    owned = set()  # the nodes whose .grad is an array made here, which an _At may add into in place
    for n in reversed(order):
        if n.grad is None:
            continue
        for p, vjp in n.inputs:
            d = vjp(n.grad)
            if isinstance(d, _At):
                if id(p) not in owned:
                    p.grad = np.full(p.value.shape, ZERO, dtype=object) if p.grad is None else p.grad.copy()
                    owned.add(id(p))
                p.grad[d.key] = p.grad[d.key] + d.g
            elif p.grad is None:
                p.grad = d  # may be another node's array: not added into in place
                owned.discard(id(p))
            else:
                p.grad = p.grad + d
                owned.add(id(p))
