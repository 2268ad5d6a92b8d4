"""The guide's network, data and learning rate, and its backprop exactly as printed."""
import numpy as np

from .network import Network

LEARNING_RATE = 0.001


def seed_data():
    """The guide's X (3, 3) and y = X · [2, -1, 5]ᵀ, shaped (3, 1): y = [[4], [29], [9]]."""
    X = np.array([[4., 9., 1.],
                  [2., 5., 6.],
                  [1., 8., 3.]])
    params = np.array([[2., -1., 5.]])
    return X, np.dot(X, params.T)


def seed_weights():
    """The guide's initial weights: [hidden W (2, 3), hidden b (2,), output W (1, 2), output b (1,)]."""
    hidden_layer_weights = np.array([[0.5, 0.5, 0.5],    # unit 1
                                     [0.1, 0.1, 0.1]])   # unit 2
    hidden_layer_biases = np.array([1., 1.])
    output_weights = np.array([[1., 1.]])
    output_biases = np.array([1.])
    return [hidden_layer_weights, hidden_layer_biases, output_weights, output_biases]


def seed_network():
    """The guide's 3-2-1 tanh network with a backprop that is correct for Keras's mean squared error."""
    return Network(seed_weights(), ["tanh", "linear"], LEARNING_RATE)


class GuideAsWritten(Network):
    """WRONG ON PURPOSE: the guide's backprop exactly as printed.

    It takes error = y - predicted with no 2/N, and then `weights -= update * learning_rate`.
    Its "gradient" is therefore -N/2 = -1.5 times the true one for N = 3, and the update climbs
    the loss. `compare` exists to catch exactly this.
    """

    def gradients(self, X, y):
        hidden_layer_weights, _, output_weights, _ = self.weights
        hidden_linout = np.dot(X, hidden_layer_weights.T) + self.weights[1]
        hidden_output = np.tanh(hidden_linout)
        predicted = np.dot(hidden_output, output_weights.T) + self.weights[3]
        mse = np.mean((y - predicted) ** 2)

        # derivative of mean squared error (as printed: the sign is flipped and 2/N is missing)
        error = y - predicted
        delta_output = error
        output_weights_update = delta_output.T.dot(hidden_output)
        output_biases_update = delta_output.sum(axis=0)

        delta_hidden = delta_output * output_weights * (1 - np.tanh(hidden_linout) ** 2)
        hidden_weights_update = delta_hidden.T.dot(X)
        hidden_biases_update = delta_hidden.sum(axis=0)
        return float(mse), [hidden_weights_update, hidden_biases_update,
                            output_weights_update, output_biases_update]


def guide_as_written():
    """The guide's network with its backprop exactly as printed (wrong: gradients are -1.5 × the true ones)."""
    return GuideAsWritten(seed_weights(), ["tanh", "linear"], LEARNING_RATE)
