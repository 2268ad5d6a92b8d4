"""Step a numpy network and Keras through training and check that they agree at every step."""
from .assertions import assert_matches_keras
from .check import check
from .errors import InputError

__all__ = ["InputError", "assert_matches_keras", "check"]
