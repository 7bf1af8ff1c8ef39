"""Paper-scale recipes: one TOML file per setting, read into the training config.

Notebook: 03_training.ipynb (the README's "Scaling up" section walks through them)

A recipe file (``tfckd_lite/recipes/<setting>.toml``) holds everything the paper and the
authors' released configurations say about training DPDCRN on one corpus (TFCKD.md section 8),
and the project's guesses for the rest, each value with its source in ``[sources]``: a source
that starts with ``guess:`` marks a guess. Its stages are the paper-size teacher, the student
alone, and the I2S-TFCKD distillation of the student::

    description = "..."
    corpus = "voicebank"          # the layout --data must hold (tfckd_lite.data.detect_kind)
    mics = "AB"                   # L3DAS23 only: which microphones (4 channels each)
    [train]                       # TrainConfig fields shared by every stage
    [sources]                     # field -> where its value comes from ("guess: ..." if guessed)
    [stages.<name>]               # preset, method, kd_weight; its own [stages.<name>.sources]

``python -m tfckd_lite train --recipe SETTING:STAGE --data DIR --out DIR`` trains a stage;
every flag given on the command line overrides the recipe's value. ``--dry-run`` keeps the
recipe's models and method but shrinks the budget to :data:`DRY_RUN` (a few steps of a tiny
batch, one validation clip, on the CPU): it exercises the recipe end to end on the ``mini``
set in seconds, which is what CI runs for every stage of every recipe.
``python -m tfckd_lite recipes [SETTING]`` lists the recipes, or prints one with its sources.

Why TOML: it is in the standard library (``tomllib``), comments survive in the file, and a
recipe is data, not code a user has to trust.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

RECIPES_DIR = Path(__file__).resolve().parent
#: the keys a stage may set besides TrainConfig fields
STAGE_KEYS = ("preset", "method", "kd_weight")
#: the recipe-level keys (besides the [train], [sources] and [stages] tables)
RECIPE_KEYS = ("description", "corpus", "mics")
#: what --dry-run puts in place of the recipe's budget (models, method and λ are kept): a few
#: optimizer steps of a 2 x 0.25 s batch, one validation clip, fp32 on the CPU
DRY_RUN = {"epochs": 1, "steps_per_epoch": 2, "batch_size": 2, "segment_seconds": 0.25,
           "valid_clips": 1, "warmup_steps": 1, "checkpoint_every": 0, "device": "cpu",
           "precision": "fp32", "workers": 0, "grad_accum": 1}
GUESS = "guess:"


class RecipeError(ValueError):
    """A recipe that does not exist or does not hold what a recipe must."""


@dataclass(frozen=True)
class Stage:
    """One stage of a recipe: what ``train --recipe SETTING:STAGE`` runs.

    Notebook: 03_training.ipynb
    """

    setting: str
    name: str
    description: str
    corpus: str
    preset: str
    method: str = "none"
    kd_weight: float | None = None
    mics: str | None = None
    train: dict = field(default_factory=dict)      # TrainConfig field -> value
    sources: dict = field(default_factory=dict)    # any key above -> where its value comes from

    @property
    def spec(self) -> str:
        return f"{self.setting}:{self.name}"

    def guesses(self) -> list[str]:
        """The keys whose value is a guess (their source starts with ``guess:``)."""
        return sorted(k for k, s in self.sources.items() if s.startswith(GUESS))

    def settings(self) -> dict:
        """Every value the stage sets (train fields, model, method, microphones)."""
        values = {"preset": self.preset, "method": self.method, **self.train}
        if self.kd_weight is not None:
            values["kd_weight"] = self.kd_weight
        if self.mics is not None:
            values["mics"] = self.mics
        return values

    def train_config(self, dry_run: bool = False, **overrides):
        """The :class:`~tfckd_lite.train.TrainConfig` of the stage (``overrides`` win)."""
        from ..train import TrainConfig

        values = {**self.train, **(DRY_RUN if dry_run else {}), **overrides}
        known = {f.name for f in dataclasses.fields(TrainConfig)}
        return TrainConfig(**{k: v for k, v in values.items() if k in known})


def recipe_names() -> list[str]:
    """The settings that have a recipe file.

    Notebook: 03_training.ipynb
    """
    return sorted(p.stem for p in RECIPES_DIR.glob("*.toml"))


def load_recipe(setting: str) -> dict[str, Stage]:
    """The stages of a recipe file, checked: ``{stage name: Stage}``.

    Notebook: 03_training.ipynb

    Refused (:class:`RecipeError`) when a key is not a TrainConfig field or a stage key, a
    value has no source, a stage names an unknown preset or method, or the file is not TOML.
    """
    from ..distill import METHODS
    from ..models import PRESETS
    from ..train import TrainConfig

    path = RECIPES_DIR / f"{setting}.toml"
    if not path.is_file():
        raise RecipeError(f"unknown recipe {setting!r}; choose one of {recipe_names()}")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise RecipeError(f"recipe {path} is not valid TOML: {error}") from None
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = set(raw) - {*RECIPE_KEYS, "train", "sources", "stages"}
    unknown |= {f"train.{k}" for k in set(raw.get("train", {})) - train_fields}
    if unknown:
        raise RecipeError(f"recipe {setting}: unknown key(s) {sorted(unknown)}; the [train] "
                          f"table takes TrainConfig fields: {sorted(train_fields)}")
    missing = [k for k in ("description", "corpus") if k not in raw]
    if missing or not raw.get("stages"):
        raise RecipeError(f"recipe {setting}: needs {missing or ''} and at least one "
                          "[stages.NAME] table")
    stages = {}
    for name, table in raw["stages"].items():
        table = dict(table)
        sources = {**raw.get("sources", {}), **table.pop("sources", {})}
        bad = set(table) - {*STAGE_KEYS, *train_fields}
        if bad:
            raise RecipeError(f"recipe {setting}:{name}: unknown key(s) {sorted(bad)}")
        if table.get("preset") not in PRESETS:
            raise RecipeError(f"recipe {setting}:{name}: preset {table.get('preset')!r} is "
                              f"not one of {sorted(PRESETS)}")
        method = table.get("method", "none")
        if method not in METHODS:
            raise RecipeError(f"recipe {setting}:{name}: unknown method {method!r}")
        train = {**raw.get("train", {}), **{k: v for k, v in table.items() if k in train_fields}}
        stage = Stage(setting=setting, name=name, description=raw["description"],
                      corpus=raw["corpus"], preset=table["preset"], method=method,
                      kd_weight=table.get("kd_weight"), mics=raw.get("mics"), train=train,
                      sources=sources)
        # every value a user would take on trust says where it comes from
        unsourced = sorted(k for k in {*train, "mics", "kd_weight", "method"}
                           if k in stage.settings() and k not in sources
                           and not (k == "method" and method == "none"))
        if unsourced:
            raise RecipeError(f"recipe {setting}:{name}: no source for {unsourced}; add them to "
                              "[sources] (prefix 'guess:' for a guess)")
        stages[name] = stage
    return stages


def load_stage(spec: str) -> Stage:
    """``SETTING:STAGE`` (as ``train --recipe`` takes it) -> its :class:`Stage`.

    Notebook: 03_training.ipynb
    """
    setting, sep, name = spec.partition(":")
    stages = load_recipe(setting)
    if not sep or name not in stages:
        raise RecipeError(f"--recipe takes SETTING:STAGE, e.g. {setting}:{next(iter(stages))}; "
                          f"the stages of {setting} are {list(stages)}")
    return stages[name]


def describe(setting: str) -> str:
    """A recipe as text: every stage's values, each with its source (guesses marked).

    Notebook: 03_training.ipynb
    """
    stages = load_recipe(setting)
    first = next(iter(stages.values()))
    lines = [f"{setting}: {first.description}", f"corpus layout: {first.corpus}"]
    for stage in stages.values():
        lines += ["", f"[{stage.spec}]"]
        for key, value in stage.settings().items():
            source = stage.sources.get(key, "")
            lines.append(f"  {key:<17} {value!s:<14} {source}")
    return "\n".join(lines)


def register(subparsers) -> None:
    """``python -m tfckd_lite recipes [SETTING]``: list the recipes, or show one.

    Notebook: 03_training.ipynb
    """
    p = subparsers.add_parser("recipes", help="list the paper-scale training recipes, or show "
                                              "one with the source of every value")
    p.add_argument("setting", nargs="?", help="a recipe to show (default: list them)")
    p.set_defaults(func=_recipes_command)


def _recipes_command(args) -> int:
    if args.setting:
        print(describe(args.setting))
        return 0
    for setting in recipe_names():
        stages = load_recipe(setting)
        print(f"{setting:<18} stages {', '.join(stages)}: {next(iter(stages.values())).description}")
    return 0
