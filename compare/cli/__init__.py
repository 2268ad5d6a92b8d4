"""python -m compare: check a numpy network against Keras, step by step. Exit 0 ok, 1 mismatch, 2 bad input.

main dispatches to the check (run.py) or a subcommand (golden.py: record, check, diff; walkthrough.py;
model.py: export, import; layer.py: layer), and
turns every way a run can end into one line and an exit status.
"""
import os
import sys

from ..errors import InputError, message_of

SUBCOMMANDS = ("record", "check", "diff", "walkthrough", "export", "import", "layer")
PROG_VARIABLE = "NUMPY_KERAS_COMPARE_PROG"  # the name it was invoked as, passed on to the supervised child
SCRIPT = "numpy-keras-compare"


def invoked_as(argv0):
    """The command's name in usage lines and errors: 'numpy-keras-compare' when sys.argv[0] is the console
    script (numpy-keras-compare, or numpy-keras-compare.exe), else 'python -m compare'."""
    return SCRIPT if os.path.basename(argv0 or "").split(".")[0] == SCRIPT else "python -m compare"


def program():
    """The name this process's command was invoked as (compare.cli.main sets it), 'python -m compare' by default."""
    return os.environ.get(PROG_VARIABLE) or "python -m compare"


def main(argv=None):
    """The command line. Called without argv (python -m compare, the console script), it tunes its own
    process (compare.tune_process) and runs the check in a supervised child (compare/supervise.py), so
    that however the network's code ends the process, the exit status never says OK for a check that
    did not finish. Called with argv (tests, a user's script), it runs in place."""
    if _running:
        raise InputError("python -m compare cannot run inside a check (was compare.cli.main given as a factory?)")
    if argv is None:
        from .. import supervise, tune_process
        if supervise.PIPE_VARIABLE not in os.environ:  # not the supervised child: its parent has set the name
            os.environ[PROG_VARIABLE] = invoked_as(sys.argv[0])
        tune_process()
        return supervise.supervised(lambda: _main(sys.argv[1:]), sys.argv[1:])
    return _main(list(argv))


_running = []  # set while a command runs


def _main(argv):
    for stream in (sys.stdout, sys.stderr):  # '−' and '×' must not crash a non-UTF-8 terminal
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="replace")
    stdout, stderr = sys.stdout, sys.stderr  # the network's code may replace them: the report goes here
    _running.append(True)
    try:
        if argv and argv[0] in ("export", "import"):
            from . import model
            return (model.export if argv[0] == "export" else model.import_)(argv[1:])
        if argv and argv[0] == "layer":
            from .layer import layer
            return layer(argv[1:])
        if argv and argv[0] == "walkthrough":
            from .walkthrough import walkthrough
            return walkthrough(argv[1:])
        if argv and argv[0] in SUBCOMMANDS:
            from . import golden
            return getattr(golden, argv[0])(argv[1:])
        from .args import parser
        args = parser().parse_args(argv)
        if args.version:
            from ..version import version_line
            print(version_line(args.backend))
            return 0
        from .run import run
        return run(args)
    except InputError as exc:
        return _say(stderr, f"{program()}: error: {exc}", 2)
    except KeyboardInterrupt:
        return _say(stderr, f"{program()}: interrupted", 130)
    except MemoryError:
        return _say(stderr, f"{program()}: error: ran out of memory (a smaller network, batch or chunk of data "
                    "would fit)", 2)
    except BaseException as exc:  # noqa: B036 - sorted below: the user's code, or a bug of ours
        where = user_frame(exc)
        if where is None:
            raise
        kind = f"called sys.exit({exc.code!r})" if isinstance(exc, SystemExit) else \
            f"raised {type(exc).__name__}: {message_of(exc)}"
        return _say(stderr, f"{program()}: error: the network's code ({where}) {kind}", 2)
    finally:
        sys.stdout, sys.stderr = stdout, stderr
        _running.pop()


def _say(stream, line, status):
    """Print the one line on `stream` (the standard error as it was when the command started); `status`."""
    try:
        print(line, file=stream, flush=True)
    except (OSError, ValueError):  # closed by the network's code: the exit status still says it
        pass
    return status


def user_frame(exc):
    """'file:line' of the innermost frame of `exc`'s traceback that is the user's code (outside this
    project's packages, the standard library and installed packages), or None: then it is ours."""
    import importlib.util
    import sysconfig
    ours = [os.path.abspath(p) for name in ("compare", "numpy_impl", "keras_impl")
            for p in (importlib.util.find_spec(name).submodule_search_locations or [])]
    libraries = {os.path.abspath(sysconfig.get_paths()[k]) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    found, tb = None, exc.__traceback__
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        path = os.path.abspath(name)
        generated = "__autograph_generated_file" in os.path.basename(name)  # TensorFlow's, from our tf.functions
        if not name.startswith("<") and not generated and not any(path.startswith(d + os.sep)
                                                                  for d in [*ours, *libraries]):
            found = f"{os.path.relpath(path)}:{tb.tb_lineno}"
        tb = tb.tb_next
    return found


