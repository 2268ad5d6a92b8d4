"""python -m compare walkthrough: a numpy network's code to model.fit in five stages, each measured.

Each stage runs the numpy side and its Keras counterpart from the same weights and prints the
largest difference next to the tolerance of compare's rounding-error bound (docs/tolerances.md).
"""
import numpy as np


def stages(spec, rows):
    """The five stages' (title, numpy code, Keras code, what the move needs), written for this network: its
    layers and activations, its loss and optimizer with their options, its number of rows."""
    from keras_impl.model import LOSSES, OPTIMIZERS
    names = spec["activations"]
    layers = "; ".join(f"a{l} = {name}({'X' if l == 0 else f'a{l - 1}'} @ W{l}.T + b{l})"
                       for l, name in enumerate(names))
    loss, config, scale = spec["loss"], spec["loss_config"], spec.get("loss_scale", 1.0)
    keras_loss = f"keras.losses.{LOSSES[loss].__name__}({kwargs_text(config)})"
    scaled = f"{scale:g} × " if scale != 1.0 else ""
    logits = (" Keras takes the last layer's pre-activation (the logits) for the cross-entropy after a "
              f"{names[-1]}, whatever from_logits says" if loss.endswith("crossentropy") and names[-1] in
              ("sigmoid", "softmax") else "")
    optimizer = f"keras.optimizers.{OPTIMIZERS[spec['optimizer']].__name__}(learning_rate, " \
                f"{kwargs_text(spec['optimizer_config'])})".replace(", )", ")")
    return [
        ("the forward pass", layers, "model(X)",
         "Keras stores each kernel transposed: kernel = W.T (keras_impl.to_keras), and the model is float64"),
        (f"the loss ({loss})", "network.gradients(X, y)[0]", f"{scaled}{keras_loss}(y, model(X))",
         (f"the declared reduction {config['reduction']!r}" if config.get("reduction") else
          "the reduction: Keras averages each row's loss over the batch (sum_over_batch_size)") + "." + logits),
        ("the hand-written backprop", "network.gradients(X, y)[1]", "tf.GradientTape over the loss",
         "the gradients come back as kernels (inputs, units): transpose them"),
        (f"the update ({spec['optimizer']})", "network.apply_gradients(grads)", f"{optimizer}.apply_gradients",
         "set_floatx('float64') before the optimizer exists, or the learning rate stays float32; Keras rounds "
         "some constants through float32 (docs/backends.md)"),
        ("the loop", "N × (forward, backprop, update)",
         f"model.fit(X, y, batch_size={rows}, epochs=N, shuffle=False)",
         "one full batch per epoch and no shuffling, so fit takes the same steps"),
    ]


def worst(numpy_values, keras_values, tols):
    """(largest |diff|, the tolerance at that element, whether every element is within its tolerance)."""
    diffs = [np.abs(np.asarray(m, float) - np.asarray(k, float)) for m, k in zip(numpy_values, keras_values)]
    i = int(np.argmax([d.max() if d.size else 0.0 for d in diffs]))
    j = np.unravel_index(int(np.argmax(diffs[i])), diffs[i].shape)
    t = np.broadcast_to(tols[i], diffs[i].shape)[j]
    return float(diffs[i][j]), float(t), bool(all(np.all(d <= np.broadcast_to(s, d.shape))
                                                   for d, s in zip(diffs, tols)))


def kwargs_text(config):
    return ", ".join(f"{k}={v!r}" for k, v in config.items())


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
    texts = stages(spec, len(X))
    u, lr = UNIT_ROUNDOFF["float64"], spec["learning_rate"]
    model = keras_impl.build_model(spec["sizes"], spec["activations"])
    model.set_weights(keras_impl.to_keras(weights))
    step = environment.keras_step(spec, "float64")
    keras = step.step(weights, X, y)

    call = protocol.call
    forward = protocol.checked_list(call("network.forward(X)", network.forward, protocol.read_only(X.copy())),
                                    [a.shape for a in keras["activations"]], "network.forward(X)")
    tol = step_bounds(spec, keras, X, y, u, "tensorflow", numpy_forward=forward)
    model_outputs = [np.asarray(a) for a in keras_impl.layer_outputs(model, X)]
    yield (*texts[0], *worst(forward, model_outputs, tol["forward"]))
    loss, grads = protocol.checked_gradients(call("network.gradients(X, y)", network.gradients,
                                                  protocol.read_only(X.copy()), protocol.read_only(y.copy())),
                                             [w.shape for w in weights])
    yield (*texts[1], *worst([loss], [float(step.loss(y, model(X)))], [tol["loss"]]))
    with tf.GradientTape() as tape:
        value = step.loss(y, model(X))
    tape_grads = keras_impl.from_keras([g.numpy() for g in tape.gradient(value, model.trainable_variables)])
    yield (*texts[2], *worst(grads, tape_grads, tol["grads"]))
    call("network.apply_gradients(grads)", network.apply_gradients, grads)
    after = protocol.weights_of(network, len(spec["activations"]))
    update_tol = UpdateTolerance(spec["optimizer"], spec["optimizer_config"], lr, u).step(
        weights, keras["grads"], tol["grads"], keras["weights_out"], lr)
    yield (*texts[3], *worst(after, keras["weights_out"], update_tol))
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
    yield (f"{texts[4][0]} ({epochs} epochs)", *texts[4][1:], diff, tolerance, report["ok"] and fit_ok)
