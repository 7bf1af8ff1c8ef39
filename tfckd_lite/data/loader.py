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
"""

from __future__ import annotations

import numpy as np
import torch

from ..audio import SAMPLE_RATE


class _Crops(torch.utils.data.Dataset):
    """Item ``(index, epoch)`` -> a random crop of pair ``index`` drawn from (seed, epoch, index)."""

    def __init__(self, dataset, segment_samples: int, seed: int):
        self.dataset = dataset
        self.segment = segment_samples
        self.seed = seed
        self.lengths = dataset.lengths

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        index, epoch = key
        rng = np.random.default_rng([self.seed, epoch, index, 0x5EC])
        length = self.lengths[index]
        start = int(rng.integers(0, length - self.segment + 1)) if length > self.segment else 0
        noisy, clean = self.dataset.load(index, start=start, frames=self.segment)
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
                 epoch: int = 0, num_workers: int = 0):
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
        self._crops = _Crops(dataset, self.segment_samples, self.seed)

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
                train: bool = True, seed: int = 0, num_workers: int = 0, epoch: int = 0):
    """Training batches of fixed shape, or whole utterances for evaluation.

    Notebook: 01_signals_and_data.ipynb

    ``train=True``: a :class:`TrainLoader` yielding ``(noisy [B, N], clean [B, N])`` with
    ``B = batch_size`` and ``N = round(segment_seconds * 16000)`` always (``len()`` batches per
    epoch, incomplete batches dropped); epoch ``k`` is a function of ``(seed, k)``; each full
    pass advances the epoch, ``epoch=``/``set_epoch()`` sets it. ``train=False``: an
    :class:`EvalLoader` yielding ``(noisy [1, N], clean [1, N], [name])`` per utterance
    (``batch_size`` and ``segment_seconds`` are ignored).
    """
    if not train:
        return EvalLoader(dataset, num_workers=num_workers)
    if segment_seconds is None or segment_seconds <= 0:
        raise ValueError(f"training needs a positive segment_seconds, got {segment_seconds}")
    return TrainLoader(dataset, batch_size, int(round(segment_seconds * SAMPLE_RATE)), seed=seed,
                       epoch=epoch, num_workers=num_workers)
