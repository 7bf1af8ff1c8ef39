import json
import struct

import pytest
import torch
from safetensors.torch import save_file

from tfckd_lite.checkpoint import (CheckpointError, _canonical_header, load_model,
                                   load_training_state, load_weights, read_model_description,
                                   save_model, save_training_state)
from tfckd_lite.files import atomic_write_bytes
from tfckd_lite.models import build_model


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = build_model("lite-student")
    path = save_model(tmp_path / "student.safetensors", model, preset="lite-student",
                      metrics={"pesq_wb": 2.5})
    return model, path


def test_roundtrip_rebuilds_the_same_network(saved):
    model, path = saved
    loaded = load_model(path)
    assert loaded.config == model.config
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    assert not loaded.training
    description = read_model_description(path)
    assert description["preset"] == "lite-student" and description["metrics"]["pesq_wb"] == 2.5
    assert description["sample_rate"] == 16000 and description["stft"]["n_fft"] == 512
    # the readable copy says the same
    assert json.loads(path.with_suffix(".json").read_text()) == description


def test_file_is_plain_safetensors_without_pickle(saved):
    _, path = saved
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    assert header["__metadata__"]["format"] == "tfckd_lite.model"
    assert b"\x80\x04" not in data[:8 + n]  # no pickle protocol marker in the header


def test_same_content_gives_the_same_bytes(saved, tmp_path):
    # safetensors orders its metadata from a hash map; the writer sorts the header so that a
    # re-export keeps the sha256 the distillation experiment pins its teacher by
    model, path = saved
    again = save_model(tmp_path / "again.safetensors", model, preset="lite-student",
                       metrics={"pesq_wb": 2.5})
    assert again.read_bytes() == path.read_bytes()
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    assert n % 8 == 0
    header_text = data[8:8 + n].decode().rstrip(" ")
    header = json.loads(header_text)
    assert header_text == json.dumps(header, sort_keys=True, separators=(",", ":"))
    # whatever order safetensors chose, the canonical form is the same
    reordered = {"__metadata__": dict(reversed(list(header["__metadata__"].items()))),
                 **{k: v for k, v in reversed(list(header.items())) if k != "__metadata__"}}
    text = json.dumps(reordered).encode()
    text += b" " * (-len(text) % 8)
    shuffled = struct.pack("<Q", len(text)) + text + data[8 + n:]
    assert shuffled != data and _canonical_header(shuffled) == data


def test_truncated_file_is_reported_as_corrupted(saved, tmp_path):
    _, path = saved
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="corrupted or truncated"):
        load_model(broken)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="broken|corrupted"):
        load_model(garbage)


def test_foreign_safetensors_file_is_refused(tmp_path):
    foreign = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.zeros(3)}, str(foreign))
    with pytest.raises(CheckpointError, match="not a tfckd_lite.model file"):
        load_model(foreign)


def test_training_state_is_not_a_model_file(tmp_path):
    model = build_model("lite-student")
    opt = torch.optim.AdamW(model.parameters())
    path = save_training_state(tmp_path / "s.state.safetensors", model, opt, {"epoch": 1})
    with pytest.raises(CheckpointError, match="different kind"):
        load_model(path)


def test_weights_of_another_preset_are_refused(saved):
    _, path = saved
    with pytest.raises(CheckpointError, match="another|config"):
        load_weights(build_model("lite-teacher"), path)
    assert load_weights(build_model("lite-student"), path) is not None


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "nope.safetensors")


def test_training_state_roundtrip_restores_optimizer_and_rng(tmp_path):
    torch.manual_seed(0)
    model = build_model("lite-student")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    spec = torch.randn(2, 2, 8, 257)
    model(spec).square().mean().backward()
    opt.step()
    torch.manual_seed(123)
    path = save_training_state(tmp_path / "s.state.safetensors", model, opt,
                               {"epoch": 3, "history": [{"loss": 0.5}]})
    expected_draw = torch.rand(3)

    other = build_model("lite-student")
    other_opt = torch.optim.AdamW(other.parameters(), lr=1e-3)
    counters = load_training_state(path, other, other_opt)
    assert counters == {"epoch": 3, "history": [{"loss": 0.5}]}
    assert torch.equal(torch.rand(3), expected_draw)
    for a, b in zip(model.parameters(), other.parameters()):
        assert torch.equal(a, b)
    sa, sb = opt.state_dict()["state"], other_opt.state_dict()["state"]
    assert sa.keys() == sb.keys()
    for pid in sa:
        for key in sa[pid]:
            assert torch.equal(torch.as_tensor(sa[pid][key]), torch.as_tensor(sb[pid][key]))


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"old")

    class Boom(Exception):
        pass

    def failing_fsync(fd):
        raise Boom()

    monkeypatch.setattr("os.fsync", failing_fsync)
    with pytest.raises(Boom):
        atomic_write_bytes(target, b"new contents")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]
