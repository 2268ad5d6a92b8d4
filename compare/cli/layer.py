"""python -m compare layer: one hand-written layer against the Keras layer it declares (compare/layer_check.py)."""
import argparse

import numpy as np

from ..errors import InputError
from . import program
from .args import Parser


def input_shape(text):
    """'2,3,8,8' → (2, 3, 8, 8); argparse reports a bad one as "argument --input-shape: ..."."""
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expects comma-separated sizes, e.g. 2,3,8,8; received {text!r}") from None
    if not shape or any(n < 1 for n in shape) or np.prod(shape, dtype=float) > 5e7:
        raise argparse.ArgumentTypeError(f"expects sizes >= 1 with at most 5e7 elements in all; received {text!r}")
    return shape


KINKS = ("ReLU", "MaxPooling2D")  # where a rule at a tie or at 0 decides, and normal draws never reach it


def draw_input(layer_spec, shape, seed):
    """x for the check: standard normal values (seeded); for ReLU and max pooling a grid of quarters in [−2, 2],
    with exact zeros and ties; integer ids in [0, input_dim) for an Embedding."""
    rng = np.random.default_rng([seed, 1])
    if layer_spec["class_name"] in KINKS or layer_spec["config"].get("activation") == "relu":
        return rng.integers(-8, 9, shape) / 4.0  # a grid: exact zeros (relu′(0)) and ties within windows
    if layer_spec["class_name"] == "Embedding":
        size = layer_spec["config"].get("input_dim")
        if not isinstance(size, int) or size < 1:
            raise InputError(f"Embedding's config needs input_dim, an integer >= 1; received {size!r}")
        return rng.integers(0, size, shape)
    return rng.standard_normal(shape)


def layer(argv):
    """python -m compare layer --impl MODULE:FACTORY --input-shape 2,3,8,8: the check draws x (seeded; integer ids
    for an Embedding) and dout, and compares the layer's output, dx, every weight gradient and its state after
    the call with the Keras layer's. Exit 0 when they agree, 1 on a mismatch, 2 on bad input, 3 when every
    element agrees but a recurrent layer's bound is too coarse to call that an OK."""
    p = Parser(prog=f"{program()} layer", description=layer.__doc__)
    p.add_argument("--impl", required=True, metavar="MODULE:FACTORY",
                   help="a zero-argument callable returning the layer (the layer protocol: README)")
    p.add_argument("--input-shape", required=True, type=input_shape, metavar="N,...",
                   help="the input's shape in the layer's own layout, batch first")
    p.add_argument("--seed", type=int, default=0, help="seed of x and dout (default 0)")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--training", dest="training", action="store_true", default=True,
                      help="call both sides in training mode (the default)")
    mode.add_argument("--inference", dest="training", action="store_false", help="call both sides in inference mode")
    p.add_argument("--json", metavar="PATH", help="write the report as JSON ('-' for standard output)")
    p.add_argument("--quiet", "-q", action="store_true", help="print only the verdict line")
    args = p.parse_args(argv)
    if args.seed < 0:
        raise InputError(f"--seed must be >= 0; received {args.seed}")
    if args.json:
        from .run import writable
        writable(args.json, "json")
    from .. import protocol
    from ..layer_check import check_layer, read_spec
    from ..layer_report import lines, verdict_line
    the_layer = protocol.load_factory(args.impl)
    x = draw_input(read_spec(the_layer), args.input_shape, args.seed)
    report = check_layer(the_layer, x, training=args.training, seed=args.seed, dtype=args.dtype)
    if args.json:
        from ..outputs import write_json
        write_json(args.json, report)
    if args.json != "-":
        print("\n".join([verdict_line(report)] if args.quiet else lines(report)))
    return 0 if report["ok"] else 3 if report["verdict"] == "inconclusive" else 1
