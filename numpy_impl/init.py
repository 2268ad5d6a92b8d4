"""Seeded initial weights in the guide's (units, inputs) convention."""
import numpy as np


def glorot_uniform(sizes, seed, dtype=np.float64):
    """[W0, b0, W1, b1, ...] for layer widths `sizes` (input included): W ~ U(−l, l), l = √(6/(inputs + units)), b = 0.

    Keras's defaults for Dense (GlorotUniform kernel, zero bias), drawn here by numpy's seeded
    generator and then loaded into Keras: the two sides never rely on two generators agreeing.
    """
    rng = np.random.default_rng(seed)
    weights = []
    for inputs, units in zip(sizes[:-1], sizes[1:]):
        limit = np.sqrt(6.0 / (inputs + units))
        weights += [rng.uniform(-limit, limit, size=(units, inputs)).astype(dtype), np.zeros(units, dtype=dtype)]
    return weights
