"""Calibration block of I2S-TFCKD (spec TFCKD.md §3): weights, normalisations, fixed sizes."""

import pytest
import torch
from torch import nn

from tfckd_lite.distill import StackedMLP, TFCalibration, layer_relations, uniform_weights

B, T = 4, 6


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _grams(n_layers, channels=3, bins=5, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    feats = [scale * torch.randn(B, channels, T, bins, generator=g) for _ in range(n_layers)]
    rels = layer_relations(feats)
    return {"time": torch.stack([r.time_gram for r in rels]),
            "freq": torch.stack([r.freq_gram for r in rels])}


@pytest.mark.parametrize("released", [False, True])
def test_weights_shape_nonnegative_and_sum_to_one_over_teacher_layers(released):
    torch.manual_seed(0)
    block = TFCalibration(2, 3, frames=T, batch_size=B, released_normalisation=released)
    w = block(_grams(2, seed=1), _grams(3, seed=2))
    for alpha in (w.time, w.freq):
        assert alpha.shape == (B, T, 2, 3)
        assert (alpha >= 0).all()
        torch.testing.assert_close(alpha.sum(-1), torch.ones(B, T, 2))
    # the weights actually depend on the frame and utterance (they are not uniform)
    assert w.time.std(dim=(0, 1)).max() > 1e-4 and w.freq.std(dim=(0, 1)).max() > 1e-4


def test_semckd_normalisation_is_per_vector_and_released_is_over_frames():
    torch.manual_seed(0)
    s, t = _grams(2, seed=1), _grams(3, seed=2)
    semckd = TFCalibration(2, 3, frames=T, batch_size=B)
    released = TFCalibration(2, 3, frames=T, batch_size=B, released_normalisation=True)
    released.load_state_dict(semckd.state_dict())       # same embedders, only the norm differs
    for stream, (q, k) in semckd.embeddings(s, t).items():
        assert q.shape[:3] == (2, B, T) and k.shape[:3] == (3, B, T)
        torch.testing.assert_close(q.norm(dim=-1), torch.ones(2, B, T))    # each vector
        torch.testing.assert_close(k.norm(dim=-1), torch.ones(3, B, T))
    for stream, (q, k) in released.embeddings(s, t).items():
        torch.testing.assert_close(q.norm(dim=-2), torch.ones(2, B, q.shape[-1]))  # over frames
        torch.testing.assert_close(k.norm(dim=-2), torch.ones(3, B, k.shape[-1]))
    assert not torch.allclose(semckd(s, t).time, released(s, t).time)


def test_embedder_sizes_follow_the_spec():
    block = TFCalibration(1, 4, frames=T, batch_size=B)
    q_time, q_freq = block.query["time"], block.query["freq"]
    assert (q_time.layers, q_time.d_in, q_time.d_hidden, q_time.d_out) == (1, T, 2 * T, T)
    assert (q_freq.layers, q_freq.d_in, q_freq.d_hidden, q_freq.d_out) == (1, B, 2 * B, 2 * B)
    assert block.key["time"].layers == 4 and block.key["freq"].layers == 4


def test_wrong_batch_size_or_frame_count_raises_a_clear_error():
    block = TFCalibration(2, 2, frames=T, batch_size=B)
    with pytest.raises(ValueError, match=r"batch_size=4 and frames=6.*got a batch of 3"):
        block.check_batch(3, T)
    with pytest.raises(ValueError, match=r"frames=6.*x 7 frame"):
        block.check_batch(B, 7)
    g = torch.Generator().manual_seed(0)
    feats = [torch.randn(B - 1, 3, T, 5, generator=g) for _ in range(2)]
    rels = layer_relations(feats)
    grams = {"time": torch.stack([r.time_gram for r in rels]),
             "freq": torch.stack([r.freq_gram for r in rels])}
    with pytest.raises(ValueError, match="drop_last"):
        block(grams, grams)
    with pytest.raises(ValueError, match="should be"):
        block(_grams(3), _grams(2))          # 3 student layers for a 2-layer block


def test_single_stream_blocks_build_only_that_stream():
    block = TFCalibration(2, 2, frames=T, batch_size=B, streams=("time",))
    assert set(block.query) == {"time"} and set(block.key) == {"time"}
    w = block(_grams(2), _grams(2, seed=3))
    assert w.freq is None and w.time.shape == (B, T, 2, 2)
    with pytest.raises(ValueError, match="subset"):
        TFCalibration(2, 2, frames=T, batch_size=B, streams=("space",))


def test_stacked_mlp_equals_independent_linear_layers():
    torch.manual_seed(0)
    mlp = StackedMLP(3, 5, 7, 4)
    x = torch.randn(3, 2, 6, 5)
    y = mlp(x)
    for layer in range(3):
        first, second = nn.Linear(5, 7), nn.Linear(7, 4)
        first.weight.data = mlp.weight1[layer].t()
        first.bias.data = mlp.bias1[layer, 0]
        second.weight.data = mlp.weight2[layer].t()
        second.bias.data = mlp.bias2[layer, 0]
        torch.testing.assert_close(y[layer], second(torch.relu(first(x[layer]))))


def test_silent_features_give_finite_weights_and_gradients():
    block = TFCalibration(2, 2, frames=T, batch_size=B)
    zero = {"time": torch.zeros(2, B, T, T), "freq": torch.zeros(2, B, T, B)}
    w = block(zero, zero)
    assert torch.isfinite(w.time).all() and torch.isfinite(w.freq).all()
    (w.time.square().sum() + w.freq.square().sum()).backward()
    grads = [p.grad for p in block.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_gradients_reach_query_and_key_embedders():
    torch.manual_seed(0)
    block = TFCalibration(2, 3, frames=T, batch_size=B)
    w = block(_grams(2, seed=1), _grams(3, seed=2))
    target = torch.rand(B, T, 2, 3)
    ((w.time - target).square().sum() + (w.freq - target).square().sum()).backward()
    for name, p in block.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_uniform_weights():
    w = uniform_weights(B, T, 2, 4)
    assert w.shape == (B, T, 2, 4)
    torch.testing.assert_close(w.sum(-1), torch.ones(B, T, 2))
    assert (w == 0.25).all()
