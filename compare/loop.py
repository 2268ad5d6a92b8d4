"""What every check's loop shares (compare/checking.py for Dense networks, compare/stack_check.py for layered
ones): the batch schedule, the argument check of a count, the verdict, and the exceptions Python ignores."""
import contextlib
import sys
import threading

import numpy as np

from .errors import InputError, message_of, show


def batches(n_rows, batch_size, seed):
    """Endless (epoch, row indices) per step: the rows in order for a full batch, else one seeded
    permutation per epoch (numpy's default_rng(seed)), cut into batches; both sides use the same."""
    rng = np.random.default_rng(seed)
    epoch = 0
    while True:
        if batch_size >= n_rows:
            yield epoch, np.arange(n_rows)
        else:
            order = rng.permutation(n_rows)
            for start in range(0, n_rows, batch_size):
                yield epoch, order[start:start + batch_size]
        epoch += 1


def verdict_of(stop, checked, steps):
    """"mismatch" at a Stop, but "diverged" where both sides went non-finite alike with nothing that
    disagreed up to there; "incomplete" when fewer steps were compared than asked; else "ok"."""
    if stop:
        return "diverged" if stop.nonfinite and stop.nonfinite.get("alike") else "mismatch"
    return "incomplete" if checked < steps else "ok"


@contextlib.contextmanager
def ignored_exceptions():
    """Collect, as one line each, the exceptions Python would print and ignore while the check runs (in a
    __del__, a weakref callback, a thread): they must not pass unmentioned, nor clutter stderr."""
    caught, hooks = [], (sys.unraisablehook, threading.excepthook)

    def unraisable(info):
        caught.append(f"{type(info.exc_value).__name__}: {message_of(info.exc_value)} (in {show(info.object, 60)})")

    def in_thread(args):
        caught.append(f"{args.exc_type.__name__}: {message_of(args.exc_value)} (in thread {args.thread.name})")
    sys.unraisablehook, threading.excepthook = unraisable, in_thread
    try:
        yield caught
    finally:
        sys.unraisablehook, threading.excepthook = hooks


def positive(name, value, default):
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise InputError(f"{name} must be an integer > 0; received {value!r}")
    return int(value)


def lengths(rows, steps, epochs, batch_size, seed, notes):
    """(steps, batch_size, steps_per_epoch) of a check on `rows` rows, each argument checked: batch_size (default
    all rows; more than there are: all, with a note), seed (an integer ≥ 0), steps or epochs (not both; default
    100 steps)."""
    batch_size = positive("batch_size", batch_size, rows)
    if batch_size > rows:
        notes.append(f"batch size {batch_size} is larger than the {rows} rows: each step uses all of them")
        batch_size = rows
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be an integer ≥ 0; received {seed!r}")
    steps_per_epoch = -(-rows // batch_size)
    if steps is not None and epochs is not None:
        raise InputError(f"give steps or epochs, not both; received steps={steps!r}, epochs={epochs!r}")
    steps = positive("epochs", epochs, None) * steps_per_epoch if epochs is not None else positive("steps", steps, 100)
    return steps, batch_size, steps_per_epoch


def stop_fields(stop):
    """A report's fields of its first mismatch, from the Stop that ended the check (None: every element agreed)."""
    return {"first_mismatch": stop.mismatch if stop else None, "nonfinite": stop.nonfinite if stop else None,
            "diagnosis": stop.diagnosis if stop else None, "causes": stop.causes if stop else [],
            "location": stop.location if stop else None}
