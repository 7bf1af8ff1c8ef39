"""The notebook sequence: one entry per notebook, shown by 00_overview and checked against README.

Notebook: 00_overview.ipynb

Run times are the times pytest reports for each notebook run alone under nbval
(``pytest notebooks/NAME.ipynb --nbval-lax --nbval-current-env``) on the idle 2-core CPU machine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class NotebookEntry:
    file: str
    topic: str
    learn: str
    cpu_time: str        # measured, see module docstring


NOTEBOOKS: list[NotebookEntry] = [
    NotebookEntry("00_overview.ipynb", "Overview",
                  "what the collection teaches, the sequence, how to run it", "1 s"),
    NotebookEntry("01_signals_and_data.ipynb", "Signals and data",
                  "the reduced offline dataset and how much recorded speech it draws on, SNR by "
                  "hand, PESQ/STOI/ESTOI/SI-SDR of the noisy input", "4 s"),
    NotebookEntry("02_dpdcrn.ipynb", "DPDCRN",
                  "the network block by block, taps, receptive field and causality, long "
                  "recordings in chunks, parameters and FLOPs of teacher and student", "4 s"),
    NotebookEntry("03_training.ipynb", "Training",
                  "the SE loss, the training engine, exact resume from atomic checkpoints, "
                  "on-the-fly remixing, the shipped lite teacher and student baseline and where "
                  "they gain (per noise type and SNR), devices, mixed precision, worker "
                  "processes and torchrun data parallelism", "13 s"),
    NotebookEntry("04_calibration_weights.ipynb", "Calibration weights",
                  "time and \"frequency\" relations of real features, the calibration block step "
                  "by step and the ceiling its cosine logits put on the weights, weights per "
                  "set and per frame during a short live distillation, and those of the "
                  "distiller the full experiment trained, epoch by epoch, with a check of whether "
                  "each student layer weighs most the teacher layer it is already closest to",
                  "24 s"),
    NotebookEntry("05_distillation.ipynb", "Distillation end to end",
                  "residual fusion step by step, the inter-set stage and the total KD loss, every "
                  "method behind one interface, a short live distillation, the reproduce "
                  "experiment, its results table, the clip-by-clip comparison and what the seeds "
                  "allow one to conclude", "33 s"),
    NotebookEntry("06_compare_spectrograms.ipynb", "Comparing enhancers",
                  "noisy, clean, teacher, student and distilled students side by side on one "
                  "colour scale, difference to clean, per-clip metrics and audio, per-frame "
                  "calibration weights of a whole utterance, an interactive widget built on pure "
                  "functions", "10 s"),
    NotebookEntry("07_multichannel.ipynb", "Multi-channel: Ambisonics, rooms, L3DAS23",
                  "what a first-order Ambisonics microphone records, room impulse responses, "
                  "inter-channel level and phase differences with and without reverberation, the "
                  "dry target and what reverberation costs, the 8-plane input and the mask on the "
                  "reference channel, the 4-channel teacher against a W-only one on the same scenes, "
                  "distillation on multi-channel networks and the measured experiment read at "
                  "the seed level (λ against the seed, a checkpoint chosen by one metric), the "
                  "L3DAS23 metric from transcripts, how the simulation differs from L3DAS23",
                  "6 s"),
    NotebookEntry("08_judging_methods.ipynb", "Judging methods fairly",
                  "on the shipped experiment's runs: the variance of a difference from seeds and "
                  "from clips, what a clip-level bootstrap answers and what it does not, paired "
                  "tests across seeds, the seeds a difference needs (power), choosing λ on "
                  "validation and the winner's curse, a MUSHRA-style listening test beside PESQ-WB",
                  "4 s"),
]

# Topics that later notebooks will cover (listed by the overview, without links).
PLANNED: list[str] = []


def notebook_dir() -> Path:
    """The ``notebooks/`` folder of a source checkout."""
    return Path(__file__).resolve().parents[1] / "notebooks"


def notebook_table_markdown(link_prefix: str = "") -> str:
    """The sequence as a Markdown table (the README's table is this text).

    Notebook: 00_overview.ipynb
    """
    lines = ["| notebook | topic | what you learn | CPU run time |", "|---|---|---|---|"]
    for nb in NOTEBOOKS:
        lines.append(f"| [{nb.file}]({link_prefix}{nb.file}) | {nb.topic} | {nb.learn} | "
                     f"{nb.cpu_time} |")
    return "\n".join(lines)


@dataclass(frozen=True)
class AssignmentEntry:
    name: str            # folder and notebook name under notebooks/assignments/source/
    title: str
    task: str            # what a student implements or does
    student_time: str    # expected time for a student: an estimate, not a measurement


# The graded nbgrader assignments (notebooks/assignments/, instructor guide in its README.md).
ASSIGNMENTS: list[AssignmentEntry] = [
    AssignmentEntry("a1_time_relation", "Time and \"frequency\" relations",
                    "implement frame vectors, the time relation P and the \"frequency\" relation "
                    "Q; explain what Q really compares", "about 45 min"),
    AssignmentEntry("a2_calibrated_set_loss", "Calibrated Jeffreys set loss",
                    "implement the Jeffreys divergence, the calibrated pair divergences L_ij and "
                    "the set loss; explain the two normalisers", "about 60 min"),
    AssignmentEntry("a3_fusion_step", "One residual fusion step",
                    "implement the projection φ by hand, one gated fusion step and a whole fusion "
                    "chain; explain why the decoder is fused backwards", "about 60 min"),
    AssignmentEntry("a4_ablation", "Ablation: learned vs uniform calibration",
                    "run tfckd and tfckd-uniform for a few steps, implement the measures of a run, "
                    "interpret them in writing", "about 45 min"),
    AssignmentEntry("a5_seed_statistics", "Statistics across training seeds",
                    "implement per-seed paired differences, the paired t interval across seeds, a "
                    "two-level bootstrap and the seeds a difference needs; explain what a "
                    "clip-level interval does not answer", "about 60 min"),
]


def assignment_notebook(name: str) -> Path:
    """The instructor (source) notebook of an assignment in a source checkout.

    Notebook: assignments/README.md (the instructor guide)
    """
    return notebook_dir() / "assignments" / "source" / name / f"{name}.ipynb"


def assignment_points(path: str | Path) -> tuple[float, float]:
    """``(autograded, manually graded)`` points of an nbgrader notebook, from its cell metadata.

    Notebook: assignments/README.md (the instructor guide)

    Autograded points are those of graded code cells (autograder tests), manual points those of
    graded Markdown cells (written answers). A graded cell without points is an error.
    """
    cells = json.loads(Path(path).read_text(encoding="utf-8"))["cells"]
    auto = manual = 0.0
    for cell in cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if not meta.get("grade"):
            continue
        if "points" not in meta:
            raise ValueError(f"{path}: graded cell {meta.get('grade_id')!r} has no points")
        if cell["cell_type"] == "code":
            auto += meta["points"]
        else:
            manual += meta["points"]
    return auto, manual


def _points(value: float) -> str:
    return f"{value:g}"


def assignment_table_markdown(link_prefix: str = "source/") -> str:
    """The assignments as a Markdown table, points read from the notebooks (the guide shows it).

    Notebook: assignments/README.md (the instructor guide)
    """
    lines = ["| assignment | what students do | expected student time | points |",
             "|---|---|---|---|"]
    for entry in ASSIGNMENTS:
        auto, manual = assignment_points(assignment_notebook(entry.name))
        lines.append(f"| [{entry.name}]({link_prefix}{entry.name}/{entry.name}.ipynb): "
                     f"{entry.title} | {entry.task} | {entry.student_time} | "
                     f"{_points(auto + manual)} ({_points(auto)} autograded + "
                     f"{_points(manual)} written) |")
    return "\n".join(lines)
