"""No false alarm on correct SimpleRNN, LSTM and GRU layers (tests/layer_cases_recurrent.py), and how far below the
tolerance the worst element stays; per kind the draws, false alarms and the largest diff/tolerance per quantity.

    python benchmarks/layer_false_alarms_recurrent.py [DRAWS [KIND ...]]   # 1,000 per kind by default
    python benchmarks/layer_false_alarms_recurrent.py --catch [DRAWS [KIND ...]]

--catch checks each draw's layer with its output off by 1e-7 relative instead, and counts the draws where that
goes unnoticed (it must be none: the tolerance is rounding level, never a loose rtol).
"""
import os
import sys

sys.path[:0] = [os.path.join(os.path.dirname(__file__), "..", "tests"), os.path.join(os.path.dirname(__file__), "..")]

from compare.layer_check import check_layer  # noqa: E402
import layer_false_alarms as false_alarms  # noqa: E402 (this folder is on sys.path when run as a script)
from layer_cases_recurrent import KINDS, case  # noqa: E402


def quantity(name):
    """'dgru_cell/kernel' → 'dkernel': one column per weight, whatever the cell is called."""
    return name if "/" not in name else "d" + name.rsplit("/", 1)[1]


def missed(draws, kinds=()):
    """Per kind, the draws whose output × (1 + 1e-7) passes the check."""
    total = 0
    for kind in kinds or KINDS:
        misses = []
        for seed in range(draws):
            layer, x, training = case(kind, seed)
            forward = layer.forward
            layer.forward = lambda x, training=True, forward=forward: forward(x, training) * (1 + 1e-7)
            if check_layer(layer, x, training=training, seed=seed)["ok"]:
                misses.append(seed)
        total += len(misses)
        print(f"{kind:<20}{draws:>7} draws, output off by 1e-7 relative missed in {len(misses)} {misses[:5]}", flush=True)
    return 1 if total else 0


def main(draws, kinds=()):
    return false_alarms.main(draws, kinds, case=case, all_kinds=KINDS, name=quantity, width=20)


if __name__ == "__main__":
    args = sys.argv[1:]
    run = missed if args[:1] == ["--catch"] else main
    args = args[1:] if run is missed else args
    sys.exit(run(int(args[0]) if args else 1000, args[1:]))
