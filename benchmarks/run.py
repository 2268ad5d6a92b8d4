"""Benchmarks for the check's cost, as ratios measured within one run on one machine.

    python benchmarks/run.py            # about a minute on a 2-core machine
    python benchmarks/run.py --quick    # fewer repetitions

Prints, side by side: Keras's own compiled training step (tf.function, and with XLA), the numpy step,
the check's cost per step on the guide's network and on 784-512-512-10, the cold start of
`python -m compare` against `python -c "import keras"`, and the peak memory at 100 and 10,000 steps.
"""
import argparse
import os
import subprocess
import sys
import time

# As `python -m compare` does (compare.tune_process): OpenBLAS's threads sleep right after each call
# instead of spinning, and (in main) malloc keeps freed memory, so every figure below, both sides
# alone included, is measured under the settings of the check's own process.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def per_call(fn, repeats):
    """Median over 5 rounds of the mean time of one call, in microseconds."""
    fn()
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        rounds.append((time.perf_counter() - start) / repeats * 1e6)
    return float(np.median(rounds))


def keras_train_step(sizes, activations, X, y, jit):
    """Keras's own training step, compiled: GradientTape + SGD.apply_gradients in one tf.function."""
    import keras_impl
    import keras
    import tensorflow as tf
    model = keras_impl.build_model(sizes, activations)
    loss_fn, optimizer = keras.losses.MeanSquaredError(), keras.optimizers.SGD(0.001)
    optimizer.build(model.trainable_variables)
    Xt, yt = tf.constant(X), tf.constant(y)

    @tf.function(jit_compile=jit)
    def train_step():
        with tf.GradientTape() as tape:
            loss = loss_fn(yt, model(Xt))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss
    return lambda: train_step()


def numpy_step(network, X, y, forward=False):
    """The numpy side's training step; with forward=True also the separate forward(X) the check's
    protocol calls each step to compare every layer's output."""
    def step():
        if forward:
            network.forward(X)
        network.apply_gradients(network.gradients(X, y)[1])
    return step


def check_per_step(make, X, y, steps, **options):
    from compare import check
    check(make(), X, y, steps=2, **options)  # build and trace once
    start = time.perf_counter()
    report = check(make(), X, y, steps=steps, **options)
    assert report["ok"], report["first_mismatch"]
    return (time.perf_counter() - start) / steps * 1e6


def wall(cmd):
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=False, capture_output=True, env=dict(os.environ, PYTHONPATH=ROOT))
    return time.perf_counter() - start


def peak_rss_mb(steps):
    """The check's peak resident memory in a fresh process: VmHWM, which exec resets (Linux's ru_maxrss
    keeps the high-water mark of the forking parent, this benchmark); ru_maxrss where there is no /proc."""
    code = ("import os, resource, numpy_impl, compare; compare.tune_process(); from compare import check; "
            "X, y = numpy_impl.seed_data(); "
            f"check(numpy_impl.seed_network(), X, y, steps={steps}); "
            "hwm = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')] "
            "if os.path.exists('/proc/self/status') else []; "
            "print(hwm[0] if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=ROOT))
    return int(out.stdout.split()[-1]) / 1024


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    reps = 100 if args.quick else 400
    import compare
    compare.tune_process()
    import numpy_impl
    rows = []

    X, y = numpy_impl.seed_data()
    tf_step = per_call(keras_train_step([3, 2, 1], ["tanh", "linear"], X, y, jit=False), reps)
    xla_step = per_call(keras_train_step([3, 2, 1], ["tanh", "linear"], X, y, jit=True), reps)
    np_step = per_call(numpy_step(numpy_impl.seed_network(), X, y), reps * 10)
    checked = check_per_step(numpy_impl.seed_network, X, y, 2000 if not args.quick else 500)
    rows += [("guide 3-2-1: Keras train step, tf.function", tf_step, "µs"),
             ("guide 3-2-1: Keras train step, tf.function + XLA", xla_step, "µs"),
             ("guide 3-2-1: numpy step", np_step, "µs"),
             ("guide 3-2-1: checked step (synced)", checked, "µs"),
             ("  ratio to XLA step + numpy step (target ≤ 1.5, aim < 1.0)", checked / (xla_step + np_step), "×"),
             ("  ratio to tf.function step + numpy step", checked / (tf_step + np_step), "×")]

    rng = np.random.default_rng(0)
    sizes = [784, 512, 512, 10]
    Xl, yl = rng.normal(size=(128, 784)), rng.normal(size=(128, 10))
    big = lambda: numpy_impl.Network(numpy_impl.glorot_uniform(sizes, 0), ["relu", "relu", "linear"], 0.01)  # noqa
    big_tf = per_call(keras_train_step(sizes, ["relu", "relu", "linear"], Xl, yl, jit=False), 20)
    big_np = per_call(numpy_step(big(), Xl, yl), 20)
    big_np_side = per_call(numpy_step(big(), Xl, yl, forward=True), 20)
    train = keras_train_step(sizes, ["relu", "relu", "linear"], Xl, yl, jit=False)
    side = numpy_step(big(), Xl, yl, forward=True)
    big_alternating = per_call(lambda: (train(), side()), 20)
    big_check = check_per_step(big, Xl, yl, 200 if not args.quick else 50)
    rows += [("784-512-512-10, batch 128: Keras train step", big_tf, "µs"),
             ("784-512-512-10, batch 128: numpy step", big_np, "µs"),
             ("784-512-512-10, batch 128: numpy side as checked (+ forward(X))", big_np_side, "µs"),
             ("784-512-512-10, batch 128: both sides alternating in one loop", big_alternating, "µs"),
             ("784-512-512-10, batch 128: checked step", big_check, "µs"),
             ("  ratio to Keras step + numpy step (target ≤ 1.2)", big_check / (big_tf + big_np), "×"),
             ("  ratio to Keras step + numpy side as checked", big_check / (big_tf + big_np_side), "×"),
             ("  ratio to both sides alternating in one loop", big_check / big_alternating, "×"),
             ("  both sides alternating / the two alone (a floor for the check)",
              big_alternating / (big_tf + big_np_side), "×")]

    import_keras = min(wall([sys.executable, "-c", "import keras"]) for _ in range(2))
    cold = min(wall([sys.executable, "-m", "compare", "-q"]) for _ in range(2))
    rows += [("python -c 'import keras'", import_keras, "s"),
             ("python -m compare (100 steps, end to end)", cold, "s"),
             ("  ratio to import keras + 100 checked steps (target ≤ 1.5)", cold / (import_keras + checked * 1e-4),
              "×")]
    rows += [("peak RSS, 100 steps", peak_rss_mb(100), "MiB"), ("peak RSS, 10,000 steps", peak_rss_mb(10_000), "MiB")]

    width = max(len(name) for name, _, _ in rows)
    print(f"{'measurement':<{width}}  {'value':>10}")
    for name, value, unit in rows:
        print(f"{name:<{width}}  {value:>10.3g} {unit}")


if __name__ == "__main__":
    main()
