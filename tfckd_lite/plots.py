"""Plot helpers shared by the notebooks (FMP style: pass an axes or get a new figure).

Every ``plot_*`` function takes an optional ``ax`` and returns ``(fig, ax, artist)``, so the same
function draws a single figure, a panel of a grid or a widget's canvas.
"""

from __future__ import annotations

import numpy as np
import torch

from .stft import HOP_LENGTH, N_FFT, SAMPLE_RATE


METRIC_LABELS = {"pesq_wb": "PESQ-WB", "pesq_nb": "PESQ-NB", "stoi": "STOI", "estoi": "ESTOI",
                 "si_sdr": "SI-SDR (dB)"}


def _axes(ax, figsize=(6, 3)):
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
    else:
        fig = ax.figure
    return fig, ax


def _as_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def spectrogram_db(spec, floor_db: float = -100.0) -> np.ndarray:
    """Power in dB, ``[T, F]``, from real/imag planes ``[2, T, F]`` or a complex ``[T, F]``.

    Notebook: 02_dpdcrn.ipynb
    """
    spec = _as_numpy(spec)
    if np.iscomplexobj(spec):
        power = np.abs(spec) ** 2
    else:
        if spec.ndim != 3 or spec.shape[0] != 2:
            raise ValueError(f"expected real/imag planes [2, T, F] or complex [T, F], "
                             f"got shape {spec.shape}")
        power = spec[0] ** 2 + spec[1] ** 2
    return np.maximum(10 * np.log10(power + 1e-12), floor_db)


def plot_spectrogram(spec, ax=None, title: str | None = None, vmin: float | None = None,
                     vmax: float | None = None, sample_rate: int = SAMPLE_RATE,
                     hop_length: int = HOP_LENGTH, n_fft: int = N_FFT, colorbar: bool = False):
    """Draw a spectrogram (planes ``[2, T, F]``, complex ``[T, F]`` or dB ``[T, F]`` array).

    Notebook: 02_dpdcrn.ipynb

    Time runs along x in seconds and frequency along y in kHz. Pass ``vmin``/``vmax`` to put
    several panels on one colour scale.
    """
    arr = _as_numpy(spec)
    db = arr if (arr.ndim == 2 and not np.iscomplexobj(arr)) else spectrogram_db(arr)
    fig, ax = _axes(ax)
    frames, bins = db.shape
    extent = (0, frames * hop_length / sample_rate, 0, (bins - 1) * sample_rate / n_fft / 1000)
    if vmax is None:
        vmax = float(db.max())
    if vmin is None:
        vmin = vmax - 80
    im = ax.imshow(db.T, origin="lower", aspect="auto", extent=extent, vmin=vmin, vmax=vmax,
                   cmap="magma", interpolation="nearest")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (kHz)")
    if title:
        ax.set_title(title)
    if colorbar:
        fig.colorbar(im, ax=ax, label="dB")
    return fig, ax, im


def plot_feature_map(feature, ax=None, title: str | None = None):
    """Mean absolute activation over channels of one tap ``[C, T, F]``, as a time-frequency image.

    Notebook: 02_dpdcrn.ipynb
    """
    arr = np.abs(_as_numpy(feature))
    if arr.ndim != 3:
        raise ValueError(f"expected one item's feature map [C, T, F], got shape {arr.shape}")
    fig, ax = _axes(ax)
    im = ax.imshow(arr.mean(0).T, origin="lower", aspect="auto", cmap="viridis",
                   interpolation="nearest")
    ax.set_xlabel("frame")
    ax.set_ylabel("frequency position")
    if title:
        ax.set_title(title)
    return fig, ax, im


def plot_influence(curves: dict, frame: int, ax=None, title: str | None = None):
    """Per-input-frame influence curves (from ``models.inspect.temporal_influence``) as stems.

    Notebook: 02_dpdcrn.ipynb
    """
    fig, ax = _axes(ax)
    artists = []
    for label, curve in curves.items():
        curve = _as_numpy(curve)
        artists.append(ax.plot(np.arange(len(curve)), curve, marker="o", ms=3, label=label)[0])
    ax.axvline(frame, color="k", ls="--", lw=1, label=f"output frame {frame}")
    ax.set_xlabel("input frame")
    ax.set_ylabel("influence (max = 1)")
    ax.legend(loc="upper left", fontsize=8)
    if title:
        ax.set_title(title)
    return fig, ax, artists


def plot_training_curves(history: list[dict], axes=None):
    """Training loss and validation PESQ-WB / SI-SDR per epoch from ``fit(...).history``.

    Notebook: 03_training.ipynb

    ``axes`` is an optional pair of axes; returns ``(fig, axes, lines)``.
    """
    import matplotlib.pyplot as plt

    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3))
    else:
        fig = axes[0].figure
    epochs = [h["epoch"] for h in history]
    lines = [axes[0].plot(epochs, [h["train"]["total"] for h in history], marker="o",
                          label="training loss")[0]]
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("loss")
    axes[0].legend(fontsize=8)
    pesq_ax = axes[1]
    lines.append(pesq_ax.plot(epochs, [h["valid"].get("pesq_wb") for h in history], marker="o",
                              color="C1", label="valid PESQ-WB")[0])
    pesq_ax.set_xlabel("epoch")
    pesq_ax.set_ylabel("PESQ-WB")
    sdr_ax = pesq_ax.twinx()
    lines.append(sdr_ax.plot(epochs, [h["valid"].get("si_sdr") for h in history], marker="s",
                             color="C2", label="valid SI-SDR")[0])
    sdr_ax.set_ylabel("SI-SDR (dB)")
    pesq_ax.legend(handles=lines[1:], fontsize=8, loc="lower right")
    from matplotlib.ticker import MaxNLocator

    for ax in axes[:2]:                  # epochs are whole: no tick at epoch 1.5
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return fig, axes, lines


def plot_breakdown(breakdowns: dict, metric: str = "si_sdr", ax=None,
                   title: str | None = None, delta: bool = True):
    """Grouped bars of one metric per group of clips, one colour per model.

    Notebook: 03_training.ipynb

    ``breakdowns`` maps a model name to a :func:`tfckd_lite.metrics.summary_by` result, or to
    ``pretrained.test_breakdown(name, field)`` for a shipped model: ``{model: {group:
    summary}}``. Draws the improvement over the noisy input (``delta_<metric>``), or the score
    itself with ``delta=False`` (then the noisy input is drawn too). Returns
    ``(fig, ax, bar containers)``.
    """
    fig, ax = _axes(ax, figsize=(7, 3))
    groups = list(next(iter(breakdowns.values())))
    series = {name: [by[g][f"delta_{metric}" if delta else metric] for g in groups]
              for name, by in breakdowns.items()}
    if not delta:
        first = next(iter(breakdowns.values()))
        series = {"noisy input": [first[g][f"input_{metric}"] for g in groups], **series}
    width = 0.8 / len(series)
    x = np.arange(len(groups))
    bars = [ax.bar(x + (i - (len(series) - 1) / 2) * width, values, width, label=name)
            for i, (name, values) in enumerate(series.items())]
    ax.set_xticks(x, [str(g) for g in groups])
    label = METRIC_LABELS.get(metric, metric)
    ax.set_ylabel(f"Δ {label}" if delta else label)
    ax.axhline(0, color="k", lw=0.8)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return fig, ax, bars
