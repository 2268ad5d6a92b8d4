"""The guide's 3-2-1 tanh network in plain numpy, in the guide's own conventions."""
from .guide import guide_as_written, seed_data, seed_network, seed_weights
from .init import glorot_uniform
from .network import Network

__all__ = ["Network", "glorot_uniform", "guide_as_written", "seed_data", "seed_network", "seed_weights"]
