"""Single layers as forward/backward function pairs, in the courses' (CS231n's) style: the project's own numpy
reference for checking a layer against Keras (python -m compare layer; compare/adapters.py wraps them)."""
from .norm import batchnorm_backward, batchnorm_forward, layernorm_backward, layernorm_forward

__all__ = ["batchnorm_backward", "batchnorm_forward", "layernorm_backward", "layernorm_forward"]
