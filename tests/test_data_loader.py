"""make_loader: fixed-shape training batches, reproducible epochs (and resumes), on-the-fly
remixing, whole-utterance evaluation, multi-channel batches."""

import numpy as np
import pytest
import soundfile as sf
import torch

from tfckd_lite.data import PairedDataset, make_loader, open_corpus, remix, snr_db


@pytest.fixture(scope="module")
def train_set(mini):
    return open_corpus(mini, "train")


def _batches(loader):
    return [(n.clone(), c.clone()) for n, c in loader]


def test_every_training_batch_has_the_configured_shape(train_set):
    loader = make_loader(train_set, batch_size=6, segment_seconds=1.0, seed=0)
    assert len(loader) == 64 // 6 == 10 and loader.segment_samples == 16000
    batches = _batches(loader)
    assert len(batches) == 10                                   # the incomplete batch is dropped
    for noisy, clean in batches:
        assert noisy.shape == clean.shape == (6, 16000)
        assert noisy.dtype == clean.dtype == torch.float32
        assert (noisy - clean).abs().sum() > 0


def test_short_utterances_are_zero_padded_at_the_end(train_set):
    seconds = 3.0                                               # mini clips last 1-2.5 s
    loader = make_loader(train_set, batch_size=8, segment_seconds=seconds, seed=0)
    noisy, clean = next(iter(loader))
    assert noisy.shape == (8, 48000)
    assert torch.all(clean[:, -8000:] == 0) and torch.all(noisy[:, -8000:] == 0)
    assert torch.all(clean.abs().sum(-1) > 0)


def test_crops_come_from_the_right_pair(train_set):
    loader = make_loader(train_set, batch_size=4, segment_seconds=0.5, seed=3)
    noisy, clean = next(iter(loader))
    whole = [train_set.load(i) for i in range(len(train_set))]
    for n, c in zip(noisy.numpy(), clean.numpy()):
        found = False
        for wn, wc in whole:
            hits = np.flatnonzero(wc[:len(wc) - len(c) + 1] == c[0])
            if any(np.array_equal(wc[h:h + len(c)], c) and np.array_equal(wn[h:h + len(n)], n)
                   for h in hits):
                found = True
                break
        assert found, "a crop does not come from one aligned noisy/clean pair"


def test_epochs_are_a_function_of_seed_and_epoch_and_resume_exactly(train_set):
    loader = make_loader(train_set, batch_size=8, segment_seconds=0.5, seed=7)
    epoch0 = _batches(loader)
    epoch1 = _batches(loader)                                   # a full pass advances the epoch
    assert loader.epoch == 2
    assert not torch.equal(epoch0[0][1], epoch1[0][1])
    again = make_loader(train_set, batch_size=8, segment_seconds=0.5, seed=7)
    for (a, b), (c, d) in zip(epoch0, _batches(again)):
        assert torch.equal(a, c) and torch.equal(b, d)
    resumed = make_loader(train_set, batch_size=8, segment_seconds=0.5, seed=7, epoch=1)
    for (a, b), (c, d) in zip(epoch1, _batches(resumed)):
        assert torch.equal(a, c) and torch.equal(b, d)
    resumed.set_epoch(0)
    assert torch.equal(next(iter(resumed))[1], epoch0[0][1])
    other_seed = make_loader(train_set, batch_size=8, segment_seconds=0.5, seed=8)
    assert not torch.equal(next(iter(other_seed))[1], epoch0[0][1])


def test_worker_processes_change_nothing(train_set):
    small = train_set.subset(16)
    serial = _batches(make_loader(small, batch_size=4, segment_seconds=0.25, seed=1))
    parallel = _batches(make_loader(small, batch_size=4, segment_seconds=0.25, seed=1,
                                    num_workers=2))
    assert len(serial) == len(parallel) == 4
    for (a, b), (c, d) in zip(serial, parallel):
        assert torch.equal(a, c) and torch.equal(b, d)


@pytest.mark.parametrize("remix_snr", [None, (0.0, 20.0)], ids=["as-built", "remixed"])
def test_selected_positions_are_the_full_pass_batches_in_any_worker_count(train_set, remix_snr):
    """What a rank of a distributed run (or a resumed epoch) loads: batches picked by position
    equal those a full pass yields there, whether loaded here or in worker processes."""
    small = train_set.subset(24)
    full = make_loader(small, batch_size=4, segment_seconds=0.25, seed=1, epoch=2,
                       remix_snr=remix_snr)
    every = _batches(full)
    positions = [5, 1, 3]
    for workers in (0, 2):
        picked = make_loader(small, batch_size=4, segment_seconds=0.25, seed=1, epoch=2,
                             remix_snr=remix_snr, num_workers=workers)
        chosen = _batches(picked.select(positions))
        assert picked.epoch == 2                              # picking does not advance it
        assert len(chosen) == len(positions)
        for position, (noisy, clean) in zip(positions, chosen):
            assert torch.equal(noisy, every[position][0]) and torch.equal(clean, every[position][1])
    with pytest.raises(IndexError, match="outside"):
        full.select([6])
    with pytest.raises(ValueError, match="num_workers"):
        make_loader(small, batch_size=4, num_workers=-1)


def test_remix_sets_the_snr_over_the_whole_utterance_and_loops_the_noise():
    rng = np.random.default_rng(0)
    clean = rng.standard_normal(16000)
    noise = rng.standard_normal(5000)                           # shorter: looped to 16000
    for snr in (-3.0, 0.0, 12.5):
        noisy = remix(clean, noise, snr, offset=1234)
        assert noisy.dtype == np.float32 and noisy.shape == clean.shape
        assert snr_db(clean, noisy) == pytest.approx(snr, abs=1e-4)
    added = remix(clean, noise, 0.0, offset=1234) - clean
    period = added[:5000]
    assert np.allclose(added[5000:10000], period, atol=1e-5)    # the noise repeats ...
    assert np.corrcoef(period, np.roll(noise, -1234))[0, 1] > 0.999   # ... from the offset
    with pytest.raises(ValueError, match="non-silent"):
        remix(np.zeros(100), noise, 0.0, offset=0)


def test_remixed_batches_keep_the_clean_crops_and_draw_new_noise_each_epoch(train_set):
    low, high = 0.0, 20.0
    plain = make_loader(train_set, batch_size=8, segment_seconds=0.5, seed=7)
    mixed = make_loader(train_set, batch_size=8, segment_seconds=0.5, seed=7,
                        remix_snr=(low, high))
    plain_epoch, mixed_epoch = _batches(plain), _batches(mixed)
    for (pn, pc), (mn, mc) in zip(plain_epoch, mixed_epoch):
        assert torch.equal(pc, mc)                  # same clean crops, same order as without
        assert not torch.equal(pn, mn)              # but other noise
    snrs = [snr_db(c.numpy(), n.numpy())
            for noisy, clean in mixed_epoch for n, c in zip(noisy, clean)]
    # measured on 0.5 s crops, not the whole utterance, so only roughly in [low, high];
    # the drawn SNRs spread over the range instead of sitting on the built 0/5/10/15 grid
    assert low - 6 < np.median(snrs) < high + 6 and np.std(snrs) > 3
    next_epoch = _batches(mixed)
    assert torch.equal(next_epoch[0][1], _batches(plain)[0][1])
    assert not torch.equal(next_epoch[0][0], mixed_epoch[0][0])
    resumed = make_loader(train_set, batch_size=8, segment_seconds=0.5, seed=7, epoch=1,
                          remix_snr=(low, high))
    for (a, b), (c, d) in zip(next_epoch, _batches(resumed)):
        assert torch.equal(a, c) and torch.equal(b, d)          # resumes exactly


def test_remix_snr_ranges_and_corpora_are_checked(train_set, tmp_path):
    for bad in ((10, 10), (20, 0), (0, float("nan")), (5,), "loud"):
        with pytest.raises(ValueError, match="remix_snr"):
            make_loader(train_set, batch_size=8, segment_seconds=0.5, remix_snr=bad)
    multi = PairedDataset.__new__(PairedDataset)                 # only the flag is consulted
    multi.multichannel, multi.entries, multi._lengths = True, list(range(8)), [16000] * 8
    with pytest.raises(ValueError, match="single-microphone"):
        make_loader(multi, batch_size=8, segment_seconds=0.5, remix_snr=(0, 20))


def test_evaluation_mode_gives_whole_utterances_in_order(train_set):
    subset = train_set.subset(5)
    items = list(make_loader(subset, batch_size=8, train=False))
    assert len(items) == 5
    for i, (noisy, clean, names) in enumerate(items):
        assert names == [subset.names[i]]
        assert noisy.shape == clean.shape == (1, subset.lengths[i])


def test_impossible_batches_are_refused(train_set):
    with pytest.raises(ValueError, match="fewer than one batch of 8"):
        make_loader(train_set.subset(5), batch_size=8, segment_seconds=1.0)
    with pytest.raises(ValueError, match="positive segment_seconds"):
        make_loader(train_set, batch_size=8, segment_seconds=None)


def test_multichannel_batches(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(4):
        n = 12000 + 2000 * i
        (tmp_path / "noisy").mkdir(exist_ok=True)
        (tmp_path / "clean").mkdir(exist_ok=True)
        sf.write(str(tmp_path / "noisy" / f"u{i}.wav"), 0.1 * rng.standard_normal((n, 4)), 16000)
        sf.write(str(tmp_path / "clean" / f"u{i}.wav"), 0.1 * rng.standard_normal(n), 16000)
    ds = PairedDataset.from_folders(tmp_path / "noisy", tmp_path / "clean", multichannel=True)
    noisy, clean = next(iter(make_loader(ds, batch_size=2, segment_seconds=1.0)))
    assert noisy.shape == (2, 4, 16000) and clean.shape == (2, 16000)
    noisy, clean, _ = next(iter(make_loader(ds, train=False)))
    assert noisy.shape == (1, 4, 12000) and clean.shape == (1, 12000)
