"""This tool's version, and the one-line --version: read from metadata, importing neither numpy nor Keras."""
import os
import sys

DISTRIBUTION = "numpy-keras-compare"
# The report's JSON layout. It increases when a field is removed or renamed, or changes its type or meaning;
# a new field leaves it as it is (readers ignore what they do not know).
SCHEMA_VERSION = 1
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def source_version(pyproject):
    """The version in `pyproject` (a path) when it is this project's, else None."""
    import tomllib
    try:
        with open(pyproject, "rb") as f:
            project = tomllib.load(f).get("project", {})
    except (OSError, tomllib.TOMLDecodeError):
        return None
    return project.get("version") if project.get("name") == DISTRIBUTION else None


def installed_version(name):
    """The installed version of distribution `name`, or None when it is not installed."""
    from importlib import metadata
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def tool_version(root=_ROOT):
    """numpy-keras-compare's version: from the installed metadata, or, run from a source tree that was never
    installed, from its pyproject.toml; "unknown" when neither says."""
    return installed_version(DISTRIBUTION) or source_version(os.path.join(root, "pyproject.toml")) or "unknown"


def version_line(backend=None):
    """'numpy-keras-compare 0.1.0 (keras 3.15.1, tensorflow 2.21.0, numpy 2.4.6, Python 3.11.7)': what
    --version prints. `backend` defaults to $KERAS_BACKEND, else tensorflow; nothing is imported."""
    backend = backend or os.environ.get("KERAS_BACKEND") or "tensorflow"
    parts = [f"{name} {installed_version(name) or 'not installed'}" for name in ("keras", backend, "numpy")]
    python = ".".join(map(str, sys.version_info[:3]))
    return f"{DISTRIBUTION} {tool_version()} ({', '.join(parts)}, Python {python})"
