"""How hard a KD term pulls against the SE loss: the gradient ratio that caps a method's λ.

Notebook: 05_distillation.ipynb

The ``output`` runs of the committed experiment chose λ = 10⁴ on validation, where their
gradient norm was 10³–10⁴ against the clip of 5: every step was clipped, and the SE term's
share of the step's direction was about 10⁻⁴, i.e. the student imitated the teacher alone. Its
KD term is already the SE loss's form with the teacher's output as target
(:class:`~tfckd_lite.distill.methods.OutputDistiller`), so the two terms are on the same scale
and a λ ≫ 1 simply drowns the SE term. ``output-balanced`` (a method whose
``kd_gradient_cap`` is set) is tuned only where the SE term still counts: up to the λ at which
the KD term's gradient is ``kd_gradient_cap`` times the SE term's (1: equal), measured, not
typed in, by :func:`kd_gradient_ratio` at the student's initialisation, where the plan needs
it before any run (:func:`~tfckd_lite.experiment.plan.kd_weight_cap`). The ``output`` runs stay
what they are: the same term tuned without a cap.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from .config import ExperimentConfig

#: training batches the ratio is measured on (its median over them)
PROBE_BATCHES = 4


def kd_gradient_ratio(method: str, cfg: ExperimentConfig) -> float:
    """``‖∇θ KD‖ / ‖∇θ SE‖`` of ``method`` at the start of training: the median over the first
    :data:`PROBE_BATCHES` training batches (the budget's batch size and crop, loader seed
    ``seeds[0]``) of the ratio of the two terms' gradient norms with respect to the student's
    parameters θ, initialised as the run of seed ``seeds[0]`` initialises them. ``λ`` times
    this is how much larger the KD term's pull is than the SE term's. Computed once per
    process and configuration (a few seconds on a CPU).

    Notebook: 05_distillation.ipynb
    """
    return _ratio(method, str(cfg.data), cfg.mics, str(cfg.teacher_file()), cfg.student,
                  cfg.seeds[0], cfg.train.batch_size, cfg.train.segment_seconds,
                  cfg.train.segment_frames)


@functools.lru_cache(maxsize=None)
def _ratio(method: str, data: str, mics: str | None, teacher: str, student: str, seed: int,
           batch_size: int, segment_seconds: float, segment_frames: int) -> float:
    from ..checkpoint import load_model
    from ..data import make_loader, open_corpus
    from ..distill import build_distiller
    from ..losses import compressed_spectral_loss
    from ..models import build_model
    from ..train import corpus_options, microphones

    train_set = open_corpus(data, "train", **corpus_options(mics, None))
    torch.manual_seed(seed)                     # as run_training initialises the student
    model = build_model(student, in_channels=microphones(train_set))
    batches = make_loader(train_set, batch_size=batch_size, segment_seconds=segment_seconds,
                          seed=seed)
    task = build_distiller(method, load_model(teacher), model, batch_size, segment_frames,
                           se_loss=compressed_spectral_loss)
    params = task.student_parameters()
    ratios = []
    for index, (noisy, clean) in enumerate(batches):
        if index == PROBE_BATCHES:
            break
        losses = task(model.stft(noisy), model.stft(clean))
        se = torch.autograd.grad(losses["se"], params, retain_graph=True, allow_unused=True)
        kd = torch.autograd.grad(losses["kd"], params, allow_unused=True)
        ratios.append(_norm(kd) / _norm(se))
    return float(np.median(ratios))


def _norm(grads) -> float:
    return float(torch.sqrt(sum(g.double().square().sum() for g in grads if g is not None)))
