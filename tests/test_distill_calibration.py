"""Calibration block of I2S-TFCKD (spec TFCKD.md §3): weights, normalisations, fixed sizes."""

import math

import pytest
import torch
from torch import nn

from tfckd_lite.distill import (MAX_LOG_SPREAD, StackedMLP, TFCalibration, calibrated_set_loss,
                               calibration_agreement, layer_relations, log_weight_spread,
                               pairwise_divergence, stage_spreads, uniform_weights,
                               weight_ceiling)

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


def test_weight_ceiling_values_and_errors():
    assert weight_ceiling(1) == pytest.approx(1.0)
    assert weight_ceiling(3) == pytest.approx(math.e ** 2 / (math.e ** 2 + 2))
    assert weight_ceiling(2) == pytest.approx(torch.softmax(torch.tensor([1.0, -1.0]), 0)[0].item())
    assert weight_ceiling(3, tied=2) == pytest.approx(
        torch.softmax(torch.tensor([1.0, 1.0, -1.0]), 0)[0].item())
    assert weight_ceiling(4, tied=4) == pytest.approx(0.25)
    for bad in ({"n_teacher": 0}, {"n_teacher": 3, "tied": 4}, {"n_teacher": 2.0}):
        with pytest.raises(ValueError, match="weight_ceiling"):
            weight_ceiling(**bad)


def _push_weight_onto_first_teacher(block, frame=None, steps=300):
    """Train only the block to put as much weight as it can on teacher layer 0: on average over
    every utterance and frame, or on one ``(utterance, frame)``."""
    s, t = _grams(1, seed=1), _grams(3, seed=2)
    optimiser = torch.optim.Adam(block.parameters(), lr=0.05)
    for _ in range(steps):
        w = block(s, t)
        loss = -sum(a[..., 0].mean() if frame is None else a[frame][..., 0].sum() for a in w)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        return block(s, t)


@pytest.mark.parametrize("frame", [None, (0, 0)])
def test_semckd_weights_reach_but_never_pass_the_ceiling(frame):
    torch.manual_seed(0)
    w = _push_weight_onto_first_teacher(TFCalibration(1, 3, frames=T, batch_size=B), frame)
    ceiling = weight_ceiling(3)
    for alpha in w:
        assert alpha.max() <= ceiling + 1e-6
        pushed = alpha[..., 0].mean() if frame is None else alpha[frame][..., 0].max()
        assert pushed > ceiling - 0.01                     # pushed hard, it stops at the ceiling
        # the others keep at least 1 / (e^2 + n_t - 1) each
        assert alpha[..., 1:].min() >= 1 / (math.e ** 2 + 2) - 1e-6
        assert log_weight_spread(alpha).max() <= MAX_LOG_SPREAD + 1e-5
        spread = log_weight_spread(alpha.mean((0, 1)) if frame is None else alpha[frame])
        assert spread.min() > MAX_LOG_SPREAD - 0.05


def test_released_normalisation_lets_a_single_frame_pass_the_ceiling():
    torch.manual_seed(0)
    w = _push_weight_onto_first_teacher(
        TFCalibration(1, 3, frames=T, batch_size=B, released_normalisation=True), frame=(0, 0))
    for alpha in w:
        assert alpha[0, 0, 0, 0] > weight_ceiling(3) + 0.1
        assert log_weight_spread(alpha[0, 0]).max() > MAX_LOG_SPREAD + 0.5


def test_log_weight_spread():
    torch.testing.assert_close(log_weight_spread(uniform_weights(B, T, 2, 3)), torch.zeros(B, T, 2))
    torch.testing.assert_close(log_weight_spread([[0.8, 0.1, 0.1]]), torch.tensor([math.log(8)]))
    # whatever the Grams' scale, SemCKD weights of an untrained block stay within the bound,
    # per frame and averaged
    torch.manual_seed(0)
    block = TFCalibration(2, 3, frames=T, batch_size=B)
    for scale in (1e-3, 1.0, 1e3):
        for alpha in block(_grams(2, seed=1, scale=scale), _grams(3, seed=2, scale=scale)):
            assert log_weight_spread(alpha).max() <= MAX_LOG_SPREAD + 1e-5
            assert log_weight_spread(alpha.mean((0, 1))).max() <= MAX_LOG_SPREAD + 1e-5
    for bad in ([[0.5, 0.5, 0.0]], [[float("nan"), 0.5, 0.5]]):
        with pytest.raises(ValueError, match="positive weights"):
            log_weight_spread(bad)


def test_stage_spreads_average_each_row_of_the_mean_weights():
    torch.manual_seed(0)
    block = TFCalibration(2, 3, frames=T, batch_size=B)
    with torch.no_grad():
        w = block(_grams(2, seed=1), _grams(3, seed=2))
    per_frame = {"encoder": {"time": w.time, "freq": w.freq}}
    spreads = stage_spreads(per_frame)
    expected = float(log_weight_spread(w.time.mean((0, 1))).mean())
    assert spreads["encoder"]["time"] == pytest.approx(expected)
    # the averaged weights as history.json stores them (nested lists) give the same
    stored = {"encoder": {k: v.mean((0, 1)).tolist() for k, v in per_frame["encoder"].items()}}
    assert stage_spreads(stored)["encoder"] == pytest.approx(spreads["encoder"])
    assert stage_spreads({"encoder": {"time": uniform_weights(B, T, 2, 3)}}) == \
        {"encoder": {"time": 0.0}}


def test_calibration_agreement_reads_favoured_and_closest_teacher_layers():
    weights = {"encoder": {"time": torch.tensor([[0.6, 0.3, 0.1], [0.1, 0.2, 0.7]])}}
    divergences = {"encoder": {"time": torch.tensor([[0.1, 0.5, 0.9], [0.4, 0.2, 0.3]])}}
    agreement = calibration_agreement(weights, divergences)
    assert agreement == {"encoder": {"time": {"favoured": [0, 2], "closest": [0, 1]}}}
    per_frame = {"encoder": {"time": weights["encoder"]["time"].expand(B, T, 2, 3)}}
    assert calibration_agreement(per_frame, divergences) == agreement
    with pytest.raises(ValueError, match=r"encoder/time: weights are \(2, 3\)"):
        calibration_agreement(weights, {"encoder": {"time": torch.zeros(3, 3)}})


def test_a_block_trained_on_the_loss_it_weighs_favours_the_closest_teacher_layer():
    """The reason given in ``calibration_agreement``: with the student's relations fixed, only
    the block learning, the set loss moves each row's weight onto its least divergent layer."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(5)
    teacher = [torch.randn(B, 3, T, 5, generator=g) for _ in range(3)]
    # student layer 0 resembles teacher layer 2, student layer 1 teacher layer 0
    student = [teacher[2] + 0.3 * torch.randn(B, 3, T, 5, generator=g),
               teacher[0] + 0.3 * torch.randn(B, 3, T, 5, generator=g)]
    s_rel, t_rel = layer_relations(student), layer_relations(teacher)
    stack = lambda rel, name: torch.stack([getattr(r, name) for r in rel])  # noqa: E731
    s_grams = {k: stack(s_rel, f"{k}_gram") for k in ("time", "freq")}
    t_grams = {k: stack(t_rel, f"{k}_gram") for k in ("time", "freq")}
    s_stack = {k: stack(s_rel, k) for k in ("time", "freq")}
    t_stack = {k: stack(t_rel, k) for k in ("time", "freq")}
    every_pair = torch.ones(B, T, 2, 3)
    divergences = {"set": {k: pairwise_divergence(s_stack[k], t_stack[k], every_pair, k)
                           for k in ("time", "freq")}}
    block = TFCalibration(2, 3, frames=T, batch_size=B)
    with torch.no_grad():
        w = block(s_grams, t_grams)
    before = calibration_agreement({"set": {"time": w.time, "freq": w.freq}}, divergences)
    assert any(r["favoured"] != r["closest"] for r in before["set"].values())   # not by chance
    optimiser = torch.optim.Adam(block.parameters(), lr=1e-2)
    for _ in range(150):
        w = block(s_grams, t_grams)
        loss = calibrated_set_loss(s_stack, t_stack, {"time": w.time, "freq": w.freq})
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        w = block(s_grams, t_grams)
    agreement = calibration_agreement({"set": {"time": w.time, "freq": w.freq}}, divergences)
    for stream, rows in agreement["set"].items():
        assert rows["closest"] == [2, 0], stream
        assert rows["favoured"] == rows["closest"], stream
    assert stage_spreads({"set": {"time": w.time}})["set"]["time"] > 1.0
