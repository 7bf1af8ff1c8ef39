"""Relations of I2S-TFCKD (spec TFCKD.md §2): shapes, normalisation, invariances, silent input."""

import pytest
import torch

from tfckd_lite.distill import (COSINE_EPS, frame_vectors, frequency_relation, gram_matrices,
                                layer_relations, time_relation)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _features(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g)


def _reference_relations(x, eps=COSINE_EPS):
    """Literal loops over the spec's formulas (slow, for small shapes)."""
    B, C, T, F = x.shape
    v = [[x[b, :, t, :].reshape(-1) for t in range(T)] for b in range(B)]

    def cos(a, c):
        return float(a @ c) / ((float(a.norm()) + eps) * (float(c.norm()) + eps))

    P = torch.zeros(B, T, T, dtype=torch.float64)
    Q = torch.zeros(B, T, B, dtype=torch.float64)
    for b in range(B):
        for t in range(T):
            for u in range(T):
                P[b, t, u] = (cos(v[b][t], v[b][u]) + 1) / 2
            for c in range(B):
                Q[b, t, c] = (cos(v[b][t], v[c][t]) + 1) / 2
    return P / P.sum(-1, keepdim=True), Q / Q.sum(-1, keepdim=True)


def test_shapes_rows_sum_to_one_and_values_in_unit_interval():
    x = _features(3, 4, 7, 5)
    P, Q = time_relation(x), frequency_relation(x)
    assert P.shape == (3, 7, 7) and Q.shape == (3, 7, 3)
    for R in (P, Q):
        torch.testing.assert_close(R.sum(-1), torch.ones(R.shape[:-1]))
        assert (R >= 0).all() and (R <= 1).all()


def test_relations_match_the_spec_formulas_computed_by_loops():
    x = _features(2, 3, 4, 5, seed=1).double()
    P_ref, Q_ref = _reference_relations(x)
    torch.testing.assert_close(time_relation(x), P_ref)
    torch.testing.assert_close(frequency_relation(x), Q_ref)


def test_frequency_relation_compares_utterances_not_bins():
    # one utterance in the batch: the only "other" item is itself, so Q is identically 1
    x = _features(1, 3, 6, 9)
    torch.testing.assert_close(frequency_relation(x), torch.ones(1, 6, 1))
    # permuting the frequency bins of every frame (same permutation everywhere) leaves both
    # relations unchanged: bins are never compared with each other
    x = _features(4, 3, 6, 9)
    perm = torch.randperm(9, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(frequency_relation(x[..., perm]), frequency_relation(x))
    torch.testing.assert_close(time_relation(x[..., perm]), time_relation(x))


def test_relations_invariant_to_positive_rescaling():
    # exact up to the ε = 1e-6 on the norms (frame norms here are about 6, so ε/norm ~ 2e-7 at
    # scale 1, and 2e-5 at scale 1e-2): check at float64 to separate ε from rounding
    x = _features(3, 4, 6, 8).double()
    for scale in (1e-2, 3.0, 250.0):
        tol = 10 * COSINE_EPS / (min(scale, 1.0) * frame_vectors(x).norm(dim=-1).min().item())
        torch.testing.assert_close(time_relation(scale * x), time_relation(x), rtol=0, atol=tol)
        torch.testing.assert_close(frequency_relation(scale * x), frequency_relation(x),
                                   rtol=0, atol=tol)
    # and with ε = 0 the invariance is exact to rounding
    torch.testing.assert_close(time_relation(7.0 * x, eps=0.0), time_relation(x, eps=0.0))


def test_silent_input_is_finite_with_finite_gradients():
    x = torch.zeros(2, 3, 5, 4, requires_grad=True)
    P, Q = time_relation(x), frequency_relation(x)
    assert torch.isfinite(P).all() and torch.isfinite(Q).all()
    torch.testing.assert_close(P, torch.full((2, 5, 5), 1 / 5))   # all cosines 0 -> uniform rows
    torch.testing.assert_close(Q, torch.full((2, 5, 2), 1 / 2))
    (P.square().sum() + Q.square().sum()).backward()
    assert torch.isfinite(x.grad).all()
    # a partly silent map (one silent frame) keeps finite gradients for the other frames
    y = _features(2, 3, 5, 4)
    y[:, :, 2] = 0
    y.requires_grad_()
    (time_relation(y).square().sum() + frequency_relation(y).square().sum()).backward()
    assert torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0


def test_gram_matrices_are_raw_inner_products():
    x = _features(2, 3, 4, 5)
    G_T, G_F = gram_matrices(x)
    v = frame_vectors(x)                              # [B, T, C*F]
    assert v.shape == (2, 4, 15)
    torch.testing.assert_close(G_T, v @ v.transpose(1, 2))
    torch.testing.assert_close(G_F, torch.einsum("btd,ctd->btc", v, v))


def test_layer_relations_batches_same_shaped_layers_and_keeps_order():
    feats = [_features(3, 4, 6, 9, seed=1), _features(3, 4, 6, 5, seed=2),
             _features(3, 4, 6, 9, seed=3), _features(3, 2, 6, 11, seed=4)]
    rels = layer_relations(feats)
    assert len(rels) == 4
    for x, r in zip(feats, rels):
        torch.testing.assert_close(r.time, time_relation(x))
        torch.testing.assert_close(r.freq, frequency_relation(x))
        G_T, G_F = gram_matrices(x)
        torch.testing.assert_close(r.time_gram, G_T)
        torch.testing.assert_close(r.freq_gram, G_F)
    only_time = layer_relations(feats, time=True, freq=False)
    assert only_time[0].freq is None and only_time[0].freq_gram is None
    with pytest.raises(ValueError, match="batch size and frame count"):
        layer_relations([_features(3, 4, 6, 9), _features(2, 4, 6, 9)])
    with pytest.raises(ValueError, match="at least one"):
        layer_relations(feats, time=False, freq=False)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match=r"\[B, C, T, F\]"):
        time_relation(torch.zeros(3, 4, 5))
    with pytest.raises(TypeError, match="floating point"):
        frequency_relation(torch.zeros(2, 3, 4, 5, dtype=torch.long))
