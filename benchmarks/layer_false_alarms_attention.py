"""No false alarm on correct MultiHeadAttention self-attention layers (tests/layer_cases_attention.py), and how far
below the tolerance the worst element stays: the draws, false alarms and the largest diff/tolerance per quantity,
for causal and non-causal draws apart.

    python benchmarks/layer_false_alarms_attention.py [DRAWS]           # 1,000 by default
    python benchmarks/layer_false_alarms_attention.py --catch [DRAWS]

--catch checks each draw's layer with its output off by 1e-7 relative instead, and counts the draws where that goes
unnoticed (it must be none: the tolerance is rounding level, never a loose rtol).
"""
import os
import sys
import time

sys.path[:0] = [os.path.join(os.path.dirname(__file__), "..", "tests"), os.path.join(os.path.dirname(__file__), "..")]

from compare.layer_check import check_layer  # noqa: E402
from layer_cases_attention import case  # noqa: E402


def missed(draws):
    """The draws whose output × (1 + 1e-7) passes the check."""
    misses = []
    for seed in range(draws):
        layer, x, _ = case(seed)
        forward = layer.forward
        layer.forward = lambda x, training=True, forward=forward: forward(x, training) * (1 + 1e-7)
        if check_layer(layer, x, seed=seed)["ok"]:
            misses.append(seed)
    print(f"{draws} draws, output off by 1e-7 relative missed in {len(misses)} {misses[:5]}", flush=True)
    return 1 if misses else 0


def main(draws):
    t0, worst, alarms, counts = time.perf_counter(), {}, [], {False: 0, True: 0}
    for seed in range(draws):
        layer, x, causal = case(seed)
        counts[causal] += 1
        report = check_layer(layer, x, seed=seed)
        for c in report["compared"]:
            key = (causal, c["name"])
            worst[key] = max(worst.get(key, 0.0), c["largest_ratio"])
        if not report["ok"]:
            alarms.append((seed, report["first_mismatch"]))
    print(f"{draws} draws ({counts[True]} causal), {len(alarms)} false alarms ({time.perf_counter() - t0:.0f} s)")
    for causal in (False, True):
        ratios = ", ".join(f"{name} {v:.2g}" for (c, name), v in worst.items() if c == causal)
        print(f"  {'causal' if causal else 'full'}: largest diff/tolerance  {ratios}")
    for seed, m in alarms[:3]:
        print(f"    seed {seed}: {m}")
    return 1 if alarms else 0


if __name__ == "__main__":
    args = sys.argv[1:]
    run = missed if args[:1] == ["--catch"] else main
    args = args[1:] if run is missed else args
    sys.exit(run(int(args[0]) if args else 1000))
