"""Dual-stream (time / "frequency") calibration weights between student and teacher layers (§3).

Notebook: 04_calibration_weights.ipynb

For a set with ``n_s`` student and ``n_t`` teacher layers, the block turns the raw Gram matrices
of every layer into query (student) and key (teacher) embeddings, one per frame, and spreads a
unit weight over the teacher layers with a softmax of their inner products::

    α^T[b, t, i, j] = softmax_j <q^T_{b,t,i}, k^T_{b,t,j}>      (time stream)
    α^F[b, t, i, j] = softmax_j <q^F_{b,t,i}, k^F_{b,t,j}>      ("frequency" stream)

so that, for each utterance, frame and student layer, the weights over the teacher layers sum to
one. Shapes ``[B, T, n_s, n_t]``.

Embedders (one per layer and stream, as in the spec and in SemCKD):

* time: ``Linear(T -> 2T), ReLU, Linear(2T -> T)`` applied to each row of ``G_T [B, T, T]``;
* frequency: ``Linear(B -> 2B), ReLU, Linear(2B -> 2B)`` applied to each row of ``G_F [B, T, B]``;
* then L2 normalisation. **Default (SemCKD meaning)**: each embedding vector is scaled to unit
  length, so ``<q, k>`` is a cosine in [-1, 1]. **``released_normalisation=True``**: the released
  demo code divides by the norm over the *frame* axis instead (each embedding coordinate is
  normalised across the T frames of an utterance), which we offer for faithfulness comparisons.
  The SemCKD meaning is the default because it is what the block is derived from and because
  it makes each frame's attention logits bounded, independent of T.

**The ceiling of the SemCKD normalisation.** Cosine logits lie in [-1, 1], so within a row the
largest weight is at most e² times the smallest: ``log(max_j α) - log(min_j α) <= 2``
(:func:`log_weight_spread`; 0 means uniform). The bound holds between every pair of weights of
every frame, hence also for weights averaged over frames and utterances. No weight can exceed
``e² / (e² + n_t - 1)`` (0.787 for three teacher layers, 0.881 for two), and ``k`` equally
preferred layers get at most ``e / (k e + (n_t - k) / e)`` each (:func:`weight_ceiling`); no
weight falls below ``1 / (1 + (n_t - 1) e²)`` (0.063 for three). The block can therefore never
pick a single teacher layer. In the committed experiment's ``tfckd-intra`` tuning runs
(``experiments/distillation-small``; ``experiment.final_calibration_spread`` of each run's
``history.json``) the mean spread of every stage and stream was above 1.92 after the first
of 6 epochs and above 1.98 after the last at λ = 0.1 and 1 (a first pass, whose folders were lost,
found the same at λ = 10 and 100); only λ = 0.01 kept the encoder's below, at 1.69 / 1.75. The
learnt "calibration" becomes a fixed assignment per layer, as decisive as the ceiling allows
(notebook 04 draws it). The released
normalisation (over frames) has no per-frame ceiling: it fixes the squared norms of an
utterance's embeddings summed over its frames (to E, the embedding size), so one frame's logit
can reach E (``tests/test_distill_calibration.py`` pushes a single frame past the ceiling).

Because the embedders' input sizes are T and B, a block is **built for a fixed segment length
and batch size**; any other batch raises a ``ValueError`` naming expected and received sizes
(loaders must crop fixed segments and use ``drop_last=True``).

The Grams are raw (spec §3), so the weights see the feature scale; the relations that the
weights multiply do not (relations.py). The embedders of all layers of one side are stored as
stacked weight tensors and run as one batched matmul.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

#: Streams of the method; "freq" is the across-batch ("frequency") stream of the spec.
STREAMS = ("time", "freq")


def _check_positive_ints(owner: str, **values) -> None:
    """Raise ``ValueError`` naming ``owner`` unless every value is an int >= 1 (not a bool)."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{owner}: {name} must be a positive int, got {value!r}")


class CalibrationWeights(NamedTuple):
    """Calibration weights ``[B, T, n_s, n_t]`` per stream (``None`` for a stream switched off).

    Notebook: 04_calibration_weights.ipynb
    """

    time: torch.Tensor | None
    freq: torch.Tensor | None


class StackedMLP(nn.Module):
    """``L`` independent two-layer MLPs ``Linear -> ReLU -> Linear`` run as one batched op.

    Notebook: 04_calibration_weights.ipynb

    Input ``[L, ..., d_in]``, output ``[L, ..., d_out]``; MLP ``l`` acts on slice ``l``.
    Initialised like ``nn.Linear`` (uniform in ``±1/sqrt(fan_in)`` for weights and biases).
    """

    def __init__(self, layers: int, d_in: int, d_hidden: int, d_out: int):
        super().__init__()
        self.layers, self.d_in, self.d_hidden, self.d_out = layers, d_in, d_hidden, d_out
        self.weight1 = nn.Parameter(torch.empty(layers, d_in, d_hidden))
        self.bias1 = nn.Parameter(torch.empty(layers, 1, d_hidden))
        self.weight2 = nn.Parameter(torch.empty(layers, d_hidden, d_out))
        self.bias2 = nn.Parameter(torch.empty(layers, 1, d_out))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for weight, bias, fan_in in ((self.weight1, self.bias1, self.d_in),
                                     (self.weight2, self.bias2, self.d_hidden)):
            bound = 1.0 / math.sqrt(fan_in)
            nn.init.uniform_(weight, -bound, bound)
            nn.init.uniform_(bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] != self.layers or x.shape[-1] != self.d_in:
            raise ValueError(f"StackedMLP expects [{self.layers}, ..., {self.d_in}], "
                             f"got {tuple(x.shape)}")
        lead = x.shape[1:-1]
        h = x.reshape(self.layers, -1, self.d_in)
        h = torch.relu(torch.baddbmm(self.bias1, h, self.weight1))
        h = torch.baddbmm(self.bias2, h, self.weight2)
        return h.reshape(self.layers, *lead, self.d_out)

    def extra_repr(self) -> str:
        return f"layers={self.layers}, {self.d_in} -> {self.d_hidden} -> {self.d_out}"


class TFCalibration(nn.Module):
    """Time/frequency calibration block for ``n_student`` x ``n_teacher`` layers (spec §3).

    Notebook: 04_calibration_weights.ipynb

    ``TFCalibration(n_student, n_teacher, frames, batch_size, released_normalisation=False,
    streams=("time", "freq"))``; ``forward(student_grams, teacher_grams)`` takes, per side, a dict
    ``{"time": [n, B, T, T], "freq": [n, B, T, B]}`` of stacked raw Gram matrices (see
    ``relations.layer_relations``) and returns ``CalibrationWeights(time, freq)``, each
    ``[B, T, n_student, n_teacher]`` with rows summing to one over the teacher layers.

    A batch of another size or frame count raises ``ValueError`` (the Linear embedders have T
    and B inputs). ``streams`` builds only the embedders of the listed streams (the time-only and
    frequency-only ablations); the other entry of the result is ``None``.
    """

    def __init__(self, n_student: int, n_teacher: int, frames: int, batch_size: int,
                 released_normalisation: bool = False, streams: tuple[str, ...] = STREAMS,
                 norm_eps: float = 1e-8):
        super().__init__()
        _check_positive_ints("TFCalibration", n_student=n_student, n_teacher=n_teacher,
                             frames=frames, batch_size=batch_size)
        streams = tuple(streams)
        if not streams or set(streams) - set(STREAMS) or len(set(streams)) != len(streams):
            raise ValueError(f"TFCalibration: streams must be a non-empty subset of {STREAMS}, "
                             f"got {streams!r}")
        self.n_student, self.n_teacher = n_student, n_teacher
        self.frames, self.batch_size = frames, batch_size
        self.released_normalisation = bool(released_normalisation)
        self.streams = streams
        self.norm_eps = norm_eps
        sizes = {"time": (frames, 2 * frames, frames),
                 "freq": (batch_size, 2 * batch_size, 2 * batch_size)}
        self.query = nn.ModuleDict({s: StackedMLP(n_student, *sizes[s]) for s in streams})
        self.key = nn.ModuleDict({s: StackedMLP(n_teacher, *sizes[s]) for s in streams})

    def check_batch(self, batch: int, frames: int) -> None:
        """Raise ``ValueError`` unless ``(batch, frames)`` is what the block was built for."""
        if batch != self.batch_size or frames != self.frames:
            raise ValueError(
                f"this calibration block was built for batch_size={self.batch_size} and "
                f"frames={self.frames}, got a batch of {batch} utterance(s) x {frames} frame(s). "
                "Its Linear embedders take T and B inputs: crop every segment to the same length "
                "and drop incomplete batches (DataLoader(drop_last=True)), or build the "
                "distiller for this size.")

    def _normalise(self, e: torch.Tensor) -> torch.Tensor:
        # e: [n, B, T, E]. SemCKD: unit embedding vectors; released: unit norm over frames.
        dim = -2 if self.released_normalisation else -1
        return e / torch.linalg.vector_norm(e, dim=dim, keepdim=True).clamp_min(self.norm_eps)

    def _check_grams(self, grams: dict, side: str, layers: int) -> None:
        expected_last = {"time": self.frames, "freq": self.batch_size}
        for stream in self.streams:
            if stream not in grams or grams[stream] is None:
                raise ValueError(f"TFCalibration: missing the {side} {stream!r} Grams")
            g = grams[stream]
            if g.dim() != 4:
                raise ValueError(f"TFCalibration: {side} {stream} Grams must be [n, B, T, "
                                 f"{'T' if stream == 'time' else 'B'}], got {tuple(g.shape)}")
            self.check_batch(g.shape[1], g.shape[2])
            if g.shape[0] != layers or g.shape[3] != expected_last[stream]:
                raise ValueError(f"TFCalibration: {side} {stream} Grams should be "
                                 f"[{layers}, {self.batch_size}, {self.frames}, "
                                 f"{expected_last[stream]}], got {tuple(g.shape)}")

    def embeddings(self, student_grams: dict, teacher_grams: dict) -> dict:
        """Normalised queries and keys: ``{stream: (q [n_s, B, T, E], k [n_t, B, T, E])}``.

        Notebook: 04_calibration_weights.ipynb
        """
        self._check_grams(student_grams, "student", self.n_student)
        self._check_grams(teacher_grams, "teacher", self.n_teacher)
        return {stream: (self._normalise(self.query[stream](student_grams[stream])),
                         self._normalise(self.key[stream](teacher_grams[stream])))
                for stream in self.streams}

    def forward(self, student_grams: dict, teacher_grams: dict) -> CalibrationWeights:
        weights = {}
        for stream, (q, k) in self.embeddings(student_grams, teacher_grams).items():
            logits = torch.einsum("ibte,jbte->btij", q, k)                    # [B, T, n_s, n_t]
            weights[stream] = torch.softmax(logits, dim=-1)
        return CalibrationWeights(weights.get("time"), weights.get("freq"))

    def extra_repr(self) -> str:
        norm = "released (over frames)" if self.released_normalisation else "SemCKD (per vector)"
        return (f"n_student={self.n_student}, n_teacher={self.n_teacher}, frames={self.frames}, "
                f"batch_size={self.batch_size}, streams={self.streams}, normalisation={norm}")


def weight_ceiling(n_teacher: int, tied: int = 1) -> float:
    """The largest weight the SemCKD-normalised block can give one of ``tied`` equally preferred
    teacher layers out of ``n_teacher``: ``e / (tied·e + (n_teacher - tied)/e)``.

    Notebook: 04_calibration_weights.ipynb

    Each logit is a cosine in [-1, 1]; the bound is reached when the query is parallel to the
    ``tied`` preferred keys and opposite to the rest (module docstring). It does not apply to
    ``released_normalisation=True``.

    >>> [round(weight_ceiling(n, tied), 4) for n, tied in ((3, 1), (2, 1), (3, 2))]
    [0.787, 0.8808, 0.4683]
    """
    _check_positive_ints("weight_ceiling", n_teacher=n_teacher, tied=tied)
    if tied > n_teacher:
        raise ValueError(f"weight_ceiling: tied={tied} exceeds n_teacher={n_teacher}")
    return math.e / (tied * math.e + (n_teacher - tied) / math.e)


#: The largest :func:`log_weight_spread` of the SemCKD normalisation: logits are cosines.
MAX_LOG_SPREAD = 2.0


def log_weight_spread(weights) -> torch.Tensor:
    """``log(max_j α) - log(min_j α)`` over the teacher layers (last axis) of every row.

    Notebook: 04_calibration_weights.ipynb

    ``weights``: ``[..., n_t]`` (per frame ``[B, T, n_s, n_t]``, or averaged ``[n_s, n_t]``);
    returns ``[...]``. 0 means no preference; with the SemCKD normalisation a row can never
    exceed :data:`MAX_LOG_SPREAD` = 2 (module docstring), so a spread of 2 means the block is as
    decisive as it can be. Weights must be positive (a softmax's are).

    >>> log_weight_spread(torch.tensor([[0.5, 0.25, 0.25], [1 / 3, 1 / 3, 1 / 3]]))
    tensor([0.6931, 0.0000])
    """
    w = torch.as_tensor(weights, dtype=torch.float64)
    if w.dim() < 1 or w.shape[-1] < 1:
        raise ValueError(f"log_weight_spread expects weights [..., n_t], got shape "
                         f"{tuple(w.shape)}")
    if not (w > 0).all():
        raise ValueError("log_weight_spread needs positive weights (a softmax's); got a zero, "
                         "negative or NaN weight")
    return (w.amax(-1).log() - w.amin(-1).log()).to(torch.float32)


def stage_spreads(weights: dict) -> dict[str, dict[str, float]]:
    """How decisive each stage's weights are, on average: ``{stage: {stream: spread}}``.

    Notebooks: 04_calibration_weights.ipynb, 05_distillation.ipynb (the results table)

    ``weights``: ``{stage: {stream: w}}`` with ``w`` per frame ``[B, T, n_s, n_t]`` (as from
    ``distiller.calibration_weights``; averaged over utterances and frames first) or already
    averaged ``[n_s, n_t]`` (as ``calibration_summary`` and ``history.json`` store them, nested
    lists accepted). ``spread`` is :func:`log_weight_spread` of each row of the mean weights,
    averaged over rows: 0 is uniform, 2 the ceiling of the SemCKD normalisation.
    """
    spreads = {}
    for stage, streams in weights.items():
        spreads[stage] = {}
        for stream, w in streams.items():
            w = torch.as_tensor(w).detach().to(torch.float64)       # a summary: floats out
            mean = w.mean(dim=(0, 1)) if w.dim() == 4 else w
            spreads[stage][stream] = float(log_weight_spread(mean).mean())
    return spreads


def calibration_agreement(weights: dict, divergences: dict) -> dict[str, dict[str, dict]]:
    """Which teacher layer each student layer weighs most, and which it is closest to.

    Notebook: 04_calibration_weights.ipynb

    ``weights``: ``{stage: {stream: [B, T, n_s, n_t] or [n_s, n_t]}}`` as for
    :func:`stage_spreads`; ``divergences``: the same stages and streams of ``[n_s, n_t]``
    uncalibrated pair divergences (``TFCKDDistiller.pair_divergences``). Returns
    ``{stage: {stream: {"favoured": [j per student layer], "closest": [j per student
    layer]}}}``: the argmax over teacher layers of the mean weights and the argmin of the
    divergences.

    Why they tend to coincide: the block is trained on the loss it weighs. For one row,
    ``∂(Σ_j α_j L_j)/∂z_j = α_j (L_j - Σ_k α_k L_k)`` for the softmax logits ``z``, so gradient
    descent moves weight from the teacher layers the student is further than average from to
    those it is closer to, and the row becomes a soft minimum over teacher layers, as sharp
    as the ceiling allows (:data:`MAX_LOG_SPREAD`). Nothing in the loss rewards weighing a
    *harder*, more informative teacher layer.
    """
    out: dict[str, dict[str, dict]] = {}
    for stage, streams in weights.items():
        out[stage] = {}
        for stream, w in streams.items():
            w = torch.as_tensor(w).detach().to(torch.float64)
            mean = w.mean(dim=(0, 1)) if w.dim() == 4 else w
            d = torch.as_tensor(divergences[stage][stream]).detach()
            if tuple(d.shape) != tuple(mean.shape):
                raise ValueError(f"{stage}/{stream}: weights are {tuple(mean.shape)} "
                                 f"[n_s, n_t], divergences {tuple(d.shape)}")
            out[stage][stream] = {"favoured": mean.argmax(-1).tolist(),
                                  "closest": d.argmin(-1).tolist()}
    return out


def uniform_weights(batch: int, frames: int, n_student: int, n_teacher: int,
                    device=None, dtype=torch.float32) -> torch.Tensor:
    """Uniform weights ``1/n_teacher``, shape ``[B, T, n_s, n_t]`` (the ``tfckd-uniform`` ablation).

    Notebook: 04_calibration_weights.ipynb
    """
    return torch.full((batch, frames, n_student, n_teacher), 1.0 / n_teacher,
                      device=device, dtype=dtype)
