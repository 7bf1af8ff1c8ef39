"""The audio of a trial's stimuli, at one loudness, and the objective scores of the same audio.

Notebook: 08_judging_methods.ipynb

Loudness: a listener asked about quality prefers the louder of two otherwise equal sounds, so
every stimulus is brought to one level before it is played. The level is a *gated RMS*:
the mean power of 400 ms blocks (75 % overlap) after ITU-R BS.1770's two gates, an absolute one
at -70 dBFS and a relative one 10 dB below the mean of the blocks that passed it, so pauses do
not count. It is BS.1770's measurement without its K-weighting filter (a high-shelf for
headphone listening of wideband music; on 16 kHz speech it changes the ranking of levels
little, and a plain power is easier to check). Every stimulus is scaled to ``TARGET_DB``
(-26 dBFS, the active speech level of ITU-T P.56 practice); if that would push any stimulus of
the trial past ``PEAK_LIMIT``, all of them are lowered by the same factor, so they stay equally
loud and nothing clips.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from ..compare import Clip, compute_metrics, compute_signals
from .design import ANCHOR, ANCHOR_CUTOFF_HZ, REFERENCE, low_anchor

#: The level every stimulus is brought to, in dBFS (gated RMS).
TARGET_DB = -26.0
#: The highest sample magnitude a normalised stimulus may reach (full scale is 1).
PEAK_LIMIT = 0.97
#: The objective scores shown beside the ratings: wideband PESQ, extended STOI, SI-SDR.
LISTENING_METRICS = ("pesq_wb", "estoi", "si_sdr")

BLOCK_SECONDS, BLOCK_OVERLAP = 0.4, 0.75
ABSOLUTE_GATE_DB, RELATIVE_GATE_DB = -70.0, -10.0


def gated_level_db(wave, sample_rate: int) -> float:
    """The gated RMS level of ``wave`` in dBFS (the module's docstring says how it is gated).

    Notebook: 08_judging_methods.ipynb

    Raises ``ValueError`` for a signal whose every block lies below the absolute gate (silence).
    """
    x = np.asarray(wave, dtype=np.float64).reshape(-1)
    block = min(x.size, int(round(BLOCK_SECONDS * sample_rate)))
    if block == 0:
        raise ValueError("cannot measure the level of an empty signal")
    hop = max(1, int(round(block * (1 - BLOCK_OVERLAP))))
    starts = range(0, x.size - block + 1, hop)
    power = np.array([np.mean(x[s:s + block] ** 2) for s in starts])
    with np.errstate(divide="ignore"):
        level = 10 * np.log10(power)
    power = power[level > ABSOLUTE_GATE_DB]
    if power.size == 0:
        raise ValueError(f"the signal is silent: no 400 ms block is above "
                         f"{ABSOLUTE_GATE_DB:g} dBFS")
    relative = 10 * np.log10(power.mean()) + RELATIVE_GATE_DB
    power = power[10 * np.log10(power) > relative]
    return float(10 * np.log10(power.mean()))


def equal_loudness(signals: Mapping[str, np.ndarray], sample_rate: int,
                   target_db: float = TARGET_DB,
                   peak_limit: float = PEAK_LIMIT) -> dict[str, np.ndarray]:
    """``{name: float32 [N]}`` scaled to one gated level, ``target_db``, none above ``peak_limit``.

    Notebook: 08_judging_methods.ipynb

    One shared reduction, when needed, keeps the levels equal while no sample exceeds
    ``peak_limit``.
    """
    if not 0 < peak_limit <= 1:
        raise ValueError(f"peak_limit must lie in (0, 1], got {peak_limit!r}")
    scaled = {}
    for name, wave in signals.items():
        try:
            level = gated_level_db(wave, sample_rate)
        except ValueError as error:
            raise ValueError(f"stimulus {name!r}: {error}") from None
        scaled[name] = np.asarray(wave, dtype=np.float64) * 10 ** ((target_db - level) / 20)
    peak = max(float(np.abs(x).max()) for x in scaled.values())
    shared = min(1.0, peak_limit / peak)
    return {name: (x * shared).astype(np.float32) for name, x in scaled.items()}


def _anchored(clip: Clip, enhancers: Mapping[str, object], reference: str, anchor: str,
              anchor_cutoff_hz: float) -> dict[str, np.ndarray]:
    if not clip.has_reference:
        raise ValueError(f"clip {clip.name!r} has no clean recording: a MUSHRA trial needs it "
                         f"as the reference and to make the anchor")
    signals = compute_signals(clip, enhancers)
    clean = signals.pop("clean")
    signals[reference] = clean
    signals[anchor] = low_anchor(clean, clip.sample_rate, anchor_cutoff_hz)
    return signals


def trial_signals(clip: Clip, enhancers: Mapping[str, object], *, reference: str = REFERENCE,
                  anchor: str = ANCHOR, anchor_cutoff_hz: float = ANCHOR_CUTOFF_HZ,
                  target_db: float = TARGET_DB) -> dict[str, np.ndarray]:
    """``{system: float32 [N]}`` for one trial, at one loudness: ``noisy``, each enhancer, the
    clean recording under ``reference`` and the low anchor under ``anchor``.

    Notebook: 08_judging_methods.ipynb

    The enhancers run through :func:`tfckd_lite.compare.compute_signals` (models with
    ``enhance`` or callables); the anchor is :func:`low_anchor` of the clean recording; then
    :func:`equal_loudness`. The open reference is the same array as the hidden one.
    """
    signals = _anchored(clip, enhancers, reference, anchor, anchor_cutoff_hz)
    return equal_loudness(signals, clip.sample_rate, target_db)


def score_stimuli(clip: Clip, enhancers: Mapping[str, object],
                  metrics: Sequence[str] = LISTENING_METRICS, *, anchor: str = ANCHOR,
                  anchor_cutoff_hz: float = ANCHOR_CUTOFF_HZ) -> dict[str, dict[str, float]]:
    """``{system: {metric: score}}`` of one clip against its clean recording: ``noisy``, each
    enhancer and the anchor (the reference against itself is not scored).

    Notebook: 08_judging_methods.ipynb

    The scores of :func:`tfckd_lite.compare.compute_metrics` (so exactly the library's); NaN
    where a score is impossible. Scored before loudness normalisation: PESQ aligns levels
    itself, ESTOI and SI-SDR ignore scale.
    """
    signals = _anchored(clip, enhancers, "clean", anchor, anchor_cutoff_hz)
    table = compute_metrics(signals, metrics)
    return {name: {m: row[m] for m in table.metrics} for name, row in table.scores.items()}


def mean_scores(per_clip: Mapping[str, Mapping[str, Mapping[str, float]]]
                ) -> dict[str, dict[str, float]]:
    """``{system: {metric: mean over clips}}`` from ``{clip: score_stimuli(...)}`` (NaNs left
    out of each mean; NaN when no clip could be scored).

    Notebook: 08_judging_methods.ipynb
    """
    out: dict[str, dict[str, list[float]]] = {}
    for scores in per_clip.values():
        for system, row in scores.items():
            for metric, value in row.items():
                out.setdefault(system, {}).setdefault(metric, []).append(float(value))
    return {system: {m: (float(np.nanmean(v)) if np.isfinite(v).any() else float("nan"))
                     for m, v in row.items()} for system, row in out.items()}
