"""python -m compare: check a numpy network against Keras, step by step. Exit 0 ok, 1 mismatch, 2 bad input."""
import argparse
import sys

from .errors import InputError

EPILOG = """exit status: 0 when numpy and Keras agree at every step, 1 on a mismatch,
2 on bad usage or bad input (one line on stderr)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise InputError(f"{message} (see python -m compare --help)")


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer > 0; received {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected an integer > 0; received {text!r}")
    return value


def parser():
    p = _Parser(prog="python -m compare", description=__doc__, epilog=EPILOG)
    p.add_argument("--impl", default="numpy_impl:seed_network", metavar="MODULE:FACTORY",
                   help="zero-argument callable returning the network to check; MODULE importable from the "
                        "current directory (default: numpy_impl:seed_network, the guide's network)")
    p.add_argument("--steps", type=_positive_int, default=100, help="training steps to check (default: 100)")
    p.add_argument("--data", default="guide", metavar="guide|PATH.npz",
                   help="'guide' (the guide's X and y, default) or an .npz file holding arrays X and y")
    p.add_argument("--free-running", action="store_true",
                   help="let each side train on its own and report the drift (default: Keras steps from "
                        "the numpy side's weights at every step)")
    p.add_argument("--json", metavar="PATH", help="write the report as JSON to PATH")
    p.add_argument("--quiet", "-q", action="store_true", help="print only the verdict line")
    return p


def main(argv=None):
    for stream in (sys.stdout, sys.stderr):  # '−' and '×' must not crash a non-UTF-8 terminal
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="replace")
    try:
        return _run(parser().parse_args(argv))
    except InputError as exc:
        print(f"python -m compare: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("python -m compare: interrupted", file=sys.stderr)
        return 130


def _run(args):
    from . import data, protocol, report
    if args.json:
        try:
            report.ensure_writable(args.json)
        except OSError as exc:
            raise InputError(f"cannot write --json {args.json!r}: {exc.strerror or exc}") from None
    X, y = data.load(args.data)
    network = protocol.load_factory(args.impl)
    from .check import check
    result = check(network, X, y, steps=args.steps, free_running=args.free_running)
    text = report.summary(result)
    print(text.splitlines()[-1] if args.quiet else text)
    if args.json:
        report.write_json(args.json, result)
    return 0 if result["ok"] else 1
