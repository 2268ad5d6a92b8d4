"""assert_matches_keras: the check as an assertion for a user's own test suite."""
from .checking import check
from .report import mismatch_message


def assert_matches_keras(network, X, y, steps=100, **options):
    """Train `network` and Keras side by side for `steps` steps; raise AssertionError on a mismatch.

    `options` are `check`'s (epochs, batch_size, seed, free_running, dtype, referee, backend). The
    message reads like torch.testing.assert_close's: how many elements mismatched, the greatest
    absolute and relative difference with their index, the allowed tolerance, plus the step, the
    quantity and the diagnosis. Returns the report when everything matches.
    """
    report = check(network, X, y, steps=steps, **options)
    if not report["ok"]:
        raise AssertionError(mismatch_message(report))
    return report
