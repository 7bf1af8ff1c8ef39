"""What the experiment trains: its configuration, one run of it, and its command line.

Notebook: 05_distillation.ipynb

:class:`ExperimentConfig` holds the experiment's own settings (data, teacher, student, methods,
seeds, λ grids, test clips, parallel runs) and one :class:`~tfckd_lite.train.TrainConfig`, the
budget every run trains with; a :class:`Run` is one method at one λ and one seed, trained by
:func:`~tfckd_lite.train.run_training` in its own :class:`~tfckd_lite.run_folder.RunFolder`.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from ..run_folder import RunFolder
from ..train import TrainConfig, config_argv, flag_text, training_argv

#: methods whose trained distiller (calibration, fusion) ships with the student: those notebook 04
#: draws. The others ship the student only; their extras (up to 2.2 MB each) stay in the run
#: folders and are not committed (experiments/distillation-small/.gitignore).
SHIPPED_EXTRAS = ("tfckd", "tfckd-released")

#: the microphone selections of an L3DAS23-layout corpus (None: a single-channel corpus)
MICS = (None, "A", "B", "AB")

#: training settings that are each run's own, not the experiment's (the runs' seeds are ``seeds``)
PER_RUN_SETTINGS = ("seed",)


class MicrophoneMismatchError(ValueError):
    """The teacher or the student preset takes another number of microphone channels than the
    experiment's corpus gives (with its ``mics``).

    Notebook: 07_multichannel.ipynb
    """


def default_training() -> TrainConfig:
    """The budget of every run of the full experiment: the schedule of the shipped lite student
    baseline (6 epochs of the ``small`` training split as built, batch 8 x 1 s, AdamW 1e-3 with
    200 warm-up steps and cosine decay, 100 validation clips per epoch), with a resume state
    every 50 steps (a run stopped at a session's end loses at most that many).

    Notebook: 05_distillation.ipynb
    """
    return TrainConfig(epochs=6, valid_clips=100, checkpoint_every=50)


@dataclass
class ExperimentConfig:
    """What the experiment trains and how (every method gets exactly this budget).

    Notebook: 05_distillation.ipynb

    ``train`` is the training budget of every run (:func:`default_training` by default; its
    ``seed`` is set per run from ``seeds`` and must stay at its default here). The other
    defaults are the full experiment: three seeds, each method's λ grid of
    :data:`~tfckd_lite.experiment.plan.TUNING_GRIDS` (``kd_weights``: one grid for all)
    extended by up to ``grid_extensions`` factor-10 steps past an end where the best λ lies
    (:func:`~tfckd_lite.experiment.plan.tuned_grid`). ``train.remix_snr=[low, high]`` remixes
    every crop on the fly instead (off by default, like the shipped models: README, "How the
    recipe got here"). ``extra_seeds`` are trained, besides ``seeds``, for the methods of
    ``extra_seed_methods`` only (the leading comparisons rest on more seeds than the rest;
    :meth:`seeds_of`); a resume may add such seeds, never remove them. ``mics`` picks the
    microphones of an L3DAS23-layout corpus (the simulated ``mc-small``: ``"A"``, ``"B"``,
    ``"AB"``; Notebook: 07_multichannel.ipynb) that every run trains on and every score (test,
    teacher, probes) reads (:meth:`open_split`); ``None`` for a single-channel corpus.
    :meth:`to_dict` /
    :meth:`from_dict` give the flat form that ``experiment.json`` and ``results.json`` store.
    """

    data: str
    out: str
    teacher: str = "lite-teacher"
    student: str = "lite-student"
    methods: tuple[str, ...] = ()          # () = every method of distill.METHODS
    seeds: tuple[int, ...] = (0, 1, 2)
    extra_seeds: tuple[int, ...] = ()
    extra_seed_methods: tuple[str, ...] = ()
    kd_weights: tuple[float, ...] | None = None   # None: per-method grids (TUNING_GRIDS)
    grid_extensions: int = 2
    test_clips: int | None = None
    mics: str | None = None                # None: a single-channel corpus
    jobs: int = 1
    devices: tuple[str, ...] = ()          # () = `jobs` slots on train.device
    nproc_per_run: int = 1
    train: TrainConfig = field(default_factory=default_training)

    def __post_init__(self):
        from ..distill import METHODS

        self.methods = tuple(self.methods) or tuple(METHODS)
        self.seeds = tuple(int(s) for s in self.seeds)
        self.extra_seeds = tuple(int(s) for s in self.extra_seeds)
        self.extra_seed_methods = tuple(self.extra_seed_methods)
        if self.kd_weights is not None:
            self.kd_weights = tuple(float(w) for w in self.kd_weights)
        if not isinstance(self.train, TrainConfig):
            raise TypeError(f"train must be a TrainConfig, got {type(self.train).__name__}")
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown method(s) {unknown}; choose from {list(METHODS)}")
        if "none" not in self.methods:
            raise ValueError("the experiment needs method 'none' (the student alone): it is "
                             "the baseline every gap is measured from")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct and non-empty, got {self.seeds}")
        every = self.seeds + self.extra_seeds
        if len(set(every)) != len(every):
            raise ValueError(f"extra_seeds must be distinct and not among seeds, got "
                             f"{self.extra_seeds} beside {self.seeds}")
        outside = [m for m in self.extra_seed_methods if m not in self.methods]
        if outside or len(set(self.extra_seed_methods)) != len(self.extra_seed_methods):
            raise ValueError(f"extra_seed_methods must be distinct methods of the experiment, "
                             f"got {self.extra_seed_methods} (not among methods: {outside})")
        if bool(self.extra_seeds) != bool(self.extra_seed_methods):
            raise ValueError("extra_seeds and extra_seed_methods go together: give both or "
                             f"neither (got {self.extra_seeds} and {self.extra_seed_methods})")
        if self.kd_weights is not None and (not self.kd_weights
                                            or any(w <= 0 for w in self.kd_weights)):
            raise ValueError(f"the λ grid must hold positive values, got {self.kd_weights}")
        if self.mics not in MICS:
            raise ValueError(f"mics must be one of {MICS[1:]} (an L3DAS23-layout corpus) or "
                             f"None (a single-channel one), got {self.mics!r}")
        if self.jobs < 1:
            raise ValueError(f"jobs must be at least 1, got {self.jobs}")
        self.devices = tuple(str(d).strip() for d in self.devices)
        if any(not d for d in self.devices):
            raise ValueError(f"devices has an empty entry: {','.join(self.devices)!r}")
        if self.nproc_per_run < 1:
            raise ValueError(f"nproc_per_run must be at least 1, got {self.nproc_per_run}")
        if len(self.devices) % self.nproc_per_run:
            raise ValueError(f"{len(self.devices)} device(s) do not split into runs of "
                             f"nproc_per_run={self.nproc_per_run} processes")
        if self.devices and self.jobs not in (1, len(self.slots())):
            raise ValueError(f"jobs={self.jobs} but devices give {len(self.slots())} slot(s); "
                             "give one of them (repeat a device for several runs on it)")
        if self.train.grad_accum % self.nproc_per_run:
            # W ranks of grad_accum K step like one process of grad_accum W*K: a run of
            # nproc_per_run ranks keeps the budget's step only if they share its grad_accum
            raise ValueError(f"nproc_per_run={self.nproc_per_run} must divide grad_accum="
                             f"{self.train.grad_accum}: each rank accumulates grad_accum / "
                             "nproc_per_run micro-batches so that a step is unchanged")
        if self.grid_extensions < 0:
            raise ValueError(f"grid_extensions must be 0 or more, got {self.grid_extensions}")
        for name in PER_RUN_SETTINGS:
            if getattr(self.train, name) != getattr(TrainConfig(), name):
                raise ValueError(f"train.{name} is set per run (the experiment's seeds are "
                                 f"`seeds`); leave it at its default")

    def seeds_of(self, method: str) -> tuple[int, ...]:
        """The seeds ``method`` is trained with: ``seeds``, then ``extra_seeds`` for the methods
        of ``extra_seed_methods``."""
        return self.seeds + (self.extra_seeds if method in self.extra_seed_methods else ())

    def slots(self) -> list[tuple[str, ...]]:
        """The devices of each slot (one run at a time each): ``devices`` cut into groups of
        ``nproc_per_run`` (one device per rank), else ``jobs`` slots of ``train.device``."""
        n = self.nproc_per_run
        if not self.devices:
            return [(self.train.device,) * n] * self.jobs
        return [self.devices[i:i + n] for i in range(0, len(self.devices), n)]

    def corpus_options(self) -> dict:
        """The keyword arguments of :func:`~tfckd_lite.data.open_corpus` (and of
        :func:`~tfckd_lite.train.run_training`) that select the microphones: none for a
        single-channel corpus.

        Notebook: 07_multichannel.ipynb
        """
        from ..train import corpus_options

        return corpus_options(self.mics, None)

    def open_split(self, split: str):
        """Split ``split`` of the experiment's corpus as its runs see it (``mics`` applied).

        Notebook: 07_multichannel.ipynb
        """
        from ..data import open_corpus

        return open_corpus(self.data, split, **self.corpus_options())

    def check_microphones(self) -> int:
        """The corpus's microphone channels as the runs see them, once the teacher and the
        student are known to take that many; raises :class:`MicrophoneMismatchError` otherwise.

        Notebook: 07_multichannel.ipynb

        Called before any training (:func:`~tfckd_lite.experiment.runner.reproduce`): the
        models refuse a wrong channel count only at their first forward pass, i.e. inside the
        first run, after the folder is recorded. The teacher file fixes its channels; a
        multi-channel preset (``lite-student-mc4``) fixes the student's, a single-channel preset
        (``lite-student``) takes the corpus's (as ``train`` builds it). ``mics`` is refused on a
        corpus that is not in the L3DAS23 layout (the loader would ignore it).
        """
        from ..checkpoint import read_model_description
        from ..data import detect_kind
        from ..models import MULTICHANNEL_PRESETS, PRESETS
        from ..train import microphones

        kind = detect_kind(self.data)
        if self.mics is not None and kind != "l3das23":
            raise MicrophoneMismatchError(
                f"mics={self.mics!r} selects microphones of an L3DAS23-layout corpus, but "
                f"{self.data} is a {kind} corpus (single-channel): leave mics out")
        channels = microphones(self.open_split("train"))
        where = f"{self.data} (mics {self.mics or 'default'}) gives {channels} channel(s)"
        teacher = read_model_description(self.teacher_file()).get("config", {})
        if teacher.get("in_channels", 1) != channels:
            raise MicrophoneMismatchError(
                f"the teacher {self.teacher} takes {teacher.get('in_channels', 1)} microphone "
                f"channel(s) but {where}: give a teacher trained on these microphones")
        if self.student not in PRESETS and self.student not in MULTICHANNEL_PRESETS:
            raise KeyError(f"unknown student preset {self.student!r}; choose one of "
                           f"{sorted(PRESETS) + sorted(MULTICHANNEL_PRESETS)}")
        fixed = MULTICHANNEL_PRESETS.get(self.student)
        if fixed is not None and fixed.in_channels != channels:
            raise MicrophoneMismatchError(
                f"the student preset {self.student} takes {fixed.in_channels} microphone "
                f"channels but {where}: pick the preset of that many channels or other mics")
        return channels

    def with_training(self, **changes) -> "ExperimentConfig":
        """A copy whose training budget has ``changes`` (e.g. ``epochs=2``)."""
        return replace(self, train=replace(self.train, **changes))

    def teacher_file(self) -> Path:
        """The teacher's model file, resolved as ``train --teacher`` resolves it."""
        from .. import pretrained

        return pretrained.resolve(self.teacher)

    def to_dict(self) -> dict:
        """The flat form stored in ``experiment.json`` and ``results.json``: the experiment's
        own settings, then the training budget's fields (but the per-run ``seed``)."""
        own = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "train"}
        training = {f.name: getattr(self.train, f.name) for f in fields(TrainConfig)
                    if f.name not in PER_RUN_SETTINGS}
        return {**own, **training}

    @classmethod
    def from_dict(cls, settings: dict) -> "ExperimentConfig":
        """The configuration of a flat :meth:`to_dict` (also of one written before a setting
        existed: a missing training field takes :func:`default_training`'s value)."""
        own = {f.name for f in fields(cls) if f.name != "train"}
        training = {f.name for f in fields(TrainConfig) if f.name not in PER_RUN_SETTINGS}
        unknown = sorted(set(settings) - own - training)
        if unknown:
            raise ValueError(f"unknown experiment setting(s) {unknown}")
        train = replace(default_training(), **{k: v for k, v in settings.items() if k in training})
        return cls(**{k: v for k, v in settings.items() if k in own}, train=train)

    @classmethod
    def default_settings(cls) -> dict:
        """:meth:`to_dict` of the defaults, without ``data`` and ``out`` (which have none):
        what a setting absent from an older record compares as."""
        settings = cls(data="", out="").to_dict()
        return {k: v for k, v in settings.items() if k not in ("data", "out")}


@dataclass(frozen=True)
class Run:
    """One training run of the experiment: a method, its λ (None for 'none') and a seed.

    Notebook: 05_distillation.ipynb
    """

    method: str
    kd_weight: float | None
    seed: int

    def folder(self, cfg: ExperimentConfig) -> Path:
        lam = "" if self.kd_weight is None else f"lam-{self.kd_weight:g}"
        return Path(cfg.out, "runs", self.method, lam, f"seed-{self.seed}")

    def run_folder(self, cfg: ExperimentConfig) -> RunFolder:
        return RunFolder(self.folder(cfg))

    def train_config(self, cfg: ExperimentConfig) -> TrainConfig:
        """The experiment's training budget with this run's seed."""
        return replace(cfg.train, seed=self.seed)

    def training_arguments(self, cfg: ExperimentConfig) -> dict:
        """The keyword arguments of :func:`~tfckd_lite.train.run_training` (and
        :func:`~tfckd_lite.train.training_argv`) besides the config that train this run."""
        distilled = self.kd_weight is not None
        return {"preset": cfg.student, "data": str(cfg.data), "out": str(self.folder(cfg)),
                "method": self.method, "teacher": cfg.teacher if distilled else None,
                "kd_weight": self.kd_weight, "resume": not self.orphaned(cfg),
                **cfg.corpus_options()}

    def argv(self, cfg: ExperimentConfig, device: str | None = None) -> list[str]:
        """Arguments of ``python -m tfckd_lite`` that train this run (on ``device``, default
        ``cfg.train.device``; as one of ``cfg.nproc_per_run`` ranks, each accumulating
        ``grad_accum / nproc_per_run`` micro-batches so that the optimizer step is the
        budget's)."""
        config = replace(self.train_config(cfg), device=device or cfg.train.device,
                         grad_accum=cfg.train.grad_accum // cfg.nproc_per_run)
        return training_argv(config, **self.training_arguments(cfg))

    def orphaned(self, cfg: ExperimentConfig) -> bool:
        """The folder holds files of an unfinished run but not its resume state (e.g. they were
        committed from another machine, where the state is not kept): nothing can be resumed, so
        the run starts over (``train`` would otherwise refuse the folder)."""
        return self.run_folder(cfg).orphaned(cfg.train.epochs)

    def finished(self, cfg: ExperimentConfig) -> bool:
        return self.run_folder(cfg).finished(cfg.train.epochs)




def reproduce_command(cfg: ExperimentConfig) -> str:
    """The command line that reproduces ``cfg`` (stored in the results).

    Notebook: 05_distillation.ipynb

    The settings that differ from the defaults, but those that do not change the results
    (``jobs``, ``devices``, ``nproc_per_run``, ``device``, ``workers``).
    """
    default = ExperimentConfig(data=cfg.data, out=cfg.out)
    args = ["reproduce", "--data", str(cfg.data), "--out", str(cfg.out)]
    for key in ("teacher", "student"):
        if getattr(cfg, key) != getattr(default, key):
            args += ["--" + key, getattr(cfg, key)]
    args += config_argv(cfg.train, defaults=default.train,
                        exclude=(*PER_RUN_SETTINGS, "device", "workers"))
    for key in ("test_clips", "grid_extensions", "mics"):
        if getattr(cfg, key) != getattr(default, key):
            args += ["--" + key.replace("_", "-"), flag_text(getattr(cfg, key))]
    for key in ("methods", "seeds", "kd_weights", "extra_seeds", "extra_seed_methods"):
        if getattr(cfg, key) not in (None, getattr(default, key)):
            args += ["--" + key.replace("_", "-"), *(flag_text(v) for v in getattr(cfg, key))]
    return "python -m tfckd_lite " + shlex.join(args)
