"""python -m compare export | import: a numpy network as a saved Keras model, and back (keras_impl/saving.py)."""
import os

from ..errors import InputError
from . import program
from .args import Parser


def export(argv):
    """python -m compare export OUT.keras [--impl MODULE:FACTORY]: the network (weights, architecture, loss,
    optimizer and, for a numpy_impl.Network, the optimizer's state) as a .keras file."""
    p = Parser(prog=f"{program()} export", description=export.__doc__)
    p.add_argument("out", metavar="OUT.keras", help="the Keras model file to write")
    p.add_argument("--impl", metavar="MODULE:FACTORY", default="numpy_impl:seed_network",
                   help="the network (default: the guide's seed_network)")
    args = p.parse_args(argv)
    if not args.out.endswith(".keras"):
        raise InputError(f"export writes a .keras file; received {args.out!r}")
    _writable(args.out)
    from .. import protocol
    network = as_numpy_network(protocol.load_factory(args.impl))
    from ..environment import use_backend
    use_backend("tensorflow")
    from keras_impl import saving
    try:
        saving.export(network, args.out)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    print(f"wrote {args.out}: {'-'.join(map(str, _sizes(network)))} [{', '.join(network.activations)}], "
          f"loss {network.loss}, optimizer {network.optimizer} after {network.optimizer_state()[1]} steps")
    return 0


def import_(argv):
    """python -m compare import MODEL.keras OUT.npz: the numpy network of a saved Keras model (its weights bit
    for bit, its loss, optimizer and the optimizer's state), for numpy_impl.store.load."""
    p = Parser(prog=f"{program()} import", description=import_.__doc__)
    p.add_argument("model", metavar="MODEL.keras", help="a Keras model file of Dense layers")
    p.add_argument("out", metavar="OUT.npz", help="the numpy network file to write")
    args = p.parse_args(argv)
    if not os.path.isfile(args.model):
        raise InputError(f"no Keras model file at {args.model!r}")
    if not args.model.endswith(".keras"):
        raise InputError(f"import reads a .keras file; received {args.model!r}")
    import zipfile
    if not zipfile.is_zipfile(args.model):
        raise InputError(f"{args.model!r} is not a Keras model file (a .keras file is a zip archive; this one holds "
                         f"{os.path.getsize(args.model)} bytes of something else)")
    _writable(args.out)
    from ..environment import use_backend
    use_backend("tensorflow")
    from keras_impl import saving
    from numpy_impl import store
    try:
        network = saving.load(args.model)
    except ValueError as exc:
        raise InputError(f"cannot import {args.model!r}: {exc}") from None
    except Exception as exc:  # Keras's own reading of a damaged or foreign file
        raise InputError(f"cannot read {args.model!r} as a Keras model: {type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    store.save(network, args.out)
    print(f"wrote {args.out}: {'-'.join(map(str, _sizes(network)))} [{', '.join(network.activations)}], "
          f"loss {network.loss}, optimizer {network.optimizer} after {network.optimizer_state()[1]} steps")
    return 0


def as_numpy_network(network):
    """A numpy_impl.Network as it is; any other network of the protocol rebuilt as one from its weights and
    declared loss and optimizer (its optimizer's state is not visible: the export starts it afresh)."""
    from numpy_impl import Network

    from .. import protocol
    if isinstance(network, Network):
        return network
    activations = protocol.attribute(network, "activations", None)
    if not isinstance(activations, (list, tuple)):
        raise InputError(f"network.activations must be a list of names; received {activations!r}")
    spec = protocol.training_spec(network)
    weights = protocol.weights_of(network, len(activations))
    try:
        return Network(weights, activations, protocol.attribute(network, "learning_rate", None), loss=spec["loss"],
                       loss_config=spec["loss_config"], optimizer=spec["optimizer"],
                       optimizer_config=spec["optimizer_config"], loss_scale=spec["loss_scale"])
    except (ValueError, TypeError) as exc:
        raise InputError(str(exc)) from None


def _sizes(network):
    weights = network.get_weights()
    return [weights[0].shape[1]] + [w.shape[0] for w in weights[0::2]]


def _writable(path):
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise InputError(f"no folder {folder!r} to write {path!r} into")
