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

Multi-channel presets (``MULTICHANNEL_PRESETS``, for L3DAS23 and the simulated ``mc-small``):
``lite-teacher-mc4``, ``lite-student-mc4`` (one Ambisonics microphone, 8 input planes) and
``-mc8`` (two microphones, 16 planes) are the lite models with ``in_channels`` 4 or 8: only
the first encoder convolution widens (``2M -> C``), by ``(2M - 2) * 3 * C`` weights, and the
mask still applies to the reference channel (W of mic A). Measured with
``bench/bench_models.py --presets lite-teacher lite-teacher-mc4 ...`` on the shared 2-core
machine (load average 4-7, so only ratios within one run mean something): parameters
+0.3 % (teacher-mc4) to +1.8 % (student-mc8), GFLOP per second of audio +0 to +3 %; training
step (8 x 1 s) against the single-channel preset: teacher mc4 0.96, mc8 0.98; student mc4
1.00-1.26, mc8 1.22-1.48 (two runs). The student's extra time with 8 channels is not in the
FLOPs (the wider E1 adds about 1 %) and was not investigated further. The lite sizes therefore
carry over unchanged: the multi-channel teacher costs what the single-channel one does, and
the multi-channel student stays several times cheaper than its teacher.
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
MULTICHANNEL_PRESETS: dict[str, DPDCRNConfig] = {
    f"{name}-mc{mics}": dataclasses.replace(PRESETS[name], in_channels=mics)
    for name in ("lite-teacher", "lite-student") for mics in (4, 8)
}


def build_model(preset: str, **overrides) -> DPDCRN:
    """Build a DPDCRN from a named preset, optionally overriding fields of its config.

    Notebook: 02_dpdcrn.ipynb

    >>> build_model("lite-student", in_channels=4)   # a 4-microphone lite student
    >>> build_model("lite-student-mc4")               # the same, by its preset name

    A multi-channel preset fixes its microphones: overriding ``in_channels`` with another
    count (e.g. training ``lite-teacher-mc4`` on single-channel data) raises ``ValueError``.
    """
    config = PRESETS.get(preset, MULTICHANNEL_PRESETS.get(preset))
    if config is None:
        raise KeyError(f"unknown preset {preset!r}; choose one of "
                       f"{sorted(PRESETS) + sorted(MULTICHANNEL_PRESETS)}")
    fields = {f.name for f in dataclasses.fields(DPDCRNConfig)}
    unknown = set(overrides) - fields
    if unknown:
        raise TypeError(f"unknown DPDCRN option(s) {sorted(unknown)}; valid: {sorted(fields)}")
    wanted = overrides.get("in_channels", config.in_channels)
    if preset in MULTICHANNEL_PRESETS and wanted != config.in_channels:
        raise ValueError(f"{preset} takes {config.in_channels} microphone channels, not {wanted}: "
                         f"use a corpus with that many (L3DAS23 mics "
                         f"{'A' if config.in_channels == 4 else 'AB'}) or another preset")
    return DPDCRN(dataclasses.replace(config, **overrides))


__all__ = ["DPDCRN", "DPDCRNConfig", "PRESETS", "MULTICHANNEL_PRESETS", "build_model", "count_flops",
           "count_parameters", "parameter_table", "DilatedDenseBlock", "DualPathBottleneck",
           "TransformerBlock", "apply_polar_mask"]
