"""Single layers as forward/backward function pairs, in the courses' (CS231n's) style: the project's own numpy
reference for checking a layer against Keras (python -m compare layer; compare/adapters.py wraps them)."""
from .attention import mha_backward, mha_forward
from .activation import activation_backward, activation_forward, relu_backward, relu_forward, softmax_backward
from .activation import softmax_forward
from .conv import conv1d_backward, conv1d_forward, conv_backward, conv_forward
from .dense import affine_backward, affine_forward
from .dropout import dropout_backward, dropout_forward
from .embedding import embedding_backward, embedding_forward
from .norm import batchnorm_backward, batchnorm_forward, layernorm_backward, layernorm_forward
from .pool import avg_pool_backward, avg_pool_forward, global_avg_pool_backward, global_avg_pool_forward
from .pool import max_pool_backward, max_pool_forward
from .recurrent import gru_backward, gru_forward, lstm_backward, lstm_forward, rnn_backward, rnn_forward
from .reshape import flatten_backward, flatten_forward, reshape_backward, reshape_forward

__all__ = [
    "activation_backward", "activation_forward", "affine_backward", "affine_forward", "avg_pool_backward",
    "avg_pool_forward", "batchnorm_backward", "batchnorm_forward", "conv1d_backward", "conv1d_forward",
    "conv_backward", "conv_forward", "dropout_backward", "dropout_forward", "embedding_backward",
    "embedding_forward", "flatten_backward", "flatten_forward", "global_avg_pool_backward",
    "global_avg_pool_forward", "layernorm_backward", "layernorm_forward", "max_pool_backward", "max_pool_forward",
    "gru_backward", "gru_forward", "lstm_backward", "lstm_forward", "mha_backward", "mha_forward",
    "rnn_backward", "rnn_forward", "relu_backward", "relu_forward", "reshape_backward", "reshape_forward", "softmax_backward", "softmax_forward",
]
