"""Golden trajectories: record the Keras side once, check numpy networks against the file without Keras.

A file is an .npz (loaded with allow_pickle=False) holding, for a Keras run trained on its own from
the network's initial weights: per step the weights entering it (w0, w1, ...: W0, b0, ...), each
layer's pre-activation and output (z0, a0, ...: one row per batch row, batches one after another),
the loss and the gradients (g0, g1, ...: dW0, db0, ... in reports and diff), and the final weights;
plus the data (X, y), the batches (rows, row_offsets), the config and the versions of Keras, its
backend, numpy and this tool. Format v2 adds
`sha256`, a content hash of every other array (content_hash). Files are saved compressed
(np.savez_compressed); uncompressed ones, as earlier versions saved them, load as well.

A golden file is the reference a network is judged by, so `load` trusts nothing in it. It refuses
with one line (InputError: exit 2) a file that is missing, not an .npz, of another format, edited
after it was recorded (the hash), damaged in any field (the config, an array's name, dtype or shape,
rows out of range), or inconsistent with itself: every recorded value is recomputed from the file's
own earlier values within a rounding bound (the checks below). A value may be non-finite only where
that recomputation is non-finite too, so the recording of a diverging run still loads.
"""
from .consistency import consistency_problem
from .diff import diff
from .load import GoldenReference, load
from .record import FORMAT, FORMAT_V1, HASH, content_hash, record, save


def open_file(path):
    """The golden file at `path`: a LayeredGolden for a network with layers (golden/layered.py), else a
    GoldenReference; a one-line InputError for anything else."""
    import numpy as np

    from .layered import FORMAT as LAYERED, LayeredGolden
    try:
        with np.load(str(path), allow_pickle=False) as f:
            layered = "format" in f.files and str(f["format"]) == LAYERED
    except Exception:  # noqa: BLE001 - not an .npz: GoldenReference says what it is
        layered = False
    return LayeredGolden(path) if layered else GoldenReference(path)

__all__ = ["FORMAT", "FORMAT_V1", "GoldenReference", "HASH", "consistency_problem", "content_hash", "diff", "load",
           "open_file", "record", "save"]
