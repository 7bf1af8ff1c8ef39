"""Symmetric KL (Jeffreys) divergence and the calibrated set loss of I2S-TFCKD (spec §4).

Notebook: 05_distillation.ipynb

Element-wise Jeffreys divergence ``J(p, q) = (p - q)(log p - log q)``, with p and q clamped to
``>= 1e-8`` before the logarithm. Because the clamp is monotone, ``p - q`` and
``log p - log q`` keep the same sign, so every element is ``>= 0`` and exactly 0 where p == q.

For student layer i and teacher layer j of one set (teacher relations detached)::

    L^T_ij = 1/(B·T) Σ_b Σ_t Σ_t' α^T[b,t,i,j] J(P_Tj[b,t,t'], P_Si[b,t,t'])
    L^F_ij = 1/(B·B) Σ_b Σ_b' Σ_t α^F[b,t,i,j] J(Q_Tj[b,t,b'], Q_Si[b,t,b'])
    L_set  = (1/n_s) Σ_i Σ_j (L^T_ij + L^F_ij)

Every student layer is compared with every teacher layer of its set ("cross-weighting"): time
weights scale time divergences and frequency weights scale frequency divergences. The two
normalisers (B·T and B·B) are those of the released code; they make the frequency term sum over
T frames per (b, b') pair, so it is not an average over all of its elements: keep that in mind
when comparing the magnitudes of the two streams.

The pairwise divergence is computed in one broadcast over (i, j) rather than in a double loop.
"""

from __future__ import annotations

import torch

#: Probabilities are clamped to at least this value before the logarithm.
PROB_EPS = 1e-8


def jeffreys(p: torch.Tensor, q: torch.Tensor, eps: float = PROB_EPS) -> torch.Tensor:
    """Element-wise symmetric KL ``(p - q)(log p - log q)`` with p, q clamped to ``>= eps``.

    Notebook: 05_distillation.ipynb

    Broadcasts like ``p - q``; every element is ``>= 0`` and 0 where ``p == q``. Summed over the
    last axis of two distributions it is ``KL(p||q) + KL(q||p)``.
    """
    p = p.clamp_min(eps)
    q = q.clamp_min(eps)
    return (p - q) * (p.log() - q.log())


def _check_pair(student: torch.Tensor, teacher: torch.Tensor, weights: torch.Tensor | None,
                name: str) -> None:
    if student.dim() != 4 or teacher.dim() != 4:
        raise ValueError(f"{name}: relations must be stacked as [n_layers, B, T, K], got student "
                         f"{tuple(student.shape)} and teacher {tuple(teacher.shape)}")
    if student.shape[1:] != teacher.shape[1:]:
        raise ValueError(f"{name}: student relations {tuple(student.shape[1:])} and teacher "
                         f"relations {tuple(teacher.shape[1:])} differ in shape")
    if weights is not None:
        expected = (student.shape[1], student.shape[2], student.shape[0], teacher.shape[0])
        if tuple(weights.shape) != expected:
            raise ValueError(f"{name}: weights must be [B, T, n_s, n_t] = {expected}, got "
                             f"{tuple(weights.shape)}")


def pairwise_divergence(student: torch.Tensor, teacher: torch.Tensor,
                        weights: torch.Tensor, stream: str) -> torch.Tensor:
    """Matrix of calibrated divergences ``L_ij`` of one stream, shape ``[n_s, n_t]``.

    Notebook: 05_distillation.ipynb

    ``student``: stacked student relations ``[n_s, B, T, K]``; ``teacher``: ``[n_t, B, T, K]``
    (detached here, it is the target); ``weights``: ``[B, T, n_s, n_t]``; ``stream``: ``"time"``
    (normaliser B·T, K = T) or ``"freq"`` (normaliser B·B, K = B).
    """
    _check_pair(student, teacher, weights, f"pairwise_divergence({stream})")
    batch, frames = student.shape[1], student.shape[2]
    if stream == "time":
        norm = batch * frames
    elif stream == "freq":
        norm = batch * batch
    else:
        raise ValueError(f"stream must be 'time' or 'freq', got {stream!r}")
    teacher = teacher.detach()
    # row divergences: Σ over the last axis of J for every (i, j, b, t)
    rows = jeffreys(teacher.unsqueeze(0), student.unsqueeze(1)).sum(dim=-1)  # [n_s, n_t, B, T]
    return torch.einsum("ijbt,btij->ij", rows, weights) / norm


def calibrated_set_loss(student: dict, teacher: dict, weights: dict,
                        return_terms: bool = False):
    """Calibrated intra-set (or inter-set) loss ``L_set = (1/n_s) Σ_ij (L^T_ij + L^F_ij)``.

    Notebook: 05_distillation.ipynb

    ``student`` / ``teacher``: dicts ``{"time": [n, B, T, T], "freq": [n, B, T, B]}`` of stacked
    relations; ``weights``: ``{"time": [B, T, n_s, n_t], "freq": ...}``. The streams used are the
    keys of ``weights`` (a time-only ablation passes only ``"time"``). Returns the scalar, or
    ``(scalar, {stream: [n_s, n_t] matrix})`` with ``return_terms=True`` (for plots).
    """
    if not weights:
        raise ValueError("calibrated_set_loss: no stream given (weights is empty)")
    terms = {}
    n_student = None
    for stream, w in weights.items():
        if stream not in student or stream not in teacher:
            raise ValueError(f"calibrated_set_loss: missing {stream!r} relations")
        terms[stream] = pairwise_divergence(student[stream], teacher[stream], w, stream)
        n_student = student[stream].shape[0]
    loss = sum(t.sum() for t in terms.values()) / n_student
    return (loss, terms) if return_terms else loss


def paired_divergence(student: torch.Tensor, teacher: torch.Tensor,
                      stream: str = "time") -> torch.Tensor:
    """One-to-one divergence between two equally stacked relations, uniform weights, a scalar.

    Notebook: 05_distillation.ipynb

    ``student`` and ``teacher``: ``[n, B, T, K]`` where layer k of one is paired with layer k of
    the other; every frame has weight 1 (no calibration). Uses the same normalisers as the
    calibrated loss and averages over the n pairs. This is the frame-similarity baseline.
    """
    if student.shape != teacher.shape:
        raise ValueError(f"paired_divergence: shapes differ, {tuple(student.shape)} vs "
                         f"{tuple(teacher.shape)}")
    _check_pair(student, teacher, None, "paired_divergence")
    if stream not in ("time", "freq"):
        raise ValueError(f"stream must be 'time' or 'freq', got {stream!r}")
    n, batch, frames = student.shape[:3]
    norm = batch * frames if stream == "time" else batch * batch
    return jeffreys(teacher.detach(), student).sum() / (norm * n)
