"""The subcommands record, check and diff of python -m compare: golden files."""
import sys

from . import program
from .args import Parser, parser, positive_int
from ..errors import InputError
from .run import builtin_network, finish, shape_hint, writable


def record(argv):
    """python -m compare record --out FILE.npz [network and data options]"""
    from .. import data, golden, protocol
    args = parser(f"{program()} record", record=True).parse_args(argv)
    writable(args.out, "out")
    from ..environment import use_backend
    backend = use_backend(args.backend)
    if args.model is not None:
        from .run import model_network
        network = model_network(args)
    else:
        network = protocol.load_factory(args.impl) if args.impl is not None else builtin_network(args)
    layered = protocol.attribute(network, "layers", None) is not None
    shape = shape_hint(network) if args.data == "random" and not layered else (None, None)
    X, y = data.load(args.data, *shape, loss=getattr(network, "loss", "mse"), seed=args.seed)
    steps = args.steps or 100
    if args.epochs:
        import math
        steps = args.epochs * math.ceil(len(X) / (args.batch_size or len(X)))
    if layered:
        from ..golden.layered import record_layers
        arrays = record_layers(network, X, y, steps, args.batch_size, args.seed, args.dtype)
    else:
        arrays = golden.record(network, X, y, steps, args.batch_size, args.seed, args.dtype, backend)
    golden.save(args.out, arrays)
    config = arrays["config"].item()
    print(f"recorded {steps} steps of Keras on {backend} to {args.out} ({_size(args.out)}); config {config}")
    return 0


def check(argv):
    """python -m compare check --golden FILE.npz [--impl MODULE:FACTORY] — without TensorFlow or Keras."""
    from .. import golden, outputs, protocol
    p = Parser(prog=f"{program()} check", description="Check a numpy network against a recorded Keras "
                "trajectory, without importing TensorFlow or Keras. Exit 0 ok, 1 mismatch, 2 bad input.")
    p.add_argument("--golden", required=True, metavar="FILE.npz")
    p.add_argument("--impl", metavar="MODULE:FACTORY",
                   help="the network to check (default: numpy_impl.Network built from the file's config)")
    p.add_argument("--model", choices=("cnn", "cnn-bn", "lstm", "gru", "transformer"),
                   help="the project's own layered network (a file recorded for it)")
    p.add_argument("--steps", type=positive_int, help="check only the first N recorded steps")
    outputs.add_options(p)
    p.add_argument("--quiet", "-q", action="store_true")
    args = p.parse_args(argv)
    paths = outputs.requested(args)
    for option, path in paths.items():
        writable(path, option)
    golden_file = golden.open_file(args.golden)
    spec = golden_file.config["spec"]
    from ..golden.layered import LayeredGolden
    if isinstance(golden_file, LayeredGolden):
        if (args.impl is None) == (args.model is None):
            raise InputError(f"{args.golden} was recorded for a network with layers: give that network with --impl "
                             "MODULE:FACTORY or --model NAME (one of them)")
        if args.model is not None:
            from numpy_impl.stack import MODELS
            network = MODELS[args.model](golden_file.config["seed"])
        else:
            network = protocol.load_factory(args.impl)
    elif args.model is not None:
        raise InputError(f"{args.golden} was recorded for a Dense network; --model names a network with layers")
    elif args.impl is not None:
        network = protocol.load_factory(args.impl)
        # the network's own widths, so that a file of other sizes is named as such, not as an X/y mismatch
        golden_file.verify(protocol.describe(network, *shape_hint(network)))
    else:
        from numpy_impl import Network
        weights = [golden_file.files[f"w{i}"][0] for i in range(2 * len(spec["activations"]))]
        network = Network(weights, spec["activations"], spec["learning_rate"], spec["loss"], spec["loss_config"],
                          spec["optimizer"], spec["optimizer_config"], dtype=golden_file.config["dtype"],
                          loss_scale=spec["loss_scale"])
    from ..checking import check as run_check
    streams = sys.stdout, sys.stderr  # the network's code may replace them: the report goes to these
    try:
        result = run_check(network, golden_file.files["X"], golden_file.files["y"], steps=args.steps,
                           dtype=golden_file.config["dtype"], golden=golden_file, history=outputs.needs_history(paths))
    finally:
        sys.stdout, sys.stderr = streams
    return finish(result, paths, args.quiet)


def diff(argv):
    """python -m compare diff A.npz B.npz: what moved between two recordings (exit 0 identical, 1 moved)."""
    from .. import golden
    p = Parser(prog=f"{program()} diff", description="Compare two recordings of the same configuration, "
                "e.g. before and after a Keras or TensorFlow upgrade. Exit 0 identical, 1 moved, 2 bad input.")
    p.add_argument("a", metavar="A.npz")
    p.add_argument("b", metavar="B.npz")
    args = p.parse_args(argv)
    result = golden.diff(args.a, args.b)
    for side, path in (("a", args.a), ("b", args.b)):
        versions, env = result["versions"][side], result["environment"][side]
        print(f"{side.upper()}: {path} ({', '.join(f'{k} {v}' for k, v in versions.items())}; {env['backend']} on "
              f"{env['device']}, computed in {env['computed_dtype']})")
    print(f"  {'quantity':<16}{'largest |A − B|':>18}{'largest relative':>18}  in")
    for q, m in result["moved"].items():
        print(f"  {q:<16}{m['max_abs']:>18.3g}{m['max_rel']:>18.3g}  {m['name'] or '-'}")
    if result["identical"]:
        print(f"identical: all {result['steps']} steps are bit for bit the same (every array of the trajectory)")
        return 0
    print(f"moved: the trajectories first differ at step {result['first_changed_step']} of {result['steps']}; "
          f"changed: {', '.join(result['changed'])}")
    return 1


def _size(path):
    import os
    return f"{os.path.getsize(path) / 1024:.0f} KiB"

