"""What the extra microphone channels are worth, as a committed result: the ``channels`` command
and ``pretrained/results/channels.{json,md}``.

Notebook: 07_multichannel.ipynb

:func:`~tfckd_lite.scenes.compare_channels` scores a multi-channel model against single-channel
ones given W only, per RT60 and SNR band. :func:`channel_comparison` runs it on named models
(shipped names or model files) and adds what a reader needs to trust the numbers: the command
that made them, each model's weight sha256, the data manifest's sha256, and a **paired**
clip-level comparison. Every scene goes through every model, so the per-clip difference
cancels how hard each scene is; :func:`tfckd_lite.experiment.paired_comparison` (the
distillation experiment's own clip-level statistics, with one "seed", the one trained model of
each) gives its mean, a bootstrap interval over clips and the share of clips on which the
multi-channel model scores higher, over all clips and per band. One trained model per row: the
interval says whether another draw of test scenes could undo the difference between *these
two trained models*, not whether another training seed would.

:func:`write_channels` writes the JSON (the per-band tables, every model row's per-clip records,
the paired comparison) and :func:`channels_results_markdown` next to it, atomically;
:func:`read_channels` reads the committed file (``make channels``).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from .scenes import BAND_FIELDS, BAND_METRICS, channels_markdown, compare_channels, scene_bands

#: stem of the committed results, in ``pretrained/results`` (the experiment's RESULTS_DIR)
CHANNELS_NAME = "channels"

#: bootstrap resamples of the paired intervals (as the experiment's clip level)
RESAMPLES = 10_000


def results_file() -> Path:
    """Where ``make channels`` writes the committed comparison: ``pretrained/results/
    channels.json`` (the Markdown is next to it, ``channels.md``).

    Notebook: 07_multichannel.ipynb
    """
    from .experiment import report

    return report.RESULTS_DIR / f"{CHANNELS_NAME}.json"


def channels_argv(multi: str, monos, data, split: str = "test", mics: str = "A",
                  max_clips: int | None = None, out=None) -> list[str]:
    """The arguments of ``python -m tfckd_lite`` that make the same comparison.

    Notebook: 07_multichannel.ipynb
    """
    argv = ["channels", "--multi", str(multi), "--mono", *map(str, monos), "--data", str(data),
            "--split", split, "--mics", mics]
    if max_clips is not None:
        argv += ["--max-clips", str(max_clips)]
    return argv + ["--out", str(results_file() if out is None else out)]


def _model_record(spec: str) -> dict:
    """What the results record about one model: where it comes from and its weights' sha256
    (no path: the file is committed, and a path would name this machine)."""
    from . import pretrained
    from .checkpoint import read_model_description
    from .files import sha256_file

    file = pretrained.resolve(spec)
    described = read_model_description(file)
    return {"shipped": file == pretrained.PRETRAINED_DIR / file.name,
            "sha256": sha256_file(file), "preset": described.get("preset"),
            "in_channels": described["config"].get("in_channels", 1),
            "command": described.get("command")}


def channel_comparison(multi: str, monos, data, split: str = "test", mics: str = "A",
                       max_clips: int | None = None, progress: bool = True,
                       command: str | None = None, confidence: float = 0.95,
                       resamples: int = RESAMPLES) -> dict:
    """The multi-channel model ``multi`` against each single-channel model of ``monos`` (given
    W only) on ``split`` of the simulated set ``data``, with the provenance of every input.

    Notebook: 07_multichannel.ipynb

    Models are shipped names (``lite-teacher-mc4``, ``lite-teacher-w``, ``lite-teacher``) or
    ``.safetensors`` files; each row of the tables is labelled by the name as given. Returns
    :func:`~tfckd_lite.scenes.compare_channels`'s ``rows``, ``tables``, ``split`` and ``mics``,
    and ``records`` of the model rows only (the unprocessed row is the ``input_*`` fields of
    any of them), with ``command`` (by default the :func:`channels_argv` command line),
    ``data`` and ``data_manifest_sha256``, ``max_clips`` and ``clips`` (the scenes scored),
    ``models`` (``{name: {"shipped", "sha256", "preset", "in_channels", "command"}}``: whether
    the name is a shipped model's, the weights' sha256, and the model's training command),
    ``scenes`` (each scored clip's target RT60 in s and planned SNR in dB) and ``bands``
    (its bands, :func:`~tfckd_lite.scenes.scene_bands`), so that the file can be re-read
    without the data, and ``paired``: :func:`tfckd_lite.experiment.paired_comparison` with
    ``multi`` as the reference, over all clips and per band (``entry["by"][field][band]``).
    """
    from .data import manifest_sha256
    from .data.builder_mc import scene_table

    monos = [str(m) for m in ([monos] if isinstance(monos, (str, Path)) else monos)]
    if not monos:
        raise ValueError("give at least one single-channel model to compare with")
    names = (str(multi), *monos)
    models = {name: _model_record(name) for name in names}
    compared = compare_channels(multi, monos, data, split=split, mics=mics, max_clips=max_clips,
                                progress=progress, names=names)
    records = {name: compared["records"][name] for name in names}
    clips = [r["name"] for r in records[names[0]]]
    if not clips:
        raise ValueError(f"split {split!r} of {data} has no scenes to compare")
    bands = scene_bands(data)
    band_order = {field: list(compared["tables"][names[0]][field]) for field in BAND_FIELDS}
    paired = _paired(records, names[0], bands, band_order, confidence, resamples)
    logged = scene_table(data)
    return {"command": command or "python -m tfckd_lite " + shlex.join(
                channels_argv(multi, monos, data, split, mics, max_clips)),
            "data": str(data), "data_manifest_sha256": manifest_sha256(data), "split": split,
            "mics": mics, "max_clips": max_clips, "clips": len(clips), "models": models,
            "rows": compared["rows"], "tables": compared["tables"], "records": records,
            "scenes": {name: {field: logged[name][field] for field in BAND_FIELDS}
                       for name in clips},           # the manifest's "rt60" (s), "snr" (dB)
            "bands": {name: bands[name] for name in clips}, "paired": paired}


def _paired(records: dict, reference: str, bands: dict, band_order: dict, confidence: float,
            resamples: int) -> dict:
    """:func:`~tfckd_lite.experiment.paired_comparison` of the reference row against every
    other row, each metric's entry also per band (``entry["by"][field][band]``, bands in the
    order of the tables)."""
    from .experiment import paired_comparison

    metrics = tuple(key for key, _ in BAND_METRICS)
    one_seed = {row: {0: clips} for row, clips in records.items()}  # one trained model per row
    paired, by = None, {}
    for field in BAND_FIELDS:              # one grouping per call: the whole-split summary is
        groups = {name: band[field] for name, band in bands.items()}     # the same each time
        paired = paired_comparison(one_seed, reference, metrics=metrics, confidence=confidence,
                                   resamples=resamples, groups=groups)
        for method, entries in paired["methods"].items():
            for metric, entry in entries.items():
                by.setdefault(method, {}).setdefault(metric, {})[field] = {
                    band: entry["by"][band] for band in band_order[field]}
    for method, entries in paired["methods"].items():
        for metric, entry in entries.items():
            entry["by"] = by[method][metric]
    return paired


def channels_results_markdown(results: dict) -> str:
    """:func:`channel_comparison` as Markdown: what was compared and how to make it again, the
    per-band tables (:func:`~tfckd_lite.scenes.channels_markdown`) and the paired differences
    (:func:`paired_markdown`).

    Notebook: 07_multichannel.ipynb
    """
    models = results["models"]
    scope = (f"the first {results['clips']} scenes" if results["max_clips"] is not None
             else f"all {results['clips']} scenes")
    lines = [f"The multi-channel model `{results['rows'][1]}` (mics {results['mics']}) against "
             "the single-channel " + ", ".join(f"`{n}`" for n in results["rows"][2:])
             + f" given W only, on {scope} of the {results['split']} split of "
             f"`{results['data']}` (manifest sha256 `{results['data_manifest_sha256'][:12]}…`), "
             "each scored against the dry clean speech.", "",
             f"Made by `{results['command']}`.", "",
             "| model | channels | preset | weights sha256 |", "|---|---|---|---|"]
    lines += [f"| `{name}` | {m['in_channels']} | {m['preset']} | `{m['sha256'][:12]}…` |"
              for name, m in models.items()]
    return "\n".join(lines) + "\n\n" + channels_markdown(results) + "\n" + \
        paired_markdown(results["paired"]) + "\n"


def paired_markdown(paired: dict) -> str:
    """The paired clip-level differences of :func:`channel_comparison` as Markdown: per
    single-channel model a table of the mean per-clip difference (multi-channel − it), its
    bootstrap interval and the share of clips the multi-channel model wins, over all clips and
    per band, then what the intervals resolve.

    Notebook: 07_multichannel.ipynb
    """
    from .experiment import paired_verdicts

    ref, share = paired["reference"], f"{100 * paired['confidence']:g} %"
    labels = dict(BAND_METRICS)
    parts = [f"**Paired, clip by clip**: every scene went through every model, so the "
             f"difference `{ref}` − model per clip cancels how hard the scene is. Mean "
             f"difference, its {share} bootstrap interval over clips "
             f"({paired['resamples']:,} resamples) and the share of clips on which `{ref}` "
             "scores higher. One trained model per row: the interval says whether another "
             "draw of test scenes could undo the difference between *these trained models*, "
             "not whether another training seed would. An interval that straddles 0 is not "
             "resolved; a band of few clips has a wide one."]
    for method, entries in paired["methods"].items():
        head = ["band", "clips"]
        for key in entries:
            head += [f"Δ {labels[key]}", f"{share} interval", f"`{ref}` higher"]
        lines = [f"`{ref}` − `{method}`", "", "| " + " | ".join(head) + " |",
                 "|" + "---|" * len(head)]
        first = next(iter(entries.values()))
        bands = [("all", None)] + [(band, field) for field in BAND_FIELDS
                                   for band in first["by"][field]]
        for band, field in bands:
            cells = [band, str((first if field is None else first["by"][field][band])["n"])]
            for key, entry in entries.items():
                e = entry if field is None else entry["by"][field][band]
                digits = 3 if key == "estoi" else 2
                cells += [f"{e['mean']:+.{digits}f}",
                          f"[{e['low']:+.{digits}f}, {e['high']:+.{digits}f}]",
                          f"{100 * e['better']:.0f} %"]
            lines.append("| " + " | ".join(cells) + " |")
        parts.append("\n".join(lines))
    verdicts = paired_verdicts(paired, level="clip")
    said = []
    for key, sides in verdicts.items():
        words = [f"higher than {', '.join(f'`{m}`' for m in sides['higher'])}"
                 if sides["higher"] else "",
                 f"lower than {', '.join(f'`{m}`' for m in sides['lower'])}"
                 if sides["lower"] else "",
                 f"not resolved against {', '.join(f'`{m}`' for m in sides['undecided'])}"
                 if sides["undecided"] else ""]
        said.append(f"- {labels[key]} over all clips: `{ref}` scores "
                    + "; ".join(w for w in words if w) + ".")
    parts.append("\n".join(said))
    return "\n\n".join(parts) + "\n"


def write_channels(results: dict, out=None) -> dict[str, Path]:
    """Write ``results`` (:func:`channel_comparison`) to ``out`` (default :func:`results_file`)
    and :func:`channels_results_markdown` next to it (``.md``), each atomically: a reader sees
    the old file or the new one, never a part. Returns ``{"json": path, "md": path}``.

    Notebook: 07_multichannel.ipynb
    """
    from .files import atomic_write_bytes

    out = results_file() if out is None else Path(out)
    if out.suffix != ".json":
        raise ValueError(f"the results file must end in .json (the Markdown goes next to it), "
                         f"got {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = {"json": out, "md": out.with_suffix(".md")}
    atomic_write_bytes(paths["json"], (json.dumps(results, indent=1) + "\n").encode())
    atomic_write_bytes(paths["md"], channels_results_markdown(results).encode())
    return paths


def read_channels(path=None) -> dict | None:
    """The comparison written by :func:`write_channels` at ``path`` (default: the committed
    :func:`results_file`), or ``None`` when there is none.

    Notebook: 07_multichannel.ipynb
    """
    file = results_file() if path is None else Path(path)
    return json.loads(file.read_text()) if file.is_file() else None


def register(subparsers) -> None:
    """``channels`` subcommand of ``python -m tfckd_lite``.

    Notebook: 07_multichannel.ipynb
    """
    p = subparsers.add_parser(
        "channels", help="a multi-channel model against single-channel ones given W only, per "
                         "RT60 and SNR band, written as a results file")
    p.add_argument("--multi", required=True,
                   help="the multi-channel model: a shipped name (lite-teacher-mc4) or a file")
    p.add_argument("--mono", required=True, nargs="+",
                   help="single-channel model(s) given W: shipped names (lite-teacher-w "
                        "lite-teacher) or files")
    p.add_argument("--data", required=True, help="a simulated multi-channel set (mc-small)")
    p.add_argument("--split", default="test")
    p.add_argument("--mics", default="A", choices=("A", "B", "AB"),
                   help="the multi-channel model's microphones; W is channel 0 of them")
    p.add_argument("--max-clips", type=int, default=None,
                   help="only the first N scenes (a quick look; commit the whole split)")
    p.add_argument("--out", default=None,
                   help="results file, .json (default: tfckd_lite/pretrained/results/"
                        "channels.json); the Markdown goes next to it")
    p.set_defaults(func=_channels_command)


def _channels_command(args) -> int:
    import sys

    if args.max_clips is not None and args.max_clips < 1:
        from .cli import UsageError

        raise UsageError(f"--max-clips must be at least 1, got {args.max_clips}")
    if args.out is not None and Path(args.out).suffix != ".json":
        from .cli import UsageError

        raise UsageError(f"--out must name a .json file (the Markdown goes next to it), got "
                         f"{args.out}")
    results = channel_comparison(
        args.multi, args.mono, args.data, split=args.split, mics=args.mics,
        max_clips=args.max_clips,
        command="python -m tfckd_lite " + shlex.join(getattr(args, "argv", sys.argv[1:])))
    paths = write_channels(results, args.out)
    print(f"wrote {paths['json']} and {paths['md']}")
    print(channels_markdown(results))
    return 0


__all__ = ["CHANNELS_NAME", "RESAMPLES", "results_file", "channels_argv", "channel_comparison",
           "channels_results_markdown", "paired_markdown", "write_channels", "read_channels",
           "register"]
