"""Audio files in and out: checked reading, atomic deterministic WAV writing, resampling.

Notebook: 01_signals_and_data.ipynb

Reading (:func:`read_audio`) always returns ``float32`` samples and turns every kind of bad input
into an :class:`AudioError` that names the file, or into a documented conversion:

==============================  ==============================================================
input                           what happens
==============================  ==============================================================
another sample rate             resampled with soxr (HQ) to ``sample_rate``; a
                                :class:`ResampleWarning` is issued once per rate pair
integer PCM (8/16/24/32 bit)    scaled to [-1, 1) (divided by 2**(bits - 1), libsndfile's rule)
float WAV                       taken as it is; values beyond +-1 are kept, not clipped
several channels, mono wanted   error, unless ``downmix="mean"`` (average) or ``"first"``
unreadable / not audio          error naming the file and libsndfile's reason
empty (no samples)              error naming the file
NaN or inf samples              error naming the file, the count and the first position
==============================  ==============================================================

Writing (:func:`write_wav`) produces 16-bit PCM WAV bytes that depend only on the samples
(Python's ``wave`` module writes a plain 44-byte header), then stores them atomically: a
temporary file in the same folder, ``fsync``, ``os.replace``. A reader therefore sees either no
file or the whole file, never half of one.
"""

from __future__ import annotations

import io
import warnings
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .files import atomic_write_bytes, sha256_bytes
from .stft import SAMPLE_RATE  # one source of truth: the STFT front-end

__all__ = ["AudioError", "ResampleWarning", "AudioInfo", "audio_info", "read_audio", "resample",
           "to_pcm16", "wav_bytes", "write_wav"]


class AudioError(ValueError):
    """An audio file that cannot be used as it is; the message names the file and the reason."""

    def __init__(self, path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class ResampleWarning(UserWarning):
    """Audio at another sample rate was resampled on load."""


_ANNOUNCED_RATES: set[tuple[int, int]] = set()


@dataclass(frozen=True)
class AudioInfo:
    """Header facts of an audio file (no samples read).

    Notebook: 01_signals_and_data.ipynb
    """

    path: Path
    sample_rate: int
    frames: int
    channels: int
    subtype: str

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def audio_info(path) -> AudioInfo:
    """Read only the header of ``path``; raises :class:`AudioError` if unreadable or empty.

    Notebook: 01_signals_and_data.ipynb
    """
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise AudioError(path, "no such file")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    try:
        info = sf.info(str(path))
    except Exception as error:  # libsndfile raises several types; all mean "cannot read"
        raise AudioError(path, f"cannot read audio ({_reason(error)})") from error
    if info.frames <= 0:
        raise AudioError(path, "empty audio (0 samples)")
    return AudioInfo(path, int(info.samplerate), int(info.frames), int(info.channels),
                     str(info.subtype))


def _reason(error: Exception) -> str:
    text = str(error).strip() or type(error).__name__
    return text.replace(str(getattr(error, "filename", "")), "").strip(" :") or text


def resample(samples: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """Resample along the last axis with soxr (high quality); returns float32.

    Notebook: 01_signals_and_data.ipynb
    """
    import soxr

    if orig_rate == target_rate:
        return np.asarray(samples, dtype=np.float32)
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim == 1:
        return soxr.resample(x, orig_rate, target_rate, quality="HQ").astype(np.float32)
    lead = x.shape[:-1]
    flat = x.reshape(-1, x.shape[-1]).T                    # soxr wants [time, channels]
    out = soxr.resample(np.ascontiguousarray(flat), orig_rate, target_rate, quality="HQ")
    return np.ascontiguousarray(out.T).reshape(*lead, -1).astype(np.float32)


def read_audio(path, sample_rate: int | None = SAMPLE_RATE, *, mono: bool = True,
               downmix: str | None = None, start: int = 0, frames: int | None = None,
               warn_resample: bool = True) -> np.ndarray:
    """Read ``path`` as float32: ``[N]`` if ``mono`` else ``[channels, N]``, at ``sample_rate``.

    Notebook: 01_signals_and_data.ipynb

    ``sample_rate=None`` keeps the file's own rate. ``start`` and ``frames`` select a part, in
    samples at the output rate (files already at that rate are read partially, others are read
    whole, resampled, then cut). A multi-channel file where ``mono`` is requested raises an
    :class:`AudioError` unless ``downmix`` is ``"mean"`` or ``"first"``. See the module
    docstring for every conversion and error.
    """
    import soundfile as sf

    if downmix not in (None, "mean", "first"):
        raise ValueError(f"downmix must be None, 'mean' or 'first', got {downmix!r}")
    if start < 0 or (frames is not None and frames < 0):
        raise ValueError(f"start and frames must be non-negative, got {start}, {frames}")
    info = audio_info(path)
    path = info.path
    if mono and info.channels > 1 and downmix is None:
        raise AudioError(path, f"has {info.channels} channels but a mono signal is expected; "
                               f"pass downmix='mean' (average) or 'first' (first channel) to "
                               f"convert it")
    target = info.sample_rate if sample_rate is None else int(sample_rate)
    partial = target == info.sample_rate
    try:
        if partial:
            stop = None if frames is None else start + frames
            data, _ = sf.read(str(path), start=min(start, info.frames), stop=stop,
                              dtype="float32", always_2d=True)
        else:
            data, _ = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as error:
        raise AudioError(path, f"cannot read audio ({_reason(error)})") from error
    if data.shape[0] == 0 and start == 0:
        raise AudioError(path, "empty audio (0 samples)")
    bad = ~np.isfinite(data)
    if bad.any():
        first = int(np.argwhere(bad)[0][0])
        raise AudioError(path, f"{int(bad.sum())} NaN/inf samples (first at sample "
                               f"{start + first if partial else first}); the file is corrupt "
                               f"or was written from a diverged model")
    x = data.T                                                   # [channels, time]
    if mono and x.shape[0] > 1:
        x = x.mean(axis=0, keepdims=True) if downmix == "mean" else x[:1]
    if not partial:
        key = (info.sample_rate, target)
        if warn_resample and key not in _ANNOUNCED_RATES:
            _ANNOUNCED_RATES.add(key)
            warnings.warn(f"resampling audio from {info.sample_rate} Hz to {target} Hz on load "
                          f"(soxr HQ), first seen in {path}; said once per rate pair",
                          ResampleWarning, stacklevel=2)
        x = resample(x, info.sample_rate, target)
        x = x[:, start:] if frames is None else x[:, start:start + frames]
    x = np.ascontiguousarray(x, dtype=np.float32)
    return x[0] if mono else x


def to_pcm16(samples) -> np.ndarray:
    """Float samples in [-1, 1] to int16 (x * 32768, rounded, clipped to the int16 range).

    Notebook: 01_signals_and_data.ipynb

    The inverse of libsndfile's reading rule, so reading the result back gives ``q / 32768``.
    """
    x = np.asarray(samples)
    if x.dtype == np.int16:
        return x
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"expected float or int16 samples, got {x.dtype}")
    if not np.isfinite(x).all():
        raise ValueError("cannot convert NaN/inf samples to PCM")
    return np.clip(np.rint(x * 32768.0), -32768, 32767).astype(np.int16)


def wav_bytes(samples, sample_rate: int = SAMPLE_RATE) -> bytes:
    """16-bit PCM WAV file contents for ``[N]`` or ``[channels, N]`` samples (float or int16).

    Notebook: 01_signals_and_data.ipynb

    Float input must lie within [-1, 1] (a clipped file would silently change the data);
    the bytes depend only on the samples and the rate.
    """
    x = np.asarray(samples)
    if np.issubdtype(x.dtype, np.floating) and x.size and np.abs(x).max() > 1.0:
        raise ValueError(f"samples exceed [-1, 1] (peak {np.abs(x).max():.3f}); scale them "
                         f"before writing 16-bit PCM")
    pcm = to_pcm16(x)
    if pcm.ndim == 1:
        pcm = pcm[None]
    if pcm.ndim != 2:
        raise ValueError(f"expected [N] or [channels, N] samples, got shape {pcm.shape}")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(pcm.shape[0])
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(np.ascontiguousarray(pcm.T).astype("<i2").tobytes())
    return buffer.getvalue()


def write_wav(path, samples, sample_rate: int = SAMPLE_RATE) -> str:
    """Write a 16-bit PCM WAV atomically; returns the SHA-256 of the bytes written.

    Notebook: 01_signals_and_data.ipynb
    """
    data = wav_bytes(samples, sample_rate)
    atomic_write_bytes(path, data)
    return sha256_bytes(data)
