"""python -m compare. From here on a Ctrl-C (or SIGTERM, SIGHUP) is one line and exit 130 (128 + the
signal); compare/supervise.py takes over once the check's process starts."""
import os
import signal
import sys


def _ended(signum, frame):
    text = "interrupted" if signum == signal.SIGINT else f"ended by {signal.Signals(signum).name}"
    os.write(2, f"python -m compare: {text}\n".encode())
    os._exit(130 if signum == signal.SIGINT else 128 + signum)


for _signal in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(_signal, _ended)

from .cli import main  # noqa: E402

sys.exit(main())
