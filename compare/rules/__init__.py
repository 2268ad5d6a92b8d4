"""Everything compare knows about one name, in one file per kind: activations, losses, optimizers.

Each module holds a plain dict keyed by the name, the same keys as numpy_impl's and keras_impl's
registries (tests/test_registries.py), and a `get(name)` that refuses an unknown name with the valid
ones, never a default.
"""
from ..errors import InputError, show


def lookup(registry, kind, name):
    """registry[name], or an InputError naming the valid ones."""
    if not isinstance(name, str) or name not in registry:
        raise InputError(f"unknown {kind} {show(name)}; expected one of {', '.join(sorted(registry))}")
    return registry[name]
