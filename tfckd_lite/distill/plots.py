"""Plots of I2S-TFCKD relations and calibration weights.

Notebook: 04_calibration_weights.ipynb

Same convention as :mod:`tfckd_lite.plots`: every ``plot_*`` function takes an optional ``ax``
(a new figure is made without one) and returns ``(fig, ax, artist)``.

* :func:`plot_relation`: one relation matrix, e.g. a time relation ``P[b]`` (``[T, T]``) or a
  "frequency" relation ``Q[b]`` (``[T, B]``), as an image with values in [0, 1];
* :func:`plot_calibration_heatmap`: an ``n_s x n_t`` calibration-weight matrix (given as
  ``[n_s, n_t]``, or as ``[B, T, n_s, n_t]`` and averaged over utterances and frames), annotated;
* :func:`plot_weight_curves`: per-frame weights ``[T, n_t]`` of one student layer over the teacher
  layers, one line per teacher layer, with time in seconds so that it lines up with
  :func:`tfckd_lite.plots.plot_spectrogram` of the same utterance;
* :func:`plot_calibration_course`: how the mean weights moved during training, per set and stream
  against the step or epoch, as the weight on the matched teacher layer (:func:`matched_weight`)
  or as how decisive they are against the SemCKD ceiling (``measure="spread"``);
  :func:`calibration_course` reads those snapshots from a training history.

Two figure-level helpers compose these for a whole distiller (they return ``(fig, axes)``):
:func:`plot_calibration_heatmaps` (every stage and stream, labelled by :func:`layer_labels`) and
:func:`plot_frame_weights` (one student layer's per-frame weights under the spectrogram).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..plots import _as_numpy, _axes
from ..stft import HOP_LENGTH, SAMPLE_RATE
from .calibration import MAX_LOG_SPREAD, log_weight_spread
from .fusion import SET_NAMES
from .methods import pair_layers

#: Line style of each stream in :func:`plot_calibration_course`.
STREAM_STYLES = {"time": "-", "freq": "--"}

#: The calibration stages in network order (the three sets, then the inter-set stage).
STAGE_ORDER = SET_NAMES + ("inter",)


def _in_order(keys, order) -> list:
    """``keys`` with those listed in ``order`` first, in that order, then the rest as given."""
    keys = list(keys)
    return [k for k in order if k in keys] + [k for k in keys if k not in order]


def _labels(labels: Sequence[str] | None, count: int, prefix: str, what: str) -> list[str]:
    if labels is None:
        return [f"{prefix}{i + 1}" for i in range(count)]
    labels = [str(label) for label in labels]
    if len(labels) != count:
        raise ValueError(f"{what}: expected {count} label(s), got {len(labels)}")
    return labels


def plot_relation(matrix, ax=None, title: str | None = None, xlabel: str = "frame t'",
                  ylabel: str = "frame t", vmin: float | None = 0.0, vmax: float | None = None,
                  cmap: str = "viridis", colorbar: bool = True):
    """Draw one relation matrix ``[R, C]`` (rows = query frames) as an image.

    Notebook: 04_calibration_weights.ipynb

    Typical inputs: ``time_relation(x)[b]`` (``[T, T]``, rows sum to one over ``t'``) or
    ``frequency_relation(x)[b]`` (``[T, B]``: frame ``t`` of utterance ``b`` against frame ``t``
    of every utterance ``b'`` of the batch; pass ``xlabel="utterance b'"``). Row ``t`` is drawn at
    height ``t`` (origin lower). ``vmax=None`` uses the matrix maximum. Returns
    ``(fig, ax, im)``; a matrix that is not 2-D raises ``ValueError``.
    """
    arr = _as_numpy(matrix).astype(float)
    if arr.ndim != 2:
        raise ValueError(f"plot_relation expects one relation matrix [R, C], got shape "
                         f"{arr.shape}; index the batch (and layer) axes first")
    fig, ax = _axes(ax, figsize=(4, 3.5))
    im = ax.imshow(arr, origin="lower", aspect="auto", cmap=cmap, vmin=vmin,
                   vmax=float(arr.max()) if vmax is None else vmax, interpolation="nearest")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if colorbar:
        fig.colorbar(im, ax=ax)
    return fig, ax, im


def plot_calibration_heatmap(weights, ax=None, title: str | None = None,
                             student_labels: Sequence[str] | None = None,
                             teacher_labels: Sequence[str] | None = None, annotate: bool = True,
                             vmin: float = 0.0, vmax: float = 1.0, cmap: str = "Blues",
                             colorbar: bool = False):
    """Heatmap of calibration weights: rows = student layers, columns = teacher layers.

    Notebook: 04_calibration_weights.ipynb

    ``weights``: ``[n_s, n_t]``, or ``[B, T, n_s, n_t]`` as in ``distiller.last_weights`` (then
    averaged over utterances and frames). Each row sums to one (a softmax over the teacher
    layers), so the colour scale is fixed to ``[vmin, vmax] = [0, 1]`` by default and panels are
    comparable. ``annotate`` writes each value in its cell. Labels default to ``S1..`` / ``T1..``.
    Returns ``(fig, ax, im)``; any other number of axes raises ``ValueError``.
    """
    arr = _as_numpy(weights).astype(float)
    if arr.ndim == 4:
        arr = arr.mean(axis=(0, 1))
    elif arr.ndim != 2:
        raise ValueError(f"plot_calibration_heatmap expects [n_s, n_t] or [B, T, n_s, n_t] "
                         f"weights, got shape {arr.shape}")
    n_s, n_t = arr.shape
    rows = _labels(student_labels, n_s, "S", "student_labels")
    cols = _labels(teacher_labels, n_t, "T", "teacher_labels")
    fig, ax = _axes(ax, figsize=(0.8 * n_t + 1.6, 0.6 * n_s + 1.2))
    im = ax.imshow(arr, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(n_t), cols)
    ax.set_yticks(range(n_s), rows)
    ax.set_xlabel("teacher layer j")
    ax.set_ylabel("student layer i")
    if annotate:
        middle = (vmin + vmax) / 2
        for i in range(n_s):
            for j in range(n_t):
                ax.text(j, i, f"{arr[i, j]:.2f}", ha="center", va="center", fontsize=10,
                        color="white" if arr[i, j] > middle else "black")
    if title:
        ax.set_title(title)
    if colorbar:
        fig.colorbar(im, ax=ax)
    return fig, ax, im


def plot_weight_curves(weights, ax=None, labels: Sequence[str] | None = None,
                       title: str | None = None, seconds: bool = True,
                       sample_rate: int = SAMPLE_RATE, hop_length: int = HOP_LENGTH):
    """Per-frame calibration weights of one student layer: one curve per teacher layer.

    Notebook: 04_calibration_weights.ipynb

    ``weights``: ``[T, n_t]``, e.g. ``last_weights["encoder"]["time"][b, :, i]`` (utterance ``b``,
    student layer ``i``). With ``seconds=True`` frame ``t`` is drawn at the centre of its span
    ``[t, t + 1) * hop_length / sample_rate``, the same axis as
    :func:`tfckd_lite.plots.plot_spectrogram`, so the curves line up under a spectrogram that
    shares the x axis; ``seconds=False`` plots against the frame index. The y axis is [0, 1].
    Returns ``(fig, ax, lines)`` with one ``Line2D`` per teacher layer; a ``weights`` array that
    is not 2-D raises ``ValueError``.
    """
    arr = _as_numpy(weights).astype(float)
    if arr.ndim != 2:
        raise ValueError(f"plot_weight_curves expects per-frame weights [T, n_t] of one "
                         f"utterance and student layer, got shape {arr.shape}")
    frames, n_t = arr.shape
    names = _labels(labels, n_t, "T", "labels")
    x = np.arange(frames, dtype=float)
    if seconds:
        x = (x + 0.5) * hop_length / sample_rate
    fig, ax = _axes(ax, figsize=(6, 2.5))
    lines = [ax.plot(x, arr[:, j], lw=1.2, label=f"teacher {names[j]}")[0] for j in range(n_t)]
    ax.set_ylim(0, 1)
    if seconds:
        ax.set_xlim(0, frames * hop_length / sample_rate)
    ax.set_xlabel("time (s)" if seconds else "frame")
    ax.set_ylabel("weight")
    ax.legend(fontsize=8, loc="upper right", ncol=min(n_t, 4))
    if title:
        ax.set_title(title)
    return fig, ax, lines


def matched_weight(mean_weights) -> float:
    """The weight a student layer puts on "its" teacher layer, averaged over student layers.

    Notebook: 04_calibration_weights.ipynb

    ``mean_weights``: ``[n_s, n_t]`` (weights averaged over utterances and frames, e.g. one entry
    of ``TFCKDDistiller.calibration_summary``); the pairs are :func:`pair_layers` (E_i with E_i,
    the student's last dual-path block with the teacher's last). ``1 / n_t`` means no preference,
    1 that every student layer looks only at its matched teacher layer.

    >>> round(matched_weight([[0.5, 0.25, 0.25], [0.2, 0.6, 0.2], [0.1, 0.1, 0.8]]), 4)
    0.6333
    """
    arr = _as_numpy(mean_weights).astype(float)
    if arr.ndim != 2:
        raise ValueError(f"matched_weight expects mean weights [n_s, n_t], got shape {arr.shape}")
    n_s, n_t = arr.shape
    return float(np.mean([arr[i, j] for i, j in enumerate(pair_layers(n_s, n_t))]))


def calibration_course(history: Sequence[dict]) -> dict[int, dict]:
    """``{epoch: {stage: {stream: [n_s, n_t]}}}`` from a training history (``history.json``, or
    ``pretrained.describe(name)["history"]``); epoch 0 is the snapshot taken before training.

    Notebook: 04_calibration_weights.ipynb

    A run without learned calibration (``train`` records none) raises ``ValueError``.
    """
    course = {}
    for record in history:
        if "calibration_initial" in record:
            course[0] = record["calibration_initial"]
        if "calibration" in record:
            course[int(record["epoch"])] = record["calibration"]
    if not course:
        raise ValueError("this history holds no calibration weights (a run without learned "
                         "calibration, or one trained before they were recorded)")
    return dict(sorted(course.items()))


#: What :func:`plot_calibration_course` can draw.
COURSE_MEASURES = ("matched", "spread")


def plot_calibration_course(snapshots: dict, ax=None, xlabel: str = "step",
                            title: str | None = None, measure: str = "matched"):
    """How the mean weights of each set and stream moved over training.

    Notebook: 04_calibration_weights.ipynb

    ``snapshots``: ``{step_or_epoch: {stage: {stream: mean weights [n_s, n_t]}}}``, e.g.
    :func:`calibration_course` of a history or snapshots taken during a live run. ``measure``:

    * ``"matched"``: the weight on the matched teacher layer (:func:`matched_weight`: does the
      block rediscover the one-to-one pairing?), with a dotted ``1 / n_t`` line per stage (no
      preference) in the stage's colour;
    * ``"spread"``: how decisive the block is, the log ratio of each row's largest to smallest
      weight (:func:`~tfckd_lite.distill.calibration.log_weight_spread`) averaged over student
      layers: 0 is uniform, and the dash-dotted line at 2 is the ceiling of the SemCKD
      normalisation, which no row can pass.

    One colour per stage, solid for the time stream and dashed for the "frequency" stream.
    Returns ``(fig, ax, lines)``.
    """
    if not snapshots:
        raise ValueError("no calibration snapshots to plot")
    if measure not in COURSE_MEASURES:
        raise ValueError(f"measure must be one of {COURSE_MEASURES}, got {measure!r}")
    keys = sorted(snapshots)
    fig, ax = _axes(ax, figsize=(6, 3))
    lines = []

    def summary(mean_weights) -> float:
        if measure == "matched":
            return matched_weight(mean_weights)
        return float(log_weight_spread(_as_numpy(mean_weights)).mean())

    # network order (a stored history may have sorted its keys), time before "frequency"
    for colour, stage in enumerate(_in_order(snapshots[keys[0]], STAGE_ORDER)):
        first = snapshots[keys[0]][stage]
        for stream in _in_order(first, STREAM_STYLES):
            values = [summary(snapshots[k][stage][stream]) for k in keys]
            lines += ax.plot(keys, values, STREAM_STYLES.get(stream, ":"), marker="o", ms=3,
                             color=f"C{colour}", label=f"{stage} {stream}")
        if measure == "matched":
            n_t = _as_numpy(next(iter(first.values()))).shape[-1]
            ax.axhline(1 / n_t, color=f"C{colour}", lw=0.6, ls=":")
    if all(isinstance(k, (int, np.integer)) for k in keys):
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))     # steps and epochs are whole
    ax.set_xlabel(xlabel)
    if measure == "matched":
        ax.set_ylabel("weight on matched teacher layer")
        ax.set_ylim(0, 1)
    else:
        ax.axhline(MAX_LOG_SPREAD, color="black", lw=0.8, ls="-.", label="SemCKD ceiling")
        ax.set_ylabel("log(max weight / min weight)")
        ax.set_ylim(0, MAX_LOG_SPREAD * 1.15)
    ax.legend(fontsize=7, ncol=2)
    if title:
        ax.set_title(title)
    return fig, ax, lines


_SET_PREFIX = {"encoder": "E", "dual_path": "M", "decoder": "D"}


def stage_layer_names(stage: str, count: int) -> list[str]:
    """Names of the ``count`` members of a calibration stage, in network order.

    Notebooks: 04_calibration_weights.ipynb, 06_compare_spectrograms.ipynb

    >>> stage_layer_names("dual_path", 2), stage_layer_names("inter", 3)
    (['M1', 'M2'], ['O_E', 'O_M', 'O_D'])
    """
    if stage == "inter" and count == 3:    # the fused maps of the three sets
        return ["O_E", "O_M", "O_D"]
    return [f"{_SET_PREFIX.get(stage, stage)}{i + 1}" for i in range(count)]


def layer_labels(student, teacher) -> dict[str, tuple[list[str], list[str]]]:
    """``{stage: (student labels, teacher labels)}`` of the calibration stages of a DPDCRN pair.

    Notebook: 04_calibration_weights.ipynb

    ``student``/``teacher``: DPDCRN models (or their ``config``). The sets are E1-E3, M1-MN and
    D1-D3 in network order; the inter-set stage compares the fused maps O_E, O_M, O_D.
    """
    def names(stage: str, model) -> list[str]:
        config = getattr(model, "config", model)
        return stage_layer_names(stage, config.dual_path_layers if stage == "dual_path" else 3)

    return {stage: (names(stage, student), names(stage, teacher)) for stage in STAGE_ORDER}


#: Heatmap titles per stream: the weight symbols of the method notes.
STREAM_SYMBOLS = {"time": "α^T", "freq": "α^F"}


def plot_calibration_heatmaps(weights: dict, labels: dict | None = None, fig=None,
                              suptitle: str | None = None):
    """Every calibration-weight matrix of a distiller: one column per stage, one row per stream.

    Notebook: 04_calibration_weights.ipynb

    ``weights``: ``{stage: {stream: [B, T, n_s, n_t] or [n_s, n_t]}}``, as returned by
    ``TFCKDDistiller.calibration_weights`` (averaged over utterances and frames) or stored by
    ``calibration_summary``. ``labels``: :func:`layer_labels` of the pair (default ``S1..``/
    ``T1..``). Column widths follow each stage's number of teacher layers. Returns
    ``(fig, axes)`` with ``axes[row, column]``.
    """
    import matplotlib.pyplot as plt

    if not weights:
        raise ValueError("no calibration weights to plot (uniform calibration learns none)")
    stages = _in_order(weights, STAGE_ORDER)
    streams = [s for s in STREAM_SYMBOLS if any(s in weights[st] for st in stages)]
    widths = [_as_numpy(next(iter(weights[st].values()))).shape[-1] for st in stages]
    if fig is None:
        # compact: a notebook scales a wide figure down to its width, and the cell values with it
        fig = plt.figure(figsize=(0.75 * sum(widths) + 1.3 * len(stages), 2.4 * len(streams)))
    axes = fig.subplots(len(streams), len(stages), squeeze=False,
                        gridspec_kw={"width_ratios": widths})
    for col, stage in enumerate(stages):
        student_labels, teacher_labels = (labels or {}).get(stage, (None, None))
        for row, stream in enumerate(streams):
            ax = axes[row, col]
            if stream not in weights[stage]:
                ax.set_axis_off()
                continue
            plot_calibration_heatmap(weights[stage][stream], ax=ax,
                                     title=f"{stage}: {STREAM_SYMBOLS[stream]}",
                                     student_labels=student_labels, teacher_labels=teacher_labels)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig, axes


def plot_frame_weights(spectrogram, stage_weights: dict, student_layer: int,
                       teacher_labels: Sequence[str] | None = None, student_label: str = "",
                       title: str | None = None, fig=None):
    """One utterance's per-frame weights under its spectrogram, one panel per stream.

    Notebook: 04_calibration_weights.ipynb

    ``spectrogram``: the utterance's STFT ``[2, T, F]`` (e.g. ``noisy_spec[b]``);
    ``stage_weights``: ``{stream: [T, n_s, n_t]}`` of the same utterance (e.g.
    ``{k: w[b] for k, w in weights["encoder"].items()}``); ``student_layer``: the row ``i`` to
    draw. The panels share the time axis in seconds. Returns ``(fig, axes, curves)`` with
    ``curves[stream]`` the ``[T, n_t]`` array drawn.
    """
    import matplotlib.pyplot as plt

    from ..plots import plot_spectrogram

    streams = [s for s in STREAM_SYMBOLS if s in stage_weights]
    if not streams:
        raise ValueError(f"no known stream among {list(stage_weights)}")
    frames = _as_numpy(spectrogram).shape[-2]
    if fig is None:
        fig = plt.figure(figsize=(8, 2.2 + 2.1 * len(streams)))
    axes = fig.subplots(1 + len(streams), 1, sharex=True,
                        gridspec_kw={"height_ratios": [2] + [1] * len(streams)})
    plot_spectrogram(spectrogram, ax=axes[0], title=title)
    axes[0].set_xlabel("")
    name = student_label or f"S{student_layer + 1}"
    curves = {}
    for ax, stream in zip(axes[1:], streams):
        arr = _as_numpy(stage_weights[stream]).astype(float)
        if arr.ndim != 3 or arr.shape[0] != frames:
            raise ValueError(f"{stream} weights must be [T={frames}, n_s, n_t] for this "
                             f"utterance, got shape {arr.shape}")
        curves[stream] = arr[:, student_layer]
        plot_weight_curves(curves[stream], ax=ax, labels=teacher_labels,
                           title=f"{STREAM_SYMBOLS[stream]}: student {name} → teacher layers")
        if ax is not axes[-1]:
            ax.set_xlabel("")
    fig.tight_layout()
    return fig, axes, curves
