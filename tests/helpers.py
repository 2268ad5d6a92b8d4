"""Shared by the tests that start a fresh Python process."""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def clean_env(**extra):
    """The environment of a fresh shell: without the Keras and TensorFlow settings this process made."""
    env = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "TF_CPP_MIN_LOG_LEVEL")}
    return {**env, **extra}
