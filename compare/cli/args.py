"""The command line's options: the parser of the check (and of record), and its argument types."""
import argparse
import json
import math

from ..errors import InputError
from ..outputs import add_options
from . import program

EPILOG = """exit status: 0 when numpy and Keras agree at every step asked for, 1 on a mismatch,
2 on bad usage or bad input (one line on stderr), 3 when they agree on every step compared but
fewer steps were compared than asked (free-running past its drift limit) or every element agrees
but rounding leaves a tensor too coarse to judge (inconclusive), 4 when both sides diverged alike
(non-finite at the same step and elements, nothing disagreeing before), 130 on Ctrl-C.

subcommands ({prog} SUBCOMMAND --help):
  record       save the Keras side's trajectory to a golden .npz file
  check        check a numpy network against a golden file, without TensorFlow or Keras
  diff         show what moved between two golden files
  layer        check one hand-written layer (Conv2D, pooling, Embedding, ...) against its Keras layer
  walkthrough  the guide's numpy code to model.fit in five measured stages
  export       save a numpy network as a Keras model file (.keras)
  import       read a Keras model file back into a numpy network (.npz)"""

# Options that describe the built-in network; a plug-in (--impl) declares these itself.
NETWORK_OPTIONS = ("layers", "activations", "loss", "loss_config", "loss_scale", "optimizer", "optimizer_config",
                   "learning_rate", "init")


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise InputError(f"{message} (see {self.prog} --help)")


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


positive_int, seed = _integer(1), _integer(0)


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
        raise argparse.ArgumentTypeError(f"malformed JSON ({exc.msg} at position {exc.pos}); received {text[:80]!r}") from None
    except (ValueError, RecursionError) as exc:  # a number of over 4,300 digits, nesting too deep
        raise argparse.ArgumentTypeError(f"JSON that cannot be read ({type(exc).__name__}); received {text[:80]!r}") \
            from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object like {{\"momentum\": 0.9}}; received {text!r}")
    return value


def parser(prog=None, record=False):
    from ..rules import activations as activation_rules, losses as loss_rules, optimizers as optimizer_rules
    p = Parser(prog=prog or program(), description=RECORD_DOC if record else __doc__, epilog=None if record else EPILOG.format(prog=prog or program()),
                formatter_class=argparse.RawDescriptionHelpFormatter)
    if record:
        p.add_argument("--out", required=True, metavar="FILE.npz", help="where to save the Keras trajectory")
    p.add_argument("--impl", metavar="MODULE:FACTORY",
                   help="zero-argument callable returning the network to check; MODULE importable from the "
                        "current directory (default: the built-in network: the guide's, or --layers)")
    if True:  # record takes it too
        p.add_argument("--model", choices=("cnn", "cnn-bn", "lstm", "gru", "transformer"),
                       help="the project's own numpy network of that kind (numpy_impl/stack.py) on the digits (the "
                            "transformer: --data sequences), batches of 32, one epoch unless --steps or --epochs say "
                            "otherwise")
    net = p.add_argument_group("the built-in network (numpy_impl.Network); a plug-in declares its own")
    net.add_argument("--layers", type=_widths, metavar="W0,W1,...",
                     help="every layer's width, the input included (default 3,2,1: the guide's network)")
    net.add_argument("--activations", type=_names, metavar="A1,A2,...",
                     help=f"one per non-input layer: {', '.join(activation_rules.ACTIVATIONS)} "
                          f"({', '.join(activation_rules.LAST_LAYER_ONLY)} on the last layer only); "
                          "default tanh for hidden layers and linear for the last")
    net.add_argument("--loss", help=f"mse (default), {', '.join(n for n in loss_rules.LOSSES if n != 'mse')}")
    net.add_argument("--loss-config", type=_json_object, metavar="JSON",
                     help='keyword arguments of the Keras loss, e.g. \'{"from_logits": true}\' or '
                          '\'{"reduction": "sum"}\'')
    net.add_argument("--loss-scale", type=_positive_float, metavar="X",
                     help="a declared constant multiplying Keras's loss, e.g. 0.5 for ½·mean squared error "
                          "(default 1)")
    net.add_argument("--optimizer", help=f"sgd (default), {', '.join(n for n in optimizer_rules.OPTIMIZERS if n != 'sgd')}")
    net.add_argument("--optimizer-config", type=_json_object, metavar="JSON",
                     help='keyword arguments of the Keras optimizer, e.g. \'{"momentum": 0.9, "nesterov": true}\'')
    net.add_argument("--learning-rate", type=_positive_float, metavar="LR",
                     help="default: the guide's 0.001 for its network, else Keras's default for the optimizer")
    net.add_argument("--init", choices=("guide", "glorot"),
                     help="initial weights: the guide's (default for 3,2,1) or Glorot uniform from --seed")
    run = p.add_argument_group("training")
    run.add_argument("--data", default="guide", metavar="guide|digits|sequences|random|PATH.npz",
                     help="the guide's X and y (default); scikit-learn's bundled digits; seeded random data "
                          "shaped for the network; or an .npz file holding arrays X and y")
    length = run.add_mutually_exclusive_group()
    length.add_argument("--steps", type=positive_int, help="training steps to check (default: 100)")
    length.add_argument("--epochs", type=positive_int, help="epochs to check, each one pass over the data")
    run.add_argument("--batch-size", type=positive_int, help="rows per step (default: all rows)")
    run.add_argument("--seed", type=seed, default=0, help="seeds the initial weights, random data and the "
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
    add_options(out)
    out.add_argument("--quiet", "-q", action="store_true", help="print only the verdict line")
    p.add_argument("--version", action="store_true",
                   help="print this tool's version and those of Keras, its backend and numpy, then exit")
    return p


RECORD_DOC = """python -m compare record: save the Keras side's trajectory (weights, layer outputs, loss and
gradients per step, with the config and the versions) for `python -m compare check --golden`."""


