"""Batches for training (fixed-size random crops) and whole utterances for evaluation.

Notebook: 01_signals_and_data.ipynb

The calibration blocks of I²S-TFCKD hold one weight per frame and per utterance of a batch, so
training batches must always have the same shape: ``make_loader(..., train=True)`` yields
``(noisy [B, N], clean [B, N])`` (``noisy [B, M, N]`` for multi-microphone corpora) with
exactly ``batch_size`` items of exactly ``segment_samples`` samples. Incomplete last batches
are dropped, longer utterances are cropped at a random position, shorter ones are zero-padded
at the end.

Reproducibility: the order of epoch ``k`` is a permutation drawn from ``(seed, k)`` and the crop
of utterance ``i`` in epoch ``k`` from ``(seed, k, i)``, so a run resumed at epoch ``k``
(``set_epoch(k)`` or ``epoch=k``) sees exactly the batches of an uninterrupted run, and the
number of worker processes changes nothing.

On-the-fly remixing (``remix_snr=(low, high)``, Notebook: 03_training.ipynb). A fixed set of
pre-mixed pairs shows the network the same speech–noise combination, at the same SNR, in every
epoch. With remixing, item ``i`` of epoch ``k`` keeps its clean utterance but gets the noise of
another training pair ``j`` (``noisy_j - clean_j``, from a random offset and looped to length),
scaled to an SNR drawn uniformly from ``[low, high]`` dB over the whole utterance (as the
dataset builder defines SNR); ``j``, the offset and the SNR are drawn from ``(seed, k, i)`` too,
so remixed runs resume exactly as well. Every epoch then holds new mixtures: with 2,500 pairs
that is millions of possible combinations instead of 2,500. It assumes additive mixtures
(``noisy = clean + noise``), true of the reduced set, VoiceBank+DEMAND and DNS, and is refused
for multi-microphone corpora, whose noise is not one signal to rescale. A pair whose clean or
noise part is silent keeps its own mixture. What it bought on ``small`` (README, "How the
recipe got here"): +0.27 dB test SI-SDR for the 6-epoch lite student, −0.12 dB for the 20-epoch
teacher, which no longer overfitted the fixed pairs but did not generalise better to the test
split's unseen noises either; the shipped models are trained without it.
"""

from __future__ import annotations

import numpy as np
import torch

from ..stft import segment_samples
from .noise import mix_at_snr

#: Suggested remixing SNR range (dB), the one measured in the README: the fixed training grid's
#: 0 dB at the bottom and one grid step above its 15 dB at the top, so that the cleanest test
#: condition (VoiceBank's 17.5 dB) lies inside the training range instead of beyond it.
REMIX_SNR_DB = (0.0, 20.0)
_SILENT = 1e-10                       # energy (sum of squares) below which a part counts as silent


def check_remix_snr(remix_snr) -> tuple[float, float] | None:
    """``None`` or a validated ``(low, high)`` SNR range in dB (floats, ``low < high``).

    Notebook: 03_training.ipynb
    """
    if remix_snr is None:
        return None
    try:
        low, high = (float(v) for v in remix_snr)
    except (TypeError, ValueError):
        raise ValueError(f"remix_snr must be two numbers (low, high) in dB, got {remix_snr!r}") \
            from None
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise ValueError(f"remix_snr must be a finite range with low < high, got {remix_snr!r}")
    return low, high


def remix(clean: np.ndarray, noise: np.ndarray, snr: float, offset: int) -> np.ndarray:
    """``clean`` plus ``noise`` (looped from ``offset`` to ``clean``'s length) at ``snr`` dB.

    Notebook: 03_training.ipynb

    The SNR is measured over the whole of ``clean``, as the dataset builder measures it
    (:func:`~tfckd_lite.data.mix_at_snr`, without its peak limiting: training works on float
    signals, which cannot clip, and the clean target must stay as it is).
    """
    mixture = _mix_looped(clean, noise, snr, offset)
    if mixture is None:
        raise ValueError("remix needs a non-silent clean signal and noise")
    return mixture


def _mix_looped(clean: np.ndarray, noise: np.ndarray, snr: float,
                offset: int) -> np.ndarray | None:
    """:func:`remix`, or ``None`` when ``clean`` or the looped noise is silent."""
    looped = np.resize(np.roll(noise, -int(offset)), clean.shape[-1])
    if float(np.dot(clean, clean)) < _SILENT or float(np.dot(looped, looped)) < _SILENT:
        return None
    return mix_at_snr(clean, looped, snr, peak=None)[1].astype(np.float32)


class _Crops(torch.utils.data.Dataset):
    """Item ``(index, epoch)`` -> a random crop of pair ``index`` drawn from (seed, epoch, index);
    with ``remix_snr``, of its clean utterance remixed with another pair's noise."""

    def __init__(self, dataset, segment_samples: int, seed: int,
                 remix_snr: tuple[float, float] | None = None):
        self.dataset = dataset
        self.segment = segment_samples
        self.seed = seed
        self.lengths = dataset.lengths
        self.remix_snr = remix_snr

    def _remixed(self, index: int, epoch: int):
        """The whole utterance ``index`` with the noise of a random pair at a random SNR."""
        rng = np.random.default_rng([self.seed, epoch, index, 0x3E1])
        donor = int(rng.integers(0, len(self.dataset)))
        snr = float(rng.uniform(*self.remix_snr))
        noisy, clean = self.dataset.load(index)
        donor_noisy, donor_clean = self.dataset.load(donor)
        offset = int(rng.integers(0, donor_noisy.shape[-1]))
        mixture = _mix_looped(clean, donor_noisy - donor_clean, snr, offset)
        # a silent clean or noise part leaves nothing to rescale: keep the pair's own mixture
        return (noisy if mixture is None else mixture), clean

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        index, epoch = key
        rng = np.random.default_rng([self.seed, epoch, index, 0x5EC])
        length = self.lengths[index]
        start = int(rng.integers(0, length - self.segment + 1)) if length > self.segment else 0
        if self.remix_snr is None:
            noisy, clean = self.dataset.load(index, start=start, frames=self.segment)
        else:
            noisy, clean = self._remixed(index, epoch)
            noisy, clean = noisy[start:start + self.segment], clean[start:start + self.segment]
        size = min(noisy.shape[-1], clean.shape[-1], self.segment)
        noisy, clean = noisy[..., :size], clean[:size]
        if size < self.segment:
            pad = self.segment - size
            noisy = np.pad(noisy, [(0, 0)] * (noisy.ndim - 1) + [(0, pad)])
            clean = np.pad(clean, (0, pad))
        return torch.from_numpy(np.ascontiguousarray(noisy)), torch.from_numpy(clean)


class _EpochBatches(torch.utils.data.Sampler):
    def __init__(self, size: int, batch_size: int, seed: int, loader: "TrainLoader"):
        self.size, self.batch_size, self.seed, self.loader = size, batch_size, seed, loader

    def __len__(self) -> int:
        return self.size // self.batch_size

    def __iter__(self):
        epoch = self.loader.epoch
        order = np.random.default_rng([self.seed, epoch, 0x5A3]).permutation(self.size)
        for b in range(len(self)):
            yield [(int(i), epoch) for i in order[b * self.batch_size:(b + 1) * self.batch_size]]


def _single(batch):
    noisy, clean, name = batch[0]
    return noisy.unsqueeze(0), clean.unsqueeze(0), [name]


def _stack(batch):
    noisy, clean = zip(*batch)
    return torch.stack(noisy), torch.stack(clean)


class TrainLoader:
    """Fixed-shape training batches; iterate it once per epoch (see :func:`make_loader`).

    Notebook: 01_signals_and_data.ipynb
    """

    def __init__(self, dataset, batch_size: int, segment_samples: int, seed: int = 0,
                 epoch: int = 0, num_workers: int = 0,
                 remix_snr: tuple[float, float] | None = None):
        if batch_size < 1 or segment_samples < 1:
            raise ValueError(f"batch_size and segment_samples must be positive, got "
                             f"{batch_size}, {segment_samples}")
        if len(dataset) < batch_size:
            raise ValueError(f"the dataset has {len(dataset)} pairs, fewer than one batch of "
                             f"{batch_size}; use a smaller batch or a larger dataset")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.segment_samples = int(segment_samples)
        self.seed = int(seed)
        self.epoch = int(epoch)
        self.num_workers = int(num_workers)
        self.remix_snr = check_remix_snr(remix_snr)
        if self.remix_snr is not None and getattr(dataset, "multichannel", False):
            raise ValueError("on-the-fly remixing (remix_snr) needs a single-microphone corpus: "
                             "the noise of a multi-microphone recording is not one signal to "
                             "rescale and add to another utterance")
        self._crops = _Crops(dataset, self.segment_samples, self.seed, self.remix_snr)

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass epoch ``epoch`` (e.g. when resuming a run).

        Notebook: 01_signals_and_data.ipynb
        """
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset) // self.batch_size

    def __iter__(self):
        loader = torch.utils.data.DataLoader(
            self._crops, batch_sampler=_EpochBatches(len(self.dataset), self.batch_size,
                                                     self.seed, self),
            num_workers=self.num_workers, collate_fn=_stack,
            persistent_workers=False)
        for batch in loader:
            yield batch
        self.epoch += 1                    # a full pass moves on to the next epoch


class EvalLoader:
    """Whole utterances one at a time: ``(noisy [1, N] or [1, M, N], clean [1, N], [name])``.

    Notebook: 01_signals_and_data.ipynb
    """

    def __init__(self, dataset, num_workers: int = 0):
        self.dataset = dataset
        self.num_workers = int(num_workers)

    def __len__(self) -> int:
        return len(self.dataset)

    def __iter__(self):
        if self.num_workers == 0:
            for i in range(len(self.dataset)):
                noisy, clean, name = self.dataset[i]
                yield noisy.unsqueeze(0), clean.unsqueeze(0), [name]
            return
        loader = torch.utils.data.DataLoader(self.dataset, batch_size=1, shuffle=False,
                                             num_workers=self.num_workers, collate_fn=_single)
        yield from loader


def make_loader(dataset, batch_size: int = 8, segment_seconds: float | None = 1.0,
                train: bool = True, seed: int = 0, num_workers: int = 0, epoch: int = 0,
                remix_snr: tuple[float, float] | None = None):
    """Training batches of fixed shape, or whole utterances for evaluation.

    Notebook: 01_signals_and_data.ipynb

    ``train=True``: a :class:`TrainLoader` yielding ``(noisy [B, N], clean [B, N])`` with
    ``B = batch_size`` and ``N = segment_samples(segment_seconds)`` always (``len()`` batches per
    epoch, incomplete batches dropped); epoch ``k`` is a function of ``(seed, k)``; each full
    pass advances the epoch, ``epoch=``/``set_epoch()`` sets it; ``remix_snr=(low, high)``
    remixes every item with another pair's noise at a random SNR (module docs). ``train=False``: an
    :class:`EvalLoader` yielding ``(noisy [1, N], clean [1, N], [name])`` per utterance
    (``batch_size`` and ``segment_seconds`` are ignored).
    """
    if not train:
        return EvalLoader(dataset, num_workers=num_workers)
    if segment_seconds is None or segment_seconds <= 0:
        raise ValueError(f"training needs a positive segment_seconds, got {segment_seconds}")
    return TrainLoader(dataset, batch_size, segment_samples(segment_seconds), seed=seed,
                       epoch=epoch, num_workers=num_workers, remix_snr=remix_snr)
