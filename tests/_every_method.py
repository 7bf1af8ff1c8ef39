"""``torchrun ... tests/_every_method.py DATA OUT``: every method of ``METHODS`` trained for two
steps through ``fit`` on tiny networks; each rank writes ``OUT/rank<R>.json``: per method the
training loss it returns and a checksum of its trainable parameters (test_distributed.py
checks that the ranks agree, i.e. that the replicas stay identical)."""

import json
import os
import sys

import torch

from tfckd_lite.data import open_corpus
from tfckd_lite.distill import METHODS, build_distiller
from tfckd_lite.losses import compressed_spectral_loss
from tfckd_lite.models import DPDCRN, DPDCRNConfig
from tfckd_lite.train import TrainConfig, fit

data, out = sys.argv[1], sys.argv[2]
splits = open_corpus(data, "train"), open_corpus(data, "valid")
config = TrainConfig(epochs=1, batch_size=2, segment_seconds=0.5, steps_per_epoch=2,
                     warmup_steps=1, valid_clips=1, device="cpu")
torch.manual_seed(100)
teacher = DPDCRN(DPDCRNConfig(channels=8, dual_path_layers=2))
rank = int(os.environ["RANK"])
report = {}
for method in METHODS:
    torch.manual_seed(rank)                         # unequal starts: rank 0's weights must win
    options = ({"fusion_mid_channels": 16} if "fusion_mid_channels" in METHODS[method].options
               else {})
    student = DPDCRN(DPDCRNConfig(channels=8, dual_path_layers=1))
    task = build_distiller(method, teacher, student, config.batch_size, config.segment_frames,
                           se_loss=compressed_spectral_loss, **options)
    result = fit(task, *splits, f"{out}/{method}", config, progress=False, valid_workers=1)
    with torch.no_grad():
        checksum = sum(float(p.double().sum()) for p in task.trainable_parameters())
    report[method] = {"checksum": checksum, "loss": result.history[0]["train"]["total"]}
with open(f"{out}/rank{rank}.json", "w") as file:
    json.dump(report, file)
