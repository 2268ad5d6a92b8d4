"""The project's layered networks (numpy_impl/stack.py) on the digits, batches of 32: each checked for 200 synced
steps (verdict, largest diff/tolerance per quantity, seconds per step), and, for the CNN and the LSTM, the cost
of a checked step against Keras's own compiled training step plus the numpy network's step, as ratios within
one run: rounds interleave the three (the check on 10 steps, 10 Keras steps, 10 numpy steps), medians reported.

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
    """Keras's own compiled training step for the network's layers, loss and optimizer (tf.function)."""
    import keras
    import tensorflow as tf
    from keras_impl.model import LOSSES, OPTIMIZERS
    from keras_impl.stack import build
    model = build(network.layers, X.shape[1:])
    model.set_weights(network.get_weights())
    loss_fn = LOSSES[network.loss]()
    optimizer = OPTIMIZERS[network.optimizer](learning_rate=network.learning_rate)

    @tf.function
    def step(xb, yb):
        with tf.GradientTape() as tape:
            loss = loss_fn(yb, model(xb, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss
    keras.config.set_floatx("float64")
    return step


def ratio(name, X, y, rounds, per_round=10):
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
        t = time.perf_counter()
        report = check(MODELS[name](), X, y, steps=steps, batch_size=BATCH)
        ratios = {q: round(v["tolerance_ratio"], 3) for q, v in report["max_diff"].items() if v["compared"]}
        print(f"{name:7s} {steps} steps: {report['verdict']}, largest diff/tolerance {ratios}, "
              f"{(time.perf_counter() - t) / steps:.3f} s a step", flush=True)
    for name in ("cnn", "lstm"):
        ratio(name, X, y, rounds)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200, int(sys.argv[2]) if len(sys.argv) > 2 else 5)
