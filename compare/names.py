"""The names reports give the compared quantities and tensors: one place for them."""

# The quantities compared at each step, in the order of the comparison's summary table.
QUANTITIES = ("weights", "forward", "loss", "gradient")


def weight_names(count, prefix=""):
    """['W0', 'b0', 'W1', 'b1', ...] with an optional prefix ('d' for gradients)."""
    return [f"{prefix}{'W' if i % 2 == 0 else 'b'}{i // 2}" for i in range(count)]


def layer_output_names(count):
    """['a0', 'a1', ...]: each layer's output."""
    return [f"a{l}" for l in range(count)]
