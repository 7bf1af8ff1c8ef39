"""Scores per RT60 and SNR band, and the multi-channel model against a mono one given W only."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from tfckd_lite import scenes
from tfckd_lite.data import open_corpus
from tfckd_lite.data.builder_mc import scene_table
from tfckd_lite.metrics import evaluate
from tfckd_lite.models import DPDCRN
from tiny_models import STUDENT

CLIPS = 4


def test_rt60_bands_cover_the_simulated_range():
    assert scenes.RT60_BANDS == ((0.2, 0.4), (0.4, 0.6), (0.6, 0.8))
    assert [scenes.rt60_band(t) for t in (0.2, 0.399, 0.4, 0.6, 0.8)] == \
        ["0.2-0.4 s", "0.2-0.4 s", "0.4-0.6 s", "0.6-0.8 s", "0.6-0.8 s"]
    for outside in (0.19, 0.81):
        with pytest.raises(ValueError, match="outside the simulated range"):
            scenes.rt60_band(outside)
    assert scenes.snr_band(7.5) == "7.5 dB" and scenes.snr_band(0) == "0 dB"


def test_scene_bands_follow_the_manifest(mc_mini):
    bands, table = scenes.scene_bands(mc_mini), scene_table(mc_mini)
    assert set(bands) == set(table)
    for name, scene in table.items():
        low, high = (float(x) for x in bands[name]["rt60"].split()[0].split("-"))
        assert low <= scene["rt60"] <= high
        assert bands[name]["snr"] == f"{scene['snr']:g} dB"


def _records(values):
    return [{"name": n, "pesq_wb": p, "estoi": e, "si_sdr": s, "input_pesq_wb": p - 1,
             "input_estoi": e, "input_si_sdr": s} for n, p, e, s in values]


def test_band_means_are_the_means_of_their_clips_and_nan_is_counted_not_zero():
    bands = {"a": {"rt60": "0.2-0.4 s", "snr": "2.5 dB"},
             "b": {"rt60": "0.2-0.4 s", "snr": "12.5 dB"},
             "c": {"rt60": "0.6-0.8 s", "snr": "2.5 dB"}}
    records = _records([("a", 1.0, 0.5, 3.0), ("b", math.nan, 0.7, 5.0),
                        ("c", 2.0, 0.9, -1.0)])
    table = scenes.scores_by_band(records, bands)
    assert list(table["rt60"]) == ["0.2-0.4 s", "0.6-0.8 s"]
    assert list(table["snr"]) == ["2.5 dB", "12.5 dB"]           # numeric, not text, order
    low = table["rt60"]["0.2-0.4 s"]
    assert low["clips"] == 2 and low["pesq_wb"] == 1.0 and low["unscored"]["pesq_wb"] == 1
    assert low["estoi"] == pytest.approx(0.6) and low["si_sdr"] == pytest.approx(4.0)
    assert math.isnan(table["snr"]["12.5 dB"]["pesq_wb"])          # its one clip: unscored
    assert table["snr"]["2.5 dB"]["si_sdr"] == pytest.approx(1.0)
    assert table["all"]["pesq_wb"] == pytest.approx(1.5) and table["all"]["clips"] == 3
    assert scenes.scores_by_band(records, bands, prefix="input_")["all"]["pesq_wb"] == \
        pytest.approx(0.5)
    with pytest.raises(KeyError, match="no scene"):
        scenes.scores_by_band(_records([("z", 1.0, 0.5, 3.0)]), bands)


@pytest.fixture(scope="module")
def untrained():
    """Untrained tiny models: 4 microphones and 1 (scores mean nothing; structure does)."""
    torch.manual_seed(0)
    mc = DPDCRN(dataclasses.replace(STUDENT, in_channels=4)).eval()
    mono = DPDCRN(STUDENT).eval()
    return mc, mono


@pytest.fixture(scope="module")
def compared(mc_mini, untrained):
    torch.set_num_threads(1)
    return scenes.compare_channels(*untrained, mc_mini, max_clips=CLIPS)


def test_compare_channels_groups_every_row_exactly(mc_mini, compared):
    rows = compared["rows"]
    assert rows == [scenes.UNPROCESSED, "multi-channel", "W only"]
    bands = scenes.scene_bands(mc_mini)
    for row, prefix in zip(rows, ("input_", "", "")):
        records = compared["records"][row]
        assert len(records) == CLIPS
        table = compared["tables"][row]
        for field in scenes.BAND_FIELDS:
            assert sum(cell["clips"] for cell in table[field].values()) == CLIPS
            for label, cell in table[field].items():
                mine = [r for r in records if bands[r["name"]][field] == label]
                for metric, _ in scenes.BAND_METRICS:
                    values = [r[prefix + metric] for r in mine]
                    assert cell[metric] == pytest.approx(float(np.nanmean(values)))


def test_the_mono_model_hears_w_and_the_unprocessed_row_is_w(mc_mini, untrained, compared):
    mc_records = compared["records"]["multi-channel"]
    mono_records = compared["records"]["W only"]
    assert [r["name"] for r in mc_records] == [r["name"] for r in mono_records]
    # both evaluations score the same unprocessed W against the same clean speech
    for a, b in zip(mc_records, mono_records):
        for metric, _ in scenes.BAND_METRICS:
            assert a[f"input_{metric}"] == pytest.approx(b[f"input_{metric}"])
    # the W-only view is channel 0 of microphone A, as the loader reads it
    w = open_corpus(mc_mini, "test", mics="A", channels=0)[0][0]
    full = open_corpus(mc_mini, "test", mics="A")[0][0]
    assert w.dim() == 1 and torch.equal(w, full[0])
    # and the mono row is the mono model's output on it
    mono = untrained[1]
    again = evaluate(mono.enhance, open_corpus(mc_mini, "test", mics="A", channels=0),
                     metrics=("si_sdr",), max_clips=1, progress=False)["records"][0]
    assert again["si_sdr"] == pytest.approx(mono_records[0]["si_sdr"])
    text = scenes.channels_markdown(compared)
    assert "By RT60" in text and "By SNR" in text and scenes.UNPROCESSED in text


def test_compare_channels_refuses_models_of_the_wrong_channels(mc_mini, untrained):
    mc, mono = untrained
    with pytest.raises(ValueError, match="multi-channel model takes 1 channel"):
        scenes.compare_channels(mono, mono, mc_mini, max_clips=1)
    with pytest.raises(ValueError, match="single-channel model takes 4 channels"):
        scenes.compare_channels(mc, mc, mc_mini, max_clips=1)
    with pytest.raises(ValueError, match="takes 4 channel.* give 8"):
        scenes.compare_channels(mc, mono, mc_mini, mics="AB", max_clips=1)
