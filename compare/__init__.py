"""Step a numpy network and Keras through training and check that they agree at every step.

Importing compare changes nothing in the process: `tune_process()` is an explicit call, which python -m
compare makes for the process that runs the check (compare/supervise.py). TensorFlow loads only where
Keras runs.
"""
import os

__all__ = ["InputError", "assert_matches_keras", "check", "tune_process"]


def tune_process():
    """Settings for a process that alternates numpy and TensorFlow every step; python -m compare
    and its console script apply them to themselves, before numpy loads. Both measured on 2 cores
    with the 784-512-512-10 network (README, Performance):

    - OPENBLAS_THREAD_TIMEOUT=4: after each call OpenBLAS's threads spin for 2^28 cycles and take a
      core from TensorFlow; 4 lets them sleep at once. It is read when numpy loads OpenBLAS, so in
      your own process export it before Python starts.
    - glibc's malloc keeps freed blocks up to 32 MiB and up to 256 MiB of free heap (mallopt
      M_MMAP_THRESHOLD, M_TRIM_THRESHOLD) instead of handing them back to the system: otherwise each
      step's large temporaries are mapped afresh, 800–1,600 page faults a step on 784-512-512-10
      (tests/test_process.py). Calling this sets it in a running process; or export
      GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=268435456
    """
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
    import ctypes
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):  # no mallopt: not glibc
        return
    mallopt(-3, 32 * 2 ** 20)  # M_MMAP_THRESHOLD
    mallopt(-1, 256 * 2 ** 20)  # M_TRIM_THRESHOLD


from .assertions import assert_matches_keras  # noqa: E402
from .check import check  # noqa: E402
from .errors import InputError  # noqa: E402
