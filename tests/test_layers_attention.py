"""MultiHeadAttention (self-attention) in the single-layer check: correct layers pass, a 1e-7 error is caught,
planted course-style bugs are caught with their cause named, and the adapter's contract."""
import numpy as np
import pytest

from compare import check_layer
from compare.adapters import attention
from compare.bounds_attention import keras_scale
from compare.errors import InputError
from layer_cases_attention import case, weights
from numpy_impl.layers.attention import mha_backward, mha_forward


def course_forward(x, Wq, bq, Wk, bk, Wv, bv, Wo, bo, num_heads, causal=False, scale=None, keep=0, axis=-1):
    """Self-attention as a course writes it, with the knobs a planted bug turns: scale (None: Keras's), keep (the
    causal mask is np.tril(…, k=keep)) and the softmax's axis. Its cache is mha_backward's."""
    scale = keras_scale(Wq.shape[2]) if scale is None else scale
    q, k, v = (np.einsum("btd,dnh->btnh", x, W) + b for W, b in ((Wq, bq), (Wk, bk), (Wv, bv)))
    scores = np.einsum("btnh,bsnh->bnts", q, k) * scale
    if causal:
        T = x.shape[1]
        scores = np.where(np.tril(np.ones((T, T)), k=keep) == 1, scores, -1e30)
    e = np.exp(scores - scores.max(axis=axis, keepdims=True))
    p = e / e.sum(axis=axis, keepdims=True)
    c = np.einsum("bnts,bsnh->btnh", p, v)
    return np.einsum("btnh,nhd->btd", c, Wo) + bo, (x, q, k, v, p, c, scale, (Wq, Wk, Wv, Wo))


def no_scale(x, *ws):
    return course_forward(x, *ws, scale=1.0)


def exact_scale(x, Wq, *ws):
    return course_forward(x, Wq, *ws, scale=1 / np.sqrt(Wq.shape[2]))


def diagonal_masked(x, *ws):
    return course_forward(x, *ws, keep=-1)


def future_visible(x, *ws):
    return course_forward(x, *ws, keep=1)


def softmax_over_queries(x, *ws):
    return course_forward(x, *ws, axis=-2)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("causal", [False, True])
def test_correct_attention_passes(seed, causal):
    layer, x, _ = case(seed, causal=causal)
    report = check_layer(layer, x, seed=seed)
    assert report["ok"], report["first_mismatch"]
    assert [c["name"] for c in report["compared"]][:2] == ["out", "dx"] and len([c for c in report["compared"] if c["quantity"] != "state"]) == 10


@pytest.mark.parametrize("causal", [False, True])
def test_course_forward_is_correct(causal):
    layer, x, _ = case(3, forward=course_forward, causal=causal)
    assert check_layer(layer, x, seed=3)["ok"]


@pytest.mark.parametrize("seed", range(4))
def test_output_off_by_1e7_is_caught(seed):
    layer, x, _ = case(seed)
    forward = layer.forward
    layer.forward = lambda x, training=True: forward(x, training) * (1 + 1e-7)
    report = check_layer(layer, x, seed=seed)
    assert not report["ok"] and report["first_mismatch"]["name"] == "out"


def planted(forward, causal, key_dim=3, seed=0):
    rng = np.random.default_rng(seed)
    layer = attention(forward, mha_backward, weights(rng, 4, 2, key_dim), 2, key_dim, causal)
    return check_layer(layer, rng.standard_normal((2, 5, 4)), seed=seed)


@pytest.mark.parametrize("forward, causal, cause", [
    (no_scale, False, "attention_no_scale"),
    (exact_scale, False, "attention_exact_scale"),
    (exact_scale, True, "attention_exact_scale"),
    (diagonal_masked, True, "causal_mask_diagonal"),
    (future_visible, True, "causal_mask_future"),
    (no_scale, True, "attention_no_scale"),
    (softmax_over_queries, False, "softmax_over_queries"),
])
def test_planted_bug_is_named(forward, causal, cause):
    report = planted(forward, causal)
    assert not report["ok"] and report["first_mismatch"]["name"] == "out"
    assert report["causes"] == [cause], report["diagnosis"]


def test_exact_scale_is_no_mistake_when_key_dim_is_a_power_of_4():
    assert planted(exact_scale, False, key_dim=4)["ok"]  # 1/√4 = 0.5 is a float32 number


def test_adapter_declares_the_keras_layer_and_refuses_wrong_shapes():
    ws = weights(np.random.default_rng(0), 4, 2, 3)
    layer = attention(mha_forward, mha_backward, ws, 2, 3, causal=True)
    assert layer.keras_layer == {"class_name": "MultiHeadAttention", "config": {"num_heads": 2, "key_dim": 3},
                                 "call": {"use_causal_mask": True}}
    assert [w.shape for w in layer.get_weights()] == [w.shape for w in ws]
    with pytest.raises(InputError, match="num_heads=3"):
        attention(mha_forward, mha_backward, ws, 3, 3)


def test_notes_name_the_float32_scale_and_the_mask():
    report = planted(mha_forward, True)
    scale_note, mask_note = report["notes"]
    assert report["ok"] and "0.5773502588272095, not 0.5773502691896258" in scale_note
    assert "diagonal included" in mask_note and "not −inf" in mask_note


def test_key_dim_1_with_several_heads_is_refused():
    layer = attention(mha_forward, mha_backward, weights(np.random.default_rng(0), 4, 2, 1), 2, 1)
    with pytest.raises(InputError, match="key_dim=1 with num_heads=2"):
        check_layer(layer, np.ones((1, 2, 4)))
