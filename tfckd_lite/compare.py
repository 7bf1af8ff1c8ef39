"""Side-by-side comparison of enhancers on one clip: spectrograms, metrics, audio, calibration.

Notebook: 06_compare_spectrograms.ipynb

Pure functions do all the work; :class:`CompareWidget` only wires ipywidgets controls to them.

=================================  ==========================================================
function                           returns
=================================  ==========================================================
:func:`load_test_clip`             a :class:`Clip` of a paired corpus (noisy + clean)
:func:`load_wav_clip`              a :class:`Clip` of a user's WAV file (no clean reference)
:func:`default_systems`            the shipped enhancers to compare, teacher first
:func:`initially_shown`            which of them a widget ticks when it opens
:func:`compute_signals`            ``{system: waveform}``: noisy, clean, each enhancer's output
:func:`compute_spectrograms`       ``{system: dB [T, F]}``
:func:`compute_color_limits`       ``(vmin, vmax)``: one colour scale for every panel
:func:`compute_differences`        ``{system: system dB - clean dB}`` and its shared limit
:func:`compute_metrics`            a :class:`MetricsTable`: scores and improvement over noisy
:func:`compute_frame_weights`      per-frame calibration weights ``{set: {stream: [T, n_s,
                                   n_t]}}`` of a whole utterance
:func:`zoom_limits`                a checked, clamped time range in seconds
:func:`compute_comparison`         all of the above for one clip, as a :class:`Comparison`
:func:`plot_comparison`            the figure: one column per system, shared axes and scale
:func:`audio_players_html`         one audio player per system
=================================  ==========================================================

System names: ``"noisy"`` (the input), ``"clean"`` (the reference, when there is one) and one
name per enhancer, e.g. the shipped ``lite-teacher``, ``lite-student`` and distilled students
``lite-student-<method>``. matplotlib is imported only when plotting and ipywidgets only when a
widget is built, so importing this module stays light.
"""

from __future__ import annotations

import contextlib
import html
import io
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from .audio import AudioError, audio_info, read_audio
from .stft import HOP_LENGTH, N_FFT, SAMPLE_RATE, STFT

#: Metrics shown by default: wideband PESQ, STOI and SI-SDR (the project's headline scores).
COMPARE_METRICS = ("pesq_wb", "stoi", "si_sdr")
METRIC_LABELS = {"pesq_wb": "PESQ-WB", "pesq_nb": "PESQ-NB", "stoi": "STOI", "estoi": "ESTOI",
                 "si_sdr": "SI-SDR (dB)"}
REFERENCE_SYSTEMS = ("noisy", "clean")
#: Longest own file the widget takes; longer files are cut (and the widget says so).
MAX_SECONDS = 20.0

__all__ = ["COMPARE_METRICS", "MAX_SECONDS", "Clip", "MetricsTable", "Comparison",
           "load_test_clip", "load_wav_clip", "default_systems", "initially_shown", "MOST_SHOWN",
           "load_systems", "system_label",
           "compute_signals", "compute_spectrograms", "compute_color_limits",
           "compute_differences", "compute_metrics", "compute_frame_weights", "zoom_limits",
           "compute_comparison", "weight_views", "plot_comparison", "audio_players_html",
           "CompareWidget", "make_compare_widget"]


# --------------------------------------------------------------------------------------------
# clips


@dataclass(frozen=True)
class Clip:
    """One utterance to compare: the noisy input and, for corpus clips, its clean reference.

    Notebook: 06_compare_spectrograms.ipynb

    ``noisy`` and ``clean`` are float32 ``[N]`` arrays at 16 kHz (``clean`` is ``None`` for a
    user's own file); ``source`` says where the clip came from; ``notes`` are conversions made
    on loading (resampling, cutting) that a reader should be told about.
    """

    name: str
    noisy: np.ndarray
    clean: np.ndarray | None
    source: str
    sample_rate: int = SAMPLE_RATE
    notes: tuple[str, ...] = ()

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.noisy) / self.sample_rate

    @property
    def has_reference(self) -> bool:
        return self.clean is not None


def load_test_clip(dataset, index: int) -> Clip:
    """Clip ``index`` of a paired corpus split (e.g. ``open_corpus(root, "test")``).

    Notebook: 06_compare_spectrograms.ipynb

    Multi-microphone corpora give their first (reference) channel, the one the metrics use.
    """
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
        raise TypeError(f"index must be an int, got {type(index).__name__}")
    if not 0 <= index < len(dataset):
        raise IndexError(f"clip index {index} is out of range: the split has {len(dataset)} "
                         f"clips (0 to {len(dataset) - 1})")
    noisy, clean, name = dataset[int(index)]
    if noisy.dim() == 2:
        noisy = noisy[0]
    split = getattr(dataset, "split", "corpus")
    return Clip(name=name, noisy=noisy.numpy().astype(np.float32),
                clean=clean.numpy().astype(np.float32), source=f"{split} split, clip {index}")


def load_wav_clip(path, max_seconds: float = MAX_SECONDS) -> Clip:
    """A user's own mono audio file as a :class:`Clip` without a clean reference.

    Notebook: 06_compare_spectrograms.ipynb

    Raises :class:`tfckd_lite.audio.AudioError` with a readable reason for a missing file, a
    file that is not audio, an empty or corrupt one, one with several channels (the models take
    one microphone: save one channel or a mono mix first) and one shorter than one STFT window
    (512 samples). Conversions that keep the file usable are made and listed in ``notes``:
    another sample rate is resampled to 16 kHz (the models' rate), and a file longer than
    ``max_seconds`` is cut to its first ``max_seconds`` (so the models answer within seconds).
    """
    if not max_seconds > 0:
        raise ValueError(f"max_seconds must be positive, got {max_seconds!r}")
    info = audio_info(path)                     # missing / empty / not audio -> AudioError
    if info.channels != 1:
        raise AudioError(info.path, f"has {info.channels} channels; the models enhance one "
                                    f"microphone, so save one channel or a mono mix first")
    notes = []
    if info.sample_rate != SAMPLE_RATE:
        notes.append(f"resampled from {info.sample_rate} Hz to {SAMPLE_RATE} Hz (the models "
                     f"work at {SAMPLE_RATE // 1000} kHz)")
    limit = int(round(max_seconds * SAMPLE_RATE))
    if info.frames * SAMPLE_RATE / info.sample_rate > limit:
        notes.append(f"cut to its first {max_seconds:g} s (the file has {info.duration:.1f} s)")
    # the rate was checked above and is reported in notes, so read_audio's warning adds nothing
    noisy = read_audio(info.path, frames=limit, warn_resample=False)
    if len(noisy) < N_FFT:
        raise AudioError(info.path, f"too short: {len(noisy)} samples at {SAMPLE_RATE} Hz; at "
                                    f"least {N_FFT} ({N_FFT / SAMPLE_RATE * 1000:.0f} ms) are "
                                    f"needed for one STFT frame")
    return Clip(name=info.path.name, noisy=noisy, clean=None, source=f"file {info.path}",
                notes=tuple(notes))


# --------------------------------------------------------------------------------------------
# systems


def default_systems(names: Sequence[str] | None = None) -> list[str]:
    """The shipped enhancers worth comparing, in reading order.

    Notebook: 06_compare_spectrograms.ipynb

    From ``names`` (default: ``tfckd_lite.pretrained.available()``): ``lite-teacher``, then
    ``lite-student`` (the student trained alone), then every distilled student
    ``lite-student-<method>`` in name order. Whatever subset exists is returned; other models
    are left out.
    """
    if names is None:
        from . import pretrained

        names = pretrained.available()
    names = list(names)
    fixed = [n for n in ("lite-teacher", "lite-student") if n in names]
    distilled = sorted(n for n in names if n.startswith("lite-student-"))
    return fixed + distilled


#: The most columns a widget ticks when it opens; beyond them, :func:`initially_shown` picks.
MOST_SHOWN = 6


def initially_shown(names: Sequence[str], weights_system: str | None = None,
                    most: int = MOST_SHOWN) -> list[str]:
    """The systems ticked when a comparison opens: all of ``names`` when there are at most
    ``most``; otherwise the references, the teacher, the student alone, the TFCKD student and
    ``weights_system``, in the order of ``names``.

    Notebook: 06_compare_spectrograms.ipynb

    Why: once the experiment ships its eight distilled students there are twelve columns, too
    narrow to read on a laptop screen; the others stay one tick away.
    """
    names = list(names)
    if len(names) <= most:
        return names
    core = {*REFERENCE_SYSTEMS, "lite-teacher", "lite-student", "lite-student-tfckd",
            weights_system}
    return [n for n in names if n in core]


def load_systems(names: Sequence[str] | None = None) -> dict[str, torch.nn.Module]:
    """``{name: model}`` of shipped enhancers (default: :func:`default_systems`).

    Notebook: 06_compare_spectrograms.ipynb
    """
    from . import pretrained

    names = default_systems() if names is None else list(names)
    return {name: pretrained.load(name) for name in names}


def system_label(name: str) -> str:
    """A short human label: ``"noisy input"``, ``"teacher"``, ``"student + tfckd"``, ...

    Notebook: 06_compare_spectrograms.ipynb
    """
    labels = {"noisy": "noisy input", "clean": "clean reference", "lite-teacher": "teacher",
              "lite-student": "student alone"}
    if name in labels:
        return labels[name]
    if name.startswith("lite-student-"):
        return f"student + {name[len('lite-student-'):]}"
    return name


# --------------------------------------------------------------------------------------------
# pure computations


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
    from .plots import spectrogram_db

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
        head = "".join(f"<th>{html.escape(METRIC_LABELS.get(m, m))}</th><th>Δ</th>"
                       for m in self.metrics)
        rows = []
        for name, row in self.scores.items():
            cells = []
            for m in self.metrics:
                reason = self.errors.get(name, {}).get(m)
                value = row[m]
                cells.append(f"<td title='{html.escape(reason or '')}'>"
                             f"{'–' if math.isnan(value) else f'{value:.{_digits(m)}f}'}</td>")
                delta = row.get(f"delta_{m}")
                cells.append("<td></td>" if delta is None else
                             f"<td>{'–' if math.isnan(delta) else f'{delta:+.{_digits(m)}f}'}"
                             f"</td>")
            rows.append(f"<tr><td><b>{html.escape(system_label(name))}</b></td>"
                        f"{''.join(cells)}</tr>")
        return (f"<table><tr><th>system</th>{head}</tr>{''.join(rows)}</table>"
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
    from .metrics import score_pair

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


# --------------------------------------------------------------------------------------------
# one clip, everything


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


NO_SYSTEM_MESSAGE = "tick at least one system to draw"
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


# --------------------------------------------------------------------------------------------
# drawing

def weight_views(weights: Mapping[str, Mapping[str, np.ndarray]]) -> list[tuple[str, tuple]]:
    """``[(label, (set, stream, student_layer)), ...]``: every curve set that can be drawn.

    Notebook: 06_compare_spectrograms.ipynb

    The widget's weight selector lists these, e.g. ``("encoder · time · student E1",
    ("encoder", "time", 0))``.
    """
    from .distill.plots import stage_layer_names

    views = []
    for stage, streams in weights.items():
        for stream, w in streams.items():
            for i, layer in enumerate(stage_layer_names(stage, w.shape[1])):
                views.append((f"{stage} · {stream} · student {layer}", (stage, stream, i)))
    return views


def plot_comparison(comparison: Comparison, systems: Sequence[str] | None = None, *,
                    time_range=None, difference: bool = False, weights_view=None, fig=None):
    """Draw a comparison: one column per system, spectrograms on one colour scale.

    Notebook: 06_compare_spectrograms.ipynb

    Rows: spectrograms (shared time and frequency axes, one colour bar); with
    ``difference=True`` each system's dB difference to the clean reference (shared symmetric
    scale; ``ValueError`` without a reference); with ``weights_view=(set, stream, layer)`` and
    the weights system among ``systems``, that student layer's per-frame calibration weights
    (one curve per teacher layer, :func:`tfckd_lite.distill.plots.plot_weight_curves`) under
    its spectrogram. ``time_range`` zooms every panel (:func:`zoom_limits`).

    ``fig``: a figure to draw into (it is cleared first; the widget redraws its one figure this
    way); ``None`` makes a new pyplot figure. Returns ``(fig, axes, images)``: ``axes`` is
    ``{"spectrogram": {system: ax}, "difference": {system: ax}, "weights": ax or None}``,
    ``images`` the same for the drawn artists (weights: the list of lines).
    """
    from .distill.plots import plot_weight_curves, stage_layer_names
    from .plots import plot_spectrogram

    systems = comparison.systems if systems is None else list(systems)
    unknown = [s for s in systems if s not in comparison.spectrograms]
    if unknown:
        raise ValueError(f"unknown system(s) {unknown}; this comparison has "
                         f"{comparison.systems}")
    if not systems:
        raise ValueError("choose at least one system to draw")
    if difference and comparison.differences is None:
        raise ValueError(NO_REFERENCE_NOTE)
    start, end = zoom_limits(time_range, comparison.axis_end)
    weights_column = None
    if weights_view is not None:
        if comparison.weights is None:
            raise ValueError("this comparison has no calibration weights (no distiller given, "
                             "or the clip is shorter than one calibration window)")
        stage, stream, layer = weights_view
        if stage not in comparison.weights or stream not in comparison.weights[stage]:
            raise ValueError(f"no weights for set {stage!r}, stream {stream!r}; available: "
                             f"{[v[1][:2] for v in weight_views(comparison.weights)]}")
        n_student = comparison.weights[stage][stream].shape[1]
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or \
                not 0 <= layer < n_student:
            raise ValueError(f"student layer must be an index from 0 to {n_student - 1} for set "
                             f"{stage!r}, got {layer!r}")
        if comparison.weights_system in systems:
            weights_column = systems.index(comparison.weights_system)

    rows = ["spectrogram"] + (["difference"] if difference else []) + \
        (["weights"] if weights_column is not None else [])
    heights = {"spectrogram": 3.0, "difference": 3.0, "weights": 2.0}
    size = (2.9 * len(systems) + 1.2, sum(heights[r] for r in rows) * 0.85 + 0.4)
    if fig is None:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=size, layout="constrained")
    else:
        fig.clear()
        fig.set_size_inches(*size)
        fig.set_layout_engine("constrained")
    grid = fig.add_gridspec(len(rows), len(systems), height_ratios=[heights[r] for r in rows])
    axes = {"spectrogram": {}, "difference": {}, "weights": None}
    images = {"spectrogram": {}, "difference": {}, "weights": None}
    first = None
    vmin, vmax = comparison.limits
    for c, name in enumerate(systems):
        ax = fig.add_subplot(grid[0, c], sharex=first, sharey=first)
        first = ax if first is None else first
        _, _, im = plot_spectrogram(comparison.spectrograms[name], ax=ax, vmin=vmin, vmax=vmax,
                                    title=system_label(name))
        axes["spectrogram"][name], images["spectrogram"][name] = ax, im
    fig.colorbar(images["spectrogram"][systems[-1]], ax=list(axes["spectrogram"].values()),
                 label="dB", pad=0.01)
    if difference:
        lim = comparison.difference_limit
        for c, name in enumerate(systems):
            if name == "clean":
                continue                      # clean minus clean: nothing to show
            ax = fig.add_subplot(grid[1, c], sharex=first, sharey=first)
            _, _, im = plot_spectrogram(comparison.differences[name], ax=ax, vmin=-lim, vmax=lim,
                                        title=f"{system_label(name)} − clean")
            im.set_cmap("RdBu_r")
            axes["difference"][name], images["difference"][name] = ax, im
        if images["difference"]:
            fig.colorbar(next(iter(images["difference"].values())),
                         ax=list(axes["difference"].values()), label="dB difference", pad=0.01)
    if weights_column is not None:
        stage, stream, layer = weights_view
        w = comparison.weights[stage][stream]
        names = stage_layer_names(stage, w.shape[2])
        student_layer = stage_layer_names(stage, w.shape[1])[layer]
        ax = fig.add_subplot(grid[len(rows) - 1, weights_column], sharex=first)
        title = f"calibration α ({stage}, {stream}) of student {student_layer}"
        if comparison.weights_note:
            title += f"\n{comparison.weights_note}"
        _, _, lines = plot_weight_curves(w[:, layer, :], ax=ax, labels=names, title=title)
        for line in lines:                  # plot_weight_curves labels them "teacher <name>"
            line.set_label(line.get_label().replace("teacher ", "T "))
        ax.legend(fontsize=7, loc="upper right", ncol=len(lines))
        ax.title.set_fontsize(9)
        # its y labels may reach into the empty cell to the left instead of widening the column
        ax.yaxis.set_in_layout(False)
        axes["weights"], images["weights"] = ax, lines
    _tidy_labels(axes, systems, weights_column)
    for ax in _all_axes(axes):
        ax.set_xlim(start, end)
    clip = comparison.clip
    fig.suptitle(f"{clip.name} ({clip.source}, {clip.duration:.2f} s)", fontsize=10)
    return fig, axes, images


def _all_axes(axes: dict) -> list:
    found = list(axes["spectrogram"].values()) + list(axes["difference"].values())
    return found + ([axes["weights"]] if axes["weights"] is not None else [])


def _tidy_labels(axes: dict, systems: list[str], weights_column: int | None) -> None:
    """Axis labels once: frequency on the first column, time under each column's lowest panel."""
    for c, name in enumerate(systems):
        images = [ax for ax in (axes["spectrogram"][name], axes["difference"].get(name))
                  if ax is not None]
        column = images + ([axes["weights"]] if c == weights_column else [])
        for ax in column[:-1]:
            ax.set_xlabel("")
            ax.tick_params(labelbottom=False)
        if c:                                # the frequency axis is shared: label it once
            for ax in images:
                ax.set_ylabel("")
                ax.tick_params(labelleft=False)


def audio_players_html(signals: Mapping[str, np.ndarray], sample_rate: int = SAMPLE_RATE) -> str:
    """One row of HTML audio players, one per system, labelled.

    Notebook: 06_compare_spectrograms.ipynb

    Levels are kept as they are (``normalize=False``), so a system that removes energy sounds
    quieter, as it is; only a signal beyond full scale is scaled down.
    """
    from .data.display import audio_player_html

    cells = "".join(f"<td style='padding:2px 6px'><b>{html.escape(system_label(name))}</b><br>"
                    f"{audio_player_html(x, sample_rate, normalize=False)}</td>"
                    for name, x in signals.items())
    return f"<table><tr>{cells}</tr></table>"


# --------------------------------------------------------------------------------------------
# the widget: controls wired to the functions above


class CompareWidget:
    """Interactive comparison of enhancers on one clip (ipywidgets; works with the inline backend).

    Notebook: 06_compare_spectrograms.ipynb

    ``CompareWidget(systems, dataset=None, *, index=0, distiller=None, weights_system=None,
    weights_note="", metrics=COMPARE_METRICS, max_seconds=MAX_SECONDS, cache_size=8, dpi=80,
    shown=None)``;
    ``systems`` maps enhancer names to models (e.g. :func:`load_systems`), ``dataset`` is a
    paired split (``open_corpus(root, "test")``) whose clip ``index`` is shown first; without
    one, nothing is shown until a file is loaded. ``display(widget)`` shows it.

    Controls (``widget.controls``): ``clip`` (test clip), ``path`` + ``load`` (a user's own WAV
    file), ``time_range`` (zoom, seconds), ``difference`` (difference to clean), ``systems``
    (one checkbox per system; ``shown`` lists those ticked at first, default
    :func:`initially_shown`) and, with a distiller, ``weights`` (which set, stream and student
    layer's calibration weights to draw). Everything is computed by the module's pure
    functions; the widget only keeps the state a test or a reader can inspect:

    * ``current``: the :class:`Comparison` of the clip on show (arrays, metrics table, weights);
    * ``view``: what is drawn (systems, time range, difference, weights view);
    * ``message`` / ``message_kind``: the last message shown (``"error"`` for a file that could
      not be loaded, which leaves the previous clip on show; ``"info"`` for notes about the
      current clip; ``""`` for none);
    * ``axes``: the axes of the last drawing; ``stats``: how often clips were computed
      (``comparisons``), the figure redrawn (``redraws``), zoomed (``zooms``) and rendered for
      a front-end (``renders``).

    Drawing: the widget owns ONE matplotlib ``Figure``, made without pyplot, so pyplot never
    holds it (nothing to close, nothing that grows) and the inline backend never shows it by
    itself. A change of clip, systems, difference or weights clears the figure and draws it
    again (:func:`plot_comparison` with ``fig=``); a zoom only sets the x limits of the existing
    axes. Either way the figure is rendered to PNG (:meth:`render_png`) and shown in the
    ``Output`` with ``clear_output(wait=True)``, which swaps the old image for the new one only
    when it is there (no flicker). Rendering the PNG ourselves, rather than displaying the
    figure object, does not depend on the notebook's matplotlib backend having been set up
    (the inline backend registers its figure formatter only once pyplot has drawn a figure).
    Without a kernel (tests, scripts) nothing is rendered; the state above is all there is.
    Per clip the computed :class:`Comparison` is cached (the last ``cache_size`` clips), so
    zooming or toggling never reruns the models. The zoom slider reports on release
    (``continuous_update=False``): a PNG takes most of a second to render on a 2-core machine,
    too slow to follow a drag.
    """

    def __init__(self, systems: Mapping[str, object], dataset=None, *, index: int = 0,
                 distiller=None, weights_system: str | None = None, weights_note: str = "",
                 metrics: Sequence[str] = COMPARE_METRICS, max_seconds: float = MAX_SECONDS,
                 cache_size: int = 8, dpi: int = 80, shown: Sequence[str] | None = None):
        import ipywidgets as widgets
        from matplotlib.figure import Figure

        systems = dict(systems)
        if not systems:
            raise ValueError("give at least one enhancer to compare, e.g. load_systems()")
        if distiller is not None and weights_system not in systems:
            raise ValueError(f"weights_system must name the enhancer whose calibration weights "
                             f"are shown, one of {list(systems)}; got {weights_system!r}")
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 1:
            raise ValueError(f"cache_size must be a positive int, got {cache_size!r}")
        self.systems = systems
        self.dataset = dataset
        self.distiller = distiller
        self.weights_system = weights_system if distiller is not None else None
        self.weights_note = weights_note
        self.metrics = tuple(metrics)
        self.max_seconds = max_seconds
        self.cache_size = cache_size
        self.dpi = dpi
        self.figure = Figure(layout="constrained")          # not pyplot's: nothing to leak
        self.current: Comparison | None = None
        self.axes: dict | None = None
        self.message, self.message_kind = "", ""
        self.stats = {"comparisons": 0, "redraws": 0, "zooms": 0, "renders": 0}
        self._cache: OrderedDict = OrderedDict()
        self._updating = False           # set while controls are changed programmatically

        names = list(dataset.names) if dataset is not None else []
        clip = widgets.Dropdown(options=[(f"{i}: {n}", i) for i, n in enumerate(names)],
                                value=None, description="test clip",
                                disabled=dataset is None)
        path = widgets.Text(placeholder="path/to/your_file.wav", description="own WAV")
        load = widgets.Button(description="load file", tooltip="load the WAV file typed left")
        time_range = widgets.FloatRangeSlider(value=(0.0, 1.0), min=0.0, max=1.0, step=0.01,
                                              description="zoom (s)", continuous_update=False,
                                              readout_format=".2f",
                                              layout=widgets.Layout(width="60%"))
        difference = widgets.Checkbox(value=False, description="difference to clean")
        everything = list(REFERENCE_SYSTEMS) + list(systems)
        ticked = initially_shown(everything, self.weights_system) if shown is None else \
            list(shown)
        unknown = [n for n in ticked if n not in everything]
        if unknown:
            raise ValueError(f"shown names unknown system(s) {unknown}; choose from {everything}")
        boxes = {name: widgets.Checkbox(value=name in ticked, description=system_label(name),
                                        indent=False, layout=widgets.Layout(width="auto"))
                 for name in everything}
        weights = widgets.Dropdown(options=[], description="weights",
                                   layout=widgets.Layout(width="40%",
                                                         display="" if distiller is not None
                                                         else "none"))
        self.controls = {"clip": clip, "path": path, "load": load, "time_range": time_range,
                         "difference": difference, "systems": boxes, "weights": weights}
        self.output = widgets.Output()
        self.table = widgets.HTML()
        self.players = widgets.HTML()
        self.message_box = widgets.HTML()
        self.ui = widgets.VBox([
            widgets.HBox([clip, path, load]),
            widgets.HBox([time_range, difference]),
            widgets.HBox([widgets.Label("systems:"), *boxes.values()]),
            weights, self.message_box, self.output, self.table, self.players])

        clip.observe(self._on_clip, names="value")
        load.on_click(self._on_load)
        time_range.observe(self._on_zoom, names="value")
        for control in (difference, weights, *boxes.values()):
            control.observe(self._on_view, names="value")
        if dataset is not None:
            self.show_clip(index)

    # ------------------------------------------------------------------ public actions
    def show_clip(self, index: int) -> None:
        """Show clip ``index`` of the dataset (what choosing it in the dropdown does)."""
        if self.dataset is None:
            raise ValueError("this widget has no dataset; load a file with load_file(path)")
        clip = load_test_clip(self.dataset, index)
        self._show_comparison(("test", int(index)), clip)
        with self._programmatic():
            self.controls["clip"].value = int(index)

    def load_file(self, path) -> bool:
        """Load and show a user's WAV file; on failure show why and keep the current clip.

        Returns whether the file was loaded. Bad files (missing, not audio, stereo, too short)
        set ``message`` with the reason instead of raising.
        """
        text = str(path).strip()
        if not text:
            self._say("type the path of a WAV file first", "error")
            return False
        file = Path(text).expanduser()
        try:
            clip = load_wav_clip(file, self.max_seconds)
        except AudioError as error:
            self._say(f"could not load {error.path}: {error.reason}", "error")
            return False
        stat = file.resolve().stat()          # same path, new contents: a new cache entry
        self._show_comparison(("file", str(file.resolve()), stat.st_mtime_ns, stat.st_size),
                              clip)
        with self._programmatic():               # no test clip is selected now
            self.controls["clip"].value = None
        return True

    @property
    def view(self) -> dict:
        """What is drawn: ``systems``, ``time_range`` (s), ``difference``, ``weights_view``."""
        if self.current is None:
            return {}
        shown = [s for s, box in self.controls["systems"].items()
                 if box.value and s in self.current.spectrograms]
        weights = self.controls["weights"].value if self.current.weights is not None else None
        end = self.current.axis_end           # the slider's 0.01 s grid may end a little later
        return {"systems": shown,
                "time_range": zoom_limits([min(t, end) for t in
                                           self.controls["time_range"].value], end),
                "difference": bool(self.controls["difference"].value
                                   and self.current.differences is not None),
                "weights_view": weights}

    def close(self) -> None:
        """Close every control (frees their comms); the figure goes with the object."""
        for control in self._all_controls():
            control.close()
        for extra in (self.output, self.table, self.players, self.message_box, self.ui):
            extra.close()

    def _repr_mimebundle_(self, **kwargs):
        return self.ui._repr_mimebundle_(**kwargs)

    # --------------------------------------------------------------------- callbacks
    def _on_clip(self, change) -> None:
        if not self._updating and change["new"] is not None:
            self.show_clip(change["new"])

    def _on_load(self, _button) -> None:
        self.load_file(self.controls["path"].value)

    def _on_view(self, _change) -> None:
        if not self._updating and self.current is not None:
            self._redraw()

    def _on_zoom(self, _change) -> None:
        if self._updating or self.current is None or self.axes is None:
            return
        start, end = self.view["time_range"]
        for ax in _all_axes(self.axes):
            ax.set_xlim(start, end)
        self.stats["zooms"] += 1
        self._display()

    # ----------------------------------------------------------------------- helpers
    @contextlib.contextmanager
    def _programmatic(self):
        """Change controls without their callbacks firing (one redraw afterwards, not many)."""
        self._updating = True
        try:
            yield
        finally:
            self._updating = False

    def _all_controls(self) -> list:
        c = self.controls
        return [c["clip"], c["path"], c["load"], c["time_range"], c["difference"], c["weights"],
                *c["systems"].values()]

    def _say(self, text: str, kind: str) -> None:
        self.message, self.message_kind = text, kind
        colour = {"error": "#b00020", "info": "#555555"}.get(kind, "#000000")
        self.message_box.value = (f"<span style='color:{colour}'>{html.escape(text)}</span>"
                                  if text else "")

    def _show_comparison(self, key, clip: Clip) -> None:
        if key in self._cache:
            self._cache.move_to_end(key)
        else:
            self._cache[key] = compute_comparison(
                clip, self.systems, distiller=self.distiller, weights_system=self.weights_system,
                weights_note=self.weights_note, metrics=self.metrics)
            self.stats["comparisons"] += 1
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        self.current = comparison = self._cache[key]
        c = self.controls
        with self._programmatic():
            # the slider's end on its 0.01 s grid at or after the axis end: the whole clip
            c["time_range"].max = math.ceil(comparison.axis_end * 100) / 100
            c["time_range"].value = (0.0, c["time_range"].max)
            c["difference"].disabled = comparison.differences is None
            if comparison.differences is None:
                c["difference"].value = False
            c["systems"]["clean"].disabled = not comparison.clip.has_reference
            if comparison.weights is not None:
                options = weight_views(comparison.weights)
                previous = c["weights"].value
                c["weights"].options = options
                values = [value for _, value in options]
                c["weights"].value = previous if previous in values else values[0]
        self.table.value = (comparison.metrics.html() if comparison.metrics is not None
                            else f"<i>{html.escape(NO_REFERENCE_NOTE)}</i>")
        self.players.value = audio_players_html(comparison.signals)
        self._say("; ".join(comparison.notes), "info" if comparison.notes else "")
        self._redraw()

    def _redraw(self) -> None:
        view = self.view
        if not view["systems"]:
            self._say(NO_SYSTEM_MESSAGE, "error")
            return
        if self.message == NO_SYSTEM_MESSAGE:          # solved: a system is ticked again
            self._say("; ".join(self.current.notes), "info" if self.current.notes else "")
        _, self.axes, _ = plot_comparison(self.current, view["systems"],
                                          time_range=view["time_range"],
                                          difference=view["difference"],
                                          weights_view=view["weights_view"], fig=self.figure)
        self.stats["redraws"] += 1
        self._display()

    def render_png(self) -> bytes:
        """The figure as PNG bytes, as the widget shows it (at ``dpi``)."""
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png", dpi=self.dpi)
        return buffer.getvalue()

    def _display(self) -> None:
        from IPython import get_ipython
        from IPython.display import Image, display

        if getattr(get_ipython(), "kernel", None) is None:
            return      # headless (a test, a script): no front-end to show an image to
        png = self.render_png()
        with self.output:
            self.output.clear_output(wait=True)       # swap when the new image is there
            display(Image(data=png, format="png"))
        self.stats["renders"] += 1


def make_compare_widget(data_root=None, names: Sequence[str] | None = None, *,
                        split: str = "test", **options) -> CompareWidget:
    """A :class:`CompareWidget` over the shipped models and a corpus split.

    Notebook: 06_compare_spectrograms.ipynb

    ``data_root``: a corpus for :func:`tfckd_lite.data.open_corpus` (``None``: own files only);
    ``names``: shipped model names (default :func:`default_systems`); ``options`` go to the
    widget (``index``, ``distiller``, ``weights_system``, ...).
    """
    dataset = None
    if data_root is not None:
        from .data import open_corpus

        dataset = open_corpus(data_root, split)
    return CompareWidget(load_systems(names), dataset, **options)
