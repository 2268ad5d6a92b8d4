"""A dense stack in numpy, written the way the guide writes its 3-2-1 network."""
import numpy as np

from . import losses, ops
from .optimizers import OPTIMIZERS


class Network:
    """Dense layers: layer l maps a (N, inputs) to f_l(a @ W_l.T + b_l), W_l shaped (units, inputs).

    For the guide's network the weights are [W0 (2, 3), b0 (2,), W1 (1, 2), b1 (1,)] and the
    activations ["tanh", "linear"]. `loss` is a Keras loss name ("mse", "mae",
    "binary_crossentropy", "categorical_crossentropy") with `loss_config` (from_logits,
    label_smoothing, reduction); `optimizer` a Keras optimizer name with `optimizer_config` (its keyword
    arguments but the learning rate). The defaults, mean squared error and plain SGD, are the guide's.
    `loss_scale` multiplies the loss (a declared convention: 0.5 for ½·mean, k/2 for ½·Σ over k outputs).
    """

    def __init__(self, weights, activations, learning_rate, loss="mse", loss_config=None,
                 optimizer="sgd", optimizer_config=None, dtype="float64", loss_scale=1.0):
        self.dtype = np.dtype(dtype).type
        self.weights = [np.array(w, dtype=self.dtype) for w in weights]
        self.activations = list(activations)
        self.learning_rate = learning_rate
        for name in self.activations:
            if name not in ops.ACTIVATIONS:
                raise ValueError(f"unknown activation {name!r}; expected one of {sorted(ops.ACTIVATIONS)}")
        if loss not in losses.LOSSES:
            raise ValueError(f"unknown loss {loss!r}; expected one of {sorted(losses.LOSSES)}")
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {optimizer!r}; expected one of {sorted(OPTIMIZERS)}")
        if "learning_rate" in (optimizer_config or {}):
            raise ValueError("optimizer_config has unknown option 'learning_rate' (the network's learning_rate "
                             "sets it)")
        self.loss, self.loss_config = loss, dict(loss_config or {})
        reduction = self.loss_config.get("reduction", "sum_over_batch_size")
        if not isinstance(reduction, str) or reduction not in losses.REDUCTIONS:
            valid = ", ".join(map(repr, losses.REDUCTIONS))
            why = (" (it gives one loss per row, not the one value a step trains on)" if reduction in ("none", None)
                   else "")
            raise ValueError(f"loss_config option 'reduction' must be one of {valid}; received {reduction!r}{why}")
        if isinstance(loss_scale, bool) or not isinstance(loss_scale, (int, float, np.integer, np.floating)) \
                or not 0 < loss_scale < np.inf:
            raise ValueError(f"loss_scale must be a finite number > 0; received {loss_scale!r}")
        self.loss_scale = float(loss_scale)
        self.optimizer, self.optimizer_config = optimizer, dict(optimizer_config or {})
        self._optimizer = OPTIMIZERS[optimizer](learning_rate, dtype=self.dtype, **self.optimizer_config)

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        self.weights = [np.array(w, dtype=self.dtype) for w in weights]

    def forward(self, X):
        """Each layer's output after its activation; the last one is the prediction ŷ."""
        return self._forward(X)[1]

    def _forward(self, X):
        zs, activations, a = [], [], X.astype(self.dtype)
        for (W, b), name in zip(self._layers(), self.activations):
            z = ops.dense_forward(a, W, b)
            a = ops.ACTIVATIONS[name][0](z)
            zs.append(z)
            activations.append(a)
        return zs, activations

    def gradients(self, X, y):
        """(loss, [dW0, db0, dW1, db1, ...]) by backpropagation.

        delta = dL/dz of a layer, shaped (N, units); dW = delta.T @ a_prev, db = Σ_rows delta,
        and dL/da_prev = delta @ W. Cross-entropies after a sigmoid or softmax layer start from
        that layer's pre-activation z, as Keras does.
        """
        return self._backprop(X, y)[1:]

    @property
    def forward_and_gradients(self):
        """The check's optional protocol method, (X, y) → (forward(X), loss, grads) from one forward pass; None
        (no such method) where forward, gradients or _backprop, as looked up on this network, is not this class's
        own bound to this network (a subclass's, the guide's printed backprop; one set on the instance, patched on
        the class, or another network's: a planted bug), so that the check calls forward and gradients."""
        own = all(getattr(bound, "__func__", None) is original and getattr(bound, "__self__", None) is self
                  for bound, original in ((self.forward, _FORWARD), (self.gradients, _GRADIENTS),
                                          (self._backprop, _BACKPROP)))
        return self._backprop if own else None

    def _backprop(self, X, y):
        X = X.astype(self.dtype)
        zs, activations = self._forward(X)
        loss, dL_dx, where = self._loss(zs, activations, y)
        delta = dL_dx if where == "z" else ops.activation_backward(self.activations[-1], activations[-1], dL_dx)
        grads = []
        for l in reversed(range(len(self.activations))):
            a_prev = activations[l - 1] if l > 0 else X
            grads[:0] = [delta.T @ a_prev, delta.sum(axis=0)]
            if l > 0:  # back through W_l, then through the activation of layer l − 1
                dL_da = delta @ self.weights[2 * l]
                delta = ops.activation_backward(self.activations[l - 1], activations[l - 1], dL_da)
        return activations, float(loss), grads

    def loss_value(self, X, y):
        """The loss alone, without backpropagation (for finite differences)."""
        return float(self._loss(*self._forward(X.astype(self.dtype)), y)[0])

    def _loss(self, zs, activations, y):
        """(L, dL/dx, where): x is the last pre-activation when where == 'z', else the prediction ŷ; both times
        c = loss_scale × (N for reduction "sum"), Keras's loss under the declared convention."""
        y = losses.smooth_labels(y.astype(self.dtype), self.loss, self.loss_config.get("label_smoothing", 0.0))
        on_output, on_logits = losses.LOSSES[self.loss]
        where = losses.takes_logits(self.loss, self.loss_config.get("from_logits", False), self.activations[-1])
        c = self.loss_scale * losses.REDUCTIONS[self.loss_config.get("reduction", "sum_over_batch_size")](len(y))
        if where == "z":
            return (*losses.scaled(*on_logits(zs[-1], y), c), where)
        return (*losses.scaled(*(on_logits if where == "a" else on_output)(activations[-1], y), c), where)

    def apply_gradients(self, grads):
        """One step of the network's optimizer (plain SGD: w ← w − learning_rate · g)."""
        self._optimizer.learning_rate = self.learning_rate
        self.weights = self._optimizer.apply(self.weights, grads)

    def optimizer_state(self):
        """(per weight array a dict of the optimizer's state arrays, or None before the first step; the
        number of steps taken): copies."""
        opt = self._optimizer
        state = None if opt.state is None else [{k: v.copy() for k, v in s.items()} for s in opt.state]
        return state, opt.iterations

    def set_optimizer_state(self, state, iterations):
        """Continue from another optimizer's state (as optimizer_state returns it) after `iterations` steps."""
        fresh = self._optimizer.initial_state(self.weights)
        for slots, given in zip(fresh, state):
            for k in slots:
                if k in given:
                    slots[k] = np.array(given[k], dtype=self.dtype)
        self._optimizer.state, self._optimizer.iterations = fresh, int(iterations)

    def _layers(self):
        return list(zip(self.weights[0::2], self.weights[1::2]))


# As defined here: forward_and_gradients's test that forward, gradients and _backprop are this class's own, bound to
# the network itself (a bound method of another network set on it, found by a review, had passed a wrong network).
_FORWARD, _GRADIENTS, _BACKPROP = Network.forward, Network.gradients, Network._backprop
