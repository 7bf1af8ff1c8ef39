"""What chunking costs and saves when enhancing long files (``python -m tfckd_lite enhance``).

Run:  .venv/bin/python bench/bench_enhance.py [--data data/generated/mini] [--minutes 10]

Prints, for the shipped lite student and lite teacher:

1. memory and time of enhancing a signal in one piece, for growing lengths: the inter-frame
   attention makes both grow with the square of the length, which is why long files are cut;
2. chunked against whole on noisy test speech (the test clips of ``--data`` one after the
   other, 16 s): how close the chunked output is to the one-piece output (SNR, dB), and the
   SI-SDR of each against the clean speech, for several chunk/overlap sizes;
3. a ``--minutes`` long 44.1 kHz file through ``enhance_file`` with the default chunks: the
   real-time factor (wall time / audio time), the peak memory of enhancing a 20 s file first
   (three chunks) and how much more the long file then takes (nothing, if memory is bounded).

Every memory figure is the growth of a fresh process's own peak resident memory (``VmHWM`` in
``/proc/self/status``; ``ru_maxrss`` would start from the parent's, which is large here), so
this runs on Linux. Timings depend on the machine and its load (one torch thread here); compare
rows of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

WHOLE = """
import json, sys, time, torch
from tfckd_lite import pretrained
def peak_mb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
torch.set_num_threads(1)
model = pretrained.load(sys.argv[1])
wave = torch.randn(int(float(sys.argv[2]) * 16000)) * 0.1
model.enhance(wave[:16000])
before = peak_mb()
start = time.perf_counter()
model.enhance(wave)
print(json.dumps({"seconds": time.perf_counter() - start,
                  "grew_mb": peak_mb() - before}))
"""

LONG = """
import json, sys, time, torch
from tfckd_lite import pretrained
def peak_mb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
from tfckd_lite.enhance import enhance_file
torch.set_num_threads(1)
model = pretrained.load(sys.argv[1])
warm, long_file, out = sys.argv[2:]
loaded = peak_mb()
enhance_file(model, warm, out)
warmed = peak_mb()
start = time.perf_counter()
result = enhance_file(model, long_file, out)
print(json.dumps({"rtf": (time.perf_counter() - start) / result.seconds,
                  "chunks_mb": warmed - loaded, "grew_mb": peak_mb() - warmed}))
"""


def _fresh(code: str, *args) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code, *map(str, args)], env=env,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def whole_signal(names, lengths):
    print("1. one piece: memory growth (MB) and time (s) by length")
    for name in names:
        cells = []
        for seconds in lengths:
            row = _fresh(WHOLE, name, seconds)
            cells.append(f"{seconds:>3g} s: +{row['grew_mb']:5.0f} MB {row['seconds']:6.1f} s")
        print(f"  {name:<13} " + " | ".join(cells))


def chunked_against_whole(names, data, settings, seconds=16.0):
    import numpy as np
    import torch

    from tfckd_lite import pretrained
    from tfckd_lite.data import build_dataset, open_corpus
    from tfckd_lite.enhance import enhance_long
    from tfckd_lite.metrics import si_sdr

    torch.set_num_threads(1)
    if not (Path(data) / "manifest.json").exists():
        build_dataset(data, "mini", progress=False)
    test = open_corpus(data, "test")
    n = int(seconds * 16000)
    noisy = np.concatenate([test[i][0].numpy() for i in range(len(test))])[:n]
    clean = np.concatenate([test[i][1].numpy() for i in range(len(test))])[:n]
    noisy_score = float(si_sdr(torch.from_numpy(noisy), torch.from_numpy(clean)))
    print(f"2. chunked against one piece on {len(noisy) / 16000:.0f} s of noisy test speech "
          f"(input SI-SDR {noisy_score:.2f} dB)")

    def score(estimate):
        return float(si_sdr(torch.from_numpy(estimate), torch.from_numpy(clean)))

    for name in names:
        model = pretrained.load(name)
        whole = model.enhance(torch.from_numpy(noisy)).numpy()
        print(f"  {name:<13} one piece: SI-SDR {score(whole):.2f} dB")
        for chunk, overlap in settings:
            out = enhance_long(model, noisy, chunk, overlap)
            agreement = 10 * np.log10(np.sum(whole ** 2) / np.sum((whole - out) ** 2))
            print(f"  {'':<13} chunk {chunk:g} s, overlap {overlap:g} s: {agreement:5.1f} dB "
                  f"from one piece, SI-SDR {score(out):.2f} dB")


def long_file(names, minutes):
    import numpy as np
    import soundfile as sf

    rate = 44100
    print(f"3. a {minutes:g}-minute 44.1 kHz file, default chunks (8 s, overlap 2 s)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t = np.arange(60 * rate) / rate
        minute = (0.1 * np.sin(2 * np.pi * 200 * t) * (1 + 0.5 * np.sin(2 * np.pi * 2 * t))
                  + 0.02 * np.random.default_rng(0).standard_normal(t.size)).astype(np.float32)
        with sf.SoundFile(tmp / "long.wav", "w", samplerate=rate, channels=1,
                          subtype="PCM_16") as f:
            for _ in range(int(minutes)):
                f.write(minute)
        sf.write(tmp / "warm.wav", minute[:20 * rate], rate, subtype="PCM_16")
        for name in names:
            row = _fresh(LONG, name, tmp / "warm.wav", tmp / "long.wav", tmp / f"out-{name}")
            print(f"  {name:<13} RTF {row['rtf']:.3f}; peak memory: +{row['chunks_mb']:.0f} MB "
                  f"for a 20 s file over the loaded model, then +{row['grew_mb']:.0f} MB for "
                  f"the {minutes:g}-minute file")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["lite-student", "lite-teacher"])
    parser.add_argument("--data", default=str(REPO / "data" / "generated" / "mini"))
    parser.add_argument("--lengths", nargs="+", type=float, default=[4, 8, 16])
    parser.add_argument("--minutes", type=float, default=10)
    args = parser.parse_args(argv)
    whole_signal(args.models, args.lengths)
    chunked_against_whole(args.models, args.data, [(4, 1), (8, 2), (8, 1), (12, 3)])
    long_file(args.models, args.minutes)


if __name__ == "__main__":
    main()
