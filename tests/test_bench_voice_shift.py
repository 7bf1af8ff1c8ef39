"""The speed-perturbed training corpus of ``bench/voice_shift.py`` (a README measurement)."""

import importlib.util
from pathlib import Path

import numpy as np

from tfckd_lite.data import make_loader, open_corpus, snr_db

_SPEC = importlib.util.spec_from_file_location(
    "voice_shift", Path(__file__).resolve().parents[1] / "bench" / "voice_shift.py")
voice_shift = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(voice_shift)


def test_slowed_pairs_keep_their_snr_and_get_longer(mini):
    corpus = open_corpus(mini, "train")
    shifted = voice_shift.SpeedPerturbed(corpus, (0.7, 0.9), 0.5, seed=0)
    again = voice_shift.SpeedPerturbed(corpus, (0.7, 0.9), 0.5, seed=0)
    assert shifted.factors == again.factors                  # a pure function of (seed, index)
    slowed = [i for i, f in enumerate(shifted.factors) if f != 1.0]
    kept = [i for i, f in enumerate(shifted.factors) if f == 1.0]
    assert slowed and kept and all(0.7 <= shifted.factors[i] <= 0.9 for i in slowed)
    for i in kept[:2]:
        for a, b in zip(shifted.load(i), corpus.load(i)):
            np.testing.assert_array_equal(a, b)
    for i in slowed[:3]:
        noisy, clean = shifted.load(i)
        original_noisy, original_clean = corpus.load(i)
        assert abs(len(clean) - shifted.lengths[i]) <= 1
        assert abs(len(clean) * shifted.factors[i] - len(original_clean)) <= 2
        assert abs(snr_db(clean, noisy) - snr_db(original_clean, original_noisy)) < 0.01
        part_noisy, part_clean = shifted.load(i, start=100, frames=800)
        np.testing.assert_array_equal(part_clean, clean[100:900])
        np.testing.assert_array_equal(part_noisy, noisy[100:900])
    # the training loader takes it like a corpus
    noisy, clean = next(iter(make_loader(shifted, batch_size=4, segment_seconds=0.5,
                                         train=True, seed=0)))
    assert noisy.shape == clean.shape == (4, 8000)
