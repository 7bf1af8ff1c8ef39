"""Corpus loaders on fake VoiceBank+DEMAND, DNS and L3DAS23 trees, the reduced set, and every
kind of bad input (stereo, formats, rates, unreadable/empty files, unpaired files, NaN/inf)."""

import warnings

import numpy as np
import pytest
import soundfile as sf
import torch

from tfckd_lite.audio import AudioError, ResampleWarning
from tfckd_lite.data import CorpusError, PairedDataset, detect_kind, open_corpus


def _speechy(n, rate, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / rate
    return (0.3 * np.sin(2 * np.pi * 220 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
            + 0.01 * rng.standard_normal(n)).astype(np.float32)


def _write(path, x, rate=16000, subtype="PCM_16"):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, rate, subtype=subtype)


def _voicebank(root, train_folder="trainset_28spk_wav", test_folder="testset_wav", rate=48000,
               seconds=0.3):
    n = int(rate * seconds)
    names = {train_folder: ["p226_001", "p226_002", "p230_001", "p230_002", "p287_001"],
             test_folder: ["p232_001", "p257_001"]}
    for folder, utts in names.items():
        log = []
        for i, utt in enumerate(utts):
            clean = _speechy(n, rate, i)
            _write(root / f"clean_{folder}" / f"{utt}.wav", clean, rate)
            _write(root / f"noisy_{folder}" / f"{utt}.wav", clean + 0.05 * _speechy(n, rate, 9),
                   rate)
            log.append(f"{utt} cafe {2.5 + 5 * i}")
        stem = folder.replace("_wav", "")
        (root / f"log_{stem}.txt").write_text("\n".join(log) + "\n")
    return root


def test_voicebank_48k_is_resampled_split_by_speaker_and_logs_are_read(tmp_path):
    root = _voicebank(tmp_path / "vb")
    assert detect_kind(root) == "voicebank"
    with pytest.warns(ResampleWarning, match=r"voicebank train: 4 files at 48000 Hz"):
        train = open_corpus(root, "train")
    with pytest.warns(ResampleWarning):
        valid = open_corpus(root, "valid")
    with pytest.warns(ResampleWarning):
        test = open_corpus(root, "test")
    assert train.names == ["p230_001", "p230_002"]                 # p226/p287 -> validation
    assert valid.names == ["p226_001", "p226_002", "p287_001"]
    assert test.names == ["p232_001", "p257_001"]
    noisy, clean, name = test[1]
    assert name == "p257_001" and noisy.dtype == torch.float32
    assert noisy.shape == clean.shape == (4800,)                   # 0.3 s at 16 kHz
    assert test.info(1)["noise"] == "cafe" and test.info(1)["snr"] == 7.5
    assert test.info(0)["speaker"] == "p232"


def test_voicebank_spellings_and_16k_copies(tmp_path):
    root = _voicebank(tmp_path / "vb", train_folder="trainset_wav", rate=16000)
    assert open_corpus(root, "train").names == ["p230_001", "p230_002"]
    both = _voicebank(tmp_path / "both", rate=48000)
    _voicebank(both, train_folder="trainset_28spk_wav_16k", test_folder="testset_wav_16k",
               rate=16000)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResampleWarning)           # the 16 kHz copy is used
        test = open_corpus(both, "test")
    assert "_16k" in test.info(0)["clean"]


def test_dns_test_set_pairs_by_fileid(tmp_path):
    base = tmp_path / "dns" / "datasets" / "test_set" / "synthetic"
    for subset in ("no_reverb", "with_reverb"):
        for i in (3, 11, 7):
            clean = _speechy(8000, 16000, i)
            _write(base / subset / "clean" / f"clean_fileid_{i}.wav", clean)
            _write(base / subset / "noisy" / f"book_00{i}_snr{i}_tl-25_fileid_{i}.wav",
                   clean + 0.05 * _speechy(8000, 16000, 50 + i))
    root = tmp_path / "dns"
    assert detect_kind(root) == "dns"
    test = open_corpus(root, "test")
    assert test.names == ["fileid_11", "fileid_3", "fileid_7"]
    assert "no_reverb" in test.info(0)["noisy"][0] and test.info(1)["snr"] == 3.0
    noisy, clean, _ = test[0]
    assert noisy.shape == clean.shape == (8000,)
    assert len(open_corpus(root, "test", subset="with_reverb")) == 3
    assert len(open_corpus(root, "test", subset="all")) == 6
    with pytest.raises(CorpusError, match="DNS test set; open it with split='test'"):
        open_corpus(root, "train")


def test_dns_synthesizer_output_has_a_stable_train_valid_split(tmp_path):
    root = tmp_path / "synth"
    for i in range(60):
        _write(root / "clean" / f"clean_fileid_{i}.wav", _speechy(800, 16000, i))
        _write(root / "noisy" / f"noisy_snr5_fileid_{i}.wav", _speechy(800, 16000, i + 100))
        _write(root / "noise" / f"noise_fileid_{i}.wav", _speechy(800, 16000, i + 200))
    train, valid = open_corpus(root, "train"), open_corpus(root, "valid")
    assert set(train.names).isdisjoint(valid.names)
    assert len(train) + len(valid) == 60 and len(valid) >= 1
    assert open_corpus(root, "train").names == train.names


def _l3das(root, ids=("0001", "0002", "0003"), with_b=True, n=6400):
    for split in ("train100", "dev"):
        folder = root / f"L3DAS23_Task1_{split}"
        for k, i in enumerate(ids):
            clean = _speechy(n, 16000, k)
            _write(folder / "labels" / f"{i}.wav", clean)
            ambisonic = np.stack([clean + 0.1 * c * _speechy(n, 16000, 30 + c) for c in range(4)],
                                 axis=1)
            _write(folder / "data" / f"{i}_A.wav", ambisonic)
            if with_b:
                _write(folder / "data" / f"{i}_B.wav", -ambisonic)
    return root


def test_l3das23_gives_4_or_8_channel_noisy_and_mono_targets(tmp_path):
    root = _l3das(tmp_path / "l3")
    assert detect_kind(root) == "l3das23"
    test = open_corpus(root, "test")
    noisy, clean, name = test[0]
    assert noisy.shape == (4, 6400) and clean.shape == (6400,) and name == "0001"
    assert "L3DAS23_Task1_dev" in test.info(0)["clean"]
    eight = open_corpus(root, "test", mics="AB")
    assert eight[0][0].shape == (8, 6400)
    torch.testing.assert_close(eight[0][0][4:], -eight[0][0][:4], atol=1 / 32768, rtol=0)
    assert open_corpus(root, "test", channels=0)[0][0].shape == (6400,)
    assert open_corpus(root, "test", channels=[0, 3])[0][0].shape == (2, 6400)
    assert len(open_corpus(root, "train")) + len(open_corpus(root, "valid")) == 3


def test_l3das23_missing_microphone_b_is_reported(tmp_path):
    root = _l3das(tmp_path / "l3", with_b=False)
    with pytest.raises(CorpusError, match=r"3 ids lack microphone\(s\) AB"):
        open_corpus(root, "test", mics="AB")
    (root / "L3DAS23_Task1_dev" / "labels" / "0002.wav").unlink()
    with pytest.raises(CorpusError, match=r"1 ids in .* have no label"):
        open_corpus(root, "test")
    with pytest.warns(UserWarning, match="skipping 1 ids"):
        assert open_corpus(root, "test", unpaired="skip").names == ["0001", "0003"]


def test_the_reduced_set_opens_with_all_splits_and_speakers(mini):
    assert detect_kind(mini) == "reduced"
    sizes = {s: len(open_corpus(mini, s)) for s in ("train", "valid", "test", "all")}
    assert sizes == {"train": 64, "valid": 16, "test": 16, "all": 96}
    test = open_corpus(mini, "test")
    noisy, clean, name = test[0]
    assert noisy.shape == clean.shape and noisy.dim() == 1 and noisy.dtype == torch.float32
    info = test.info(0)
    assert info["name"] == name and info["speaker"] and info["noise"] and "snr" in info
    assert len(test.lengths) == 16 and min(test.lengths) >= 16000


# ---------------------------------------------------------------------------- bad input


def _pairs(root, names=("a", "b"), n=4000):
    for i, name in enumerate(names):
        _write(root / "noisy" / f"{name}.wav", _speechy(n, 16000, i))
        _write(root / "clean" / f"{name}.wav", _speechy(n, 16000, i + 10))
    return root


def test_unpaired_files_are_listed_or_skipped(tmp_path):
    root = _pairs(tmp_path)
    _write(root / "noisy" / "orphan.wav", _speechy(4000, 16000, 0))
    _write(root / "clean" / "lonely.wav", _speechy(4000, 16000, 0))
    with pytest.raises(CorpusError, match=r"1 noisy files .* e\.g\. orphan\.wav(.|\n)*"
                                          r"1 clean files .* e\.g\. lonely\.wav"):
        PairedDataset.from_folders(root / "noisy", root / "clean")
    with pytest.warns(UserWarning, match="skipping 1 noisy and 1 clean"):
        ds = PairedDataset.from_folders(root / "noisy", root / "clean", unpaired="skip")
    assert ds.names == ["a", "b"]


def test_stereo_where_mono_is_expected_raises_unless_downmixed(tmp_path):
    root = _pairs(tmp_path)
    _write(root / "noisy" / "a.wav", np.stack([_speechy(4000, 16000, 1)] * 2, axis=1))
    with pytest.raises(CorpusError, match=r"a\.wav: has 2 channels but a mono signal"):
        PairedDataset.from_folders(root / "noisy", root / "clean")
    ds = PairedDataset.from_folders(root / "noisy", root / "clean", downmix="mean")
    assert ds[0][0].shape == (4000,)


def test_unreadable_and_empty_files_are_named_when_opening(tmp_path):
    root = _pairs(tmp_path, names=("a", "b", "c"))
    (root / "noisy" / "b.wav").write_bytes(b"garbage" * 50)
    (root / "clean" / "c.wav").write_bytes(b"")
    with pytest.raises(CorpusError) as caught:
        PairedDataset.from_folders(root / "noisy", root / "clean")
    message = str(caught.value)
    assert "2 problem(s)" in message
    assert "noisy/b.wav: cannot read audio" in message and "clean/c.wav: empty file" in message


def test_mixed_formats_and_rates_load_as_float32_16k(tmp_path):
    root = tmp_path
    x = _speechy(8000, 16000, 0)
    _write(root / "noisy" / "a.wav", x, subtype="PCM_24")
    _write(root / "clean" / "a.wav", x, subtype="FLOAT")
    _write(root / "noisy" / "b.wav", _speechy(16000, 32000, 1), rate=32000, subtype="PCM_32")
    _write(root / "clean" / "b.wav", _speechy(8000, 16000, 1), subtype="PCM_U8")
    with pytest.warns(ResampleWarning, match=r"1 files at 32000 Hz"):
        ds = PairedDataset.from_folders(root / "noisy", root / "clean")
    for i in range(2):
        noisy, clean, _ = ds[i]
        assert noisy.dtype == clean.dtype == torch.float32 and noisy.shape == clean.shape == (8000,)
    torch.testing.assert_close(ds[0][0], ds[0][1], atol=2e-7, rtol=0)


def test_nan_samples_fail_on_load_naming_the_file(tmp_path):
    root = _pairs(tmp_path)
    bad = _speechy(4000, 16000, 0)
    bad[17] = np.nan
    _write(root / "noisy" / "b.wav", bad, subtype="FLOAT")
    ds = PairedDataset.from_folders(root / "noisy", root / "clean")
    ds[0]
    with pytest.raises(AudioError, match=r"noisy/b\.wav: 1 NaN/inf samples \(first at sample 17\)"):
        ds[1]


def test_lengths_that_differ_too_much_are_an_error(tmp_path):
    root = _pairs(tmp_path)
    _write(root / "clean" / "b.wav", _speechy(2000, 16000, 0))
    with pytest.raises(CorpusError, match=r"1 pairs whose noisy and clean lengths differ.*b \("):
        PairedDataset.from_folders(root / "noisy", root / "clean")
    _write(root / "clean" / "b.wav", _speechy(3950, 16000, 0))        # within the tolerance
    ds = PairedDataset.from_folders(root / "noisy", root / "clean")
    assert ds[1][0].shape == ds[1][1].shape == (3950,)


def test_unknown_layouts_and_splits_are_clear_errors(tmp_path):
    (tmp_path / "something").mkdir()
    with pytest.raises(CorpusError, match="cannot recognise the corpus layout"):
        open_corpus(tmp_path, "train")
    with pytest.raises(CorpusError, match="does not exist"):
        open_corpus(tmp_path / "nowhere", "train")
    root = _voicebank(tmp_path / "vb", rate=16000)
    with pytest.raises(ValueError, match="split must be one of"):
        open_corpus(root, "dev")
    empty = _pairs(tmp_path / "e", names=())
    with pytest.raises(CorpusError):
        PairedDataset.from_folders(empty / "noisy", empty / "clean")
