"""The report: the results table and figure, and shipping them with the best students.

Notebook: 05_distillation.ipynb

:func:`write_report` writes ``results.json``, ``results.md`` (:func:`results_markdown`, with
:func:`paired_markdown` and :func:`calibration_markdown`) and ``results.png``
(:func:`plot_results`, :func:`plot_paired`). :func:`ship` exports the best seed of every KD
method as ``tfckd_lite/pretrained/<student>-<method>`` and the report as
``tfckd_lite/pretrained/results/distillation.*`` (:func:`shipped_results`), which notebook 05 and
the README show. A multi-channel experiment (``--mics A``, ``make reproduce-mc``) ships under its
own names, ``lite-student-mc4-<method>`` and ``distillation-mics-A.*`` (:func:`shipped_name`;
notebook 07), beside the single-channel ones and never over them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..files import atomic_write_bytes
from .config import SHIPPED_EXTRAS, ExperimentConfig, Run
from .results import METRICS, paired_verdicts, verdict_interval
from .statistics import SEEDS_NEEDED_LIMIT

#: where --ship writes the report (inside the package), and the file stem of the single-channel
#: experiment's report (a multi-channel one adds its microphones: :func:`shipped_name`)
RESULTS_DIR = Path(__file__).resolve().parents[1] / "pretrained" / "results"
SHIPPED_NAME = "distillation"


def shipped_name(mics: str | None = None) -> str:
    """The file stem of the shipped report of an experiment on microphones ``mics``:
    :data:`SHIPPED_NAME` for the single-channel one (``None``), ``distillation-mics-A`` for
    ``make reproduce-mc``, so that one experiment's report never replaces another's.

    Notebook: 07_multichannel.ipynb
    """
    return SHIPPED_NAME if mics is None else f"{SHIPPED_NAME}-mics-{mics}"


def results_markdown(results: dict) -> str:
    """The results table (Markdown), one row per method plus the noisy input and the teacher.

    Notebook: 05_distillation.ipynb
    """
    cx = results["complexity"]
    tuning = results["tuning_seed"]
    head = ["method", "λ", "seeds"] + [label for _, label, _ in METRICS] + [
        f"PESQ-WB / SI-SDR without seed {tuning} (λ-tuning seed)",
        "gap closed PESQ-WB / SI-SDR", "params (+ extra in training)", "GFLOP/s",
        "train time (min)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    fmt = lambda s, d: f"{s['mean']:.{d}f}"  # noqa: E731
    # a multi-channel input is scored on its reference channel, W of the first microphone
    mics = results.get("config", {}).get("mics")
    noisy = "noisy input" + (f" (W of mic {mics[0]})" if mics else "")
    for name, label, params, gflops in (("noisy", noisy, "", ""),
                                        ("teacher", "teacher", f"{cx['teacher_params']:,}",
                                         f"{cx['teacher_gflops']:.2f}")):
        row = results["rows"][name]
        lines.append(f"| {label} | | | " + " | ".join(fmt(row[k], d) for k, _, d in METRICS)
                     + f" | | | {params} | {gflops} | |")
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
        without = entry["without_tuning_seed"]
        without_text = ("–" if without is None else
                        f"{fmt(without['pesq_wb'], 2)} / {fmt(without['si_sdr'], 2)}")
        lines.append(f"| `{method}` | {lam} | {s['pesq_wb']['n']} | " + " | ".join(cells)
                     + f" | {without_text} | {gap_text} | {params} | "
                     f"{cx['student_gflops']:.2f} | {minutes:.1f} |")
    jobs = results.get("config", {}).get("jobs")
    side_by_side = f", {jobs} runs side by side" if jobs and jobs > 1 else ""
    lines += ["", "Train time: wall-clock minutes per run (epochs × the run's median epoch, "
              f"validation included; mean over seeds){side_by_side} on the machine that ran them, "
              "so it also carries that machine's load; the controlled cost of one step per "
              "method is `bench/bench_distill.py`'s.",
              "", f"Seed {tuning} chose λ on validation PESQ-WB (a λ column that names another "
              "method's was chosen by that method's tuning"
              + ("; each ablation is tuned on a grid centred on the λ of the method it ablates"
                 if any(e.get("ablation_of") for e in results["methods"].values()) else "")
              + "), so its test scores may be a little lucky; the column without "
              f"seed {tuning} gives each method's mean over the other seeds, which played no "
              f"part in any choice (every method drops seed {tuning}, `none` too). "
              + _seed_sets_text(results)]
    if results.get("paired"):
        lines += ["", paired_markdown(results["paired"]), "", seed_level_markdown(results["paired"]),
                  "", power_markdown(results["paired"])]
    clipping = clipping_markdown(results)
    if clipping:
        lines += ["", clipping]
    calibration = calibration_markdown(results)
    if calibration:
        lines += ["", calibration]
    return "\n".join(lines)


def _seed_sets_text(results: dict) -> str:
    """Which seeds the rows average, in words: all the same, or more for some methods."""
    seeds = {m: e.get("seeds") for m, e in results["methods"].items()}
    if not all(seeds.values()) or len({tuple(s) for s in seeds.values()}) == 1:
        return "Every row averages the same seeds."
    counts: dict[tuple, list[str]] = {}
    for method, mine in seeds.items():
        counts.setdefault(tuple(mine), []).append(f"`{method}`")
    parts = [f"seeds {', '.join(map(str, key))} for {', '.join(names)}"
             for key, names in counts.items()]
    return ("The rows average different seeds (" + "; ".join(parts) + "): a method's mean uses "
            "all its seeds, while every comparison between two methods below uses only the "
            "seeds both have.")


def clipping_markdown(results: dict) -> str:
    """How often each method's steps hit the gradient clip (Markdown), or ``""`` when the
    results do not carry the count (written before it existed).

    Notebook: 05_distillation.ipynb
    """
    entries = {m: e.get("clipped_fraction") for m, e in results["methods"].items()}
    if not any(entries.values()):
        return ""
    clip = results.get("config", {}).get("grad_clip")
    lines = [f"How often the gradient clip{f' ({clip:g})' if clip else ''} was hit: the share "
             "of each run's optimizer steps whose gradient norm before clipping exceeded it, "
             "averaged over the method's runs that recorded it (`history.json`, `gradient`; "
             "runs trained before the count existed did not). A clipped step keeps its "
             "direction, so where nearly every step is clipped the term that dominates the "
             "gradient sets the direction alone: for `output` at a large λ, the KD term, with "
             "the SE term's share of the step about 1/λ of it.", "",
             "| method | steps clipped | runs recorded |", "|---|---|---|"]
    for method, entry in entries.items():
        if not entry:
            continue
        share = "not recorded" if entry["mean"] is None else f"{100 * entry['mean']:.1f} %"
        lines.append(f"| `{method}` | {share} | {entry['recorded']} of {entry['runs']} |")
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
    head = [f"`{ref}` − method", "seeds"]
    for key in metrics:
        head += [f"Δ {labels[key]}", f"{share} interval", f"clips where `{ref}` is higher"]
    lines = [f"`{ref}` against each method, clip by clip on the test split (**clip level**): "
             "per clip each method's score is averaged over the seeds both methods have (the "
             "seeds column), and the mean difference "
             f"is shown with its {share} bootstrap interval over clips "
             f"({paired['resamples']:,} resamples). The interval answers *would another draw of "
             "test clips change the difference between these trained students?* It holds the "
             "students fixed, so the spread between training seeds is not in it: an interval "
             "that excludes 0 is a difference these clips support for these students, not yet "
             "one the method would repeat (the seed-level table below).", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method, entry in paired["methods"].items():
        first = entry[metrics[0]]
        # (results written before methods could differ in seeds: every method had the same)
        seeds = first.get("seeds") or (first.get("seed_level") or {}).get("seeds")
        cells = ["every seed of each" if seeds is None else ", ".join(map(str, seeds))]
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


def _seed_entries(paired: dict):
    """(method, metric key, seed-level entry) of every comparison that has one."""
    for method, entry in paired["methods"].items():
        for key, e in entry.items():
            if e.get("seed_level") is not None:
                yield method, key, e["seed_level"]


def _bootstrap_width_text(paired: dict) -> str:
    """Median width of the two-level bootstrap interval over that of the t interval, per number
    of seeds, in words: e.g. "0.38 of the t interval's with 3 seeds"."""
    ratios: dict[int, list[float]] = {}
    for _, _, e in _seed_entries(paired):
        t, boot = e["t_test"], e["bootstrap"]
        if t["high"] > t["low"]:
            ratios.setdefault(len(e["seeds"]), []).append(
                (boot["high"] - boot["low"]) / (t["high"] - t["low"]))
    return ", ".join(f"{np.median(r):.2f} of the t interval's with {n} seeds"
                     for n, r in sorted(ratios.items())) or "not measured (no seed-level comparison)"


def seed_level_markdown(paired: dict) -> str:
    """The seed-by-seed comparison of :func:`paired_comparison` (Markdown): per method and
    metric the difference of each shared seed, the paired t-test across seeds with its t
    interval, the two-level bootstrap, and what the verdicts at each level are.

    Notebook: 05_distillation.ipynb
    """
    ref, share = paired["reference"], f"{100 * paired['confidence']:g} %"
    labels = dict((key, label) for key, label, _ in METRICS)
    digits = dict((key, d) for key, _, d in METRICS)
    head = [f"`{ref}` − method", "metric", "seeds", "Δ per seed", "mean Δ",
            f"{share} t interval", "p", f"{share} two-level bootstrap"]
    lines = [f"`{ref}` against each method, seed by seed (**seed level**): seed *s* of `{ref}` "
             f"against seed *s* of the method (same initialisation and data order; the seeds "
             f"both have), clip by clip. Each seed's mean difference over the clips is one "
             f"observation; the paired t-test across seeds and its {share} t interval answer "
             "*would another training seed — that is, the method rather than these students — "
             "give the same difference?*, the question behind a claim that one method beats "
             f"another. The verdicts (`experiment.paired_verdicts`) read the t interval. The "
             "two-level bootstrap (resample the seeds, then the clips within each) carries both "
             "variances too, but with few seeds it is too narrow: it sees only as many seed "
             "means as there are seeds and none of the heavy tails of the t distribution "
             "(`experiment.statistics`); here its width is " + _bootstrap_width_text(paired)
             + " (median over the comparisons). It is shown for comparison only.",
             "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method, key, e in _seed_entries(paired):
        d, t, boot = digits[key] + 1, e["t_test"], e["bootstrap"]
        lines.append(
            f"| `{method}` | {labels[key]} | {', '.join(map(str, e['seeds']))} | "
            + ", ".join(f"{v:+.{d}f}" for v in e["per_seed"])
            + f" | {t['mean']:+.{d}f} | [{t['low']:+.{d}f}, {t['high']:+.{d}f}] | {t['p']:.3f} | "
            f"[{boot['low']:+.{d}f}, {boot['high']:+.{d}f}] |")
    lines += ["", "What these data can and cannot conclude, per metric (an interval that "
              "excludes 0 decides; the rest are differences that level cannot tell from luck):",
              ""]
    by_level = {level: paired_verdicts(paired, level) for level in ("seed", "clip")}
    for key in by_level["seed"]:
        seed, clip = by_level["seed"][key], by_level["clip"][key]
        lines.append(f"- {labels[key]}: across training seeds (the methods), "
                     + _sides_text(ref, seed, "t interval")
                     + "; between these trained students on other test clips, "
                     + _sides_text(ref, clip, "clip interval") + ".")
    return "\n".join(lines)


def _sides_text(ref: str, sides: dict[str, list[str]], interval: str) -> str:
    """A verdict of :func:`paired_verdicts` for one metric, in words."""
    named = lambda methods: ", ".join(f"`{m}`" for m in methods)  # noqa: E731
    decided = [f"{word} than {named(sides[side])}" for side, word in (("higher", "higher"),
                                                                       ("lower", "lower"))
               if sides[side]]
    if not decided:
        return f"no difference is decided (every {interval} includes 0)"
    text = f"`{ref}` scores " + " and ".join(decided)
    return text + (f", undecided against {named(sides['undecided'])}" if sides["undecided"]
                   else "")


def power_markdown(paired: dict) -> str:
    """The power table (Markdown): per comparison, the spread between seeds against the clip
    noise within one, and the seeds a paired t-test would need to find the observed difference.

    Notebook: 05_distillation.ipynb
    """
    ref = paired["reference"]
    power, alpha = paired["power"], 1.0 - paired["confidence"]
    labels = dict((key, label) for key, label, _ in METRICS)
    digits = dict((key, d) for key, _, d in METRICS)
    head = [f"`{ref}` − method", "metric", "mean Δ", "sd between seeds", "clip SE within a seed",
            f"seeds for {100 * power:g} % power"]
    lines = [f"How many seeds each comparison would need (the power table). *sd between seeds*: "
             "the standard deviation of the per-seed differences above; *clip SE within a "
             "seed*: the standard error of one seed's mean over its test clips, the part that "
             "more test clips could shrink. Where the first is much the larger, more clips "
             "cannot settle a comparison; more seeds can. The last column: the seeds with which "
             f"a two-sided paired t-test at the {100 * alpha:g} % level finds the observed mean "
             f"difference {100 * power:g} % of the time (noncentral t; "
             "`experiment.statistics.seeds_needed`). It takes the observed difference as the "
             "true one and its spread from a few seeds, so small lucky differences look easier "
             "than they are: read it as an order of magnitude. "
             f"\"> {SEEDS_NEEDED_LIMIT}\": too small a difference for its spread.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method, key, e in _seed_entries(paired):
        d, v, n = digits[key] + 1, e["variance"], e["seeds_needed"]
        lines.append(f"| `{method}` | {labels[key]} | {e['t_test']['mean']:+.{d}f} | "
                     f"{v['between_seeds']:.{d}f} | {v['within_seed']:.{d}f} | "
                     f"{f'> {SEEDS_NEEDED_LIMIT}' if n is None else n} |")
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
    """The comparison of :func:`paired_comparison`: one panel per metric, the mean difference
    ``reference − method`` per method with its intervals at both levels, and a line at 0.

    Notebook: 05_distillation.ipynb

    Per method, the upper bar is the clip-level bootstrap interval (these students, another
    draw of test clips), the lower, thinner one the seed-level t interval (another training
    seed; absent without 2 shared seeds). Green: the interval lies above 0 (the reference
    scores higher); red: below 0; grey: it includes 0. ``axes``: one axis per metric, or
    ``None`` for a new figure. Returns ``(fig, axes)``.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    methods = list(paired["methods"])
    metrics = list(paired["methods"][methods[0]])
    if axes is None:
        fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics),
                                                           0.45 * len(methods) + 1.6),
                                 layout="constrained", squeeze=False)
        axes = axes[0]
    fig = axes[0].figure
    labels = dict((key, label) for key, label, _ in METRICS)
    y = np.arange(len(methods))[::-1]
    colour = lambda low, high: "C2" if low > 0 else ("C3" if high < 0 else "0.5")  # noqa: E731
    for ax, key in zip(axes, metrics):
        for yi, method in zip(y, methods):
            entry = paired["methods"][method][key]
            for level, offset, marker, width in (("clip", 0.15, "o", 1.5), ("seed", -0.15, "s", 0.8)):
                interval = verdict_interval(entry, level)
                if interval is None:
                    continue
                mean = entry["mean"] if level == "clip" else entry["seed_level"]["t_test"]["mean"]
                low, high = interval
                ax.errorbar(mean, yi + offset, xerr=[[mean - low], [high - mean]], fmt=marker,
                            color=colour(low, high), capsize=3, elinewidth=width, markersize=4)
        ax.axvline(0.0, color="k", lw=1)
        ax.set_yticks(y, methods, fontsize=8)
        ax.set_xlabel(f"Δ {labels[key]}, {paired['reference']} − method")
    share = f"{100 * paired['confidence']:g} %"
    axes[0].set_title(f"{paired['reference']} against each method ({share} intervals)",
                      fontsize=9, loc="left")
    axes[-1].legend([Line2D([], [], color="0.3", marker="o", lw=1.5),
                     Line2D([], [], color="0.3", marker="s", lw=0.8)],
                    ["clip level: these students, other test clips",
                     "seed level (t): another training seed"], fontsize=7,
                    loc="lower right", bbox_to_anchor=(1.0, 1.0))     # above: no row hidden
    return fig, axes


def tuning_curves(results: dict) -> dict[str, dict[float, float]]:
    """``{method: {λ: validation PESQ-WB on the tuning seed}}`` for every method that tuned its
    own λ (the methods without λ, and ablations that reuse another method's λ, are left out).

    Notebooks: 07_multichannel.ipynb, 08_judging_methods.ipynb
    """
    return {method: {float(lam): score for lam, score in entry["tuning_valid_pesq_wb"].items()}
            for method, entry in results["methods"].items() if entry["tuning_valid_pesq_wb"]}


def plot_tuning(results: dict, baseline: str | None = None, ax=None):
    """:func:`tuning_curves` over a log λ axis, a star at the λ each method chose.

    Notebooks: 07_multichannel.ipynb, 08_judging_methods.ipynb

    ``baseline``: a method without λ (``"none"``) drawn as a grey band from its lowest to its
    highest validation score over its seeds, and a dashed line at its score on the tuning seed.
    Why: the λ curves are one seed each; the band is how far the seed alone moves the score,
    the yardstick for how much the λ choice matters. ``ax``: an axis, or ``None`` for a new
    figure. Returns ``(fig, ax)``.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.4), layout="constrained")
    seed = results["tuning_seed"]
    for i, (method, curve) in enumerate(tuning_curves(results).items()):
        lams = sorted(curve)
        ax.plot(lams, [curve[lam] for lam in lams], "o-", color=f"C{i}", label=method)
        chosen = results["methods"][method]["kd_weight"]
        ax.plot(chosen, curve[chosen], "*", ms=14, color=f"C{i}", markeredgecolor="black")
    if baseline is not None:
        scores = {run["seed"]: run["valid_pesq_wb"] for run in results["runs"]
                  if run["method"] == baseline}
        if not scores:
            raise KeyError(f"no runs of {baseline!r} in these results; methods: "
                           f"{', '.join(results['methods'])}")
        seeds = ", ".join(str(s) for s in sorted(scores))
        ax.axhspan(min(scores.values()), max(scores.values()), color="0.88", zorder=0,
                   label=f"{baseline}, seeds {seeds}")
        if seed in scores:
            ax.axhline(scores[seed], color="0.4", ls="--", lw=1, label=f"{baseline}, seed {seed}")
    ax.set(xscale="log", xlabel="λ", ylabel="validation PESQ-WB",
           title=f"λ tuning on seed {seed} (star: chosen)")
    ax.legend(fontsize=8, ncol=3)
    return ax.figure, ax


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

    ``<student>-<method>`` (best seed by validation PESQ-WB; with its distiller extras for
    the methods of :data:`SHIPPED_EXTRAS`) for every method but ``none``,
    ``pretrained/results/<name>.{json,md,png}``, and the final runs' per-clip scores,
    ``<name>.clips.json`` (:func:`~.clips.write_clip_scores`), where ``<name>`` is
    :func:`shipped_name` of the experiment's microphones. The students are named after the
    experiment's student preset (``lite-student-mc4-tfckd`` on mic A), so a multi-channel
    experiment replaces neither the single-channel students nor their report.
    """
    from .. import pretrained
    from .clips import write_clip_scores

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
    write_report(results, RESULTS_DIR, stem=shipped_name(cfg.mics))
    write_clip_scores(results)
    return shipped


def shipped_results(mics: str | None = None) -> dict | None:
    """The results of the experiment on microphones ``mics`` (``None``: the single-channel one)
    shipped with the package, or ``None`` when none are shipped.

    Notebook: 05_distillation.ipynb (07_multichannel.ipynb: ``mics="A"``)
    """
    file = RESULTS_DIR / f"{shipped_name(mics)}.json"
    return json.loads(file.read_text()) if file.is_file() else None
