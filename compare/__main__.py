"""python -m compare. A Ctrl-C from here on is one line and exit 130 (compare/supervise.py takes over)."""
import os
import signal
import sys


def _interrupted(signum, frame):
    os.write(2, b"python -m compare: interrupted\n")
    os._exit(130)


signal.signal(signal.SIGINT, _interrupted)

from .cli import main  # noqa: E402

sys.exit(main())
