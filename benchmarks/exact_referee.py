"""The exact referee of layered networks (compare/exact_stack.py): for each of the project's networks at batch 32,
the referee's estimate of a step's work (products of 50-digit numbers), the seconds one exact step takes at step 0,
and the rate, estimate / seconds, against which MAX_PRODUCTS is set (docs/referees.md).

    python benchmarks/exact_referee.py
"""
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from compare import check, exact_stack, stack_check  # noqa: E402
from compare.data import load  # noqa: E402
from numpy_impl.stack import MODELS  # noqa: E402


def main():
    from keras_impl.stack import output_shapes
    timed, real = [], exact_stack.step

    def step(*args, **kwargs):
        t = time.perf_counter()
        out = real(*args, **kwargs)
        timed.append(time.perf_counter() - t)
        return out
    exact_stack.step = step
    for name, make in MODELS.items():
        X, y = load("sequences") if name == "transformer" else load("digits")
        spec = stack_check.describe(make(), X, y)
        sides = stack_check.sides_for(spec, (32,) + X.shape[1:], "float64")
        n = exact_stack.products(spec["layers"], sides.sources, (32,) + X.shape[1:],
                                 output_shapes(sides.model, spec["layers"], 32), sides.specs)
        timed.clear()
        verdict = check(make(), X, y, steps=1, batch_size=32, referee="exact")["referee"]["verdict"]
        print(f"{name:12s} estimate {n:>10,} products, one exact step {timed[0]:.2f} s, {n / timed[0] / 1e6:.2f} M a "
              f"second, verdict {verdict}", flush=True)
    print(f"MAX_PRODUCTS {exact_stack.MAX_PRODUCTS:,}")


if __name__ == "__main__":
    main()
