"""Pure computations of a comparison: signals, spectrograms, the shared colour scale,
differences to clean, the metrics table, per-frame calibration weights, zoom limits, and
:class:`Comparison`, everything one clip needs.

Notebook: 06_compare_spectrograms.ipynb
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import torch

from ..stft import HOP_LENGTH, SAMPLE_RATE, STFT
from .clips import REFERENCE_SYSTEMS, Clip, system_label

#: Metrics shown by default: wideband PESQ, STOI and SI-SDR (the project's headline scores).
COMPARE_METRICS = ("pesq_wb", "stoi", "si_sdr")
METRIC_LABELS = {"pesq_wb": "PESQ-WB", "pesq_nb": "PESQ-NB", "stoi": "STOI", "estoi": "ESTOI",
                 "si_sdr": "SI-SDR (dB)"}


def _enhance(enhancer, wave: torch.Tensor) -> np.ndarray:
    """Run one enhancer on ``[N]`` under no_grad; a module's ``enhance`` or a plain callable."""
    fn = enhancer.enhance if hasattr(enhancer, "enhance") else enhancer
    if not callable(fn):
        raise TypeError(f"an enhancer must be a model with .enhance or a callable waveform -> "
                        f"waveform, got {type(enhancer).__name__}")
    with torch.no_grad():
        out = fn(wave)
    out = torch.as_tensor(out).detach().float().cpu().reshape(-1)
    if out.shape[0] != wave.shape[0]:
        raise ValueError(f"the enhancer returned {out.shape[0]} samples for an input of "
                         f"{wave.shape[0]}; it must keep the length")
    return out.numpy()


def compute_signals(clip: Clip, systems: Mapping[str, object]) -> dict[str, np.ndarray]:
    """``{system: float32 [N]}``: ``noisy``, ``clean`` (if the clip has it), then each enhancer.

    Notebook: 06_compare_spectrograms.ipynb

    ``systems`` maps a name to a model with ``enhance(wave [N]) -> [N]`` (a DPDCRN) or to such
    a callable. Names ``noisy`` and ``clean`` are reserved.
    """
    reserved = set(systems) & set(REFERENCE_SYSTEMS)
    if reserved:
        raise ValueError(f"system names {sorted(reserved)} are reserved for the input and the "
                         f"reference; rename the enhancer(s)")
    signals = {"noisy": np.asarray(clip.noisy, dtype=np.float32)}
    if clip.clean is not None:
        signals["clean"] = np.asarray(clip.clean, dtype=np.float32)
    wave = torch.from_numpy(signals["noisy"])
    for name, enhancer in systems.items():
        signals[name] = _enhance(enhancer, wave)
    return signals


def compute_spectrograms(signals: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``{system: power in dB [T, 257]}`` with the models' own STFT (512-point, hop 256).

    Notebook: 06_compare_spectrograms.ipynb
    """
    from ..plots import spectrogram_db

    stft = STFT()
    return {name: spectrogram_db(stft(torch.as_tensor(np.asarray(x, dtype=np.float32))))
            for name, x in signals.items()}


def compute_color_limits(spectrograms: Mapping[str, np.ndarray],
                         dynamic_range: float = 80.0) -> tuple[float, float]:
    """One colour scale ``(vmin, vmax)`` in dB for every panel.

    Notebook: 06_compare_spectrograms.ipynb

    ``vmax`` is the loudest bin over *all* systems, ``vmin = vmax - dynamic_range``: the same
    colour means the same level in every panel, so a suppressed noise floor shows as darker.
    """
    if not spectrograms:
        raise ValueError("no spectrograms to scale")
    if not dynamic_range > 0:
        raise ValueError(f"dynamic_range must be positive, got {dynamic_range!r}")
    vmax = max(float(np.max(db)) for db in spectrograms.values())
    return vmax - float(dynamic_range), vmax


def compute_differences(spectrograms: Mapping[str, np.ndarray], reference: str = "clean",
                        floor: float | None = None,
                        percentile: float = 99.0) -> tuple[dict[str, np.ndarray], float]:
    """``({system: system dB - reference dB}, limit)`` for every system but the reference.

    Notebook: 06_compare_spectrograms.ipynb

    Positive values (red) are energy the system has in excess of the clean speech (residual
    noise, artefacts), negative ones (blue) speech energy it removed. ``floor`` (dB, e.g. the
    shared colour scale's ``vmin``) raises both spectrograms to at least ``floor`` first, so
    bins that are invisible in both panels count as equal: without it, digital silence in the
    clean file (-100 dB) against a faint residual gives differences of 60 dB and more that no
    panel shows. ``limit`` is the ``percentile`` of ``|difference|`` over all systems (at least
    1 dB): one symmetric scale ``[-limit, limit]`` for every difference panel.
    """
    if reference not in spectrograms:
        raise ValueError(f"no {reference!r} spectrogram: a difference view needs the clean "
                         f"reference, which a user's own file does not have")
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile!r}")
    lift = (lambda db: db) if floor is None else (lambda db: np.maximum(db, floor))
    ref = lift(spectrograms[reference])
    diffs = {name: lift(db) - ref for name, db in spectrograms.items() if name != reference}
    if not diffs:
        raise ValueError("no system to compare with the reference")
    limit = float(np.percentile(np.abs(np.concatenate([d.ravel() for d in diffs.values()])),
                                percentile))
    return diffs, max(limit, 1.0)


@dataclass(frozen=True)
class MetricsTable:
    """Per-clip scores of every system against the clean reference.

    Notebook: 06_compare_spectrograms.ipynb

    ``scores[system][metric]`` (NaN where unscorable, with the reason in
    ``errors[system][metric]``); enhancers also have ``delta_<metric>``, their improvement
    over the noisy input on this clip.
    """

    metrics: tuple[str, ...]
    scores: dict[str, dict[str, float]]
    errors: dict[str, dict[str, str]] = field(default_factory=dict)

    def markdown(self) -> str:
        """The table as Markdown (for printing in a notebook)."""
        head = ["system"] + [f"{METRIC_LABELS.get(m, m)} (Δ)" for m in self.metrics]
        lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
        for name, row in self.scores.items():
            cells = [self._cell(row, m) for m in self.metrics]
            lines.append(f"| {system_label(name)} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def html(self) -> str:
        """The table as a small HTML table (the widget shows this); hover a dash for why."""
        # a widget's HTML gets none of the notebook's table style: space the columns here
        num, delta_style = "style='padding:1px 4px 1px 14px; text-align:right'", \
            "style='padding:1px 4px; text-align:right; color:#555'"
        head = "".join(f"<th {num}>{html.escape(METRIC_LABELS.get(m, m))}</th>"
                       f"<th {delta_style}>Δ</th>" for m in self.metrics)
        rows = []
        for name, row in self.scores.items():
            cells = []
            for m in self.metrics:
                reason = self.errors.get(name, {}).get(m)
                value = row[m]
                cells.append(f"<td {num} title='{html.escape(reason or '')}'>"
                             f"{'–' if math.isnan(value) else f'{value:.{_digits(m)}f}'}</td>")
                delta = row.get(f"delta_{m}")
                cells.append("<td></td>" if delta is None else
                             f"<td {delta_style}>"
                             f"{'–' if math.isnan(delta) else f'{delta:+.{_digits(m)}f}'}</td>")
            rows.append(f"<tr><td><b>{html.escape(system_label(name))}</b></td>"
                        f"{''.join(cells)}</tr>")
        return (f"<table><tr><th style='text-align:left'>system</th>{head}</tr>"
                f"{''.join(rows)}</table>"
                f"<small>Δ: improvement over the noisy input on this clip; – : unscorable "
                f"(hover for the reason)</small>")

    def _cell(self, row: dict, metric: str) -> str:
        value, delta, digits = row[metric], row.get(f"delta_{metric}"), _digits(metric)
        text = "–" if math.isnan(value) else f"{value:.{digits}f}"
        if delta is not None and not math.isnan(delta):
            text += f" ({delta:+.{digits}f})"
        return text


def _digits(metric: str) -> int:
    return 3 if metric in ("stoi", "estoi") else 2


def compute_metrics(signals: Mapping[str, np.ndarray],
                    metrics: Sequence[str] = COMPARE_METRICS) -> MetricsTable:
    """Score every system of ``signals`` against ``signals["clean"]``, noisy input first.

    Notebook: 06_compare_spectrograms.ipynb

    Uses :func:`tfckd_lite.metrics.score_pair`, so the numbers are exactly the library's
    (PESQ-WB, STOI, SI-SDR by default). Enhancers get ``delta_<metric>`` = their score minus the
    noisy input's. An unscorable clip (e.g. too short for PESQ) gives NaN and a reason, never
    an exception. A clip without ``clean`` raises ``ValueError``.
    """
    from ..metrics import score_pair

    if "clean" not in signals:
        raise ValueError("no clean reference: metrics against clean need a corpus clip, not a "
                         "user's own file")
    if "noisy" not in signals:
        raise ValueError("no 'noisy' signal: the improvement is measured over the noisy input")
    metrics = tuple(metrics)
    clean = signals["clean"]
    scores, errors = {}, {}
    for name, x in signals.items():
        if name == "clean":
            continue
        scores[name], failed = score_pair(x, clean, SAMPLE_RATE, metrics)
        if failed:
            errors[name] = failed
    base = scores["noisy"]
    for name, row in scores.items():
        if name != "noisy":
            row.update({f"delta_{m}": row[m] - base[m] for m in metrics})
    return MetricsTable(metrics, scores, errors)


def compute_frame_weights(distiller, noisy_wave) -> dict[str, dict[str, np.ndarray]]:
    """Calibration weights of every frame of a whole utterance: ``{set: {stream: [T, n_s, n_t]}}``.

    Notebook: 06_compare_spectrograms.ipynb

    A :class:`~tfckd_lite.distill.TFCKDDistiller` is built for batches of exactly
    ``distiller.batch_size`` segments of ``distiller.frames`` frames, while a clip has any
    number of frames T (1 to 4 s of test speech: 63 to 251 frames). So the utterance's STFT
    frames (the student's own STFT, the frames of its spectrogram) are cut into consecutive
    windows of ``frames``; the windows fill batches of ``batch_size``, the last batch padded
    by repeating its windows cyclically (the weights computed for the padding are discarded);
    the per-frame weights of the windows are concatenated back along time.

    Tail frames: when T is not a multiple of ``frames``, one more window is taken that *ends*
    at the last frame (it overlaps the previous window) and only its last ``T mod frames``
    frames are kept, so every frame gets a weight and T matches the spectrogram. A clip
    shorter than one window raises ``ValueError``.

    What a window sees: the time stream's weights of a frame depend on its own window only
    (the models normalise each segment on its own statistics), so they differ near window edges
    from what the whole utterance would give; the "frequency" stream compares a frame across
    the segments of the batch, here the other windows of the same utterance (and the padding
    repeats). Streams a distiller does not use (its ablations) are left out. Every row sums to
    one over the teacher layers. Runs without gradients; the distiller is not modified.
    """
    for attribute in ("calibration_weights", "frames", "batch_size", "student"):
        if not hasattr(distiller, attribute):
            raise TypeError(f"expected a TFCKDDistiller (with .{attribute}), got "
                            f"{type(distiller).__name__}")
    wave = torch.as_tensor(np.asarray(noisy_wave, dtype=np.float32))
    if wave.dim() != 1:
        raise ValueError(f"expected one mono waveform [N], got shape {tuple(wave.shape)}")
    device = next(distiller.student.parameters()).device
    with torch.no_grad():
        spec = distiller.student.stft(wave.to(device))              # [2, T, F]
    total, length, batch = spec.shape[1], distiller.frames, distiller.batch_size
    if total < length:
        raise ValueError(f"the clip has {total} frames ({len(wave) / SAMPLE_RATE:.2f} s) but "
                         f"this distiller's calibration windows are {length} frames "
                         f"({(length - 1) * HOP_LENGTH / SAMPLE_RATE:.2f} s); use a longer clip")
    starts = list(range(0, total - length + 1, length))
    tail = total - (starts[-1] + length)
    if tail:
        starts.append(total - length)                      # ends at the last frame
    windows = torch.stack([spec[:, s:s + length] for s in starts])   # [W, 2, frames, F]

    per_window: list[dict[str, dict[str, torch.Tensor]]] = []
    for first in range(0, len(windows), batch):
        chunk = windows[first:first + batch]
        real = chunk.shape[0]
        filled = chunk[[i % real for i in range(batch)]]             # pad by repeating
        weights = distiller.calibration_weights(filled)
        for w in range(real):
            per_window.append({stage: {stream: tensor[w] for stream, tensor in streams.items()
                                       if tensor is not None}
                               for stage, streams in weights.items()})

    out: dict[str, dict[str, np.ndarray]] = {}
    for stage, streams in per_window[0].items():
        out[stage] = {}
        for stream in streams:
            parts = [win[stage][stream] for win in per_window]
            if tail:
                parts[-1] = parts[-1][length - tail:]
            out[stage][stream] = torch.cat(parts).cpu().numpy()
    return out


def zoom_limits(time_range, duration: float,
                min_width: float = HOP_LENGTH / SAMPLE_RATE) -> tuple[float, float]:
    """``(start, end)`` in seconds: ``time_range`` clamped to ``[0, duration]``.

    Notebook: 06_compare_spectrograms.ipynb

    ``time_range=None`` is the whole clip. A range narrower than ``min_width`` (one STFT hop,
    16 ms) is widened to it around its centre, staying inside the clip, so a slider pushed to
    one value still shows something. A reversed range or one outside the clip raises
    ``ValueError``.
    """
    if not duration > 0:
        raise ValueError(f"duration must be positive, got {duration!r}")
    if time_range is None:
        return 0.0, float(duration)
    try:
        start, end = (float(t) for t in time_range)
    except (TypeError, ValueError) as error:
        raise ValueError(f"time_range must be (start, end) in seconds, got {time_range!r}") \
            from error
    if start > end:
        raise ValueError(f"time_range starts after it ends: {start} > {end}")
    if start > duration or end < 0:
        raise ValueError(f"time_range {tuple(time_range)} lies outside the clip "
                         f"(0 to {duration:.2f} s)")
    start, end = max(start, 0.0), min(end, float(duration))
    width = min(float(min_width), float(duration))
    if end - start < width:
        centre = (start + end) / 2
        start = min(max(centre - width / 2, 0.0), duration - width)
        end = start + width
    return start, end


@dataclass
class Comparison:
    """Everything the figure, the table and the players of one clip need.

    Notebook: 06_compare_spectrograms.ipynb

    ``signals``/``spectrograms``: ``{system: ...}`` in column order; ``limits``: the shared
    ``(vmin, vmax)``; ``differences``/``difference_limit``: ``None`` without a reference;
    ``metrics``: a :class:`MetricsTable` or ``None`` without a reference; ``weights``: per-frame
    calibration weights of ``weights_system`` (``None`` without a distiller); ``notes``: what a
    reader should be told (conversions, missing reference, untrained weights).
    """

    clip: Clip
    signals: dict[str, np.ndarray]
    spectrograms: dict[str, np.ndarray]
    limits: tuple[float, float]
    differences: dict[str, np.ndarray] | None
    difference_limit: float | None
    metrics: MetricsTable | None
    weights: dict[str, dict[str, np.ndarray]] | None
    weights_system: str | None
    weights_note: str
    notes: tuple[str, ...]

    @property
    def systems(self) -> list[str]:
        return list(self.spectrograms)

    @property
    def axis_end(self) -> float:
        """End of the time axis in seconds: the spectrogram frames' span, ``T * hop / rate``."""
        frames = next(iter(self.spectrograms.values())).shape[0]
        return frames * HOP_LENGTH / SAMPLE_RATE


NO_REFERENCE_NOTE = ("no clean reference for your own file: no metrics against clean and no "
                     "difference view")


def compute_comparison(clip: Clip, systems: Mapping[str, object], *, distiller=None,
                       weights_system: str | None = None, weights_note: str = "",
                       metrics: Sequence[str] = COMPARE_METRICS,
                       dynamic_range: float = 80.0) -> Comparison:
    """Signals, spectrograms, shared scales, metrics and calibration weights of one clip.

    Notebook: 06_compare_spectrograms.ipynb

    ``distiller`` (optional, a TFCKD distiller) gives the per-frame calibration weights drawn
    under ``weights_system``'s spectrogram (an enhancer name, required with a distiller);
    ``weights_note`` is shown with them (e.g. ``"untrained calibration: display only"``). A
    clip shorter than one calibration window gets no weights and a note instead.
    """
    if distiller is not None and weights_system not in systems:
        raise ValueError(f"weights_system must name the distilled enhancer whose weights are "
                         f"shown, one of {list(systems)}; got {weights_system!r}")
    notes = list(clip.notes)
    signals = compute_signals(clip, systems)
    spectrograms = compute_spectrograms(signals)
    limits = compute_color_limits(spectrograms, dynamic_range)
    if clip.has_reference:
        differences, difference_limit = compute_differences(spectrograms, floor=limits[0])
        table = compute_metrics(signals, metrics)
    else:
        differences = difference_limit = table = None
        notes.append(NO_REFERENCE_NOTE)
    weights = None
    if distiller is not None:
        frames = next(iter(spectrograms.values())).shape[0]
        if frames >= distiller.frames:
            weights = compute_frame_weights(distiller, clip.noisy)
        else:
            notes.append(f"no calibration weights: the clip has {frames} frames, fewer than "
                         f"one calibration window ({distiller.frames})")
    return Comparison(clip, signals, spectrograms, limits, differences, difference_limit,
                      table, weights, weights_system if distiller is not None else None,
                      weights_note, tuple(notes))
