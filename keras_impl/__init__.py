"""The same dense network in Keras 3 on TensorFlow, in float64, fed weights from the numpy side."""
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _import_tensorflow_quietly():
    """Import TensorFlow with fd 2 closed: its C++ start-up lines ("oneDNN custom operations are on",
    "Could not find cuda drivers") are written before its logging starts, whatever TF_CPP_MIN_LOG_LEVEL says."""
    if ("tensorflow" in sys.modules or os.environ.get("TF_CPP_MIN_LOG_LEVEL") != "3"
            or os.environ.get("KERAS_BACKEND") != "tensorflow"):
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


from .convert import from_keras, to_keras  # noqa: E402  (numpy only: no Keras is imported for it)

# Keras is imported by the modules that use it (model, layer, stack, saving), each calling quiet_tensorflow() first,
# so that `keras_impl.convert`, the one place of the weight mapping, is numpy alone (numpy_impl/stack.py uses it, and
# a golden check must not import TensorFlow).
quiet_tensorflow = _import_tensorflow_quietly


def __getattr__(name):
    """KerasStep, build_model and layer_outputs from keras_impl.model, imported when first asked for."""
    if name in ("KerasStep", "build_model", "layer_outputs"):
        from . import model
        return getattr(model, name)
    raise AttributeError(f"module 'keras_impl' has no attribute {name!r}")


__all__ = ["KerasStep", "build_model", "from_keras", "layer_outputs", "to_keras"]
