"""A run's training budget, :class:`TrainConfig`, and the command-line flags derived from it.

Notebook: 03_training.ipynb

Every ``train`` (and ``reproduce``) flag is derived from a field of :class:`TrainConfig`: its
type, default and help text (:func:`_option`), so that a new setting is defined once.
:func:`config_argv` writes a config back as flags, and parsing them gives the same config.
"""

from __future__ import annotations

import argparse
from dataclasses import MISSING, dataclass, field, fields

from ..precision import PRECISIONS, check_precision


def _option(default, help: str, **argparse_options):
    """A TrainConfig field: its default, and the help (and any other argparse option, e.g.
    ``nargs``, ``metavar``, ``choices``) of the ``train`` flag derived from it."""
    return field(default=default, metadata={"help": help, **argparse_options})


@dataclass
class TrainConfig:
    """Hyper-parameters of a training run (stored in the checkpoint; a resume must match).

    Notebook: 03_training.ipynb

    Each field is also a flag of ``python -m tfckd_lite train`` (``batch_size`` ->
    ``--batch-size``), derived by :func:`add_config_arguments` from the field's type, default
    and ``help`` metadata; :func:`config_argv` writes a config back as those flags.
    """

    epochs: int = _option(30, "training epochs")
    batch_size: int = _option(8, "crops per forward pass of one process, in every mode (the "
                                 "micro-batch; the calibration blocks are built for it)")
    segment_seconds: float = _option(1.0, "length of a training crop in seconds")
    lr: float = _option(1e-3, "peak learning rate of AdamW")
    weight_decay: float = _option(0.0, "AdamW weight decay")
    warmup_steps: int = _option(200, "steps of linear warm-up before the cosine decay")
    final_lr_ratio: float = _option(0.05, "learning rate at the end, as a share of the peak")
    grad_clip: float = _option(5.0, "gradient-norm clipping threshold")
    seed: int = _option(0, "seed of the initial weights and of the batch order")
    steps_per_epoch: int | None = _option(None, "cap on optimizer steps per epoch (none: the "
                                                "whole training split)")
    valid_clips: int | None = _option(None, "cap on validation utterances per epoch (none: all)")
    checkpoint_every: int = _option(0, "also save the resume state every N steps (0: at the "
                                       "end of each epoch only)")
    device: str = _option("auto", "auto (CUDA when present, else CPU), cpu, cuda, cuda:N; under "
                                  "torchrun each process takes cuda:LOCAL_RANK")
    remix_snr: list[float] | None = _option(
        None, "remix every training crop on the fly with another pair's noise at an SNR drawn "
              "from [LOW, HIGH] dB (none: the pairs as built; 0 20 is the range measured in "
              "the README)", nargs=2, metavar=("LOW", "HIGH"))
    precision: str = _option("fp32", "fp32, or bf16 / fp16 autocast with fp32 islands "
                                     "(tfckd_lite/precision.py)", choices=list(PRECISIONS))
    grad_accum: int = _option(1, "micro-batches of --batch-size per optimizer step",
                              metavar="K")
    workers: int = _option(0, "processes loading training batches (0: this process); the "
                              "batches are the same")

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1 or self.segment_seconds <= 0 or self.lr <= 0:
            raise ValueError(f"invalid training config: {self}")
        check_precision(self.precision)
        if isinstance(self.grad_accum, bool) or not isinstance(self.grad_accum, int) \
                or self.grad_accum < 1:
            raise ValueError(f"grad_accum must be a positive int, got {self.grad_accum!r}")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 0:
            raise ValueError(f"workers must be an int >= 0, got {self.workers!r}")
        from ..data.loader import check_remix_snr

        checked = check_remix_snr(self.remix_snr)
        # a list, so that the config compares equal to itself after a JSON round trip (resume)
        self.remix_snr = None if checked is None else list(checked)

    @property
    def segment_frames(self) -> int:
        """STFT frames of a training crop (1 s -> 63): the fixed frame count of every batch,
        for which a distiller's calibration blocks are built."""
        from ..stft import segment_frames

        return segment_frames(self.segment_seconds)


#: fields that do not change a run's numbers: a resume may change them
_NOT_COMPARED = ("device", "workers")
#: TrainConfig's field defaults, for comparing with states written before a field existed
_FIELD_DEFAULTS = {f.name: f.default for f in fields(TrainConfig)
                   if f.default is not MISSING and f.name not in _NOT_COMPARED}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _flag_kind(name: str) -> tuple[type, bool, bool]:
    """The element type of TrainConfig field ``name``, whether it holds a list of them and
    whether it may be ``None`` (``int | None`` -> ``(int, False, True)``)."""
    import types
    import typing

    hint = typing.get_type_hints(TrainConfig)[name]
    optional = False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        optional = type(None) in typing.get_args(hint)
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    if typing.get_origin(hint) is list:
        return typing.get_args(hint)[0], True, optional
    return hint, False, optional


def _none_or(kind: type):
    """An argparse type for an optional field: ``none`` gives None, anything else ``kind``."""
    def convert(text: str):
        return None if text.lower() == "none" else kind(text)
    convert.__name__ = kind.__name__          # argparse names it in "invalid int value"
    return convert


def add_config_arguments(parser, defaults: TrainConfig | None = None,
                         exclude: tuple[str, ...] = ()) -> None:
    """Add one flag per :class:`TrainConfig` field to an argparse ``parser`` (or group).

    Notebook: 03_training.ipynb

    ``--batch-size`` for ``batch_size``: the type comes from the field's annotation (a list
    field takes several values), the help and any other argparse option from its metadata, the
    default from ``defaults`` (the dataclass defaults when ``None``). ``exclude``: fields that
    the command sets otherwise (e.g. ``reproduce`` sets each run's ``seed``).
    """
    defaults = defaults or TrainConfig()
    for f in fields(TrainConfig):
        if f.name in exclude:
            continue
        kind, many, optional = _flag_kind(f.name)
        options = dict(f.metadata)
        if "help" in options:       # the default is the command's (e.g. reproduce's), not ours
            options["help"] += " (default: %(default)s)"
        if kind is bool:             # --flag / --no-flag
            options.setdefault("action", argparse.BooleanOptionalAction)
        else:
            options["type"] = _none_or(kind) if optional and not many else kind
        if many:
            options.setdefault("nargs", "+")
        parser.add_argument(_flag(f.name), default=getattr(defaults, f.name), **options)


def config_from_args(args, **fixed) -> TrainConfig:
    """The :class:`TrainConfig` of parsed flags (:func:`add_config_arguments`); ``fixed``
    gives the fields the command set otherwise.

    Notebook: 03_training.ipynb
    """
    values = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if f.name not in fixed}
    return TrainConfig(**values, **fixed)


def flag_text(value) -> str:
    """A flag's value as text: floats short (``1e-3`` -> ``0.001``) unless that would round.

    Notebook: 03_training.ipynb
    """
    if isinstance(value, float):
        short = f"{value:g}"
        return short if float(short) == value else repr(value)
    return str(value)


def config_argv(config: TrainConfig, defaults: TrainConfig | None = None,
                exclude: tuple[str, ...] = ()) -> list[str]:
    """The flags that set ``config`` (the inverse of :func:`config_from_args`).

    Notebook: 03_training.ipynb

    Every field but those in ``exclude``, in field order, for the flags' defaults of ``train``;
    with ``defaults`` (the flags' defaults of the command, e.g. ``reproduce``'s), only the
    fields that differ from them. A field at ``None`` is left out where ``None`` is its flag's
    default, else written ``none``.
    """
    parser_defaults = defaults or TrainConfig()
    argv: list[str] = []
    for f in fields(TrainConfig):
        value = getattr(config, f.name)
        if f.name in exclude or (defaults is not None and value == getattr(defaults, f.name)):
            continue
        if value is None:
            if getattr(parser_defaults, f.name) is not None:
                if _flag_kind(f.name)[1]:
                    raise ValueError(f"{f.name}=None cannot be written on a command line whose "
                                     f"flag defaults to {getattr(parser_defaults, f.name)!r}")
                argv += [_flag(f.name), "none"]
            continue
        if isinstance(value, bool):
            argv.append(_flag(f.name) if value else "--no-" + _flag(f.name)[2:])
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        argv += [_flag(f.name), *(flag_text(v) for v in values)]
    return argv
