import pytest
import torch

from tfckd_lite.models import (DPDCRN, MULTICHANNEL_PRESETS, PRESETS, DilatedDenseBlock,
                               DPDCRNConfig, apply_polar_mask, build_model, count_flops,
                               count_parameters, parameter_table)

# shared/spec/DPDCRN.md, "Exact targets (authors' released definitions)"
SPEC_TABLE = {
    "paper-teacher": {"E1": 1280, "E2": 49664, "E3 dense block": 985088,
                      "dual-path input conv + PReLU": 8257,
                      "intra-frame transformer blocks": 729856,
                      "inter-frame transformer blocks": 399104,
                      "GroupNorms (intra)": 512, "GroupNorms (inter)": 512, "k1, k2": 2,
                      "dual-path out (PReLU + conv)": 8321, "D1 dense block": 985088,
                      "D2": 49664, "D3": 770, "total": 3218118},
    "paper-student": {"E1": 640, "E2": 12544, "E3 dense block": 246784,
                      "dual-path input conv + PReLU": 2081,
                      "intra-frame transformer blocks": 46176,
                      "inter-frame transformer blocks": 25312,
                      "GroupNorms (intra)": 64, "GroupNorms (inter)": 64, "k1, k2": 2,
                      "dual-path out (PReLU + conv)": 2113, "D1 dense block": 246784,
                      "D2": 12544, "D3": 386, "total": 595494},
}


@pytest.mark.parametrize("preset", ["paper-teacher", "paper-student"])
def test_paper_presets_reproduce_the_parameter_table_exactly(preset):
    model = build_model(preset)
    assert parameter_table(model) == SPEC_TABLE[preset]
    assert count_parameters(model) == SPEC_TABLE[preset]["total"]


def test_student_teacher_ratios():
    paper = SPEC_TABLE["paper-student"]["total"] / SPEC_TABLE["paper-teacher"]["total"]
    assert round(100 * paper, 1) == 18.5
    lite = count_parameters(build_model("lite-student")) / count_parameters(build_model("lite-teacher"))
    assert lite < 0.25, "the lite student should be about a fifth of the lite teacher or less"


@pytest.mark.parametrize("preset,gflop", [("paper-teacher", "26.5"), ("paper-student", "4.83")])
def test_flops_per_second_of_audio_match_the_spec(preset, gflop):
    # the spec quotes three significant figures
    assert f"{count_flops(build_model(preset)) / 1e9:.3g}" == gflop


@pytest.mark.parametrize("preset", list(PRESETS))
def test_taps_have_the_specified_shapes(preset):
    torch.manual_seed(0)
    model = build_model(preset).eval()
    C, N = model.config.channels, model.config.dual_path_layers
    spec = torch.randn(2, 2, 10, 257)
    with torch.no_grad():
        out, feats = model(spec, return_features=True)
        plain = model(spec)
    assert out.shape == (2, 2, 10, 257)
    assert torch.allclose(out, plain)
    assert [tuple(f.shape) for f in feats["encoder"]] == [(2, C, 10, 129), (2, C, 10, 64),
                                                          (2, C, 10, 64)]
    assert [tuple(f.shape) for f in feats["dual_path"]] == [(2, C, 10, 64)] * N
    assert [tuple(f.shape) for f in feats["decoder"]] == [(2, C, 10, 64), (2, C, 10, 129),
                                                          (2, 2, 10, 257)]


@pytest.mark.parametrize("preset", list(MULTICHANNEL_PRESETS))
def test_multichannel_presets_widen_only_the_first_convolution(preset):
    model = build_model(preset).eval()
    mics, C = model.config.in_channels, model.config.channels
    mono = build_model(preset.rsplit("-mc", 1)[0])
    assert count_parameters(model) - count_parameters(mono) == (2 * mics - 2) * 3 * C
    wav = torch.randn(1, mics, 4000) * 0.1
    assert model.enhance(wav).shape == (1, 4000)
    assert build_model(preset, in_channels=mics).config == model.config
    with pytest.raises(ValueError, match=f"takes {mics} microphone channels, not 1"):
        build_model(preset, in_channels=1)


def test_dense_block_is_causal_with_a_16_frame_receptive_field():
    torch.manual_seed(0)
    block = DilatedDenseBlock(4).eval()
    for m in block.modules():  # InstanceNorm pools over time; isolate the kernels' reach
        if isinstance(m, torch.nn.InstanceNorm2d):
            m.forward = lambda x: x
    x = torch.randn(1, 4, 40, 8, requires_grad=True)
    block(x)[0, :, 30].sum().backward()
    reach = (x.grad.abs().sum(dim=(0, 1, 3)) > 0).nonzero().flatten().tolist()
    assert reach == list(range(15, 31))


def test_mask_is_polar_and_uses_the_reference_channel():
    torch.manual_seed(0)
    noisy = torch.randn(1, 2, 5, 257)
    mask = torch.randn(1, 2, 5, 257)
    out = apply_polar_mask(noisy, mask)
    y = torch.complex(noisy[:, 0], noisy[:, 1])
    m = torch.complex(mask[:, 0], mask[:, 1])
    ref = torch.tanh(m.abs()) * torch.sqrt(y.abs() ** 2 + 1e-8) * torch.exp(1j * (y.angle() + m.angle()))
    assert torch.allclose(out[:, 0], ref.real, atol=1e-5)
    assert torch.allclose(out[:, 1], ref.imag, atol=1e-5)
    # a gain below one: the mask can only attenuate
    assert (out.square().sum(1) <= noisy.square().sum(1) + 1e-6).all()


def test_mask_gradients_are_finite_on_silence():
    model = DPDCRN(DPDCRNConfig(channels=8, dual_path_layers=1))
    spec = torch.zeros(2, 2, 6, 257, requires_grad=True)
    model(spec).square().sum().backward()
    assert torch.isfinite(spec.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_multichannel_model_uses_the_first_channel_for_the_mask():
    torch.manual_seed(0)
    model = build_model("lite-student", in_channels=4).eval()
    assert model.encoder["E1"][0].in_channels == 8
    wav = torch.randn(2, 4, 8000) * 0.1
    out = model.enhance(wav)
    assert out.shape == (2, 8000)
    with pytest.raises(ValueError, match="microphones"):
        model.enhance(wav[:, 0])


def test_enhance_waveform_shapes():
    model = build_model("lite-student").eval()
    assert model.enhance(torch.randn(8000) * 0.1).shape == (8000,)
    assert model.enhance(torch.randn(3, 8000) * 0.1).shape == (3, 8000)
    with pytest.raises(ValueError, match="single-channel"):
        model.enhance(torch.randn(1, 2, 8000))


def test_bad_spectra_have_clear_errors():
    model = build_model("lite-student")
    with pytest.raises(ValueError, match="257 frequency bins"):
        model(torch.randn(1, 2, 10, 256))
    with pytest.raises(ValueError, match="planes"):
        model(torch.randn(1, 4, 10, 257))
    with pytest.raises(ValueError, match="unsqueeze"):
        model(torch.randn(2, 10, 257))
    with pytest.raises(TypeError, match="complex"):
        model(torch.randn(1, 10, 257, dtype=torch.complex64))
    with pytest.raises(TypeError, match="floating-point"):
        model(torch.zeros(1, 2, 10, 257, dtype=torch.int32))


def test_build_model_errors_and_overrides():
    with pytest.raises(KeyError, match="lite-teacher"):
        build_model("huge")
    with pytest.raises(TypeError, match="unknown DPDCRN option"):
        build_model("lite-student", width=3)
    with pytest.raises(ValueError, match="divisible"):
        build_model("lite-student", channels=20)
    assert build_model("paper-student", dual_path_layers=2).config.dual_path_layers == 2
