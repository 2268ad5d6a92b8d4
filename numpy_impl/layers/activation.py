"""Activations as forward/backward function pairs, built on the pure functions of numpy_impl/ops.py.

Each backward takes the cached output a, as TensorFlow's gradients do (TanhGrad, SigmoidGrad,
ReluGrad on the output, EluGrad, Softmax's Jacobian-vector product): no formula is typed twice.
"""
from .. import ops


def relu_forward(x):
    """out = max(x, 0); returns (out, cache). Keras: ReLU() or Activation("relu"), `tf.nn.relu`."""
    out = ops.relu(x)
    return out, out


def relu_backward(dout, cache):
    """dx = dout where out > 0, else 0; relu'(0) = 0, as TensorFlow's ReluGrad."""
    return dout * ops.relu_grad(cache)


def softmax_forward(x):
    """out_j = exp(x_j - max x) / Σ_k exp(x_k - max x) over the last axis; returns (out, cache).

    Keras: Softmax() (axis=-1) or Activation("softmax").
    """
    out = ops.softmax(x)
    return out, out


def softmax_backward(dout, cache):
    """dx = out ⊙ (dout - Σ_k dout_k out_k), over the last axis: the softmax Jacobian-vector product."""
    return ops.softmax_backward(cache, dout)


def activation_forward(x, name):
    """out = f(x), f one of linear, tanh, sigmoid, relu, elu, softmax; returns (out, cache). Keras: Activation(name)."""
    if name not in ops.ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; expected one of {sorted(ops.ACTIVATIONS)}")
    out = ops.ACTIVATIONS[name][0](x)
    return out, (name, out)


def activation_backward(dout, cache):
    """dx = dout ⊙ f'(x), written from the output a = f(x); softmax through its Jacobian-vector product."""
    name, out = cache
    return ops.activation_backward(name, out, dout)
