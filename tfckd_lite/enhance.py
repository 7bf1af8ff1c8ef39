"""Enhance your own recordings: audio files of any length, rate and channel count, in chunks.

Notebook: 02_dpdcrn.ipynb

    python -m tfckd_lite enhance IN.wav [IN2.wav ...] --model lite-teacher --out DIR

``--model`` is a shipped model name (``tfckd_lite.pretrained.available()``: the lite teacher,
the lite student and the distilled students) or a ``.safetensors`` model file. Each input
becomes ``DIR/<stem>.wav``. What happens to each kind of input, and why:

==============================  ==============================================================
input                           what happens
==============================  ==============================================================
another sample rate             resampled to the model's 16 kHz on the fly (soxr HQ, the
                                same resampler as :func:`tfckd_lite.audio.resample`); said in
                                that file's line of output
as many channels as the model   taken as they are (a multi-microphone model file takes
                                multi-channel files, channel 1 = the reference microphone)
several channels, mono model    refused with a hint, unless ``--downmix first`` (the first
                                channel) or ``--downmix mean`` (their average; two distant
                                microphones can comb-filter, so it is not the default)
other channel counts            refused: the model was trained for its count
NaN/inf samples, an empty,      that file is refused with a specific ``error: FILE: reason``
silent (peak below -90 dBFS),   line on stderr; the other files are still enhanced, a summary
too short (< 32 ms) or          line on stdout lists the failures, and the exit status is 1
unreadable file
an existing output              refused unless ``--overwrite``
==============================  ==============================================================

The output is a 32-bit float WAV at the model's 16 kHz: the output has nothing above 8 kHz,
so resampling back to the input's rate would only make the file bigger, and float samples are
never clipped or requantised (an enhanced loud recording may exceed full scale). Each output is
written to a temporary file in ``DIR`` and renamed into place when complete, so a reader (or an
interrupted run) never sees half a file.

Chunks. DPDCRN is not a streaming model (README, "Causality"): its inter-frame attention looks
at every frame of its input and its normalisation layers use whole-input statistics. Its memory
also grows with the square of the input length (the attention matrix): measured for the lite
teacher, +0.35 GB for 8 s, +1.8 GB for 20 s and +6.4 GB for 40 s, so a 10-minute file cannot be
enhanced in one piece at all. :func:`enhance_long` therefore cuts the signal into chunks of
``chunk_seconds`` (default 8 s) that overlap by ``overlap_seconds`` (default 2 s), enhances each
chunk on its own, and joins neighbours with a raised-cosine cross-fade over the middle half of
their overlap. Every output sample thus comes from a chunk that saw at least a quarter of the
overlap (0.5 s, 31 frames) of context on both sides, as far as the convolutions reach (the
two dilated dense blocks together look 30 frames into the past); the cross-fade hides the remaining difference between two chunks'
views of the same stretch. The chunk starts lie on the STFT's hop grid, so the chunks' frames
are the frames of the whole signal. Memory is that of one chunk: files are read, resampled,
enhanced and written block by block. A signal no longer than one chunk is enhanced in one
piece, exactly as ``model.enhance`` does. ``tests/test_enhance.py`` checks that the chunked
output matches the whole-signal output and shows no seam, and measures a 10-minute file's
memory; the README gives the numbers.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch

from .audio import AudioError, audio_info
from .files import atomic_writer
from .stft import HOP_LENGTH, N_FFT

DEFAULT_CHUNK_SECONDS = 8.0
DEFAULT_OVERLAP_SECONDS = 2.0
SILENCE_PEAK = 10 ** (-90 / 20)   # below -90 dBFS (a third of a 16-bit step) nothing is heard
READ_BLOCK_SECONDS = 1.0          # how much of a file is read at once
DOWNMIX_CHOICES = ("first", "mean")


@dataclass(frozen=True)
class ChunkPlan:
    """Chunk length, overlap and cross-fade in samples, all on the STFT's hop grid.

    Notebook: 02_dpdcrn.ipynb

    A chunk starts every ``step = chunk - overlap`` samples; two neighbours are cross-faded over
    ``fade`` samples in the middle of their overlap, which leaves ``margin`` samples of context
    on each side of every output sample taken from a chunk.
    """

    chunk: int
    overlap: int

    @classmethod
    def from_seconds(cls, chunk_seconds: float, overlap_seconds: float,
                     sample_rate: int) -> "ChunkPlan":
        def on_grid(seconds: float) -> int:
            return int(round(seconds * sample_rate / HOP_LENGTH)) * HOP_LENGTH

        chunk, overlap = on_grid(chunk_seconds), on_grid(overlap_seconds)
        if overlap < 2 * N_FFT:
            raise ValueError(f"overlap_seconds={overlap_seconds} is too short: at least "
                             f"{2 * N_FFT / sample_rate:.3f} s are needed so that the cross-fade "
                             f"lies between two chunks' edges")
        if chunk < 2 * overlap:
            raise ValueError(f"chunk_seconds={chunk_seconds} must be at least twice "
                             f"overlap_seconds={overlap_seconds}, or most of the work is "
                             f"repeated")
        return cls(chunk, overlap)

    @property
    def step(self) -> int:
        return self.chunk - self.overlap

    @property
    def fade(self) -> int:
        return self.overlap // 2

    @property
    def margin(self) -> int:
        return (self.overlap - self.fade) // 2


def enhance_long(model, wave, chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
                 overlap_seconds: float = DEFAULT_OVERLAP_SECONDS) -> np.ndarray:
    """Enhance a signal of any length in overlapping chunks; returns float32 ``[N]``.

    Notebook: 02_dpdcrn.ipynb

    ``wave`` is ``[N]`` or ``[mics, N]`` (numpy or torch) at the model's sample rate, with as
    many channels as the model takes. The chunking (sizes, cross-fade, why) is described in the
    module docstring; a signal no longer than one chunk gives exactly ``model.enhance(wave)``.
    """
    wave = torch.as_tensor(wave).detach().float().cpu().numpy()
    if wave.ndim == 1:
        wave = wave[None]
    if wave.shape[-1] == 0:
        raise ValueError("the signal has no samples")
    return np.concatenate(list(enhance_stream(model, [wave], chunk_seconds, overlap_seconds)))


def enhance_stream(model, blocks: Iterable[np.ndarray],
                   chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
                   overlap_seconds: float = DEFAULT_OVERLAP_SECONDS) -> Iterator[np.ndarray]:
    """Enhance a signal that arrives in blocks; yields the enhanced signal in pieces.

    Notebook: 02_dpdcrn.ipynb

    ``blocks`` are ``[mics, n]`` float arrays at the model's rate, of any sizes; the pieces
    yielded, concatenated, are the enhanced ``[N]`` signal of :func:`enhance_long`. Only one
    chunk of input (and one cross-fade of output) is held at a time.
    """
    plan = ChunkPlan.from_seconds(chunk_seconds, overlap_seconds, model.stft.sample_rate)
    ramp = (np.arange(plan.fade, dtype=np.float32) + 0.5) / plan.fade
    fade_in = np.sin(0.5 * np.pi * ramp) ** 2              # fade_in + (1 - fade_in) = 1
    pending = np.zeros((model.config.in_channels, 0), dtype=np.float32)
    tail = None                      # the previous chunk's output over the next cross-fade

    def join(chunk: np.ndarray, last: bool) -> np.ndarray:
        nonlocal tail
        out = _enhance_chunk(model, chunk)
        start = 0
        pieces = []
        if tail is not None:         # blend into the previous chunk in the middle of the overlap
            start = plan.margin + plan.fade
            pieces.append(tail * (1 - fade_in) + out[plan.margin:start] * fade_in)
        if last:
            pieces.append(out[start:])
        else:
            stop = plan.step + plan.margin
            pieces.append(out[start:stop])
            tail = out[stop:stop + plan.fade]
        return np.concatenate(pieces)

    for block in blocks:
        block = np.asarray(block, dtype=np.float32)
        if block.ndim != 2 or block.shape[0] != pending.shape[0]:
            raise ValueError(f"expected blocks of shape [{pending.shape[0]}, n] (the model's "
                             f"channels), got {block.shape}")
        pending = np.concatenate((pending, block), axis=1)
        while pending.shape[1] > plan.chunk:       # more follows: this chunk is not the last
            yield join(pending[:, :plan.chunk], last=False)
            pending = pending[:, plan.step:]
    if pending.shape[1]:
        yield join(pending, last=True)


def _enhance_chunk(model, chunk: np.ndarray) -> np.ndarray:
    device = next(model.parameters()).device
    x = torch.from_numpy(np.ascontiguousarray(chunk)).to(device)
    x = x[0] if model.config.in_channels == 1 else x[None]       # [n] or [1, mics, n]
    with torch.no_grad():
        out = model.enhance(x)
    return out.reshape(-1).float().cpu().numpy()


# ------------------------------------------------------------------------------------- files

@dataclass(frozen=True)
class EnhancedFile:
    """What :func:`enhance_file` wrote.

    Notebook: 02_dpdcrn.ipynb
    """

    source: Path
    output: Path
    seconds: float
    input_rate: int
    output_rate: int

    @property
    def resampled(self) -> bool:
        return self.input_rate != self.output_rate


def output_path(source, out_dir) -> Path:
    """Where :func:`enhance_file` writes the enhanced ``source``: ``out_dir/<stem>.wav``.

    Notebook: 02_dpdcrn.ipynb
    """
    return Path(out_dir) / f"{Path(source).stem}.wav"


def enhance_file(model, source, out_dir, *, overwrite: bool = False, downmix: str | None = None,
                 chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
                 overlap_seconds: float = DEFAULT_OVERLAP_SECONDS) -> EnhancedFile:
    """Enhance the audio file ``source`` into ``out_dir/<stem>.wav`` (see the module docstring).

    Notebook: 02_dpdcrn.ipynb

    Raises :class:`tfckd_lite.audio.AudioError` naming the file for one that cannot be enhanced
    (unreadable, empty, too short, silent, NaN/inf samples, a channel count the model does not
    take) and ``FileExistsError`` for an existing output without ``overwrite``; nothing is
    written then. The file is checked completely before the model runs.
    """
    import soundfile as sf

    if downmix not in (None, *DOWNMIX_CHOICES):
        raise ValueError(f"downmix must be None, 'first' or 'mean', got {downmix!r}")
    source = Path(source)
    target = output_path(source, out_dir)
    if target.exists() and target.resolve() == source.resolve():
        raise FileExistsError(f"{target}: the output would replace its own input; choose "
                              f"another --out folder")
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass --overwrite (overwrite=True) to replace it")
    wanted = model.config.in_channels
    if downmix and wanted > 1:
        raise ValueError(f"downmix is for single-channel models; this one takes {wanted} "
                         f"channels")
    info = audio_info(source)                         # missing / empty / not audio -> AudioError
    if info.channels != wanted and not (wanted == 1 and downmix):
        hint = ("; pass --downmix first (its first channel) or --downmix mean (their average)"
                if wanted == 1 else "")
        raise AudioError(source, f"has {info.channels} channel(s) but the model takes "
                                 f"{wanted}{hint}")
    rate = model.stft.sample_rate
    frames_out = int(round(info.frames * rate / info.sample_rate))
    if frames_out < N_FFT:
        raise AudioError(source, f"too short: {info.frames} samples at {info.sample_rate} Hz; at "
                                 f"least {N_FFT / rate * 1000:.0f} ms are needed for one STFT "
                                 f"frame")
    _check_samples(source, info.sample_rate)
    target.parent.mkdir(parents=True, exist_ok=True)
    blocks = _model_rate_blocks(source, info, rate, downmix)
    with atomic_writer(target) as handle:
        with sf.SoundFile(handle, "w", samplerate=rate, channels=1, subtype="FLOAT",
                          format="WAV") as out:
            for piece in enhance_stream(model, blocks, chunk_seconds, overlap_seconds):
                out.write(piece)
    return EnhancedFile(source, target, info.duration, info.sample_rate, rate)


def _blocks(source: Path, sample_rate: int) -> Iterator[np.ndarray]:
    """The file's samples as float32 ``[frames, channels]`` blocks; read errors -> AudioError."""
    import soundfile as sf

    size = max(1, int(READ_BLOCK_SECONDS * sample_rate))
    try:
        with sf.SoundFile(str(source)) as f:
            while True:
                block = f.read(size, dtype="float32", always_2d=True)
                if not len(block):
                    return
                yield block
    except RuntimeError as error:                     # soundfile's errors are RuntimeErrors
        raise AudioError(source, f"cannot read audio ({error})") from error


def _check_samples(source: Path, sample_rate: int) -> None:
    """Refuse NaN/inf samples (naming the first) and silence, before any model work."""
    peak, position, bad_count, first_bad = 0.0, 0, 0, None
    for block in _blocks(source, sample_rate):
        bad = ~np.isfinite(block)
        if bad.any():
            bad_count += int(bad.sum())
            if first_bad is None:
                first_bad = position + int(np.argwhere(bad)[0][0])
        elif not bad_count:
            peak = max(peak, float(np.abs(block).max()))
        position += len(block)
    if bad_count:
        raise AudioError(source, f"{bad_count} NaN/inf samples (first at sample {first_bad}, "
                                 f"{first_bad / sample_rate:.3f} s); the file is corrupt or was "
                                 f"written from a diverged model")
    if peak < SILENCE_PEAK:
        raise AudioError(source, f"silent: its peak is {_dbfs(peak)} (below "
                                 f"{_dbfs(SILENCE_PEAK)}); there is nothing to enhance")


def _dbfs(value: float) -> str:
    return "-inf dBFS (all zeros)" if value == 0 else f"{20 * np.log10(value):.0f} dBFS"


def _model_rate_blocks(source: Path, info, rate: int, downmix: str | None):
    """``[mics, n]`` blocks at the model's rate: channels picked or mixed, then resampled."""
    import soxr

    resampler = None
    if info.sample_rate != rate:
        channels = 1 if downmix else info.channels
        resampler = soxr.ResampleStream(info.sample_rate, rate, channels, dtype="float32",
                                        quality="HQ")
    blocks = _blocks(source, info.sample_rate)
    block = next(blocks, None)
    while block is not None:
        following = next(blocks, None)
        if downmix == "first":
            block = block[:, :1]
        elif downmix == "mean":
            block = block.mean(axis=1, keepdims=True)
        if resampler is not None:                 # [frames, channels] in and out
            block = resampler.resample_chunk(np.ascontiguousarray(block),
                                             last=following is None)
        yield np.ascontiguousarray(block.T)
        block = following


# --------------------------------------------------------------------------------------- CLI

def register(subparsers) -> None:
    """``enhance`` subcommand of ``python -m tfckd_lite``.

    Notebook: 02_dpdcrn.ipynb
    """
    p = subparsers.add_parser("enhance", help="enhance your own audio files with a shipped "
                                              "model or a model file")
    p.add_argument("inputs", nargs="+", metavar="IN", help="audio files (WAV, FLAC, ...)")
    p.add_argument("--model", required=True,
                   help="a shipped model name (e.g. lite-teacher) or a .safetensors model file")
    p.add_argument("--out", required=True, help="output folder; each IN becomes OUT/<stem>.wav")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--downmix", choices=DOWNMIX_CHOICES, default=None,
                   help="for a single-channel model, take the first channel of a multi-channel "
                        "file, or the mean of its channels (default: refuse such files)")
    p.add_argument("--chunk-seconds", type=float, default=DEFAULT_CHUNK_SECONDS,
                   help="length of the pieces a long file is enhanced in (memory grows with "
                        "its square)")
    p.add_argument("--overlap-seconds", type=float, default=DEFAULT_OVERLAP_SECONDS,
                   help="overlap of neighbouring pieces (context and cross-fade)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_enhance_command)


def _enhance_command(args) -> int:
    """Enhance every input; one line per file, exit status 1 if any file failed.

    A file that cannot be enhanced gets one ``error: ...`` line on stderr and the others are
    still done; problems with the command itself (an unknown model, two inputs that would write
    the same output, chunk sizes out of range) stop it before any work, as library errors
    (:mod:`tfckd_lite.cli`, exit status 2).
    """
    from tqdm.auto import tqdm

    from . import pretrained
    from .checkpoint import load_model
    from .cli import UsageError

    targets: dict[Path, str] = {}
    for name in args.inputs:
        target = output_path(name, args.out)
        if target in targets:
            raise UsageError(f"{targets[target]} and {name} would both be written to {target}; "
                             f"enhance them into different --out folders")
        targets[target] = name
    model = load_model(pretrained.resolve(args.model), map_location=args.device)
    ChunkPlan.from_seconds(args.chunk_seconds, args.overlap_seconds, model.stft.sample_rate)
    if args.downmix and model.config.in_channels > 1:
        raise UsageError(f"--downmix is for single-channel models; {args.model} takes "
                         f"{model.config.in_channels} channels")
    failed = []
    bar = tqdm(args.inputs, desc="enhance", unit="file", disable=args.quiet)
    for name in bar:
        try:
            result = enhance_file(model, name, args.out, overwrite=args.overwrite,
                                  downmix=args.downmix, chunk_seconds=args.chunk_seconds,
                                  overlap_seconds=args.overlap_seconds)
        except (AudioError, FileExistsError) as error:
            failed.append(name)
            tqdm.write(f"error: {error}", file=sys.stderr)
            continue
        note = (f"; resampled from {result.input_rate} Hz to {result.output_rate} Hz"
                if result.resampled else "")
        tqdm.write(f"{name} -> {result.output} ({result.seconds:.1f} s{note})")
    done = len(args.inputs) - len(failed)
    print(f"enhanced {done} of {len(args.inputs)} file(s) into {args.out} with {args.model}"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0
