"""Clean speech available offline: recorded asterisk prompts and synthetic espeak-ng voices.

Notebook: 01_signals_and_data.ipynb

**Recorded speech** comes from the Debian packages ``asterisk-core-sounds-{en,es,fr,it,ru}-g722``:
professionally recorded telephone prompts at 16 kHz in G.722 (content up to about 7 kHz) by four
real speakers. They are decoded in-process with PyAV (``av.open(path, format="g722")``).

=============  ====================================  ===  ==============  ==================
speaker        folders under /usr/share/asterisk      sex  licence         recorded by
=============  ====================================  ===  ==============  ==================
allison        en_US_f_Allison, es_MX_f_Allison      f    CC-BY-SA-3.0    Allison Smith
ivrvoiceru     ru_RU_f_IvrvoiceRU                    f    CC-BY-3.0       Maxim Topal (ivrvoice.ru)
june           fr_CA_f_June                          f    CC-BY-SA-3.0    June Wallack
carlo          it_IT_m_Carlo                         m    CC-BY-3.0       Carlo Flora
=============  ====================================  ===  ==============  ==================

**Synthetic speech** comes from libespeak-ng, shipped with its data in the ``espeakng-loader``
wheel and driven through ctypes in a child process (see ``_espeak_worker.py`` for why a child
process makes it reproducible). Each synthetic "speaker" is a voice, a variant and fixed
pitch/range/rate settings; training and test speakers are disjoint.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio import SAMPLE_RATE, resample

DEFAULT_ASTERISK_ROOT = Path("/usr/share/asterisk/sounds")
ASTERISK_ENV = "TFCKD_ASTERISK_SOUNDS"
ASTERISK_PACKAGES = ("asterisk-core-sounds-en-g722", "asterisk-core-sounds-es-g722",
                     "asterisk-core-sounds-fr-g722", "asterisk-core-sounds-it-g722",
                     "asterisk-core-sounds-ru-g722", "asterisk-core-sounds-en")
INSTALL_HINT = ("sudo apt-get update && sudo apt-get install -y --no-install-recommends "
                + " ".join(ASTERISK_PACKAGES)
                + "   (Debian/Ubuntu; or run `make system-deps` as root)")
G722_BYTES_PER_SECOND = 8000      # 64 kbit/s -> 16,000 samples per second
SKIPPED_FOLDERS = ("silence",)    # asterisk's silence/1..10.g722 contain no speech


@dataclass(frozen=True)
class RecordedSpeaker:
    """One real speaker of the asterisk prompt packages.

    Notebook: 01_signals_and_data.ipynb
    """

    key: str
    name: str
    folders: tuple[str, ...]
    languages: tuple[str, ...]
    sex: str
    licence: str
    credit: str
    package_languages: tuple[str, ...]


ASTERISK_SPEAKERS: dict[str, RecordedSpeaker] = {
    "allison": RecordedSpeaker("allison", "Allison", ("en_US_f_Allison", "es_MX_f_Allison"),
                               ("en", "es"), "f", "CC-BY-SA-3.0", "Allison Smith",
                               ("en", "es")),
    "ivrvoiceru": RecordedSpeaker("ivrvoiceru", "IvrvoiceRU", ("ru_RU_f_IvrvoiceRU",), ("ru",),
                                  "f", "CC-BY-3.0", "Maxim Topal (http://www.ivrvoice.ru)",
                                  ("ru",)),
    "june": RecordedSpeaker("june", "June", ("fr_CA_f_June",), ("fr",), "f", "CC-BY-SA-3.0",
                            "June Wallack", ("fr",)),
    "carlo": RecordedSpeaker("carlo", "Carlo", ("it_IT_m_Carlo",), ("it",), "m", "CC-BY-3.0",
                             "Carlo Flora", ("it",)),
}
#: the speaker-disjoint split of the recorded speakers
RECORDED_TRAIN_SPEAKERS = ("allison", "ivrvoiceru")
RECORDED_TEST_SPEAKERS = ("june", "carlo")


@dataclass(frozen=True)
class Prompt:
    """One asterisk prompt file; ``num_samples`` comes from the file size (G.722: 2 per byte).

    Notebook: 01_signals_and_data.ipynb
    """

    speaker: str
    language: str
    relpath: str
    path: Path
    num_samples: int

    @property
    def duration(self) -> float:
        return self.num_samples / SAMPLE_RATE


def asterisk_root(root=None) -> Path:
    """The asterisk sounds folder: ``root``, else ``$TFCKD_ASTERISK_SOUNDS``, else the Debian path.

    Notebook: 01_signals_and_data.ipynb
    """
    if root is not None:
        return Path(root)
    return Path(os.environ.get(ASTERISK_ENV) or DEFAULT_ASTERISK_ROOT)


def find_asterisk_prompts(root=None) -> dict[str, list[Prompt]]:
    """Every speech prompt per recorded speaker found under ``root`` (sorted; may be empty).

    Notebook: 01_signals_and_data.ipynb

    Speakers whose folders are missing are left out; ``silence/`` folders are skipped.
    """
    root = asterisk_root(root)
    found: dict[str, list[Prompt]] = {}
    for key, speaker in ASTERISK_SPEAKERS.items():
        prompts = []
        for folder, language in zip(speaker.folders, speaker.languages):
            base = root / folder
            if not base.is_dir():
                continue
            for path in sorted(base.rglob("*.g722")):
                rel = path.relative_to(root).as_posix()
                if any(part in SKIPPED_FOLDERS for part in path.relative_to(base).parts[:-1]):
                    continue
                size = path.stat().st_size
                if size == 0:
                    continue
                prompts.append(Prompt(key, language, rel, path, 2 * size))
        if prompts:
            found[key] = prompts
    return found


def asterisk_status(root=None) -> dict:
    """Which recorded speakers are installed, and how to install the rest.

    Notebook: 01_signals_and_data.ipynb
    """
    root = asterisk_root(root)
    prompts = find_asterisk_prompts(root)
    missing = [k for k in ASTERISK_SPEAKERS if k not in prompts]
    return {"root": str(root), "speakers": {k: len(v) for k, v in prompts.items()},
            "missing": missing, "complete": not missing,
            "install": INSTALL_HINT if missing else None}


def decode_g722(path) -> np.ndarray:
    """Decode a raw G.722 file to float32 samples at 16 kHz with PyAV (FFmpeg's decoder).

    Notebook: 01_signals_and_data.ipynb
    """
    import av

    chunks = []
    try:
        with av.open(str(path), format="g722") as container:
            stream = container.streams.audio[0]
            for frame in container.decode(stream):
                if frame.sample_rate != SAMPLE_RATE:
                    raise ValueError(f"{path}: decoded at {frame.sample_rate} Hz, expected "
                                     f"{SAMPLE_RATE}")
                chunks.append(frame.to_ndarray().reshape(-1))
    except av.error.FFmpegError as error:
        raise ValueError(f"{path}: cannot decode G.722 ({error})") from error
    if not chunks:
        raise ValueError(f"{path}: no audio decoded")
    pcm = np.concatenate(chunks)
    if pcm.dtype == np.int16:
        return pcm.astype(np.float32) / 32768.0
    return pcm.astype(np.float32)


# --------------------------------------------------------------------------------------------
# espeak-ng


@dataclass(frozen=True)
class SyntheticSpeaker:
    """An espeak-ng 'speaker': voice+variant with fixed pitch (0-99), range (0-99), rate (wpm).

    Notebook: 01_signals_and_data.ipynb
    """

    key: str
    voice: str
    pitch: int
    range: int
    rate: int


ESPEAK_TRAIN_SPEAKERS = (
    SyntheticSpeaker("esp-us-m1", "en-us+m1", 45, 50, 165),
    SyntheticSpeaker("esp-us-f2", "en-us+f2", 55, 60, 170),
    SyntheticSpeaker("esp-rp-m3", "en-gb-x-rp+m3", 40, 45, 160),
    SyntheticSpeaker("esp-en-f4", "en+f4", 60, 55, 175),
    SyntheticSpeaker("esp-029-m4", "en-029+m4", 50, 40, 165),
    SyntheticSpeaker("esp-sc-f1", "en-gb-scotland+f1", 52, 50, 160),
    SyntheticSpeaker("esp-nyc-m2", "en-us-nyc+m2", 42, 55, 180),
    SyntheticSpeaker("esp-en-linda", "en+linda", 58, 45, 170),
)
ESPEAK_TEST_SPEAKERS = (
    SyntheticSpeaker("esp-rp-f3", "en-gb-x-rp+f3", 57, 55, 168),
    SyntheticSpeaker("esp-us-m7", "en-us+m7", 38, 50, 172),
    SyntheticSpeaker("esp-029-f5", "en-029+f5", 62, 60, 162),
)
ESPEAK_RATE = 22_050
ESPEAK_JOBS_PER_PROCESS = 40   # fixed, so that the output never depends on the worker count


def espeak_paths() -> tuple[str, str]:
    """(library, data folder) shipped by the ``espeakng-loader`` wheel; raises if absent.

    Notebook: 01_signals_and_data.ipynb
    """
    try:
        import espeakng_loader
    except ImportError as error:
        raise RuntimeError("the espeakng-loader package is not installed: "
                           "pip install espeakng-loader") from error
    library, data = espeakng_loader.get_library_path(), espeakng_loader.get_data_path()
    if not Path(library).is_file():
        raise RuntimeError(f"espeakng-loader is installed but has no library at {library}")
    return library, data


def espeak_version() -> str | None:
    """libespeak-ng's version string, or None when it cannot be loaded.

    Notebook: 01_signals_and_data.ipynb
    """
    import ctypes

    try:
        library, _ = espeak_paths()
        lib = ctypes.CDLL(library)          # espeak_Info only reads a constant
    except (RuntimeError, OSError):
        return None
    lib.espeak_Info.restype = ctypes.c_char_p
    lib.espeak_Info.argtypes = [ctypes.c_void_p]
    return lib.espeak_Info(None).decode()


def _run_espeak_chunk(jobs: list[dict]) -> subprocess.Popen:
    library, data = espeak_paths()
    worker = Path(__file__).with_name("_espeak_worker.py")
    process = subprocess.Popen([sys.executable, "-I", "-S", str(worker)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdin.write(json.dumps({"library": library, "data": data, "jobs": jobs}).encode())
    process.stdin.close()
    return process


def _collect_espeak_chunk(process: subprocess.Popen, count: int) -> list[np.ndarray]:
    raw = process.stdout.read()
    error = process.stderr.read().decode(errors="replace").strip()
    status = process.wait()
    if status != 0:
        raise RuntimeError(f"espeak-ng worker failed (exit {status}): {error}")
    out, offset = [], 0
    for _ in range(count):
        (n,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        pcm = np.frombuffer(raw, dtype="<i2", count=n, offset=offset)
        offset += 2 * n
        out.append(pcm)
    return out


def synthesize(jobs: list[dict], sample_rate: int = SAMPLE_RATE, workers: int = 1,
               progress=None) -> list[np.ndarray]:
    """Speak each job ``{"text", "voice", "rate", "pitch", "range"}``; float32 at ``sample_rate``.

    Notebook: 01_signals_and_data.ipynb

    Jobs run in child processes of :data:`ESPEAK_JOBS_PER_PROCESS` jobs each, at most
    ``workers`` at a time; the same job list always gives the same samples. ``progress`` is an
    optional callable receiving the number of jobs finished.
    """
    chunks = [jobs[i:i + ESPEAK_JOBS_PER_PROCESS]
              for i in range(0, len(jobs), ESPEAK_JOBS_PER_PROCESS)]
    results: list[list[np.ndarray] | None] = [None] * len(chunks)
    running: list[tuple[int, subprocess.Popen]] = []
    next_chunk = 0
    while next_chunk < len(chunks) or running:
        while next_chunk < len(chunks) and len(running) < max(1, workers):
            running.append((next_chunk, _run_espeak_chunk(chunks[next_chunk])))
            next_chunk += 1
        index, process = running.pop(0)
        results[index] = _collect_espeak_chunk(process, len(chunks[index]))
        if progress is not None:
            progress(len(chunks[index]))
    out = []
    for chunk in results:
        for pcm in chunk:
            x = pcm.astype(np.float32) / 32768.0
            out.append(resample(x, ESPEAK_RATE, sample_rate) if sample_rate != ESPEAK_RATE
                       else x)
    return out


# --------------------------------------------------------------------------------------------
# text for the synthetic speakers (generated, so no corpus has to be shipped)

_NAMES = ["Anna", "Peter", "Maria", "David", "Laura", "Tom", "Nora", "Samuel", "Ella", "Victor",
          "Grace", "Oscar", "Helen", "Martin", "Julia", "Robert"]
_ADJECTIVES = ["old", "small", "bright", "quiet", "heavy", "green", "early", "narrow", "warm",
               "empty", "busy", "simple", "yellow", "wooden", "frozen", "gentle", "broken",
               "distant", "careful", "sudden"]
_NOUNS = ["train", "window", "garden", "letter", "river", "kitchen", "bridge", "market",
          "teacher", "bottle", "engine", "village", "pencil", "station", "ladder", "blanket",
          "harbour", "meeting", "ticket", "orchard", "camera", "basket", "tunnel", "jacket"]
_VERBS_PAST = ["opened", "painted", "carried", "cleaned", "followed", "watched", "repaired",
               "counted", "moved", "checked", "ordered", "visited", "described", "measured"]
_VERBS = ["open", "paint", "carry", "clean", "follow", "watch", "repair", "count", "move",
          "check", "order", "visit", "describe", "measure"]
_PLACES = ["near the station", "behind the church", "across the street", "in the north wing",
           "by the old mill", "under the bridge", "at the end of the hall", "on the third floor"]
_TIMES = ["before noon", "after lunch", "on Monday", "at half past seven", "this evening",
          "next Thursday", "in the morning", "by the end of the week"]
_NUMBERS = ["two", "three", "four", "five", "seven", "nine", "twelve", "fifteen", "twenty",
            "forty", "a hundred"]
_TEMPLATES = [
    "The {adj} {noun} was {verb_past} {place}.",
    "Please {verb} the {noun} {time}.",
    "{name} {verb_past} the {adj} {noun} {time}.",
    "We counted {number} {noun}s {place}.",
    "Did {name} {verb} the {noun} {place}?",
    "The {noun} {place} is {adj} and {adj2}.",
    "{name} said that the {adj} {noun} will arrive {time}.",
    "Bring {number} {adj} {noun}s to the {noun2} {time}.",
    "A {adj} {noun} stood {place}, next to the {noun2}.",
    "Nobody {verb_past} the {noun} until {name} came {time}.",
]
_SHORT_TEMPLATES = [
    "Please {verb} the {noun}.",
    "{name} {verb_past} it {time}.",
    "The {noun} is {adj}.",
    "Call {name} {time}.",
    "{number} {adj} {noun}s.",
    "Where is the {noun}?",
    "{name} {verb_past} the {noun}.",
]


def make_sentence(rng: np.random.Generator, short: bool = False) -> str:
    """An English sentence from a small grammar, for the synthetic speakers.

    Notebook: 01_signals_and_data.ipynb

    Spoken by espeak-ng at about 170 words per minute, a sentence lasts about 2-4 s, a
    ``short`` one about 1-2 s.
    """
    def pick(words):
        return words[int(rng.integers(len(words)))]

    template = pick(_SHORT_TEMPLATES if short else _TEMPLATES)
    return template.format(adj=pick(_ADJECTIVES), adj2=pick(_ADJECTIVES), noun=pick(_NOUNS),
                           noun2=pick(_NOUNS), verb=pick(_VERBS), verb_past=pick(_VERBS_PAST),
                           place=pick(_PLACES), time=pick(_TIMES), name=pick(_NAMES),
                           number=pick(_NUMBERS))
