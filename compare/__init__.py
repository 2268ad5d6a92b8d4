"""Step a numpy network and Keras through training and check that they agree at every step.

Importing compare changes nothing in the process and loads nothing heavy: `check`,
`assert_matches_keras`, `check_layer`, `assert_layer_matches_keras`, `InputError` and `__version__` load
when first used, `tune_process()` is an explicit call,
which python -m compare makes for the process that runs the check (compare/supervise.py), and
TensorFlow loads only where Keras runs.
"""
import os

__all__ = ["InputError", "assert_layer_matches_keras", "assert_matches_keras", "check", "check_layer", "tune_process"]


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


def __getattr__(name):
    """check, assert_matches_keras, InputError and __version__ (from the installed metadata), loaded when
    first asked for (PEP 562): importing compare loads neither numpy nor Keras, so python -m compare's
    supervising process starts at once."""
    if name == "check":
        from .checking import check
        return check
    if name == "check_layer":
        from .layer_check import check_layer
        return check_layer
    if name == "assert_layer_matches_keras":
        from .assertions import assert_layer_matches_keras
        return assert_layer_matches_keras
    if name == "assert_matches_keras":
        from .assertions import assert_matches_keras
        return assert_matches_keras
    if name == "__version__":
        from .version import tool_version
        return tool_version()
    if name == "InputError":
        from .errors import InputError
        return InputError
    raise AttributeError(f"module 'compare' has no attribute {name!r}")
