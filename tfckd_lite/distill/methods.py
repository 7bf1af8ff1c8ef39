"""Comparison methods behind one registry, selectable by name (CLI and notebooks).

Notebook: 05_distillation.ipynb

================================  ==============================================================
name                              what the student learns from the teacher
================================  ==============================================================
``none``                          nothing: the student alone on the SE loss (no teacher is run)
``output``                        the teacher's enhanced spectrum (the SE loss form, teacher as
                                  target)
``output-balanced``               the same term, λ tuned only where its gradient is at most the
                                  SE loss's (``Method.kd_gradient_cap``; ``experiment.plan``)
``fitnets``                       its taps, one-to-one, through 1x1 conv adaptors (relative MSE)
``frame-similarity``              its time relations, one-to-one, Jeffreys divergence, uniform
                                  weights (the group's earlier CLSKD / RFPKD line of work)
``tfckd-intra``                   I2S-TFCKD without fusion / inter-set stage
``tfckd``                         full I2S-TFCKD (calibrated intra-set + fused inter-set)
``tfckd-time-only``               ablation: time stream only (intra and inter)
``tfckd-freq-only``               ablation: "frequency" (across-batch) stream only
``tfckd-uniform``                 ablation: every calibration weight replaced by 1/n_t; the
                                  teacher's fusion chains then get no gradient and stay at their
                                  random initialisation (two changes at once)
``tfckd-uniform-trained-fusion``  ablation: every calibration weight 1/n_t, the teacher's fusion
                                  chains still trained by the full method's rule (the weights
                                  alone change; ``TFCKDDistiller``'s ``train_teacher_fusion``)
``tfckd-released``                ablation: the released demo's L2 normalisation (over frames)
                                  in the calibration blocks instead of the SemCKD one (per vector)
================================  ==============================================================

``tfckd-released`` is the one ablation that swaps rather than removes a component. It is there
because the default SemCKD normalisation caps the calibration (cosine logits: no weight more
than e² times another, ``calibration.weight_ceiling``), and in the experiment the
``tfckd-intra`` runs at λ ≥ 0.1 sat at that cap within one epoch, frame-independent; the released
normalisation has no per-frame cap and keeps weights that vary from frame to frame. Whether that
matters for the student is what the ablation measures.

``build_distiller(method, teacher, student, batch_size, frames, se_loss=..., kd_weight=None,
**options)`` builds one. ``kd_weight=None`` takes the method's default λ (``METHODS[m].kd_weight``,
also in ``DEFAULT_KD_WEIGHTS``): 1.0 for every method, the released demo's value for TFCKD. The
terms differ in scale, so λ is a per-method hyper-parameter to tune on validation data;
``distiller.kd_weight`` can also be changed after building. ``batch_size`` and ``frames`` matter
only for learned calibration (the other methods accept any batch).

One-to-one pairing rule (``pair_layers``), used by ``fitnets`` and ``frame-similarity`` when a
set has a different number of layers on each side: student layer i (0-based, of n_s) is paired
with teacher layer ``ceil((i + 1) · n_t / n_s) - 1``: evenly spaced, last with last. For the
dual-path set of the paper models (1 vs 4) the student's M1 is paired with the teacher's M4, the
tap that feeds the teacher's decoder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping

import torch
from torch import nn

from .distiller import Distiller, SELoss, TFCKDDistiller, tap_channels
from .fusion import SET_NAMES
from .losses import paired_divergence
from .relations import COSINE_EPS, layer_relations


def pair_layers(n_student: int, n_teacher: int) -> list[int]:
    """Teacher layer paired with each student layer: ``ceil((i+1)·n_t/n_s) - 1`` (last ↔ last).

    Notebook: 05_distillation.ipynb

    >>> pair_layers(1, 4), pair_layers(3, 3), pair_layers(2, 4)
    ([3], [0, 1, 2], [1, 3])
    """
    if n_student < 1 or n_teacher < 1:
        raise ValueError(f"need at least one layer on each side, got {n_student}, {n_teacher}")
    return [math.ceil((i + 1) * n_teacher / n_student) - 1 for i in range(n_student)]


class StudentOnly(Distiller):
    """``none``: the student trained on the SE loss alone; returns ``{"se", "total"}``.

    Notebook: 05_distillation.ipynb
    """

    name = "none"
    uses_teacher = False
    needs_features = False

    def __init__(self, student: nn.Module, se_loss: SELoss, teacher: nn.Module | None = None):
        super().__init__(student, None, se_loss, kd_weight=0.0)

    def kd_losses(self, *args) -> dict[str, torch.Tensor]:
        return {}


class OutputDistiller(Distiller):
    """``output``: match the teacher's enhanced spectrum; one term ``kd_output``.

    Notebook: 05_distillation.ipynb

    ``output_loss(student_enhanced, teacher_enhanced)`` defaults to ``se_loss`` with the teacher's
    enhanced spectrum in place of the clean one (the SE loss form), so λ = 1 weighs "sound like
    the clean speech" and "sound like the teacher" equally; pass another callable to change it.
    """

    name = "output"
    needs_features = False

    def __init__(self, student, teacher, se_loss: SELoss, kd_weight: float = 1.0,
                 output_loss: SELoss | None = None):
        super().__init__(student, teacher, se_loss, kd_weight)
        if output_loss is not None and not callable(output_loss):
            raise TypeError("output_loss must be a callable (student_spec, teacher_spec) -> scalar")
        self.output_loss = output_loss

    def kd_losses(self, noisy, clean, student_out, student_taps, teacher_out, teacher_taps):
        loss_fn = self.output_loss if self.output_loss is not None else self.se_loss
        return {"output": loss_fn(student_out, teacher_out.detach())}


class FitNetsDistiller(Distiller):
    """``fitnets``: one-to-one feature regression through 1x1 conv adaptors; ``kd_<set>``.

    Notebook: 05_distillation.ipynb

    For every student tap i of a set, a ``Conv2d(C_s -> C_t, 1x1)`` adaptor maps it to the
    width of its paired teacher tap (``pair_layers``; D3, the 2-channel mask, gets a 2 -> 2
    adaptor). Normalisation choice: each pair's loss is the *relative* squared error
    ``mean((A(s) - t)^2) / (mean(t^2) + eps)``, so every tap counts equally whatever its energy
    (raw MSE would be dominated by the loudest layer) and λ does not depend on the teacher's
    feature scale. A set's loss is the mean over its student taps.
    """

    name = "fitnets"

    def __init__(self, student, teacher, se_loss: SELoss, kd_weight: float = 1.0,
                 eps: float = 1e-8):
        super().__init__(student, teacher, se_loss, kd_weight)
        s_channels, t_channels = tap_channels(student), tap_channels(teacher)
        self.pairs = {s: pair_layers(len(s_channels[s]), len(t_channels[s])) for s in SET_NAMES}
        self.eps = eps
        self.adaptors = nn.ModuleDict({
            s: nn.ModuleList(nn.Conv2d(s_channels[s][i], t_channels[s][j], kernel_size=1)
                             for i, j in enumerate(self.pairs[s]))
            for s in SET_NAMES})

    def kd_losses(self, noisy, clean, student_out, student_taps, teacher_out, teacher_taps):
        losses = {}
        for s in SET_NAMES:
            terms = []
            for i, j in enumerate(self.pairs[s]):
                target = teacher_taps[s][j].detach()
                pred = self.adaptors[s][i](student_taps[s][i])
                terms.append((pred - target).square().mean() / (target.square().mean() + self.eps))
            losses[s] = torch.stack(terms).mean()
        return losses


class FrameSimilarityDistiller(Distiller):
    """``frame-similarity``: one-to-one Jeffreys divergence of time relations; ``kd_<set>``.

    Notebook: 05_distillation.ipynb

    The group's earlier line (CLSKD / RFPKD): the student's frame-by-frame self-similarity
    ``P [B, T, T]`` of each tap imitates that of its paired teacher tap (``pair_layers``),
    every frame weighted equally, no calibration, no fusion, no across-batch stream.
    Same divergence and normaliser as TFCKD's time term; a set's loss is the mean over its
    pairs. Needs no fixed batch size.
    """

    name = "frame-similarity"

    def __init__(self, student, teacher, se_loss: SELoss, kd_weight: float = 1.0,
                 eps: float = COSINE_EPS):
        super().__init__(student, teacher, se_loss, kd_weight)
        s_channels, t_channels = tap_channels(student), tap_channels(teacher)
        self.pairs = {s: pair_layers(len(s_channels[s]), len(t_channels[s])) for s in SET_NAMES}
        self.eps = eps

    def kd_losses(self, noisy, clean, student_out, student_taps, teacher_out, teacher_taps):
        s_flat = [tap for s in SET_NAMES for tap in student_taps[s]]
        t_flat = [teacher_taps[s][j] for s in SET_NAMES for j in self.pairs[s]]
        s_rel = layer_relations(s_flat, self.eps, time=True, freq=False)
        t_rel = layer_relations(t_flat, self.eps, time=True, freq=False)
        losses, start = {}, 0
        for s in SET_NAMES:
            n = len(self.pairs[s])
            student = torch.stack([r.time for r in s_rel[start:start + n]])
            teacher = torch.stack([r.time for r in t_rel[start:start + n]])
            losses[s] = paired_divergence(student, teacher, "time")
            start += n
        return losses


@dataclass(frozen=True)
class Method:
    """A registered method: how to build it, its default λ and its fixed options.

    Notebook: 05_distillation.ipynb
    """

    name: str
    summary: str
    factory: Callable[..., Distiller]
    kd_weight: float = 1.0
    fixed: Mapping[str, object] = field(default_factory=dict)
    #: options a caller may set through build_distiller(**options)
    options: tuple[str, ...] = ()
    calibrated: bool = False
    #: the method this variant ablates: the experiment centres its λ grid on that method's
    #: chosen λ and estimates its time from that method's epochs (experiment.plan)
    ablation_of: str | None = None
    #: the experiment tunes λ only up to where the KD term's gradient norm is at most this
    #: multiple of the SE term's, measured at the student's initialisation (experiment.plan)
    kd_gradient_cap: float | None = None


_TFCKD_OPTIONS = ("released_normalisation", "fusion_mid_channels", "fusion_checkpoint", "eps")

METHODS: dict[str, Method] = {m.name: m for m in (
    Method("none", "student alone on the SE loss", StudentOnly, kd_weight=0.0),
    Method("output", "match the teacher's enhanced spectrum", OutputDistiller,
           options=("output_loss",)),
    Method("output-balanced", "match the teacher's enhanced spectrum, λ tuned only where the "
           "KD gradient is at most the SE one (at initialisation)", OutputDistiller,
           options=("output_loss",), kd_gradient_cap=1.0),
    Method("fitnets", "one-to-one tap regression through 1x1 adaptors", FitNetsDistiller,
           options=("eps",)),
    Method("frame-similarity", "one-to-one Jeffreys divergence of time relations, uniform "
           "weights (CLSKD/RFPKD line)", FrameSimilarityDistiller, options=("eps",)),
    Method("tfckd-intra", "I2S-TFCKD calibrated intra-set loss only", TFCKDDistiller,
           fixed={"inter": False}, options=_TFCKD_OPTIONS, calibrated=True),
    Method("tfckd", "full I2S-TFCKD: calibrated intra-set + fused inter-set", TFCKDDistiller,
           options=_TFCKD_OPTIONS, calibrated=True),
    Method("tfckd-time-only", "I2S-TFCKD with the time stream only", TFCKDDistiller,
           fixed={"streams": ("time",)}, options=_TFCKD_OPTIONS, calibrated=True,
           ablation_of="tfckd"),
    Method("tfckd-freq-only", "I2S-TFCKD with the across-batch ('frequency') stream only",
           TFCKDDistiller, fixed={"streams": ("freq",)}, options=_TFCKD_OPTIONS,
           calibrated=True, ablation_of="tfckd"),
    Method("tfckd-uniform", "I2S-TFCKD with every calibration weight set to 1/n_t; the "
           "teacher's fusion chains, which learn only through the calibration, stay frozen at "
           "their random initialisation", TFCKDDistiller, fixed={"calibration": "uniform"},
           options=("fusion_mid_channels", "fusion_checkpoint", "eps"), calibrated=True,
           ablation_of="tfckd"),
    Method("tfckd-uniform-trained-fusion", "I2S-TFCKD with every calibration weight set to "
           "1/n_t; the teacher's fusion chains still learn by the full method's rule (the "
           "weights alone change)", TFCKDDistiller,
           fixed={"calibration": "uniform", "train_teacher_fusion": True},
           options=("fusion_mid_channels", "fusion_checkpoint", "eps"), calibrated=True,
           ablation_of="tfckd"),
    Method("tfckd-released", "I2S-TFCKD with the released demo's calibration normalisation "
           "(over frames)", TFCKDDistiller, fixed={"released_normalisation": True},
           options=("fusion_mid_channels", "fusion_checkpoint", "eps"), calibrated=True,
           ablation_of="tfckd"),
)}

#: Default KD weight λ per method (tune on validation; ``none`` has no KD term).
DEFAULT_KD_WEIGHTS: dict[str, float] = {name: m.kd_weight for name, m in METHODS.items()}


def build_distiller(method: str, teacher: nn.Module | None, student: nn.Module,
                    batch_size: int, frames: int, *, se_loss: SELoss,
                    kd_weight: float | None = None, **options) -> Distiller:
    """Build the distiller of a registered method.

    Notebook: 05_distillation.ipynb

    ``method``: a key of ``METHODS``; ``teacher`` may be ``None`` only for ``none``;
    ``batch_size`` / ``frames``: the fixed training batch (used by the calibrated TFCKD variants,
    whose calibration blocks are built for it; ignored by the others); ``se_loss(enhanced,
    clean) -> scalar``: the base SE loss; ``kd_weight``: λ (``None`` = the method's default);
    ``options``: the method's own options (``METHODS[method].options``), e.g.
    ``released_normalisation=True`` or ``fusion_mid_channels=64`` for the TFCKD variants.
    Returns a ``Distiller`` whose ``name`` is ``method`` and whose ``build_options`` are
    ``options``; it is a task for :func:`tfckd_lite.train.fit` (``distiller.model`` is the
    student), which is how ``python -m tfckd_lite train --method ...`` trains every method.
    """
    if method not in METHODS:
        raise KeyError(f"unknown distillation method {method!r}; choose one of {list(METHODS)}")
    spec = METHODS[method]
    unknown = set(options) - set(spec.options)
    if unknown:
        fixed = unknown & set(spec.fixed)
        hint = (f" ({sorted(fixed)} fixed by the method itself)" if fixed else "")
        raise TypeError(f"method {method!r} does not take option(s) {sorted(unknown)}{hint}; "
                        f"valid: {list(spec.options) or 'none'}")
    if method == "none":
        if kd_weight not in (None, 0, 0.0):
            raise ValueError("method 'none' has no KD term; kd_weight must be left unset")
        distiller = StudentOnly(student, se_loss)
    else:
        weight = spec.kd_weight if kd_weight is None else kd_weight
        kwargs = dict(spec.fixed, **options)
        if spec.calibrated:
            kwargs.update(batch_size=batch_size, frames=frames)
        distiller = spec.factory(student, teacher, se_loss, kd_weight=weight, **kwargs)
    distiller.name = method
    distiller.build_options = dict(options)
    return distiller
