"""assert_matches_keras: the check as an assertion for a user's own test suite."""
from .checking import check
from .layer_check import check_layer
from .report import mismatch_message


def assert_matches_keras(network, X, y, steps=None, msg=None, **options):
    """Train `network` and Keras side by side for `steps` steps (check's default: 100, or a golden file's length);
    raise AssertionError on a mismatch.

    `options` are `check`'s (epochs, batch_size, seed, free_running, dtype, referee, backend). The
    message reads like torch.testing.assert_close's: how many elements mismatched, the greatest
    absolute and relative difference with their index, the allowed tolerance, plus the step, the
    quantity and the diagnosis. `msg` replaces it, as in assert_close: a string, or a callable that
    receives the default message and returns the one to raise. Under pytest this function's frame is
    hidden (`__tracebackhide__`), so a failure shows the caller's line and the message only. Returns
    the report when everything matches.
    """
    __tracebackhide__ = True
    if msg is not None and not (isinstance(msg, str) or callable(msg)):
        raise TypeError(f"msg must be a string or a callable taking the default message; received {type(msg).__name__}")
    report = check(network, X, y, steps=steps, **options)
    if not report["ok"]:
        message = mismatch_message(report)
        raise AssertionError(message if msg is None else msg if isinstance(msg, str) else msg(message))
    return report


def assert_layer_matches_keras(layer, x, dout=None, training=True, seed=0, dtype="float64", msg=None):
    """check_layer(layer, x, ...) (compare/layer_check.py); raise AssertionError naming the first mismatching
    quantity, its element, both values, the tolerance and the diagnosis. `msg` as in assert_matches_keras.
    Returns the report when every element agrees."""
    __tracebackhide__ = True
    from .layer_report import message as layer_message
    if msg is not None and not (isinstance(msg, str) or callable(msg)):
        raise TypeError(f"msg must be a string or a callable taking the default message; received {type(msg).__name__}")
    report = check_layer(layer, x, dout=dout, training=training, seed=seed, dtype=dtype)
    if not report["ok"]:
        message = layer_message(report)
        raise AssertionError(message if msg is None else msg if isinstance(msg, str) else msg(message))
    return report
