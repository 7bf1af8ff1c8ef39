"""tfckd_lite.audio: checked reading (every bad input), deterministic atomic WAV writing."""

import os
import warnings

import numpy as np
import pytest
import soundfile as sf

from tfckd_lite import audio, files
from tfckd_lite.audio import AudioError, ResampleWarning, read_audio, wav_bytes, write_wav


def _tone(n=4000, rate=16000, amplitude=0.5):
    return (amplitude * np.sin(2 * np.pi * 440 * np.arange(n) / rate)).astype(np.float32)


def test_write_wav_is_deterministic_atomic_and_reads_back_exactly(tmp_path):
    x = _tone()
    digest = write_wav(tmp_path / "a.wav", x)
    assert digest == files.sha256_file(tmp_path / "a.wav")
    assert wav_bytes(x) == (tmp_path / "a.wav").read_bytes()          # bytes depend on samples only
    assert len(wav_bytes(x)) == 44 + 2 * len(x)                         # plain 44-byte header
    assert [p.name for p in tmp_path.iterdir()] == ["a.wav"]            # no temporary file left
    assert (tmp_path / "a.wav").stat().st_mode & 0o777 == 0o666 & ~files._UMASK
    back = read_audio(tmp_path / "a.wav")
    assert back.dtype == np.float32 and back.shape == x.shape
    np.testing.assert_array_equal(back * 32768, audio.to_pcm16(x).astype(np.float32))
    info = sf.info(str(tmp_path / "a.wav"))
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")


def test_write_wav_refuses_clipping_and_failed_writes_leave_nothing(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="exceed"):
        wav_bytes(np.array([0.0, 1.5], np.float32))

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        write_wav(tmp_path / "b.wav", _tone())
    assert list(tmp_path.iterdir()) == []                               # neither file nor temp


@pytest.mark.parametrize("subtype,step", [("PCM_U8", 1 / 128), ("PCM_16", 1 / 32768),
                                          ("PCM_24", 2.0 ** -23), ("PCM_32", 2.0 ** -31),
                                          ("FLOAT", 1e-7), ("DOUBLE", 1e-7)])
def test_integer_and_float_formats_are_scaled_to_plus_minus_one(tmp_path, subtype, step):
    x = _tone(amplitude=0.7)
    sf.write(str(tmp_path / "f.wav"), x, 16000, subtype=subtype)
    y = read_audio(tmp_path / "f.wav")
    assert y.dtype == np.float32
    assert np.max(np.abs(y - x)) <= step + 1e-7


def test_float_values_beyond_one_are_kept(tmp_path):
    x = np.array([0.0, 1.5, -2.0, 0.25] * 100, np.float32)
    sf.write(str(tmp_path / "loud.wav"), x, 16000, subtype="FLOAT")
    np.testing.assert_array_equal(read_audio(tmp_path / "loud.wav"), x)


def test_other_sample_rates_are_resampled_and_said_once(tmp_path, monkeypatch):
    monkeypatch.setattr(audio, "_ANNOUNCED_RATES", set())
    x = _tone(n=48000, rate=48000)
    for name in ("a.wav", "b.wav"):
        sf.write(str(tmp_path / name), x, 48000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        y = read_audio(tmp_path / "a.wav")
        read_audio(tmp_path / "b.wav")
    said = [w for w in caught if issubclass(w.category, ResampleWarning)]
    assert len(said) == 1 and "48000 Hz to 16000 Hz" in str(said[0].message)
    assert y.shape == (16000,)
    spectrum = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spectrum) * 16000 / len(y) - 440) <= 1.0     # still a 440 Hz tone
    assert read_audio(tmp_path / "a.wav", sample_rate=None).shape == (48000,)


def test_stereo_where_mono_is_expected_raises_or_is_converted(tmp_path):
    stereo = np.stack([_tone(), 0.5 * _tone()], axis=1)
    sf.write(str(tmp_path / "st.wav"), stereo, 16000)
    with pytest.raises(AudioError, match=r"st\.wav: has 2 channels but a mono signal"):
        read_audio(tmp_path / "st.wav")
    mean = read_audio(tmp_path / "st.wav", downmix="mean")
    first = read_audio(tmp_path / "st.wav", downmix="first")
    np.testing.assert_allclose(mean, 0.75 * _tone(), atol=1e-4)
    np.testing.assert_allclose(first, _tone(), atol=1e-4)
    assert read_audio(tmp_path / "st.wav", mono=False).shape == (2, 4000)


def test_unreadable_empty_and_missing_files_are_named(tmp_path):
    (tmp_path / "junk.wav").write_bytes(b"this is not audio at all" * 10)
    (tmp_path / "zero.wav").write_bytes(b"")
    sf.write(str(tmp_path / "noframes.wav"), np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match=r"junk\.wav: cannot read audio"):
        read_audio(tmp_path / "junk.wav")
    with pytest.raises(AudioError, match=r"zero\.wav: empty file"):
        read_audio(tmp_path / "zero.wav")
    with pytest.raises(AudioError, match=r"noframes\.wav: empty audio"):
        read_audio(tmp_path / "noframes.wav")
    with pytest.raises(AudioError, match=r"absent\.wav: no such file"):
        read_audio(tmp_path / "absent.wav")


def test_nan_and_inf_samples_are_reported_with_count_and_position(tmp_path):
    x = _tone()
    x[100], x[200], x[300] = np.nan, np.inf, -np.inf
    sf.write(str(tmp_path / "bad.wav"), x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"bad\.wav: 3 NaN/inf samples \(first at sample 100\)"):
        read_audio(tmp_path / "bad.wav")


def test_partial_reads_match_slices(tmp_path):
    x = _tone(n=16000)
    write_wav(tmp_path / "p.wav", x)
    whole = read_audio(tmp_path / "p.wav")
    np.testing.assert_array_equal(read_audio(tmp_path / "p.wav", start=1000, frames=500),
                                  whole[1000:1500])
    assert read_audio(tmp_path / "p.wav", start=15900, frames=500).shape == (100,)
    sf.write(str(tmp_path / "p48.wav"), _tone(n=48000, rate=48000), 48000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResampleWarning)
        whole48 = read_audio(tmp_path / "p48.wav")
        part48 = read_audio(tmp_path / "p48.wav", start=2000, frames=3000)
    np.testing.assert_array_equal(part48, whole48[2000:5000])


def test_multichannel_writing_round_trips(tmp_path):
    x = np.stack([_tone(), -_tone(), 0.1 * _tone()])
    write_wav(tmp_path / "m.wav", x)
    y = read_audio(tmp_path / "m.wav", mono=False)
    assert y.shape == (3, 4000)
    np.testing.assert_allclose(y, x, atol=1 / 32768)
