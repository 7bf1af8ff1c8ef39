"""Build the reduced offline dataset in the VoiceBank+DEMAND layout, deterministically.

Notebook: 01_signals_and_data.ipynb

``build_dataset(out_dir, profile, seed)`` writes::

    out_dir/
      clean_trainset_wav/  noisy_trainset_wav/  log_trainset.txt
      clean_validset_wav/  noisy_validset_wav/  log_validset.txt
      clean_testset_wav/   noisy_testset_wav/   log_testset.txt
      manifest.json        (profile, seed, sources used, per-split statistics, sha256 per file)

All audio is 16 kHz mono 16-bit PCM. Log lines are ``<utt> <noise> <snr>`` as in VoiceBank, and
the logged SNR is the one measured on the written files (to within 0.001 dB).

**Speech.** Recorded asterisk prompts (``speech.py``) are concatenated, with short pauses, into
utterances of ``min_seconds``-``max_seconds``. Train and validation use Allison and IvrvoiceRU
(disjoint prompts: about 10 % of each speaker's prompts are kept for validation), test uses June
and Carlo, so the test speakers are unseen. A share of every split (``synthetic_fraction``)
comes from espeak-ng voices, again with disjoint training and test voices. Without the asterisk
packages the whole set is synthetic and the manifest says so.

**Noise.** Train and validation: white, pink, brown, hum, babble, knocks, gusts at 0/5/10/15 dB.
Test: pink, babble (seen types, new draws) and fan, clicks (unseen types) at 2.5/7.5/12.5/17.5
dB. Babble is always made of training speakers. Knocks and gusts (builder version 3) give
training the impulsive and non-stationary families that the unseen test types belong to; see
``noise.py`` for why and how they differ from clicks and fan.

**Determinism.** Every utterance is a pure function of (profile, seed, split, index) and of the
installed sources, so the same inputs give byte-identical files whatever the number of workers.
Files are written atomically and the manifest last; a re-run verifies every hash and skips the
build when all match, and rebuilds otherwise (an interrupted build has no manifest).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import sys
import threading
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..audio import SAMPLE_RATE, wav_bytes
from ..files import atomic_write_bytes, folder_lock, sha256_bytes, sha256_file
from . import speech
from .manifest import FORMAT, load_manifest, manifest_path, write_manifest
from .noise import make_noise

BUILDER_VERSION = 3                   # bump whenever a change alters the files built
BUILD_LOCK = ".build.lock"            # held while a set is built or verified (folder_lock)
MARKER = ".tfckd_lite_build"          # present from the first byte written by a build
SPLITS = ("train", "valid", "test")
SPLIT_FOLDERS = {
    "train": ("clean_trainset_wav", "noisy_trainset_wav", "log_trainset.txt"),
    "valid": ("clean_validset_wav", "noisy_validset_wav", "log_validset.txt"),
    "test": ("clean_testset_wav", "noisy_testset_wav", "log_testset.txt"),
}
SNR_GRID = {"train": (0.0, 5.0, 10.0, 15.0), "valid": (0.0, 5.0, 10.0, 15.0),
            "test": (2.5, 7.5, 12.5, 17.5)}
NOISE_GRID = {"train": ("white", "pink", "brown", "hum", "babble", "knocks", "gusts"),
              "valid": ("white", "pink", "brown", "hum", "babble", "knocks", "gusts"),
              "test": ("pink", "babble", "fan", "clicks")}
NAME_PREFIX = {"train": "tr", "valid": "va", "test": "te"}
VALID_PROMPT_SHARE = 10               # 1 in 10 prompts of each training speaker -> validation
LEVEL_DB = (-31.0, -21.0)             # clean RMS level in dBFS, drawn per utterance
SNR_TOLERANCE_DB = 1e-3


class MissingSourceWarning(UserWarning):
    """A speech source is not installed; the dataset is built from the others."""


@dataclass(frozen=True)
class Profile:
    """Size and clip lengths of a reduced dataset (see :data:`PROFILES`).

    Notebook: 01_signals_and_data.ipynb
    """

    name: str
    train: int
    valid: int
    test: int
    min_seconds: float
    max_seconds: float
    synthetic_fraction: float      # share of espeak utterances when recorded speech is present
    babble_pool: int               # training utterances available to babble
    purpose: str

    def pairs(self, split: str) -> int:
        """Number of pairs of ``split``.

        Notebook: 01_signals_and_data.ipynb
        """
        return getattr(self, split)


PROFILES: dict[str, Profile] = {
    "mini": Profile("mini", 64, 16, 16, 1.0, 2.5, 0.25, 16,
                    "CI and quick notebook runs: builds in seconds"),
    "small": Profile("small", 2500, 200, 300, 1.0, 4.0, 0.25, 64,
                     "real training on a CPU: thousands of pairs in about a minute"),
}


# --------------------------------------------------------------------------------------------
# sources


def describe_sources(asterisk_root=None, use_asterisk: bool = True,
                     use_espeak: bool = True) -> dict:
    """What speech is available: recorded speakers (with prompt counts) and espeak-ng.

    Notebook: 01_signals_and_data.ipynb
    """
    root = speech.asterisk_root(asterisk_root)
    prompts = speech.find_asterisk_prompts(root) if use_asterisk else {}
    listing = hashlib.sha256("\n".join(f"{p.relpath} {p.num_samples}" for v in prompts.values()
                                       for p in v).encode()).hexdigest()
    version = speech.espeak_version() if use_espeak else None
    return {
        "asterisk": {"root": str(root), "enabled": use_asterisk,
                     "speakers": {k: len(v) for k, v in prompts.items()},
                     "missing": [k for k in speech.ASTERISK_SPEAKERS if k not in prompts],
                     "prompt_list_sha256": listing},
        "espeak": {"enabled": use_espeak, "available": version is not None,
                   "version": version},
        "_prompts": prompts,
    }


def _software_versions() -> dict:
    import av
    import soxr

    return {"numpy": np.__version__, "soxr": soxr.__version__, "av": av.__version__,
            "python": "%d.%d" % sys.version_info[:2]}


# --------------------------------------------------------------------------------------------
# planning: a list of item descriptions per split, cheap and deterministic


def _rng(seed: int, *keys) -> np.random.Generator:
    words = [int(seed)] + [int.from_bytes(hashlib.sha256(str(k).encode()).digest()[:4], "little")
                           for k in keys]
    return np.random.default_rng(words)


def _prompt_split(prompt: speech.Prompt) -> str:
    digest = int.from_bytes(hashlib.sha256(prompt.relpath.encode()).digest()[:4], "little")
    return "valid" if digest % VALID_PROMPT_SHARE == 0 else "train"


def _prompt_pools(prompts: dict, profile: Profile) -> dict[str, dict[str, list]]:
    """{split: {speaker: [eligible prompts]}} with the speaker-disjoint test split."""
    longest = profile.max_seconds - 0.3
    pools: dict[str, dict[str, list]] = {s: {} for s in SPLITS}
    for key, items in prompts.items():
        eligible = [p for p in items if 0.4 <= p.duration <= longest]
        if key in speech.RECORDED_TEST_SPEAKERS:
            if eligible:
                pools["test"][key] = eligible
        elif key in speech.RECORDED_TRAIN_SPEAKERS:
            for split in ("train", "valid"):
                chosen = [p for p in eligible if _prompt_split(p) == split]
                if chosen:
                    pools[split][key] = chosen
    return pools


def recorded_speech_pools(profile: str = "small", asterisk_root=None) -> dict:
    """How much recorded speech each split of ``profile`` draws from, per speaker.

    Notebook: 01_signals_and_data.ipynb

    Returns ``{split: {speaker: {"prompts": n, "minutes": m}}}``: the installed asterisk
    prompts that fit the profile's utterance lengths, split as the builder splits them
    (test speakers apart; 1 in 10 prompts of each training speaker kept for validation).
    Utterances are drawn from these prompts with replacement, so the pools, not the number of
    pairs, bound how much distinct recorded speech a model hears (the README's account of the
    teacher's SI-SDR gain uses this; ``python -m tfckd_lite data sources --profile small``).
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {sorted(PROFILES)}")
    prompts = speech.find_asterisk_prompts(speech.asterisk_root(asterisk_root))
    pools = _prompt_pools(prompts, PROFILES[profile])
    return {split: {key: {"prompts": len(items),
                          "minutes": round(sum(p.duration for p in items) / 60, 1)}
                    for key, items in by_speaker.items()}
            for split, by_speaker in pools.items()}


def _plan_recorded(rng, pool: list, profile: Profile) -> dict:
    target = rng.uniform(profile.min_seconds, profile.max_seconds)
    lead = rng.uniform(0.05, 0.2)
    total, parts, gaps = lead, [], []
    for _ in range(12):
        prompt = pool[int(rng.integers(len(pool)))]
        gap = rng.uniform(0.1, 0.35) if parts else 0.0
        if parts and total + gap + prompt.duration + 0.1 > profile.max_seconds:
            continue
        parts.append(prompt.relpath)
        gaps.append(int(round(gap * SAMPLE_RATE)))
        total += gap + prompt.duration
        if total >= target:
            break
    return {"prompts": parts, "gaps": gaps, "lead": int(round(lead * SAMPLE_RATE))}


def _plan_synthetic(rng, voice: speech.SyntheticSpeaker, profile: Profile) -> dict:
    short = rng.uniform(profile.min_seconds, profile.max_seconds) < 2.5
    return {"text": speech.make_sentence(rng, short=short), "voice": voice.voice,
            "rate": int(voice.rate + rng.integers(-10, 11)),
            "pitch": int(np.clip(voice.pitch + rng.integers(-4, 5), 0, 99)),
            "range": voice.range, "seed": int(rng.integers(1, 2**31 - 1)),
            "lead": int(round(rng.uniform(0.05, 0.2) * SAMPLE_RATE))}


def _balanced(rng, values, count: int) -> list:
    """``count`` draws in which every value appears equally often (+-1), in random order."""
    cycles = -(-count // len(values))
    order = np.concatenate([rng.permutation(len(values)) for _ in range(cycles)])[:count]
    return [values[int(i)] for i in order]


def plan_dataset(profile: Profile, seed: int, prompts: dict, use_espeak: bool) -> dict:
    """Describe every utterance of every split (speaker, speech parts, noise, SNR, level).

    Notebook: 01_signals_and_data.ipynb

    Returns ``{"splits": {split: [item, ...]}, "babble": [...], "sources_used": [...]}``.
    Planning reads no audio: prompt durations come from the G.722 file sizes.
    """
    pools = _prompt_pools(prompts, profile)
    splits: dict[str, list[dict]] = {}
    used: set[str] = set()
    for split in SPLITS:
        rng = _rng(seed, "plan", split)
        count = profile.pairs(split)
        recorded = sorted(pools[split])
        synthetic = list(speech.ESPEAK_TEST_SPEAKERS if split == "test"
                         else speech.ESPEAK_TRAIN_SPEAKERS)
        if recorded and use_espeak:
            n_synthetic = int(round(count * profile.synthetic_fraction))
        elif recorded:
            n_synthetic = 0
        elif use_espeak:
            n_synthetic = count
        else:
            raise RuntimeError(f"no speech source for the {split} split: the asterisk packages "
                               f"are missing and espeak-ng is disabled or unavailable. Install "
                               f"the prompts with: {speech.INSTALL_HINT}")
        kinds = ["espeak"] * n_synthetic + ["asterisk"] * (count - n_synthetic)
        order = rng.permutation(count)
        noises = _balanced(rng, NOISE_GRID[split], count)
        snrs = _balanced(rng, SNR_GRID[split], count)
        items, counters = [], {"asterisk": 0, "espeak": 0}
        for position, index in enumerate(order):
            kind = kinds[index]
            k = counters[kind]
            counters[kind] += 1
            item_rng = _rng(seed, "item", split, kind, k)
            if kind == "asterisk":
                speaker = recorded[k % len(recorded)]
                item = {"source": "asterisk", "speaker": speaker,
                        **_plan_recorded(item_rng, pools[split][speaker], profile)}
            else:
                voice = synthetic[k % len(synthetic)]
                item = {"source": "espeak", "speaker": voice.key,
                        **_plan_synthetic(item_rng, voice, profile)}
            used.add(kind)
            noise, snr = noises[position], snrs[position]
            item.update(name=f"{item['speaker']}_{NAME_PREFIX[split]}{position:04d}",
                        split=split, noise=noise, snr=float(snr),
                        level_db=float(item_rng.uniform(*LEVEL_DB)),
                        noise_seed=int(item_rng.integers(0, 2**63 - 1)))
            items.append(item)
        splits[split] = items

    # babble talkers: training speakers only (recorded if present, else synthetic)
    rng = _rng(seed, "babble")
    train_prompts = [p for key in sorted(pools["train"]) for p in pools["train"][key]
                     if p.duration >= 1.0]
    if train_prompts:
        chosen = rng.choice(len(train_prompts), size=min(profile.babble_pool, len(train_prompts)),
                            replace=False)
        babble = [{"source": "asterisk", "prompts": [train_prompts[int(i)].relpath], "gaps": [0],
                   "lead": 0} for i in sorted(chosen)]
    else:
        babble = []
        for i in range(profile.babble_pool):
            voice = speech.ESPEAK_TRAIN_SPEAKERS[i % len(speech.ESPEAK_TRAIN_SPEAKERS)]
            babble.append({"source": "espeak", **_plan_synthetic(_rng(seed, "babble", i), voice,
                                                                 profile), "lead": 0})
    return {"splits": splits, "babble": babble, "sources_used": sorted(used)}


# --------------------------------------------------------------------------------------------
# rendering


_STATE: dict = {}      # speech arrays for the render workers (inherited through fork)


def _trim_silence(x: np.ndarray, threshold: float = 1e-3) -> np.ndarray:
    loud = np.flatnonzero(np.abs(x) > threshold)
    return x[loud[0]:loud[-1] + 1] if loud.size else x


def _assemble(item: dict, decoded: dict, synthesized: dict, max_samples: int) -> np.ndarray:
    if item["source"] == "asterisk":
        pieces = [np.zeros(item["lead"], np.float32)]
        for relpath, gap in zip(item["prompts"], item["gaps"]):
            pieces.append(np.zeros(gap, np.float32))
            pieces.append(decoded[relpath])
    else:
        pieces = [np.zeros(item["lead"], np.float32),
                  _trim_silence(synthesized[_job_key(item)])]
    pieces.append(np.zeros(int(0.1 * SAMPLE_RATE), np.float32))
    x = np.concatenate(pieces).astype(np.float64)
    if len(x) > max_samples:
        x = x[:max_samples]
        fade = int(0.02 * SAMPLE_RATE)
        x[-fade:] *= np.linspace(1.0, 0.0, fade)
    return x


def _job_key(item: dict) -> str:
    return json.dumps([item["text"], item["voice"], item["rate"], item["pitch"], item["range"],
                       item["seed"]])


def _quantized_mixture(clean: np.ndarray, noise: np.ndarray, snr: float):
    """int16 clean and noisy whose measured SNR equals ``snr`` (after quantisation)."""
    from .noise import mix_at_snr

    clean, noisy = mix_at_snr(clean, noise, snr)
    clean_q = np.rint(clean * 32768.0).astype(np.int64)
    scaled = (noisy - clean) * 32768.0
    for _ in range(5):
        noise_q = np.rint(scaled).astype(np.int64)
        measured = 10 * np.log10(np.sum(clean_q.astype(np.float64) ** 2)
                                 / np.sum(noise_q.astype(np.float64) ** 2))
        if abs(measured - snr) <= SNR_TOLERANCE_DB / 4:
            break
        scaled *= 10 ** ((measured - snr) / 20)
    noisy_q = clean_q + noise_q
    if np.abs(noisy_q).max() > 32767 or np.abs(clean_q).max() > 32767:
        raise RuntimeError("mixture clips after quantisation")     # prevented by mix_at_snr
    return clean_q.astype(np.int16), noisy_q.astype(np.int16), float(measured)


def _render(index: tuple[str, int]) -> dict:
    split, position = index
    item = _STATE["splits"][split][position]
    out_dir: Path = _STATE["out_dir"]
    clean = _assemble(item, _STATE["decoded"], _STATE["synthesized"], _STATE["max_samples"])
    clean *= 10 ** (item["level_db"] / 20) / np.sqrt(np.mean(clean ** 2))
    rng = np.random.default_rng(item["noise_seed"])
    noise = make_noise(item["noise"], len(clean), rng, SAMPLE_RATE, speech_pool=_STATE["babble"])
    clean_q, noisy_q, measured = _quantized_mixture(clean, noise, item["snr"])
    clean_dir, noisy_dir, _ = SPLIT_FOLDERS[split]
    hashes = {}
    for folder, samples in ((clean_dir, clean_q), (noisy_dir, noisy_q)):
        data = wav_bytes(samples, SAMPLE_RATE)
        atomic_write_bytes(out_dir / folder / f"{item['name']}.wav", data)
        hashes[f"{folder}/{item['name']}.wav"] = sha256_bytes(data)
    return {"split": split, "position": position, "files": hashes, "snr_measured": measured,
            "samples": int(len(clean_q))}


def _decode_all(relpaths: list[str], root: Path) -> dict[str, np.ndarray]:
    return {rel: speech.decode_g722(root / rel) for rel in relpaths}


def _fingerprint(profile: Profile, seed: int, sources: dict) -> str:
    public = {k: v for k, v in sources.items() if not k.startswith("_")}
    payload = {"format": FORMAT, "builder_version": BUILDER_VERSION, "profile": asdict(profile),
               "seed": seed, "sources": public, "software": _software_versions()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def verify_dataset(root, manifest: dict | None = None) -> list[str]:
    """Check every file against the manifest's sha256; returns a list of problems (empty = intact).

    Notebook: 01_signals_and_data.ipynb

    Also reports audio files in the split folders that the manifest does not list, since a
    loader would pick them up.
    """
    root = Path(root)
    try:
        manifest = manifest or load_manifest(root)
    except (OSError, ValueError) as error:
        return [f"no valid manifest: {error}"]
    problems = []
    for rel, digest in manifest["files"].items():
        path = root / rel
        if not path.is_file():
            problems.append(f"missing: {rel}")
        elif sha256_file(path) != digest:
            problems.append(f"changed: {rel}")
    listed = set(manifest["files"])
    for folder in _audio_folders(listed):
        if (root / folder).is_dir():
            for path in sorted((root / folder).iterdir()):
                rel = f"{folder}/{path.name}"
                if rel not in listed:
                    problems.append(f"not in manifest: {rel}")
    return problems


def _audio_folders(files) -> list[str]:
    """The folders a loader reads audio from: the split folders and those of the listed files."""
    folders = {f for clean_dir, noisy_dir, _ in SPLIT_FOLDERS.values()
               for f in (clean_dir, noisy_dir)}
    folders |= {rel.rsplit("/", 1)[0] for rel in files if "/" in rel}
    return sorted(folders)


def _remove_unlisted(out_dir: Path, keep: set[str]) -> None:
    for folder in _audio_folders(keep):
        base = out_dir / folder
        if base.is_dir():
            for path in base.iterdir():
                if f"{folder}/{path.name}" not in keep and path.is_file():
                    path.unlink()


def _check_target(out_dir: Path) -> None:
    if not out_dir.exists():
        return
    entries = [p for p in out_dir.iterdir() if p.name != BUILD_LOCK]
    if entries and not manifest_path(out_dir).exists() and not (out_dir / MARKER).exists():
        raise FileExistsError(f"{out_dir} is not empty and was not written by build_dataset; "
                              f"choose an empty or new folder (found e.g. {entries[0].name})")


def _say(progress: bool, message: str) -> None:
    if progress:
        print(message, flush=True)


def build_dataset(out_dir, profile: str = "mini", seed: int = 0, progress: bool = True, *,
                  asterisk_root=None, use_asterisk: bool = True, use_espeak: bool = True,
                  workers: int | None = None, force: bool = False) -> Path:
    """Build (or verify and reuse) the reduced dataset ``profile`` in ``out_dir``; returns it.

    Notebook: 01_signals_and_data.ipynb

    ``profile``: ``mini`` or ``small`` (VoiceBank layout, this module), or ``mc-mini`` or
    ``mc-small`` (the simulated multi-channel set in the L3DAS23 layout, ``builder_mc.py``).

    If ``out_dir`` already holds a build of the same profile, seed and sources whose files all
    match their sha256, nothing is written. Otherwise the set is rebuilt (``force=True`` always
    rebuilds). ``asterisk_root`` overrides where the asterisk prompts are looked for
    (``$TFCKD_ASTERISK_SOUNDS``, else ``/usr/share/asterisk/sounds``); ``use_asterisk=False``
    or ``use_espeak=False`` leaves a source out. ``workers`` (default: 2 for sets of 200
    pairs or more, else 1) is the number of processes; it never changes the output.
    """
    from .builder_mc import MC_PROFILES, build_multichannel

    if profile not in PROFILES and profile not in MC_PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of "
                         f"{sorted(PROFILES) + sorted(MC_PROFILES)}")
    out_dir = Path(out_dir)
    started = time.perf_counter()
    sources = describe_sources(asterisk_root, use_asterisk, use_espeak)
    if use_espeak and not sources["espeak"]["available"]:
        warnings.warn("espeak-ng could not be loaded from the espeakng-loader wheel "
                      "(pip install espeakng-loader); building from recorded speech only",
                      MissingSourceWarning, stacklevel=2)
    if use_asterisk and sources["asterisk"]["missing"]:
        missing = ", ".join(sources["asterisk"]["missing"])
        what = ("an espeak-only set" if not sources["asterisk"]["speakers"]
                else "a set without them")
        warnings.warn(f"asterisk prompt packages missing under {sources['asterisk']['root']} "
                      f"(speakers: {missing}); building {what}. To use real recorded speech, "
                      f"install them: {speech.INSTALL_HINT}", MissingSourceWarning, stacklevel=2)
    if profile in MC_PROFILES:
        return build_multichannel(out_dir, MC_PROFILES[profile], seed, sources, progress,
                                  workers, force, started)
    prof = PROFILES[profile]
    fingerprint = _fingerprint(prof, seed, sources)

    def build() -> dict:
        return _build(out_dir, prof, seed, sources, fingerprint, progress, workers)

    return build_or_reuse(out_dir, profile, fingerprint, build, progress, force, started)


def build_or_reuse(out_dir: Path, profile: str, fingerprint: str, build, progress: bool,
                   force: bool, started: float) -> Path:
    """Under the build lock: keep an intact set of the same ``fingerprint``, else ``build()``.

    Notebook: 01_signals_and_data.ipynb

    ``build()`` writes the files and returns the manifest it wrote last; this function first
    refuses a foreign non-empty folder, marks the folder as a build, and removes the old
    manifest and any half-written temporary file. Shared by every profile's builder.
    """
    with folder_lock(out_dir, BUILD_LOCK):
        _check_target(out_dir)
        if not force and manifest_path(out_dir).exists():
            try:
                old = load_manifest(out_dir)
            except (OSError, ValueError):
                old = None
            if old is not None and old.get("fingerprint") == fingerprint:
                problems = verify_dataset(out_dir, old)
                if not problems:
                    _say(progress, f"{out_dir}: {profile} set verified ({len(old['files'])} "
                                   f"files match the manifest), nothing to build")
                    return out_dir
                _say(progress, f"{out_dir}: {len(problems)} problems ({problems[0]}, ...); "
                               f"rebuilding")
            elif old is not None:
                _say(progress, f"{out_dir}: built with other settings or sources; rebuilding")
        (out_dir / MARKER).write_text("written by tfckd_lite.data.build_dataset\n")
        if manifest_path(out_dir).exists():
            manifest_path(out_dir).unlink()          # the old manifest no longer describes the files
        for leftover in out_dir.rglob(".*.tmp"):
            leftover.unlink()
        manifest = build()
        counts = ", ".join(f"{s} {v['pairs']}" for s, v in manifest["splits"].items())
        used = ", ".join(manifest["sources_used"])
        _say(progress, f"{out_dir}: built {profile} set ({counts} pairs; sources: {used}) "
                       f"in {time.perf_counter() - started:.1f} s")
    return out_dir


def default_workers(total: int) -> int:
    """Processes for a set of ``total`` pairs: 2 (or the cores, if fewer) from 200 pairs on.

    Notebook: 01_signals_and_data.ipynb
    """
    return min(2, os.cpu_count() or 1) if total >= 200 else 1


def prepare_speech(plan: dict, sources: dict, progress: bool, workers: int):
    """Decode the planned asterisk prompts and synthesise the espeak utterances of ``plan``.

    Notebook: 01_signals_and_data.ipynb

    Returns ``(decoded, synthesized, babble)``: prompt arrays by relative path, espeak arrays
    by job key, and the babble talkers' float64 signals. The espeak jobs run in child processes
    (a thread waits on them) while this process decodes the prompts.
    """
    from tqdm.auto import tqdm

    items = [it for split in plan["splits"].values() for it in split]
    synth_items = [it for it in items + plan["babble"] if it["source"] == "espeak"]
    jobs, keys = [], []
    for it in synth_items:
        key = _job_key(it)
        if key not in keys:
            keys.append(key)
            jobs.append({k: it[k] for k in ("text", "voice", "rate", "pitch", "range", "seed")})
    synthesized: dict[str, np.ndarray] = {}
    failure: list[BaseException] = []

    def run_espeak():
        try:
            for key, x in zip(keys, speech.synthesize(jobs, workers=max(1, workers))):
                synthesized[key] = x
        except BaseException as error:      # re-raised in the main thread below
            failure.append(error)

    thread = threading.Thread(target=run_espeak, daemon=True)
    if jobs:
        thread.start()
    relpaths = sorted({rel for it in items + plan["babble"] if it["source"] == "asterisk"
                       for rel in it["prompts"]})
    root = Path(sources["asterisk"]["root"])
    decoded = {}
    for rel in tqdm(relpaths, desc="decode prompts", disable=not progress or not relpaths,
                    leave=False):
        decoded[rel] = speech.decode_g722(root / rel)
    if jobs:
        if progress:
            _say(progress, f"synthesising {len(jobs)} espeak-ng utterances ...")
        thread.join()
    if failure:
        raise RuntimeError(f"espeak-ng synthesis failed: {failure[0]}") from failure[0]

    babble = []
    for it in plan["babble"]:
        x = (decoded[it["prompts"][0]] if it["source"] == "asterisk"
             else _trim_silence(synthesized[_job_key(it)]))
        babble.append(x.astype(np.float64))
    return decoded, synthesized, babble


def map_items(function, indices: list, workers: int, progress: bool) -> list:
    """``[function(i) for i in indices]`` in ``workers`` forked processes, with a progress bar.

    Notebook: 01_signals_and_data.ipynb

    The workers inherit the module state set up before the call (fork); where fork is not
    available the items are rendered in this process. The order of the results is that of
    ``indices`` either way.
    """
    from tqdm.auto import tqdm

    results = []
    if workers > 1 and "fork" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("fork")
        with context.Pool(workers) as pool:
            for result in tqdm(pool.imap(function, indices, chunksize=16), total=len(indices),
                               desc="write pairs", disable=not progress, leave=False):
                results.append(result)
    else:
        for index in tqdm(indices, desc="write pairs", disable=not progress, leave=False):
            results.append(function(index))
    return results


def _build(out_dir: Path, prof: Profile, seed: int, sources: dict, fingerprint: str,
           progress: bool, workers: int | None) -> dict:
    plan = plan_dataset(prof, seed, sources["_prompts"], sources["espeak"]["available"])
    total = sum(len(plan["splits"][split]) for split in SPLITS)
    if workers is None:
        workers = default_workers(total)
    decoded, synthesized, babble = prepare_speech(plan, sources, progress, workers)

    # 2. render and write every pair (forked workers inherit the speech arrays)
    _STATE.update(splits=plan["splits"], decoded=decoded, synthesized=synthesized,
                  babble=babble, out_dir=out_dir,
                  max_samples=int(round(prof.max_seconds * SAMPLE_RATE)))
    indices = [(split, i) for split in SPLITS for i in range(len(plan["splits"][split]))]
    try:
        results = map_items(_render, indices, workers, progress)
    finally:
        _STATE.clear()

    # 3. logs, clean-up of stale files, manifest (last)
    files: dict[str, str] = {}
    for result in results:
        files.update(result["files"])
        item = plan["splits"][result["split"]][result["position"]]
        if abs(result["snr_measured"] - item["snr"]) > SNR_TOLERANCE_DB:
            raise RuntimeError(f"{item['name']}: measured SNR {result['snr_measured']:.4f} dB "
                               f"differs from the planned {item['snr']} dB")
        item["seconds"] = round(result["samples"] / SAMPLE_RATE, 4)
    stats = {}
    for split in SPLITS:
        split_items = sorted(plan["splits"][split], key=lambda it: it["name"])
        _, _, log_name = SPLIT_FOLDERS[split]
        log = "".join(f"{it['name']} {it['noise']} {it['snr']:g}\n" for it in split_items)
        atomic_write_bytes(out_dir / log_name, log.encode())
        files[log_name] = sha256_bytes(log.encode())
        seconds = sum(it["seconds"] for it in split_items)
        stats[split] = {
            "pairs": len(split_items), "hours": round(seconds / 3600, 4),
            "speakers": _count(it["speaker"] for it in split_items),
            "sources": _count(it["source"] for it in split_items),
            "noise_types": _count(it["noise"] for it in split_items),
            "snrs": _count(f"{it['snr']:g}" for it in split_items),
        }
    _remove_unlisted(out_dir, set(files))
    public_sources = {k: v for k, v in sources.items() if not k.startswith("_")}
    manifest = {
        "format": FORMAT, "builder_version": BUILDER_VERSION, "fingerprint": fingerprint,
        "profile": prof.name, "seed": seed, "sample_rate": SAMPLE_RATE,
        "profile_settings": asdict(prof), "sources": public_sources,
        "sources_used": plan["sources_used"], "software": _software_versions(),
        "splits": stats,
        "items": {split: [{k: it[k] for k in ("name", "speaker", "source", "noise", "snr",
                                               "seconds")}
                          for it in sorted(plan["splits"][split], key=lambda it: it["name"])]
                  for split in SPLITS},
        "files": dict(sorted(files.items())),
    }
    write_manifest(out_dir, manifest)
    return manifest


def _count(values) -> dict:
    out: dict = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return dict(sorted(out.items()))
