"""The ``Distiller``: a frozen teacher, a student, and named losses (mdistiller style).

Notebook: 05_distillation.ipynb

``Distiller`` is the base class of every method in ``methods.METHODS``; ``TFCKDDistiller`` is
I2S-TFCKD itself (spec TFCKD.md §§2-6) with the switches used by its ablations. A distiller

* owns the student and a frozen teacher: the teacher's parameters have ``requires_grad=False``,
  it stays in eval mode whatever ``.train()`` is called with, and it runs under
  ``torch.no_grad()``, so its outputs are detached targets and no gradient can reach it;
* takes the base speech-enhancement loss as a callable ``se_loss(enhanced, clean) -> scalar``
  (the training engine owns it) and the KD weight λ: the student trains on
  ``total = se + λ · kd``;
* returns from ``forward(noisy_spec, clean_spec)`` a dict of named scalar tensors: ``se``, one
  ``kd_<name>`` per distillation term, ``kd`` (their unweighted sum, L_KD) and ``total``;
  the student-only baseline returns just ``se`` and ``total``;
* lists its parameters in three groups: ``student_parameters()``, ``extra_parameters()``
  (calibration, fusion, adaptors: trainable, but not part of the deployed student) and
  ``trainable_parameters()`` (both, for the optimiser);
* is a *task* of the training engine (:func:`tfckd_lite.train.fit`): ``model`` is the student
  (what is validated and saved as the best model), ``forward`` gives ``total``, and
  ``resume_signature()`` says what a resumed run must match besides its ``TrainConfig``.

State dict (what a training state holds): the student, the distillation machinery (calibration
blocks, fusion chains, adaptors, including frozen ones such as the uniform ablation's teacher
chains) - but **not the frozen teacher**. The teacher is an input of the run, like the data: it
never changes during training; saving it in every state would multiply the state's size (the
lite teacher has 4.4 times the lite student's parameters, the paper's teacher 5.4 times its
student's), and loading it back could silently replace the teacher a resumed run was given.
``state_dict()`` therefore leaves out every ``teacher.*`` entry, and ``load_state_dict()``
keeps the distiller's current teacher for entries the dict does not have (a dict that does hold
teacher entries still loads them). That a resumed run has *the same* teacher is checked instead
through ``resume_signature()["teacher_sha256"]``, a hash of the teacher's tensors that ``fit``
stores in the training state and compares on resume.
"""

from __future__ import annotations

import hashlib
import json
from typing import Callable, Sequence

import torch
from torch import nn

from ..precision import as_fp32, full_precision
from .calibration import STREAMS, TFCalibration, uniform_weights
from .fusion import FUSION_MID_CHANNELS, SET_NAMES, FusionChain
from .losses import calibrated_set_loss, pairwise_divergence
from .relations import COSINE_EPS, layer_relations

SELoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def tap_channels(model: nn.Module) -> dict[str, list[int]]:
    """Channels of every DPDCRN tap per set, in network order, from ``model.config``.

    Notebook: 05_distillation.ipynb

    ``{"encoder": [C, C, C], "dual_path": [C] * N, "decoder": [C, C, 2]}`` (D3 is the mask).
    """
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "channels") or not hasattr(config, "dual_path_layers"):
        raise TypeError(f"expected a DPDCRN (a model with .config.channels and "
                        f".config.dual_path_layers), got {type(model).__name__}")
    c = config.channels
    return {"encoder": [c, c, c], "dual_path": [c] * config.dual_path_layers,
            "decoder": [c, c, 2]}


def weights_sha256(module: nn.Module) -> str:
    """sha256 of a module's state dict: names, dtypes, shapes and raw bytes, in name order.

    Notebook: 05_distillation.ipynb

    Equal for equal weights on any device (the bytes are read on the CPU); used to check that a
    resumed distillation run has the teacher it started with.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _option_label(value):
    """JSON stand-in for an option value json cannot write (a callable: its dotted name)."""
    if callable(value):
        name = getattr(value, "__qualname__", type(value).__qualname__)
        return f"{getattr(value, '__module__', '?')}.{name}"
    raise TypeError(f"option value {value!r} of type {type(value).__name__} cannot be recorded")


def _drop_teacher_state(module: "Distiller", state: dict, prefix: str, local_metadata) -> None:
    """state_dict post-hook: the frozen teacher is not part of a distiller's state."""
    for key in [k for k in state if k.startswith(prefix + "teacher.")]:
        del state[key]


def _keep_teacher_state(module: "Distiller", state: dict, prefix: str, local_metadata, strict,
                        missing_keys, unexpected_keys, error_msgs) -> None:
    """load_state_dict pre-hook: teacher entries the dict lacks are the current teacher's own."""
    if module.teacher is None:
        return
    for name, tensor in module.teacher.state_dict().items():
        state.setdefault(f"{prefix}teacher.{name}", tensor)


class Distiller(nn.Module):
    """Base class: student + frozen teacher + SE loss + weighted KD terms.

    Notebook: 05_distillation.ipynb

    ``Distiller(student, teacher, se_loss, kd_weight=1.0)``. Subclasses set ``name`` and
    implement ``kd_losses(...) -> dict[str, Tensor]`` (keys without the ``kd_`` prefix);
    ``uses_teacher = False`` (the student-only baseline) makes the teacher optional and unused.
    ``forward(noisy, clean)`` returns the dict of named losses described in the module docstring.
    ``model`` is the student (the training engine's task protocol); ``state_dict()`` leaves the
    frozen teacher out (module docstring); ``build_options`` holds the options
    ``build_distiller`` was given (recorded in ``resume_signature()``).
    """

    name = "base"
    uses_teacher = True
    #: whether kd_losses needs the taps (return_features=True) of student / teacher
    needs_features = True
    #: parameter-name prefixes that extra_parameters() leaves out
    _not_extra = ("student.", "teacher.", "se_loss.", "output_loss.")

    def __init__(self, student: nn.Module, teacher: nn.Module | None, se_loss: SELoss,
                 kd_weight: float = 1.0):
        super().__init__()
        if not isinstance(student, nn.Module):
            raise TypeError(f"student must be an nn.Module, got {type(student).__name__}")
        if not callable(se_loss):
            raise TypeError(f"se_loss must be a callable (enhanced, clean) -> scalar, got "
                            f"{type(se_loss).__name__}")
        if isinstance(kd_weight, bool) or not isinstance(kd_weight, (int, float)) or kd_weight < 0:
            raise ValueError(f"kd_weight must be a non-negative number, got {kd_weight!r}")
        self.student = student
        self.se_loss = se_loss
        self.kd_weight = float(kd_weight)
        if self.uses_teacher:
            if not isinstance(teacher, nn.Module):
                raise TypeError(f"method {self.name!r} needs a teacher nn.Module, got "
                                f"{type(teacher).__name__}")
            if teacher is student:
                raise ValueError("teacher and student are the same module")
            s_cfg, t_cfg = getattr(student, "config", None), getattr(teacher, "config", None)
            if s_cfg is not None and t_cfg is not None and \
                    getattr(s_cfg, "in_channels", 1) != getattr(t_cfg, "in_channels", 1):
                raise ValueError(f"teacher takes {t_cfg.in_channels} microphone(s) but the "
                                 f"student {s_cfg.in_channels}")
            teacher.requires_grad_(False)
            teacher.eval()
            self.teacher = teacher
        else:
            self.teacher = None
        self.last_weights: dict[str, dict[str, torch.Tensor]] = {}
        self.build_options: dict = {}
        self.register_state_dict_post_hook(_drop_teacher_state)
        self.register_load_state_dict_pre_hook(_keep_teacher_state)

    # ------------------------------------------------------------- training-task protocol
    @property
    def model(self) -> nn.Module:
        """The student: what ``tfckd_lite.train.fit`` trains, validates and saves.

        Notebook: 05_distillation.ipynb
        """
        return self.student

    def resume_signature(self) -> dict:
        """What a resumed run must match besides its ``TrainConfig`` (JSON-serialisable).

        Notebook: 05_distillation.ipynb

        ``{"method", "kd_weight", "options", "teacher_sha256"}``: ``options`` are the
        ``build_options`` (callables by dotted name), ``teacher_sha256`` is
        :func:`weights_sha256` of the teacher (``None`` without one). ``fit`` stores it in the
        training state and refuses to resume a run whose signature differs.
        """
        options = json.loads(json.dumps(self.build_options, sort_keys=True, default=_option_label))
        teacher = weights_sha256(self.teacher) if self.teacher is not None else None
        return {"method": self.name, "kd_weight": self.kd_weight, "options": options,
                "teacher_sha256": teacher}

    # ----------------------------------------------------------------- modes and parameters
    def train(self, mode: bool = True):
        """Set train/eval mode on the student and extra modules; the teacher stays in eval."""
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self

    def student_parameters(self) -> list[nn.Parameter]:
        """The student's own parameters (what is deployed)."""
        return list(self.student.parameters())

    def extra_parameters(self) -> list[nn.Parameter]:
        """Trainable parameters of the distillation machinery (calibration, fusion, adaptors).

        Never the student's or teacher's, nor those of a loss passed in as an ``nn.Module``.
        """
        return [p for name, p in self.named_parameters()
                if not name.startswith(self._not_extra) and p.requires_grad]

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Student and extra parameters: what the optimiser updates. Never the teacher's."""
        return self.student_parameters() + self.extra_parameters()

    # ------------------------------------------------------------------------ forward
    def check_batch(self, noisy: torch.Tensor) -> None:
        """Raise if this batch cannot be distilled (overridden where sizes are fixed)."""

    def _check_inputs(self, noisy: torch.Tensor, clean: torch.Tensor) -> None:
        for name, x in (("noisy", noisy), ("clean", clean)):
            if not isinstance(x, torch.Tensor) or x.dim() != 4:
                raise ValueError(f"{name} must be a spectrum [B, 2, T, 257], got "
                                 f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x)}")
        if clean.shape[0] != noisy.shape[0] or clean.shape[2:] != noisy.shape[2:]:
            raise ValueError(f"noisy {tuple(noisy.shape)} and clean {tuple(clean.shape)} "
                             "spectra do not match in batch, frames or bins")

    def run_models(self, noisy: torch.Tensor):
        """Student forward (with grad) and teacher forward (no grad, eval).

        Returns ``(student_out, student_taps, teacher_out, teacher_taps)``; taps are ``None``
        when the method does not need them, the teacher entries ``None`` without a teacher.
        Under mixed precision the networks run in low precision but everything returned is
        cast to fp32: the KD computation that follows is an fp32 island
        (:mod:`tfckd_lite.precision`).
        """
        if self.needs_features:
            s_out, s_taps = self.student(noisy, return_features=True)
        else:
            s_out, s_taps = self.student(noisy), None
        t_out = t_taps = None
        if self.teacher is not None:
            if self.teacher.training:       # someone called teacher.train() directly
                self.teacher.eval()
            with torch.no_grad():
                if self.needs_features:
                    t_out, t_taps = self.teacher(noisy, return_features=True)
                else:
                    t_out = self.teacher(noisy)
        return as_fp32((s_out, s_taps, t_out, t_taps))

    def kd_losses(self, noisy, clean, student_out, student_taps, teacher_out, teacher_taps
                  ) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def forward(self, noisy: torch.Tensor, clean: torch.Tensor) -> dict[str, torch.Tensor]:
        self._check_inputs(noisy, clean)
        self.check_batch(noisy)
        s_out, s_taps, t_out, t_taps = self.run_models(noisy)
        # relations, calibration softmaxes, fusion, adaptors and losses: fp32 (precision.py)
        with full_precision():
            noisy, clean = as_fp32((noisy, clean))
            losses = {"se": self.se_loss(s_out, clean)}
            kd = self.kd_losses(noisy, clean, s_out, s_taps, t_out, t_taps)
            for key, value in kd.items():
                losses[f"kd_{key}"] = value
            for key, value in losses.items():
                if not isinstance(value, torch.Tensor) or value.dim() != 0:
                    shape = value.shape if isinstance(value, torch.Tensor) else repr(value)
                    raise TypeError(f"loss {key!r} must be a scalar tensor, got {shape}")
            if kd:
                losses["kd"] = torch.stack(list(kd.values())).sum()
                losses["total"] = losses["se"] + self.kd_weight * losses["kd"]
            else:
                losses["total"] = losses["se"]
        return losses

    def extra_repr(self) -> str:
        return f"method={self.name!r}, kd_weight={self.kd_weight}"


class TFCKDDistiller(Distiller):
    """I2S-TFCKD: calibrated intra-set loss on three sets plus the fused inter-set stage.

    Notebook: 05_distillation.ipynb

    ``TFCKDDistiller(student, teacher, se_loss, batch_size, frames, kd_weight=1.0,
    streams=("time", "freq"), calibration="learned", inter=True, released_normalisation=False,
    fusion_mid_channels=128, eps=1e-6, fusion_checkpoint=False, train_teacher_fusion=False)``

    Per step: one student and one (no-grad) teacher forward with taps; the relations and raw
    Grams of every tap, each computed once (``layer_relations``); per set a ``TFCalibration``
    (n_s x n_t) gives ``α^T, α^F`` and ``calibrated_set_loss`` the set loss ``kd_<set>``; then
    each side fuses each set into one map (``FusionChain``), and a 3 x 3 calibration block and the
    same loss on ``[O_E, O_M, O_D]`` give ``kd_inter``. ``kd = kd_encoder + kd_dual_path +
    kd_decoder + kd_inter`` (spec §6) and ``total = se + kd_weight · kd``.

    Switches (the registry's ablations): ``streams=("time",)`` or ``("freq",)`` drops the other
    stream's terms in the intra and inter stages (and builds no embedders for it);
    ``calibration="uniform"`` replaces every α by ``1/n_t``; ``inter=False`` drops fusion and the
    inter-set stage. ``released_normalisation`` selects the released demo's L2 normalisation
    over frames instead of SemCKD's per-vector one (see calibration.py). Cost knobs that do not
    change the method: ``fusion_checkpoint=True`` recomputes the fusion chains in the backward
    pass instead of storing their 128-channel activations (less memory, more time);
    ``fusion_mid_channels`` changes the chains' width (the spec's 128 is much wider than the
    lite networks themselves; a smaller width is a deviation to state if used).

    Gradient paths (following the released demo): teacher taps are detached, and every teacher
    relation is a detached target. The teacher's fusion chains learn only through the inter-set
    calibration *keys* (their Grams are not detached there, as in the release); with
    ``calibration="uniform"`` there are no keys, so the teacher's chains would never receive a
    gradient: they are then frozen (``requires_grad=False``) at their random initialisation,
    a fixed random projection of the teacher's taps, and are not listed as extra parameters
    (``tfckd-uniform``). ``train_teacher_fusion=True`` (with ``calibration="uniform"`` only:
    ``tfckd-uniform-trained-fusion``) keeps them learning by the full method's rule instead: the
    inter-set calibration block is still built and run, and its weights ``α`` enter the loss
    as ``1/n_t + (α − stop_gradient(α))``, which *is* ``1/n_t`` (``x − x = 0`` exactly) while
    its gradient with respect to ``α`` is the full method's, ``L_ij / n_s``. The block and the
    teacher's chains (through its keys) therefore receive the gradient they receive in
    ``tfckd``; the student's Grams enter the block detached, so the student and its chains get
    exactly the uniform loss's gradient. The ablation then changes the weights alone.

    ``last_weights`` holds, after each forward, ``{set: {"time": α^T, "freq": α^F}}`` (detached,
    ``[B, T, n_s, n_t]``; sets ``encoder``, ``dual_path``, ``decoder`` and ``inter``) for
    plotting; ``calibration_weights(noisy)`` computes them for a batch without gradients.
    ``last_terms`` holds the matching ``{set: {stream: [n_s, n_t]}}`` matrices of calibrated
    pair divergences ``L_ij`` (detached), whose sum over j, averaged over i, is the set loss.

    What "zero when the features are equal" means here: ``L_ij = 0`` whenever student layer i
    and teacher layer j have the same relations; the set loss compares *every* student layer
    with *every* teacher layer, so even a student identical to its teacher keeps the
    off-diagonal (cross-layer) terms, weighted by the calibration. The tests check the diagonal.
    """

    name = "tfckd"

    def __init__(self, student: nn.Module, teacher: nn.Module, se_loss: SELoss,
                 batch_size: int, frames: int, kd_weight: float = 1.0,
                 streams: Sequence[str] = STREAMS, calibration: str = "learned",
                 inter: bool = True, released_normalisation: bool = False,
                 fusion_mid_channels: int = FUSION_MID_CHANNELS, eps: float = COSINE_EPS,
                 fusion_checkpoint: bool = False, train_teacher_fusion: bool = False):
        super().__init__(student, teacher, se_loss, kd_weight)
        streams = tuple(streams)
        if not streams or set(streams) - set(STREAMS) or len(set(streams)) != len(streams):
            raise ValueError(f"streams must be a non-empty subset of {STREAMS}, got {streams!r}")
        if calibration not in ("learned", "uniform"):
            raise ValueError(f"calibration must be 'learned' or 'uniform', got {calibration!r}")
        if train_teacher_fusion and (calibration != "uniform" or not inter):
            raise ValueError("train_teacher_fusion applies to calibration='uniform' with the "
                             "inter-set stage (learned calibration trains the chains already)")
        for label, value in (("batch_size", batch_size), ("frames", frames)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{label} must be a positive int, got {value!r}")
        self.streams = streams
        self.last_terms: dict[str, dict[str, torch.Tensor]] = {}
        self.calibration_mode = calibration
        self.inter = bool(inter)
        self.batch_size, self.frames = batch_size, frames
        self.eps = eps
        self.released_normalisation = bool(released_normalisation)
        s_channels, t_channels = tap_channels(student), tap_channels(teacher)
        self.set_sizes = {s: (len(s_channels[s]), len(t_channels[s])) for s in SET_NAMES}
        stages = list(SET_NAMES) + (["inter"] if self.inter else [])
        sizes = dict(self.set_sizes, inter=(len(SET_NAMES), len(SET_NAMES)))
        if calibration == "learned":
            self.calibration = nn.ModuleDict({
                stage: TFCalibration(*sizes[stage], frames=frames, batch_size=batch_size,
                                     released_normalisation=released_normalisation,
                                     streams=streams)
                for stage in stages})
        else:
            self.calibration = None
        if self.inter:
            c_s, c_t = student.config.channels, teacher.config.channels
            self.student_fusion = nn.ModuleDict({
                s: FusionChain(s, s_channels[s], c_s, fusion_mid_channels,
                               checkpoint=fusion_checkpoint) for s in SET_NAMES})
            self.teacher_fusion = nn.ModuleDict({
                s: FusionChain(s, t_channels[s], c_t, fusion_mid_channels, detach_inputs=True,
                               checkpoint=fusion_checkpoint)
                for s in SET_NAMES})
            if calibration == "uniform" and not train_teacher_fusion:
                self.teacher_fusion.requires_grad_(False)
        else:
            self.student_fusion = self.teacher_fusion = None
        # the inter-set block whose gradient alone trains the teacher's chains (see above)
        self.fusion_trainer = TFCalibration(
            *sizes["inter"], frames=frames, batch_size=batch_size, streams=streams,
            released_normalisation=released_normalisation) if train_teacher_fusion else None

    def check_batch(self, noisy: torch.Tensor) -> None:
        block = (self.calibration["encoder"] if self.calibration is not None
                 else self.fusion_trainer)
        if block is not None:
            block.check_batch(noisy.shape[0], noisy.shape[2])

    def _grams(self, rel: list, detach: bool = False) -> dict[str, torch.Tensor]:
        grams = {stream: torch.stack([getattr(r, f"{stream}_gram") for r in rel])
                 for stream in self.streams}
        return {k: v.detach() for k, v in grams.items()} if detach else grams

    def _weights(self, stage: str, s_rel: list, t_rel: list) -> dict[str, torch.Tensor]:
        if self.calibration is None:
            ref = s_rel[0].time if s_rel[0].time is not None else s_rel[0].freq
            w = uniform_weights(ref.shape[0], ref.shape[1], len(s_rel), len(t_rel),
                                device=ref.device, dtype=ref.dtype)
            if stage != "inter" or self.fusion_trainer is None:
                return {stream: w for stream in self.streams}
            # value 1/n_t exactly, gradient the learned block's (class docstring)
            learned = self.fusion_trainer(self._grams(s_rel, detach=True), self._grams(t_rel))
            return {stream: w + (getattr(learned, stream) - getattr(learned, stream).detach())
                    for stream in self.streams}
        weights = self.calibration[stage](self._grams(s_rel), self._grams(t_rel))
        return {stream: getattr(weights, stream) for stream in self.streams}

    def _stage_loss(self, stage: str, s_rel: list, t_rel: list) -> torch.Tensor:
        weights = self._weights(stage, s_rel, t_rel)
        self.last_weights[stage] = {k: v.detach() for k, v in weights.items()}
        stack = lambda rel, stream: torch.stack([getattr(r, stream) for r in rel])  # noqa: E731
        student = {s: stack(s_rel, s) for s in self.streams}
        teacher = {s: stack(t_rel, s) for s in self.streams}
        loss, terms = calibrated_set_loss(student, teacher, weights, return_terms=True)
        self.last_terms[stage] = {k: v.detach() for k, v in terms.items()}
        return loss

    def _relations(self, taps: dict) -> dict[str, list]:
        flat = [tap for s in SET_NAMES for tap in taps[s]]
        rel = layer_relations(flat, self.eps, time="time" in self.streams,
                              freq="freq" in self.streams)
        out, start = {}, 0
        for s in SET_NAMES:
            out[s] = rel[start:start + len(taps[s])]
            start += len(taps[s])
        return out

    def kd_losses(self, noisy, clean, student_out, student_taps, teacher_out, teacher_taps):
        for side, taps in (("student", student_taps), ("teacher", teacher_taps)):
            got = {s: len(taps[s]) for s in SET_NAMES}
            want = {s: self.set_sizes[s][0 if side == "student" else 1] for s in SET_NAMES}
            if got != want:
                raise ValueError(f"the {side} returned taps {got}, this distiller was built for "
                                 f"{want}")
        s_rel = self._relations(student_taps)
        t_rel = self._relations(teacher_taps)
        losses = {s: self._stage_loss(s, s_rel[s], t_rel[s]) for s in SET_NAMES}
        if self.inter:
            losses["inter"] = self._stage_loss("inter", *self._inter_relations(student_taps,
                                                                               teacher_taps))
        return losses

    def _inter_relations(self, student_taps: dict, teacher_taps: dict) -> tuple[list, list]:
        """Relations of the fused maps ``[O_E, O_M, O_D]`` of each side (the inter-set stage)."""
        fused_s = [self.student_fusion[s](student_taps[s]) for s in SET_NAMES]
        fused_t = [self.teacher_fusion[s](teacher_taps[s]) for s in SET_NAMES]
        want_time, want_freq = "time" in self.streams, "freq" in self.streams
        return (layer_relations(fused_s, self.eps, time=want_time, freq=want_freq),
                layer_relations(fused_t, self.eps, time=want_time, freq=want_freq))

    @torch.no_grad()
    def calibration_weights(self, noisy: torch.Tensor) -> dict[str, dict[str, torch.Tensor]]:
        """Calibration weights ``{stage: {stream: [B, T, n_s, n_t]}}`` for one batch (no grad).

        Notebook: 04_calibration_weights.ipynb
        """
        self.check_batch(noisy)
        s_out, s_taps, t_out, t_taps = self.run_models(noisy)
        with full_precision():
            self.kd_losses(noisy, None, s_out, s_taps, t_out, t_taps)
        return {k: dict(v) for k, v in self.last_weights.items()}

    @torch.no_grad()
    def pair_divergences(self, noisy: torch.Tensor) -> dict[str, dict[str, torch.Tensor]]:
        """Uncalibrated pair divergences ``{stage: {stream: [n_s, n_t]}}`` for one batch.

        Notebook: 04_calibration_weights.ipynb

        Entry ``(i, j)`` is ``L_ij`` of :func:`~tfckd_lite.distill.losses.pairwise_divergence`
        with the whole weight on the pair (every ``α_ij = 1``): how far student layer i's
        relations are from teacher layer j's, averaged over the batch, whatever the calibration
        says. ``calibration_agreement`` compares it with the calibration weights: the set loss
        ``Σ_j α_ij L_ij`` pulls each row's weight towards its smallest entry.
        """
        self.check_batch(noisy)
        _, s_taps, _, t_taps = self.run_models(noisy)
        with full_precision():
            s_rel, t_rel = self._relations(s_taps), self._relations(t_taps)
            stages = {s: (s_rel[s], t_rel[s]) for s in SET_NAMES}
            if self.inter:
                stages["inter"] = self._inter_relations(s_taps, t_taps)
        out: dict[str, dict[str, torch.Tensor]] = {}
        for stage, (student, teacher) in stages.items():
            out[stage] = {}
            for stream in self.streams:
                s_stack = torch.stack([getattr(r, stream) for r in student])
                t_stack = torch.stack([getattr(r, stream) for r in teacher])
                every_pair = s_stack.new_ones(s_stack.shape[1], s_stack.shape[2],
                                              len(student), len(teacher))
                out[stage][stream] = pairwise_divergence(s_stack, t_stack, every_pair, stream)
        return out

    def calibration_summary(self, noisy: torch.Tensor) -> dict | None:
        """The learned weights on one batch, averaged over utterances and frames, as plain lists
        ``{stage: {stream: [[w_ij] * n_t] * n_s]}}`` (JSON-ready); ``None`` when calibration is
        uniform (nothing is learned).

        Notebook: 04_calibration_weights.ipynb

        ``train`` stores this for a fixed batch before training and after every epoch
        (``history.json``: ``calibration_initial`` in the first record, ``calibration`` in
        each), so the course of the weights over a whole run can be plotted afterwards.
        """
        if self.calibration is None:
            return None
        weights = self.calibration_weights(noisy)
        return {stage: {stream: w.mean(dim=(0, 1)).tolist() for stream, w in by_stream.items()}
                for stage, by_stream in weights.items()}

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, streams={self.streams}, "
                f"calibration={self.calibration_mode!r}, inter={self.inter}, "
                f"train_teacher_fusion={self.fusion_trainer is not None}, "
                f"batch_size={self.batch_size}, frames={self.frames}")
