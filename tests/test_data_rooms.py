"""The simulated reduced L3DAS23: Ambisonics encoding, reverberation time, SNR, alignment,
determinism, the loader reading it with 4 and 8 channels, the split rules and verification."""

import shutil

import numpy as np
import pytest
import soundfile as sf

from tfckd_lite.audio import wav_bytes
from tfckd_lite.data import build_dataset, builder_mc, detect_kind, load_manifest, open_corpus
from tfckd_lite.data import rooms, speech, verify_dataset
from tfckd_lite.data.builder import NOISE_GRID, prepare_speech, describe_sources
from tfckd_lite.data.cli import register
from tfckd_lite.data.manifest import (MANIFEST, MEASURED_ITEM_FIELDS, files_sha256,
                                     is_reduced_dataset, manifest_sha256, plan_sha256,
                                     write_manifest)
from tfckd_lite.data.noise import make_noise

MC_TINY = builder_mc.MultichannelProfile("mc-tiny", 6, 3, 1.0, 1.5, 0.25, 6, "tests")


def _direction(azimuth_deg, elevation_deg):
    az, el = np.deg2rad(azimuth_deg), np.deg2rad(elevation_deg)
    return np.array([np.cos(az) * np.cos(el), np.sin(az) * np.cos(el), np.sin(el)])


@pytest.mark.parametrize("azimuth,elevation", [(0, 0), (40, 20), (135, -30), (-100, 60)])
def test_a_direct_path_gives_the_sn3d_gains_in_acn_order(azimuth, elevation):
    mic_a = np.array([3.0, 2.5, 1.6])
    source = mic_a + 1.5 * _direction(azimuth, elevation)
    room = rooms.ambisonic_room([6.0, 5.0, 3.5], 0.5, 0, [source], mic_a)   # anechoic
    room.compute_rir()
    for mic, position in ((0, mic_a), (4, mic_a + np.array(rooms.MIC_B_OFFSET))):
        w = np.asarray(room.rir[mic][0])
        measured = [np.dot(np.asarray(room.rir[mic + c][0]), w) / np.dot(w, w) for c in range(4)]
        expected = rooms.ambisonic_gains(source - position)
        np.testing.assert_allclose(measured, expected, atol=1e-5)
    # by hand: ACN order W, Y, Z, X with SN3D gains (1, sin az cos el, sin el, cos az cos el)
    az, el = np.deg2rad(azimuth), np.deg2rad(elevation)
    np.testing.assert_allclose(rooms.ambisonic_gains(_direction(azimuth, elevation)),
                               [1, np.sin(az) * np.cos(el), np.sin(el), np.cos(az) * np.cos(el)],
                               atol=1e-12)


def test_rendered_rooms_decay_at_their_target_rt60_and_the_tail_is_diffuse():
    rng = np.random.default_rng(7)
    for _ in range(6):
        scene = rooms.draw_scene(rng, 1)
        rirs = rooms.impulse_responses(scene, np.random.default_rng(1))["rirs"]
        measured = rooms.measure_rt60(rirs[0, 0])
        assert abs(measured - scene["rt60"]) <= 0.1 * scene["rt60"], (scene, measured)
        # the late field of an isotropic diffuse field: X, Y, Z each carry 1/3 of W's energy
        late = rirs[0, :4, int(0.1 * 16000):]
        ratios = np.sum(late[1:] ** 2, axis=1) / np.sum(late[0] ** 2)
        np.testing.assert_allclose(ratios, 1 / 3, atol=0.06)


def test_render_mixes_at_the_requested_snr_with_the_label_on_the_direct_sound():
    rng = np.random.default_rng(3)
    scene = rooms.draw_scene(rng, 2)
    dry = np.zeros(16000)
    dry[4000:12000] = rng.standard_normal(8000) * 0.05
    noises = [make_noise("pink", rooms.noise_length(len(dry), scene), rng) for _ in range(2)]
    out = rooms.render_scene(dry, noises, scene, 7.5, np.random.default_rng(0))
    assert out["noisy"].shape == (8, len(dry))
    np.testing.assert_allclose(out["noisy"], out["speech"] + out["noise"])
    w_speech, w_noise = out["speech"][0], out["noise"][0]
    assert abs(10 * np.log10(np.sum(w_speech ** 2) / np.sum(w_noise ** 2)) - 7.5) < 1e-9
    assert abs(out["snr"] - 7.5) < 1e-9
    # the direct sound in W has gain 1 and lines up with the dry label (lag 0)
    lags = np.arange(-200, 201)
    xcorr = [np.dot(dry[200:-200], w_speech[200 + k:len(dry) - 200 + k]) for k in lags]
    assert lags[int(np.argmax(xcorr))] == 0
    assert 0.5 < max(xcorr) / np.dot(dry[200:-200], dry[200:-200]) < 1.5
    with pytest.raises(ValueError, match="noise source"):
        rooms.render_scene(dry, noises[:1], scene, 7.5, np.random.default_rng(0))


def test_the_loader_reads_mc_mini_with_4_and_8_channels(mc_mini):
    assert detect_kind(mc_mini) == "l3das23" and not is_reduced_dataset(mc_mini)
    assert len(manifest_sha256(mc_mini)) == 64
    table = builder_mc.scene_table(mc_mini)
    profile = builder_mc.MC_PROFILES["mc-mini"]
    for split in ("train", "valid", "test"):
        for mics, channels in (("A", 4), ("AB", 8)):
            corpus = open_corpus(mc_mini, split, mics=mics)
            assert len(corpus) == profile.pairs(split)
            assert {table[name]["split"] for name in corpus.names} == {split}
            noisy, clean, name = corpus[0]
            assert noisy.shape == (channels, clean.shape[0])
            assert abs(clean.shape[0] / 16000 - table[name]["seconds"]) < 1e-3
    info = sf.info(str(mc_mini / builder_mc.file_names("train", "tr00000")["B"]))
    assert (info.samplerate, info.channels, info.subtype) == (16000, 4, "PCM_16")


def test_speakers_and_noise_types_keep_their_splits(mc_mini):
    test_speakers = set(speech.RECORDED_TEST_SPEAKERS) | {v.key for v in
                                                          speech.ESPEAK_TEST_SPEAKERS}
    for name, row in builder_mc.scene_table(mc_mini).items():
        in_test = row["split"] == "test"
        assert (row["speaker"] in test_speakers) == in_test, name
        assert set(row["noise_types"]) <= set(NOISE_GRID[row["split"]]), name
        if not in_test:
            assert not {"fan", "clicks"} & set(row["noise_types"]), name
        assert abs(row["snr_measured"] - row["snr"]) < 1e-6
        assert abs(row["rt60_measured"] - row["rt60"]) <= 0.1 * row["rt60"], name
        assert 1 <= len(row["noise_types"]) <= 3


def test_an_item_rendered_again_gives_the_written_files_and_the_logged_snr(mc_mini):
    manifest = load_manifest(mc_mini)
    sources = describe_sources()
    profile = builder_mc.MC_PROFILES["mc-mini"]
    plan = builder_mc.plan_multichannel(profile, manifest["seed"], sources["_prompts"],
                                        sources["espeak"]["available"])
    item = plan["folders"]["test"][3]
    decoded, synthesized, babble = prepare_speech(plan, sources, False, 1)
    out = builder_mc.render_item(item, decoded, synthesized, babble,
                                 int(profile.max_seconds * 16000))
    paths = builder_mc.file_names("test", item["name"])
    assert (mc_mini / paths["A"]).read_bytes() == wav_bytes(out["noisy"][:4])
    assert (mc_mini / paths["B"]).read_bytes() == wav_bytes(out["noisy"][4:])
    assert (mc_mini / paths["label"]).read_bytes() == wav_bytes(out["clean"])
    logged = builder_mc.scene_table(mc_mini)[item["name"]]
    assert abs(out["snr"] - logged["snr_measured"]) < 1e-6 and logged["snr"] == item["snr"]


def test_mc_mini_is_byte_identical_whatever_the_workers(mc_mini, tmp_path):
    other = build_dataset(tmp_path / "again", "mc-mini", progress=False, workers=2)
    assert load_manifest(other)["files"] == load_manifest(mc_mini)["files"]
    assert manifest_sha256(other) == manifest_sha256(mc_mini)


def test_the_plan_digest_ignores_what_was_measured_and_sees_what_was_planned(mc_mini, tmp_path):
    """A rebuild on another machine may change the bytes and the measured log (manifest.py);
    the plan, which an experiment folder falls back on, is the scenes asked for."""
    manifest = load_manifest(mc_mini)
    first = manifest["items"]["train"][0]
    assert set(MEASURED_ITEM_FIELDS) <= set(first) and "rt60" in first and "room" in first

    def rewritten(name, change):
        items = {split: [dict(item) for item in pairs]
                 for split, pairs in manifest["items"].items()}
        change(items["train"][0])
        folder = tmp_path / name
        folder.mkdir()
        write_manifest(folder, {**manifest, "items": items,
                                "files": {**manifest["files"], "x.wav": "0" * 64}})
        assert (folder / MANIFEST).is_file()
        return folder

    remeasured = rewritten("remeasured", lambda item: item.update(
        snr_measured=-0.0, rt60_measured=item["rt60_measured"] + 1e-4))
    assert plan_sha256(remeasured) == plan_sha256(mc_mini)
    assert files_sha256(remeasured) != files_sha256(mc_mini)
    replanned = rewritten("replanned", lambda item: item.update(rt60=item["rt60"] + 0.001))
    assert plan_sha256(replanned) != plan_sha256(mc_mini)
    assert plan_sha256(tmp_path) is None                       # no manifest: a real corpus


def test_a_changed_file_is_caught_and_the_set_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setitem(builder_mc.MC_PROFILES, "mc-tiny", MC_TINY)
    root = build_dataset(tmp_path / "t", "mc-tiny", progress=False)
    reference = load_manifest(root)["files"]
    victim = root / builder_mc.file_names("train", "tr00001")["A"]
    data = bytearray(victim.read_bytes())
    data[-2] ^= 0xFF
    victim.write_bytes(bytes(data))
    stray = root / "L3DAS23_Task1_dev" / "labels" / "stray.wav"
    shutil.copy(victim, stray)
    problems = verify_dataset(root)
    assert f"changed: {builder_mc.file_names('train', 'tr00001')['A']}" in problems
    assert "not in manifest: L3DAS23_Task1_dev/labels/stray.wav" in problems
    build_dataset(root, "mc-tiny", progress=False)
    assert verify_dataset(root) == [] and load_manifest(root)["files"] == reference


def test_the_cli_builds_every_profile():
    import argparse

    from tfckd_lite.data import PROFILES

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    for name in list(PROFILES) + list(builder_mc.MC_PROFILES):
        assert parser.parse_args(["data", "build", "--profile", name, "--out", "x"]).profile == name
