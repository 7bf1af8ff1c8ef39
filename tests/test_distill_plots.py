"""Plots of relations and calibration weights (tfckd_lite.distill.plots)."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from tfckd_lite.distill import time_relation
from tfckd_lite.distill.plots import (calibration_course, layer_labels, matched_weight,
                                      stage_layer_names,
                                      plot_calibration_course, plot_calibration_heatmap,
                                      plot_calibration_heatmaps, plot_frame_weights,
                                      plot_relation, plot_weight_curves)
from tfckd_lite.models import build_model
from tfckd_lite.stft import HOP_LENGTH, SAMPLE_RATE

pytestmark = pytest.mark.usefixtures("close_figures")


def test_plot_relation_draws_the_matrix():
    rel = time_relation(torch.randn(2, 3, 7, 5))[0]
    fig, ax, im = plot_relation(rel, title="P")
    assert im.get_array().shape == (7, 7)
    np.testing.assert_allclose(np.asarray(im.get_array()), rel.numpy(), rtol=1e-6)
    assert ax.get_title() == "P" and ax.figure is fig


def test_plot_relation_uses_given_axes_and_rejects_batches():
    fig, ax = plt.subplots()
    out_fig, out_ax, im = plot_relation(np.full((4, 2), 0.5), ax=ax, colorbar=False,
                                        xlabel="utterance b'")
    assert out_fig is fig and out_ax is ax and ax.get_xlabel() == "utterance b'"
    with pytest.raises(ValueError, match=r"\[R, C\]"):
        plot_relation(torch.rand(2, 4, 4))


def test_heatmap_averages_batch_and_frames():
    weights = torch.softmax(torch.randn(2, 5, 3, 4), dim=-1)
    fig, ax, im = plot_calibration_heatmap(weights, teacher_labels=["a", "b", "c", "d"])
    shown = np.asarray(im.get_array())
    assert shown.shape == (3, 4)
    np.testing.assert_allclose(shown, weights.mean((0, 1)).numpy(), rtol=1e-6)
    np.testing.assert_allclose(shown.sum(1), 1.0, rtol=1e-5)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c", "d"]
    assert len(ax.texts) == 12                         # one annotation per cell
    assert im.get_clim() == (0.0, 1.0)


def test_heatmap_errors():
    with pytest.raises(ValueError, match="n_s, n_t"):
        plot_calibration_heatmap(np.ones(3))
    with pytest.raises(ValueError, match="n_s, n_t"):
        plot_calibration_heatmap(np.ones((1, 2, 3)))
    with pytest.raises(ValueError, match="student_labels"):
        plot_calibration_heatmap(np.ones((2, 2)) / 2, student_labels=["only one"])


def test_heatmap_without_annotations_on_given_axes():
    fig, ax = plt.subplots()
    _, out_ax, _ = plot_calibration_heatmap(np.ones((1, 2)) / 2, ax=ax, annotate=False)
    assert out_ax is ax and len(ax.texts) == 0


def test_weight_curves_one_line_per_teacher_layer_in_seconds():
    weights = torch.softmax(torch.randn(10, 3), dim=-1)
    fig, ax, lines = plot_weight_curves(weights, labels=["E1", "E2", "E3"])
    assert len(lines) == 3
    x, y = lines[1].get_data()
    np.testing.assert_allclose(y, weights[:, 1].numpy(), rtol=1e-6)
    np.testing.assert_allclose(x[0], 0.5 * HOP_LENGTH / SAMPLE_RATE)
    assert ax.get_xlim() == pytest.approx((0, 10 * HOP_LENGTH / SAMPLE_RATE))
    assert ax.get_xlabel() == "time (s)"


def test_weight_curves_frames_and_errors():
    _, ax, lines = plot_weight_curves(np.full((4, 2), 0.5), seconds=False)
    assert list(lines[0].get_xdata()) == [0, 1, 2, 3] and ax.get_xlabel() == "frame"
    with pytest.raises(ValueError, match=r"\[T, n_t\]"):
        plot_weight_curves(np.ones((2, 4, 1, 2)))
    with pytest.raises(ValueError, match="labels"):
        plot_weight_curves(np.ones((4, 2)), labels=["a"])


def test_matched_weight_follows_the_layer_pairing():
    assert matched_weight(np.eye(3)) == 1.0
    assert matched_weight(np.full((3, 3), 1 / 3)) == pytest.approx(1 / 3)
    # one student block against four teacher blocks: paired with the teacher's last
    assert matched_weight(torch.tensor([[0.1, 0.2, 0.3, 0.4]])) == pytest.approx(0.4)
    with pytest.raises(ValueError, match=r"\[n_s, n_t\]"):
        matched_weight(np.ones((2, 3, 3)))


def _summary(diagonal):
    off = (1 - diagonal) / 2
    w = (np.full((3, 3), off) + np.eye(3) * (diagonal - off)).tolist()
    return {"encoder": {"time": w, "freq": w}, "inter": {"time": w, "freq": w}}


def test_calibration_course_reads_a_history_and_plots_it():
    history = [{"epoch": 1, "calibration_initial": _summary(1 / 3), "calibration": _summary(0.5)},
               {"epoch": 2, "calibration": _summary(0.7)}, {"epoch": 3}]
    course = calibration_course(history)
    assert list(course) == [0, 1, 2]
    fig, ax, lines = plot_calibration_course(course, xlabel="epoch")
    assert len(lines) == 4                               # 2 stages x 2 streams
    assert ax.get_xlabel() == "epoch"
    np.testing.assert_allclose(lines[0].get_ydata(), [1 / 3, 0.5, 0.7])
    assert lines[0].get_linestyle() == "-" and lines[1].get_linestyle() == "--"
    # network order and whole-number ticks, whatever order a stored history kept
    shuffled = {k: {"inter": v["inter"], "encoder": {"freq": v["encoder"]["freq"],
                                                     "time": v["encoder"]["time"]}}
                for k, v in course.items()}
    _, ax, lines = plot_calibration_course(shuffled, xlabel="epoch")
    assert [line.get_label() for line in lines] == \
        ["encoder time", "encoder freq", "inter time", "inter freq"]
    assert all(float(t).is_integer() for t in ax.get_xticks())
    # how decisive: log(max / min) of each row, against the SemCKD ceiling at 2
    _, ax, lines = plot_calibration_course(course, xlabel="epoch", measure="spread")
    np.testing.assert_allclose(lines[0].get_ydata(),
                               [0.0, np.log(0.5 / 0.25), np.log(0.7 / 0.15)], atol=1e-6)
    assert any(line.get_label() == "SemCKD ceiling" and line.get_ydata()[0] == 2.0
               for line in ax.get_lines())
    with pytest.raises(ValueError, match="measure must be one of"):
        plot_calibration_course(course, measure="peak")
    with pytest.raises(ValueError, match="no calibration weights"):
        calibration_course([{"epoch": 1, "train": {}}])
    with pytest.raises(ValueError, match="no calibration snapshots"):
        plot_calibration_course({})


def test_layer_labels_name_every_stage_of_a_dpdcrn_pair():
    labels = layer_labels(build_model("lite-student"), build_model("lite-teacher").config)
    assert labels["dual_path"] == (["M1"], ["M1", "M2"])
    assert labels["encoder"] == (["E1", "E2", "E3"],) * 2 and labels["decoder"][1] == ["D1", "D2", "D3"]
    assert labels["inter"][0] == ["O_E", "O_M", "O_D"]
    assert stage_layer_names("decoder", 2) == ["D1", "D2"]
    assert stage_layer_names("inter", 2) == ["inter1", "inter2"]     # not the three fused sets


def _weights(batch, frames, n_s, n_t, seed=0):
    w = torch.rand(batch, frames, n_s, n_t, generator=torch.Generator().manual_seed(seed))
    return w / w.sum(-1, keepdim=True)


def test_heatmaps_of_every_stage_and_stream():
    weights = {"inter": {"time": _weights(2, 5, 3, 3), "freq": _weights(2, 5, 3, 3, 1)},
               "encoder": {"time": _weights(2, 5, 3, 3, 2), "freq": _weights(2, 5, 3, 3, 3)},
               "dual_path": {"time": _weights(2, 5, 1, 2, 4)}}      # e.g. a time-only stage
    labels = {"dual_path": (["M1"], ["M1", "M2"])}
    fig, axes = plot_calibration_heatmaps(weights, labels, suptitle="trained")
    assert axes.shape == (2, 3)
    assert [ax.get_title() for ax in axes[0]] == ["encoder: α^T", "dual_path: α^T", "inter: α^T"]
    assert not axes[1, 1].axison                         # no "frequency" stream for that stage
    assert [t.get_text() for t in axes[0, 1].get_xticklabels()] == ["M1", "M2"]
    image = axes[1, 0].images[0].get_array()           # the encoder's α^F, averaged
    np.testing.assert_allclose(image, weights["encoder"]["freq"].mean(dim=(0, 1)).numpy(),
                               rtol=1e-6)
    assert fig._suptitle.get_text() == "trained"
    with pytest.raises(ValueError, match="uniform calibration"):
        plot_calibration_heatmaps({})


def test_frame_weights_under_the_spectrogram():
    frames = 20
    spec = torch.randn(2, frames, 257)
    stage = {"time": _weights(frames, 1, 3, 3)[:, 0], "freq": _weights(frames, 1, 3, 3, 1)[:, 0]}
    fig, axes, curves = plot_frame_weights(spec, stage, 2, teacher_labels=["E1", "E2", "E3"],
                                           student_label="E3", title="utterance 0")
    assert len(axes) == 3 and axes[0].get_title() == "utterance 0"
    np.testing.assert_allclose(curves["freq"], stage["freq"][:, 2].numpy())
    assert axes[1].get_title() == "α^T: student E3 → teacher layers"
    assert [line.get_label() for line in axes[2].get_lines()] == \
        ["teacher E1", "teacher E2", "teacher E3"]
    assert axes[1].get_xlim() == axes[0].get_xlim()                  # one time axis
    with pytest.raises(ValueError, match=r"\[T=20, n_s, n_t\]"):
        plot_frame_weights(spec, {"time": stage["time"][:10]}, 0)
    with pytest.raises(ValueError, match="no known stream"):
        plot_frame_weights(spec, {"other": stage["time"]}, 0)
