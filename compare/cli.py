"""python -m compare: check a numpy network against Keras, step by step. Exit 0 ok, 1 mismatch, 2 bad input."""
import argparse
import json
import math
import os
import sys

from .errors import InputError

EPILOG = """exit status: 0 when numpy and Keras agree at every step asked for, 1 on a mismatch,
2 on bad usage or bad input (one line on stderr), 3 when they agree on every step compared but
fewer steps were compared than asked (free-running past its drift limit), 130 on Ctrl-C.

subcommands (python -m compare SUBCOMMAND --help):
  record       save the Keras side's trajectory to a golden .npz file
  check        check a numpy network against a golden file, without TensorFlow or Keras
  diff         show what moved between two golden files
  walkthrough  the guide's numpy code to model.fit in five measured stages"""

# Options that describe the built-in network; a plug-in (--impl) declares these itself.
NETWORK_OPTIONS = ("layers", "activations", "loss", "loss_config", "optimizer", "optimizer_config",
                   "learning_rate", "init")


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise InputError(f"{message} (see python -m compare --help)")


def _integer(minimum):
    """An argparse type for integers ≥ minimum, whose error echoes the text received."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer {'> 0' if minimum == 1 else '≥ 0'}; "
                                             f"received {text!r}")
        return value
    return parse


_positive_int, _seed = _integer(1), _integer(0)


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0; received {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0; received {text!r}")
    return value


def _widths(text):
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated widths like 64,32,10; received {text!r}") from None
    if len(sizes) < 2 or min(sizes) <= 0:
        raise argparse.ArgumentTypeError(f"expected at least two widths > 0 (input and output); received {text!r}")
    return sizes


def _names(text):
    return [part.strip() for part in text.split(",")]


def _json_object(text):
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"malformed JSON ({exc.msg} at position {exc.pos}); received {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object like {{\"momentum\": 0.9}}; received {text!r}")
    return value


def parser(prog="python -m compare", record=False):
    from .rules import activations as activation_rules, losses as loss_rules, optimizers as optimizer_rules
    p = _Parser(prog=prog, description=RECORD_DOC if record else __doc__, epilog=None if record else EPILOG,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    if record:
        p.add_argument("--out", required=True, metavar="FILE.npz", help="where to save the Keras trajectory")
    p.add_argument("--impl", metavar="MODULE:FACTORY",
                   help="zero-argument callable returning the network to check; MODULE importable from the "
                        "current directory (default: the built-in network: the guide's, or --layers)")
    net = p.add_argument_group("the built-in network (numpy_impl.Network); a plug-in declares its own")
    net.add_argument("--layers", type=_widths, metavar="W0,W1,...",
                     help="every layer's width, the input included (default 3,2,1: the guide's network)")
    net.add_argument("--activations", type=_names, metavar="A1,A2,...",
                     help=f"one per non-input layer: {', '.join(activation_rules.ACTIVATIONS)} "
                          f"({', '.join(activation_rules.LAST_LAYER_ONLY)} on the last layer only); "
                          "default tanh for hidden layers and linear for the last")
    net.add_argument("--loss", help=f"mse (default), {', '.join(n for n in loss_rules.LOSSES if n != 'mse')}")
    net.add_argument("--loss-config", type=_json_object, metavar="JSON",
                     help='keyword arguments of the Keras loss, e.g. \'{"from_logits": true}\'')
    net.add_argument("--optimizer", help=f"sgd (default), {', '.join(n for n in optimizer_rules.OPTIMIZERS if n != 'sgd')}")
    net.add_argument("--optimizer-config", type=_json_object, metavar="JSON",
                     help='keyword arguments of the Keras optimizer, e.g. \'{"momentum": 0.9, "nesterov": true}\'')
    net.add_argument("--learning-rate", type=_positive_float, metavar="LR",
                     help="default: the guide's 0.001 for its network, else Keras's default for the optimizer")
    net.add_argument("--init", choices=("guide", "glorot"),
                     help="initial weights: the guide's (default for 3,2,1) or Glorot uniform from --seed")
    run = p.add_argument_group("training")
    run.add_argument("--data", default="guide", metavar="guide|digits|random|PATH.npz",
                     help="the guide's X and y (default); scikit-learn's bundled digits; seeded random data "
                          "shaped for the network; or an .npz file holding arrays X and y")
    length = run.add_mutually_exclusive_group()
    length.add_argument("--steps", type=_positive_int, help="training steps to check (default: 100)")
    length.add_argument("--epochs", type=_positive_int, help="epochs to check, each one pass over the data")
    run.add_argument("--batch-size", type=_positive_int, help="rows per step (default: all rows)")
    run.add_argument("--seed", type=_seed, default=0, help="seeds the initial weights, random data and the "
                                                          "per-epoch permutation (default 0)")
    run.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                     help="precision of both sides and of the tolerances (default float64)")
    run.add_argument("--backend", choices=("tensorflow", "jax", "torch"),
                     help="Keras's backend (default: $KERAS_BACKEND, else tensorflow)")
    if record:
        return p
    run.add_argument("--referee", choices=("exact", "finite_differences"),
                     help="judge the first mismatching step (or step 0) against 50-digit arithmetic (networks "
                          "up to 500 parameters) or central differences of Keras's loss")
    run.add_argument("--free-running", action="store_true",
                     help="let each side train on its own and report the drift (default: Keras steps from "
                          "the numpy side's weights at every step)")
    out = p.add_argument_group("output")
    out.add_argument("--json", metavar="PATH", help="write the report as JSON to PATH ('-': standard output, "
                                                     "with the text report on standard error)")
    out.add_argument("--plot", metavar="PATH.png", help="write a PNG: both loss curves, and the largest difference "
                                                        "per step per quantity against its tolerance")
    out.add_argument("--junit", metavar="PATH.xml", help="write JUnit XML for CI systems")
    out.add_argument("--quiet", "-q", action="store_true", help="print only the verdict line")
    return p


RECORD_DOC = """python -m compare record: save the Keras side's trajectory (weights, layer outputs, loss and
gradients per step, with the config and the versions) for `python -m compare check --golden`."""


def main(argv=None):
    """The command line. Called without argv (python -m compare, the console script), it tunes its own
    process (compare.tune_process) and runs the check in a supervised child (compare/supervise.py), so
    that however the network's code ends the process, the exit status never says OK for a check that
    did not finish. Called with argv (tests, a user's script), it runs in place."""
    if argv is None:
        from . import supervise, tune_process
        tune_process()
        return supervise.supervised(lambda: _main(sys.argv[1:]), sys.argv[1:])
    return _main(list(argv))


def _main(argv):
    for stream in (sys.stdout, sys.stderr):  # '−' and '×' must not crash a non-UTF-8 terminal
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="replace")
    try:
        if argv and argv[0] in SUBCOMMANDS:
            from . import golden_cli
            return getattr(golden_cli, argv[0])(argv[1:])
        return _run(parser().parse_args(argv))
    except InputError as exc:
        print(f"python -m compare: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("python -m compare: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print("python -m compare: error: ran out of memory (a smaller network, batch or chunk of data "
              "would fit)", file=sys.stderr)
        return 2
    except BaseException as exc:  # noqa: B036 - sorted below: the user's code, or a bug of ours
        where = user_frame(exc)
        if where is None:
            raise
        from .protocol import _text
        kind = f"called sys.exit({exc.code!r})" if isinstance(exc, SystemExit) else \
            f"raised {type(exc).__name__}: {_text(exc)}"
        print(f"python -m compare: error: the network's code ({where}) {kind}", file=sys.stderr)
        return 2


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
        if not name.startswith("<") and not any(path.startswith(d + os.sep) for d in [*ours, *libraries]):
            found = f"{os.path.relpath(path)}:{tb.tb_lineno}"
        tb = tb.tb_next
    return found


SUBCOMMANDS = ("record", "check", "diff", "walkthrough")


def builtin_network(args):
    """numpy_impl.Network from the command line: the guide's weights for 3,2,1, else Glorot uniform."""
    import numpy_impl
    sizes = args.layers or [3, 2, 1]
    activations = args.activations or ["tanh"] * (len(sizes) - 2) + ["linear"]
    if len(activations) != len(sizes) - 1:
        raise InputError(f"--activations needs one name per non-input layer ({len(sizes) - 1} for --layers "
                         f"{','.join(map(str, sizes))}); received {len(activations)}: {','.join(activations)}")
    refuse_too_large(sizes)
    init = args.init or ("guide" if sizes == [3, 2, 1] else "glorot")
    if init == "guide" and sizes != [3, 2, 1]:
        raise InputError(f"--init guide needs --layers 3,2,1; received {','.join(map(str, sizes))}")
    weights = numpy_impl.seed_weights() if init == "guide" else numpy_impl.glorot_uniform(sizes, args.seed)
    optimizer = args.optimizer or "sgd"
    guide = sizes == [3, 2, 1] and init == "guide"
    from .rules import optimizers as optimizer_rules
    lr = args.learning_rate or (numpy_impl.guide.LEARNING_RATE if guide else
                                optimizer_rules.get(optimizer)["learning_rate"])
    try:
        return numpy_impl.Network(weights, activations, lr, loss=args.loss or "mse", loss_config=args.loss_config,
                                  optimizer=optimizer, optimizer_config=args.optimizer_config, dtype=args.dtype)
    except (ValueError, TypeError) as exc:
        raise InputError(str(exc)) from None


# Copies of the parameters a check holds at once: both sides' weights, gradients and updated weights,
# the optimizer states, the tolerances and Keras's variables, its step's inputs and outputs.
COPIES = 24


def refuse_too_large(sizes):
    """An InputError, before anything is allocated, when a network of these widths cannot fit in memory."""
    parameters = sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))
    need, have = COPIES * 8 * parameters, _memory_available()
    if have is not None and need > have:
        raise InputError(f"--layers {','.join(map(str, sizes))} has {parameters:,} parameters; checking it needs "
                         f"about {need / 2 ** 30:,.1f} GiB ({COPIES} float64 copies), and this machine has "
                         f"{have / 2 ** 30:,.1f} GiB available")


def _memory_available():
    """Bytes of memory available (MemAvailable, else all physical memory), or None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _run(args):
    from . import data, protocol, report
    from .environment import use_backend
    backend = use_backend(args.backend)
    for option in ("json", "plot", "junit"):
        if getattr(args, option):
            writable(getattr(args, option), option)
    if args.impl:
        given = [f"--{name.replace('_', '-')}" for name in NETWORK_OPTIONS if getattr(args, name) is not None]
        if given:
            raise InputError(f"{', '.join(given)} {'describes' if len(given) == 1 else 'describe'} the built-in "
                             f"network; the network from --impl {args.impl} declares its own")
        network = protocol.load_factory(args.impl)
    else:
        network = builtin_network(args)
    shape_hint = _shape_hint(network) if args.data == "random" else (None, None)
    X, y = data.load(args.data, *shape_hint, loss=protocol.attribute(network, "loss", "mse"), seed=args.seed)
    from .checking import check
    update, close = _progress_bar()
    try:
        result = check(network, X, y, steps=args.steps, epochs=args.epochs, batch_size=args.batch_size,
                       seed=args.seed, free_running=args.free_running, dtype=args.dtype, referee=args.referee,
                       backend=backend, history=bool(args.plot or args.junit), progress=update)
    finally:
        close()
    # With an output on standard output ("-"), the text report goes to standard error.
    text = sys.stderr if "-" in (args.json, args.junit, args.plot) else sys.stdout
    if args.quiet:
        print(report.summary(result).splitlines()[-1], file=text)
    else:
        from rich.console import Console
        report.render(result, Console(soft_wrap=True, file=text))
    if args.plot:
        from .plot import write_plot
        write_plot(args.plot, result)
    if args.junit:
        from .junit import write_junit
        write_junit(args.junit, result)
    if args.json:
        report.write_json(args.json, result)
    return exit_code(result)


EXIT_CODES = {"ok": 0, "mismatch": 1, "incomplete": 3}


def exit_code(report):
    """0 every step asked for compared and agreeing, 1 a mismatch, 3 agreeing but fewer steps compared than asked."""
    return EXIT_CODES[report["verdict"]]


def _progress_bar(after_s=2.0):
    """A progress bar on stderr for runs longer than `after_s` seconds, when stderr is a terminal."""
    import time
    state = {"bar": None, "start": time.monotonic()}

    def update(step, steps):
        if state["bar"] is None:
            if time.monotonic() - state["start"] < after_s or not sys.stderr.isatty():
                return
            from rich.console import Console
            from rich.progress import Progress
            state["bar"] = Progress(console=Console(stderr=True), transient=True)
            state["bar"].start()
            state["task"] = state["bar"].add_task("checking steps", total=steps)
        state["bar"].update(state["task"], completed=step)

    def close():
        if state["bar"] is not None:
            state["bar"].stop()
    return update, close


def writable(path, option):
    """Refuse, before any work, an output path that cannot be written."""
    from .report import ensure_writable
    try:
        ensure_writable(path)
    except OSError as exc:
        raise InputError(f"cannot write --{option} {path!r}: {exc.strerror or exc}") from None


def _shape_hint(network):
    """(inputs, outputs) of a network, for random data shaped to fit it."""
    from . import protocol
    weights = protocol.call("network.get_weights()", network.get_weights)
    try:
        return int(weights[0].shape[1]), int(weights[-1].shape[0])
    except (TypeError, IndexError, AttributeError):
        raise InputError("network.get_weights() must return a list of arrays, kernel (units, inputs) first") from None
