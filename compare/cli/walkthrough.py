"""python -m compare walkthrough: the guide's numpy code to model.fit in five measured stages (compare/walkthrough.py)."""
from .. import walkthrough as stages
from .args import Parser, positive_int


def walkthrough(argv):
    """python -m compare walkthrough [--impl MODULE:FACTORY] [--epochs N]"""
    from .. import data, protocol
    p = Parser(prog="python -m compare walkthrough", description=stages.__doc__)
    p.add_argument("--impl", metavar="MODULE:FACTORY", help="your network (default: the guide's seed_network)")
    p.add_argument("--epochs", type=positive_int, default=100, help="length of the last stage (default 100)")
    args = p.parse_args(argv)
    from ..environment import use_backend
    use_backend("tensorflow")
    impl = "numpy_impl:seed_network" if args.impl is None else args.impl
    protocol.load_factory(impl)  # a factory that fails is refused before any stage runs
    X, y = data.load("guide")
    all_ok = True
    for n, (stage, numpy_code, keras_code, conversion, diff, tol, ok) in enumerate(
            stages.run(lambda: protocol.load_factory(impl), X, y, args.epochs), 1):
        all_ok &= ok
        print(f"Stage {n}: {stage}")
        print(f"  numpy   {numpy_code}")
        print(f"  Keras   {keras_code}")
        print(f"  needs   {conversion}")
        verdict = "agree" if ok else "DISAGREE"
        print(f"  {verdict}: largest |diff| {diff:.3g}, tolerance there {tol:.3g}\n")
    print("all five stages agree" if all_ok else "a stage disagrees: run python -m compare for the first mismatch")
    return 0 if all_ok else 1

