"""The single-layer check's cost on one Conv2D (batch 16, 32×32×16 → 32 filters 3×3, 'same'), as ratios within
one run: the check's own cost (check_layer's time minus the time spent inside the numpy layer's forward and
backward during that same call) against the Keras layer's own forward plus VJP (one eager call under
tf.GradientTape, as the check makes it). Rounds interleave the two, and medians are reported.

    python benchmarks/layer_conv2d.py [ROUNDS]
"""
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from compare import adapters, check_layer  # noqa: E402
from keras_impl import convert, layer as keras_layer  # noqa: E402
from numpy_impl import layers as L  # noqa: E402


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(rounds):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 16, 32, 32))                 # NCHW, as the course writes it
    w, b = rng.standard_normal((32, 16, 3, 3)) * 0.1, rng.standard_normal(32)
    conv = adapters.conv(L.conv_forward, L.conv_backward, w, b, {"stride": 1, "pad": "same"})
    xk = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    klayer = keras_layer.build("Conv2D", conv.keras_layer["config"], xk.shape)
    klayer.set_weights([convert.conv_kernel_to_keras(w), b])
    dout = rng.standard_normal((16, 32, 32, 32))

    inside = []  # seconds spent in the numpy layer's own methods during one check
    for method in ("forward", "backward"):
        fn = getattr(conv, method)

        def timed_method(*args, fn=fn, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                inside.append(time.perf_counter() - start)
        setattr(conv, method, timed_method)

    runs = {"keras": [], "numpy": [], "check": [], "own": []}
    for _ in range(rounds + 1):  # the first round warms up, and is dropped
        runs["keras"].append(timed(lambda: keras_layer.forward_and_vjp(klayer, xk, dout)))
        inside.clear()
        runs["check"].append(timed(lambda: check_layer(conv, x)))
        runs["numpy"].append(sum(inside))
        runs["own"].append(runs["check"][-1] - runs["numpy"][-1])
    med = {k: float(np.median(v[1:])) for k, v in runs.items()}
    own = med["own"]
    print(f"Conv2D batch 16, 32x32x16 -> 32, 3x3 'same', float64, {rounds} rounds (medians):")
    print(f"  Keras layer forward + VJP        {med['keras'] * 1e3:8.1f} ms")
    print(f"  numpy layer forward + backward   {med['numpy'] * 1e3:8.1f} ms  (inside the check)")
    print(f"  check_layer, all of it           {med['check'] * 1e3:8.1f} ms")
    print(f"  the check's own cost             {own * 1e3:8.1f} ms = {own / med['keras']:.2f} x Keras's forward + VJP")
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 5))
