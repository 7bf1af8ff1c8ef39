"""Procedural noise and mixing at a target SNR.

Notebook: 01_signals_and_data.ipynb

No real noise corpus (DEMAND, MUSAN, ESC-50) can be installed offline, so noise is generated:

==========  =================================================================================
type        how it is made
==========  =================================================================================
white       Gaussian samples (flat spectrum)
pink        white noise shaped to 1/f power in the frequency domain (flat below 20 Hz)
brown       white noise shaped to 1/f^2 power (flat below 20 Hz): a rumble
hum         mains hum: 50 or 60 Hz and its harmonics with random, decaying amplitudes, slow
            drift, plus a faint pink floor
fan         low-passed pink noise (cut-off 300-1500 Hz) whose loudness is modulated at the blade
            rate (2-12 Hz), plus a weak blade-pass tone
clicks      random impulses (2-15 per second, decaying, random sign) over a faint white floor
babble      3-6 overlapped utterances of *training* speakers (never of test speakers)
knocks      knocks and taps (0.5-6 per second): a short noise strike exciting 1-3 damped
            resonances (150-4000 Hz, ringing 5-60 ms), over a faint pink floor
gusts       wind- or traffic-like: colored noise (1/f^0..2) whose level swells and fades by up
            to about 20 dB along a smoothed random curve (0.2-3 Hz)
==========  =================================================================================

Why knocks and gusts (training and validation only, since builder version 3): with only
stationary noise and babble in training, the first shipped teacher removed the unseen test
clicks barely at all (+1.2 dB SI-SDR against +5 dB on pink). Real training corpora (DNS, MUSAN)
cover the impulsive and non-stationary *families*; these two generators do the same while the
test split's fan and clicks generators stay unseen: knocks are resonant and tens of
milliseconds long, clicks are broadband sub-3 ms impulses; gusts swell slowly and at random,
the fan is modulated periodically at its blade rate.

Every generator returns float64 samples with unit RMS; :func:`mix_at_snr` scales the noise.
The SNR is the ratio of whole-signal energies, ``10 log10(sum(clean^2) / sum(noise^2))``.
"""

from __future__ import annotations

import numpy as np

from ..audio import SAMPLE_RATE

NOISE_TYPES = ("white", "pink", "brown", "hum", "fan", "clicks", "babble", "knocks", "gusts")


def _unit_rms(x: np.ndarray) -> np.ndarray:
    rms = np.sqrt(np.mean(x ** 2))
    if not np.isfinite(rms) or rms == 0:
        raise ValueError("generated noise is silent or non-finite")
    return x / rms


def colored_noise(num_samples: int, exponent: float, rng: np.random.Generator,
                  sample_rate: int = SAMPLE_RATE, f_min: float = 20.0) -> np.ndarray:
    """Gaussian noise with power spectrum ~ 1/f**exponent (0 white, 1 pink, 2 brown), unit RMS.

    Notebook: 01_signals_and_data.ipynb
    """
    if exponent == 0:
        return _unit_rms(rng.standard_normal(num_samples))
    size = _fast_length(num_samples)        # shaped at a fast FFT size, then cut
    spectrum = np.fft.rfft(rng.standard_normal(size))
    freqs = np.fft.rfftfreq(size, 1.0 / sample_rate)
    gain = np.maximum(freqs, f_min) ** (-exponent / 2.0)
    gain[0] = 0.0
    return _unit_rms(np.fft.irfft(spectrum * gain, n=size)[:num_samples])


def _fast_length(n: int) -> int:
    """Smallest 2**a * 3**b * 5**c >= n (FFTs of such sizes are fast)."""
    best = 1 << max(0, int(n - 1).bit_length())
    power5 = 1
    while power5 < best:
        power3 = power5
        while power3 < best:
            size = power3
            while size < n:
                size *= 2
            best = min(best, size)
            power3 *= 3
        power5 *= 5
    return best


def _lowpass(x: np.ndarray, cutoff: float, sample_rate: int, order: int = 4) -> np.ndarray:
    size = _fast_length(len(x))
    spectrum = np.fft.rfft(x, n=size)
    freqs = np.fft.rfftfreq(size, 1.0 / sample_rate)
    spectrum *= 1.0 / np.sqrt(1.0 + (freqs / cutoff) ** (2 * order))   # Butterworth magnitude
    return np.fft.irfft(spectrum, n=size)[:len(x)]


def hum_noise(num_samples: int, rng: np.random.Generator,
              sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mains hum (50 or 60 Hz with harmonics, slow drift) over a faint pink floor; unit RMS.

    Notebook: 01_signals_and_data.ipynb
    """
    t = np.arange(num_samples) / sample_rate
    base = 50.0 if rng.random() < 0.5 else 60.0
    drift = 1.0 + 0.002 * np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * t + rng.uniform(0, 6.28))
    phase = 2 * np.pi * base * np.cumsum(drift) / sample_rate
    x = np.zeros(num_samples)
    for harmonic in range(1, int(rng.integers(6, 16)) + 1):
        if harmonic * base >= sample_rate / 2:
            break
        amplitude = rng.uniform(0.3, 1.0) / harmonic ** rng.uniform(0.5, 1.2)
        x += amplitude * np.sin(harmonic * phase + rng.uniform(0, 2 * np.pi))
    x = _unit_rms(x)
    return _unit_rms(x + 0.05 * colored_noise(num_samples, 1.0, rng, sample_rate))


def fan_noise(num_samples: int, rng: np.random.Generator,
              sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Fan-like noise: low-passed pink noise, modulated at the blade rate, plus a blade tone.

    Notebook: 01_signals_and_data.ipynb
    """
    t = np.arange(num_samples) / sample_rate
    body = _lowpass(colored_noise(num_samples, 1.0, rng, sample_rate),
                    rng.uniform(300.0, 1500.0), sample_rate)
    rate = rng.uniform(2.0, 12.0)
    depth = rng.uniform(0.2, 0.6)
    body = _unit_rms(body) * (1.0 + depth * np.sin(2 * np.pi * rate * t + rng.uniform(0, 6.28)))
    tone = np.sin(2 * np.pi * rng.uniform(100.0, 300.0) * t + rng.uniform(0, 6.28))
    return _unit_rms(body + rng.uniform(0.05, 0.3) * tone)


def click_noise(num_samples: int, rng: np.random.Generator,
                sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Random decaying impulses (2-15 per second) over a faint white floor; unit RMS.

    Notebook: 01_signals_and_data.ipynb
    """
    x = 0.02 * rng.standard_normal(num_samples)
    rate = rng.uniform(2.0, 15.0)
    count = max(1, int(rng.poisson(rate * num_samples / sample_rate)))
    for start in rng.integers(0, num_samples, size=count):
        tau = rng.uniform(0.0005, 0.003) * sample_rate
        length = min(int(8 * tau), num_samples - start)
        envelope = np.exp(-np.arange(length) / tau)
        burst = rng.standard_normal(length) * envelope * rng.uniform(0.3, 1.0)
        x[start:start + length] += rng.choice([-1.0, 1.0]) * np.abs(burst)
    return _unit_rms(x)


def knock_noise(num_samples: int, rng: np.random.Generator,
                sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Knocks and taps: noise strikes ringing through 1-3 damped resonances; unit RMS.

    Notebook: 01_signals_and_data.ipynb

    Each event is a 1-4 ms noise strike plus damped sinusoids (150-4000 Hz, decay constant
    5-60 ms), at 0.5-6 events per second, over a faint pink floor.
    """
    x = 0.02 * colored_noise(num_samples, 1.0, rng, sample_rate)
    count = max(1, int(rng.poisson(rng.uniform(0.5, 6.0) * num_samples / sample_rate)))
    for start in rng.integers(0, num_samples, size=count):
        tau = rng.uniform(0.005, 0.06) * sample_rate
        length = min(int(6 * tau), num_samples - start)
        t = np.arange(length) / sample_rate
        event = np.zeros(length)
        for _ in range(int(rng.integers(1, 4))):
            frequency = np.exp(rng.uniform(np.log(150.0), np.log(4000.0)))
            event += rng.uniform(0.3, 1.0) * np.sin(2 * np.pi * frequency * t
                                                    + rng.uniform(0, 2 * np.pi))
        event *= np.exp(-np.arange(length) / tau)
        strike = min(length, int(rng.uniform(0.001, 0.004) * sample_rate))
        event[:strike] += rng.standard_normal(strike) * rng.uniform(0.2, 1.0)
        x[start:start + length] += rng.uniform(0.3, 1.0) * event
    return _unit_rms(x)


def gust_noise(num_samples: int, rng: np.random.Generator,
               sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Wind- or traffic-like noise whose level swells and fades at random; unit RMS.

    Notebook: 01_signals_and_data.ipynb

    Colored noise (spectral exponent 0-2) times a level curve: Gaussian noise low-passed at
    0.2-3 Hz, scaled to a spread of 4-10 dB (so about 20 dB from trough to peak) in level.
    """
    body = colored_noise(num_samples, rng.uniform(0.0, 2.0), rng, sample_rate)
    curve = _lowpass(rng.standard_normal(num_samples), rng.uniform(0.2, 3.0), sample_rate, order=2)
    curve = curve / (np.std(curve) + 1e-12) * rng.uniform(4.0, 10.0)
    return _unit_rms(body * 10.0 ** (curve / 20.0))


def babble_noise(num_samples: int, rng: np.random.Generator, speech_pool,
                 talkers: tuple[int, int] = (3, 6)) -> np.ndarray:
    """Overlap of 3-6 utterances drawn from ``speech_pool`` (looped, random offsets); unit RMS.

    Notebook: 01_signals_and_data.ipynb

    ``speech_pool`` is a sequence of 1-D arrays, which must come from *training* speakers.
    """
    if len(speech_pool) == 0:
        raise ValueError("babble needs a non-empty pool of training speech")
    count = int(rng.integers(talkers[0], talkers[1] + 1))
    x = np.zeros(num_samples)
    for index in rng.choice(len(speech_pool), size=count, replace=count > len(speech_pool)):
        talker = np.asarray(speech_pool[int(index)], dtype=np.float64)
        repeats = int(np.ceil((num_samples + len(talker)) / len(talker)))
        looped = np.tile(talker, repeats)
        offset = int(rng.integers(len(talker)))
        x += _unit_rms(looped[offset:offset + num_samples] + 1e-9)
    return _unit_rms(x)


def make_noise(kind: str, num_samples: int, rng: np.random.Generator,
               sample_rate: int = SAMPLE_RATE, speech_pool=None) -> np.ndarray:
    """Generate ``num_samples`` of noise of type ``kind`` (one of :data:`NOISE_TYPES`), unit RMS.

    Notebook: 01_signals_and_data.ipynb
    """
    if kind == "white":
        return colored_noise(num_samples, 0.0, rng, sample_rate)
    if kind == "pink":
        return colored_noise(num_samples, 1.0, rng, sample_rate)
    if kind == "brown":
        return colored_noise(num_samples, 2.0, rng, sample_rate)
    if kind == "hum":
        return hum_noise(num_samples, rng, sample_rate)
    if kind == "fan":
        return fan_noise(num_samples, rng, sample_rate)
    if kind == "clicks":
        return click_noise(num_samples, rng, sample_rate)
    if kind == "knocks":
        return knock_noise(num_samples, rng, sample_rate)
    if kind == "gusts":
        return gust_noise(num_samples, rng, sample_rate)
    if kind == "babble":
        if speech_pool is None:
            raise ValueError("babble noise needs speech_pool (training speech)")
        return babble_noise(num_samples, rng, speech_pool)
    raise ValueError(f"unknown noise type {kind!r}; choose one of {NOISE_TYPES}")


def snr_db(clean, noisy) -> float:
    """Measured SNR in dB of a mixture: ``10 log10(sum(clean^2) / sum((noisy - clean)^2))``.

    Notebook: 01_signals_and_data.ipynb
    """
    clean = np.asarray(clean, dtype=np.float64)
    noise = np.asarray(noisy, dtype=np.float64) - clean
    return float(10 * np.log10(np.sum(clean ** 2) / np.sum(noise ** 2)))


def mix_at_snr(clean, noise, snr: float,
               peak: float | None = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Scale ``noise`` so that ``clean + noise`` has SNR ``snr`` dB; returns (clean, noisy).

    Notebook: 01_signals_and_data.ipynb

    If the mixture (or the clean signal) would peak above ``peak``, both are scaled down by the
    same factor, which leaves the SNR unchanged; ``peak=None`` never scales them (on-the-fly
    remixing, whose float signals cannot clip and whose clean target must stay as it is).
    """
    clean = np.asarray(clean, dtype=np.float64)
    noise = np.asarray(noise, dtype=np.float64)
    if clean.shape != noise.shape:
        raise ValueError(f"clean {clean.shape} and noise {noise.shape} differ in shape")
    gain = np.sqrt(np.sum(clean ** 2) / (np.sum(noise ** 2) * 10 ** (snr / 10)))
    noisy = clean + gain * noise
    top = max(np.abs(noisy).max(), np.abs(clean).max())
    if peak is not None and top > peak:
        clean, noisy = clean * (peak / top), noisy * (peak / top)
    return clean, noisy
