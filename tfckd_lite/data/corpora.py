"""One dataset API for paired (noisy, clean) corpora: the reduced set, VoiceBank+DEMAND, DNS, L3DAS23.

Notebook: 01_signals_and_data.ipynb

``open_corpus(root, split)`` recognises the layout under ``root`` and returns a
:class:`PairedDataset` whose items are ``(noisy, clean, name)``: float32 tensors at 16 kHz,
``noisy`` ``[N]`` for single-microphone corpora or ``[M, N]`` for L3DAS23, ``clean`` ``[N]``.

===========  =========================================================================================
kind         layout recognised (pairs by file name)
===========  =========================================================================================
reduced      ``build_dataset`` output: VoiceBank layout with ``*_validset_wav`` and ``manifest.json``
voicebank    ``{clean,noisy}_{train,test}set[_28spk|_56spk]_wav[_16k]/p<spk>_<utt>.wav`` (48 kHz is
             resampled to 16 kHz on load; a ``_16k`` copy is preferred when both exist);
             validation = speakers p226 and p287 of the training set, as is customary
dns          DNS Challenge 2020: ``test_set/synthetic/{no_reverb,with_reverb}/{clean,noisy}/``, or a
             synthesizer output folder with ``clean/`` and ``noisy/``; noisy
             ``..._fileid_<N>.wav`` pairs with clean ``clean_fileid_<N>.wav``
l3das23      ``L3DAS23_Task1_{train100,train360,dev}/data/<id>_A.wav`` (4-channel Ambisonics,
             ``_B`` for the second microphone) with ``labels/<id>.wav`` (mono clean target)
===========  =========================================================================================

Splits: ``train``, ``valid``, ``test`` and ``all``. Where a corpus has no official validation
split (DNS synthesizer output, L3DAS23, a bare folder), ``valid`` is the 5 % (at least one) of
``train`` whose names hash lowest (stable, independent of file order) and ``train`` is the rest.
The DNS test set has only ``test``; a folder without an official test part (DNS synthesizer
output, a bare ``data``/``labels`` folder) gives all its pairs for ``test`` and ``all``. L3DAS23's
``test`` is its ``dev`` set.

Bad input is reported when the dataset is opened (``check=True`` reads every header): unreadable
or empty files are named, unpaired files are listed, stereo files where mono is expected and
lengths that differ by more than ``max_length_mismatch`` samples raise; other sample rates are
resampled and said once. See :mod:`tfckd_lite.audio` for the conversions applied on load.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..audio import SAMPLE_RATE, AudioError, ResampleWarning, audio_info, read_audio
from .manifest import is_reduced_dataset, load_manifest

SPLITS = ("train", "valid", "test", "all")
AUDIO_SUFFIXES = (".wav", ".flac")
VOICEBANK_VALID_SPEAKERS = ("p226", "p287")
HOLDOUT_PERCENT = 5


class CorpusError(ValueError):
    """A corpus folder that cannot be used as it is (layout, pairing, or its audio files)."""


@dataclass(frozen=True)
class PairEntry:
    """One pair of a corpus: its name, the noisy file(s) (channels concatenated), the clean file.

    Notebook: 01_signals_and_data.ipynb
    """

    name: str
    noisy: tuple[Path, ...]
    clean: Path
    speaker: str | None = None
    meta: dict = field(default_factory=dict, compare=False, hash=False)


class PairedDataset(torch.utils.data.Dataset):
    """Paired noisy/clean utterances; ``dataset[i]`` is ``(noisy, clean, name)`` at 16 kHz.

    Notebook: 01_signals_and_data.ipynb

    ``multichannel=False`` (single-microphone corpora) gives ``noisy`` ``[N]``; with
    ``multichannel=True`` noisy files may have several channels (concatenated over the files
    of an entry) and ``noisy`` is ``[M, N]``; ``channels`` picks some of them (an int gives
    ``[N]``). ``downmix`` (``"mean"``/``"first"``) converts stereo files where mono is expected;
    without it they raise. Noisy and clean lengths may differ by up to ``max_length_mismatch``
    samples (both are cut to the shorter); more raises.
    """

    def __init__(self, entries: Sequence[PairEntry], *, kind: str = "folders", root=None,
                 split: str = "all", multichannel: bool = False,
                 channels: int | Sequence[int] | None = None, downmix: str | None = None,
                 check: bool = True, max_length_mismatch: int = 160):
        if not entries:
            raise CorpusError(f"no pairs found for split {split!r} of {kind} corpus at {root}")
        self.entries = list(entries)
        self.kind = kind
        self.root = Path(root) if root is not None else None
        self.split = split
        self.multichannel = multichannel
        self.channels = channels
        self.downmix = downmix
        self.sample_rate = SAMPLE_RATE
        self.max_length_mismatch = int(max_length_mismatch)
        names = [e.name for e in self.entries]
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise CorpusError(f"duplicate pair names in {kind} {split}: {dupes[:5]}")
        self._lengths: list[int] | None = None
        if check:
            self._check_headers()

    # ---------------------------------------------------------------- inspection
    def __len__(self) -> int:
        return len(self.entries)

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.entries]

    @property
    def lengths(self) -> list[int]:
        """Samples per pair at 16 kHz (from the headers; read on first use if not checked)."""
        if self._lengths is None:
            self._check_headers()
        return list(self._lengths)

    def __repr__(self) -> str:
        where = f" at {self.root}" if self.root else ""
        return f"PairedDataset({self.kind}, split={self.split!r}, {len(self)} pairs{where})"

    def _check_headers(self) -> None:
        problems, rates, lengths = [], {}, []
        mismatched = []
        for entry in self.entries:
            try:
                noisy = [audio_info(p) for p in entry.noisy]
                clean = audio_info(entry.clean)
            except AudioError as error:
                problems.append(str(error))
                lengths.append(0)
                continue
            if clean.channels != 1 and self.downmix is None:
                problems.append(f"{clean.path}: has {clean.channels} channels but the clean "
                                f"target must be mono; pass downmix='mean' or 'first'")
            if not self.multichannel:
                for info in noisy:
                    if info.channels != 1 and self.downmix is None:
                        problems.append(f"{info.path}: has {info.channels} channels but a mono "
                                        f"signal is expected; pass downmix='mean' or 'first'")
            for info in (*noisy, clean):
                if info.sample_rate != SAMPLE_RATE:
                    rates[info.sample_rate] = rates.get(info.sample_rate, 0) + 1
            sizes = [round(i.frames * SAMPLE_RATE / i.sample_rate) for i in (*noisy, clean)]
            if max(sizes) - min(sizes) > self.max_length_mismatch:
                mismatched.append(f"{entry.name} ({', '.join(map(str, sizes))} samples)")
            lengths.append(min(sizes))
        if mismatched:
            problems.append(f"{len(mismatched)} pairs whose noisy and clean lengths differ by "
                            f"more than {self.max_length_mismatch} samples: "
                            f"{'; '.join(mismatched[:5])}")
        if problems:
            shown = "\n  ".join(problems[:10])
            more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
            raise CorpusError(f"{len(problems)} problem(s) in the {self.kind} {self.split} "
                              f"corpus{' at ' + str(self.root) if self.root else ''}:\n  "
                              f"{shown}{more}")
        if rates:
            listed = ", ".join(f"{n} files at {r} Hz" for r, n in sorted(rates.items()))
            warnings.warn(f"{self.kind} {self.split}: {listed}; they are resampled to "
                          f"{SAMPLE_RATE} Hz (soxr HQ) each time they are loaded. A 16 kHz "
                          f"copy loads faster.", ResampleWarning, stacklevel=3)
        self._lengths = lengths

    # ---------------------------------------------------------------- loading
    def load(self, index: int, start: int = 0, frames: int | None = None):
        """``(noisy, clean)`` numpy float32 arrays of pair ``index``, optionally a part of it.

        Notebook: 01_signals_and_data.ipynb
        """
        entry = self.entries[index]
        mono_noisy = not self.multichannel
        parts = [read_audio(p, SAMPLE_RATE, mono=mono_noisy, downmix=self.downmix, start=start,
                            frames=frames, warn_resample=False) for p in entry.noisy]
        if mono_noisy:
            noisy = parts[0] if len(parts) == 1 else np.stack(parts)
        else:
            size = min(p.shape[-1] for p in parts)
            noisy = np.concatenate([p[:, :size] for p in parts], axis=0)
            if self.channels is not None:
                noisy = noisy[self.channels]
        clean = read_audio(entry.clean, SAMPLE_RATE, mono=True, downmix=self.downmix,
                           start=start, frames=frames, warn_resample=False)
        size = min(noisy.shape[-1], clean.shape[-1])
        if max(noisy.shape[-1], clean.shape[-1]) - size > self.max_length_mismatch:
            raise CorpusError(f"{entry.name}: noisy has {noisy.shape[-1]} and clean "
                              f"{clean.shape[-1]} samples ({entry.noisy[0]}, {entry.clean})")
        return np.ascontiguousarray(noisy[..., :size]), np.ascontiguousarray(clean[:size])

    def __getitem__(self, index: int):
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} pairs")
        index = index % len(self)
        noisy, clean = self.load(index)
        return torch.from_numpy(noisy), torch.from_numpy(clean), self.entries[index].name

    def info(self, index: int) -> dict:
        """Name, files, speaker and metadata (noise, SNR when the corpus logs them) of a pair.

        Notebook: 01_signals_and_data.ipynb
        """
        e = self.entries[index]
        return {"name": e.name, "noisy": [str(p) for p in e.noisy], "clean": str(e.clean),
                "speaker": e.speaker, **e.meta}

    def subset(self, indices) -> "PairedDataset":
        """A dataset of some of the pairs (``indices`` a sequence, or an int for the first n).

        Notebook: 01_signals_and_data.ipynb
        """
        if isinstance(indices, int):
            indices = range(min(indices, len(self)))
        out = object.__new__(PairedDataset)
        out.__dict__.update(self.__dict__)
        out.entries = [self.entries[i] for i in indices]
        out._lengths = None if self._lengths is None else [self._lengths[i] for i in indices]
        return out

    # ---------------------------------------------------------------- generic constructor
    @classmethod
    def from_folders(cls, noisy_dir, clean_dir, *, pair_key=None, split: str = "all",
                     kind: str = "folders", unpaired: str = "error", **options):
        """Pair ``noisy_dir/*.wav`` with ``clean_dir/*.wav`` by file name (or ``pair_key(stem)``).

        Notebook: 01_signals_and_data.ipynb
        """
        entries = _pair_folders(Path(noisy_dir), Path(clean_dir), pair_key, unpaired, kind)
        return cls(entries, kind=kind, root=Path(noisy_dir).parent, split=split, **options)


# ------------------------------------------------------------------------------------------------
# helpers


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*")
                  if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()
                  and not p.name.startswith("."))


def _pair_folders(noisy_dir: Path, clean_dir: Path, pair_key, unpaired: str, kind: str,
                  noisy_key=None) -> list[PairEntry]:
    if unpaired not in ("error", "skip"):
        raise ValueError(f"unpaired must be 'error' or 'skip', got {unpaired!r}")
    for folder in (noisy_dir, clean_dir):
        if not folder.is_dir():
            raise CorpusError(f"{kind}: folder {folder} does not exist")
    key_noisy = noisy_key or pair_key or (lambda stem: stem)
    key_clean = pair_key or (lambda stem: stem)
    noisy = _keyed(_audio_files(noisy_dir), key_noisy, noisy_dir)
    clean = _keyed(_audio_files(clean_dir), key_clean, clean_dir)
    only_noisy = sorted(set(noisy) - set(clean))
    only_clean = sorted(set(clean) - set(noisy))
    if (only_noisy or only_clean) and unpaired == "error":
        raise CorpusError(_unpaired_message(kind, noisy_dir, clean_dir, only_noisy, only_clean,
                                            noisy, clean))
    if only_noisy or only_clean:
        warnings.warn(f"{kind}: skipping {len(only_noisy)} noisy and {len(only_clean)} clean "
                      f"files without a partner", stacklevel=3)
    return [PairEntry(key, (noisy[key],), clean[key]) for key in sorted(set(noisy) & set(clean))]


def _keyed(files: list[Path], key, folder: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in files:
        k = key(path.stem)
        if k is None:
            continue
        if k in out:
            raise CorpusError(f"two files in {folder} pair under the same key {k!r}: "
                              f"{out[k].name} and {path.name}")
        out[k] = path
    return out


def _unpaired_message(kind, noisy_dir, clean_dir, only_noisy, only_clean, noisy, clean) -> str:
    lines = [f"{kind}: unpaired files (pass unpaired='skip' to leave them out)"]
    if only_noisy:
        lines.append(f"  {len(only_noisy)} noisy files in {noisy_dir} without a clean partner, "
                     f"e.g. {', '.join(noisy[k].name for k in only_noisy[:5])}")
    if only_clean:
        lines.append(f"  {len(only_clean)} clean files in {clean_dir} without a noisy partner, "
                     f"e.g. {', '.join(clean[k].name for k in only_clean[:5])}")
    return "\n".join(lines)


def _name_hash(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")


def _select_split(entries: list[PairEntry], split: str) -> list[PairEntry]:
    """train/valid: the 5 % of names with the lowest hash (at least one) form ``valid``.

    A hash of the name, not the file order, decides, so the split is stable; ``test`` and
    ``all`` keep everything.
    """
    if split not in ("train", "valid") or len(entries) < 2:
        return list(entries)
    held = holdout_names([e.name for e in entries])
    return [e for e in entries if (e.name in held) == (split == "valid")]


def holdout_names(names: Sequence[str]) -> set[str]:
    """The names that form ``valid`` where a corpus has no validation split of its own.

    Notebook: 01_signals_and_data.ipynb

    The 5 % (at least one) of ``names`` whose hash is lowest; the simulated multi-channel
    builder uses it to give exactly these names its validation utterances.
    """
    return set(sorted(names, key=_name_hash)[:holdout_count(len(names))])


def holdout_count(pairs: int) -> int:
    """How many of ``pairs`` training pairs :func:`holdout_names` keeps for validation.

    Notebook: 01_signals_and_data.ipynb
    """
    return max(1, round(pairs * HOLDOUT_PERCENT / 100))


def _read_log(path: Path) -> dict[str, dict]:
    meta = {}
    if path and path.is_file():
        for line in path.read_text(errors="replace").splitlines():
            parts = line.split()
            if len(parts) >= 3:
                try:
                    meta[parts[0]] = {"noise": parts[1], "snr": float(parts[2])}
                except ValueError:
                    continue
    return meta


# ------------------------------------------------------------------------------------------------
# reduced set and VoiceBank+DEMAND

_VB_FOLDER = re.compile(r"^(clean|noisy)_(train|valid|test)set(?:_(\d+)spk)?_wav(_16k(?:hz)?)?$",
                        re.IGNORECASE)


def _voicebank_folders(root: Path) -> dict[tuple[str, str], list[tuple[Path, str | None, bool]]]:
    """{(role, split): [(folder, speakers, is16k)]} found in root or one level below."""
    found: dict[tuple[str, str], list] = {}
    candidates = [root] + sorted(p for p in root.iterdir() if p.is_dir())
    for base in candidates:
        for folder in sorted(p for p in base.iterdir() if p.is_dir()):
            match = _VB_FOLDER.match(folder.name)
            if match:
                role, split, speakers, is16k = match.groups()
                found.setdefault((role.lower(), split.lower()), []).append(
                    (folder, speakers, bool(is16k)))
    return found


def _choose_folder(options: list, variant: str | None, what: str) -> Path:
    if variant:
        options = [o for o in options if variant.lower() in o[0].name.lower()]
        if not options:
            raise CorpusError(f"no {what} folder matches variant {variant!r}")
    # prefer a 16 kHz copy, then the customary 28-speaker set
    options = sorted(options, key=lambda o: (not o[2], o[1] not in (None, "28"), o[0].name))
    return options[0][0]


def _voicebank(root: Path, split: str, variant: str | None, unpaired: str,
               valid_speakers: Sequence[str], kind: str, manifest: dict | None):
    folders = _voicebank_folders(root)
    source_split = split
    if split == "valid" and ("noisy", "valid") not in folders:
        source_split = "train"            # VoiceBank: validation speakers taken from train
    if split == "all":
        wanted = tuple(s for s in ("train", "valid", "test") if ("noisy", s) in folders)
    else:
        wanted = (source_split,)
    entries: list[PairEntry] = []
    for part in wanted:
        if ("noisy", part) not in folders or ("clean", part) not in folders:
            raise CorpusError(f"{kind} at {root}: no {part} folders (expected e.g. "
                              f"clean_{part}set_wav/ and noisy_{part}set_wav/; found: "
                              f"{sorted(p.name for p in root.iterdir())[:12]})")
        noisy_dir = _choose_folder(folders[("noisy", part)], variant, f"noisy {part}")
        clean_dir = _choose_folder(folders[("clean", part)], variant, f"clean {part}")
        logs = sorted(noisy_dir.parent.glob(f"log_{part}set*.txt"))
        meta = _read_log(logs[0]) if logs else {}
        speakers = {}
        if manifest:
            for item in manifest.get("items", {}).get(part, []):
                speakers[item["name"]] = item["speaker"]
        for e in _pair_folders(noisy_dir, clean_dir, None, unpaired, kind):
            speaker = speakers.get(e.name) or e.name.rsplit("_", 1)[0]
            entries.append(PairEntry(e.name, e.noisy, e.clean, speaker, meta.get(e.name, {})))
    if source_split == "train" and split in ("train", "valid") and not manifest:
        held = set(valid_speakers)
        entries = [e for e in entries if (e.speaker in held) == (split == "valid")]
    return entries


# ------------------------------------------------------------------------------------------------
# DNS Challenge

_FILEID = re.compile(r"fileid_(\d+)", re.IGNORECASE)


def _fileid(stem: str) -> str | None:
    match = _FILEID.search(stem)
    return match.group(1) if match else None


def _dns_pairs(root: Path, max_depth: int = 6) -> list[tuple[Path, Path]]:
    """(noisy, clean) folder pairs under root; never descends into the audio folders."""
    import os

    pairs = []
    base_depth = len(root.parts)
    for folder, subdirs, _ in os.walk(root):
        here = Path(folder)
        names = {d.lower(): d for d in subdirs}
        if "noisy" in names and "clean" in names:
            pairs.append((here / names["noisy"], here / names["clean"]))
        subdirs[:] = [] if len(here.parts) - base_depth >= max_depth else sorted(
            d for d in subdirs if d.lower() not in ("noisy", "clean", "noise"))
    return sorted(pairs)


def _dns(root: Path, split: str, subset: str, unpaired: str, kind: str):
    pairs = _dns_pairs(root)
    if not pairs:
        raise CorpusError(f"{kind} at {root}: no noisy/ folder next to a clean/ folder")
    if subset != "all":
        chosen = [p for p in pairs if subset in p[0].as_posix().split("/")]
        pairs = chosen or ([pairs[0]] if len(pairs) == 1 else [])
        if not pairs:
            raise CorpusError(f"{kind} at {root}: no {subset!r} subset; found "
                              f"{[p[0].parent.name for p in _dns_pairs(root)]}")
    is_test = any("test_set" in p[0].as_posix() for p in pairs)
    if is_test and split in ("train", "valid"):
        raise CorpusError(f"{kind} at {root} is the DNS test set; open it with split='test'")
    entries = []
    for noisy_dir, clean_dir in pairs:
        prefix = "" if len(pairs) == 1 else noisy_dir.parent.name + "/"
        for e in _pair_folders(noisy_dir, clean_dir, _fileid, unpaired, kind):
            name = f"{prefix}fileid_{e.name}"
            snr = re.search(r"snr(-?\d+(?:\.\d+)?)", e.noisy[0].stem, re.IGNORECASE)
            meta = {"snr": float(snr.group(1))} if snr else {}
            entries.append(PairEntry(name, e.noisy, e.clean, None, meta))
    return entries if is_test else _select_split(entries, split)


# ------------------------------------------------------------------------------------------------
# L3DAS23 Task 1

_L3DAS_SET = re.compile(r"^L3DAS2\d_Task1_(\w+)$", re.IGNORECASE)


def _l3das_folders(root: Path) -> dict[str, Path]:
    found = {}
    for base in [root] + sorted(p for p in root.iterdir() if p.is_dir()):
        for folder in sorted(p for p in base.iterdir() if p.is_dir()):
            match = _L3DAS_SET.match(folder.name)
            if match and (folder / "data").is_dir() and (folder / "labels").is_dir():
                found[match.group(1).lower()] = folder
    return found


def _l3das_entries(folder: Path, mics: str, unpaired: str, kind: str) -> list[PairEntry]:
    data, labels = folder / "data", folder / "labels"
    pattern = re.compile(r"^(.+)_([AB])$")
    noisy: dict[str, dict[str, Path]] = {}
    for path in _audio_files(data):
        match = pattern.match(path.stem)
        if match:
            noisy.setdefault(match.group(1), {})[match.group(2)] = path
    clean = {p.stem: p for p in _audio_files(labels)}
    wanted = tuple(mics)
    complete = {k: v for k, v in noisy.items() if all(m in v for m in wanted)}
    incomplete = sorted(set(noisy) - set(complete))
    only_noisy = sorted(set(complete) - set(clean))
    only_clean = sorted(set(clean) - set(noisy))
    problems = []
    if incomplete:
        problems.append(f"  {len(incomplete)} ids lack microphone(s) {mics} in {data}, e.g. "
                        f"{', '.join(incomplete[:5])}")
    if only_noisy:
        problems.append(f"  {len(only_noisy)} ids in {data} have no label in {labels}, e.g. "
                        f"{', '.join(only_noisy[:5])}")
    if only_clean:
        problems.append(f"  {len(only_clean)} labels in {labels} have no data, e.g. "
                        f"{', '.join(only_clean[:5])}")
    if problems and unpaired == "error":
        raise CorpusError(f"{kind}: unpaired files (pass unpaired='skip' to leave them out)\n"
                          + "\n".join(problems))
    skipped = len(set(noisy) ^ set(clean)) + len(set(incomplete) & set(clean))
    if problems:
        warnings.warn(f"{kind}: skipping {skipped} ids of {folder.name} without a complete "
                      f"pair", stacklevel=3)
    return [PairEntry(k, tuple(complete[k][m] for m in wanted), clean[k])
            for k in sorted(set(complete) & set(clean))]


def _l3das(root: Path, split: str, mics: str, unpaired: str, kind: str):
    sets = _l3das_folders(root)
    if not sets and (root / "data").is_dir() and (root / "labels").is_dir():
        return _select_split(_l3das_entries(root, mics, unpaired, kind), split)
    train_sets = [sets[k] for k in sorted(sets) if k.startswith("train")]
    if split in ("train", "valid"):
        if not train_sets:
            raise CorpusError(f"{kind} at {root}: no L3DAS23_Task1_train* folder")
        entries = [e for f in train_sets for e in _l3das_entries(f, mics, unpaired, kind)]
        return _select_split(entries, split)
    if split == "test":
        if "dev" not in sets:
            raise CorpusError(f"{kind} at {root}: no L3DAS23_Task1_dev folder for the test split")
        return _l3das_entries(sets["dev"], mics, unpaired, kind)
    return [e for f in sets.values() for e in _l3das_entries(f, mics, unpaired, kind)]


# ------------------------------------------------------------------------------------------------
# entry point


def detect_kind(root) -> str:
    """Which corpus layout ``root`` holds: ``reduced``, ``voicebank``, ``dns`` or ``l3das23``.

    Notebook: 01_signals_and_data.ipynb
    """
    root = Path(root)
    if not root.is_dir():
        raise CorpusError(f"corpus folder {root} does not exist")
    if is_reduced_dataset(root):
        return "reduced"
    if _voicebank_folders(root):
        return "voicebank"
    if _l3das_folders(root) or ((root / "data").is_dir() and (root / "labels").is_dir()):
        return "l3das23"
    if _dns_pairs(root):
        return "dns"
    entries = sorted(p.name for p in root.iterdir())[:12]
    raise CorpusError(f"cannot recognise the corpus layout under {root} (found: {entries}). "
                      f"Expected a build_dataset output, VoiceBank+DEMAND "
                      f"(clean_trainset_wav/, noisy_trainset_wav/, ...), DNS "
                      f"(.../clean/ and .../noisy/ with fileid_<N>) or L3DAS23 "
                      f"(L3DAS23_Task1_*/data and labels)")


def open_corpus(root, split: str = "train", kind: str = "auto", *, unpaired: str = "error",
                variant: str | None = None, subset: str = "no_reverb", mics: str = "A",
                channels: int | Sequence[int] | None = None, downmix: str | None = None,
                valid_speakers: Sequence[str] = VOICEBANK_VALID_SPEAKERS,
                check: bool = True, max_length_mismatch: int = 160) -> PairedDataset:
    """Open split ``split`` of the corpus at ``root`` as a :class:`PairedDataset`.

    Notebook: 01_signals_and_data.ipynb

    ``kind``: ``auto`` (detect), ``reduced``, ``voicebank``, ``dns`` or ``l3das23``.
    ``unpaired``: ``error`` (default) or ``skip``. VoiceBank: ``variant`` picks among several
    folder spellings (e.g. ``"56spk"``), ``valid_speakers`` the validation speakers. DNS:
    ``subset`` is ``no_reverb`` (default), ``with_reverb`` or ``all``. L3DAS23: ``mics`` is
    ``"A"`` (4 channels) or ``"AB"`` (8), ``channels`` selects channels (an int gives mono).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    root = Path(root)
    kind = detect_kind(root) if kind == "auto" else kind
    options = dict(kind=kind, root=root, split=split, downmix=downmix, check=check,
                   max_length_mismatch=max_length_mismatch)
    if kind in ("reduced", "voicebank"):
        manifest = None
        if kind == "reduced":
            manifest = load_manifest(root)
        entries = _voicebank(root, split, variant, unpaired, valid_speakers, kind, manifest)
        return PairedDataset(entries, **options)
    if kind == "dns":
        return PairedDataset(_dns(root, split, subset, unpaired, kind), **options)
    if kind == "l3das23":
        if mics not in ("A", "B", "AB"):
            raise ValueError(f"mics must be 'A', 'B' or 'AB', got {mics!r}")
        return PairedDataset(_l3das(root, split, mics, unpaired, kind), multichannel=True,
                             channels=channels, **options)
    raise ValueError(f"unknown corpus kind {kind!r}; use auto, reduced, voicebank, dns or l3das23")
