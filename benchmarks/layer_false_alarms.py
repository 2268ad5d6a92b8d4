"""No false alarm on correct layers (a mismatch on a correct layer; an "inconclusive" recurrent check is counted
apart, since it vouches for nothing rather than raising an alarm): the project's own numpy layers, in random configurations, shapes and value
scales (tests/layer_cases.py), checked against Keras; per layer kind the number of draws, false alarms and
the largest diff/tolerance of each quantity.

    python benchmarks/layer_false_alarms.py [DRAWS [KIND ...]]   # 1,000 per kind: docs/tolerances.md's table
"""
import os
import sys
import time

sys.path[:0] = [os.path.join(os.path.dirname(__file__), "..", "tests"), os.path.join(os.path.dirname(__file__), "..")]

from compare.layer_check import check_layer  # noqa: E402
from layer_cases import KINDS, case  # noqa: E402


def main(draws, kinds=(), case=case, all_kinds=KINDS, name=lambda n: n, width=24):
    """The table for `kinds` (default all of `all_kinds`), each drawn by case(kind, seed); `name` maps a tensor's
    name to its column. benchmarks/layer_false_alarms_recurrent.py runs it over its own draws."""
    print(f"{'kind':<{width}}{'draws':>7}{'false alarms':>14}  largest diff/tolerance per quantity")
    total = 0
    for kind in kinds or all_kinds:
        t0, worst, alarms, coarse = time.perf_counter(), {}, [], 0
        for seed in range(draws):
            layer, x, training = case(kind, seed)
            report = check_layer(layer, x, training=training, seed=seed)
            for c in report["compared"]:
                worst[name(c["name"])] = max(worst.get(name(c["name"]), 0.0), c["largest_ratio"])
            if report["first_mismatch"] is not None:
                alarms.append((seed, report["first_mismatch"]))
            coarse += report["verdict"] == "inconclusive"
        total += len(alarms)
        ratios = ", ".join(f"{k} {v:.2g}" for k, v in worst.items())
        unsure = f", {coarse} inconclusive" if coarse else ""
        print(f"{kind:<{width}}{draws:>7}{len(alarms):>14}  {ratios}  ({time.perf_counter() - t0:.0f} s{unsure})",
              flush=True)
        for seed, m in alarms[:3]:
            print(f"    seed {seed}: {m}")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000, sys.argv[2:]))
