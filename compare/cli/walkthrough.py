"""python -m compare walkthrough: a network's numpy code to model.fit in five measured stages (compare/walkthrough.py)."""
from .. import walkthrough as stages
from ..errors import InputError
from . import program
from .args import Parser, positive_int, seed


def walkthrough(argv):
    """python -m compare walkthrough [--impl MODULE:FACTORY | --model cnn] [--epochs N] [--data D] [--seed S]"""
    from .. import data, protocol
    p = Parser(prog=f"{program()} walkthrough", description=stages.__doc__)
    p.add_argument("--impl", metavar="MODULE:FACTORY", help="your network (default: the guide's seed_network)")
    p.add_argument("--epochs", type=positive_int, default=None,
                   help="length of the last stage (default 100; --model: one epoch, the only length it takes)")
    p.add_argument("--data", default=None, metavar="guide|digits|random|PATH.npz",
                   help="the data (default: the guide's 3 rows; --model: the digits, the only data it takes); random "
                        "is shaped to fit the network")
    p.add_argument("--seed", type=seed, default=0,
                   help="seed of the random data, or of --model's initial weights (default 0)")
    p.add_argument("--model", choices=("cnn", "cnn-bn", "lstm", "gru"),
                   help="the project's own layered network (numpy_impl/stack.py) on the digits, batches of 32")
    args = p.parse_args(argv)
    from ..environment import use_backend
    use_backend("tensorflow")
    from .run import shape_hint
    if args.model is not None:
        if args.impl is not None:
            raise InputError(f"--model {args.model} and --impl {args.impl}: give one network")
        from numpy_impl.stack import MODELS

        from .. import walkthrough_layers
        if args.data not in (None, "digits"):  # found by a user's trial: --data and --epochs had been ignored
            raise InputError(f"--model {args.model} walks through the digits; received --data {args.data}")
        if args.epochs not in (None, 1):
            raise InputError(f"--model {args.model} walks through one epoch (its last stage is model.fit over the "
                             f"check's batches of that epoch); received --epochs {args.epochs}")
        X, y = data.load("digits")
        run = walkthrough_layers.run(lambda: MODELS[args.model](args.seed), X, y)
    else:
        impl = "numpy_impl:seed_network" if args.impl is None else args.impl
        network = protocol.load_factory(impl)  # a factory that fails is refused before any stage runs
        if protocol.attribute(network, "layers", None) is not None:
            raise InputError(f"--impl {impl} is a network with layers: the walkthrough takes the project's own (--model "
                             "cnn, cnn-bn, lstm, gru); check yours with python -m compare --impl")
        source = args.data or "guide"
        shape = shape_hint(network) if source == "random" else (None, None)
        X, y = data.load(source, *shape, loss=protocol.attribute(network, "loss", "mse"), seed=args.seed)
        run = stages.run(lambda: protocol.load_factory(impl), X, y, args.epochs or 100)
    all_ok = True
    for n, (stage, numpy_code, keras_code, conversion, diff, tol, ok) in enumerate(run, 1):
        all_ok &= ok
        print(f"Stage {n}: {stage}")
        print(f"  numpy   {numpy_code}")
        print(f"  Keras   {keras_code}")
        print(f"  needs   {conversion}")
        verdict = "agree" if ok else "DISAGREE"
        print(f"  {verdict}: largest |diff| {diff:.3g}, tolerance there {tol:.3g}\n")
    print("all five stages agree" if all_ok else "a stage disagrees: run python -m compare for the first mismatch")
    return 0 if all_ok else 1

