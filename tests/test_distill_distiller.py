"""Distillers and the method registry (spec TFCKD.md §§4-6) on tiny random-weight DPDCRNs."""

import copy

import pytest
import torch

from tfckd_lite.distill import (DEFAULT_KD_WEIGHTS, METHODS, Distiller, TFCKDDistiller,
                                build_distiller, pair_layers)
from tfckd_lite.models import DPDCRN, DPDCRNConfig

B, T = 3, 8


pytestmark = pytest.mark.usefixtures("one_torch_thread")

KD_METHODS = [m for m in METHODS if m != "none"]
TFCKD_SETS = ["encoder", "dual_path", "decoder"]


def mse(enhanced, clean):
    return (enhanced - clean).square().mean()


def _models(seed=0):
    torch.manual_seed(seed)
    teacher = DPDCRN(DPDCRNConfig(channels=16, dual_path_layers=2))
    student = DPDCRN(DPDCRNConfig(channels=8, dual_path_layers=1))
    return teacher, student


def _batch(seed=0, batch=B, frames=T):
    g = torch.Generator().manual_seed(seed)
    noisy = torch.randn(batch, 2, frames, 257, generator=g)
    clean = 0.5 * noisy + 0.1 * torch.randn(batch, 2, frames, 257, generator=g)
    return noisy, clean


def _build(method, seed=0, **options):
    teacher, student = _models(seed)
    if method.startswith("tfckd"):
        options.setdefault("fusion_mid_channels", 16)     # small chains for fast tests
    return build_distiller(method, teacher, student, batch_size=B, frames=T, se_loss=mse,
                           **options)


def test_tfckd_returns_named_losses_and_weighted_total():
    d = _build("tfckd", kd_weight=0.5)
    losses = d(*_batch())
    assert set(losses) == {"se", "kd_encoder", "kd_dual_path", "kd_decoder", "kd_inter", "kd",
                           "total"}
    assert all(v.dim() == 0 for v in losses.values())
    kd_sum = sum(losses[f"kd_{s}"] for s in TFCKD_SETS + ["inter"])
    torch.testing.assert_close(losses["kd"], kd_sum)
    torch.testing.assert_close(losses["total"], losses["se"] + 0.5 * losses["kd"])
    for key in ("kd_encoder", "kd_dual_path", "kd_decoder", "kd_inter"):
        assert losses[key] > 0, key


def test_matched_pair_terms_are_zero_when_the_student_is_the_teacher():
    teacher, _ = _models()
    student = copy.deepcopy(teacher)
    d = build_distiller("tfckd", teacher, student, batch_size=B, frames=T, se_loss=mse,
                        fusion_mid_channels=16)
    d.student_fusion.load_state_dict(d.teacher_fusion.state_dict())   # same fused maps too
    losses = d(*_batch())
    for stage in TFCKD_SETS + ["inter"]:
        for stream, terms in d.last_terms[stage].items():
            assert terms.shape[0] == terms.shape[1]
            # L_ii = 0 (to 1e-12: the no-grad teacher forward may pick other attention/GRU
            # kernels than the student's forward with grad, so taps agree only to rounding)
            assert terms.diagonal().abs().max() < 1e-12, (stage, stream, terms)
            off_diagonal = terms.sum() - terms.diagonal().sum()
            if terms.shape[0] > 1:                     # cross-layer pairs remain, by design
                assert off_diagonal > 1e-7
    # the set loss is the mean over student layers of the off-diagonal rows
    manual = sum(t.sum() for t in d.last_terms["encoder"].values()) / 3
    torch.testing.assert_close(losses["kd_encoder"].detach(), manual)
    # one-to-one methods vanish
    fs = build_distiller("frame-similarity", teacher, copy.deepcopy(teacher), batch_size=B,
                         frames=T, se_loss=mse)
    assert fs(*_batch())["kd"].abs() < 1e-12


def test_teacher_is_frozen_in_eval_and_never_gets_gradients():
    d = _build("tfckd")
    d.train()
    assert d.student.training and not d.teacher.training
    assert all(not p.requires_grad for p in d.teacher.parameters())
    d.teacher.train()                         # even if someone flips it directly...
    losses = d(*_batch())
    assert not d.teacher.training             # ...the forward puts it back in eval
    losses["total"].backward()
    assert all(p.grad is None for p in d.teacher.parameters())
    teacher_ids = {id(p) for p in d.teacher.parameters()}
    assert not teacher_ids & {id(p) for p in d.trainable_parameters()}
    d.eval()
    assert not d.student.training and not d.teacher.training


def _grad_norm(params):
    return sum(float(p.grad.abs().sum()) for p in params if p.grad is not None)


def test_gradients_reach_student_calibration_and_both_fusion_chains():
    d = _build("tfckd")
    d(*_batch())["kd"].backward()
    for name, p in d.student.named_parameters():
        assert p.grad is not None, name
    assert _grad_norm(d.student_parameters()) > 0
    for stage, block in d.calibration.items():
        for name, p in block.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, (stage, name)
    for chains in (d.student_fusion, d.teacher_fusion):
        for set_name, chain in chains.items():
            assert _grad_norm(chain.parameters()) > 0, set_name
    extra = {id(p) for p in d.extra_parameters()}
    assert extra == {id(p) for m in (d.calibration, d.student_fusion, d.teacher_fusion)
                     for p in m.parameters()}
    assert not extra & {id(p) for p in d.student_parameters()}


def test_uniform_ablation_freezes_the_teacher_chains_it_cannot_train():
    d = _build("tfckd-uniform")
    assert d.calibration is None and d.fusion_trainer is None
    assert all(not p.requires_grad for p in d.teacher_fusion.parameters())
    d(*_batch())["kd"].backward()
    assert _grad_norm(d.student_fusion.parameters()) > 0
    assert {id(p) for p in d.extra_parameters()} == {id(p) for p in d.student_fusion.parameters()}
    assert set(d.last_weights["encoder"]) == {"time", "freq"}
    assert (d.last_weights["dual_path"]["time"] == 0.5).all()          # 1 / n_t with n_t = 2


def test_uniform_ablation_with_trained_fusion_changes_the_weights_alone():
    d = _build("tfckd-uniform-trained-fusion")
    assert d.calibration is None and d.calibration_summary(_batch()[0]) is None
    assert all(p.requires_grad for p in d.teacher_fusion.parameters())
    before = copy.deepcopy(d.teacher_fusion.state_dict())
    optimiser = torch.optim.SGD(d.trainable_parameters(), lr=0.1)
    losses = d(*_batch())
    # every weight of every stage is exactly 1/n_t, inter included (its straight-through sum)
    for stage, by_stream in d.last_weights.items():
        n_t = by_stream["time"].shape[-1]
        for w in by_stream.values():
            assert torch.equal(w, torch.full_like(w, 1.0 / n_t)), stage
    losses["total"].backward()
    for set_name, chain in d.teacher_fusion.items():
        assert _grad_norm(chain.parameters()) > 0, set_name
    assert _grad_norm(d.fusion_trainer.parameters()) > 0
    optimiser.step()
    for set_name in d.teacher_fusion:                  # a step moves every chain
        assert any(not torch.equal(before[k], v) for k, v in d.teacher_fusion.state_dict().items()
                   if k.startswith(f"{set_name}.")), set_name
    extra = {id(p) for p in d.extra_parameters()}
    assert extra == {id(p) for m in (d.student_fusion, d.teacher_fusion, d.fusion_trainer)
                     for p in m.parameters()}
    # the student's loss and gradient are the frozen-chain ablation's on the same weights
    frozen = _build("tfckd-uniform")
    frozen.load_state_dict({k: v for k, v in d.state_dict().items()
                            if not k.startswith("fusion_trainer.")})
    d.zero_grad(), frozen.zero_grad()
    ours, theirs = d(*_batch(seed=1)), frozen(*_batch(seed=1))
    torch.testing.assert_close(ours["total"], theirs["total"], rtol=0, atol=0)
    ours["total"].backward(), theirs["total"].backward()
    for a, b in zip(d.student.parameters(), frozen.student.parameters()):
        torch.testing.assert_close(a.grad, b.grad)
    with pytest.raises(ValueError, match="train_teacher_fusion"):
        TFCKDDistiller(*_models(), mse, B, T, train_teacher_fusion=True)    # learned: no


def test_calibration_weights_exposed_for_plotting():
    d = _build("tfckd")
    d(*_batch())
    sizes = {"encoder": (3, 3), "dual_path": (1, 2), "decoder": (3, 3), "inter": (3, 3)}
    assert set(d.last_weights) == set(sizes)
    for stage, (n_s, n_t) in sizes.items():
        for stream in ("time", "freq"):
            w = d.last_weights[stage][stream]
            assert w.shape == (B, T, n_s, n_t) and not w.requires_grad
            torch.testing.assert_close(w.sum(-1), torch.ones(B, T, n_s))
    weights = d.calibration_weights(_batch(seed=3)[0])
    assert weights["encoder"]["time"].shape == (B, T, 3, 3)
    assert not torch.equal(weights["encoder"]["time"], d.last_weights["encoder"]["time"] * 0)


def test_wrong_batch_or_frame_count_is_a_clear_error():
    d = _build("tfckd")
    with pytest.raises(ValueError, match=r"batch_size=3 and frames=8, got a batch of 2"):
        d(*_batch(batch=2))
    with pytest.raises(ValueError, match=r"x 9 frame"):
        d(*_batch(frames=9))
    # methods without learned calibration accept any batch
    fs = _build("frame-similarity")
    assert torch.isfinite(fs(*_batch(batch=2, frames=9))["total"])


@pytest.mark.parametrize("method", KD_METHODS)
def test_every_method_gives_a_finite_strictly_positive_kd_loss_and_student_gradients(method):
    d = _build(method)
    losses = d(*_batch())
    kd_terms = {k: v for k, v in losses.items() if k.startswith("kd_")}
    assert kd_terms, "no KD term"
    for key, value in kd_terms.items():
        assert torch.isfinite(value) and value > 0, (method, key, value)
    assert losses["kd"] > 0
    losses["kd"].backward()
    assert _grad_norm(d.student_parameters()) > 0
    assert all(p.grad is None for p in d.teacher.parameters())


@pytest.mark.parametrize("method", list(METHODS))
def test_finite_losses_and_gradients_on_silent_input(method):
    d = _build(method)
    noisy = torch.zeros(B, 2, T, 257)
    losses = d(noisy, torch.zeros_like(noisy))
    assert all(torch.isfinite(v) for v in losses.values()), losses
    losses["total"].backward()
    for p in d.trainable_parameters():
        assert p.grad is None or torch.isfinite(p.grad).all()


def test_student_alone_runs_no_teacher():
    teacher, student = _models()
    d = build_distiller("none", teacher, student, batch_size=B, frames=T, se_loss=mse)
    assert d.teacher is None and d.extra_parameters() == []
    losses = d(*_batch())
    assert set(losses) == {"se", "total"}
    assert losses["total"] is losses["se"]
    with pytest.raises(ValueError, match="no KD term"):
        build_distiller("none", teacher, student, B, T, se_loss=mse, kd_weight=1.0)


class _LossModule(torch.nn.Module):
    """An SE loss written as a module with a parameter: never an 'extra' parameter."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, enhanced, clean):
        return self.scale * mse(enhanced, clean)


def test_method_specific_keys_and_parameters():
    out = _build("output")
    assert set(out(*_batch())) == {"se", "kd_output", "kd", "total"}
    assert out.extra_parameters() == []
    teacher, student = _models()
    with_module_loss = build_distiller("output", teacher, student, B, T, se_loss=_LossModule())
    assert with_module_loss.extra_parameters() == []
    fit = _build("fitnets")
    assert set(fit(*_batch())) == {"se", "kd_encoder", "kd_dual_path", "kd_decoder", "kd",
                                   "total"}
    adaptor_ids = {id(p) for p in fit.adaptors.parameters()}
    assert {id(p) for p in fit.extra_parameters()} == adaptor_ids
    assert fit.adaptors["dual_path"][0].out_channels == 16
    mask_adaptor = fit.adaptors["decoder"][2]
    assert mask_adaptor.in_channels == 2 and mask_adaptor.out_channels == 2
    intra = _build("tfckd-intra")
    assert "kd_inter" not in intra(*_batch()) and intra.student_fusion is None
    time_only = _build("tfckd-time-only")
    time_only(*_batch())
    assert set(time_only.last_weights["inter"]) == {"time"}
    assert all(set(c.query) == {"time"} for c in time_only.calibration.values())
    freq_only = _build("tfckd-freq-only")
    freq_only(*_batch())
    assert set(freq_only.last_weights["decoder"]) == {"freq"}


def test_streams_are_really_dropped_in_the_single_stream_ablations():
    full = _build("tfckd")
    time_only, freq_only = _build("tfckd-time-only"), _build("tfckd-freq-only")
    for d in (time_only, freq_only):   # same random init as the full method
        d.load_state_dict(full.state_dict(), strict=False)
    batch = _batch()
    l_full, l_time, l_freq = full(*batch), time_only(*batch), freq_only(*batch)
    for key in ("kd_encoder", "kd_dual_path", "kd_decoder"):
        torch.testing.assert_close(l_time[key] + l_freq[key], l_full[key])


def test_released_normalisation_option_and_kd_weight_defaults():
    d = _build("tfckd", released_normalisation=True)
    assert all(c.released_normalisation for c in d.calibration.values())
    assert torch.isfinite(d(*_batch())["total"])
    # the tfckd-released ablation is exactly that option, fixed
    ablation = _build("tfckd-released")
    assert all(c.released_normalisation for c in ablation.calibration.values())
    assert not any(c.released_normalisation for c in _build("tfckd").calibration.values())
    with pytest.raises(TypeError, match="fixed by the method"):
        _build("tfckd-released", released_normalisation=False)
    saving = _build("tfckd", fusion_checkpoint=True)
    assert all(c.checkpoint for c in saving.student_fusion.values())
    torch.testing.assert_close(saving(*_batch())["kd"], _build("tfckd")(*_batch())["kd"])
    assert DEFAULT_KD_WEIGHTS["tfckd"] == 1.0 and DEFAULT_KD_WEIGHTS["none"] == 0.0
    assert _build("fitnets").kd_weight == METHODS["fitnets"].kd_weight
    for name in METHODS:
        assert _build(name).name == name


def test_registry_errors():
    teacher, student = _models()
    with pytest.raises(KeyError, match="unknown distillation method"):
        build_distiller("crd", teacher, student, B, T, se_loss=mse)
    with pytest.raises(TypeError, match="does not take"):
        build_distiller("output", teacher, student, B, T, se_loss=mse, fusion_mid_channels=8)
    with pytest.raises(TypeError, match="fixed by the method"):
        build_distiller("tfckd-time-only", teacher, student, B, T, se_loss=mse,
                        streams=("freq",))
    with pytest.raises(TypeError, match="needs a teacher"):
        build_distiller("tfckd", None, student, B, T, se_loss=mse)
    with pytest.raises(TypeError, match="se_loss"):
        build_distiller("output", teacher, student, B, T, se_loss=None)
    with pytest.raises(ValueError, match="same module"):
        build_distiller("output", student, student, B, T, se_loss=mse)
    assert isinstance(_build("tfckd"), TFCKDDistiller) and isinstance(_build("none"), Distiller)


def test_pair_layers_rule():
    assert pair_layers(1, 4) == [3]
    assert pair_layers(3, 3) == [0, 1, 2]
    assert pair_layers(2, 4) == [1, 3]
    assert pair_layers(4, 2) == [0, 0, 1, 1]
    assert pair_layers(1, 1) == [0]


@pytest.mark.parametrize("method", ["tfckd", "frame-similarity", "fitnets", "output"])
def test_a_short_optimisation_loop_reduces_the_kd_loss(method):
    d = _build(method)
    batch = _batch(seed=5)
    optimiser = torch.optim.Adam(d.trainable_parameters(), lr=3e-3)
    history = []
    for _ in range(20):
        kd = d(*batch)["kd"]
        optimiser.zero_grad()
        kd.backward()
        optimiser.step()
        history.append(kd.item())
    assert history[-1] < 0.8 * history[0], history


def test_pair_divergences_are_the_terms_with_the_whole_weight_on_each_pair():
    d = _build("tfckd-uniform").eval()         # uniform: every calibrated term is L_ij / n_t
    noisy, clean = _batch()
    with torch.no_grad():
        d(noisy, clean)
    divergences = d.pair_divergences(noisy)
    assert set(divergences) == {"encoder", "dual_path", "decoder", "inter"}
    for stage, by_stream in divergences.items():
        assert set(by_stream) == {"time", "freq"}
        for stream, matrix in by_stream.items():
            n_t = matrix.shape[1]
            assert not matrix.requires_grad and (matrix >= 0).all()
            torch.testing.assert_close(matrix / n_t, d.last_terms[stage][stream])
    learned = _build("tfckd").eval()
    got = learned.pair_divergences(noisy)
    assert got["dual_path"]["time"].shape == (1, 2) and got["inter"]["freq"].shape == (3, 3)
    with pytest.raises(ValueError, match="batch_size=3 and frames=8"):
        learned.pair_divergences(_batch(batch=2)[0])
