"""Hostile plug-ins: networks that change their inputs, end the process, or dodge the protocol.

Each wraps a correct network (numpy_impl.Network) and misbehaves in one way. tests/test_hostile.py
runs them through check() and python -m compare; the check must never answer with OK.
"""
import os
import sys

import numpy as np

import numpy_impl


class Wrapper:
    """A correct network; subclasses override one method to misbehave."""

    def __init__(self, net=None):
        self.net = net or numpy_impl.seed_network()
        self.activations, self.learning_rate = self.net.activations, self.net.learning_rate
        self.loss, self.optimizer = self.net.loss, self.net.optimizer
        self.loss_config, self.optimizer_config = self.net.loss_config, self.net.optimizer_config
        self.calls = 0

    def get_weights(self):
        return self.net.get_weights()

    def set_weights(self, weights):
        self.net.set_weights(weights)

    def forward(self, X):
        return self.net.forward(X)

    def gradients(self, X, y):
        self.calls += 1
        return self.net.gradients(X, y)

    def apply_gradients(self, grads):
        self.net.apply_gradients(grads)


# --- networks that change what they are given ----------------------------------------------------

class ScalesXInForward(Wrapper):
    """Normalises X in place in forward: X /= max|X|."""

    def forward(self, X):
        X /= np.abs(X).max()
        return super().forward(X)


class ScalesXInGradients(Wrapper):
    """Normalises X in place in gradients."""

    def gradients(self, X, y):
        X /= np.abs(X).max()
        return super().gradients(X, y)


class ShiftsY(Wrapper):
    """Moves the targets it is given: y -= 1, through an out= argument."""

    def gradients(self, X, y):
        np.subtract(y, 1.0, out=y)
        return super().gradients(X, y)


class ForcesWritable(Wrapper):
    """Makes its batch writable again (it owns the data) and normalises it in place, X /= max|X|, in
    forward and in gradients (normalising twice changes nothing: the two calls see the same data)."""

    def forward(self, X):
        X.flags.writeable = True
        X /= np.abs(X).max()
        return super().forward(X)

    def gradients(self, X, y):
        X.flags.writeable = True
        X /= np.abs(X).max()
        return super().gradients(X, y)


class KeepsAndChangesX(Wrapper):
    """Keeps the X of the first call and changes it in a later one (in apply_gradients)."""

    kept = None

    def forward(self, X):
        self.kept = X
        return super().forward(X)

    def apply_gradients(self, grads):
        self.kept[...] = 0.0
        super().apply_gradients(grads)


class StandardisesInPlace(Wrapper):
    """Standardises its batch in place, X = (X − mean)/std: NaN for a batch of one row."""

    def gradients(self, X, y):
        X -= X.mean(axis=0)
        X /= X.std(axis=0)
        return super().gradients(X, y)


class StandardisesACopy(Wrapper):
    """Standardises a copy of its batch for its gradients: NaN on the numpy side alone for one row."""

    def gradients(self, X, y):
        X = (X - X.mean(axis=0)) / X.std(axis=0)
        return super().gradients(X, y)


# --- networks that leave -----------------------------------------------------------------------

class SysExitInGradients(Wrapper):
    """sys.exit(0) inside gradients."""

    def gradients(self, X, y):
        sys.exit(0)


class SysExitLater(Wrapper):
    """sys.exit(0) in apply_gradients at step 5."""

    def apply_gradients(self, grads):
        if self.calls > 5:
            sys.exit(0)
        super().apply_gradients(grads)


class OsExitLater(Wrapper):
    """os._exit(0) in gradients at step 5: no exception, the process just ends."""

    def gradients(self, X, y):
        if self.calls >= 5:
            os._exit(0)
        return super().gradients(X, y)


class RaisesBaseException(Wrapper):
    """Raises a BaseException that is not an Exception."""

    def forward(self, X):
        raise GeneratorExit("not an Exception")


class PropertyRaises(Wrapper):
    """Its `loss` attribute is a property that raises."""

    loss = property(lambda self: (_ for _ in ()).throw(RuntimeError("no loss today")))

    def __init__(self):
        net = numpy_impl.seed_network()
        self.net, self.activations, self.learning_rate, self.calls = net, net.activations, net.learning_rate, 0


class LengthExits(list):
    """A list whose len() calls sys.exit: the check's protocol code calls it, not a method of the network."""

    def __len__(self):
        sys.exit(0)


class ForwardReturnsExitingList(Wrapper):
    """forward returns a list whose len() exits."""

    def forward(self, X):
        return LengthExits(super().forward(X))


# --- factories for python -m compare --impl ------------------------------------------------------

def factory(name):
    return globals()[name]()


def scales_x():
    return ScalesXInForward()


def sys_exit():
    return SysExitInGradients()


def os_exit():
    return OsExitLater()


def property_raises():
    return PropertyRaises()


def exiting_list():
    return ForwardReturnsExitingList()


def raises_in_forward():
    return RaisesBaseException()


# --- found by an adversarial review (issue 12, second round) -------------------------------------------

class MaeLrDrift(numpy_impl.Network):
    """Mean absolute error over two outputs, learning rate off by 1e-7: its bias gradients are counts over
    n, exact in float32 in any precision, which once made the precision probe decide float32."""

    def __init__(self):
        super().__init__(numpy_impl.glorot_uniform([3, 4, 2], 0), ["tanh", "linear"], 0.01, loss="mae")

    def apply_gradients(self, grads):
        self._optimizer.learning_rate = self.learning_rate * (1 + 1e-7)
        self.weights = self._optimizer.apply(self.weights, grads)


class ExclusiveClip(numpy_impl.Network):
    """Categorical cross-entropy on probabilities, clipping with q > ε where Keras keeps q = ε: the
    bias puts q exactly on the edge, on both sides."""

    def __init__(self):
        super().__init__([np.zeros((2, 3)), np.array([1e-7, 1 - 1e-7])], ["linear"], 0.01,
                         loss="categorical_crossentropy")

    def gradients(self, X, y):
        p = self.forward(X)[-1]
        s = p.sum(axis=-1, keepdims=True)
        q = p / s
        qc = np.clip(q, 1e-7, 1 - 1e-7)
        g = np.where((q > 1e-7) & (q < 1 - 1e-7), -y / qc / len(p), 0.0)
        delta = (g - np.sum(g * q, axis=-1, keepdims=True)) / s
        return float(np.mean(-np.sum(y * np.log(qc), axis=-1))), [delta.T @ X, delta.sum(axis=0)]


class DeclaresAdamRunsSgd(numpy_impl.Network):
    """Declares Adam, updates with plain SGD."""

    def __init__(self):
        super().__init__(numpy_impl.seed_weights(), ["tanh", "linear"], 0.001, optimizer="adam")

    def apply_gradients(self, grads):
        self.weights = [w - self.learning_rate * g for w, g in zip(self.weights, grads)]


class HiddenOutputScaled(numpy_impl.Network):
    """Reports its hidden layer's output 1.5 times too large (the prediction is right)."""

    def __init__(self):
        super().__init__(numpy_impl.seed_weights(), ["tanh", "linear"], 0.001)

    def forward(self, X):
        hidden, out = super().forward(X)
        return [1.5 * hidden, out]


class RaisesInAThread(Wrapper):
    """Starts a thread that raises, then computes correctly."""

    def forward(self, X):
        import threading
        thread = threading.Thread(target=lambda: 1 / 0, name="helper")
        thread.start()
        thread.join()
        return super().forward(X)


class ReplacesStderrThenRaises(Wrapper):
    """Points sys.stderr at a buffer, then raises: the one line must still reach the real stderr."""

    def gradients(self, X, y):
        import io
        sys.stderr = io.StringIO()
        raise RuntimeError("after replacing stderr")


class ClosesStdout(Wrapper):
    """Closes sys.stdout in its last step: the report cannot be printed."""

    def apply_gradients(self, grads):
        sys.stdout.close()
        super().apply_gradients(grads)


def mae_lr_drift():
    return MaeLrDrift()


def adam_runs_sgd():
    return DeclaresAdamRunsSgd()


def hidden_scaled():
    return HiddenOutputScaled()


def replaces_stderr():
    return ReplacesStderrThenRaises()


def closes_stdout():
    return ClosesStdout()


def returns_none():
    return None


def huge_learning_rate():
    net = Wrapper()
    net.learning_rate = 10 ** 400
    return net


def string_loss():
    class StringLoss(Wrapper):
        def gradients(self, X, y):
            loss, grads = super().gradients(X, y)
            return str(loss), grads
    return StringLoss()


def activations_dict():
    net = Wrapper()
    net.activations = {"tanh": 1, "linear": 2}
    return net


def runs_compare():
    from compare.cli import main
    return main()
