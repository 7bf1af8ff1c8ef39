"""Metrics: reference values, shape conventions, unscorable clips, evaluate() over a dataset."""

import math

import numpy as np
import pytest
import soundfile as sf
import torch

from tfckd_lite import metrics
from tfckd_lite.data import PairedDataset, mix_at_snr, open_corpus
from tfckd_lite.data.noise import colored_noise
from tfckd_lite.metrics import UnscorableError


@pytest.fixture(scope="module")
def test_set(mini):
    return open_corpus(mini, "test")


@pytest.fixture(scope="module")
def speech(test_set):
    """A clean test utterance (numpy float64)."""
    return test_set[0][1].double().numpy()


def test_identical_signals_get_the_top_scores(speech):
    assert 4.63 < metrics.pesq_wb(speech, speech) <= 4.65
    assert 4.5 < metrics.pesq_nb(speech, speech) <= 4.56
    assert metrics.stoi(speech, speech) == pytest.approx(1.0, abs=1e-6)
    assert metrics.estoi(speech, speech) == pytest.approx(1.0, abs=1e-6)
    assert metrics.si_sdr(speech, speech) > 60


def test_every_metric_falls_as_the_snr_falls(speech):
    noise = colored_noise(len(speech), 1.0, np.random.default_rng(0))
    scores = []
    for snr in (20, 10, 0, -5):
        clean, noisy = mix_at_snr(speech, noise, snr)
        scores.append({name: getattr(metrics, name)(noisy, clean) for name in metrics.METRICS})
        assert scores[-1]["si_sdr"] == pytest.approx(snr, abs=0.5)   # additive noise: SI-SDR ~ SNR
    for name in metrics.METRICS:
        values = [s[name] for s in scores]
        assert all(a > b for a, b in zip(values, values[1:])), (name, values)


def test_shape_conventions_numpy_and_torch(speech):
    x = speech[:24000]
    rng = np.random.default_rng(1)
    batch_ref = np.stack([np.stack([x, x, x]), np.stack([x, x, x])])          # (2, 3, T)
    batch_est = batch_ref + 0.05 * rng.standard_normal(batch_ref.shape)
    out = metrics.stoi(batch_est, batch_ref, 16000)
    assert isinstance(out, np.ndarray) and out.shape == (2, 3)
    assert out[0, 0] == pytest.approx(metrics.stoi(batch_est[0, 0], x))
    out_t = metrics.pesq_wb(torch.from_numpy(batch_est[0]), torch.from_numpy(batch_ref[0]))
    assert isinstance(out_t, torch.Tensor) and out_t.shape == (3,)
    assert isinstance(metrics.pesq_wb(batch_est[0, 0], x), float)
    sdr = metrics.si_sdr(torch.from_numpy(batch_est), torch.from_numpy(batch_ref))
    assert sdr.shape == (2, 3)
    np.testing.assert_allclose(sdr.numpy(), metrics.si_sdr(batch_est, batch_ref), rtol=1e-6)
    with pytest.raises(ValueError, match="differ in shape"):
        metrics.stoi(x, x[:-1])


def test_si_sdr_is_scale_invariant_and_differentiable(speech):
    x = torch.from_numpy(speech[:16000]).float()
    noisy = x + 0.1 * torch.randn(16000, generator=torch.Generator().manual_seed(0))
    assert metrics.si_sdr(3.0 * noisy, x) == pytest.approx(metrics.si_sdr(noisy, x), abs=1e-3)
    estimate = noisy.clone().requires_grad_(True)
    metrics.si_sdr(estimate[None], x[None]).sum().backward()
    assert estimate.grad is not None and torch.isfinite(estimate.grad).all()


def test_other_sample_rates(speech):
    import soxr

    x8 = soxr.resample(speech, 16000, 8000)
    noisy8 = x8 + 0.02 * np.random.default_rng(0).standard_normal(len(x8))
    assert 1.0 < metrics.pesq_nb(noisy8, x8, 8000) < 4.6
    x48 = soxr.resample(speech, 16000, 48000)
    assert metrics.pesq_wb(x48, x48, 48000) > 4.6                 # resampled to 16 kHz
    assert metrics.stoi(x48, x48, 48000) == pytest.approx(1.0, abs=1e-6)


def test_unscorable_clips_raise_with_a_reason_or_give_nan(speech):
    silence = np.zeros(32000)
    with pytest.raises(UnscorableError, match="reference is silent"):
        metrics.pesq_wb(speech[:32000], silence)
    with pytest.raises(UnscorableError, match="estimate is silent"):
        metrics.pesq_wb(silence, speech[:32000])
    short = speech[8000:9600]                                       # 0.1 s of speech
    with pytest.raises(UnscorableError, match="too short"):
        metrics.pesq_wb(short, short)
    with pytest.raises(UnscorableError, match="too little speech"):
        metrics.stoi(short, short)
    bad = speech[:32000].copy()
    bad[5] = np.nan
    with pytest.raises(UnscorableError, match="estimate has 1 NaN/inf samples"):
        metrics.estoi(bad, speech[:32000])
    assert math.isnan(metrics.pesq_nb(short, short, on_error="nan"))
    scores, errors = metrics.score_pair(silence, speech[:32000])
    assert math.isnan(scores["pesq_wb"]) and "silent" in errors["pesq_wb"]
    assert scores["stoi"] == pytest.approx(0.0, abs=1e-6) and "stoi" not in errors


def test_evaluate_reports_input_scores_improvements_and_unscorable_clips(tmp_path, test_set):
    (tmp_path / "noisy").mkdir()
    (tmp_path / "clean").mkdir()
    for i in range(3):                      # three good pairs from the test set ...
        noisy, clean, name = test_set[i]
        sf.write(str(tmp_path / "noisy" / f"{name}.wav"), noisy.numpy(), 16000)
        sf.write(str(tmp_path / "clean" / f"{name}.wav"), clean.numpy(), 16000)
    sf.write(str(tmp_path / "noisy" / "zz_silent.wav"), 0.01 * np.ones(16000), 16000)
    sf.write(str(tmp_path / "clean" / "zz_silent.wav"), np.zeros(16000), 16000)   # ... and a bad one
    dataset = PairedDataset.from_folders(tmp_path / "noisy", tmp_path / "clean")

    noisy_only = metrics.evaluate(None, dataset, workers=1, progress=False)
    summary = noisy_only["summary"]
    assert summary["clips"] == 4 and summary["unscorable_clips"] == 1
    assert "pesq_wb" not in summary and "delta_pesq_wb" not in summary
    assert summary["scored_input_pesq_wb"] == 3
    good = [r["input_pesq_wb"] for r in noisy_only["records"][:3]]
    assert summary["input_pesq_wb"] == pytest.approx(np.mean(good))
    reasons = {(u["name"], u["metric"]) for u in summary["unscorable"]}
    assert ("zz_silent", "input_pesq_wb") in reasons
    assert all("reference is silent" in u["reason"] for u in summary["unscorable"])
    header = metrics.format_summary(summary).splitlines()[0]
    assert header.split() == ["metric", "input"], "nothing enhanced: no empty columns"

    def oracle(noisy):                      # "enhances" by returning the clean signal
        name = dataset.names[oracle.calls]
        oracle.calls += 1
        return torch.from_numpy(dataset.load(dataset.names.index(name))[1])[None]

    oracle.calls = 0
    result = metrics.evaluate(oracle, dataset, workers=2, progress=False)
    s = result["summary"]
    assert [r["name"] for r in result["records"]] == dataset.names
    assert 4.6 < s["pesq_wb"] <= 4.65 and s["delta_pesq_wb"] > 1.0
    assert s["delta_stoi"] > 0 and s["delta_si_sdr"] > 20
    assert s["input_pesq_wb"] == pytest.approx(summary["input_pesq_wb"])   # workers change nothing
    assert "delta" in metrics.format_summary(s)

    identity = metrics.evaluate(lambda x: x, dataset.subset(2), metrics=("si_sdr", "stoi"),
                                workers=1, progress=False)["summary"]
    assert identity["delta_si_sdr"] == pytest.approx(0.0, abs=1e-9)
    assert set(k for k in identity if k.startswith("delta_")) == {"delta_si_sdr", "delta_stoi"}


def test_evaluate_rejects_wrong_output_shapes_and_unknown_metrics(test_set):
    with pytest.raises(ValueError, match="enhance_fn returned shape"):
        metrics.evaluate(lambda x: x[..., :-5], test_set, max_clips=1, workers=1, progress=False)
    with pytest.raises(ValueError, match="unknown metric"):
        metrics.evaluate(None, test_set, metrics=("mos",), workers=1, progress=False)


def test_evaluate_max_clips_and_multichannel_reference(tmp_path):
    rng = np.random.default_rng(0)
    t = np.arange(24000) / 16000
    clean = 0.3 * np.sin(2 * np.pi * 200 * t) * (1 + np.sin(2 * np.pi * 2 * t))
    (tmp_path / "noisy").mkdir()
    (tmp_path / "clean").mkdir()
    for i in range(3):
        mics = np.stack([clean + 0.05 * rng.standard_normal(24000) for _ in range(4)], axis=1)
        sf.write(str(tmp_path / "noisy" / f"u{i}.wav"), mics * 0.5, 16000)
        sf.write(str(tmp_path / "clean" / f"u{i}.wav"), clean * 0.5, 16000)
    dataset = PairedDataset.from_folders(tmp_path / "noisy", tmp_path / "clean",
                                         multichannel=True)
    seen = []

    def first_mic(noisy):
        seen.append(tuple(noisy.shape))
        return noisy[:, 0]

    out = metrics.evaluate(first_mic, dataset, metrics=("si_sdr",), max_clips=2, workers=1,
                           progress=False)
    assert seen == [(1, 4, 24000)] * 2 and out["summary"]["clips"] == 2
    assert out["summary"]["delta_si_sdr"] == pytest.approx(0.0, abs=1e-6)


def test_summary_by_groups_the_clips_by_what_the_corpus_logs(test_set):
    report = metrics.evaluate(lambda x: 0.5 * x, test_set, metrics=("si_sdr",), workers=1,
                              progress=False)
    infos = [test_set.info(i) for i in range(len(test_set))]
    by_noise = metrics.summary_by(report, test_set, "noise")
    assert list(by_noise) == sorted({info["noise"] for info in infos})
    assert sum(s["clips"] for s in by_noise.values()) == len(test_set)
    for noise, summary in by_noise.items():
        names = {info["name"] for info in infos if info["noise"] == noise}
        values = [r["input_si_sdr"] for r in report["records"] if r["name"] in names]
        assert summary["clips"] == len(names)
        assert summary["input_si_sdr"] == pytest.approx(np.mean(values))
        assert summary["delta_si_sdr"] == pytest.approx(0.0, abs=1e-6)   # scaling changes nothing
    by_snr = metrics.summary_by(report, test_set, "snr")
    assert list(by_snr) == sorted(by_snr) and all(isinstance(k, float) for k in by_snr)
    table = metrics.format_breakdown(by_snr, "snr")
    assert table.splitlines()[0].split()[:3] == ["snr", "clips", "si_sdr"]
    assert len(table.splitlines()) == len(by_snr) + 1
    assert set(metrics.summary_by(report, test_set, "no-such-field")) == {None}
    from tfckd_lite.plots import plot_breakdown

    _, ax, bars = plot_breakdown({"a": by_noise, "b": by_noise}, metric="si_sdr")
    assert [len(b) for b in bars] == [len(by_noise)] * 2
    assert [t.get_text() for t in ax.get_xticklabels()] == list(by_noise)
    _, _, bars = plot_breakdown({"a": by_noise}, metric="si_sdr", delta=False)
    assert [b.get_label() for b in bars] == ["noisy input", "a"]
    with pytest.raises(ValueError, match="not in this dataset"):
        metrics.summary_by(report, test_set.subset(2), "noise")


def test_bootstrap_interval_of_a_mean():
    rng = np.random.default_rng(1)
    values = 0.3 + rng.normal(0.0, 1.0, size=400)
    result = metrics.bootstrap_mean_interval(values)
    assert result["mean"] == pytest.approx(values.mean()) and result["n"] == 400
    assert result["low"] < result["mean"] < result["high"]
    # about ± 1.96 standard errors for a mean of 400 draws of unit spread
    half_width = (result["high"] - result["low"]) / 2
    assert half_width == pytest.approx(1.96 * values.std(ddof=1) / 20, rel=0.1)
    assert metrics.bootstrap_mean_interval(values) == result            # seeded: reproducible
    narrower = metrics.bootstrap_mean_interval(values, confidence=0.5)
    assert result["low"] < narrower["low"] < narrower["high"] < result["high"]
    # constant differences: no doubt at all; unscorable (NaN) clips are left out and counted
    flat = metrics.bootstrap_mean_interval([0.1, 0.1, float("nan"), 0.1])
    assert flat == {"mean": pytest.approx(0.1), "low": pytest.approx(0.1),
                    "high": pytest.approx(0.1), "n": 3, "dropped": 1}
    with pytest.raises(ValueError, match="no finite value"):
        metrics.bootstrap_mean_interval([float("nan")])
    with pytest.raises(ValueError, match="confidence"):
        metrics.bootstrap_mean_interval(values, confidence=95)
