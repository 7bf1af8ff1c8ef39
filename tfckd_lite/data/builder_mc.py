"""Build the simulated reduced L3DAS23 (profiles ``mc-mini``, ``mc-small``), deterministically.

Notebook: 07_multichannel.ipynb

``build_dataset(out_dir, "mc-mini")`` writes, in the layout of L3DAS23 Task 1, so that
``open_corpus(out_dir)`` reads it as ``l3das23`` (``mics="A"``: 4 channels, ``"AB"``: 8)::

    out_dir/
      L3DAS23_Task1_train/data/<id>_A.wav  <id>_B.wav   (4-channel Ambisonics, W Y Z X, SN3D)
      L3DAS23_Task1_train/labels/<id>.wav               (the dry clean speech, mono)
      L3DAS23_Task1_dev/...                             (the test split, as L3DAS23's dev set)
      manifest.json    (profile, seed, sources, every scene and its SNR and RT60, sha256s)

All audio is 16 kHz 16-bit PCM, as L3DAS23's. The loader keeps, as for the real corpus, the 5 %
of the training folder's names with the lowest hash for validation; the builder gives exactly
those names the validation utterances (``corpora.holdout_names``), so validation speech is
disjoint from training speech as in the single-channel set.

**Speech and noise** are planned by ``builder.plan_dataset`` (same speakers, splits, SNR grid
and noise types: test speakers and the test-only noise types fan and clicks appear only in the
test split, babble only ever uses training speakers). Each scene has one to three noise
sources: the first of the planned type, the others drawn from the same split's types, 0 to
6 dB quieter. **Rooms**, microphones, alignment and the SNR definition are ``rooms.py``'s.

**Logged per file** (manifest ``items``): the room, the target RT60 and the RT60 measured on
the target's impulse response (W of mic A), the planned and measured SNR (float, before the
16-bit quantisation), the talker's distance, the noise types, the speaker and the length.
:func:`scene_table` reads them back by name.

**Determinism**: every file is a pure function of (profile, seed, name) and the installed
sources, whatever the number of workers; the build lock, the manifest written last and the
verify-or-rebuild logic are ``builder.build_or_reuse``'s.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..audio import SAMPLE_RATE, wav_bytes
from ..files import atomic_write_bytes, sha256_bytes
from . import rooms
from .builder import (NOISE_GRID, Profile, _assemble, _count, _rng,
                      _software_versions, build_or_reuse, default_workers, map_items,
                      plan_dataset, prepare_speech)
from .corpora import holdout_count, holdout_names
from .manifest import MULTICHANNEL_FORMAT, load_manifest, write_manifest
from .noise import make_noise

MC_BUILDER_VERSION = 1                # bump whenever a change alters the files built
FOLDERS = {"train": "L3DAS23_Task1_train", "test": "L3DAS23_Task1_dev"}
FOLDER_OF_SPLIT = {"train": "train", "valid": "train", "test": "test"}
NAME_PREFIX = {"train": "tr", "test": "te"}
EXTRA_NOISE_DB = (-6.0, 0.0)          # level of the second and third noise source
PEAK = 0.99                           # files are scaled down (all together) above this peak
SNR_TOLERANCE_DB = 1e-6               # planned against measured, in float


@dataclass(frozen=True)
class MultichannelProfile:
    """Size and clip lengths of a simulated multi-channel set (see :data:`MC_PROFILES`).

    Notebook: 07_multichannel.ipynb

    ``train`` counts the pairs of the training folder, validation included (the loader holds
    out 5 % of them); ``test`` those of the dev folder.
    """

    name: str
    train: int
    test: int
    min_seconds: float
    max_seconds: float
    synthetic_fraction: float
    babble_pool: int
    purpose: str

    def pairs(self, split: str) -> int:
        """Number of pairs of ``split`` (``train``, ``valid`` or ``test``) as the loader sees them.

        Notebook: 07_multichannel.ipynb
        """
        held = holdout_count(self.train)
        return {"train": self.train - held, "valid": held, "test": self.test}[split]

    def speech_profile(self) -> Profile:
        """The single-channel profile whose plan supplies this set's speech and noise.

        Notebook: 07_multichannel.ipynb
        """
        return Profile(self.name, self.pairs("train"), self.pairs("valid"), self.test,
                       self.min_seconds, self.max_seconds, self.synthetic_fraction,
                       self.babble_pool, self.purpose)


MC_PROFILES: dict[str, MultichannelProfile] = {
    "mc-mini": MultichannelProfile("mc-mini", 32, 8, 1.0, 2.5, 0.25, 16,
                                   "CI and notebook 07: builds in seconds"),
    "mc-small": MultichannelProfile("mc-small", 2000, 200, 1.5, 3.5, 0.25, 64,
                                    "training the multi-channel models on a CPU: minutes"),
}


# --------------------------------------------------------------------------------------------
# planning


def plan_multichannel(profile: MultichannelProfile, seed: int, prompts: dict,
                      use_espeak: bool) -> dict:
    """Every file of the set: its folder and name, speech, scene, noise sources, SNR and level.

    Notebook: 07_multichannel.ipynb

    Returns ``{"folders": {"train": [item, ...], "test": [...]}, "babble": [...],
    "sources_used": [...]}``; each item keeps the ``split`` (train/valid/test) of its speech.
    """
    speech_plan = plan_dataset(profile.speech_profile(), seed, prompts, use_espeak)
    planned = speech_plan["splits"]
    names = {folder: [f"{NAME_PREFIX[folder]}{i:05d}" for i in range(count)]
             for folder, count in (("train", profile.train), ("test", profile.test))}
    held = holdout_names(names["train"])
    queues = {split: iter(items) for split, items in planned.items()}
    folders: dict[str, list[dict]] = {}
    for folder, folder_names in names.items():
        items = []
        for name in folder_names:
            split = "test" if folder == "test" else ("valid" if name in held else "train")
            item = dict(next(queues[split]))
            rng = _rng(seed, "scene", name)
            count = int(rng.integers(rooms.NOISE_SOURCES[0], rooms.NOISE_SOURCES[1] + 1))
            grid = NOISE_GRID[split]
            kinds = [item["noise"]] + [grid[int(rng.integers(len(grid)))]
                                       for _ in range(count - 1)]
            gains = [0.0] + [round(float(rng.uniform(*EXTRA_NOISE_DB)), 2)
                             for _ in range(count - 1)]
            item.update(name=name, folder=folder, split=split,
                        scene=rooms.draw_scene(rng, count),
                        noise_sources=[{"type": k, "gain_db": g,
                                        "seed": int(rng.integers(0, 2**63 - 1))}
                                       for k, g in zip(kinds, gains)],
                        tail_seed=int(rng.integers(0, 2**63 - 1)))
            items.append(item)
        folders[folder] = items
    return {"folders": folders, "babble": speech_plan["babble"],
            "sources_used": speech_plan["sources_used"], "splits": planned}


# --------------------------------------------------------------------------------------------
# rendering

_STATE: dict = {}      # speech arrays for the render workers (inherited through fork)


def render_item(item: dict, decoded: dict, synthesized: dict, babble: list,
                max_samples: int) -> dict:
    """The label ``[N]``, the 8-channel ``noisy`` ``[8, N]`` (floats in [-1, 1]) and the logs.

    Notebook: 07_multichannel.ipynb

    A pure function of the planned ``item`` and the speech arrays: the builder writes what it
    returns, and a test can render an item again to check the files and the logged values.
    """
    clean = _assemble(item, decoded, synthesized, max_samples)
    clean *= 10 ** (item["level_db"] / 20) / np.sqrt(np.mean(clean ** 2))
    scene = item["scene"]
    length = rooms.noise_length(len(clean), scene)
    noises = [make_noise(source["type"], length, np.random.default_rng(source["seed"]),
                         SAMPLE_RATE, speech_pool=babble) * 10 ** (source["gain_db"] / 20)
              for source in item["noise_sources"]]
    out = rooms.render_scene(clean, noises, scene, item["snr"],
                             np.random.default_rng(item["tail_seed"]))
    peak = max(np.abs(out["noisy"]).max(), np.abs(clean).max())
    scale = min(1.0, PEAK / peak)
    return {"clean": clean * scale, "noisy": out["noisy"] * scale, "snr": out["snr"],
            "rt60": out["rt60"], "distance": out["direct_distance"],
            "level_db": item["level_db"] + 20 * math.log10(scale)}


def file_names(folder: str, name: str) -> dict[str, str]:
    """Relative paths of the files of pair ``name`` in ``folder`` (``train`` or ``test``).

    Notebook: 07_multichannel.ipynb
    """
    base = FOLDERS[folder]
    return {"A": f"{base}/data/{name}_A.wav", "B": f"{base}/data/{name}_B.wav",
            "label": f"{base}/labels/{name}.wav"}


def _render(index: tuple[str, int]) -> dict:
    folder, position = index
    item = _STATE["folders"][folder][position]
    out = render_item(item, _STATE["decoded"], _STATE["synthesized"], _STATE["babble"],
                      _STATE["max_samples"])
    paths = file_names(folder, item["name"])
    hashes = {}
    for key, samples in (("A", out["noisy"][:4]), ("B", out["noisy"][4:]),
                         ("label", out["clean"])):
        data = wav_bytes(samples, SAMPLE_RATE)
        atomic_write_bytes(_STATE["out_dir"] / paths[key], data)
        hashes[paths[key]] = sha256_bytes(data)
    return {"folder": folder, "position": position, "files": hashes, "snr": out["snr"],
            "rt60": out["rt60"], "distance": out["distance"], "level_db": out["level_db"],
            "samples": int(out["noisy"].shape[1])}


# --------------------------------------------------------------------------------------------
# building


def _software() -> dict:
    import pyroomacoustics
    import scipy

    return {**_software_versions(), "scipy": scipy.__version__,
            "pyroomacoustics": pyroomacoustics.__version__}


def _simulation_settings() -> dict:
    return {k: getattr(rooms, k) for k in (
        "SPEED_OF_SOUND", "AMBISONICS_CHANNELS", "MICROPHONES", "MIC_HEIGHT", "MIC_B_OFFSET",
        "RT60_RANGE", "ROOM_RANGES", "TARGET_DISTANCE", "TARGET_HEIGHT", "NOISE_SOURCES",
        "WALL_MARGIN", "MIN_SEPARATION", "MIX_TIME", "FIT_WINDOW", "TAIL_DIRECTIONS")}


def _fingerprint(profile: MultichannelProfile, seed: int, sources: dict) -> str:
    import hashlib

    public = {k: v for k, v in sources.items() if not k.startswith("_")}
    payload = {"format": MULTICHANNEL_FORMAT, "builder_version": MC_BUILDER_VERSION,
               "profile": asdict(profile), "seed": seed, "sources": public,
               "simulation": _simulation_settings(), "software": _software()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def build_multichannel(out_dir: Path, profile: MultichannelProfile, seed: int, sources: dict,
                       progress: bool, workers: int | None, force: bool, started: float) -> Path:
    """Build (or verify and reuse) the simulated multi-channel set; see ``build_dataset``.

    Notebook: 07_multichannel.ipynb
    """
    fingerprint = _fingerprint(profile, seed, sources)

    def build() -> dict:
        return _build(out_dir, profile, seed, sources, fingerprint, progress, workers)

    return build_or_reuse(out_dir, profile.name, fingerprint, build, progress, force, started)


def _build(out_dir: Path, profile: MultichannelProfile, seed: int, sources: dict,
           fingerprint: str, progress: bool, workers: int | None) -> dict:
    from .builder import _remove_unlisted

    plan = plan_multichannel(profile, seed, sources["_prompts"],
                             sources["espeak"]["available"])
    indices = [(folder, i) for folder in FOLDERS for i in range(len(plan["folders"][folder]))]
    if workers is None:
        workers = default_workers(len(indices))
    decoded, synthesized, babble = prepare_speech(plan, sources, progress, workers)
    _STATE.update(folders=plan["folders"], decoded=decoded, synthesized=synthesized,
                  babble=babble, out_dir=out_dir,
                  max_samples=int(round(profile.max_seconds * SAMPLE_RATE)))
    try:
        results = map_items(_render, indices, workers, progress)
    finally:
        _STATE.clear()

    files: dict[str, str] = {}
    logged: dict[str, list[dict]] = {"train": [], "valid": [], "test": []}
    for result in results:
        files.update(result["files"])
        item = plan["folders"][result["folder"]][result["position"]]
        if abs(result["snr"] - item["snr"]) > SNR_TOLERANCE_DB:
            raise RuntimeError(f"{item['name']}: measured SNR {result['snr']:.6f} dB differs "
                               f"from the planned {item['snr']} dB")
        scene = item["scene"]
        logged[item["split"]].append({
            "name": item["name"], "folder": FOLDERS[item["folder"]],
            "speaker": item["speaker"], "source": item["source"],
            "snr": item["snr"], "snr_measured": round(result["snr"], 6),
            "rt60": scene["rt60"], "rt60_measured": round(result["rt60"], 4),
            "noise_types": [s["type"] for s in item["noise_sources"]],
            "noise_gains_db": [s["gain_db"] for s in item["noise_sources"]],
            "distance": round(result["distance"], 3), "room": scene["room"],
            "mic_a": scene["mic_a"], "target": scene["target"], "noises": scene["noises"],
            "level_db": round(result["level_db"], 4),
            "seconds": round(result["samples"] / SAMPLE_RATE, 4)})
    stats = {}
    for split, items in logged.items():
        items.sort(key=lambda it: it["name"])
        rt60 = np.array([it["rt60_measured"] for it in items])
        stats[split] = {
            "pairs": len(items), "folder": FOLDERS[FOLDER_OF_SPLIT[split]],
            "hours": round(sum(it["seconds"] for it in items) / 3600, 4),
            "speakers": _count(it["speaker"] for it in items),
            "sources": _count(it["source"] for it in items),
            "noise_types": _count(k for it in items for k in it["noise_types"]),
            "noise_sources": _count(len(it["noise_types"]) for it in items),
            "snrs": _count(f"{it['snr']:g}" for it in items),
            "rt60_measured": {"min": round(float(rt60.min()), 3),
                              "mean": round(float(rt60.mean()), 3),
                              "max": round(float(rt60.max()), 3)}}
    _remove_unlisted(out_dir, set(files))
    public_sources = {k: v for k, v in sources.items() if not k.startswith("_")}
    manifest = {
        "format": MULTICHANNEL_FORMAT, "builder_version": MC_BUILDER_VERSION,
        "fingerprint": fingerprint, "profile": profile.name, "seed": seed,
        "sample_rate": SAMPLE_RATE, "profile_settings": asdict(profile),
        "simulation": _simulation_settings(), "sources": public_sources,
        "sources_used": plan["sources_used"], "software": _software(), "splits": stats,
        "items": logged, "files": dict(sorted(files.items())),
    }
    write_manifest(out_dir, manifest)
    return manifest


def scene_table(root) -> dict[str, dict]:
    """What the manifest logs for every pair of a simulated set, by pair name.

    Notebook: 07_multichannel.ipynb

    Each entry has the ``split``, room, target and measured RT60, planned and measured SNR,
    noise types, talker distance, speaker and length: what a per-RT60 or per-SNR evaluation
    groups by (the loader's items carry only the name).
    """
    manifest = load_manifest(root)
    if manifest.get("format") != MULTICHANNEL_FORMAT:
        raise ValueError(f"{root} is not a simulated multi-channel set (its manifest has "
                         f"format {manifest.get('format')!r})")
    return {it["name"]: {"split": split, **it}
            for split, items in manifest["items"].items() for it in items}


__all__ = ["MC_PROFILES", "MultichannelProfile", "plan_multichannel", "render_item",
           "file_names", "build_multichannel", "scene_table"]
