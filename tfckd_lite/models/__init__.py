"""DPDCRN models, presets and complexity helpers.

Notebook: 02_dpdcrn.ipynb

Presets (``PRESETS``; build with ``build_model(name, **overrides)``):

=================  ======  ==  =============================================================
preset             C       N   purpose
=================  ======  ==  =============================================================
``paper-teacher``  128     4   the paper's teacher: 3,218,118 parameters (a GPU model)
``paper-student``  64      1   the paper's student: 595,494 parameters (18.5 % of the teacher)
``lite-teacher``   see below   CPU-sized teacher used by the notebooks
``lite-student``   see below   CPU-sized student used by the notebooks
=================  ======  ==  =============================================================

The lite sizes were chosen by measurement on the 2-core CPU machine (``bench/bench_models.py``
prints the figures; they are quoted in the README): a training step of the lite teacher on
8 x 1 s should take about a second, the lite student should be several times cheaper, and the
student should have at most about a fifth of the teacher's parameters, as in the paper.
"""

from __future__ import annotations

import dataclasses

from .complexity import count_flops, count_parameters, parameter_table
from .dpdcrn import (DPDCRN, DilatedDenseBlock, DPDCRNConfig, DualPathBottleneck,
                     TransformerBlock, apply_polar_mask)

PRESETS: dict[str, DPDCRNConfig] = {
    "paper-teacher": DPDCRNConfig(channels=128, dual_path_layers=4),
    "paper-student": DPDCRNConfig(channels=64, dual_path_layers=1),
    "lite-teacher": DPDCRNConfig(channels=32, dual_path_layers=2),
    "lite-student": DPDCRNConfig(channels=16, dual_path_layers=1),
}


def build_model(preset: str, **overrides) -> DPDCRN:
    """Build a DPDCRN from a named preset, optionally overriding fields of its config.

    Notebook: 02_dpdcrn.ipynb

    >>> build_model("lite-student", in_channels=4)   # a 4-microphone lite student
    """
    if preset not in PRESETS:
        raise KeyError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    fields = {f.name for f in dataclasses.fields(DPDCRNConfig)}
    unknown = set(overrides) - fields
    if unknown:
        raise TypeError(f"unknown DPDCRN option(s) {sorted(unknown)}; valid: {sorted(fields)}")
    return DPDCRN(dataclasses.replace(PRESETS[preset], **overrides))


__all__ = ["DPDCRN", "DPDCRNConfig", "PRESETS", "build_model", "count_flops",
           "count_parameters", "parameter_table", "DilatedDenseBlock", "DualPathBottleneck",
           "TransformerBlock", "apply_polar_mask"]
