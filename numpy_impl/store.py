"""A numpy network in one .npz file, without pickle: its weights (W0, b0, ... in the guide's (units,
inputs) convention), its optimizer's state (state_<slot>_<i>) and a JSON header with everything else
(activations, learning rate, loss, optimizer, their options, the dtype and the optimizer's step count)."""
import json

import numpy as np

from .network import Network

FORMAT = "numpy-keras-compare network 1"


def save(network, path):
    """Write `network` (a numpy_impl.Network) to `path` (.npz)."""
    weights = network.get_weights()
    state, iterations = network.optimizer_state()
    header = {"format": FORMAT, "activations": network.activations, "learning_rate": network.learning_rate,
              "loss": network.loss, "loss_config": network.loss_config, "loss_scale": network.loss_scale,
              "optimizer": network.optimizer, "optimizer_config": network.optimizer_config,
              "dtype": np.dtype(network.dtype).name, "layers": len(weights) // 2, "iterations": iterations}
    arrays = {f"{'W' if i % 2 == 0 else 'b'}{i // 2}": w for i, w in enumerate(weights)}
    for i, slots in enumerate(state or []):
        arrays.update({f"state_{slot}_{i}": value for slot, value in slots.items()})
    with open(path, "wb") as f:
        np.savez(f, header=np.array(json.dumps(header)), **arrays)


def load(path):
    """The numpy_impl.Network saved in `path`; a file that is not one is refused, naming what it holds."""
    try:
        with np.load(path, allow_pickle=False) as f:
            files = dict(f)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path!r} is not a numpy network file (.npz, written by numpy_impl.store.save): {exc}")
    try:
        header = json.loads(str(files.pop("header")))
        assert header["format"] == FORMAT
    except (KeyError, ValueError, AssertionError, TypeError):
        raise ValueError(f"{path!r} is not a numpy network file: it holds {', '.join(sorted(files)) or 'nothing'}; "
                         f"expected a header of format {FORMAT!r}") from None
    n = header["layers"]
    weights = [files[f"{kind}{l}"] for l in range(n) for kind in ("W", "b")]
    network = Network(weights, header["activations"], header["learning_rate"], loss=header["loss"],
                      loss_config=header["loss_config"], optimizer=header["optimizer"],
                      optimizer_config=header["optimizer_config"], dtype=header["dtype"],
                      loss_scale=header["loss_scale"])
    if header["iterations"]:
        state = [{} for _ in weights]
        for key, value in files.items():
            if key.startswith("state_"):
                slot, i = key[len("state_"):].rsplit("_", 1)
                state[int(i)][slot] = value
        network.set_optimizer_state(state, header["iterations"])
    return network
