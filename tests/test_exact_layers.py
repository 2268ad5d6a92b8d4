"""The exact referee's layers (compare/exact_layers.py) against Keras's own autodiff: every layer kind the check
accepts, in configurations the project's networks do not use, through Keras's forced step (keras_impl/stack.py)
with each layer on an arbitrary input. The exact step (50 digits, rounded once) and Keras's float64 step must agree
to rounding: every output, gradient, moving statistic and updated weight within RELATIVE of its tensor's largest
value. Measured (docs/referees.md): the largest difference over these stacks is 1.07e-15 of its tensor's largest
value (a GRU's gradient); mutations of the exact layers differ by 3.4e-13 (ε off by one part in 10⁹), 3e-9 (the
attention scale left in float64), 0.78 (a pool's tie routed to the last element) or fail outright."""
import numpy as np
import pytest

from compare import exact_stack

RELATIVE = 1e-13


def _forced_step(layers, input_shape, y, loss="categorical_crossentropy", optimizer="adam", seed=0, masks=None):
    """(Keras's forced step's values, the exact step's) on random weights and random inputs for every layer."""
    import keras
    from keras_impl import stack

    rng = np.random.default_rng(seed)
    model = stack.build(layers, input_shape)
    specs = stack.weight_specs(model)
    weights = [rng.uniform(0.2, 1.0, s[2]) if "variance" in s[1] else rng.normal(0, 0.5, s[2]) for s in specs]
    N = len(y)
    shapes = stack.output_shapes(model, layers, N)
    first = (N,) + tuple(input_shape)
    X = rng.integers(0, 5, first).astype(float) if layers[0]["class_name"] == "Embedding" else rng.normal(0, 1, first)
    inputs = [rng.normal(0, 1, s) for s in shapes]
    spec = {"layers": layers, "learning_rate": 0.01, "loss": loss, "loss_config": {}, "optimizer": optimizer,
            "optimizer_config": {}, "loss_scale": 1.0}
    step = stack.ForcedStep(model, layers, 0.01, loss, {}, optimizer, {})
    masks = masks or []
    if masks:  # Dropout's own draw, as the check reads it
        masks = step.masks(N)
    keras_values = step.step(weights, X, y, inputs)
    configs = [layer.get_config() for layer in model.stack_layers]
    exact = exact_stack.step(layers, configs, stack.sources_of(layers), specs, weights, X, y, inputs, masks, spec,
                             first_step=True)
    keras.config.set_floatx("float64")
    return specs, keras_values, exact


def _agree(specs, keras_values, exact):
    pairs = [(f"output {i}", k, e) for i, (k, e) in enumerate(zip(keras_values["outputs"], exact["forward"]))]
    trainable = [k for k, s in enumerate(specs) if s[3]]
    frozen = [k for k, s in enumerate(specs) if not s[3]]
    pairs += [(f"d{specs[k][1]}", g, e) for k, g, e in zip(trainable, keras_values["grads"], exact["grads"])]
    pairs += [(specs[k][1], keras_values["weights_out"][k], e) for k, e in zip(frozen, exact["state"])]
    pairs += [(f"{specs[k][1]} updated", keras_values["weights_out"][k], e) for k, e in zip(trainable, exact["updated"])]
    pairs += [("loss", np.float64(keras_values["loss"]), np.float64(exact["loss"]))]
    largest_gradient = max(float(np.max(np.abs(g))) for g in keras_values["grads"])
    worst = 0.0
    for name, k, e in pairs:
        # a tensor whose exact value is 0 (a bias before batch normalization, whose gradient the mean takes out):
        # Keras's is rounding, measured against the step's largest gradient
        scale = float(np.max(np.abs(k))) if np.max(np.abs(e)) > 1e-40 else largest_gradient
        ratio = float(np.max(np.abs(k - e))) / scale
        assert ratio <= RELATIVE, (name, ratio)
        worst = max(worst, ratio)
    return worst


def _onehot(rng, n, k, extra=()):
    return np.eye(k)[rng.integers(0, k, (n,) + tuple(extra))]


STACKS = {
    "conv2d_same_strided_bn_elu_pools": (
        [{"class_name": "Conv2D", "config": {"filters": 3, "kernel_size": (3, 2), "strides": (2, 1), "padding": "same"}},
         {"class_name": "BatchNormalization", "config": {"center": False, "momentum": 0.9, "epsilon": 0.01}},
         {"class_name": "Activation", "config": {"activation": "elu"}},
         {"class_name": "AveragePooling2D", "config": {"pool_size": 2, "padding": "same"}},
         {"class_name": "MaxPooling2D", "config": {"pool_size": (2, 1), "strides": 1, "padding": "same"}},
         {"class_name": "GlobalAveragePooling2D", "config": {}},
         {"class_name": "Dense", "config": {"units": 4}},
         {"class_name": "Activation", "config": {"activation": "sigmoid"}}],
        (7, 5, 2), "binary_crossentropy", "sgd"),
    "conv1d_causal_simplernn_gru_layernorm": (
        [{"class_name": "Conv1D", "config": {"filters": 4, "kernel_size": 3, "padding": "causal", "dilation_rate": 2}},
         {"class_name": "SimpleRNN", "config": {"units": 5, "return_sequences": True}},
         {"class_name": "GRU", "config": {"units": 4, "reset_after": False, "return_sequences": True}},
         {"class_name": "LayerNormalization", "config": {"scale": False, "epsilon": 1e-5}},
         {"class_name": "Flatten", "config": {"data_format": "channels_first"}},
         {"class_name": "Dense", "config": {"units": 3}},
         {"class_name": "Softmax", "config": {}}],
        (7, 3), "categorical_crossentropy", "adam"),
    "conv2d_flatten_channels_first": (  # found by a review: the 4-D transposition had been the 3-D one's mirror
        [{"class_name": "Conv2D", "config": {"filters": 2, "kernel_size": 2}},
         {"class_name": "Flatten", "config": {"data_format": "channels_first"}},
         {"class_name": "Dense", "config": {"units": 3}},
         {"class_name": "Softmax", "config": {}}],
        (4, 3, 1), "categorical_crossentropy", "sgd"),
    "lstm_sequences_dropout_tanh_mse": (
        [{"class_name": "LSTM", "config": {"units": 3, "return_sequences": True}},
         {"class_name": "Dropout", "config": {"rate": 0.3, "seed": 1}},
         {"class_name": "Activation", "config": {"activation": "tanh"}},
         {"class_name": "Reshape", "config": {"target_shape": (15,)}},
         {"class_name": "Dense", "config": {"units": 2}},
         {"class_name": "ReLU", "config": {}}],
        (5, 2), "mse", "adam"),
    "embedding_attention_unmasked": (
        [{"class_name": "Embedding", "config": {"input_dim": 5, "output_dim": 6}},
         {"class_name": "MultiHeadAttention", "config": {"num_heads": 3, "key_dim": 3}, "inputs": [0]},
         {"class_name": "Add", "config": {}, "inputs": [0, 1]},
         {"class_name": "Dense", "config": {"units": 4}},
         {"class_name": "Activation", "config": {"activation": "softmax"}}],
        (4,), "categorical_crossentropy", "sgd"),
}


@pytest.mark.parametrize("name", sorted(STACKS))
def test_the_exact_layers_are_keras_to_rounding(name):
    layers, input_shape, loss, optimizer = STACKS[name]
    rng = np.random.default_rng(1)
    N = 6
    if loss == "binary_crossentropy":
        y = rng.integers(0, 2, (N, 4)).astype(float)
    elif name.startswith("embedding"):
        y = _onehot(rng, N, 4, (4,))
    elif loss == "mse":
        y = rng.normal(0, 1, (N, 2))
    else:
        y = _onehot(rng, N, 3)
    masks = [True] if any(d["class_name"] == "Dropout" for d in layers) else None
    specs, keras_values, exact = _forced_step(layers, input_shape, y, loss, optimizer, masks=masks)
    assert _agree(specs, keras_values, exact) <= RELATIVE


def test_a_causal_mask_and_max_pool_ties_follow_keras():
    """The causal mask's large negative logit and TensorFlow's routing of a max pool's tie to the window's first
    element (zeros after a relu tie everywhere)."""
    rng = np.random.default_rng(2)
    causal = [{"class_name": "MultiHeadAttention", "config": {"num_heads": 2, "key_dim": 2},
               "call": {"use_causal_mask": True}, "inputs": [-1]},
              {"class_name": "Dense", "config": {"units": 3}}, {"class_name": "Softmax", "config": {}}]
    specs, keras_values, exact = _forced_step(causal, (5, 4), _onehot(rng, 4, 3, (5,)))
    assert _agree(specs, keras_values, exact) <= RELATIVE
    ties = [{"class_name": "Conv2D", "config": {"filters": 2, "kernel_size": 2}}, {"class_name": "ReLU", "config": {}},
            {"class_name": "MaxPooling2D", "config": {"pool_size": 2}}, {"class_name": "Flatten", "config": {}},
            {"class_name": "Dense", "config": {"units": 3}}, {"class_name": "Softmax", "config": {}}]
    import keras
    from keras_impl import stack
    model = stack.build(ties, (5, 5, 1))
    step = stack.ForcedStep(model, ties, 0.01, "categorical_crossentropy", {}, "sgd", {})
    specs = stack.weight_specs(model)
    weights = [rng.normal(0, 0.5, s[2]) for s in specs]
    shapes = stack.output_shapes(model, ties, 4)
    inputs = [rng.normal(0, 1, s) for s in shapes]
    inputs[1] = np.maximum(inputs[1], 0) * (rng.random(shapes[1]) < 0.3)  # the pool's input: mostly tied zeros
    X, y = rng.normal(0, 1, (4, 5, 5, 1)), _onehot(rng, 4, 3)
    keras_values = step.step(weights, X, y, inputs)
    exact = exact_stack.step(ties, [layer.get_config() for layer in model.stack_layers], stack.sources_of(ties), specs,
                             weights, X, y, inputs, [], {"learning_rate": 0.01, "loss": "categorical_crossentropy",
                                                         "loss_config": {}, "optimizer": "sgd", "optimizer_config": {},
                                                         "loss_scale": 1.0}, first_step=True)
    keras.config.set_floatx("float64")
    assert np.count_nonzero(keras_values["douts"][1] == 0) > 0
    assert _agree(specs, keras_values, exact) <= RELATIVE
