"""``python -m tfckd_lite enhance`` and tfckd_lite.enhance: files, chunks, seams, memory."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from tfckd_lite import cli, pretrained
from tfckd_lite.audio import AudioError, resample
from tfckd_lite.checkpoint import save_model
from tfckd_lite.data import open_corpus
from tfckd_lite.enhance import (ChunkPlan, enhance_file, enhance_long, enhance_stream,
                                output_path)
from tfckd_lite.models import build_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")
REPO = Path(__file__).resolve().parents[1]
RATE = 16000


@pytest.fixture(scope="module")
def student():
    return pretrained.load("lite-student")


@pytest.fixture(scope="module")
def speech(mini):
    """About 8 s of noisy speech: the mini test clips one after the other."""
    test = open_corpus(mini, "test")
    wave = np.concatenate([test[i][0].numpy() for i in range(len(test))])
    return wave[:8 * RATE].astype(np.float32)


def _voiced(seconds: float, rate: int = RATE, seed: int = 0) -> np.ndarray:
    """A steady voiced-like sound (140 Hz harmonics, 3 Hz level swing) in light white noise.

    Its enhanced version changes slowly, so any seam between chunks would stand out.
    """
    t = np.arange(int(seconds * rate)) / rate
    tone = sum(np.sin(2 * np.pi * 140 * k * t + k) / k for k in range(1, 12)) * 0.1
    noise = 0.02 * np.random.default_rng(seed).standard_normal(t.size)
    return (tone * (1 + 0.3 * np.sin(2 * np.pi * 3 * t)) + noise).astype(np.float32)


def _snr_db(reference, estimate) -> float:
    return float(10 * np.log10(np.sum(reference ** 2) / np.sum((reference - estimate) ** 2)))


def _enhance(*argv):
    return cli.main(["enhance", *map(str, argv), "--quiet"])


# ---------------------------------------------------------------------------------- chunks

def test_a_signal_within_one_chunk_is_enhanced_exactly_as_by_the_model(student, speech):
    wave = speech[:3 * RATE]
    expected = student.enhance(torch.from_numpy(wave)).numpy()
    assert np.array_equal(enhance_long(student, wave, chunk_seconds=4, overlap_seconds=1),
                          expected)


def test_chunked_output_matches_the_whole_signal_output(student, speech):
    """8 s in 2 s chunks (6 chunks) against one pass over the 8 s: the model's whole-input
    statistics differ per chunk, so the two agree to about -20 dB, not to float precision."""
    whole = student.enhance(torch.from_numpy(speech)).numpy()
    chunked = enhance_long(student, speech, chunk_seconds=2, overlap_seconds=0.5)
    assert chunked.shape == whole.shape and chunked.dtype == np.float32
    assert _snr_db(whole, chunked) > 15


def test_blocks_of_any_size_give_the_same_output(student, speech):
    wave = speech[:5 * RATE]
    once = enhance_long(student, wave, chunk_seconds=2, overlap_seconds=0.5)
    blocks = [wave[None, i:i + 777] for i in range(0, len(wave), 777)]
    pieces = list(enhance_stream(student, blocks, chunk_seconds=2, overlap_seconds=0.5))
    assert np.array_equal(np.concatenate(pieces), once)


def test_no_seams_beyond_what_whole_signal_processing_shows(student):
    """At every cross-fade the largest sample-to-sample step of the chunked output stays within
    20 % of the whole-signal output's there; chunks joined without overlap (the control) jump
    1.5 to 3 times higher, so the check does see seams."""
    wave = _voiced(8)
    plan = ChunkPlan.from_seconds(2, 0.5, RATE)
    whole = student.enhance(torch.from_numpy(wave)).numpy()
    chunked = enhance_long(student, wave, chunk_seconds=2, overlap_seconds=0.5)
    naive = np.concatenate([student.enhance(torch.from_numpy(wave[s:s + plan.step])).numpy()
                            for s in range(0, len(wave), plan.step)])

    def step(signal, start, stop):
        return float(np.abs(np.diff(signal[start:stop])).max())

    around = 128
    fades = [k * plan.step + plan.margin for k in range(1, len(wave) // plan.step)
             if k * plan.step + plan.overlap < len(wave)]
    assert len(fades) >= 3
    for start in fades:
        window = (start - around, start + plan.fade + around)
        assert step(chunked, *window) <= 1.2 * step(whole, *window), start
    cuts = range(plan.step, len(wave), plan.step)
    ratios = [step(naive, c - around, c + around) / step(whole, c - around, c + around)
              for c in cuts]
    assert min(ratios) > 1.5


@pytest.mark.parametrize("chunk, overlap, message", [
    (2, 0.01, "overlap_seconds=0.01 is too short"),
    (1, 0.75, "must be at least twice overlap_seconds"),
])
def test_chunk_sizes_are_checked(chunk, overlap, message):
    with pytest.raises(ValueError, match=message):
        ChunkPlan.from_seconds(chunk, overlap, RATE)


def test_the_model_refuses_non_finite_input(student):
    for bad in (float("nan"), float("inf")):
        wave = torch.zeros(RATE)
        wave[1234] = bad
        with pytest.raises(ValueError, match=r"1 NaN/inf samples \(the first at index 1234\)"):
            student.enhance(wave)


# ----------------------------------------------------------------------------------- files

@pytest.fixture
def inputs(tmp_path, speech):
    """Good and bad input files, by name."""
    folder = tmp_path / "in"
    folder.mkdir()
    clip = speech[:2 * RATE]
    files = {}

    def wav(name, samples, rate=RATE, subtype="FLOAT"):
        files[name] = folder / f"{name}.wav"
        sf.write(files[name], samples, rate, subtype=subtype)

    wav("mono16k", clip, subtype="PCM_16")
    wav("mono44k", resample(clip, RATE, 44100), rate=44100)
    wav("stereo", np.stack([clip, 0.5 * clip], axis=1))
    with_nan = clip.copy()
    with_nan[[500, 600]] = np.nan
    wav("nan", with_nan)
    with_inf = clip.copy()
    with_inf[700] = np.inf
    wav("inf", with_inf)
    wav("silent", np.zeros(RATE, np.float32))
    wav("no_samples", np.zeros(0, np.float32))
    files["empty"] = folder / "empty.wav"
    files["empty"].write_bytes(b"")
    files["text"] = folder / "text.wav"
    files["text"].write_text("not audio")
    return files


def test_good_files_are_written_and_each_bad_one_gets_its_own_error(student, inputs, tmp_path,
                                                                      capsys):
    out = tmp_path / "out"
    assert _enhance(*inputs.values(), "--model", "lite-student", "--out", out) == 1
    captured = capsys.readouterr()
    errors = captured.err.splitlines()
    expected = {
        "stereo": "has 2 channel(s) but the model takes 1; pass --downmix first",
        "nan": "2 NaN/inf samples (first at sample 500, 0.031 s)",
        "inf": "1 NaN/inf samples (first at sample 700, 0.044 s)",
        "silent": "silent: its peak is -inf dBFS (all zeros)",
        "no_samples": "empty audio (0 samples)",
        "empty": "empty file (0 bytes)",
        "text": "cannot read audio",
    }
    assert len(errors) == len(expected)
    for name, reason in expected.items():
        assert any(line.startswith(f"error: {inputs[name]}: ") and reason in line
                   for line in errors), (name, errors)
    assert "enhanced 2 of 9 file(s)" in captured.out and "failed: " in captured.out
    assert sorted(p.name for p in out.iterdir()) == ["mono16k.wav", "mono44k.wav"]  # no temp

    clip16, rate = sf.read(inputs["mono16k"], dtype="float32")
    written, written_rate = sf.read(out / "mono16k.wav", dtype="float32")
    assert written_rate == RATE and sf.info(out / "mono16k.wav").subtype == "FLOAT"
    assert np.array_equal(written, student.enhance(torch.from_numpy(clip16)).numpy())
    assert "mono44k.wav (2.0 s; resampled from 44100 Hz to 16000 Hz)" in captured.out

    clip44, _ = sf.read(inputs["mono44k"], dtype="float32")
    written, written_rate = sf.read(out / "mono44k.wav", dtype="float32")
    expected44 = student.enhance(torch.from_numpy(resample(clip44, 44100, RATE))).numpy()
    assert written_rate == RATE and written.shape == expected44.shape
    np.testing.assert_allclose(written, expected44, atol=1e-5)


def test_a_stereo_file_for_a_mono_model_with_downmix(student, inputs, tmp_path):
    for how, channel in (("first", lambda x: x[:, 0]), ("mean", lambda x: x.mean(axis=1))):
        out = tmp_path / how
        assert _enhance(inputs["stereo"], "--model", "lite-student", "--out", out,
                        "--downmix", how) == 0
        stereo, _ = sf.read(inputs["stereo"], dtype="float32")
        expected = student.enhance(torch.from_numpy(channel(stereo).astype(np.float32)))
        written, _ = sf.read(out / "stereo.wav", dtype="float32")
        np.testing.assert_allclose(written, expected.numpy(), atol=1e-6)


def test_a_multi_microphone_model_takes_files_with_its_channel_count(inputs, tmp_path, capsys):
    torch.manual_seed(0)
    two_mics = save_model(tmp_path / "two-mics.safetensors",
                          build_model("lite-student", in_channels=2))
    out = tmp_path / "out"
    assert _enhance(inputs["stereo"], inputs["mono16k"], "--model", two_mics, "--out", out) == 1
    err = capsys.readouterr().err
    assert f"error: {inputs['mono16k']}: has 1 channel(s) but the model takes 2\n" == err
    written, _ = sf.read(out / "stereo.wav", dtype="float32")
    assert written.ndim == 1 and len(written) == 2 * RATE
    assert _enhance(inputs["stereo"], "--model", two_mics, "--out", tmp_path / "mixed",
                    "--downmix", "first") == 2
    assert "--downmix is for single-channel models" in capsys.readouterr().err


def test_an_existing_output_is_kept_unless_overwrite(inputs, tmp_path, capsys):
    out = tmp_path / "out"
    assert _enhance(inputs["mono16k"], "--model", "lite-student", "--out", out) == 0
    target = out / "mono16k.wav"
    target.write_bytes(b"an older result")
    capsys.readouterr()
    assert _enhance(inputs["mono16k"], "--model", "lite-student", "--out", out) == 1
    assert f"{target} exists; pass --overwrite" in capsys.readouterr().err
    assert target.read_bytes() == b"an older result"
    assert _enhance(inputs["mono16k"], "--model", "lite-student", "--out", out,
                    "--overwrite") == 0
    assert sf.info(target).frames == 2 * RATE


def test_an_output_never_replaces_its_input(student, inputs):
    with pytest.raises(FileExistsError, match="would replace its own input"):
        enhance_file(student, inputs["mono16k"], inputs["mono16k"].parent, overwrite=True)


def test_a_too_short_file_is_refused(student, tmp_path):
    sf.write(tmp_path / "blip.wav", np.full(300, 0.1, np.float32), RATE)
    with pytest.raises(AudioError, match="too short: 300 samples at 16000 Hz"):
        enhance_file(student, tmp_path / "blip.wav", tmp_path / "out")


def test_command_errors_stop_before_any_work(inputs, tmp_path, capsys):
    out = tmp_path / "out"
    twin = tmp_path / "other" / "mono16k.wav"
    twin.parent.mkdir()
    twin.write_bytes(inputs["mono16k"].read_bytes())
    assert _enhance(inputs["mono16k"], twin, "--model", "lite-student", "--out", out) == 2
    assert "would both be written to" in capsys.readouterr().err
    assert _enhance(inputs["mono16k"], "--model", "lite-giant", "--out", out) == 2
    assert "'lite-giant' is neither a model file nor a shipped model" in capsys.readouterr().err
    assert not out.exists()


def test_a_progress_bar_over_the_files(inputs, tmp_path, capsys):
    files = [inputs["mono16k"], inputs["silent"]]
    assert cli.main(["enhance", *map(str, files), "--model", "lite-student",
                     "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "enhance: 100%" in err and "2/2" in err


def test_output_path():
    assert output_path("/a/b/take 1.flac", "out") == Path("out/take 1.wav")


# ---------------------------------------------------------------------------------- memory

PROBE = """
import json, sys
from tfckd_lite.audio import read_audio
from tfckd_lite.checkpoint import load_model
from tfckd_lite.enhance import enhance_file

def peak_mb():      # this process's own peak RSS (ru_maxrss would include its parent's)
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024

model_file, warm, long_file, out = sys.argv[1:]
model = load_model(model_file)
enhance_file(model, warm, out, chunk_seconds=2, overlap_seconds=0.5)
warmed = peak_mb()
enhance_file(model, long_file, out, chunk_seconds=2, overlap_seconds=0.5)
streamed = peak_mb()
whole = read_audio(long_file)               # the control: the whole file at once
print(json.dumps({"streamed": streamed - warmed, "whole": peak_mb() - streamed}))
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")
def test_a_ten_minute_file_is_enhanced_in_bounded_memory(tmp_path):
    """A 10-minute 44.1 kHz file, in 2 s chunks, in a fresh process: after a warm-up on a
    5 s file, the peak memory grows by less than 40 MB. The control, reading the same file
    whole (``read_audio``: float32 at 44.1 kHz, then resampled to 16 kHz), raises the peak by
    more than 100 MB, so the measurement would see a file held whole.

    The model is an untrained DPDCRN of width 8 with one attention head, about twice as fast
    as the lite student (this test takes about half a minute on a busy 2-core machine, where
    the student needs a minute and more): how memory grows with the file's length does not
    depend on the model's width, and the memory of a chunk of each shipped model is measured
    in the README."""
    rate = 44100
    model = save_model(tmp_path / "tiny.safetensors",
                       build_model("lite-student", channels=8, heads=1, dense_depth=1))
    long_file, warm = tmp_path / "ten-minutes.wav", tmp_path / "warm.wav"
    minute = _voiced(60, rate)
    with sf.SoundFile(long_file, "w", samplerate=rate, channels=1, subtype="PCM_16") as f:
        for _ in range(10):
            f.write(minute)
    sf.write(warm, minute[:5 * rate], rate, subtype="PCM_16")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", PROBE, str(model), str(warm), str(long_file),
                           str(tmp_path / "out")], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    grew = json.loads(done.stdout.strip().splitlines()[-1])
    assert grew["streamed"] < 40 and grew["whole"] > 100, grew
    assert sf.info(tmp_path / "out" / "ten-minutes.wav").frames == 10 * 60 * RATE
