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


def per_call(fns, rounds):
    """{name: (fn, calls)} → {name: µs per call}: the median over `rounds` rounds of the mean time of
    `calls` calls. The rounds interleave the functions, so a stretch where the (shared) machine runs
    slow falls on all of them alike and the ratios between them hold."""
    for fn, _ in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, (fn, calls) in fns.items():
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            times[name].append((time.perf_counter() - start) / calls * 1e6)
    return {name: float(np.median(t)) for name, t in times.items()}


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
    """The numpy side's training step; with forward=True also a separate forward(X), which the check calls each
    step, to compare every layer's output, for a network without forward_and_gradients."""
    def step():
        if forward:
            network.forward(X)
        network.apply_gradients(network.gradients(X, y)[1])
    return step


def hide_combined(network):
    """The network as one whose class does not define forward_and_gradients: the check calls forward(X) and
    gradients(X, y) apart, as for any network without the optional method."""
    network.__class__ = type("Separate" + type(network).__name__, (type(network),), {"forward_and_gradients": None})
    return network


def checked_steps(make, X, y, steps):
    """One call: `steps` checked steps of a fresh network from make() (divide its time by steps)."""
    from compare import check

    def run():
        report = check(make(), X, y, steps=steps)
        assert report["ok"], report["first_mismatch"]
    return run


def parts_in_place(make, X, y, steps):
    """Where a checked step's time goes: {part: ms a step} over `steps` checked steps of a fresh network, each part
    of compare's step (the numpy side, Keras's step as the check needs it, the bounds and update tolerances, the
    comparisons) wrapped with a timer in place; "rest" is the step's time outside them."""
    from compare import check, chunks, stepper
    from keras_impl import KerasStep
    spent = {"numpy side as checked": 0.0, "Keras step as checked": 0.0, "bounds and update tolerances": 0.0,
             "comparisons": 0.0}
    wrapped = [(stepper.Stepper, "numpy_step", "numpy side as checked"), (KerasStep, "step", "Keras step as checked"),
               (stepper.Stepper, "tolerances", "bounds and update tolerances"), (chunks, "summarise", "comparisons")]
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in wrapped]

    def timed(fn, part):
        def run(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[part] += time.perf_counter() - start
        return run
    for (owner, name, part), (_, _, fn) in zip(wrapped, originals):
        setattr(owner, name, timed(fn, part))
    try:
        start = time.perf_counter()
        report = check(make(), X, y, steps=steps)
        total = time.perf_counter() - start
    finally:
        for owner, name, fn in originals:
            setattr(owner, name, fn)
    assert report["ok"], report["first_mismatch"]
    spent["rest"] = total - sum(spent.values())
    return {part: 1e3 * t / steps for part, t in spent.items()}


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


FAULTS_PER_STEP = """
import resource, sys
import numpy as np
import numpy_impl, compare
if sys.argv[1] == "tuned":
    compare.tune_process()
from compare import check
rng = np.random.default_rng(0)
X, y = rng.normal(size=(128, 784)), rng.normal(size=(128, 10))
net = lambda: numpy_impl.Network(numpy_impl.glorot_uniform([784, 512, 512, 10], 0), ["relu", "relu", "linear"], 0.01)
check(net(), X, y, steps=10)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
check(net(), X, y, steps=20)
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
"""


def faults_per_step(setting, runs=3):
    """Minor page faults per checked 784-512-512-10 step, after 10 steps of warm-up, in fresh processes
    with compare.tune_process's malloc setting ("tuned") or glibc's defaults ("plain"): the median of runs."""
    counts = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", FAULTS_PER_STEP, setting], cwd=ROOT, capture_output=True,
                             text=True, env=dict(os.environ, PYTHONPATH=ROOT))
        counts.append(float(out.stdout.split()[-1]))
    return float(np.median(counts))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    rounds, reps = (3, 100) if args.quick else (7, 400)
    import compare
    compare.tune_process()
    import numpy_impl
    rows = []

    X, y = numpy_impl.seed_data()
    guide_steps = 400
    t = per_call({"tf": (keras_train_step([3, 2, 1], ["tanh", "linear"], X, y, jit=False), reps),
                  "xla": (keras_train_step([3, 2, 1], ["tanh", "linear"], X, y, jit=True), reps),
                  "numpy": (numpy_step(numpy_impl.seed_network(), X, y), reps * 10),
                  "checked": (checked_steps(numpy_impl.seed_network, X, y, guide_steps), 1)}, rounds)
    checked = t["checked"] / guide_steps
    rows += [("guide 3-2-1: Keras train step, tf.function", t["tf"], "µs"),
             ("guide 3-2-1: Keras train step, tf.function + XLA", t["xla"], "µs"),
             ("guide 3-2-1: numpy step", t["numpy"], "µs"),
             ("guide 3-2-1: checked step (synced)", checked, "µs"),
             ("  ratio to XLA step + numpy step (target ≤ 0.6)", checked / (t["xla"] + t["numpy"]), "×"),
             ("  ratio to tf.function step + numpy step", checked / (t["tf"] + t["numpy"]), "×")]

    rng = np.random.default_rng(0)
    sizes, activations = [784, 512, 512, 10], ["relu", "relu", "linear"]
    Xl, yl = rng.normal(size=(128, 784)), rng.normal(size=(128, 10))
    big = lambda: numpy_impl.Network(numpy_impl.glorot_uniform(sizes, 0), activations, 0.01)  # noqa: E731
    train, alone_numpy = keras_train_step(sizes, activations, Xl, yl, jit=False), numpy_step(big(), Xl, yl)
    separate = lambda: hide_combined(big())  # noqa: E731  the same network without forward_and_gradients
    big_steps = 10 if args.quick else 30
    t = per_call({"keras": (keras_train_step(sizes, activations, Xl, yl, jit=False), 5),
                  "numpy": (numpy_step(big(), Xl, yl), 5),
                  "side": (numpy_step(big(), Xl, yl, forward=True), 5),
                  "alternating": (lambda: (train(), alone_numpy()), 5),
                  "checked": (checked_steps(big, Xl, yl, big_steps), 1),
                  "separate": (checked_steps(separate, Xl, yl, big_steps), 1)}, rounds)
    big_check, alone = t["checked"] / big_steps, t["keras"] + t["numpy"]
    rows += [("784-512-512-10, batch 128: Keras train step", t["keras"], "µs"),
             ("784-512-512-10, batch 128: numpy step", t["numpy"], "µs"),
             ("784-512-512-10, batch 128: numpy step and a separate forward(X)", t["side"], "µs"),
             ("784-512-512-10, batch 128: both sides alternating in one loop", t["alternating"], "µs"),
             ("784-512-512-10, batch 128: checked step", big_check, "µs"),
             ("784-512-512-10, batch 128: checked step, no forward_and_gradients", t["separate"] / big_steps, "µs"),
             ("  ratio to Keras step + numpy step (target ≤ 1.5)", big_check / alone, "×"),
             ("  the same without forward_and_gradients", t["separate"] / big_steps / alone, "×"),
             ("  ratio to both sides alternating in one loop", big_check / t["alternating"], "×"),
             ("  both sides alternating / the two alone", t["alternating"] / alone, "×"),
             ("  Keras step + numpy step and forward(X) / the two alone (the separate forward's share)",
              (t["keras"] + t["side"]) / alone, "×")]
    parts = [parts_in_place(big, Xl, yl, big_steps) for _ in range(3 if args.quick else 5)]
    rows += [(f"  in place, {part} (median of {len(parts)} runs)", float(np.median([p[part] for p in parts])) * 1e3, "µs")
             for part in parts[0]]

    import_keras = min(wall([sys.executable, "-c", "import keras"]) for _ in range(2))
    cold = min(wall([sys.executable, "-m", "compare", "-q"]) for _ in range(2))
    rows += [("python -c 'import keras'", import_keras, "s"),
             ("python -m compare (100 steps, end to end)", cold, "s"),
             ("  ratio to import keras + 100 checked steps (target ≤ 1.5)", cold / (import_keras + checked * 1e-4),
              "×")]
    rows += [("peak RSS, 100 steps", peak_rss_mb(100), "MiB"), ("peak RSS, 10,000 steps", peak_rss_mb(10_000), "MiB")]
    rows += [("784-512-512-10: minor page faults a step, tune_process", faults_per_step("tuned"), ""),
             ("784-512-512-10: minor page faults a step, glibc's defaults", faults_per_step("plain"), "")]

    width = max(len(name) for name, _, _ in rows)
    print(f"{'measurement':<{width}}  {'value':>10}")
    for name, value, unit in rows:
        print(f"{name:<{width}}  {value:>10.3g} {unit}")


if __name__ == "__main__":
    main()
