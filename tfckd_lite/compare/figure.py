"""The comparison figure (one column per system, shared scales) and the audio players.

Notebook: 06_compare_spectrograms.ipynb
"""

from __future__ import annotations

import html
from typing import Mapping, Sequence

import numpy as np

from ..stft import SAMPLE_RATE
from .clips import system_label
from .computations import NO_REFERENCE_NOTE, Comparison, zoom_limits


def weight_views(weights: Mapping[str, Mapping[str, np.ndarray]]) -> list[tuple[str, tuple]]:
    """``[(label, (set, stream, student_layer)), ...]``: every curve set that can be drawn.

    Notebook: 06_compare_spectrograms.ipynb

    The widget's weight selector lists these, e.g. ``("encoder · time · student E1",
    ("encoder", "time", 0))``.
    """
    from ..distill.plots import stage_layer_names

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
    (one curve per teacher layer, :func:`tfckd_lite.distill.plots.plot_weight_curves`) in a
    last row across the figure's width, on the same time axis, titled with the system they
    belong to. ``time_range`` zooms every panel (:func:`zoom_limits`).

    ``fig``: a figure to draw into (it is cleared first; the widget redraws its one figure this
    way); ``None`` makes a new pyplot figure. Returns ``(fig, axes, images)``: ``axes`` is
    ``{"spectrogram": {system: ax}, "difference": {system: ax}, "weights": ax or None}``,
    ``images`` the same for the drawn artists (weights: the list of lines).
    """
    from ..distill.plots import plot_weight_curves, stage_layer_names
    from ..plots import plot_spectrogram

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
    show_weights = False
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
        show_weights = comparison.weights_system in systems

    rows = ["spectrogram"] + (["difference"] if difference else []) + \
        (["weights"] if show_weights else [])
    heights = {"spectrogram": 3.0, "difference": 3.0, "weights": 1.7}
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
    if show_weights:
        # one row across the figure: a panel under one column would leave the others blank
        stage, stream, layer = weights_view
        w = comparison.weights[stage][stream]
        names = stage_layer_names(stage, w.shape[2])
        student_layer = stage_layer_names(stage, w.shape[1])[layer]
        ax = fig.add_subplot(grid[len(rows) - 1, :], sharex=first)
        title = (f"calibration weights α of {system_label(comparison.weights_system)}: "
                 f"{stage} set, {stream} stream, student layer {student_layer} (per frame, "
                 f"the teacher layers' weights sum to 1)")
        if comparison.weights_note:
            title += f" — {comparison.weights_note}"
        _, _, lines = plot_weight_curves(w[:, layer, :], ax=ax, labels=names)
        ax.set_title(title, fontsize=9, loc="left")
        ax.legend(fontsize=8, loc="upper right", ncol=len(lines), framealpha=0.8)
        axes["weights"], images["weights"] = ax, lines
    _tidy_labels(axes, systems)
    for ax in _all_axes(axes):
        ax.set_xlim(start, end)
    clip = comparison.clip
    fig.suptitle(f"{clip.name} ({clip.source}, {clip.duration:.2f} s)", fontsize=10)
    return fig, axes, images


def _all_axes(axes: dict) -> list:
    found = list(axes["spectrogram"].values()) + list(axes["difference"].values())
    return found + ([axes["weights"]] if axes["weights"] is not None else [])


def _tidy_labels(axes: dict, systems: list[str]) -> None:
    """Axis labels once: frequency on the first column, time under each column's lowest panel."""
    for c, name in enumerate(systems):
        images = [ax for ax in (axes["spectrogram"][name], axes["difference"].get(name))
                  if ax is not None]
        for ax in images[:-1]:
            ax.set_xlabel("")
            ax.tick_params(labelbottom=False)
        if c:                                # the frequency axis is shared: label it once
            for ax in images:
                ax.set_ylabel("")
                ax.tick_params(labelleft=False)


def audio_players_html(signals: Mapping[str, np.ndarray], sample_rate: int = SAMPLE_RATE) -> str:
    """HTML audio players, one per system, labelled, side by side (wrapping at the page's width).

    Notebook: 06_compare_spectrograms.ipynb

    Levels are kept as they are (``normalize=False``), so a system that removes energy sounds
    quieter, as it is; only a signal beyond full scale is scaled down.
    """
    from ..data.display import audio_player_html

    cells = "".join(f"<div><b>{html.escape(system_label(name))}</b><br>"
                    f"{audio_player_html(x, sample_rate, normalize=False)}</div>"
                    for name, x in signals.items())
    return f"<div style='display:flex; flex-wrap:wrap; gap:4px 12px'>{cells}</div>"
