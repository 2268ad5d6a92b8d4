"""Hand-written 3-2-1 networks for the tests: correct ones written differently, and planted bugs.

`GuideStyle` writes the guide's network out line by line, with each step a method that a bug
overrides. Every class follows the plug-in protocol of `compare`.
"""
import numpy as np

import numpy_impl


class GuideStyle:
    """The guide's 3-2-1 tanh network, written out explicitly; correct for Keras's mean squared error."""

    activations = ["tanh", "linear"]

    def __init__(self, learning_rate=0.001):
        self.learning_rate = learning_rate
        self.W1, self.b1, self.W2, self.b2 = numpy_impl.seed_weights()

    def get_weights(self):
        return [w.copy() for w in (self.W1, self.b1, self.W2, self.b2)]

    def set_weights(self, weights):
        self.W1, self.b1, self.W2, self.b2 = (np.array(w, dtype=float) for w in weights)

    def forward(self, X):
        h = np.tanh(self.hidden_linout(X))
        return [h, h @ self.W2.T + self.b2]

    def hidden_linout(self, X):
        return X @ self.W1.T + self.b1

    def tanh_deriv(self, z, h):
        return 1 - h ** 2

    def loss_grad(self, y_hat, y):
        return 2 * (y_hat - y) / y.size

    def bias_grad(self, delta):
        return delta.sum(axis=0)

    def output_weights_for_backprop(self):
        return self.W2

    def gradients(self, X, y):
        z = self.hidden_linout(X)
        h, y_hat = self.forward(X)
        d_out = self.loss_grad(y_hat, y)
        d_hidden = (d_out @ self.output_weights_for_backprop()) * self.tanh_deriv(z, h)
        grads = [d_hidden.T @ X, self.bias_grad(d_hidden), d_out.T @ h, self.bias_grad(d_out)]
        return float(np.mean((y_hat - y) ** 2)), grads

    def apply_gradients(self, grads):
        weights = self.get_weights()
        self.set_weights([self.update(w, g) for w, g in zip(weights, grads)])

    def update(self, w, g):
        return w - self.learning_rate * g


# --- correct networks written differently -------------------------------------------------

class CoshDerivative(GuideStyle):
    """tanh'(z) as 1 / cosh²(z), from z instead of from the output."""

    def tanh_deriv(self, z, h):
        return 1 / np.cosh(z) ** 2


class AdoptsGivenArrays(GuideStyle):
    """Keeps the arrays set_weights gives it and updates them in place."""

    def set_weights(self, weights):
        self.W1, self.b1, self.W2, self.b2 = weights

    def apply_gradients(self, grads):
        for w, g in zip((self.W1, self.b1, self.W2, self.b2), grads):
            w -= self.learning_rate * g


class EinsumReversed(GuideStyle):
    """Sums by einsum and by explicit loops over the batch in reverse order."""

    def hidden_linout(self, X):
        return np.einsum("ni,ui->nu", X, self.W1) + self.b1

    def bias_grad(self, delta):
        total = np.zeros(delta.shape[1])
        for row in delta[::-1]:
            total = total + row
        return total


class MeanThenScale(GuideStyle):
    """dL/dŷ as (ŷ − y) · (2 / N), and the update as w + (−lr)·g."""

    def loss_grad(self, y_hat, y):
        return (y_hat - y) * (2.0 / y.size)

    def update(self, w, g):
        return w + (-self.learning_rate) * g


CORRECT = [numpy_impl.seed_network, GuideStyle, CoshDerivative, EinsumReversed, MeanThenScale]


# --- planted bugs --------------------------------------------------------------------------

class SignFlipped(GuideStyle):
    """dL/dŷ = 2(y − ŷ)/N: the sign is flipped."""

    def loss_grad(self, y_hat, y):
        return 2 * (y - y_hat) / y.size


class SumNotMean(GuideStyle):
    """dL/dŷ = 2(ŷ − y): the 1/N of the mean is missing."""

    def loss_grad(self, y_hat, y):
        return 2 * (y_hat - y)


class HalfSquare(GuideStyle):
    """dL/dŷ = (ŷ − y)/N, the derivative of ½(ŷ − y)²."""

    def loss_grad(self, y_hat, y):
        return (y_hat - y) / y.size


class WrongDerivative(GuideStyle):
    """tanh' taken as 1 − z² instead of 1 − tanh(z)²: the derivative at the wrong point."""

    def tanh_deriv(self, z, h):
        return 1 - z ** 2


class NoActivationDerivative(GuideStyle):
    """The tanh derivative left out of the backprop."""

    def tanh_deriv(self, z, h):
        return np.ones_like(h)


class FrozenBias(GuideStyle):
    """The biases are never updated."""

    def apply_gradients(self, grads):
        self.W1 = self.W1 - self.learning_rate * grads[0]
        self.W2 = self.W2 - self.learning_rate * grads[2]


class BiasAveraged(GuideStyle):
    """The bias gradient is averaged over the batch instead of summed."""

    def bias_grad(self, delta):
        return delta.mean(axis=0)


class StaleWeights(GuideStyle):
    """The backprop uses the output weights of the previous step from step 1 on."""

    def apply_gradients(self, grads):
        self._previous_W2 = self.W2.copy()
        super().apply_gradients(grads)

    def output_weights_for_backprop(self):
        return getattr(self, "_previous_W2", self.W2)


class LearningRateDrift(GuideStyle):
    """The update uses a learning rate 1 + 1e-7 times the declared one."""

    def update(self, w, g):
        return w - self.learning_rate * (1 + 1e-7) * g


class Float32Arithmetic(GuideStyle):
    """The forward pass runs in float32 inside a float64 check."""

    def hidden_linout(self, X):
        return (X.astype(np.float32) @ self.W1.T.astype(np.float32) + self.b1.astype(np.float32)).astype(float)


class NoBiasForward(GuideStyle):
    """The hidden layer's forward pass leaves out the bias."""

    def hidden_linout(self, X):
        return X @ self.W1.T


class SwappedUnits(GuideStyle):
    """The backprop pairs hidden unit 1 with output weight 2 and vice versa."""

    def output_weights_for_backprop(self):
        return self.W2[:, ::-1]


class GuideSignAndScale(GuideStyle):
    """The guide's bug written independently: error = y − ŷ with no 2/N."""

    def loss_grad(self, y_hat, y):
        return y - y_hat


BUGS = {
    SignFlipped: (0, "gradient"),
    SumNotMean: (0, "gradient"),
    HalfSquare: (0, "gradient"),
    WrongDerivative: (0, "gradient"),
    NoActivationDerivative: (0, "gradient"),
    FrozenBias: (0, "weights"),
    BiasAveraged: (0, "gradient"),
    StaleWeights: (1, "gradient"),
    LearningRateDrift: (0, "weights"),
    Float32Arithmetic: (0, "forward"),
    NoBiasForward: (0, "forward"),
    SwappedUnits: (1, "gradient"),  # at step 0 both output weights are 1: the swap shows from step 1
    GuideSignAndScale: (0, "gradient"),
}


# --- bugs that need more than the guide's plain SGD --------------------------------------------

class TransposedKernel(numpy_impl.Network):
    """The forward pass multiplies by W instead of W.T (invisible in shapes: the hidden layer is square)."""

    def __init__(self):
        super().__init__(numpy_impl.glorot_uniform([3, 3, 1], 3), ["tanh", "linear"], 0.01)

    def _forward(self, X):
        zs, activations, a = [], [], X
        for (W, b), name in zip(self._layers(), self.activations):
            z = a @ W + b if W.shape[0] == W.shape[1] else a @ W.T + b
            a = numpy_impl.ops.ACTIVATIONS[name][0](z)
            zs.append(z)
            activations.append(a)
        return zs, activations


class MomentumNotCarried(numpy_impl.Network):
    """SGD with momentum whose velocity is reset at every step."""

    def __init__(self):
        super().__init__(numpy_impl.seed_weights(), ["tanh", "linear"], 0.001, optimizer="sgd",
                         optimizer_config={"momentum": 0.9})

    def apply_gradients(self, grads):
        self._optimizer.state = None  # forgets the velocity
        super().apply_gradients(grads)


class AdamBiasCorrectionOffByOne(numpy_impl.Network):
    """Adam's bias correction uses t + 1 where Keras uses t (the first step is t = 1)."""

    def __init__(self):
        super().__init__(numpy_impl.seed_weights(), ["tanh", "linear"], 0.001, optimizer="adam")

    def apply_gradients(self, grads):
        self._optimizer.iterations += 1
        super().apply_gradients(grads)
        self._optimizer.iterations -= 1


class LossSummed(numpy_impl.Network):
    """The reported loss is the sum of squares, not their mean (the gradients are right)."""

    def __init__(self):
        super().__init__(numpy_impl.seed_weights(), ["tanh", "linear"], 0.001)

    def gradients(self, X, y):
        loss, grads = super().gradients(X, y)
        return loss * y.size, grads


class WeightDecayForgotten(numpy_impl.Network):
    """AdamW without its decoupled weight decay: plain Adam under AdamW's name."""

    def __init__(self):
        super().__init__(numpy_impl.seed_weights(), ["tanh", "linear"], 0.001, optimizer="adamw")
        self._optimizer.config["weight_decay"] = 0.0


MORE_BUGS = {
    TransposedKernel: (0, "forward"),
    MomentumNotCarried: (1, "weights"),
    AdamBiasCorrectionOffByOne: (0, "weights"),
    LossSummed: (0, "loss"),
    WeightDecayForgotten: (0, "weights"),
}
BUGS.update(MORE_BUGS)
