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


def run(make, X, y, epochs=100):
    """Yield (stage, numpy code, Keras code, conversion, largest |diff|, tolerance there, ok) for each stage.

    make() returns a fresh network (the stages 1–4 use one, the loop another). Every stage is held to the
    check's own tolerances (compare/stepper.py), with the network's declared loss and optimizer; the loop
    is the check itself, free-running for `epochs` steps, and model.fit must end on Keras's own weights.
    """
    import keras_impl  # first: it sets the backend and quiets TensorFlow's start-up lines
    import tensorflow as tf

    from . import data, environment, protocol
    from .checking import check
    from .rounding import UNIT_ROUNDOFF
    from .sequence import DRIFT_LIMIT
    from .stepper import step_bounds
    from .update_tolerance import UpdateTolerance
    network = make()
    X, y, _ = data.checked(X, y)
    spec = protocol.describe(network, X.shape[1], y.shape[1])
    weights = protocol.weights_of(network, len(spec["activations"]))
    u, lr = UNIT_ROUNDOFF["float64"], spec["learning_rate"]
    model = keras_impl.build_model(spec["sizes"], spec["activations"])
    model.set_weights(keras_impl.to_keras(weights))
    step = environment.keras_step(spec, "float64")
    keras = step.step(weights, X, y)

    def worst(numpy_values, keras_values, tols):
        diffs = [np.abs(np.asarray(m, float) - np.asarray(k, float)) for m, k in zip(numpy_values, keras_values)]
        i = int(np.argmax([d.max() for d in diffs]))
        j = np.unravel_index(int(np.argmax(diffs[i])), diffs[i].shape)
        t = np.broadcast_to(tols[i], diffs[i].shape)[j]
        return float(diffs[i][j]), float(t), bool(all(np.all(d <= np.broadcast_to(s, d.shape))
                                                       for d, s in zip(diffs, tols)))

    call = protocol.call
    forward = protocol.checked_list(call("network.forward(X)", network.forward, protocol.read_only(X.copy())),
                                    [a.shape for a in keras["activations"]], "network.forward(X)")
    tol = step_bounds(spec, keras, X, y, u, "tensorflow", numpy_forward=forward)
    model_outputs = [np.asarray(a) for a in keras_impl.layer_outputs(model, X)]
    yield (*STAGES[0], *worst(forward, model_outputs, tol["forward"]))
    loss, grads = protocol.checked_gradients(call("network.gradients(X, y)", network.gradients,
                                                  protocol.read_only(X.copy()), protocol.read_only(y.copy())),
                                             [w.shape for w in weights])
    yield (*STAGES[1], *worst([loss], [float(step.loss(y, model(X)))], [tol["loss"]]))
    with tf.GradientTape() as tape:
        value = step.loss(y, model(X))
    tape_grads = keras_impl.from_keras([g.numpy() for g in tape.gradient(value, model.trainable_variables)])
    yield (*STAGES[2], *worst(grads, tape_grads, tol["grads"]))
    call("network.apply_gradients(grads)", network.apply_gradients, grads)
    after = protocol.weights_of(network, len(spec["activations"]))
    update_tol = UpdateTolerance(spec["optimizer"], spec["optimizer_config"], lr, u).step(
        weights, keras["grads"], tol["grads"], keras["weights_out"], lr)
    yield (*STAGES[3], *worst(after, keras["weights_out"], update_tol))
    # The loop: the check itself, free-running, on a fresh network; and fit must end where Keras's own
    # steps end (Keras against Keras: the same arithmetic, so DRIFT_LIMIT is ample).
    report = check(make(), X, y, steps=epochs, free_running=True)
    step.reset(lr)
    keras_weights = weights
    for _ in range(epochs):
        keras_weights = step.step(keras_weights, X, y)["weights_out"]
    model.set_weights(keras_impl.to_keras(weights))
    model.compile(optimizer=step.optimizer.__class__(learning_rate=lr, **spec["optimizer_config"]),
                  loss=step.loss_fn if step.loss_scale == 1.0 else step.loss)
    model.fit(X, y, batch_size=len(X), epochs=epochs, shuffle=False, verbose=0)
    fitted = keras_impl.from_keras(model.get_weights())
    fit_ok = worst(fitted, keras_weights, [DRIFT_LIMIT * max(np.abs(w).max() for w in keras_weights)] * len(fitted))[2]
    shown = report["first_mismatch"] or report["max_diff"]["weights"]  # the first mismatch, else the weights
    diff, tolerance = (shown.get(k) if isinstance(shown.get(k), float) else float("nan") for k in ("abs_diff",
                                                                                                     "tolerance"))
    yield (f"{STAGES[4][0]} ({epochs} epochs)", *STAGES[4][1:], diff, tolerance, report["ok"] and fit_ok)
