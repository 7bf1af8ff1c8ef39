"""Does a wider or deeper lite teacher generalise better? Train DPDCRN sizes, score the test split.

Run:  .venv/bin/python bench/teacher_sizes.py --data data/generated/small --sizes 32x2 48x2

A measurement, not a test: each size is trained with the recipe of the shipped models
(``tfckd_lite.train.fit`` defaults: AdamW 1e-3, 200 warm-up steps, cosine decay, batch 8 x 1 s,
100 validation clips per epoch, best epoch by validation PESQ-WB) for ``--epochs`` epochs in
``<out>/c<C>-n<N>`` (an interrupted study resumes), then its best epoch is scored on the test
split, overall and per noise type. Prints one row per size: parameters, GFLOP per second of
audio, training minutes, validation and test improvements in SI-SDR and PESQ-WB, and the
test SI-SDR improvement on each noise type. Sizes are ``<channels>x<dual-path layers>``; the
lite teacher is 32x2, the paper's teacher 128x4. Hours on a 2-core CPU: see the README.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from tfckd_lite.checkpoint import load_model
from tfckd_lite.data import manifest_sha256, open_corpus
from tfckd_lite.files import atomic_write_bytes
from tfckd_lite.metrics import evaluate, summary_by
from tfckd_lite.models import build_model, count_flops, count_parameters
from tfckd_lite.train import SupervisedTask, TrainConfig, fit


def parse_size(text: str) -> tuple[int, int]:
    try:
        channels, layers = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a size is CHANNELSxLAYERS, e.g. 48x2; got {text!r}")
    return channels, layers


def study_size(channels: int, layers: int, args) -> dict:
    """Train (or resume) one size and score its best epoch on the test split (cached)."""
    folder = Path(args.out) / f"c{channels}-n{layers}"
    scores_file = folder / "test-scores.json"
    torch.manual_seed(args.seed)
    model = build_model("lite-teacher", channels=channels, dual_path_layers=layers)
    config = TrainConfig(epochs=args.epochs, valid_clips=100, checkpoint_every=50, seed=args.seed)
    description = {"preset": f"lite-teacher-c{channels}-n{layers}",
                   "command": f"bench/teacher_sizes.py --sizes {channels}x{layers} "
                              f"--epochs {args.epochs} --seed {args.seed}",
                   "method": "none", "data_manifest_sha256": manifest_sha256(args.data)}
    result = fit(SupervisedTask(model), open_corpus(args.data, "train"),
                 open_corpus(args.data, "valid"), folder, config, description=description)
    if not scores_file.is_file():
        best = load_model(result.best_path)
        test = open_corpus(args.data, "test")
        report = evaluate(best.enhance, test, metrics=("pesq_wb", "si_sdr"))
        stored = {"summary": report["summary"],
                  "noise": {k: v["delta_si_sdr"] for k, v in summary_by(report, test, "noise").items()}}
        atomic_write_bytes(scores_file, (json.dumps(stored, indent=1) + "\n").encode())
    scores = json.loads(scores_file.read_text())
    return {"size": f"{channels}x{layers}", "params": count_parameters(model),
            "gflops": count_flops(model) / 1e9,
            "minutes": sum(h["seconds"] for h in result.history) / 60,
            "valid": result.best_metrics, "test": scores["summary"], "noise": scores["noise"]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the reduced 'small' set")
    parser.add_argument("--sizes", nargs="+", type=parse_size, default=[(32, 2), (48, 2)])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/teacher-sizes")
    args = parser.parse_args(argv)
    rows = [study_size(channels, layers, args) for channels, layers in args.sizes]
    noises = sorted(rows[0]["noise"])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.epochs} epochs, "
          f"seed {args.seed}; improvements over the noisy input, best epoch by valid PESQ-WB")
    print(f"{'size':<6} {'params':>9} {'GFLOP/s':>8} {'train min':>9} {'valid dSI-SDR':>13} "
          f"{'test dSI-SDR':>12} {'test dPESQ':>10}" + "".join(f" {n:>8}" for n in noises))
    for r in rows:
        print(f"{r['size']:<6} {r['params']:>9,} {r['gflops']:>8.2f} {r['minutes']:>9.0f} "
              f"{r['valid']['delta_si_sdr']:>+13.2f} {r['test']['delta_si_sdr']:>+12.2f} "
              f"{r['test']['delta_pesq_wb']:>+10.2f}"
              + "".join(f" {r['noise'][n]:>+8.2f}" for n in noises))
    print("(per-noise columns: test SI-SDR improvement, dB)")


if __name__ == "__main__":
    main()
