"""The notebook sequence: one entry per notebook, shown by 00_overview and checked against README.

Notebook: 00_overview.ipynb

Run times are the times pytest reports for each notebook run alone under nbval
(``pytest notebooks/NAME.ipynb --nbval-lax --nbval-current-env``) on the idle 2-core CPU machine.
"""

from __future__ import annotations

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
                  "what the collection teaches, the sequence, how to run it", "2 s"),
    NotebookEntry("01_signals_and_data.ipynb", "Signals and data",
                  "the reduced offline dataset, SNR by hand, PESQ/STOI/ESTOI/SI-SDR of the noisy "
                  "input", "6 s (15 s when it first builds the mini set)"),
    NotebookEntry("02_dpdcrn.ipynb", "DPDCRN",
                  "the network block by block, taps, receptive field and causality, parameters "
                  "and FLOPs of teacher and student", "6 s"),
    NotebookEntry("03_training.ipynb", "Training",
                  "the SE loss, the training engine, exact resume from atomic checkpoints, the "
                  "shipped lite teacher and student baseline", "20 s"),
    NotebookEntry("04_calibration_weights.ipynb", "Calibration weights",
                  "time and \"frequency\" relations of real features, the calibration block step "
                  "by step, weights per set and per frame during a short live distillation",
                  "47 s"),
]

# Topics that later notebooks will cover (listed by the overview, without links).
PLANNED = [
    "05 · intra- and inter-set distillation end to end",
    "06 · interactive spectrogram comparison",
    "assignments/ · graded course assignments (nbgrader)",
]


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
