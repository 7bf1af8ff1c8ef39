"""The clips and systems a comparison is made of: a corpus clip or a user's WAV file, and the
shipped enhancers with their labels.

Notebook: 06_compare_spectrograms.ipynb
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..audio import AudioError, audio_info, read_audio
from ..stft import N_FFT, SAMPLE_RATE

REFERENCE_SYSTEMS = ("noisy", "clean")
#: Longest own file the widget takes; longer files are cut (and the widget says so).
MAX_SECONDS = 20.0


@dataclass(frozen=True)
class Clip:
    """One utterance to compare: the noisy input and, for corpus clips, its clean reference.

    Notebook: 06_compare_spectrograms.ipynb

    ``noisy`` and ``clean`` are float32 ``[N]`` arrays at 16 kHz (``clean`` is ``None`` for a
    user's own file); ``source`` says where the clip came from; ``notes`` are conversions made
    on loading (resampling, cutting) that a reader should be told about.
    """

    name: str
    noisy: np.ndarray
    clean: np.ndarray | None
    source: str
    sample_rate: int = SAMPLE_RATE
    notes: tuple[str, ...] = ()

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.noisy) / self.sample_rate

    @property
    def has_reference(self) -> bool:
        return self.clean is not None


def load_test_clip(dataset, index: int) -> Clip:
    """Clip ``index`` of a paired corpus split (e.g. ``open_corpus(root, "test")``).

    Notebook: 06_compare_spectrograms.ipynb

    Multi-microphone corpora give their first (reference) channel, the one the metrics use.
    """
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
        raise TypeError(f"index must be an int, got {type(index).__name__}")
    if not 0 <= index < len(dataset):
        raise IndexError(f"clip index {index} is out of range: the split has {len(dataset)} "
                         f"clips (0 to {len(dataset) - 1})")
    noisy, clean, name = dataset[int(index)]
    if noisy.dim() == 2:
        noisy = noisy[0]
    split = getattr(dataset, "split", "corpus")
    return Clip(name=name, noisy=noisy.numpy().astype(np.float32),
                clean=clean.numpy().astype(np.float32), source=f"{split} split, clip {index}")


def load_wav_clip(path, max_seconds: float = MAX_SECONDS) -> Clip:
    """A user's own mono audio file as a :class:`Clip` without a clean reference.

    Notebook: 06_compare_spectrograms.ipynb

    Raises :class:`tfckd_lite.audio.AudioError` with a readable reason for a missing file, a
    file that is not audio, an empty or corrupt one, one with several channels (the models take
    one microphone: save one channel or a mono mix first) and one shorter than one STFT window
    (512 samples). Conversions that keep the file usable are made and listed in ``notes``:
    another sample rate is resampled to 16 kHz (the models' rate), and a file longer than
    ``max_seconds`` is cut to its first ``max_seconds`` (so the models answer within seconds).
    """
    if not max_seconds > 0:
        raise ValueError(f"max_seconds must be positive, got {max_seconds!r}")
    info = audio_info(path)                     # missing / empty / not audio -> AudioError
    if info.channels != 1:
        raise AudioError(info.path, f"has {info.channels} channels; the models enhance one "
                                    f"microphone, so save one channel or a mono mix first")
    notes = []
    if info.sample_rate != SAMPLE_RATE:
        notes.append(f"resampled from {info.sample_rate} Hz to {SAMPLE_RATE} Hz (the models "
                     f"work at {SAMPLE_RATE // 1000} kHz)")
    limit = int(round(max_seconds * SAMPLE_RATE))
    if info.frames * SAMPLE_RATE / info.sample_rate > limit:
        notes.append(f"cut to its first {max_seconds:g} s (the file has {info.duration:.1f} s)")
    # the rate was checked above and is reported in notes, so read_audio's warning adds nothing
    noisy = read_audio(info.path, frames=limit, warn_resample=False)
    if len(noisy) < N_FFT:
        raise AudioError(info.path, f"too short: {len(noisy)} samples at {SAMPLE_RATE} Hz; at "
                                    f"least {N_FFT} ({N_FFT / SAMPLE_RATE * 1000:.0f} ms) are "
                                    f"needed for one STFT frame")
    return Clip(name=info.path.name, noisy=noisy, clean=None, source=f"file {info.path}",
                notes=tuple(notes))


# --------------------------------------------------------------------------------------------
# systems


def default_systems(names: Sequence[str] | None = None) -> list[str]:
    """The shipped enhancers worth comparing, in reading order.

    Notebook: 06_compare_spectrograms.ipynb

    From ``names`` (default: ``tfckd_lite.pretrained.available()``): ``lite-teacher``, then
    ``lite-student`` (the student trained alone), then every distilled student
    ``lite-student-<method>`` (a method of :data:`tfckd_lite.distill.METHODS`) in name order.
    Whatever subset exists is returned; other models are left out: the multi-channel
    ``lite-teacher-mc4`` and ``lite-student-mc4``, which cannot enhance a single-channel clip,
    and ``lite-teacher-w``, trained on W of reverberant rooms rather than on the reduced set.
    """
    from ..distill import METHODS

    if names is None:
        from .. import pretrained

        names = pretrained.available()
    names = list(names)
    fixed = [n for n in ("lite-teacher", "lite-student") if n in names]
    distilled = sorted(n for n in names if n.startswith("lite-student-")
                       and n.removeprefix("lite-student-") in METHODS)
    return fixed + distilled


#: The most columns a widget ticks when it opens; beyond them, :func:`initially_shown` picks.
MOST_SHOWN = 6


def initially_shown(names: Sequence[str], weights_system: str | None = None,
                    most: int = MOST_SHOWN) -> list[str]:
    """The systems ticked when a comparison opens: all of ``names`` when there are at most
    ``most``; otherwise the references, the teacher, the student alone, the TFCKD student and
    ``weights_system``, in the order of ``names``.

    Notebook: 06_compare_spectrograms.ipynb

    Why: once the experiment ships its eight distilled students there are twelve columns, too
    narrow to read on a laptop screen; the others stay one tick away.
    """
    names = list(names)
    if len(names) <= most:
        return names
    core = {*REFERENCE_SYSTEMS, "lite-teacher", "lite-student", "lite-student-tfckd",
            weights_system}
    return [n for n in names if n in core]


def load_systems(names: Sequence[str] | None = None) -> dict[str, torch.nn.Module]:
    """``{name: model}`` of shipped enhancers (default: :func:`default_systems`).

    Notebook: 06_compare_spectrograms.ipynb
    """
    from .. import pretrained

    names = default_systems() if names is None else list(names)
    return {name: pretrained.load(name) for name in names}


def system_label(name: str) -> str:
    """A short human label: ``"noisy input"``, ``"teacher"``, ``"student + tfckd"``, ...

    Notebook: 06_compare_spectrograms.ipynb
    """
    labels = {"noisy": "noisy input", "clean": "clean reference", "lite-teacher": "teacher",
              "lite-student": "student alone"}
    if name in labels:
        return labels[name]
    if name.startswith("lite-student-"):
        return f"student + {name[len('lite-student-'):]}"
    return name
