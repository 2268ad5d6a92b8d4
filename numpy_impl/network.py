"""A dense stack in numpy, written the way the guide writes its 3-2-1 network."""
import numpy as np

from . import ops


class Network:
    """Dense layers: layer l maps a (N, inputs) to f_l(a @ W_l.T + b_l), W_l shaped (units, inputs).

    For the guide's network the weights are [W0 (2, 3), b0 (2,), W1 (1, 2), b1 (1,)]
    and the activations ["tanh", "linear"]. The loss is Keras's mean squared error and
    the update plain SGD, which is what the plug-in protocol of `compare` asks for.
    """

    def __init__(self, weights, activations, learning_rate):
        self.weights = [np.array(w, dtype=np.float64) for w in weights]
        self.activations = list(activations)
        self.learning_rate = learning_rate
        for name in self.activations:
            if name not in ops.ACTIVATIONS:
                raise ValueError(f"unknown activation {name!r}; expected one of {sorted(ops.ACTIVATIONS)}")

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        self.weights = [np.array(w, dtype=np.float64) for w in weights]

    def forward(self, X):
        """Each layer's output after its activation; the last one is the prediction ŷ."""
        return self._forward(X)[1]

    def _forward(self, X):
        zs, activations, a = [], [], X
        for (W, b), name in zip(self._layers(), self.activations):
            z = ops.dense_forward(a, W, b)
            a = ops.ACTIVATIONS[name][0](z)
            zs.append(z)
            activations.append(a)
        return zs, activations

    def gradients(self, X, y):
        """(loss, [dW0, db0, dW1, db1, ...]) for L = mean((ŷ - y)²), by backpropagation.

        delta = dL/dz of a layer, shaped (N, units); dW = delta.T @ a_prev, db = Σ_rows delta,
        and dL/da_prev = delta @ W.
        """
        _, activations = self._forward(X)
        y_hat = activations[-1]
        loss = float(ops.mse(y_hat, y))
        dL_da = ops.mse_grad(y_hat, y)
        grads = []
        for l in reversed(range(len(self.activations))):
            W, _ = self._layers()[l]
            a_prev = activations[l - 1] if l > 0 else X
            delta = dL_da * ops.ACTIVATIONS[self.activations[l]][1](activations[l])
            grads[:0] = [delta.T @ a_prev, delta.sum(axis=0)]
            dL_da = delta @ W
        return loss, grads

    def apply_gradients(self, grads):
        """One plain SGD step: w ← w - learning_rate · g for every array."""
        self.weights = [ops.sgd_step(w, g, self.learning_rate) for w, g in zip(self.weights, grads)]

    def _layers(self):
        return list(zip(self.weights[0::2], self.weights[1::2]))
