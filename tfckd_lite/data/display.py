"""Listening and looking at data in a notebook: a table of audio players, a waveform plot.

Notebook: 01_signals_and_data.ipynb

Plot helpers follow the project's FMP-style convention: pass ``ax`` to draw into a panel, get
``(fig, ax, artist)`` back. Spectrograms are drawn with :func:`tfckd_lite.plots.plot_spectrogram`.
"""

from __future__ import annotations

import base64
import html

import numpy as np
import torch

from ..audio import SAMPLE_RATE, wav_bytes


def _numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def audio_player_html(samples, sample_rate: int = SAMPLE_RATE, normalize: bool = True) -> str:
    """An HTML ``<audio>`` element holding ``samples`` as an embedded 16-bit WAV.

    Notebook: 01_signals_and_data.ipynb

    ``normalize=False`` keeps the level (so a quiet clip sounds quiet); louder-than-full-scale
    input is always scaled down.
    """
    x = _numpy(samples).reshape(-1)
    peak = float(np.abs(x).max()) if x.size else 0.0
    if peak > 0 and (normalize or peak > 1.0):
        x = x * (0.9 / peak)
    data = base64.b64encode(wav_bytes(x.astype(np.float32), sample_rate)).decode("ascii")
    # 160 px: four players and a label column fit a notebook beside JupyterLab's file browser
    return (f'<audio controls preload="none" style="width:160px" '
            f'src="data:audio/wav;base64,{data}"></audio>')


def audio_table(rows, columns=None, sample_rate: int = SAMPLE_RATE, normalize: bool = True):
    """An HTML table of audio players, one row per example, for side-by-side listening.

    Notebook: 01_signals_and_data.ipynb

    ``rows`` maps a row label to ``{column: samples or text}``; text cells are shown as text.
    Returns an ``IPython.display.HTML`` object (display it, or read its ``.data``).
    """
    from IPython.display import HTML

    rows = dict(rows)
    if columns is None:
        columns = []
        for cells in rows.values():
            columns += [c for c in cells if c not in columns]
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = []
    for label, cells in rows.items():
        tds = []
        for column in columns:
            value = cells.get(column, "")
            if isinstance(value, (str, int, float)):
                tds.append(f"<td>{html.escape(str(value))}</td>")
            else:
                tds.append(f"<td>{audio_player_html(value, sample_rate, normalize)}</td>")
        body.append(f"<tr><td><b>{html.escape(str(label))}</b></td>{''.join(tds)}</tr>")
    return HTML(f"<table><tr><th></th>{head}</tr>{''.join(body)}</table>")


def plot_waveform(samples, ax=None, sample_rate: int = SAMPLE_RATE, title: str | None = None,
                  **line_options):
    """Draw a waveform against time in seconds; returns ``(fig, ax, line)``.

    Notebook: 01_signals_and_data.ipynb
    """
    import matplotlib.pyplot as plt

    x = _numpy(samples).reshape(-1)
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 2))
    else:
        fig = ax.figure
    options = {"linewidth": 0.6, **line_options}
    (line,) = ax.plot(np.arange(len(x)) / sample_rate, x, **options)
    ax.set_xlim(0, len(x) / sample_rate)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("amplitude")
    if title:
        ax.set_title(title)
    return fig, ax, line
