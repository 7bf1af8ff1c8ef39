"""Does lowering the training voices help the teacher on the unseen male test speaker?

Run:  .venv/bin/python bench/voice_shift.py --data data/generated/small

A measurement, not a test. Every recorded training voice of the reduced set is female (the one
recorded male speaker, Carlo, is kept for the test split; ``python -m tfckd_lite data sources
--profile small``), and the shipped teacher gains 1.8 dB less SI-SDR on Carlo than on June.
This study trains the lite teacher with the recipe of ``runs/seg-study/seg1x8`` in the README
(6 epochs, batch 8 x 1 s, 100 validation clips) on a training set in which a share of the
pairs has its clean speech slowed down by a factor drawn from ``--factors`` (speed
perturbation: resampling lowers pitch and formants together, and stretches time), with the
pair's own noise re-added at the pair's own SNR. Validation and test data are untouched. It
prints the test SI-SDR and PESQ-WB improvements overall and per speaker.

Each pair's factor is a pure function of (seed, index), so the set is the same in every epoch
and an interrupted study resumes (``fit`` resumes ``--out``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import soxr
import torch

from tfckd_lite.audio import SAMPLE_RATE
from tfckd_lite.checkpoint import load_model
from tfckd_lite.data import manifest_sha256, open_corpus, remix, snr_db
from tfckd_lite.files import atomic_write_bytes
from tfckd_lite.metrics import evaluate, summary_by
from tfckd_lite.models import build_model
from tfckd_lite.train import SupervisedTask, TrainConfig, fit


class SpeedPerturbed:
    """A training corpus whose pair ``i`` is, with probability ``share``, slowed by a factor
    in ``factors`` (clean speech resampled; the pair's noise looped and re-added at its SNR)."""

    def __init__(self, dataset, factors: tuple[float, float], share: float, seed: int):
        self.dataset = dataset
        rngs = [np.random.default_rng([seed, index, 0x5BD]) for index in range(len(dataset))]
        self.factors = [float(r.uniform(*factors)) if r.random() < share else 1.0 for r in rngs]
        self.lengths = [int(np.ceil(n / f)) for n, f in zip(dataset.lengths, self.factors)]

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name):  # names, multichannel, ... of the wrapped corpus
        return getattr(self.dataset, name)

    def load(self, index: int, start: int = 0, frames: int | None = None):
        noisy, clean = self.dataset.load(index)
        factor = self.factors[index]
        if factor != 1.0:
            # played back at the original rate, a signal resampled to rate / factor is
            # 1 / factor times longer and its pitch and formants are lowered by factor
            slowed = soxr.resample(clean, SAMPLE_RATE, SAMPLE_RATE / factor, quality="HQ")
            noisy = remix(slowed, noisy - clean, snr_db(clean, noisy), offset=0)
            clean = slowed.astype(np.float32)
        end = None if frames is None else start + frames
        return noisy[start:end], clean[start:end]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the reduced 'small' set")
    parser.add_argument("--factors", type=float, nargs=2, default=[0.7, 0.9],
                        help="range of slow-down factors (pitch and formants times the factor)")
    parser.add_argument("--share", type=float, default=0.5, help="share of pairs slowed down")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/voice-shift")
    args = parser.parse_args(argv)

    train = SpeedPerturbed(open_corpus(args.data, "train"), tuple(args.factors), args.share,
                           args.seed)
    torch.manual_seed(args.seed)
    config = TrainConfig(epochs=args.epochs, valid_clips=100, checkpoint_every=50, seed=args.seed)
    description = {"preset": "lite-teacher", "method": "none",
                   "command": f"bench/voice_shift.py --factors {args.factors[0]} "
                              f"{args.factors[1]} --share {args.share} --epochs {args.epochs} "
                              f"--seed {args.seed}",
                   "data_manifest_sha256": manifest_sha256(args.data)}
    result = fit(SupervisedTask(build_model("lite-teacher")), train,
                 open_corpus(args.data, "valid"), Path(args.out), config, description=description)

    scores_file = Path(args.out) / "test-scores.json"
    if not scores_file.is_file():
        test = open_corpus(args.data, "test")
        report = evaluate(load_model(result.best_path).enhance, test,
                          metrics=("pesq_wb", "si_sdr"))
        stored = {"summary": report["summary"],
                  "speaker": {k: {m: v[f"delta_{m}"] for m in ("si_sdr", "pesq_wb")}
                              for k, v in summary_by(report, test, "speaker").items()}}
        atomic_write_bytes(scores_file, (json.dumps(stored, indent=1) + "\n").encode())
    scores = json.loads(scores_file.read_text())
    slowed = sum(f != 1.0 for f in train.factors)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.epochs} epochs, "
          f"seed {args.seed}; {slowed} of {len(train)} training pairs slowed by "
          f"{args.factors[0]}-{args.factors[1]}; best epoch by valid PESQ-WB")
    print(f"{'test':<12} {'dSI-SDR':>8} {'dPESQ-WB':>9}")
    print(f"{'all':<12} {scores['summary']['delta_si_sdr']:>+8.2f} "
          f"{scores['summary']['delta_pesq_wb']:>+9.2f}")
    for speaker, delta in sorted(scores["speaker"].items()):
        print(f"{speaker:<12} {delta['si_sdr']:>+8.2f} {delta['pesq_wb']:>+9.2f}")


if __name__ == "__main__":
    main()
