"""python -m compare walkthrough: the guide's numpy code to model.fit in five stages, each measured.

Each stage runs the numpy side and its Keras counterpart from the same weights and prints the
largest difference next to the tolerance of compare's rounding-error bound (docs/tolerances.md).
"""
import numpy as np


STAGES = [
    ("the forward pass", "hidden = tanh(X @ W0.T + b0); predicted = hidden @ W1.T + b1", "model(X)",
     "Keras stores each kernel transposed: kernel = W.T (keras_impl.to_keras), and the model is float64"),
    ("the mean squared error", "np.mean((predicted - y) ** 2)", "keras.losses.MeanSquaredError()(y, model(X))",
     "the reduction: Keras averages over the last axis, then over the batch, which is the mean over all elements"),
    ("the hand-written backprop", "network.gradients(X, y): delta = 2 (ŷ − y) / N, then back through W and tanh'",
     "tf.GradientTape over the loss", "the gradients come back as kernels (inputs, units): transpose them"),
    ("the update", "w ← w − learning_rate · g", "keras.optimizers.SGD(learning_rate).apply_gradients",
     "set_floatx('float64') before the optimizer exists, or the learning rate stays float32"),
    ("the loop", "N × (forward, backprop, update)", "model.fit(X, y, batch_size=N_rows, epochs=N, shuffle=False)",
     "one full batch per epoch and no shuffling, so fit takes the same steps"),
]


def run(network, X, y, epochs=100):
    """Yield (stage, numpy code, Keras code, conversion, largest |diff|, tolerance there, ok) for each stage."""
    import keras_impl  # first: it sets the backend and quiets TensorFlow's start-up lines
    import keras
    import tensorflow as tf

    from compare import data, protocol, tolerance
    from compare.rounding import UNIT_ROUNDOFF
    from compare.sequence import DRIFT_LIMIT
    X, y, _ = data.checked(X, y)
    spec = protocol.describe(network, X.shape[1], y.shape[1])
    weights = protocol.weights_of(network, len(spec["activations"]))
    u = UNIT_ROUNDOFF["float64"]
    model = keras_impl.build_model(spec["sizes"], spec["activations"])
    model.set_weights(keras_impl.to_keras(weights))
    step = keras_impl.KerasStep(keras_impl.build_model(spec["sizes"], spec["activations"]), spec["learning_rate"])
    ref = step.step(weights, X, y)

    def worst(mine, theirs, tols):
        diffs = [np.abs(np.asarray(m, float) - np.asarray(k, float)) for m, k in zip(mine, theirs)]
        i = int(np.argmax([d.max() for d in diffs]))
        j = np.unravel_index(int(np.argmax(diffs[i])), diffs[i].shape)
        t = np.broadcast_to(tols[i], diffs[i].shape)[j]
        return float(diffs[i][j]), float(t), bool(all(np.all(d <= np.broadcast_to(s, d.shape))
                                                       for d, s in zip(diffs, tols)))

    call = protocol.call
    forward = protocol.checked_list(call("network.forward(X)", network.forward, protocol.read_only(X.copy())),
                                    [a.shape for a in ref["activations"]], "network.forward(X)")
    tol = tolerance.step_tolerances(weights, spec["activations"], X, y, ref["zs"], ref["activations"], u, mine=forward)
    yield (*STAGES[0], *worst([forward[-1]], [np.asarray(model(X))], [tol["forward"][-1]]))
    loss, grads = protocol.checked_gradients(call("network.gradients(X, y)", network.gradients,
                                                  protocol.read_only(X.copy()), protocol.read_only(y.copy())),
                                             [w.shape for w in weights])
    keras_loss = float(keras.losses.MeanSquaredError()(y, model(X))) if spec["loss"] == "mse" else ref["loss"]
    yield (*STAGES[1], *worst([loss], [keras_loss], [tol["loss"]]))
    with tf.GradientTape() as tape:
        value = step.loss_fn(y, model(X))
    tape_grads = keras_impl.from_keras([g.numpy() for g in tape.gradient(value, model.trainable_variables)])
    yield (*STAGES[2], *worst(grads, tape_grads, tol["grads"]))
    call("network.apply_gradients(grads)", network.apply_gradients, grads)
    after = protocol.weights_of(network, len(spec["activations"]))
    from .update_tolerance import UpdateTolerance
    update_tol = UpdateTolerance(spec["optimizer"], spec["optimizer_config"], spec["learning_rate"], u).step(
        weights, ref["grads"], tol["grads"], ref["weights_out"], spec["learning_rate"])
    yield (*STAGES[3], *worst(after, ref["weights_out"], update_tol))
    for _ in range(epochs - 1):
        _, grads = protocol.checked_gradients(call("network.gradients(X, y)", network.gradients, protocol.read_only(
            X.copy()), protocol.read_only(y.copy())), [w.shape for w in weights])
        call("network.apply_gradients(grads)", network.apply_gradients, grads)
    model.compile(optimizer=step.optimizer.__class__(learning_rate=spec["learning_rate"],
                                                     **spec["optimizer_config"]), loss=step.loss_fn)
    model.fit(X, y, batch_size=len(X), epochs=epochs, shuffle=False, verbose=0)
    final, fitted = protocol.weights_of(network, len(spec["activations"])), keras_impl.from_keras(model.get_weights())
    drift = [DRIFT_LIMIT * max(np.abs(w).max() for w in fitted)] * len(final)
    yield (f"{STAGES[4][0]} ({epochs} epochs)", *STAGES[4][1:], *worst(final, fitted, drift))
