"""The shipped models: loadable without pickle, described, and as good as their JSON says."""

import pytest
import torch

from tfckd_lite import pretrained
from tfckd_lite.checkpoint import read_model_description
from tfckd_lite.models import MULTICHANNEL_PRESETS, PRESETS


@pytest.mark.parametrize("name", ["lite-teacher", "lite-student"])
def test_shipped_model_loads_with_its_preset_and_provenance(name):
    model = pretrained.load(name)
    assert not model.training
    assert model.config == PRESETS[name]
    info = pretrained.describe(name)
    assert info == read_model_description(pretrained.path(name))
    assert info["preset"] == name
    assert info["command"].startswith("python -m tfckd_lite train --preset " + name)
    assert len(info["data_manifest_sha256"]) == 64
    assert info["test"]["summary"]["clips"] == 300
    assert info["history"] and info["metrics"]["epoch"] in [h["epoch"] for h in info["history"]]
    out = model.enhance(torch.randn(8000) * 0.1)
    assert out.shape == (8000,) and torch.isfinite(out).all()


def test_teacher_beats_the_student_baseline_on_every_metric():
    teacher = pretrained.describe("lite-teacher")["test"]["summary"]
    student = pretrained.describe("lite-student")["test"]["summary"]
    for metric in ("pesq_wb", "pesq_nb", "stoi", "estoi", "si_sdr"):
        assert teacher[metric] > student[metric], metric
        assert teacher[metric] > teacher["input_" + metric], metric


def test_unknown_name_lists_what_exists():
    with pytest.raises(KeyError, match="lite-teacher"):
        pretrained.load("nope")


@pytest.mark.parametrize("name", ["lite-teacher", "lite-student"])
def test_shipped_scores_per_noise_type_and_snr_add_up_to_the_whole(name):
    test = pretrained.describe(name)["test"]
    assert list(pretrained.test_breakdown(name, "noise")) == ["babble", "clicks", "fan", "pink"]
    assert list(pretrained.test_breakdown(name, "snr")) == ["2.5", "7.5", "12.5", "17.5"]
    with pytest.raises(KeyError, match="no test scores per 'speaker'"):
        pretrained.test_breakdown(name, "speaker")
    for groups in test["by"].values():
        assert sum(g["clips"] for g in groups.values()) == test["summary"]["clips"]
        for metric in ("pesq_wb", "si_sdr"):
            weighted = sum(g["clips"] * g[f"delta_{metric}"] for g in groups.values())
            assert weighted / test["summary"]["clips"] == pytest.approx(
                test["summary"][f"delta_{metric}"], abs=1e-6)


def test_the_shipped_four_channel_student_is_described_and_enhances_four_channels():
    model = pretrained.load("lite-student-mc4")
    assert model.config == MULTICHANNEL_PRESETS["lite-student-mc4"] and model.config.in_channels == 4
    info = pretrained.describe("lite-student-mc4")
    assert info["command"].startswith("python -m tfckd_lite train --preset lite-student-mc4")
    assert "--mics A" in info["command"] and "mc-small" in info["command"]
    summary = info["test"]["summary"]
    assert summary["clips"] == 200 and summary["unscorable_clips"] == 0   # mc-small's test split
    assert summary["pesq_wb"] > summary["input_pesq_wb"]                  # it does enhance
    out = model.enhance(torch.randn(1, 4, 8000) * 0.1)         # [batch, mics, samples]
    assert out.shape == (1, 8000) and torch.isfinite(out).all()           # the W channel's mask
    with pytest.raises(ValueError, match="takes 4 microphones"):
        model.enhance(torch.randn(8000) * 0.1)


@pytest.mark.parametrize("name, options", [("lite-teacher-mc4", {"mics": "A"}),
                                           ("lite-teacher-w", {"mics": "A", "channels": 0})])
def test_the_shipped_room_teachers_were_scored_on_what_they_hear(name, options):
    """``make pretrained-mc``'s teachers (once shipped): the 4-channel one on microphone A, the
    single-channel one on W of it, each on the whole test split of mc-small."""
    if name not in pretrained.available():
        pytest.skip(f"{name} is not shipped yet (make pretrained-mc)")
    info = pretrained.describe(name)
    assert info["command"].startswith("python -m tfckd_lite train --preset ")
    assert "mc-small" in info["command"] and info["test"]["corpus_options"] == options
    assert pretrained.load(name).config.in_channels == (4 if name.endswith("mc4") else 1)
    summary = info["test"]["summary"]
    assert summary["clips"] == 200 and summary["unscorable_clips"] == 0   # mc-small's test split
