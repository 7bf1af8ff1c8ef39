"""The manifest of a reduced dataset: its file name, its format and its hash.

Notebook: 01_signals_and_data.ipynb

:func:`~tfckd_lite.data.build_dataset` writes ``manifest.json`` last, once every file is in
place; it lists the profile, seed and sources of the set and the sha256 of every file. The
multi-channel sets of ``builder_mc.py`` have the same manifest with their own format tag, since
they are written in the L3DAS23 layout, not the VoiceBank one. Its own
sha256 (:func:`manifest_sha256`) therefore pins the exact data a model was trained on, which
is what a model's description and an experiment folder record. It also pins how the set was
made: the manifest records the versions of the software that rendered it (numpy, scipy,
pyroomacoustics, ...), so a set rebuilt bit for bit under a newer scipy has another manifest
sha256. :func:`files_sha256` is the identity of the data alone (every file's sha256, nothing
else), which an experiment folder compares so that a rebuilt set with the same files is accepted
after a library upgrade (:func:`~tfckd_lite.experiment.check_experiment_folder`).
:func:`plan_sha256` is the identity of what the set was asked to hold, pair by pair (speaker,
source, noise, SNR, for a multi-channel set the room and its RT60), without the bytes: the
single-channel builder writes the same bytes on every machine measured, the multi-channel one
does not (below). This module is the only one that reads or writes the
manifest.

**Bytes across machines.** ``small`` rebuilt on every machine its experiment resumed on had the
recorded manifest sha256. ``mc-small`` built with the same code and the same software versions had
a different :func:`files_sha256` on each of three machines (each machine rebuilding it twice got
its own bytes again), while the input scores of its 200 test scenes agreed to 5e-15 dB SI-SDR and
those of its 100 validation scenes to every printed digit. The rooms' rendering (image sources,
fractional delays, FFT convolution in float32 and float64) is the only part the single-channel
builder lacks; turning off numpy's AVX-512 and AVX2 paths, pinning OpenBLAS' kernel and changing
the number of workers (pyroomacoustics already runs on one thread, ``rooms.py``) did not change
the bytes on one machine, so the cause is not found. Differences at the last bit of a float flip
the rounding of a 16-bit sample only rarely (two builds on one machine, one with numpy's SIMD
paths off, had the same bytes and differed only in a measured SNR of -0.0 against 0.0), so the
differences between machines come from somewhere larger than the last bit of a float64.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..files import atomic_write_bytes, sha256_file

MANIFEST = "manifest.json"
FORMAT = "tfckd_lite.reduced_dataset"                       # the VoiceBank layout (builder.py)
MULTICHANNEL_FORMAT = "tfckd_lite.reduced_multichannel_dataset"   # L3DAS23 layout (builder_mc.py)
FORMATS = (FORMAT, MULTICHANNEL_FORMAT)


def manifest_path(root) -> Path:
    """Where the manifest of the set at ``root`` is (whether or not it exists).

    Notebook: 01_signals_and_data.ipynb
    """
    return Path(root) / MANIFEST


def load_manifest(root) -> dict:
    """The manifest of a reduced dataset; raises FileNotFoundError / ValueError if absent/foreign.

    Notebook: 01_signals_and_data.ipynb
    """
    path = manifest_path(root)
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); rebuild the set") from None
    if not isinstance(manifest, dict) or manifest.get("format") not in FORMATS:
        raise ValueError(f"{path} is not a tfckd_lite reduced-dataset manifest")
    if not isinstance(manifest.get("files"), dict):
        raise ValueError(f"{path} lists no files (damaged manifest); rebuild the set")
    return manifest


def write_manifest(root, manifest: dict) -> Path:
    """Write ``manifest`` atomically as the manifest of the set at ``root``.

    Notebook: 01_signals_and_data.ipynb

    The bytes are a pure function of ``manifest`` (indented JSON, in the order given), so a set
    rebuilt bit for bit has the same :func:`manifest_sha256`.
    """
    if manifest.get("format") not in FORMATS:
        raise ValueError(f"a reduced-dataset manifest has a format of {FORMATS}, got "
                         f"{manifest.get('format')!r}")
    return atomic_write_bytes(manifest_path(root), (json.dumps(manifest, indent=1) + "\n").encode())


def is_reduced_dataset(root) -> bool:
    """Whether ``root`` holds a manifest that says it is a reduced set in the VoiceBank layout.

    Notebook: 01_signals_and_data.ipynb

    A simulated multi-channel set (:data:`MULTICHANNEL_FORMAT`) is not: it is written in the
    L3DAS23 layout, and :func:`~tfckd_lite.data.detect_kind` must find that layout.

    Only the format tag is read, so that a damaged manifest of ours is still recognised as a
    reduced set and then refused in words by :func:`load_manifest`, instead of being taken for
    an unknown layout.
    """
    try:
        manifest = json.loads(manifest_path(root).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == FORMAT


def manifest_sha256(root) -> str | None:
    """sha256 of a reduced dataset's manifest (None for a real corpus, which has none).

    Notebook: 03_training.ipynb

    The manifest lists every file with its own sha256, so this one hash pins the exact data a
    model was trained on.
    """
    try:
        load_manifest(root)                   # validates that it is ours
    except (FileNotFoundError, ValueError):
        return None
    return sha256_file(manifest_path(root))


def files_sha256(root) -> str | None:
    """sha256 of the data alone: the manifest's map of every file to its sha256, as canonical
    JSON (None for a real corpus, which has no manifest).

    Notebook: 03_training.ipynb

    Two builds whose files are byte for byte the same have the same value, whatever software
    versions or build fingerprint their manifests record (:func:`manifest_sha256` differs then).
    """
    try:
        manifest = load_manifest(root)
    except (FileNotFoundError, ValueError):
        return None
    return _canonical_sha256(manifest["files"])


#: fields of a pair's log that the builders measure on the rendered audio (builder_mc.py);
#: the rest is the plan, a pure function of the profile, the seed and the sources
MEASURED_ITEM_FIELDS = ("snr_measured", "rt60_measured", "level_db", "distance")


def plan_sha256(root) -> str | None:
    """sha256 of the plan of every pair: the manifest's log of the pairs without the fields the
    builder measured on the audio (None for a real corpus).

    Notebook: 05_distillation.ipynb

    The plan is what each pair was asked to be: its speaker, utterance source, noise types and
    gains, SNR and, for a multi-channel set, room, RT60 and positions. Two builds of one profile
    and seed with the same sources have the same plan; with the same software they render the
    same scenes, and their bytes may still differ (module docstring), which an experiment
    folder accepts on this evidence.
    """
    try:
        items = load_manifest(root).get("items")
    except (FileNotFoundError, ValueError):
        return None
    if items is None:
        return None
    planned = {split: [{k: v for k, v in item.items() if k not in MEASURED_ITEM_FIELDS}
                       for item in pairs] for split, pairs in items.items()}
    return _canonical_sha256(planned)


def _canonical_sha256(value) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def software_versions(root) -> dict:
    """The versions of the software that built the set at ``root``, as its manifest records
    them (empty for a real corpus).

    Notebook: 01_signals_and_data.ipynb
    """
    try:
        return dict(load_manifest(root).get("software") or {})
    except (FileNotFoundError, ValueError):
        return {}
