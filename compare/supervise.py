"""python -m compare runs the check in a child process and watches how it ends.

The user's network runs in the child, a fresh Python started for it. Whatever its code does there
(os._exit(0), a signal, a crash in a C extension), the parent knows whether the check reached its end:
the child writes "done STATUS" to a pipe as its last act. Without it, the run did not finish and the
parent says so, with exit 2, never 0. The child is a new interpreter rather than a fork, so that the
settings of compare.tune_process are in its environment before numpy loads.

Ctrl-C: the child prints one line and ends at once with 130 (_on_sigint). The parent forwards SIGINT,
SIGTERM and SIGHUP to the child, kills it if it has not ended GRACE_S seconds later, and then ends with
130 (or 128 + the signal), one line on stderr, and no report file: the child announces each output file
it writes (its temporary name first), and the parent removes them.
"""
import os
import select
import signal
import subprocess
import sys
import time

GRACE_S = 5.0
PIPE_VARIABLE = "NUMPY_KERAS_COMPARE_PIPE"  # set in the child's environment: the pipe's file descriptor
_pipe = None  # the child's end of the pipe, in a supervised child
_stderr = 2  # a copy of fd 2 as it was when the run started
_ending = []  # the signal that is ending the child


def supervised(run, argv):
    """The exit status of `run()`, run in a supervised child (python -m compare argv), or, in the child
    itself, run() with its end of the pipe set up. Where a pipe cannot be passed (Windows), run() in place."""
    if os.environ.get(PIPE_VARIABLE):
        return _child(run, int(os.environ.pop(PIPE_VARIABLE)))
    if os.name != "posix":
        return run()
    read_end, write_end = os.pipe()
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, **{PIPE_VARIABLE: str(write_end)},
               PYTHONPATH=os.pathsep.join([package_root] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    env.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")  # read when numpy loads (compare.tune_process)
    # -P: the current folder is not put first on sys.path, so a user's own compare.py cannot stand in for
    # this package (the network's module is still found there: protocol.load_factory adds it).
    caught, holder = [], []

    def forward(signum, frame):
        caught.append((signum, time.monotonic()))
        if holder:
            holder[0].send_signal(signum)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, forward)
    # The child starts with SIGINT ignored (a Ctrl-C during its start-up would print a traceback); once
    # its own handler is in place it says "ready", and a Ctrl-C caught before that is sent again.
    holder.append(subprocess.Popen([sys.executable, "-P", "-c", "from compare.cli import main; main()", *argv],
                                   pass_fds=(write_end,), env=env, preexec_fn=_child_start))
    os.close(write_end)
    return _parent(holder[0], read_end, caught)


def _child_start():
    """In the forked child before it runs Python: SIGINT ignored until its handler is in place, and (Linux)
    killed with its parent, so that a parent killed outright leaves no check running on its own."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import ctypes
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux
        pass


def _child(run, write_end):
    global _pipe, _stderr
    _pipe, _stderr = write_end, os.dup(2)  # the terminal, even while TensorFlow's import points fd 2 at /dev/null
    signal.signal(signal.SIGINT, _on_sigint)
    announce("ready", "")
    status = 1
    try:
        status = run()
    except SystemExit as exc:  # argparse's --help (the user's own sys.exit never gets here: compare/cli/__init__.py)
        status = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
    except BaseException:  # noqa: B036 - a bug of ours: its traceback, and status 1 as Python gives
        import traceback
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:  # noqa: B036 - a closed stream must not keep the marker from being written
                pass
        announce("done", str(status))
        os._exit(status)


def _on_sigint(signum, frame):
    """Ctrl-C: one line, then end at once with 130. No exception is raised: raised inside TensorFlow's
    tracing it could end in SIGABRT, and inside a garbage-collection callback (jax's) it is printed and
    swallowed. The parent removes any output file this run announced. A second Ctrl-C arriving while
    this runs (from the terminal and from the parent) finds it already under way."""
    if _ending:
        return
    _ending.append(signum)
    try:
        sys.stdout.flush()
    except BaseException:  # noqa: B036
        pass
    show_cursor = "\x1b[?25h" if os.isatty(_stderr) else ""  # a progress bar may have hidden it
    os.write(_stderr, f"{show_cursor}python -m compare: interrupted\n".encode())
    announce("done", "130")
    os._exit(130)


def announce(kind, text):
    """In a supervised child, tell the parent: ("tmp", path) when a temporary file is created, ("wrote",
    path) after an output file is in place, ("done", status) at the very end. Elsewhere, nothing."""
    if _pipe is not None:
        os.write(_pipe, f"{kind} {text}\n".encode("utf-8", "surrogateescape"))


def _parent(child, read_end, caught):
    data, killed, ready = b"", False, False
    while True:
        readable, _, _ = select.select([read_end], [], [], 0.2)
        if readable:
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            data += chunk
        if not ready and b"ready \n" in data:
            ready = True
            if caught:  # it came while the child was starting, with SIGINT ignored: again, now
                child.send_signal(caught[0][0])
        if caught and not killed and time.monotonic() - caught[0][1] > GRACE_S:
            child.kill()
            killed = True
    os.close(read_end)
    status = child.wait()
    messages = [line.split(" ", 1) for line in data.decode("utf-8", "surrogateescape").splitlines() if " " in line]
    done = [text for kind, text in messages if kind == "done"]
    _remove(text for kind, text in messages if kind == "tmp")
    if caught:
        _remove(text for kind, text in messages if kind == "wrote")
        signum = caught[0][0]
        if not (done and done[-1] == "130"):
            print("python -m compare: interrupted" if signum == signal.SIGINT else
                  f"python -m compare: ended by {signal.Signals(signum).name}", file=sys.stderr)
        return 130 if signum == signal.SIGINT else 128 + signum
    if done:
        return int(done[-1])
    if status < 0:
        name = signal.Signals(-status).name
        reason = f"was killed by {name}" + (" (out of memory?)" if name == "SIGKILL" else "")
    else:
        reason = f"exited with status {status}"
    print(f"python -m compare: error: the check's process {reason} before the check finished (did the "
          "network's code end the process, e.g. with os._exit?); nothing after that point was checked",
          file=sys.stderr)
    return 2


def _remove(paths):
    for path in paths:
        try:
            os.remove(path)
        except OSError:
            pass
