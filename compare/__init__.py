"""Step a numpy network and Keras through training and check that they agree at every step."""
import os
import sys

# python -m compare (or its console script) alternates numpy and TensorFlow every step. After each
# call OpenBLAS's threads spin for 2^28 cycles (OPENBLAS_THREAD_TIMEOUT=28) and take a core from
# TensorFlow; 4 lets them sleep at once. On 2 cores this cuts the 784-512-512-10 checked step by about a
# third (README, Performance). Set only in a process compare starts, and before numpy loads OpenBLAS.
if sys.argv[:1] == ["-m"] or os.path.basename(sys.argv[0] if sys.argv else "") == "numpy-keras-compare":
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

from .assertions import assert_matches_keras
from .check import check
from .errors import InputError

__all__ = ["InputError", "assert_matches_keras", "check"]
