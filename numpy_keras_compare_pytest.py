"""pytest plugin of numpy-keras-compare (entry point pytest11): the `keras_check` fixture and the options
--keras-backend and --keras-dtype.

    def test_my_network(keras_check):
        keras_check(MyNetwork(), X, y, steps=100)

    pytest --keras-backend jax --keras-dtype float32

pytest loads this module in every run of an environment where the project is installed, so it has a
name of its own and imports nothing of the project, nor numpy nor Keras: `compare` is imported when a
test first asks for `keras_check`. A project with its own `compare` module runs its tests unharmed.
"""
import importlib.util
import os

import pytest

BACKENDS = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}  # backend -> the module it needs
INSTALL = {"tensorflow": "pip install numpy-keras-compare", "jax": "pip install 'numpy-keras-compare[jax]'",
           "torch": "pip install 'numpy-keras-compare[torch]'"}


def pytest_addoption(parser):
    group = parser.getgroup("numpy-keras-compare", "checking numpy networks against Keras")
    group.addoption("--keras-backend", default=None, metavar="tensorflow|jax|torch",
                    help="Keras backend for keras_check in this run (sets KERAS_BACKEND before Keras loads)")
    group.addoption("--keras-dtype", choices=("float64", "float32"), default=None,
                    help="precision of keras_check in this run (default float64)")


def backend_problem(backend):
    """None when `backend` is known and installed, else the one-line reason with the install hint."""
    if backend not in BACKENDS:
        return f"--keras-backend {backend!r} is not a Keras backend; expected one of {', '.join(BACKENDS)}"
    if importlib.util.find_spec(BACKENDS[backend]) is None:
        return (f"--keras-backend {backend}: the module {BACKENDS[backend]!r} is not installed; "
                f"install it with {INSTALL[backend]}")
    return None


def pytest_configure(config):
    backend = config.getoption("--keras-backend", default=None)
    if backend:
        problem = backend_problem(backend)
        if problem:
            raise pytest.UsageError(problem)
        os.environ["KERAS_BACKEND"] = backend


class KerasCheck:
    """assert_matches_keras with this run's backend and dtype; its repr is one short line."""

    def __init__(self, options):
        self.options = options

    def __repr__(self):
        return "keras_check(" + ", ".join(f"{k}={v!r}" for k, v in self.options.items()) + ")"

    def __call__(self, network, X, y, steps=None, **options):
        __tracebackhide__ = True
        check = our_assertion()
        from compare.errors import InputError
        try:
            return check(network, X, y, steps=steps, **{**self.options, **options})
        except InputError as error:  # a refused input or option (a layered network under --keras-backend jax): one line
            pytest.fail(f"numpy-keras-compare refused the check: {error}", pytrace=False)


def our_assertion():
    """compare.assertions.assert_matches_keras, or a one-line failure when `compare` is someone else's."""
    __tracebackhide__ = True
    try:
        from compare.assertions import assert_matches_keras
    except ImportError as error:
        spec = importlib.util.find_spec("compare")
        pytest.fail(f"keras_check needs numpy-keras-compare's package 'compare', but 'compare' is "
                    f"{spec.origin if spec else None} ({error}); rename that module (docs/ci.md)", pytrace=False)
    return assert_matches_keras


@pytest.fixture
def keras_check(request):
    """assert_matches_keras(network, X, y, steps=None, msg=None, **options) with this run's backend and dtype."""
    __tracebackhide__ = True
    options = {}
    if request.config.getoption("--keras-backend"):
        options["backend"] = request.config.getoption("--keras-backend")
    if request.config.getoption("--keras-dtype"):
        options["dtype"] = request.config.getoption("--keras-dtype")
    return KerasCheck(options)
