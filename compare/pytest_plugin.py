"""pytest plugin (entry point pytest11): the `keras_check` fixture and run-wide backend and dtype options.

    def test_my_network(keras_check):
        keras_check(MyNetwork(), X, y, steps=100)

    pytest --keras-backend jax --keras-dtype float32
"""
import functools
import os

import pytest


def pytest_addoption(parser):
    group = parser.getgroup("numpy-keras-compare", "checking numpy networks against Keras")
    group.addoption("--keras-backend", choices=("tensorflow", "jax", "torch"), default=None,
                    help="Keras backend for keras_check in this run (sets KERAS_BACKEND before Keras loads)")
    group.addoption("--keras-dtype", choices=("float64", "float32"), default=None,
                    help="precision of keras_check in this run (default float64)")


def pytest_configure(config):
    backend = config.getoption("--keras-backend", default=None)
    if backend:
        os.environ["KERAS_BACKEND"] = backend


@pytest.fixture
def keras_check(request):
    """assert_matches_keras(network, X, y, steps=100, **options) with this run's backend and dtype."""
    from compare.assertions import assert_matches_keras
    options = {}
    if request.config.getoption("--keras-backend"):
        options["backend"] = request.config.getoption("--keras-backend")
    if request.config.getoption("--keras-dtype"):
        options["dtype"] = request.config.getoption("--keras-dtype")
    return functools.partial(assert_matches_keras, **options)
