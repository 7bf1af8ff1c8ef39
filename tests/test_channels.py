"""The multi-channel model against single-channel ones as a results file (``channels``)."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from tfckd_lite import channels, cli, scenes
from tfckd_lite.checkpoint import save_model
from tfckd_lite.data import manifest_sha256
from tfckd_lite.data.builder_mc import MC_PROFILES, scene_table
from tfckd_lite.files import sha256_file
from tfckd_lite.models import DPDCRN
from tiny_models import STUDENT
from cli_errors import error_line

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CLIPS = 4
RESAMPLES = 200          # the intervals' values are not under test here, their bookkeeping is


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    """Untrained tiny models as files: two of 4 microphones, two single-channel ones."""
    folder = tmp_path_factory.mktemp("channel-models")
    torch.manual_seed(0)
    files = {name: save_model(folder / f"{name}.safetensors",
                              DPDCRN(dataclasses.replace(STUDENT, in_channels=4)),
                              preset="tiny-mc4") for name in ("mc4", "other-mc4")}
    for name in ("w", "dry"):
        files[name] = save_model(folder / f"{name}.safetensors", DPDCRN(STUDENT), preset="tiny")
    return {k: str(v) for k, v in files.items()}


@pytest.fixture(scope="module")
def results(mc_mini, model_files):
    return channels.channel_comparison(model_files["mc4"], [model_files["w"], model_files["dry"]],
                                       mc_mini, max_clips=CLIPS, progress=False,
                                       resamples=RESAMPLES)


def test_the_results_name_their_inputs(mc_mini, model_files, results):
    mc4, w, dry = model_files["mc4"], model_files["w"], model_files["dry"]
    assert results["rows"] == [scenes.UNPROCESSED, mc4, w, dry]
    assert list(results["models"]) == [mc4, w, dry]
    for name, model in results["models"].items():
        assert model["sha256"] == sha256_file(name) and model["shipped"] is False
    assert results["models"][mc4]["in_channels"] == 4 and results["models"][w]["in_channels"] == 1
    assert results["data_manifest_sha256"] == manifest_sha256(mc_mini)
    assert (results["split"], results["mics"], results["max_clips"], results["clips"]) == \
        ("test", "A", CLIPS, CLIPS)
    assert results["command"] == "python -m tfckd_lite " + " ".join(channels.channels_argv(
        mc4, [w, dry], mc_mini, max_clips=CLIPS))


def test_every_row_scored_the_same_clips_and_the_tables_are_theirs(mc_mini, results):
    names = [[r["name"] for r in rows] for rows in results["records"].values()]
    assert len(names) == 3 and all(n == names[0] for n in names) and len(names[0]) == CLIPS
    bands = scenes.scene_bands(mc_mini)
    for row, records in results["records"].items():
        assert results["tables"][row] == scenes.scores_by_band(records, bands)
    first = next(iter(results["records"].values()))
    assert results["tables"][scenes.UNPROCESSED] == scenes.scores_by_band(first, bands,
                                                                          prefix="input_")
    # each scored clip's scene, so that the file is read again without the data
    table = scene_table(mc_mini)
    assert list(results["scenes"]) == list(results["bands"]) == names[0]
    for name in names[0]:
        assert results["scenes"][name] == {"rt60": table[name]["rt60"], "snr": table[name]["snr"]}
        assert results["bands"][name] == bands[name]


def test_the_paired_differences_are_those_of_the_records(mc_mini, results):
    paired = results["paired"]
    reference = results["rows"][1]
    assert paired["reference"] == reference and list(paired["methods"]) == results["rows"][2:]
    bands = scenes.scene_bands(mc_mini)
    mine = results["records"][reference]
    for method, entries in paired["methods"].items():
        theirs = results["records"][method]
        assert list(entries) == [key for key, _ in scenes.BAND_METRICS]
        for metric, entry in entries.items():
            diff = np.array([a[metric] - b[metric] for a, b in zip(mine, theirs)])
            assert entry["mean"] == pytest.approx(np.nanmean(diff))
            assert entry["low"] <= entry["mean"] <= entry["high"]
            assert entry["better"] == pytest.approx(np.mean(diff[np.isfinite(diff)] > 0))
            assert entry["seed_level"] is None                     # one trained model per row
            for field in scenes.BAND_FIELDS:
                assert list(entry["by"][field]) == list(results["tables"][reference][field])
                for band, cell in entry["by"][field].items():
                    inside = [bands[r["name"]][field] == band for r in mine]
                    assert cell["mean"] == pytest.approx(np.nanmean(diff[inside]))
                assert sum(c["n"] + c["dropped"] for c in entry["by"][field].values()) == CLIPS


def test_written_atomically_with_the_markdown_next_to_it(results, tmp_path):
    out = tmp_path / "results" / "channels.json"
    paths = channels.write_channels(results, out)
    assert paths == {"json": out, "md": out.with_suffix(".md")}
    assert channels.read_channels(out) == json.loads(json.dumps(results))
    text = paths["md"].read_text()
    assert scenes.channels_markdown(results) in text and results["command"] in text
    assert channels.paired_markdown(results["paired"]) in text
    assert "not resolved" in text                        # says what an interval across 0 means
    # a second write replaces both files whole and leaves no temporary file behind
    changed = {**results, "command": "python -m tfckd_lite channels (again)"}
    channels.write_channels(changed, out)
    assert channels.read_channels(out)["command"] == changed["command"]
    assert "(again)" in paths["md"].read_text()
    assert sorted(p.name for p in out.parent.iterdir()) == ["channels.json", "channels.md"]
    with pytest.raises(ValueError, match="must end in .json"):
        channels.write_channels(results, tmp_path / "channels.txt")
    assert channels.read_channels(tmp_path / "none.json") is None


def test_the_command_writes_the_results(mc_mini, model_files, tmp_path, capsys):
    out = tmp_path / "channels.json"
    argv = ["channels", "--multi", model_files["mc4"], "--mono", model_files["w"],
            "--data", str(mc_mini), "--max-clips", "2", "--out", str(out)]
    assert cli.main(argv) == 0
    written = channels.read_channels(out)
    assert written["command"] == "python -m tfckd_lite " + " ".join(argv)
    assert written["clips"] == 2 and written["rows"][2:] == [model_files["w"]]
    assert f"wrote {out}" in capsys.readouterr().out
    # a refused comparison leaves the earlier results untouched
    before = out.read_bytes()
    bad = ["channels", "--multi", model_files["w"], "--mono", model_files["dry"],
           "--data", str(mc_mini), "--max-clips", "1", "--out", str(out)]
    assert cli.main(bad) == 2
    assert "multi-channel model takes 1 channel(s) but mics 'A'" in error_line(capsys)
    assert out.read_bytes() == before


@pytest.mark.parametrize("case, expected", [
    ("mono-has-4", "single-channel model takes 4 channels"),
    ("mc8", "takes 4 channel(s) but mics 'AB'"),
    ("missing-data", "does not exist"),
    ("not-simulated", "is not a simulated multi-channel set"),
    ("unknown-model", "'no-such-model' is neither a model file nor a shipped model"),
    ("out-not-json", "--out must name a .json file"),
    ("no-clips", "--max-clips must be at least 1"),
])
def test_command_errors_are_one_line(case, expected, mc_mini, mini, model_files, tmp_path,
                                     capsys):
    argv = {"--multi": model_files["mc4"], "--mono": model_files["w"], "--data": str(mc_mini),
            "--max-clips": "1", "--out": str(tmp_path / "channels.json")}
    extra = []
    if case == "mono-has-4":
        argv["--mono"] = model_files["other-mc4"]
    elif case == "mc8":
        extra = ["--mics", "AB"]
    elif case == "missing-data":
        argv["--data"] = str(tmp_path / "nowhere")
    elif case == "not-simulated":
        argv["--data"] = str(mini)
    elif case == "unknown-model":
        argv["--mono"] = "no-such-model"
    elif case == "out-not-json":
        argv["--out"] = str(tmp_path / "channels.md")
    elif case == "no-clips":
        argv["--max-clips"] = "0"
    assert cli.main(["channels", *[x for kv in argv.items() for x in kv], *extra]) == 2
    assert expected in error_line(capsys)
    assert not (tmp_path / "channels.json").exists()


def test_the_committed_comparison_covers_the_test_split_with_the_shipped_models():
    """``make channels``'s file, once committed: the whole test split of mc-small, made with
    the models shipped now (a retrained model needs the comparison made again)."""
    from tfckd_lite import pretrained

    committed = channels.read_channels()
    if committed is None:
        pytest.skip("no committed comparison yet (make pretrained-mc, then make channels)")
    assert committed["max_clips"] is None
    assert committed["clips"] == MC_PROFILES["mc-small"].pairs("test")
    for name, model in committed["models"].items():
        assert model["shipped"], f"{name}: the committed comparison names a file, not a model"
        assert model["sha256"] == sha256_file(pretrained.path(name)), \
            f"{name} was shipped again since: run make channels"
