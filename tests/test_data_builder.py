"""The reduced dataset builder: layout, SNRs, speaker split, determinism, verify/skip, atomicity,
missing sources, and the CLI. Also the speech and noise sources it uses."""

import json
import os

import numpy as np
import pytest
import soundfile as sf

from tfckd_lite.cli import main as cli_main
from tfckd_lite.data import (PROFILES, MissingSourceWarning, Profile, build_dataset, builder,
                             load_manifest, make_noise, mix_at_snr, noise, snr_db, speech,
                             verify_dataset)
from tfckd_lite.data.manifest import manifest_path, manifest_sha256
from tfckd_lite.files import sha256_file

HAVE_ASTERISK = bool(speech.find_asterisk_prompts())
TINY = Profile("tiny", 8, 4, 4, 1.0, 2.0, 0.25, 6, "tests")


@pytest.fixture
def tiny_profile(monkeypatch):
    monkeypatch.setitem(PROFILES, "tiny", TINY)
    return "tiny"


def _read_log(path):
    rows = [line.split() for line in path.read_text().splitlines()]
    assert all(len(r) == 3 for r in rows)
    return {name: (noise_type, float(snr)) for name, noise_type, snr in rows}


def test_mini_has_the_voicebank_layout_and_16k_mono_pcm(mini):
    manifest = load_manifest(mini)
    assert manifest["profile"] == "mini" and manifest["sample_rate"] == 16000
    for split, (clean_dir, noisy_dir, log_name) in builder.SPLIT_FOLDERS.items():
        clean = sorted(p.name for p in (mini / clean_dir).iterdir())
        noisy = sorted(p.name for p in (mini / noisy_dir).iterdir())
        assert clean == noisy and len(clean) == PROFILES["mini"].pairs(split)
        log = _read_log(mini / log_name)
        assert sorted(f"{n}.wav" for n in log) == clean
        for name in clean[:4]:
            info = sf.info(str(mini / noisy_dir / name))
            assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
            assert 1.0 <= info.duration <= PROFILES["mini"].max_seconds
    assert len(manifest["files"]) == 2 * (64 + 16 + 16) + 3


def test_logged_snr_equals_the_measured_snr_of_every_pair(mini):
    for split, (clean_dir, noisy_dir, log_name) in builder.SPLIT_FOLDERS.items():
        for name, (noise_type, snr) in _read_log(mini / log_name).items():
            clean, _ = sf.read(str(mini / clean_dir / f"{name}.wav"), dtype="int16")
            noisy, _ = sf.read(str(mini / noisy_dir / f"{name}.wav"), dtype="int16")
            assert abs(snr_db(clean.astype(float), noisy.astype(float)) - snr) < 1e-3, name
            assert snr in builder.SNR_GRID[split] and noise_type in builder.NOISE_GRID[split]


def test_speakers_are_disjoint_and_test_noise_is_partly_unseen(mini):
    manifest = load_manifest(mini)
    speakers = {s: set(manifest["splits"][s]["speakers"]) for s in builder.SPLITS}
    assert not speakers["test"] & (speakers["train"] | speakers["valid"])
    train_noise = set(manifest["splits"]["train"]["noise_types"])
    test_noise = set(manifest["splits"]["test"]["noise_types"])
    assert test_noise - train_noise == {"fan", "clicks"}
    assert test_noise & train_noise == {"pink", "babble"}
    assert {"knocks", "gusts"} <= train_noise and not {"knocks", "gusts"} & test_noise
    assert {float(s) for s in manifest["splits"]["test"]["snrs"]} == {2.5, 7.5, 12.5, 17.5}
    assert {float(s) for s in manifest["splits"]["train"]["snrs"]} == {0, 5, 10, 15}
    if HAVE_ASTERISK:
        assert manifest["sources_used"] == ["asterisk", "espeak"]
        assert {"june", "carlo"} <= speakers["test"]
        assert {"allison", "ivrvoiceru"} <= speakers["train"]


@pytest.mark.skipif(not HAVE_ASTERISK, reason="asterisk prompt packages not installed")
def test_plan_keeps_validation_prompts_apart_and_babble_from_training_speakers():
    prompts = speech.find_asterisk_prompts()
    plan = builder.plan_dataset(PROFILES["mini"], 0, prompts, use_espeak=True)
    used = {s: {p for it in plan["splits"][s] if it["source"] == "asterisk"
                for p in it["prompts"]} for s in builder.SPLITS}
    assert not used["train"] & used["valid"]
    train_dirs = [d for k in speech.RECORDED_TRAIN_SPEAKERS
                  for d in speech.ASTERISK_SPEAKERS[k].folders]
    for talker in plan["babble"]:
        assert talker["prompts"][0].split("/")[0] in train_dirs


def test_rerun_verifies_and_skips(mini, capsys):
    before = {p: p.stat().st_mtime_ns for p in mini.rglob("*.wav")}
    build_dataset(mini, "mini", progress=True)
    assert "verified" in capsys.readouterr().out
    assert before == {p: p.stat().st_mtime_ns for p in mini.rglob("*.wav")}
    assert verify_dataset(mini) == []


def test_same_profile_and_seed_give_byte_identical_files_whatever_the_workers(tmp_path, mini):
    other = build_dataset(tmp_path / "again", "mini", progress=False, workers=2)
    assert load_manifest(other)["files"] == load_manifest(mini)["files"]
    assert manifest_sha256(other) == manifest_sha256(mini)


def test_a_changed_file_is_detected_and_rebuilt(tmp_path, tiny_profile):
    root = build_dataset(tmp_path / "t", tiny_profile, progress=False)
    reference = load_manifest(root)["files"]
    victim = root / "noisy_trainset_wav" / sorted(os.listdir(root / "noisy_trainset_wav"))[0]
    victim.write_bytes(victim.read_bytes()[:-10])
    (root / "clean_trainset_wav" / "stray.wav").write_bytes(b"RIFF")
    problems = verify_dataset(root)
    assert f"changed: noisy_trainset_wav/{victim.name}" in problems
    assert "not in manifest: clean_trainset_wav/stray.wav" in problems
    build_dataset(root, tiny_profile, progress=False)
    assert verify_dataset(root) == [] and load_manifest(root)["files"] == reference
    assert sha256_file(victim) == reference[f"noisy_trainset_wav/{victim.name}"]


def test_an_interrupted_build_is_never_trusted(tmp_path, tiny_profile, monkeypatch):
    reference = load_manifest(build_dataset(tmp_path / "ref", tiny_profile, progress=False))
    calls = {"n": 0}
    original = builder._render

    def dying_render(index):
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt("power cut")
        return original(index)

    monkeypatch.setattr(builder, "_render", dying_render)
    root = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        build_dataset(root, tiny_profile, progress=False, workers=1)
    assert not manifest_path(root).exists()            # nothing claims the files are good
    assert verify_dataset(root)[0].startswith("no valid manifest")
    assert not list(root.rglob("*.tmp"))
    (root / "clean_trainset_wav" / ".left.wav.abc.tmp").write_bytes(b"half")  # a killed writer
    monkeypatch.setattr(builder, "_render", original)
    build_dataset(root, tiny_profile, progress=False)
    assert load_manifest(root)["files"] == reference["files"]
    assert not list(root.rglob("*.tmp"))


def test_another_seed_rebuilds_with_other_content(tmp_path, tiny_profile):
    root = build_dataset(tmp_path / "s", tiny_profile, progress=False)
    first = load_manifest(root)["files"]
    build_dataset(root, tiny_profile, seed=1, progress=False)
    second = load_manifest(root)
    assert second["seed"] == 1 and set(first.values()) != set(second["files"].values())
    assert verify_dataset(root) == []


def test_refuses_to_write_into_a_foreign_folder(tmp_path):
    (tmp_path / "precious.txt").write_text("user data")
    with pytest.raises(FileExistsError, match="not written by build_dataset"):
        build_dataset(tmp_path, "mini", progress=False)
    assert (tmp_path / "precious.txt").read_text() == "user data"


def test_without_asterisk_it_builds_an_espeak_only_set_and_says_how_to_install(tmp_path,
                                                                                tiny_profile):
    empty = tmp_path / "no_sounds"
    empty.mkdir()
    with pytest.warns(MissingSourceWarning, match="apt-get install .*asterisk-core-sounds-fr-g722"):
        root = build_dataset(tmp_path / "e", tiny_profile, progress=False, asterisk_root=empty)
    manifest = load_manifest(root)
    assert manifest["sources_used"] == ["espeak"]
    assert manifest["sources"]["asterisk"]["missing"] == list(speech.ASTERISK_SPEAKERS)
    assert all(s.startswith("esp-") for split in manifest["splits"].values()
               for s in split["speakers"])
    assert verify_dataset(root) == []


def test_no_source_at_all_is_a_clear_error(tmp_path, tiny_profile):
    with pytest.warns(MissingSourceWarning):
        with pytest.raises(RuntimeError, match="no speech source .* apt-get install"):
            build_dataset(tmp_path / "x", tiny_profile, progress=False,
                          asterisk_root=tmp_path, use_espeak=False)


def test_cli_build_and_verify(tmp_path, capsys, monkeypatch):
    out = tmp_path / "cli"
    assert cli_main(["data", "build", "--profile", "mini", "--out", str(out), "--quiet"]) == 0
    assert cli_main(["data", "verify", str(out)]) == 0
    assert "intact" in capsys.readouterr().out
    target = next((out / "clean_testset_wav").iterdir())
    target.write_bytes(b"x")
    assert cli_main(["data", "verify", str(out)]) == 1
    assert "changed" in capsys.readouterr().out
    assert cli_main(["data", "info", str(out)]) == 0
    assert "reduced" in capsys.readouterr().out
    assert cli_main(["data", "sources"]) == 0
    status = json.loads(capsys.readouterr().out.split("\n\n")[0])
    assert status["espeak"] and "recorded_pools" not in status


@pytest.mark.skipif(not HAVE_ASTERISK, reason="asterisk prompt packages not installed")
def test_recorded_pools_keep_test_speakers_apart_and_say_how_much_speech(capsys):
    pools = builder.recorded_speech_pools("small")
    assert set(pools["test"]) == set(speech.RECORDED_TEST_SPEAKERS)
    assert set(pools["train"]) == set(pools["valid"]) == set(speech.RECORDED_TRAIN_SPEAKERS)
    for key in speech.RECORDED_TRAIN_SPEAKERS:
        train, valid = pools["train"][key]["prompts"], pools["valid"][key]["prompts"]
        assert 0.05 < valid / (train + valid) < 0.15          # about 1 in 10 to validation
    minutes = sum(v["minutes"] for split in pools.values() for v in split.values())
    assert 0 < minutes < 2.2 * 60                              # at most the packages' 2.1 h
    # the CLI prints the same pools
    assert cli_main(["data", "sources", "--profile", "small"]) == 0
    assert json.loads(capsys.readouterr().out.split("\n\n")[0])["recorded_pools"] == pools
    with pytest.raises(ValueError, match="unknown profile"):
        builder.recorded_speech_pools("huge")


# ---------------------------------------------------------------------------- sources


def test_espeak_synthesis_is_reproducible_across_processes_and_workers():
    jobs = [{"text": speech.make_sentence(np.random.default_rng(i), short=True),
             "voice": v.voice, "rate": v.rate, "pitch": v.pitch, "range": v.range, "seed": i}
            for i, v in enumerate(speech.ESPEAK_TRAIN_SPEAKERS[:3])]
    first = speech.synthesize(jobs, workers=1)
    second = speech.synthesize(jobs, workers=2)
    assert len(first) == 3
    for a, b in zip(first, second):
        assert a.dtype == np.float32 and 0.4 < len(a) / 16000 < 4
        np.testing.assert_array_equal(a, b)


def test_an_unknown_espeak_voice_is_a_clear_error():
    job = {"text": "hello", "voice": "xx-nope", "rate": 170, "pitch": 50, "range": 50}
    with pytest.raises(RuntimeError, match="voice 'xx-nope' not found"):
        speech.synthesize([job])


@pytest.mark.skipif(not HAVE_ASTERISK, reason="asterisk prompt packages not installed")
def test_g722_prompts_decode_at_16k_with_the_length_the_file_size_predicts(tmp_path):
    prompts = speech.find_asterisk_prompts()
    assert set(prompts) == set(speech.ASTERISK_SPEAKERS)
    prompt = prompts["june"][0]
    x = speech.decode_g722(prompt.path)
    assert x.dtype == np.float32 and len(x) == prompt.num_samples and np.abs(x).max() > 0.05
    assert all("/silence/" not in p.relpath for v in prompts.values() for p in v)


def test_asterisk_status_on_an_empty_folder_gives_the_install_command(tmp_path):
    status = speech.asterisk_status(tmp_path)
    assert status["speakers"] == {} and not status["complete"]
    assert "apt-get install" in status["install"]


def test_noise_types_have_unit_rms_are_seeded_and_have_their_spectral_tilt():
    pool = [np.sin(np.arange(8000) * 0.05) * np.hanning(8000)] * 3
    for kind in noise.NOISE_TYPES:
        a = make_noise(kind, 24000, np.random.default_rng(3), speech_pool=pool)
        b = make_noise(kind, 24000, np.random.default_rng(3), speech_pool=pool)
        assert a.shape == (24000,) and np.isclose(np.sqrt(np.mean(a ** 2)), 1.0)
        np.testing.assert_array_equal(a, b)

    def low_to_high(x):
        power = np.abs(np.fft.rfft(x)) ** 2
        freqs = np.fft.rfftfreq(len(x), 1 / 16000)
        return power[(freqs > 50) & (freqs < 500)].mean() / power[freqs > 4000].mean()

    ratios = [low_to_high(make_noise(k, 32000, np.random.default_rng(0)))
              for k in ("white", "pink", "brown")]
    assert ratios[0] < 2 < 10 < ratios[1] < ratios[2]
    with pytest.raises(ValueError, match="speech_pool"):
        make_noise("babble", 100, np.random.default_rng(0))
    with pytest.raises(ValueError, match="unknown noise type"):
        make_noise("rain", 100, np.random.default_rng(0))


def frame_levels_db(x: np.ndarray, frame: int = 512) -> np.ndarray:
    frames = x[:len(x) // frame * frame].reshape(-1, frame)
    return 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-12)


def test_knocks_are_sparse_events_and_gusts_swell_and_fade():
    """The two training-only types carry the impulsive and the non-stationary families."""
    rng = np.random.default_rng(7)
    for _ in range(5):
        knocks = frame_levels_db(make_noise("knocks", 48000, rng))
        # a few loud frames over a floor about 30 dB down
        assert np.percentile(knocks, 95) - np.median(knocks) > 15
        gusts = frame_levels_db(make_noise("gusts", 48000, rng))
        smooth = np.convolve(gusts, np.ones(5) / 5, mode="valid")
        assert smooth.max() - smooth.min() > 8       # swells, unlike stationary pink noise
    pink = frame_levels_db(make_noise("pink", 48000, np.random.default_rng(0)))
    assert np.ptp(np.convolve(pink, np.ones(5) / 5, mode="valid")) < 4


def test_mix_at_snr_hits_the_target_and_keeps_headroom():
    rng = np.random.default_rng(0)
    clean = 0.9 * np.sin(np.arange(16000) * 0.03)
    for snr in (-5.0, 0.0, 12.5):
        c, noisy = mix_at_snr(clean, rng.standard_normal(16000), snr)
        assert abs(snr_db(c, noisy) - snr) < 1e-9
        assert np.abs(noisy).max() <= 0.95 + 1e-12
