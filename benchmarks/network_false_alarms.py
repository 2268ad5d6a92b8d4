"""False alarms of the layered-network check (compare/stack_check.py) on the project's correct networks, drawn at
random: the kind (cnn, cnn-bn, lstm, gru, transformer), the seed of its initial weights (0–999), the batch size
(1, 7, 32 or 100), the learning rate 10^U(−4, 1) (large rates push logits far apart and saturate the gates) and the
batch order's seed; each checked for STEPS steps. Every draw must end "ok" (or "inconclusive" where a recurrent
layer's rounding owns its values, documented in docs/layers.md); the largest diff/tolerance of each quantity is
reported over all draws.

    python benchmarks/network_false_alarms.py [DRAWS] [STEPS]
"""
import collections
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from compare import check  # noqa: E402
from compare.data import load  # noqa: E402
from numpy_impl import stack  # noqa: E402


def network(kind, seed, lr):
    if kind in ("cnn", "cnn-bn"):
        return stack.cnn(seed, batch_norm=kind == "cnn-bn", dropout=0.25 if kind == "cnn-bn" else 0.0,
                         learning_rate=lr)
    if kind == "transformer":
        return stack.transformer(seed, learning_rate=lr)
    return stack.recurrent(kind, seed, learning_rate=lr)


def main(draws, steps):
    rng = np.random.default_rng(2026)
    data = {"digits": load("digits"), "sequences": load("sequences")}
    verdicts, worst, started = collections.Counter(), collections.defaultdict(float), time.perf_counter()
    failures = []
    for _ in range(draws):
        kind = str(rng.choice(["cnn", "cnn-bn", "lstm", "gru", "transformer"]))
        seed, batch, lr = int(rng.integers(1000)), int(rng.choice([1, 7, 32, 100])), float(10 ** rng.uniform(-4, 1))
        order = int(rng.integers(1000))
        X, y = data["sequences" if kind == "transformer" else "digits"]
        report = check(network(kind, seed, lr), X, y, steps=steps, batch_size=batch, seed=order)
        verdicts[(kind, report["verdict"])] += 1
        for q, v in report["max_diff"].items():
            if v["compared"]:
                worst[q] = max(worst[q], v["tolerance_ratio"])
        if report["verdict"] not in ("ok", "inconclusive"):
            failures.append((kind, seed, batch, lr, order, report["verdict"], report["first_mismatch"]))
    print(f"{draws} draws of {steps} steps in {time.perf_counter() - started:.0f} s")
    for (kind, verdict), n in sorted(verdicts.items()):
        print(f"  {kind:12s} {verdict:13s} {n}")
    print("largest diff/tolerance:", {q: round(r, 3) for q, r in worst.items()})
    for failure in failures:
        print("NOT OK:", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100, int(sys.argv[2]) if len(sys.argv) > 2 else 5))
