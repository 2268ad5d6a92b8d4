"""The project's layered networks (numpy_impl/stack.py) on the digits (the transformer on the sequences), batches
of 32: each checked for 200 steps synced and 200 free-running (verdict, largest diff/tolerance per quantity, the
drift, seconds per step), and, for the CNN and the LSTM, the cost
of a checked step against Keras's own compiled training step plus the numpy network's step, as ratios within
one run: rounds interleave the three (the check on 30 steps, its setup included, 30 Keras steps, 30 numpy steps),
medians reported.

    python benchmarks/networks.py [STEPS] [ROUNDS]       (STEPS 0: the cost ratios only)
"""
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from compare import check  # noqa: E402
from compare.data import load  # noqa: E402
from numpy_impl.stack import MODELS  # noqa: E402

BATCH = 32


def keras_train_step(network, X, y):
    """Keras's own compiled training step for the network's layers, loss and optimizer (compare/walkthrough_layers)."""
    from compare.stack_check import describe
    from compare.walkthrough_layers import train_step
    return train_step(describe(network, X, y), network.get_weights(), X.shape[1:])[1]


def ratio(name, X, y, rounds, per_round=30):
    rng = np.random.default_rng(0)
    batches = [rng.choice(len(X), BATCH, replace=False) for _ in range(per_round)]
    net_numpy = MODELS[name]()
    k_step = keras_train_step(MODELS[name](), X, y)
    k_step(X[batches[0]], y[batches[0]])  # traced outside the timing
    check(MODELS[name](), X, y, steps=2, batch_size=BATCH)  # the check's traces too
    times = {"check": [], "keras": [], "numpy": []}
    for _ in range(rounds):
        net_check = MODELS[name]()  # a fresh network: the check starts Keras's optimizer afresh too
        t = time.perf_counter()
        report = check(net_check, X, y, steps=per_round, batch_size=BATCH)
        times["check"].append((time.perf_counter() - t) / per_round)
        assert report["verdict"] == "ok", report["diagnosis"]
        t = time.perf_counter()
        for rows in batches:
            k_step(X[rows], y[rows])
        times["keras"].append((time.perf_counter() - t) / per_round)
        t = time.perf_counter()
        for rows in batches:
            net_numpy.forward(X[rows])
            net_numpy.apply_gradients(net_numpy.gradients(X[rows], y[rows])[1])
        times["numpy"].append((time.perf_counter() - t) / per_round)
    med = {k: float(np.median(v)) for k, v in times.items()}
    print(f"{name:7s} checked step {1e3 * med['check']:.1f} ms, Keras train step {1e3 * med['keras']:.1f} ms, numpy "
          f"step {1e3 * med['numpy']:.1f} ms: {med['check'] / (med['keras'] + med['numpy']):.2f} × (Keras + numpy)")


def main(steps, rounds):
    X, y = load("digits")
    for name in MODELS if steps else ():  # STEPS 0: the cost ratios only
        Xm, ym = load("sequences") if name == "transformer" else (X, y)
        for free in (False, True):
            t = time.perf_counter()
            report = check(MODELS[name](), Xm, ym, steps=steps, batch_size=BATCH, free_running=free)
            ratios = {q: round(v["tolerance_ratio"], 3) for q, v in report["max_diff"].items() if v["compared"]}
            drift = (f", drift {report['drift']['max_rel']:.2g} (decorrelated at step "
                     f"{report['drift']['decorrelated_at']})" if free else "")
            print(f"{name:11s} {'free-running' if free else 'synced'} {report['steps_checked']}/{steps} steps: "
                  f"{report['verdict']}, largest diff/tolerance {ratios}{drift}, "
                  f"{(time.perf_counter() - t) / steps:.3f} s a step", flush=True)
    for name in ("cnn", "lstm"):
        ratio(name, X, y, rounds)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200, int(sys.argv[2]) if len(sys.argv) > 2 else 5)
