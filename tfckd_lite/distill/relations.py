"""Parameter-free relations between frames: what I2S-TFCKD matches (spec TFCKD.md §2).

Notebook: 04_calibration_weights.ipynb

A feature map ``X`` of shape ``[B, C, T, F]`` is read as ``B x T`` frame vectors
``x_{b,t} = vec(X[b, :, t, :])`` of length ``C*F``. Two relations compare those vectors by cosine
similarity (``eps = 1e-6`` added to each norm), mapped to ``[0, 1]`` by ``(cos + 1) / 2`` and
normalised so that every row sums to one:

* time relation ``P[b, t, t']`` (``[B, T, T]``): how frame ``t`` of utterance ``b`` resembles the
  other frames ``t'`` of the *same* utterance;
* "frequency" relation ``Q[b, t, b']`` (``[B, T, B]``): how frame ``t`` of utterance ``b``
  resembles frame ``t`` of the *other utterances* ``b'`` of the mini-batch.

Faithfulness note, to teach honestly: the released code calls the second stream "frequency", but
it does **not** relate frequency bins to each other. It compares a frame's whole spectral vector
(all channels and bins at once) across the utterances of the batch; it is a batch (inter-sample)
relation taken frame by frame. That is why a calibration block depends on the batch size.

Teacher and student differ in C (and N) but never in B, T or F, so their relations have the same
shape and can be compared even though the feature maps cannot.

Cost: each layer's relations come from one Gram matrix per stream; ``layer_relations`` computes
them once per step for a whole list of layers, stacking layers of the same shape so that one
batched matmul serves several layers. The raw Grams (before cosine normalisation) are returned
too because the calibration block (calibration.py) takes them as input.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch

#: ε added to each frame-vector norm in the cosine similarity (spec §2).
COSINE_EPS = 1e-6


class Relations(NamedTuple):
    """The relations and raw Gram matrices of one feature map.

    Notebook: 04_calibration_weights.ipynb

    ``time``: ``[B, T, T]`` rows sum to 1; ``freq``: ``[B, T, B]`` rows sum to 1;
    ``time_gram``: ``[B, T, T]`` raw inner products ``x_{b,t} . x_{b,t'}``;
    ``freq_gram``: ``[B, T, B]`` raw inner products ``x_{b,t} . x_{b',t}``.
    Leading layer axes, if any, come first. Either pair may be ``None`` when not requested.
    """

    time: torch.Tensor | None
    freq: torch.Tensor | None
    time_gram: torch.Tensor | None
    freq_gram: torch.Tensor | None


def _check_feature_map(x: torch.Tensor, name: str = "feature map") -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 4:
        raise ValueError(f"{name} must be [B, C, T, F] (optionally with leading layer axes), "
                         f"got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be floating point, got {x.dtype}")


def frame_vectors(x: torch.Tensor) -> torch.Tensor:
    """Flatten every frame: ``[..., B, C, T, F] -> [..., B, T, C*F]``.

    Notebook: 04_calibration_weights.ipynb
    """
    _check_feature_map(x)
    *lead, batch, channels, frames, bins = x.shape
    return x.transpose(-3, -2).reshape(*lead, batch, frames, channels * bins)


def _to_unit_rows(similarity: torch.Tensor) -> torch.Tensor:
    """Map cosines to [0, 1] with (cos + 1) / 2 and normalise each row to sum to one.

    With ε on the norms every cosine is strictly above -1 and a frame's cosine with itself is
    ``>= 0``, so every row sum is at least 1/2: the division is always safe.
    """
    similarity = (similarity + 1.0) / 2.0
    return similarity / similarity.sum(dim=-1, keepdim=True)


def _relations_from_vectors(v: torch.Tensor, eps: float, time: bool, freq: bool) -> Relations:
    # v: [..., B, T, D]. Norms with ε; vector_norm has a zero (finite) gradient at a silent frame.
    norm = torch.linalg.vector_norm(v, dim=-1) + eps                     # [..., B, T]
    time_gram = time_rel = freq_gram = freq_rel = None
    if time:
        time_gram = v @ v.transpose(-1, -2)                               # [..., B, T, T]
        cos = time_gram / (norm.unsqueeze(-1) * norm.unsqueeze(-2))
        time_rel = _to_unit_rows(cos)
    if freq:
        vt = v.transpose(-3, -2)                                          # [..., T, B, D]
        freq_gram = (vt @ vt.transpose(-1, -2)).transpose(-3, -2)         # [..., B, T, B]
        norm_t = norm.transpose(-1, -2)                                   # [..., T, B]
        denominator = (norm_t.unsqueeze(-1) * norm_t.unsqueeze(-2)).transpose(-3, -2)
        freq_rel = _to_unit_rows(freq_gram / denominator)
    return Relations(time_rel, freq_rel, time_gram, freq_gram)


def time_relation(x: torch.Tensor, eps: float = COSINE_EPS) -> torch.Tensor:
    """Time relation ``P[b, t, t'] ∝ (cos(x_{b,t}, x_{b,t'}) + 1) / 2``: ``[B,C,T,F] -> [B,T,T]``.

    Notebook: 04_calibration_weights.ipynb

    Rows sum to one over ``t'`` and lie in [0, 1]. Invariant to a positive rescaling of ``x``
    (up to the ε on the norms). A silent (all-zero) frame has cosine 0 with everything, so its row
    is uniform and its gradient finite. Extra leading axes (stacked layers) are allowed.
    """
    return _relations_from_vectors(frame_vectors(x), eps, time=True, freq=False).time


def frequency_relation(x: torch.Tensor, eps: float = COSINE_EPS) -> torch.Tensor:
    """The "frequency" relation ``Q[b, t, b'] ∝ (cos(x_{b,t}, x_{b',t}) + 1) / 2``: ``[B,T,B]``.

    Notebook: 04_calibration_weights.ipynb

    Per frame ``t``, each utterance's whole spectral frame vector (all channels and bins) is
    compared with the same frame of the other utterances of the batch; rows sum to one over
    ``b'``. Despite the released code's name, frequency bins are never compared with each other.
    """
    return _relations_from_vectors(frame_vectors(x), eps, time=False, freq=True).freq


def gram_matrices(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw Grams ``(G_T [B,T,T], G_F [B,T,B])`` of ``x`` (the calibration block's inputs, §3).

    Notebook: 04_calibration_weights.ipynb
    """
    rel = _relations_from_vectors(frame_vectors(x), COSINE_EPS, time=True, freq=True)
    return rel.time_gram, rel.freq_gram


def layer_relations(features: Sequence[torch.Tensor], eps: float = COSINE_EPS,
                    time: bool = True, freq: bool = True) -> list[Relations]:
    """Relations (and raw Grams) of every feature map of a list, each computed exactly once.

    Notebook: 04_calibration_weights.ipynb

    Layers of identical shape are stacked and go through one batched computation (for DPDCRN
    E2, E3, M1..MN and D1 all share ``[B, C, T, 64]``); the result is in the input order.
    ``time`` / ``freq`` switch a stream off (its entries are then ``None``).
    """
    if not time and not freq:
        raise ValueError("layer_relations: ask for at least one of time / freq")
    groups: dict[tuple, list[int]] = {}
    for index, x in enumerate(features):
        _check_feature_map(x, f"feature map {index}")
        if x.dim() != 4:
            raise ValueError(f"feature map {index} must be [B, C, T, F], got {tuple(x.shape)}")
        groups.setdefault((tuple(x.shape), x.dtype, x.device), []).append(index)
    if len({(k[0][0], k[0][2]) for k in groups}) > 1:
        raise ValueError("all feature maps of a set must share batch size and frame count, got "
                         f"{sorted({(k[0][0], k[0][2]) for k in groups})} as (B, T)")
    out: list[Relations | None] = [None] * len(features)
    for indices in groups.values():
        if len(indices) == 1:
            out[indices[0]] = _relations_from_vectors(frame_vectors(features[indices[0]]),
                                                      eps, time, freq)
            continue
        stacked = torch.stack([features[i] for i in indices])            # [L, B, C, T, F]
        rel = _relations_from_vectors(frame_vectors(stacked), eps, time, freq)
        for position, i in enumerate(indices):
            out[i] = Relations(*(None if r is None else r[position] for r in rel))
    return out  # type: ignore[return-value]
