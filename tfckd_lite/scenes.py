"""Scores by scene on the simulated L3DAS23: per reverberation-time and SNR band, and what the
extra microphone channels are worth against a single-channel model given W only.

Notebook: 07_multichannel.ipynb

A simulated multi-channel set (``mc-mini``, ``mc-small``) logs each scene's target RT60 and
SNR in its manifest (:func:`~tfckd_lite.data.builder_mc.scene_table`); the loader's items
carry only the clip's name. :func:`scene_bands` names each clip's bands, :func:`scores_by_band`
averages a per-clip evaluation (:func:`~tfckd_lite.metrics.evaluate`'s records) per band, and
:func:`compare_channels` builds the table "multi-channel model against a single-channel model
given the reference channel W of microphone A, with the unprocessed W as a row".

Bands. RT60: 0.2 s wide over the simulation's range (:data:`RT60_BANDS`: 0.2-0.4, 0.4-0.6,
0.6-0.8 s, each ``[low, high)`` but the last, closed), by the *target* RT60 the room was made
for: the RT60 measured on W lies within a few per cent of it but may fall just outside the
range (0.187 s in ``mc-small``). SNR: one band per SNR of the split's grid (the test split's
2.5, 7.5, 12.5, 17.5 dB), the planned SNR, which the builder checks the measured one equals.

The single-channel view of W is the loader's own: ``open_corpus(root, split, mics="A",
channels=0)`` gives ``noisy`` ``[N]``, the channel the multi-channel models apply their mask to
(ACN order: W first), so a mono model scores it with no wrapper, and the unprocessed row is
the same W for both models (the multi-channel evaluation's ``input_*`` scores, read on
channel 0).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from .data.rooms import RT60_RANGE

#: width of an RT60 band (s)
RT60_BAND_WIDTH = 0.2

#: the RT60 bands ``(low, high)`` in seconds, covering the simulation's range
RT60_BANDS: tuple[tuple[float, float], ...] = tuple(
    (round(float(low), 3), round(float(low) + RT60_BAND_WIDTH, 3))
    for low in np.arange(RT60_RANGE[0], RT60_RANGE[1] - 1e-9, RT60_BAND_WIDTH))

#: the metrics of the per-band table: key, label
BAND_METRICS = (("pesq_wb", "PESQ-WB"), ("estoi", "ESTOI"), ("si_sdr", "SI-SDR (dB)"))

#: the grouping fields of a per-band table, in its order
BAND_FIELDS = ("rt60", "snr")

#: the row of the unprocessed reference channel
UNPROCESSED = "unprocessed W"


def rt60_band(rt60: float) -> str:
    """The label of the :data:`RT60_BANDS` band holding ``rt60`` (s), e.g. ``"0.2-0.4 s"``;
    ``ValueError`` outside the simulation's range.

    Notebook: 07_multichannel.ipynb
    """
    for i, (low, high) in enumerate(RT60_BANDS):
        last = i == len(RT60_BANDS) - 1
        if low <= rt60 < high or (last and rt60 == high):
            return f"{low:g}-{high:g} s"
    raise ValueError(f"RT60 {rt60} s lies outside the simulated range {RT60_RANGE} s")


def snr_band(snr: float) -> str:
    """The label of the SNR band of a planned SNR (dB), e.g. ``"7.5 dB"``.

    Notebook: 07_multichannel.ipynb
    """
    return f"{float(snr):g} dB"


def scene_bands(root) -> dict[str, dict[str, str]]:
    """``{clip name: {"rt60": band, "snr": band}}`` for every pair of a simulated set.

    Notebook: 07_multichannel.ipynb
    """
    from .data.builder_mc import scene_table

    return {name: {"rt60": rt60_band(scene["rt60"]), "snr": snr_band(scene["snr"])}
            for name, scene in scene_table(root).items()}


def _band_order(labels) -> list[str]:
    """Labels in increasing order of their band (by the number they start with)."""
    return sorted(set(labels), key=lambda label: float(re.match(r"-?[\d.]+", label).group()))


def scores_by_band(records: list[dict], bands: dict[str, dict[str, str]],
                   metrics=tuple(k for k, _ in BAND_METRICS), prefix: str = "") -> dict:
    """The mean of each metric over the clips of each band, from per-clip ``records``.

    Notebook: 07_multichannel.ipynb

    ``records``: :func:`~tfckd_lite.metrics.evaluate`'s per-clip records; ``bands``:
    :func:`scene_bands`; ``prefix``: ``""`` for the enhanced scores, ``"input_"`` for the
    unprocessed input's. Returns ``{"all": cell, "rt60": {band: cell}, "snr": {band: cell}}``,
    each cell ``{metric: mean, "clips": n, "unscored": {metric: count}}``: a NaN score (a clip
    the metric cannot score) is left out of its mean and counted, never taken as 0. A clip
    missing from ``bands`` raises ``KeyError``.
    """
    missing = [r["name"] for r in records if r["name"] not in bands]
    if missing:
        raise KeyError(f"{len(missing)} clip(s) have no scene (first {missing[0]!r}): "
                       "records and bands must come from the same set")

    def cell(chosen: list[dict]) -> dict:
        out: dict = {"clips": len(chosen), "unscored": {}}
        for metric in metrics:
            values = np.array([r[prefix + metric] for r in chosen], dtype=float)
            finite = values[np.isfinite(values)]
            out[metric] = float(finite.mean()) if len(finite) else math.nan
            out["unscored"][metric] = int(len(values) - len(finite))
        return out

    table: dict = {"all": cell(records)}
    for field in BAND_FIELDS:
        labels = _band_order((bands[r["name"]][field] for r in records))
        table[field] = {label: cell([r for r in records if bands[r["name"]][field] == label])
                        for label in labels}
    return table


def _as_model(model):
    """A model given as itself, a model file or a shipped model name."""
    if isinstance(model, (str, Path)):
        from .checkpoint import load_model
        from .pretrained import resolve

        return load_model(resolve(model))
    return model


def _channels(model) -> int:
    return int(getattr(getattr(model, "config", None), "in_channels", 1))


def compare_channels(mc_model, mono_model, root, split: str = "test", mics: str = "A",
                     max_clips: int | None = None, progress: bool = False,
                     names: tuple[str, ...] = ("multi-channel", "W only")) -> dict:
    """A multi-channel model against a single-channel one given W only, per RT60 and SNR band.

    Notebook: 07_multichannel.ipynb

    ``mc_model`` (e.g. ``lite-teacher-mc4``) enhances the ``mics`` channels of split ``split``
    of the simulated set at ``root``; ``mono_model`` (e.g. ``lite-teacher-w``) enhances channel
    0 of them, W of microphone A, the reference channel the multi-channel model's mask applies
    to; both are scored against the same dry clean speech (the target removes noise *and*
    reverberation) by :func:`~tfckd_lite.metrics.evaluate`. Each model is a DPDCRN, a model
    file or a shipped model's name; their channel counts are checked against the corpus first.
    ``mono_model`` may also be a list of single-channel models (e.g. ``lite-teacher-w`` and
    the dry-trained ``lite-teacher``), each given W; ``names`` then labels the multi-channel
    model and each of them, in order.

    Returns ``{"rows": [UNPROCESSED, *names], "tables": {row: scores_by_band(...)},
    "records": {row: per-clip records}, "split", "mics"}``; :func:`channels_markdown` prints
    it. The unprocessed row is the multi-channel evaluation's ``input_*`` scores (channel 0).
    """
    from .data import open_corpus
    from .metrics import evaluate

    monos = list(mono_model) if isinstance(mono_model, (list, tuple)) else [mono_model]
    names = tuple(names)
    if len(names) != 1 + len(monos) or len(set(names)) != len(names) or UNPROCESSED in names:
        raise ValueError(f"names must be {1 + len(monos)} distinct labels (the multi-channel "
                         f"model, then each single-channel one) other than {UNPROCESSED!r}, "
                         f"got {names}")
    full = open_corpus(root, split, mics=mics)           # a missing corpus is refused here,
    bands = scene_bands(root)                            # one that is not simulated here
    w_only = open_corpus(root, split, mics=mics, channels=0)
    mc_model, monos = _as_model(mc_model), [_as_model(m) for m in monos]
    channels = full[0][0].shape[0] if len(full) else 0
    if _channels(mc_model) != channels:
        raise ValueError(f"the multi-channel model takes {_channels(mc_model)} channel(s) but "
                         f"mics {mics!r} of {root} give {channels}")
    for label, mono in zip(names[1:], monos):
        if _channels(mono) != 1:
            raise ValueError(f"the single-channel model takes {_channels(mono)} channels "
                             f"({label!r}): give one built for a single microphone (e.g. "
                             "lite-teacher-w)")
    mc = evaluate(mc_model.enhance, full, max_clips=max_clips, progress=progress)["records"]
    records = {UNPROCESSED: mc, names[0]: mc}
    tables = {UNPROCESSED: scores_by_band(mc, bands, prefix="input_"),
              names[0]: scores_by_band(mc, bands)}
    for label, mono in zip(names[1:], monos):
        records[label] = evaluate(mono.enhance, w_only, max_clips=max_clips,
                                  progress=progress)["records"]
        tables[label] = scores_by_band(records[label], bands)
    return {"rows": [UNPROCESSED, *names], "split": split, "mics": mics, "records": records,
            "tables": tables}


def channels_markdown(comparison: dict) -> str:
    """:func:`compare_channels` as Markdown: one table per grouping (all clips, RT60, SNR),
    a row per band and system, a column per metric of :data:`BAND_METRICS`.

    Notebook: 07_multichannel.ipynb
    """
    rows, tables = comparison["rows"], comparison["tables"]
    head = "| band | system | clips | " + " | ".join(label for _, label in BAND_METRICS) + " |"
    rule = "|" + "---|" * (3 + len(BAND_METRICS))
    parts = []
    for field, title in (("all", "All clips"), ("rt60", "By RT60"), ("snr", "By SNR")):
        lines = [f"**{title}** ({comparison['split']} split, mics {comparison['mics']})", "",
                 head, rule]
        first = tables[rows[0]]
        labels = ["all"] if field == "all" else list(first[field])
        for label in labels:
            for row in rows:
                entry = tables[row]["all"] if field == "all" else tables[row][field][label]
                scores = " | ".join(f"{entry[k]:.3f}" if k == "estoi" else f"{entry[k]:.2f}"
                                    for k, _ in BAND_METRICS)
                lines.append(f"| {label} | {row} | {entry['clips']} | {scores} |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


__all__ = ["RT60_BAND_WIDTH", "RT60_BANDS", "BAND_METRICS", "BAND_FIELDS", "UNPROCESSED",
           "rt60_band", "snr_band", "scene_bands", "scores_by_band", "compare_channels",
           "channels_markdown"]
