"""Reverberant shoebox rooms heard by two first-order Ambisonics microphones (simulated L3DAS23).

Notebook: 07_multichannel.ipynb

This module turns a *scene* (a room, its reverberation time, two microphones, the target talker
and one to three noise sources) into the signals of the simulated L3DAS23 set that
``builder_mc.py`` writes. It knows nothing about speech pools or files.

**Microphones.** As in L3DAS23, two first-order Ambisonics microphones with the same
orientation: mic A at a random spot 1.6 m above the floor (L3DAS23's height) and mic B 20 cm
from it along x. Each gives 4 channels in the AmbiX convention that L3DAS23's Task 1 files
use (B-format, ACN channel order W, Y, Z, X, SN3D normalisation): for a plane wave from unit
direction ``u = (x, y, z)`` the channel gains are ``(1, y, z, x)``. Each channel is a
pyroomacoustics microphone with an analytic directivity at the same point: omnidirectional for
W, and figure-of-eight (cardioid family with ``p = 0``, signed) along +y, +z, +x for Y, Z, X.
The image-source method applies the directivity per image source, which is exact for an ideal
first-order microphone (``tests/test_data_rooms.py`` checks the gains on a direct path).

**Rooms.** Shoebox rooms 3-8 m x 2.5-6 m x 2.5-3.5 m with one absorption coefficient for all
walls, from the target RT60 (0.2-0.8 s) by Sabine's formula (``pyroomacoustics.inverse_sabine``).
The reflections arriving before :data:`MIX_TIME` (60 ms) come from the image-source method
(every image that can arrive by then: see :func:`ism_order`); after it the reverberation is a
diffuse tail: 32 plane waves from directions spread evenly over the sphere, each carrying
independent Gaussian noise under the exponential envelope of the target RT60, encoded with the
same Ambisonics gains and delayed between mic A and mic B by their path difference. Its level
continues the image-source energy of the 20 ms before :data:`MIX_TIME`. A full-order image
model of a 0.8 s room takes seconds per scene (about 100 reflection orders); this hybrid takes
tens of milliseconds and has the target decay by construction (the measured RT60 is logged).

**Alignment and level.** The label is the dry speech (the model must denoise *and*
dereverberate). The target's impulse responses are scaled so that its direct path at mic A's W
channel has gain 1, and every signal is advanced by the integer part of that direct path's
delay: the label lines up, to within half a sample, with the direct sound in W, so the
reference-channel mask has no propagation delay to learn. Mic B keeps its delay relative to A.

**SNR** is ``10 log10(sum(s^2) / sum(n^2))`` over the whole file at mic A's W channel, where
``s`` is the reverberant target (its image at the microphone, not the dry label) and ``n`` the
sum of the noise sources' images. Noise sources play steadily: their signals start before the
file so that their reverberation is already built up at its first sample.

**How close to a real Ambisonics microphone, and to L3DAS23.** A real first-order microphone
(a tetrahedron of four cardioid capsules, A-format, matrixed to B-format) is close to this ideal
only at low and mid frequencies: the capsules are 1-2 cm apart, so above a few kHz spatial
aliasing bends the X, Y, Z patterns and the channels' phases; its directivity varies with
frequency, it has capsule self-noise and mismatch, and the body of the microphone scatters.
None of that is simulated: the patterns here are ideal at every frequency and noiseless. The
walls absorb equally at every frequency and reflect specularly (no scattering, no air
absorption, no furniture); the late reverberation is an isotropic, exponentially decaying
diffuse field, not the room's own late reflections. L3DAS23 itself renders its scenes with
SoundSpaces 2.0 (acoustic ray tracing with frequency-dependent, per-material absorption,
scattering and transmission) in 68 furnished Matterport houses, with 443 microphone positions
and sources on cylinders around mic A; its speech is LibriSpeech (up to 12 s), its noise 16
FSD50K office classes, up to 3 overlapping. Here the speech and the procedural noise are the
reduced set's (``builder.py``), clips are a few seconds long, and every scene has its own room.
"""

from __future__ import annotations

import math

import numpy as np

from ..audio import SAMPLE_RATE

SPEED_OF_SOUND = 343.0                        # m/s, pyroomacoustics' default (checked below)
AMBISONICS_CHANNELS = ("W", "Y", "Z", "X")    # ACN order; SN3D normalisation
MICROPHONES = ("A", "B")
MIC_HEIGHT = 1.6                              # m, both microphones (as in L3DAS23)
MIC_B_OFFSET = (0.20, 0.0, 0.0)               # m, mic B relative to mic A (as in L3DAS23)
RT60_RANGE = (0.2, 0.8)                       # s, target reverberation times
ROOM_RANGES = ((3.0, 8.0), (2.5, 6.0), (2.5, 3.5))   # m, length, width, height
TARGET_DISTANCE = (0.5, 3.0)                  # m, target talker from mic A
TARGET_HEIGHT = (1.2, 1.9)                    # m, a seated or standing talker's mouth
NOISE_SOURCES = (1, 3)                        # noise sources per scene (inclusive)
WALL_MARGIN = 0.4                             # m, minimum distance of any point from a wall
MIN_SEPARATION = 0.5                          # m, between sources and from the microphones
MIX_TIME = 0.060                              # s, image sources before it, diffuse tail after
FIT_WINDOW = 0.020                            # s, image-source energy the tail continues
TAIL_DIRECTIONS = 32                          # plane waves of the diffuse tail


def ambisonic_gains(direction) -> np.ndarray:
    """SN3D gains of the ACN channels (W, Y, Z, X) for a plane wave arriving from ``direction``.

    Notebook: 07_multichannel.ipynb

    ``direction`` is a vector ``(x, y, z)`` (any length) pointing from the microphone to the
    source, or an array ``[..., 3]`` of them; the result is ``[..., 4]``.
    """
    u = np.asarray(direction, dtype=np.float64)
    u = u / np.linalg.norm(u, axis=-1, keepdims=True)
    return np.stack([np.ones(u.shape[:-1]), u[..., 1], u[..., 2], u[..., 0]], axis=-1)


def _directivities():
    from pyroomacoustics.directivities import FigureEight, Omnidirectional

    return [Omnidirectional(), FigureEight([0.0, 1.0, 0.0]), FigureEight([0.0, 0.0, 1.0]),
            FigureEight([1.0, 0.0, 0.0])]


# --------------------------------------------------------------------------------------------
# scenes


def _point(rng, dims, heights=None, margin=WALL_MARGIN) -> np.ndarray:
    low = np.full(3, margin)
    high = np.asarray(dims) - margin
    if heights is not None:
        low[2], high[2] = heights
    return rng.uniform(low, high)


def draw_scene(rng: np.random.Generator, noise_sources: int) -> dict:
    """A random room, RT60, microphone pair, target talker and ``noise_sources`` noise positions.

    Notebook: 07_multichannel.ipynb

    Returns a JSON-ready dict (metres and seconds, rounded to the millimetre and millisecond so
    that the manifest holds the exact scene that was rendered).
    """
    if not NOISE_SOURCES[0] <= noise_sources <= NOISE_SOURCES[1]:
        raise ValueError(f"noise_sources must be in {NOISE_SOURCES}, got {noise_sources}")
    dims = np.round([rng.uniform(*r) for r in ROOM_RANGES], 3)
    rt60 = round(float(rng.uniform(*RT60_RANGE)), 3)
    offset = np.asarray(MIC_B_OFFSET)
    low = np.full(2, WALL_MARGIN)
    mic_a = np.r_[rng.uniform(low, dims[:2] - WALL_MARGIN - offset[:2]), MIC_HEIGHT]
    mics = [mic_a, mic_a + offset]

    def far_enough(p, others):
        return all(np.linalg.norm(p - q) >= MIN_SEPARATION for q in others)

    for _ in range(1000):
        target = _point(rng, dims, TARGET_HEIGHT)
        if TARGET_DISTANCE[0] <= np.linalg.norm(target - mic_a) <= TARGET_DISTANCE[1] \
                and far_enough(target, mics):
            break
    else:                                   # cannot happen with the ranges above
        raise RuntimeError(f"no target position found in a {dims} m room")
    noises: list[np.ndarray] = []
    while len(noises) < noise_sources:
        p = _point(rng, dims)
        if far_enough(p, mics + [target] + noises):
            noises.append(p)
    return {"room": _millimetres(dims), "rt60": rt60, "mic_a": _millimetres(mic_a),
            "target": _millimetres(target), "noises": [_millimetres(p) for p in noises]}


def _millimetres(point) -> list[float]:
    return [round(float(v), 3) for v in point]


def ism_order(dims, mix_time: float = MIX_TIME) -> int:
    """Image-source order that includes every reflection arriving within ``mix_time``.

    Notebook: 07_multichannel.ipynb

    An image of order ``n = |i| + |j| + |k|`` (cell indices of the mirrored room) is at least
    ``(|i| - 1) Lx`` away along x, and so on, hence at least ``L_min (n - 3) / sqrt(3)`` away;
    images closer than ``c * mix_time`` therefore all have ``n <= sqrt(3) c t / L_min + 3``.
    """
    return int(math.ceil(math.sqrt(3.0) * SPEED_OF_SOUND * mix_time / min(dims) + 3))


# --------------------------------------------------------------------------------------------
# impulse responses


def _fibonacci_sphere(n: int) -> np.ndarray:
    k = np.arange(n) + 0.5
    z = 1.0 - 2.0 * k / n
    phi = math.pi * (1.0 + math.sqrt(5.0)) * k
    r = np.sqrt(1.0 - z ** 2)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def _diffuse_tail(rng, level: float, rt60: float, start: int, stop: int, origin: int,
                  fs: int) -> np.ndarray:
    """``[8, stop]`` samples of an isotropic diffuse field (zero before ``start``).

    ``level`` is the W channel's RMS at ``origin`` (the time of emission); the envelope decays
    by 60 dB per ``rt60``. Each plane wave is heard at mic B earlier or later than at mic A by
    the projection of the microphones' spacing on its direction (rounded to a sample).
    """
    directions = _fibonacci_sphere(TAIL_DIRECTIONS)
    gains = ambisonic_gains(directions).T / math.sqrt(TAIL_DIRECTIONS)     # [4, P]
    n = np.arange(stop)
    envelope = level * np.exp(-3.0 * math.log(10.0) * (n - origin) / (rt60 * fs))
    envelope[:start] = 0.0
    delays = np.rint(directions @ np.asarray(MIC_B_OFFSET) * fs / SPEED_OF_SOUND).astype(int)
    pad = int(np.abs(delays).max())
    waves = rng.standard_normal((TAIL_DIRECTIONS, stop + 2 * pad))
    waves[:, pad:pad + stop] *= envelope
    waves[:, :pad] = 0.0
    waves[:, pad + stop:] = 0.0
    at_a = waves[:, pad:pad + stop]
    # a wave from direction u reaches mic B (at offset r) r.u / c seconds before mic A
    at_b = np.stack([waves[p, pad + d:pad + d + stop] for p, d in enumerate(delays)])
    return np.concatenate([gains @ at_a, gains @ at_b])


def ambisonic_room(dims, absorption: float, max_order: int, sources, mic_a, fs: int = SAMPLE_RATE):
    """A pyroomacoustics shoebox with ``sources`` and the two Ambisonics microphones at ``mic_a``.

    Notebook: 07_multichannel.ipynb

    Microphones 0-3 are mic A's W, Y, Z, X and 4-7 mic B's (each channel a pyroomacoustics
    microphone with its directivity, all four at the same point). ``max_order=0`` gives the
    direct paths only (an anechoic room).
    """
    import pyroomacoustics as pra

    pra.constants.set("num_threads", 1)      # libroom's threads would make sums order-dependent
    if pra.constants.get("c") != SPEED_OF_SOUND:
        raise RuntimeError(f"pyroomacoustics' speed of sound is {pra.constants.get('c')} m/s; "
                           f"this module assumes {SPEED_OF_SOUND} m/s")
    room = pra.ShoeBox(list(dims), fs=fs, max_order=max_order,
                       materials=pra.Material(absorption), air_absorption=False)
    for position in sources:
        room.add_source(list(position))
    mic_a = np.asarray(mic_a, dtype=np.float64)
    for position in (mic_a, mic_a + np.asarray(MIC_B_OFFSET)):
        for directivity in _directivities():
            room.add_microphone(position, directivity=directivity)
    return room


def rir_length(rt60: float, fs: int = SAMPLE_RATE) -> int:
    """Samples of the impulse responses of a room with ``rt60``: the tail down to -70 dB.

    Notebook: 07_multichannel.ipynb
    """
    import pyroomacoustics as pra

    return pra.constants.get("frac_delay_length") // 2 + int(math.ceil(rt60 * fs * 7 / 6))


def impulse_responses(scene: dict, rng: np.random.Generator, fs: int = SAMPLE_RATE) -> dict:
    """Impulse responses from every source of ``scene`` to the 8 channels (A: W Y Z X, B: ...).

    Notebook: 07_multichannel.ipynb

    Returns ``{"rirs": [S, 8, L] (target first, then the noise sources), "direct_delay":
    the target's direct-path arrival at mic A's W channel in samples (fractional),
    "direct_gain": its amplitude there, "ism_order": ...}``. ``rng`` draws the diffuse tails.
    """
    import pyroomacoustics as pra

    dims = scene["room"]
    absorption, _ = pra.inverse_sabine(scene["rt60"], dims, c=SPEED_OF_SOUND)
    order = ism_order(dims)
    sources = [scene["target"]] + list(scene["noises"])
    mic_a = np.asarray(scene["mic_a"], dtype=np.float64)
    room = ambisonic_room(dims, absorption, order, sources, mic_a, fs)
    room.compute_rir()

    offset = pra.constants.get("frac_delay_length") // 2     # pyroomacoustics' filter delay
    mix = int(round(MIX_TIME * fs)) + offset
    length = rir_length(scene["rt60"], fs)
    window = int(round(FIT_WINDOW * fs))
    rirs = np.zeros((len(sources), 8, length))
    for s, position in enumerate(sources):
        for m in range(8):
            early = np.asarray(room.rir[m][s], dtype=np.float64)[:mix]
            rirs[s, m, :len(early)] = early
        delay = np.linalg.norm(np.asarray(position) - mic_a) / SPEED_OF_SOUND * fs + offset
        start = max(mix - window, int(delay) + int(0.003 * fs))
        energy = np.sum(rirs[s, 0, start:mix] ** 2)
        decay = np.exp(-6.0 * math.log(10.0) * (np.arange(start, mix) - offset)
                       / (scene["rt60"] * fs))
        level = math.sqrt(energy / np.sum(decay))
        rirs[s] += _diffuse_tail(rng, level, scene["rt60"], mix, length, offset, fs)
    source = room.sources[0]
    direct = np.flatnonzero(np.asarray(source.orders) == 0)[0]
    distance = np.linalg.norm(np.asarray(scene["target"]) - mic_a)
    gain = float(np.asarray(source.damping)[0, direct] / distance)
    return {"rirs": rirs, "direct_delay": distance / SPEED_OF_SOUND * fs + offset,
            "direct_gain": gain, "ism_order": order}


def measure_rt60(rir, fs: int = SAMPLE_RATE) -> float:
    """Reverberation time of ``rir`` from its Schroeder decay between -5 and -35 dB (T30 x 2).

    Notebook: 07_multichannel.ipynb
    """
    from pyroomacoustics.experimental import measure_rt60 as schroeder

    return float(schroeder(np.asarray(rir, dtype=np.float64), fs=fs, decay_db=30))


# --------------------------------------------------------------------------------------------
# rendering


def _convolve(signal: np.ndarray, rirs: np.ndarray) -> np.ndarray:
    from scipy.signal import fftconvolve

    return fftconvolve(signal[None, :], rirs, axes=-1)


def render_scene(speech: np.ndarray, noises: list[np.ndarray], scene: dict, snr: float,
                 rng: np.random.Generator, fs: int = SAMPLE_RATE) -> dict:
    """The 8-channel mixture of the dry ``speech`` and the noise sources of ``scene``.

    Notebook: 07_multichannel.ipynb

    ``noises`` holds one dry signal per noise source, each at least ``len(speech)`` plus the
    impulse-response length long (see :func:`noise_length`); their relative levels are kept
    and their sum is scaled to ``snr`` (module docstring). Returns ``{"speech": [8, N]`` (the
    target's reverberant image at the microphones), ``"noise": [8, N]``, ``"noisy": [8, N]``,
    ``"snr": measured,
    "rt60": measured on the target's W channel at mic A, "direct_distance": metres,
    "ism_order": ...}``. The label to train on is the dry ``speech`` given, which lines up
    with the direct sound in W of mic A.
    """
    if len(noises) != len(scene["noises"]):
        raise ValueError(f"the scene has {len(scene['noises'])} noise sources, got "
                         f"{len(noises)} signals")
    speech = np.asarray(speech, dtype=np.float64)
    n = len(speech)
    responses = impulse_responses(scene, rng, fs)
    rirs = responses["rirs"] / responses["direct_gain"]
    shift = int(round(responses["direct_delay"]))
    length = rirs.shape[-1]
    image = _convolve(speech, rirs[0])[:, shift:shift + n]
    noise = np.zeros_like(image)
    for k, signal in enumerate(noises):
        signal = np.asarray(signal, dtype=np.float64)
        if len(signal) < n + length:
            raise ValueError(f"noise source {k} has {len(signal)} samples; it needs "
                             f"{n + length} (noise_length)")
        signal = signal[:n + length]
        noise += _convolve(signal, rirs[1 + k])[:, length + shift:length + shift + n]
    ratio = np.sum(image[0] ** 2) / np.sum(noise[0] ** 2)
    noise *= math.sqrt(ratio / 10 ** (snr / 10))
    measured = 10 * math.log10(np.sum(image[0] ** 2) / np.sum(noise[0] ** 2))
    distance = float(np.linalg.norm(np.asarray(scene["target"]) - np.asarray(scene["mic_a"])))
    return {"speech": image, "noise": noise, "noisy": image + noise, "snr": measured,
            "rt60": measure_rt60(rirs[0, 0], fs), "direct_distance": distance,
            "ism_order": responses["ism_order"]}


def noise_length(num_samples: int, scene: dict, fs: int = SAMPLE_RATE) -> int:
    """Samples each dry noise signal needs for a file of ``num_samples`` in ``scene``.

    Notebook: 07_multichannel.ipynb

    The noise plays from one impulse-response length before the file starts, so that its
    reverberation has built up by the first sample.
    """
    return num_samples + rir_length(scene["rt60"], fs)
