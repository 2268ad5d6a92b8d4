"""Planted mistakes in whole networks (numpy_impl/stack.py), as people make them: each a network factory, the
step, quantity and tensor where the check must stop, and the cause it must name (None: a layer, no cause).

Several show only after some steps: a dropout mask kept from the first step, a recurrent state carried from
one batch to the next, a wrong momentum of the moving statistics, Adam's state kept per shape, not per weight.
"""
import numpy as np

from numpy_impl import layers as L
from numpy_impl import stack
from numpy_impl.optimizers import Adam


def _swap(net, index, module):
    net.modules[index] = module
    return net


class FlippedConvGradient(stack.Conv2D):
    def backward(self, dout):
        dx, grads = super().backward(dout)
        return dx, [-grads[0], grads[1]]


class ChannelsFirstFlatten(stack.Flatten):
    """Flattens an NCHW image as it is held, (C, H, W), where Keras reads (H, W, C)."""

    def forward(self, x, training, update):
        self.cache = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dout):
        return dout.reshape(self.cache), []


class TrueConvolution(stack.Conv2D):
    """Flips the kernel (the textbook convolution; Keras's is a cross-correlation)."""

    def forward(self, x, training, update):
        w, b = self.weights
        out, self.cache = L.conv_forward(x, w[:, :, ::-1, ::-1], b, self.param)
        return out


class FirstOfWindowPool(stack.MaxPool):
    """Routes each window's gradient to its first element, not to its maximum."""

    def backward(self, dout):
        N, C, H, W = self.cache[0]
        dx = np.zeros((N, C, H, W))
        dx[:, :, 0:2 * dout.shape[2]:2, 0:2 * dout.shape[3]:2] = dout
        return dx, []


class SumLoss(stack.Stack):
    """The loss gradient without the mean's 1/N (the value is still the mean)."""

    def gradients(self, X, y):
        loss, grads = super().gradients(X, y)
        return loss, [g * len(X) for g in grads]


class WrongMomentum(stack.BatchNorm):
    def forward(self, x, training, update):
        self.keras_layer["config"]["momentum"], keep = 0.9, self.keras_layer["config"]["momentum"]
        try:
            return super().forward(x, training, update)
        finally:
            self.keras_layer["config"]["momentum"] = keep


class FirstMaskOnly(stack.Dropout):
    """Keeps the first mask it was given (draws once, reuses it every step)."""

    def forward(self, x, training, update):
        self.kept = getattr(self, "kept", None)
        if self.kept is None:
            self.kept = self.mask
        self.mask = self.kept
        return super().forward(x, training, update)


class CarriedState(stack.Recurrent):
    """Starts each batch from the last batch's final h (and c) instead of zeros (a stateful RNN by mistake)."""

    def forward(self, x, training, update):
        H = self.weights[1].shape[0]
        h0 = getattr(self, "carried", None)
        h0 = np.zeros((x.shape[0], H)) if h0 is None or h0.shape[0] != x.shape[0] else h0
        f = L.lstm_forward if self.kind == "lstm" else L.gru_forward
        h, self.cache = f(x, h0, *self.weights)
        self.shape = h.shape
        if update:
            self.carried = h[:, -1]
        return h[:, -1]


class PerShapeAdam(Adam):
    """Adam whose moments are kept per weight shape: two weights of one shape share them."""

    def initial_state(self, weights):
        shared = {}
        return [shared.setdefault(w.shape, {"m": np.zeros_like(w), "v": np.zeros_like(w)}) for w in weights]


class LearningRateOff(stack.Stack):
    """Steps with learning_rate·(1 + 1e-7): declares one rate, uses another."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._optimizer.learning_rate = self.learning_rate * (1 + 1e-7)


class NotCausal(stack.Attention):
    """Attends to every position, the future included, while declaring use_causal_mask=True."""

    def forward(self, x, training, update):
        out, self.cache = L.mha_forward(x, *self.weights, self.num_heads, False)
        return out


class ExactScale(stack.Attention):
    """Scales the logits by 1/√key_dim in float64, where Keras rounds that constant to float32 first (a relative
    1.7e-8 at key_dim 8): the query's weights carry the ratio."""

    def forward(self, x, training, update):
        Wq, bq, *rest = self.weights
        key_dim = Wq.shape[2]
        r = (1 / np.sqrt(key_dim)) / float(np.float32(1 / np.sqrt(key_dim)))
        out, self.cache = L.mha_forward(x, Wq * r, bq * r, *rest, self.num_heads, self.causal)
        return out


class TorchEpsilon(stack.LayerNorm):
    """LayerNormalization with PyTorch's ε = 1e-5 where Keras's is 1e-3."""

    def forward(self, x, training, update):
        out, self.cache = L.layernorm_forward(x, *self.weights, {"eps": 1e-5})
        return out


class SkipDropped(stack.Add):
    """A residual Add whose backward sends the gradient down the branch only, not the skip connection."""

    def backward(self, dout):
        return [np.zeros_like(dout), dout], []


def _transformer_with(index, make):
    net = stack.transformer()
    old = net.modules[index]
    net.modules[index] = make(old)
    return net


def _rebuilt(net, cls, **extra):
    out = cls(net.modules, net.loss, net.optimizer, net.learning_rate, **extra)
    return out


def _per_shape(net):
    net._optimizer = PerShapeAdam(net.learning_rate)
    return net


def _conv(net, cls):
    old = net.modules[1]
    return _swap(net, 1, cls(old.weights[0], old.weights[1]))


BUGS = {
    # name: (factory, step, quantity, tensor, cause)
    "conv_gradient_sign": (lambda: _conv(stack.cnn(), FlippedConvGradient), 0, "gradient", "d1:Conv2D/kernel",
                           "sign_flipped"),
    "true_convolution": (lambda: _conv(stack.cnn(), TrueConvolution), 0, "forward", "1:Conv2D", "flipped_kernel"),
    "flatten_channels_first": (lambda: _swap(stack.cnn(), 4, ChannelsFirstFlatten()), 0, "forward", "4:Flatten",
                               "order"),
    "pool_routes_first": (lambda: _swap(stack.cnn(), 3, FirstOfWindowPool(2)), 0, "gradient", "d1:Conv2D/kernel",
                          None),
    "loss_without_mean": (lambda: _rebuilt(stack.cnn(), SumLoss), 0, "gradient", "d5:Dense/kernel", "missing_mean"),
    "learning_rate_1e-7": (lambda: _rebuilt(stack.cnn(), LearningRateOff), 0, "weights", "1:Conv2D/kernel", None),
    "bn_momentum": (lambda: _swap(stack.cnn(batch_norm=True), 2, WrongMomentum(8)), 0, "weights",
                    "2:BatchNormalization/moving_mean", "momentum"),
    "dropout_mask_reused": (lambda: _swap(stack.cnn(dropout=0.25), 5, FirstMaskOnly(0.25)), 1, "forward",
                            "5:Dropout", "dropout_mask"),
    # the conv bias before batch norm has a gradient of rounding only (the mean is taken out), so the moments
    # gamma shares with it are its own to rounding; beta, sharing gamma's, is the first to differ
    "adam_state_per_shape": (lambda: _per_shape(stack.cnn(batch_norm=True)), 0, "weights",
                             "2:BatchNormalization/beta", "shared_shape"),
    "attention_not_causal": (lambda: _transformer_with(1, lambda m: NotCausal(m.weights, m.num_heads, True, [0])),
                             0, "forward", "1:MultiHeadAttention", "causal_mask_missing"),
    "attention_scale_exact": (lambda: _transformer_with(1, lambda m: ExactScale(m.weights, m.num_heads, True, [0])),
                              0, "forward", "1:MultiHeadAttention", "attention_exact_scale"),
    "layer_norm_torch_epsilon": (lambda: _transformer_with(3, lambda m: TorchEpsilon(16, inputs=[2])), 0, "forward",
                                 "3:LayerNormalization", None),
    # the skip connection's gradient lost at the second Add: the first LayerNormalization's gradients are the first
    # to differ, and the diagnosis names the layers that carry the gradient to it (the Dense and the Add)
    "residual_gradient_dropped": (lambda: _transformer_with(7, lambda m: SkipDropped([3, 6])), 0, "gradient",
                                  "d3:LayerNormalization/gamma", None),
    "lstm_state_carried": (lambda: _swap(stack.recurrent("lstm"), 1, CarriedState("lstm", *stack.recurrent("lstm")
                                                                                   .modules[1].weights)),
                           1, "forward", "1:LSTM", "state_between_steps"),
}


def conv_gradient_sign():
    """BUGS["conv_gradient_sign"]'s network, by name for the command line (--impl network_bugs:conv_gradient_sign)."""
    return BUGS["conv_gradient_sign"][0]()
