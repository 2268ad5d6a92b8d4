"""python -m compare walkthrough --model cnn: a layered numpy network (numpy_impl/stack.py) to model.fit in five
stages, each measured against the check's own tolerances (compare/stack_check.py), on the first batch of 32.

1. each layer's forward pass, against the Keras layer on the same input;  2. the loss;  3. the hand-written
backprop, against tf.GradientTape through the Keras layers;  4. the optimizer's update;  5. the loop: the check
itself for one epoch, and model.fit over the same batches, which must end where Keras's own loop ends.
"""
import itertools

import numpy as np

from .walkthrough import kwargs_text, worst

BATCH = 32


# (layer class, what its move to Keras needs): the walkthrough names those of the network's own layers (found by a
# user's trial: the GRU's walkthrough had named a convolution's kernel and Flatten's order)
FORWARD_NEEDS = (
    ("Dense", "a Dense kernel (inputs, units)"),
    ("Conv2D", "a Conv2D kernel (HH, WW, C, F), images channels last"),
    ("Conv1D", "a Conv1D kernel (K, C, F)"),
    ("Flatten", "Flatten in (H, W, C) order"),
    ("LSTM", "an LSTM's gates in Keras's order (i, f, c, o), kernel (D, 4H), recurrent kernel (H, 4H)"),
    ("GRU", "a GRU's gates (z, r, h), bias (2, 3H) with reset_after"),
    ("SimpleRNN", "a SimpleRNN's kernel (D, H) and recurrent kernel (H, H)"),
    ("BatchNormalization", "BatchNormalization's gamma, beta, moving mean and variance, ε = 1e-3"),
    ("MultiHeadAttention", "attention kernels (D, heads, key_dim), the output kernel (heads, key_dim, D)"),
    ("Embedding", "the embedding table (ids, features)"),
)


def stages(spec):
    """The five stages' (title, numpy code, Keras code, what the move needs) for this network."""
    from keras_impl.model import LOSSES, OPTIMIZERS
    chain = " → ".join(d["class_name"] for d in spec["layers"])
    optimizer = f"keras.optimizers.{OPTIMIZERS[spec['optimizer']].__name__}(learning_rate, " \
                f"{kwargs_text(spec['optimizer_config'])})".replace(", )", ")")
    kinds = {d["class_name"] for d in spec["layers"]}
    needs = [text for kind, text in FORWARD_NEEDS if kind in kinds]  # what this network's layers need, no other's
    return [
        ("each layer's forward pass", "network.forward(X)", f"keras layer by layer: {chain}",
         "each layer's weights in Keras's shapes (" + ", ".join(needs) + ")"),
        (f"the loss ({spec['loss']})", "network.gradients(X, y)[0]",
         f"keras.losses.{LOSSES[spec['loss']].__name__}()(y, model(X))",
         "Keras takes a softmax's input (the logits) for the cross-entropy, and averages over the batch"),
        ("the hand-written backprop", "network.gradients(X, y)[1]", "tf.GradientTape over the loss",
         "the gradients in model.trainable_weights order and Keras's shapes"),
        (f"the update ({spec['optimizer']})", "network.apply_gradients(grads)", f"{optimizer}.apply_gradients",
         "set_floatx('float64') before the optimizer exists; Keras rounds some constants through float32"),
        ("the loop", "one epoch of (forward, backprop, update) in batches of 32",
         "model.compile(optimizer, loss); model.fit(X, y, batch_size=32, shuffle=False)",
         "the same batches in the same order, so fit takes the same steps"),
    ]


def run(make, X, y):
    """Yield (stage, numpy code, Keras code, conversion, largest |diff|, tolerance there, ok) for each stage."""
    import keras_impl  # noqa: F401  first: it sets the backend and quiets TensorFlow's start-up lines
    import tensorflow as tf

    from . import data
    from .checking import check
    from .loop import batches
    from .rounding import UNIT_ROUNDOFF
    from .sequence import DRIFT_LIMIT
    from .stack_check import LayerStepper, Sides, describe, sides_for
    network = make()
    X = np.asarray(X, dtype=float)
    flat, y, _ = data.checked(X.reshape(len(X), -1), y)
    spec = describe(network, X, y)
    Xk = np.ascontiguousarray(Sides.moved(flat.reshape(X.shape), spec["layout"]))
    sides = sides_for(spec, Xk.shape, "float64")
    texts = stages(spec)
    stepper = LayerStepper(network, spec, sides, UNIT_ROUNDOFF["float64"], False)
    Xb, yb = Xk[:BATCH], y[:BATCH]
    from keras_impl.layer import seed_state
    masks = sides.step.masks(BATCH)
    drawn = [seed_state(layer) for layer in sides.layers]
    numpy = stepper.numpy_step(Xb, yb, masks)
    keras = sides.step.step(numpy["weights"], Xb, yb, numpy["forward"])
    tol = stepper.tolerances(Xb, yb, numpy, keras, drawn)
    tr = sides.trainable
    yield (*texts[0], *worst(numpy["forward"], keras["outputs"], tol["forward"]))
    yield (*texts[1], *worst([numpy["loss"]], [keras["loss"]], [tol["loss"]]))
    yield (*texts[2], *worst(numpy["grads"], keras["grads"], tol["grads"]))
    yield (*texts[3], *worst([numpy["updated"][k] for k in tr], [keras["weights_out"][k] for k in tr], tol["updated"]))
    # The loop: the check for one epoch on a fresh network; then model.fit over that epoch's batches against
    # Keras's own training loop on them (Keras against Keras: the same arithmetic, so DRIFT_LIMIT is ample).
    steps = -(-len(X) // BATCH)
    report = check(make(), X, y, steps=steps, batch_size=BATCH)
    order = np.concatenate([rows for _, rows in itertools.islice(batches(len(X), BATCH, 0), steps)])
    weights = make().get_weights()
    fitted, looped = _fit(spec, Xk[order], y[order], weights), _loop(spec, Xk[order], y[order], weights, tf)
    fit_ok = worst(fitted, looped, [DRIFT_LIMIT * max(np.abs(w).max() for w in looped)] * len(looped))[2]
    shown = report["first_mismatch"] or report["max_diff"]["weights"]
    diff, tolerance = (shown.get(k) if isinstance(shown.get(k), float) else float("nan") for k in ("abs_diff",
                                                                                                     "tolerance"))
    yield (f"{texts[4][0]} ({steps} steps)", *texts[4][1:], diff, tolerance, report["ok"] and fit_ok)


def _model(spec, weights, shape):
    from keras_impl.model import LOSSES, OPTIMIZERS
    from keras_impl.stack import build
    model = build(spec["layers"], shape)
    model.set_weights(weights)
    optimizer = OPTIMIZERS[spec["optimizer"]](learning_rate=spec["learning_rate"], **spec["optimizer_config"])
    return model, LOSSES[spec["loss"]](**spec["loss_config"]), optimizer


def _fit(spec, X, y, weights):
    """model.fit over X, y in order, batches of 32, one epoch: the weights it ends on."""
    model, loss, optimizer = _model(spec, weights, X.shape[1:])
    model.compile(optimizer=optimizer, loss=loss)
    model.fit(X, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    return model.get_weights()


def train_step(spec, weights, shape):
    """(model, step): the Keras model of spec's layers from `weights`, and its own compiled training step
    step(xb, yb) (model(xb, training=True), the loss, tf.GradientTape, apply_gradients) → the loss."""
    import tensorflow as tf
    model, loss_fn, optimizer = _model(spec, weights, shape)

    @tf.function
    def step(xb, yb):
        with tf.GradientTape() as tape:
            loss = loss_fn(yb, model(xb, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss
    return model, step


def _loop(spec, X, y, weights, tf):
    """Keras's own training loop over the same batches (tf.GradientTape and apply_gradients): its end weights."""
    model, step = train_step(spec, weights, X.shape[1:])
    for start in range(0, len(X), BATCH):
        step(tf.constant(X[start:start + BATCH]), tf.constant(y[start:start + BATCH]))
    return model.get_weights()
