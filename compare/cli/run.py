"""The check from the command line: the built-in network or a plug-in, the data, the report and its files."""
import os
import sys

from ..errors import InputError
from .args import NETWORK_OPTIONS

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
    optimizer = "sgd" if args.optimizer is None else args.optimizer
    guide = sizes == [3, 2, 1] and init == "guide"
    from ..rules import optimizers as optimizer_rules
    lr = args.learning_rate or (numpy_impl.guide.LEARNING_RATE if guide else
                                optimizer_rules.get(optimizer)["learning_rate"])
    try:
        return numpy_impl.Network(weights, activations, lr, loss="mse" if args.loss is None else args.loss, loss_config=args.loss_config,
                                  optimizer=optimizer, optimizer_config=args.optimizer_config, dtype=args.dtype,
                                  loss_scale=1.0 if args.loss_scale is None else args.loss_scale)
    except (ValueError, TypeError) as exc:
        raise InputError(str(exc)) from None


def model_network(args):
    """The project's own layered network named by --model (numpy_impl/stack.py), seeded by --seed; its data (the
    digits, or the sequences for the transformer) and batches of 32 unless the options say otherwise."""
    from numpy_impl.stack import MODELS
    if args.data == "guide":
        args.data = "sequences" if args.model == "transformer" else "digits"
    if args.batch_size is None:
        args.batch_size = 32
    return MODELS[args.model](args.seed)


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


def run(args):
    from .. import data, outputs, protocol
    from ..environment import use_backend
    backend = use_backend(args.backend)
    paths = outputs.requested(args)
    for option, path in paths.items():
        writable(path, option)
    if args.model is not None:
        given = [f"--{name.replace('_', '-')}" for name in NETWORK_OPTIONS if getattr(args, name) is not None]
        if args.impl is not None or given:
            raise InputError(f"--model {args.model} is the project's own network with its own layers, loss and "
                             f"optimizer; received also {', '.join(([f'--impl {args.impl}'] if args.impl else []) + given)}")
        network = model_network(args)
        if args.steps is None and args.epochs is None:
            args.epochs = 1
    elif args.impl is not None:
        given = [f"--{name.replace('_', '-')}" for name in NETWORK_OPTIONS if getattr(args, name) is not None]
        if given:
            raise InputError(f"{', '.join(given)} {'describes' if len(given) == 1 else 'describe'} the built-in "
                             f"network; the network from --impl {args.impl} declares its own")
        network = protocol.load_factory(args.impl)
    else:
        network = builtin_network(args)
    shape = shape_hint(network) if args.data == "random" else (None, None)
    if args.data == "guide" and protocol.attribute(network, "layers", None) is not None:
        raise InputError("the guide's data (3 inputs) is for Dense networks; a network with layers needs --data "
                         "digits or --data PATH.npz")
    X, y = data.load(args.data, *shape, loss=protocol.attribute(network, "loss", "mse"), seed=args.seed)
    from ..checking import check
    update, close = _progress_bar()
    streams = sys.stdout, sys.stderr  # the network's code may replace them: the report goes to these
    try:
        result = check(network, X, y, steps=args.steps, epochs=args.epochs, batch_size=args.batch_size,
                       seed=args.seed, free_running=args.free_running, dtype=args.dtype, referee=args.referee,
                       backend=backend, history=outputs.needs_history(paths), progress=update)
    finally:
        close()
        sys.stdout, sys.stderr = streams
    return finish(result, paths, args.quiet)


def finish(result, paths, quiet):
    """Print the report (only its verdict line when quiet), write the requested files, return the exit
    status. With a file on standard output ("-"), the text report goes to standard error."""
    from .. import outputs, report
    text = sys.stderr if "-" in paths.values() else sys.stdout
    try:
        if quiet:
            print("verdict: " + report.verdict_text(result), file=text)
        else:
            from rich.console import Console
            # piped or redirected, rich would cut the tables to 80 columns ("gradie…", "1.35e-…"): 200 keeps them
            wide = None if getattr(text, "isatty", lambda: False)() else 200
            report.render(result, Console(soft_wrap=True, file=text, width=wide))
        text.flush()
    except (OSError, ValueError) as exc:  # a closed stream (the network's code may close it)
        raise InputError(f"cannot print the report: {exc}") from None
    for name, path in paths.items():
        try:
            outputs.OUTPUTS[name]["write"](path, result)
        except OSError as exc:
            raise InputError(f"cannot write --{name} {path!r}: {exc.strerror or exc}") from None
    return exit_code(result)


EXIT_CODES = {"ok": 0, "mismatch": 1, "incomplete": 3, "diverged": 4, "inconclusive": 3}


def exit_code(report):
    """0 every step asked for compared and agreeing, 1 a mismatch, 3 agreeing but fewer steps compared than asked,
    4 both sides diverged alike (non-finite at the same step, nothing disagreeing before)."""
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
    from ..report import ensure_writable
    if path == "" or path.endswith(("/", os.sep)):
        raise InputError(f"--{option} expects a file's path (or - for standard output); received {path!r}")
    try:
        ensure_writable(path)
    except OSError as exc:
        raise InputError(f"cannot write --{option} {path!r}: {exc.strerror or exc}") from None


def shape_hint(network):
    """(inputs, outputs) of a network, for random data shaped to fit it."""
    from .. import protocol
    get_weights = protocol.attribute(network, "get_weights", None)
    if not callable(get_weights):
        raise InputError(f"the network ({type(network).__name__}) lacks get_weights; the protocol needs "
                         f"activations, learning_rate and methods {', '.join(protocol.METHODS)}")
    weights = protocol.call("network.get_weights()", get_weights)
    try:
        return int(weights[0].shape[1]), int(weights[-1].shape[0])
    except (TypeError, IndexError, AttributeError, KeyError):
        raise InputError("network.get_weights() must return a list of arrays, kernel (units, inputs) first") from None
