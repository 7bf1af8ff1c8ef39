"""The report: the results table and figure, and shipping them with the best students.

Notebook: 05_distillation.ipynb

:func:`write_report` writes ``results.json``, ``results.md`` (:func:`results_markdown`, with
:func:`paired_markdown` and :func:`calibration_markdown`) and ``results.png``
(:func:`plot_results`, :func:`plot_paired`). :func:`ship` exports the best seed of every KD
method as ``tfckd_lite/pretrained/lite-student-<method>`` and the report as
``tfckd_lite/pretrained/results/distillation.*`` (:func:`shipped_results`), which notebook 05 and
the README show.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..files import atomic_write_bytes
from .config import SHIPPED_EXTRAS, ExperimentConfig, Run
from .results import METRICS

#: where --ship writes the report (inside the package), and its file stem
RESULTS_DIR = Path(__file__).resolve().parents[1] / "pretrained" / "results"
SHIPPED_NAME = "distillation"


def results_markdown(results: dict) -> str:
    """The results table (Markdown), one row per method plus the noisy input and the teacher.

    Notebook: 05_distillation.ipynb
    """
    cx = results["complexity"]
    head = ["method", "λ", "seeds"] + [label for _, label, _ in METRICS] + [
        "gap closed PESQ-WB / SI-SDR", "params (+ extra in training)", "GFLOP/s",
        "train time (min)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    fmt = lambda s, d: f"{s['mean']:.{d}f}"  # noqa: E731
    for name, label, params, gflops in (("noisy", "noisy input", "", ""),
                                        ("teacher", "teacher", f"{cx['teacher_params']:,}",
                                         f"{cx['teacher_gflops']:.2f}")):
        row = results["rows"][name]
        lines.append(f"| {label} | | | " + " | ".join(fmt(row[k], d) for k, _, d in METRICS)
                     + f" | | {params} | {gflops} | |")
    for method, entry in results["methods"].items():
        s = entry["scores"]
        cells = [f"{s[k]['mean']:.{d}f} ± {s[k]['std']:.{d}f}" for k, _, d in METRICS]
        gap = entry["gap_closed"]
        gap_text = ("–" if method == "none" else
                    " / ".join("n/a" if math.isnan(gap[k]) else f"{100 * gap[k]:+.0f} %"
                               for k in ("pesq_wb", "si_sdr")))
        lam = "–" if entry["kd_weight"] is None else f"{entry['kd_weight']:g}"
        if entry.get("tuned_with", method) != method:
            lam += f" ({entry['tuned_with']}'s)"
        extra = cx["extra_params"].get(method, 0)
        params = f"{cx['student_params']:,}" + (f" (+{extra:,})" if extra else "")
        minutes = entry["train_seconds"]["mean"] / 60
        lines.append(f"| `{method}` | {lam} | {s['pesq_wb']['n']} | " + " | ".join(cells)
                     + f" | {gap_text} | {params} | {cx['student_gflops']:.2f} | {minutes:.1f} |")
    jobs = results.get("config", {}).get("jobs")
    side_by_side = f", {jobs} runs side by side" if jobs and jobs > 1 else ""
    lines += ["", "Train time: wall-clock minutes per run (epochs × the run's median epoch, "
              f"validation included; mean over seeds){side_by_side} on the machine that ran them, "
              "so it also carries that machine's load; the controlled cost of one step per "
              "method is `bench/bench_distill.py`'s."]
    if results.get("paired"):
        lines += ["", paired_markdown(results["paired"])]
    calibration = calibration_markdown(results)
    if calibration:
        lines += ["", calibration]
    return "\n".join(lines)


def calibration_markdown(results: dict) -> str:
    """How decisive each calibrated method's learnt weights ended up, and whether they favour
    the closest teacher layers (Markdown), or ``""`` when no method learnt calibration weights.

    Notebook: 05_distillation.ipynb
    """
    from ..distill import STREAMS
    from ..distill.plots import STAGE_ORDER

    spreads = {m: e["calibration_spread"] for m, e in results["methods"].items()
               if e.get("calibration_spread")}
    if not spreads:
        return ""
    # network order; only the stages and streams some method has
    columns = [(stage, stream) for stage in STAGE_ORDER for stream in STREAMS
               if any(stream in s.get(stage, {}) for s in spreads.values())]
    names = {"time": "time", "freq": "\"freq\""}
    head = (["method"] + [f"{stage} {names.get(stream, stream)}" for stage, stream in columns]
            + ["weighs most its closest layer"])
    lines = ["The learnt calibration weights after training: log(largest / smallest weight) of "
             "each row of the mean weights that `train` recorded on its fixed batch after the "
             "last epoch, averaged over rows and seeds. 0 is uniform; with the SemCKD "
             "normalisation no row can pass 2 (`distill.calibration.weight_ceiling`), so 2 "
             "means a fixed assignment of student to teacher layers, as decisive as the block "
             "allows. `tfckd-released` normalises over frames instead and has no such ceiling "
             "per frame; averaged over frames its weights can look less decisive than they are "
             "frame by frame. The last column: in how many rows (student layer x stream, all "
             "sets, summed over the seeds whose distiller is kept) the teacher layer weighed "
             "most is the one the student layer's relations are closest to, on a fixed "
             "validation batch (`experiment.run_calibration_agreement`; notebook 04 explains "
             "why a block trained on the loss it weighs goes there).", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method, spread in spreads.items():
        cells = [f"{spread[stage][stream]:.2f}" if stream in spread.get(stage, {}) else "–"
                 for stage, stream in columns]
        agreement = results["methods"][method].get("calibration_agreement")
        cells.append(f"{agreement['agree']} of {agreement['rows']}" if agreement else "–")
        lines.append(f"| `{method}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_markdown(paired: dict) -> str:
    """The clip-by-clip comparison of :func:`paired_comparison` as a Markdown table.

    Notebook: 05_distillation.ipynb
    """
    ref, share = paired["reference"], f"{100 * paired['confidence']:g} %"
    metrics = list(next(iter(paired["methods"].values())))
    labels = dict((key, label) for key, label, _ in METRICS)
    digits = dict((key, d) for key, _, d in METRICS)
    head = [f"`{ref}` − method"]
    for key in metrics:
        head += [f"Δ {labels[key]}", f"{share} interval", f"clips where `{ref}` is higher"]
    lines = [f"`{ref}` against each method, clip by clip on the test split: per clip each "
             f"method's score is averaged over its seeds, and the mean difference is shown with "
             f"its {share} bootstrap interval over clips ({paired['resamples']:,} resamples). "
             "The interval says how much another draw of test clips could move that mean; the "
             "spread between seeds is the ± above. An interval that excludes 0 is a difference "
             "these clips support.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method, entry in paired["methods"].items():
        cells = []
        for key in metrics:
            e, d = entry[key], digits[key] + 1
            cells += [f"{e['mean']:+.{d}f}", f"[{e['low']:+.{d}f}, {e['high']:+.{d}f}]",
                      f"{100 * e['better']:.0f} % of {e['n']}"]
        lines.append(f"| `{method}` | " + " | ".join(cells) + " |")
    baseline = paired["methods"].get("none", {})
    by = {key: baseline[key]["by"] for key in metrics if "by" in baseline.get(key, {})}
    if by:
        head = ["test noise", "clips"]
        for key in by:
            head += [f"Δ {labels[key]}", f"{share} interval"]
        lines += ["", f"The same comparison of `{ref}` with `none` (the student alone) per noise "
                  "type of the test clips: where distillation changes the student.", "",
                  "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for group in next(iter(by.values())):
            cells = [group, str(next(iter(by.values()))[group]["n"])]
            for key, groups in by.items():
                e, d = groups[group], digits[key] + 1
                cells += [f"{e['mean']:+.{d}f}", f"[{e['low']:+.{d}f}, {e['high']:+.{d}f}]"]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_results(results: dict, axes=None):
    """Mean ± std per method for each metric, with the noisy input and teacher as lines.

    Notebook: 05_distillation.ipynb

    ``axes``: four axes, or ``None`` for a new 1 x 4 figure. Returns ``(fig, axes)``.
    """
    import matplotlib.pyplot as plt

    if axes is None:
        fig, axes = plt.subplots(1, len(METRICS), figsize=(4 * len(METRICS), 3.6),
                                 layout="constrained")
    fig = axes[0].figure
    names = list(results["methods"])
    x = np.arange(len(names))
    for ax, (key, label, _) in zip(axes, METRICS):
        means = [results["methods"][m]["scores"][key]["mean"] for m in names]
        stds = [results["methods"][m]["scores"][key]["std"] for m in names]
        colours = ["0.6" if m == "none" else ("C3" if m == "tfckd" else "C0") for m in names]
        ax.bar(x, means, yerr=stds, color=colours, capsize=3)
        for row, style in (("noisy", ":"), ("teacher", "--")):
            ax.axhline(results["rows"][row][key]["mean"], color="k", ls=style, lw=1, label=row)
        low = min(min(means) - max(stds, default=0), results["rows"]["noisy"][key]["mean"])
        high = max(max(means) + max(stds, default=0), results["rows"]["teacher"][key]["mean"])
        pad = 0.08 * (high - low or 1.0)
        ax.set_ylim(low - pad, high + pad)
        ax.set_xticks(x, names, rotation=60, ha="right", fontsize=8)
        ax.set_title(label)
    # one legend beside the panels: inside any panel it would cover bars
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right upper", fontsize=8)
    return fig, axes


def plot_paired(paired: dict, axes=None):
    """The clip-by-clip comparison of :func:`paired_comparison`: one panel per metric, the mean
    difference ``reference − method`` per method with its bootstrap interval, and a line at 0.

    Notebook: 05_distillation.ipynb

    Green: the interval lies above 0 (the reference scores higher on these clips); red: below
    0; grey: it includes 0. ``axes``: one axis per metric, or ``None`` for a new figure.
    Returns ``(fig, axes)``.
    """
    import matplotlib.pyplot as plt

    methods = list(paired["methods"])
    metrics = list(paired["methods"][methods[0]])
    if axes is None:
        fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics),
                                                           0.45 * len(methods) + 1.4),
                                 layout="constrained", squeeze=False)
        axes = axes[0]
    fig = axes[0].figure
    labels = dict((key, label) for key, label, _ in METRICS)
    y = np.arange(len(methods))[::-1]
    for ax, key in zip(axes, metrics):
        entries = [paired["methods"][m][key] for m in methods]
        means = np.array([e["mean"] for e in entries])
        errors = np.array([[e["mean"] - e["low"] for e in entries],
                           [e["high"] - e["mean"] for e in entries]])
        colours = ["C2" if e["low"] > 0 else ("C3" if e["high"] < 0 else "0.5") for e in entries]
        for yi, mean, low, high, colour in zip(y, means, errors[0], errors[1], colours):
            ax.errorbar(mean, yi, xerr=[[low], [high]], fmt="o", color=colour, capsize=3)
        ax.axvline(0.0, color="k", lw=1)
        ax.set_yticks(y, methods, fontsize=8)
        ax.set_xlabel(f"Δ {labels[key]}, {paired['reference']} − method")
    axes[0].set_title(f"{paired['reference']} against each method "
                      f"({100 * paired['confidence']:g} % intervals over test clips)",
                      fontsize=9, loc="left")
    return fig, axes


def write_report(results: dict, folder: str | Path, stem: str = "results") -> dict[str, Path]:
    """Write ``<stem>.json``, ``<stem>.md`` and ``<stem>.png`` atomically into ``folder``.

    Notebook: 05_distillation.ipynb

    The figure is :func:`plot_results`, with :func:`plot_paired` below it when the results
    hold the clip-by-clip comparison.
    """
    import io

    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {suffix: folder / f"{stem}.{suffix}" for suffix in ("json", "md", "png")}
    atomic_write_bytes(paths["json"], (json.dumps(results, indent=1) + "\n").encode())
    atomic_write_bytes(paths["md"], (results_markdown(results) + "\n").encode())
    paired = results.get("paired")
    if paired:
        rows = len(paired["methods"])
        fig = plt.figure(figsize=(4 * len(METRICS), 3.6 + 0.35 * rows + 1.6), layout="constrained")
        top, bottom = fig.subfigures(2, 1, height_ratios=[3.6, 0.35 * rows + 1.6])
        plot_results(results, axes=top.subplots(1, len(METRICS)))
        plot_paired(paired, axes=bottom.subplots(1, len(next(iter(paired["methods"].values())))))
    else:
        fig, _ = plot_results(results)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(paths["png"], buffer.getvalue())
    return paths


def ship(results: dict, progress: bool = True) -> dict[str, Path]:
    """Export the best seed of each KD method and the report into the package.

    Notebook: 05_distillation.ipynb

    ``lite-student-<method>`` (best seed by validation PESQ-WB; with its distiller extras for
    the methods of :data:`SHIPPED_EXTRAS`) for every method but ``none``, and
    ``pretrained/results/distillation.{json,md,png}``.
    """
    from .. import pretrained

    cfg = ExperimentConfig.from_dict(results["config"])
    shipped = {}
    for method, entry in results["methods"].items():
        if method == "none":
            continue
        run = Run(method, entry["kd_weight"], entry["best_seed"])
        folder = run.run_folder(cfg)
        cached = json.loads(folder.test_scores.read_text())
        shipped[method] = pretrained.export(
            folder.path, f"{cfg.student}-{method}", cfg.data, report=cached, progress=progress,
            command=results["command"] + " --ship", extras=method in SHIPPED_EXTRAS)
    write_report(results, RESULTS_DIR, stem=SHIPPED_NAME)
    return shipped


def shipped_results() -> dict | None:
    """The experiment results shipped with the package, or ``None`` when none are shipped.

    Notebook: 05_distillation.ipynb
    """
    file = RESULTS_DIR / f"{SHIPPED_NAME}.json"
    return json.loads(file.read_text()) if file.is_file() else None
