"""The design of a MUSHRA-style listening test: trials, hidden reference, low anchor, blind
labels and the seeded orders.

Notebook: 08_judging_methods.ipynb

MUSHRA (ITU-R BS.1534-3, "MUltiple Stimuli with Hidden Reference and Anchor"): in each trial a
listener hears the open reference (the clean recording, labelled "Reference") and, under
neutral letters, the systems under test plus two controls: the same clean recording again
(the *hidden reference*, which an attentive listener rates near 100) and a *low anchor* (the
reference low-pass filtered at 3.5 kHz, which should land near the bottom of the scale). The
controls calibrate the scale and reveal listeners who do not hear differences (post-screening).
"""

from __future__ import annotations

import hashlib
import json
import math
import string
from dataclasses import dataclass
from typing import Sequence

import numpy as np

#: The hidden reference's system name: the clean recording (``compare.compute_signals``' name).
REFERENCE = "clean"
#: The low anchor's system name.
ANCHOR = "anchor-3.5k"
#: BS.1534-3's low-anchor cut-off.
ANCHOR_CUTOFF_HZ = 3500.0
#: The systems a test compares by default: the input, the student alone, the TFCKD student and
#: the teacher.
DEFAULT_SYSTEMS = ("noisy", "lite-student", "lite-student-tfckd", "lite-teacher")
#: The label of the open (not hidden) reference, playable in every trial.
OPEN_REFERENCE_LABEL = "Reference"


def low_anchor(clean, sample_rate: int, cutoff_hz: float = ANCHOR_CUTOFF_HZ) -> np.ndarray:
    """The MUSHRA low anchor: ``clean`` low-pass filtered at ``cutoff_hz`` (float32 ``[N]``).

    Notebook: 08_judging_methods.ipynb

    A zero-phase brick-wall filter: the whole signal's real FFT with every bin above
    ``cutoff_hz`` set to zero, then the inverse FFT. Why this one: it removes the band above the
    cut-off completely and leaves the band below exactly as it was (a Butterworth filter leaves a
    sloped transition band on both sides), and zero phase keeps the anchor time-aligned with the
    reference, so switching between them does not jump. Its one cost, ringing around sharp
    onsets, is far below the bandwidth loss the anchor is meant to make audible.
    """
    x = np.asarray(clean, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"expected one non-empty mono waveform [N], got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("the clean signal holds NaN or inf samples")
    if not 0 < cutoff_hz < sample_rate / 2:
        raise ValueError(f"cutoff_hz must lie between 0 and the Nyquist frequency "
                         f"({sample_rate / 2:g} Hz), got {cutoff_hz!r}")
    spectrum = np.fft.rfft(x)
    frequencies = np.fft.rfftfreq(x.size, d=1.0 / sample_rate)
    spectrum[frequencies > cutoff_hz] = 0.0
    return np.fft.irfft(spectrum, n=x.size).astype(np.float32)


@dataclass(frozen=True)
class Trial:
    """One trial: a clip, its stimuli in the order shown and their neutral labels.

    Notebook: 08_judging_methods.ipynb

    ``stimuli[i]`` is the system behind label ``labels[i]`` ("A", "B", ...); the listener sees
    only the labels.
    """

    index: int
    clip: str
    stimuli: tuple[str, ...]

    @property
    def labels(self) -> tuple[str, ...]:
        """``("A", "B", ...)``, one per stimulus."""
        return tuple(string.ascii_uppercase[:len(self.stimuli)])

    @property
    def mapping(self) -> dict[str, str]:
        """``{label: system}``: the key kept from the listener."""
        return dict(zip(self.labels, self.stimuli))

    def system_of(self, label: str) -> str:
        """The system behind ``label`` (``KeyError`` for a label the trial does not have)."""
        if label not in self.mapping:
            raise KeyError(f"trial {self.index} has no stimulus {label!r}; its labels are "
                           f"{list(self.labels)}")
        return self.mapping[label]

    def label_of(self, system: str) -> str:
        """The label ``system`` plays under in this trial."""
        if system not in self.stimuli:
            raise KeyError(f"trial {self.index} has no system {system!r}; its systems are "
                           f"{sorted(self.stimuli)}")
        return self.labels[self.stimuli.index(system)]


@dataclass(frozen=True)
class ListeningTest:
    """A seeded MUSHRA design: which clips, which systems, and in what orders.

    Notebook: 08_judging_methods.ipynb

    ``clips``: the clip names in the order given; ``systems``: the systems under test;
    ``trials``: one :class:`Trial` per clip in the order a listener meets them (``index`` is the
    position in that order). Every trial's stimuli are ``systems`` + ``reference`` (hidden) +
    ``anchor``, shuffled. Build it with :func:`design_test`.
    """

    seed: int
    clips: tuple[str, ...]
    systems: tuple[str, ...]
    reference: str
    anchor: str
    anchor_cutoff_hz: float
    trials: tuple[Trial, ...]

    @property
    def stimuli(self) -> tuple[str, ...]:
        """Every system a trial plays under a letter: those under test, reference, anchor."""
        return self.systems + (self.reference, self.anchor)

    @property
    def fingerprint(self) -> str:
        """A short hash of what defines the design (seed, clips, systems, controls): a ratings
        file stores it so that ratings are never mixed with another design's."""
        identity = {"seed": self.seed, "clips": list(self.clips), "systems": list(self.systems),
                    "reference": self.reference, "anchor": self.anchor,
                    "anchor_cutoff_hz": self.anchor_cutoff_hz}
        text = json.dumps(identity, sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    def trial(self, index: int) -> Trial:
        """The trial at position ``index`` of the listening order (``IndexError`` outside)."""
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or \
                not 0 <= index < len(self.trials):
            raise IndexError(f"trial index must be 0 to {len(self.trials) - 1}, got {index!r}")
        return self.trials[int(index)]


def _name(clip) -> str:
    name = clip if isinstance(clip, str) else getattr(clip, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"a clip must be a compare.Clip or a clip name, got {clip!r}")
    return name


def design_test(clips: Sequence, systems: Sequence[str], seed: int, *,
                reference: str = REFERENCE, anchor: str = ANCHOR,
                anchor_cutoff_hz: float = ANCHOR_CUTOFF_HZ) -> ListeningTest:
    """A :class:`ListeningTest`: one trial per clip, stimuli and trials shuffled from ``seed``.

    Notebook: 08_judging_methods.ipynb

    ``clips``: :class:`tfckd_lite.compare.Clip` objects or clip names; ``systems``: the systems
    under test, e.g. ``["noisy", "lite-student", "lite-student-tfckd", "lite-teacher"]``. One
    generator seeded with ``seed`` draws the trial order, then each trial's stimulus order; a
    trial whose order repeats an earlier trial's is drawn again while unused orders remain, so
    no two trials share an order (a listener cannot learn that "C" is the teacher). The same
    arguments always give the same design.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    names = [_name(c) for c in clips]
    if not names:
        raise ValueError("a listening test needs at least one clip")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"clips appear more than once: {repeated}")
    systems = [str(s) for s in systems]
    if not systems:
        raise ValueError("a listening test needs at least one system under test")
    stimuli = systems + [reference, anchor]
    doubled = sorted({s for s in stimuli if stimuli.count(s) > 1})
    if doubled:
        raise ValueError(f"system names must be distinct from each other and from the reference "
                         f"{reference!r} and anchor {anchor!r}; repeated: {doubled}")
    if len(stimuli) > 26:
        raise ValueError(f"{len(stimuli)} stimuli per trial: the labels A to Z allow 26 (and "
                         f"MUSHRA advises at most 12)")
    rng = np.random.default_rng(int(seed))
    order = rng.permutation(len(names))
    used: set[tuple[int, ...]] = set()
    possible = math.factorial(len(stimuli))
    trials = []
    for position, clip_index in enumerate(order):
        permutation = tuple(int(i) for i in rng.permutation(len(stimuli)))
        while permutation in used and len(used) < possible:
            permutation = tuple(int(i) for i in rng.permutation(len(stimuli)))
        used.add(permutation)
        trials.append(Trial(position, names[clip_index],
                            tuple(stimuli[i] for i in permutation)))
    return ListeningTest(int(seed), tuple(names), tuple(systems), reference, anchor,
                         float(anchor_cutoff_hz), tuple(trials))
