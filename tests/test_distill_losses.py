"""Jeffreys divergence and the calibrated set loss (spec TFCKD.md §4)."""

import pytest
import torch

from tfckd_lite.distill import (calibrated_set_loss, jeffreys, layer_relations,
                                paired_divergence, pairwise_divergence, uniform_weights)

B, T = 3, 5


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _maps(n, channels=4, bins=6, seed=0, zero=False):
    g = torch.Generator().manual_seed(seed)
    if zero:
        return [torch.zeros(B, channels, T, bins) for _ in range(n)]
    return [torch.randn(B, channels, T, bins, generator=g) for _ in range(n)]


def _stack(feats):
    rels = layer_relations(feats)
    return {"time": torch.stack([r.time for r in rels]),
            "freq": torch.stack([r.freq for r in rels])}


def _random_weights(n_s, n_t, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.softmax(torch.randn(B, T, n_s, n_t, generator=g), dim=-1)
    return {"time": w, "freq": torch.softmax(torch.randn(B, T, n_s, n_t, generator=g), dim=-1)}


def test_jeffreys_nonnegative_zero_on_equal_and_equals_symmetric_kl():
    g = torch.Generator().manual_seed(0)
    p = torch.softmax(torch.randn(10, 7, generator=g), -1)
    q = torch.softmax(torch.randn(10, 7, generator=g), -1)
    j = jeffreys(p, q)
    assert (j >= 0).all()
    assert (jeffreys(p, p) == 0).all()
    kl = lambda a, b: (a * (a.log() - b.log())).sum(-1)   # noqa: E731
    torch.testing.assert_close(j.sum(-1), kl(p, q) + kl(q, p))
    # zeros are clamped: still finite and >= 0
    z = torch.zeros(7)
    z[0] = 1
    assert torch.isfinite(jeffreys(z, q[0])).all() and (jeffreys(z, q[0]) >= 0).all()


def test_pairwise_divergence_matches_the_spec_written_as_loops():
    s, t = _stack(_maps(2, seed=1)), _stack(_maps(3, seed=2))
    w = _random_weights(2, 3)
    got_T = pairwise_divergence(s["time"], t["time"], w["time"], "time")
    got_F = pairwise_divergence(s["freq"], t["freq"], w["freq"], "freq")
    want_T = torch.zeros(2, 3)
    want_F = torch.zeros(2, 3)
    for i in range(2):
        for j in range(3):
            for b in range(B):
                for tt in range(T):
                    want_T[i, j] += w["time"][b, tt, i, j] * jeffreys(
                        t["time"][j, b, tt], s["time"][i, b, tt]).sum()
                    want_F[i, j] += w["freq"][b, tt, i, j] * jeffreys(
                        t["freq"][j, b, tt], s["freq"][i, b, tt]).sum()
    torch.testing.assert_close(got_T, want_T / (B * T))
    torch.testing.assert_close(got_F, want_F / (B * B))
    total = calibrated_set_loss(s, t, w)
    n_student = 2
    torch.testing.assert_close(total, (want_T.sum() / (B * T) + want_F.sum() / (B * B)) / n_student)


def test_every_term_nonnegative_and_total_positive_for_different_features():
    s, t = _stack(_maps(2, seed=1)), _stack(_maps(3, seed=2))
    loss, terms = calibrated_set_loss(s, t, _random_weights(2, 3), return_terms=True)
    assert terms["time"].shape == (2, 3) and terms["freq"].shape == (2, 3)
    assert (terms["time"] >= 0).all() and (terms["freq"] >= 0).all()
    assert loss > 0


def test_zero_when_student_features_equal_teacher_features():
    feats = _maps(3, seed=4)
    s, t = _stack(feats), _stack([f.clone() for f in feats])
    # paired layers are equal; with one-hot weights on the matching layer the loss is exactly 0
    eye = torch.eye(3).expand(B, T, 3, 3)
    assert calibrated_set_loss(s, t, {"time": eye, "freq": eye}) == 0
    # a single-layer set with identical features: zero for any weights
    one_s, one_t = _stack(feats[:1]), _stack([feats[0].clone()])
    assert calibrated_set_loss(one_s, one_t, _random_weights(1, 1)) == 0


def test_invariant_to_positive_rescaling_of_either_feature_map():
    fs, ft = _maps(2, seed=5), _maps(3, seed=6)
    w = _random_weights(2, 3, seed=1)
    base = calibrated_set_loss(_stack(fs), _stack(ft), w)
    rescaled = calibrated_set_loss(_stack([4.0 * f for f in fs]), _stack([0.3 * f for f in ft]), w)
    torch.testing.assert_close(rescaled, base, rtol=1e-4, atol=1e-7)


def test_finite_loss_and_gradient_on_silent_features():
    zs = [f.requires_grad_() for f in _maps(2, zero=True)]
    s, t = _stack(zs), _stack(_maps(2, seed=7))
    loss = calibrated_set_loss(s, t, _random_weights(2, 2))
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    assert all(torch.isfinite(z.grad).all() for z in zs)
    both_silent = calibrated_set_loss(_stack(_maps(2, zero=True)), _stack(_maps(2, zero=True)),
                                      _random_weights(2, 2))
    assert both_silent == 0


def test_teacher_relations_are_detached_targets():
    s_feats = [f.requires_grad_() for f in _maps(2, seed=1)]
    t_feats = [f.requires_grad_() for f in _maps(2, seed=2)]
    w = _random_weights(2, 2)
    calibrated_set_loss(_stack(s_feats), _stack(t_feats), w).backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in s_feats)
    assert all(f.grad is None for f in t_feats)


def test_single_stream_and_validation():
    s, t = _stack(_maps(2, seed=1)), _stack(_maps(2, seed=2))
    w = _random_weights(2, 2)
    time_only = calibrated_set_loss(s, t, {"time": w["time"]})
    both = calibrated_set_loss(s, t, w)
    assert 0 < time_only < both
    with pytest.raises(ValueError, match="weights must be"):
        calibrated_set_loss(s, t, {"time": w["time"][:, :, :1]})
    with pytest.raises(ValueError, match="no stream"):
        calibrated_set_loss(s, t, {})
    with pytest.raises(ValueError, match="stream must be"):
        pairwise_divergence(s["time"], t["time"], w["time"], "space")


def test_paired_divergence_is_uniform_one_to_one():
    s, t = _stack(_maps(2, seed=1)), _stack(_maps(2, seed=2))
    eye = torch.eye(2).expand(B, T, 2, 2)
    expected = pairwise_divergence(s["time"], t["time"], eye, "time").trace() / 2
    torch.testing.assert_close(paired_divergence(s["time"], t["time"]), expected)
    assert paired_divergence(s["time"], s["time"].clone()) == 0
    # uniform calibration = the average over teacher layers
    u = uniform_weights(B, T, 2, 2)
    assert calibrated_set_loss(s, t, {"time": u}) > 0
