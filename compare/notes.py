"""What the report says about Keras's details that a numpy side must reproduce."""
from numpy_impl.optimizers import OPTIMIZERS, f32

from .rules import optimizers as optimizer_rules


def float32_casts(spec, dtype):
    """A note for each hyper-parameter that Keras rounds through float32 in this configuration (its
    optimizer's `casts`, compare/rules/optimizers.py). As a cause of a mismatch it is a hypothesis tested
    against the numbers (compare/diagnosis/updates.py, "no float32 cast"), never a sentence appended."""
    if dtype != "float64":
        return []
    config = {**OPTIMIZERS[spec["optimizer"]].defaults, **spec["optimizer_config"]}
    out = []
    for name, where in optimizer_rules.get(spec["optimizer"])["casts"].items():
        value = config.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value and f32(value) != value:
            fact = (f"Keras uses {spec['optimizer']} {name}={value!r} as {f32(value)!r} "
                    f"{(where + ' ') if where else ''}(cast through float32 on TensorFlow)")
            out.append(f"{fact}; numpy_impl does the same")
    return out


def for_spec(spec, dtype, backend="tensorflow"):
    """Notes on the loss and optimizer: logits taken from a sigmoid/softmax layer, float32-cast constants."""
    notes = []
    last, loss = spec["activations"][-1], spec["loss"]
    cross_entropy_after_probabilities = (loss in ("binary_crossentropy", "categorical_crossentropy")
                                         and last in ("sigmoid", "softmax"))
    if cross_entropy_after_probabilities and backend != "tensorflow":
        notes.append(f"Keras on {backend} computes {loss} from the {last} layer's probabilities, clipped to "
                     "[1e-7, 1 − 1e-7]; on TensorFlow it uses the layer's logits instead. numpy_impl follows "
                     "TensorFlow, so where the clip is active the two differ")
    elif cross_entropy_after_probabilities:
        formula = "sigmoid" if loss == "binary_crossentropy" else "softmax"
        notes.append(f"Keras computes {loss} from the pre-activation of the last ({last}) layer with the "
                     f"{formula} cross-entropy on logits (no clipping), whatever from_logits says")
        if (loss, last) in (("binary_crossentropy", "softmax"), ("categorical_crossentropy", "sigmoid")):
            notes.append(f"{loss} after a {last} layer: Keras applies the {formula} formula to the {last}'s "
                         "logits, which is rarely what was meant")
    return notes + (float32_casts(spec, dtype) if backend == "tensorflow" else [])
