"""tfckd_lite.compare: the pure comparison functions and the headless-driven widget."""

import gc
import math
import subprocess
import sys

import matplotlib.pyplot as plt
import numpy as np
import pytest
import soundfile as sf
import torch
from matplotlib.figure import Figure

from tfckd_lite import compare, metrics
from tfckd_lite.audio import AudioError
from tfckd_lite.data import open_corpus
from tfckd_lite.distill import build_distiller
from tfckd_lite.models import DPDCRN, DPDCRNConfig
from tfckd_lite.stft import HOP_LENGTH, SAMPLE_RATE, num_frames

pytestmark = pytest.mark.usefixtures("one_torch_thread", "close_figures")

FRAMES, BATCH = 20, 2          # the small distiller's calibration windows and batch




def mse(enhanced, clean):
    return (enhanced - clean).square().mean()


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return (DPDCRN(DPDCRNConfig(channels=16, dual_path_layers=2)).eval(),
            DPDCRN(DPDCRNConfig(channels=8, dual_path_layers=1)).eval())


@pytest.fixture(scope="module")
def distiller(models):
    teacher, student = models
    torch.manual_seed(0)
    return build_distiller("tfckd", teacher, student, batch_size=BATCH, frames=FRAMES,
                           se_loss=mse, fusion_mid_channels=16)


class CountingEnhancer:
    """A stand-in enhancer (half the input) that counts how often it runs."""

    def __init__(self):
        self.calls = 0

    def __call__(self, wave):
        self.calls += 1
        return 0.5 * wave


def _tone(seconds=1.0, rate=SAMPLE_RATE):
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def _clip(test_split, index=0):
    return compare.load_test_clip(test_split, index)


# ------------------------------------------------------------------------------- systems, clips

def test_default_systems_lists_teacher_student_then_distilled_students():
    names = ["lite-student-tfckd", "other-model", "lite-student", "lite-student-fitnets",
             "lite-teacher"]
    assert compare.default_systems(names) == ["lite-teacher", "lite-student",
                                              "lite-student-fitnets", "lite-student-tfckd"]
    assert compare.default_systems(["lite-student"]) == ["lite-student"]
    assert compare.default_systems([]) == []
    shipped = compare.default_systems()                   # whatever subset is shipped today
    assert shipped[:2] == ["lite-teacher", "lite-student"]
    assert compare.system_label("lite-student-tfckd") == "student + tfckd"
    assert compare.system_label("lite-teacher") == "teacher"


def test_many_systems_open_with_the_core_ones_ticked(test_split, models, distiller):
    methods = ["fitnets", "frame-similarity", "output", "tfckd", "tfckd-freq-only",
               "tfckd-intra", "tfckd-released", "tfckd-time-only", "tfckd-uniform"]
    names = ["noisy", "clean", "lite-teacher", "lite-student"] + \
        [f"lite-student-{m}" for m in methods]
    assert compare.initially_shown(names) == ["noisy", "clean", "lite-teacher", "lite-student",
                                              "lite-student-tfckd"]
    assert compare.initially_shown(names, "lite-student-output")[-2:] == \
        ["lite-student-output", "lite-student-tfckd"]
    assert compare.initially_shown(names[:6]) == names[:6]          # few: all of them
    # the widget ticks those, the others stay one click away; ``shown`` overrides
    teacher, student = models
    many = {"lite-teacher": teacher, "lite-student": student,
            **{f"lite-student-{m}": CountingEnhancer() for m in methods}}
    w = compare.CompareWidget(many, test_split, distiller=distiller,
                              weights_system="lite-student-tfckd", metrics=("si_sdr",))
    assert w.view["systems"] == compare.initially_shown(["noisy", "clean", *many])
    assert list(w.axes["spectrogram"]) == w.view["systems"]
    w.controls["systems"]["lite-student-output"].value = True
    assert "lite-student-output" in w.axes["spectrogram"]
    w.close()
    w = compare.CompareWidget(many, test_split, metrics=("si_sdr",), shown=["lite-teacher"])
    assert w.view["systems"] == ["lite-teacher"]
    w.close()
    with pytest.raises(ValueError, match="unknown system"):
        compare.CompareWidget(many, test_split, metrics=("si_sdr",), shown=["nope"])


def test_load_test_clip_and_its_errors(test_split):
    clip = _clip(test_split, 1)
    noisy, clean, name = test_split[1]
    assert clip.name == name and clip.has_reference
    np.testing.assert_array_equal(clip.noisy, noisy.numpy())
    np.testing.assert_array_equal(clip.clean, clean.numpy())
    assert clip.duration == pytest.approx(len(noisy) / SAMPLE_RATE)
    with pytest.raises(IndexError, match="out of range"):
        compare.load_test_clip(test_split, len(test_split))
    with pytest.raises(TypeError, match="int"):
        compare.load_test_clip(test_split, "0")


def test_load_wav_clip_converts_what_it_can_and_names_what_it_cannot(tmp_path):
    sf.write(tmp_path / "ok.wav", _tone(1.0), SAMPLE_RATE)
    clip = compare.load_wav_clip(tmp_path / "ok.wav")
    assert clip.clean is None and not clip.has_reference and clip.notes == ()
    assert clip.noisy.shape == (SAMPLE_RATE,) and clip.noisy.dtype == np.float32

    sf.write(tmp_path / "cd.wav", _tone(1.0, 44100), 44100)
    clip = compare.load_wav_clip(tmp_path / "cd.wav")
    assert clip.noisy.shape == (SAMPLE_RATE,)
    assert "resampled from 44100 Hz to 16000 Hz" in clip.notes[0]

    sf.write(tmp_path / "long.wav", _tone(3.0), SAMPLE_RATE)
    clip = compare.load_wav_clip(tmp_path / "long.wav", max_seconds=2.0)
    assert clip.noisy.shape == (2 * SAMPLE_RATE,) and "cut to its first 2 s" in clip.notes[0]

    sf.write(tmp_path / "stereo.wav", np.stack([_tone(), _tone()], 1), SAMPLE_RATE)
    (tmp_path / "text.wav").write_text("not audio at all")
    sf.write(tmp_path / "short.wav", _tone(0.01), SAMPLE_RATE)
    for name, reason in [("stereo.wav", "2 channels"), ("text.wav", "cannot read audio"),
                         ("missing.wav", "no such file"), ("short.wav", "too short")]:
        with pytest.raises(AudioError, match=reason):
            compare.load_wav_clip(tmp_path / name)


# -------------------------------------------------------------------------- pure computations

def test_signals_spectrograms_and_one_colour_scale(test_split):
    clip = _clip(test_split)
    enhancer = CountingEnhancer()
    signals = compare.compute_signals(clip, {"half": enhancer})
    assert list(signals) == ["noisy", "clean", "half"] and enhancer.calls == 1
    np.testing.assert_allclose(signals["half"], 0.5 * clip.noisy)
    spectrograms = compare.compute_spectrograms(signals)
    frames = num_frames(len(clip.noisy))
    assert all(db.shape == (frames, 257) for db in spectrograms.values())
    # halving the amplitude lowers the power by 20 log10(2) dB wherever it is above the floor
    loud = spectrograms["noisy"] > -60
    np.testing.assert_allclose((spectrograms["noisy"] - spectrograms["half"])[loud],
                               20 * math.log10(2), atol=1e-2)
    vmin, vmax = compare.compute_color_limits(spectrograms, dynamic_range=60)
    assert vmax == max(float(db.max()) for db in spectrograms.values())
    assert vmin == pytest.approx(vmax - 60)
    with pytest.raises(ValueError, match="reserved"):
        compare.compute_signals(clip, {"clean": enhancer})
    with pytest.raises(ValueError, match="keep the length"):
        compare.compute_signals(clip, {"cut": lambda w: w[:-1]})
    with pytest.raises(ValueError, match="dynamic_range"):
        compare.compute_color_limits(spectrograms, dynamic_range=0)


def test_differences_to_clean_with_a_display_floor():
    clean = np.array([[-100.0, -20.0], [-30.0, -10.0]])
    noisy = np.array([[-50.0, -15.0], [-90.0, -10.0]])
    diffs, limit = compare.compute_differences({"clean": clean, "noisy": noisy},
                                               percentile=100)
    np.testing.assert_allclose(diffs["noisy"], noisy - clean)
    assert limit == pytest.approx(60.0) and list(diffs) == ["noisy"]
    diffs, limit = compare.compute_differences({"clean": clean, "noisy": noisy}, floor=-60,
                                               percentile=100)
    # below the floor both count as -60: only what a panel can show is compared
    np.testing.assert_allclose(diffs["noisy"], [[10.0, 5.0], [-30.0, 0.0]])
    assert limit == pytest.approx(30.0)
    with pytest.raises(ValueError, match="clean reference"):
        compare.compute_differences({"noisy": noisy})


def test_zoom_limits_clamp_widen_and_refuse():
    assert compare.zoom_limits(None, 2.0) == (0.0, 2.0)
    assert compare.zoom_limits((0.5, 1.5), 2.0) == (0.5, 1.5)
    assert compare.zoom_limits((-1.0, 9.0), 2.0) == (0.0, 2.0)
    start, end = compare.zoom_limits((1.0, 1.0), 2.0)              # one value: one hop wide
    assert end - start == pytest.approx(HOP_LENGTH / SAMPLE_RATE) and start < 1.0 < end
    assert compare.zoom_limits((2.0, 2.0), 2.0)[1] == 2.0           # widened inside the clip
    with pytest.raises(ValueError, match="starts after"):
        compare.zoom_limits((1.5, 0.5), 2.0)
    with pytest.raises(ValueError, match="outside"):
        compare.zoom_limits((3.0, 4.0), 2.0)
    with pytest.raises(ValueError, match=r"\(start, end\)"):
        compare.zoom_limits(0.5, 2.0)


def test_metrics_table_equals_the_library_metrics(test_split):
    clip = _clip(test_split)
    mixed = (0.5 * clip.noisy + 0.5 * clip.clean).astype(np.float32)
    signals = {"noisy": clip.noisy, "clean": clip.clean, "mixed": mixed}
    table = compare.compute_metrics(signals)
    assert table.metrics == ("pesq_wb", "stoi", "si_sdr") and list(table.scores) == ["noisy",
                                                                                      "mixed"]
    for name, x in (("noisy", clip.noisy), ("mixed", mixed)):
        assert table.scores[name]["pesq_wb"] == pytest.approx(metrics.pesq_wb(x, clip.clean))
        assert table.scores[name]["stoi"] == pytest.approx(metrics.stoi(x, clip.clean))
        assert table.scores[name]["si_sdr"] == pytest.approx(metrics.si_sdr(x, clip.clean))
    for m in table.metrics:
        assert table.scores["mixed"][f"delta_{m}"] == pytest.approx(
            table.scores["mixed"][m] - table.scores["noisy"][m])
        assert f"delta_{m}" not in table.scores["noisy"]
    assert table.scores["mixed"]["delta_si_sdr"] > 0               # halfway to clean is better
    assert "| student" not in table.markdown() and "mixed" in table.markdown()
    assert table.html().count("<tr>") == 3 and table.errors == {}
    with pytest.raises(ValueError, match="no clean reference"):
        compare.compute_metrics({"noisy": clip.noisy})


def test_unscorable_metrics_are_nan_with_a_reason():
    short = np.random.default_rng(0).standard_normal(2000).astype(np.float32) * 0.1
    table = compare.compute_metrics({"noisy": short, "clean": short, "same": short},
                                    metrics=("pesq_wb", "si_sdr"))
    assert math.isnan(table.scores["same"]["pesq_wb"])
    assert "too short" in table.errors["same"]["pesq_wb"]
    assert table.scores["same"]["si_sdr"] > 50                    # identical: very high


def test_frame_weights_cover_every_frame_in_windows_and_batches(distiller):
    rng = np.random.default_rng(0)
    wave = (0.1 * rng.standard_normal(46 * HOP_LENGTH)).astype(np.float32)
    total = num_frames(len(wave))                                  # 47 = 2 windows + 7 frames
    assert total % FRAMES == 7
    weights = compare.compute_frame_weights(distiller, wave)
    assert set(weights) == {"encoder", "dual_path", "decoder", "inter"}
    sizes = {"encoder": (3, 3), "dual_path": (1, 2), "decoder": (3, 3), "inter": (3, 3)}
    for stage, streams in weights.items():
        assert set(streams) == {"time", "freq"}
        for w in streams.values():
            assert w.shape == (total, *sizes[stage])
            np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-5)

    # the time stream of a window depends on that window only: compare with direct batches
    spec = distiller.student.stft(torch.from_numpy(wave))
    first = spec[:, :FRAMES].unsqueeze(0).repeat(BATCH, 1, 1, 1)
    last = spec[:, total - FRAMES:].unsqueeze(0).repeat(BATCH, 1, 1, 1)
    direct_first = distiller.calibration_weights(first)["encoder"]["time"][0].numpy()
    direct_last = distiller.calibration_weights(last)["encoder"]["time"][0].numpy()
    np.testing.assert_allclose(weights["encoder"]["time"][:FRAMES], direct_first, atol=1e-5)
    np.testing.assert_allclose(weights["encoder"]["time"][-7:], direct_last[-7:], atol=1e-5)


def test_frame_weights_errors(distiller):
    with pytest.raises(ValueError, match="calibration windows are 20 frames"):
        compare.compute_frame_weights(distiller, np.zeros(10 * HOP_LENGTH, np.float32))
    with pytest.raises(ValueError, match="mono waveform"):
        compare.compute_frame_weights(distiller, np.zeros((2, 40 * HOP_LENGTH), np.float32))
    with pytest.raises(TypeError, match="TFCKDDistiller"):
        compare.compute_frame_weights(object(), np.zeros(40 * HOP_LENGTH, np.float32))


# ---------------------------------------------------------------------------------- drawing

@pytest.fixture(scope="module")
def comparison(test_split, models, distiller):
    teacher, student = models
    return compare.compute_comparison(_clip(test_split), {"teacher": teacher,
                                                          "student": student},
                                      distiller=distiller, weights_system="student",
                                      weights_note="untrained", metrics=("si_sdr",))


def test_comparison_figure_shares_scale_axes_and_zoom(comparison):
    fig, axes, images = compare.plot_comparison(comparison, time_range=(0.5, 1.25),
                                                difference=True,
                                                weights_view=("encoder", "time", 1))
    systems = ["noisy", "clean", "teacher", "student"]
    assert list(axes["spectrogram"]) == systems
    assert {im.get_clim() for im in images["spectrogram"].values()} == {comparison.limits}
    assert len({ax.get_ylim() for ax in axes["spectrogram"].values()}) == 1   # frequency axis
    lim = comparison.difference_limit
    assert list(images["difference"]) == ["noisy", "teacher", "student"]        # not clean
    assert {im.get_clim() for im in images["difference"].values()} == {(-lim, lim)}
    for ax in compare._all_axes(axes):
        assert ax.get_xlim() == pytest.approx((0.5, 1.25))
    assert len(images["weights"]) == 3                                   # one per teacher layer
    np.testing.assert_allclose(images["weights"][0].get_ydata(),
                               comparison.weights["encoder"]["time"][:, 1, 0])
    # one row across the figure (no blank cells beside it), titled with the system it belongs to
    assert axes["weights"].get_subplotspec().colspan == range(len(systems))
    assert "calibration weights α of student:" in axes["weights"].get_title(loc="left")


def test_comparison_figure_options_and_errors(comparison):
    fig, axes, _ = compare.plot_comparison(comparison, ["teacher", "noisy"])
    assert list(axes["spectrogram"]) == ["teacher", "noisy"]
    assert axes["difference"] == {} and axes["weights"] is None
    assert axes["spectrogram"]["noisy"].get_xlim() == pytest.approx((0, comparison.axis_end))
    # the weights belong to the student: without its column there is no weights panel
    _, axes, _ = compare.plot_comparison(comparison, ["teacher"],
                                         weights_view=("encoder", "time", 0), fig=fig)
    assert axes["weights"] is None and len(fig.axes) == 2            # one panel + colour bar
    with pytest.raises(ValueError, match="unknown system"):
        compare.plot_comparison(comparison, ["nobody"])
    with pytest.raises(ValueError, match="at least one"):
        compare.plot_comparison(comparison, [])
    with pytest.raises(ValueError, match="no weights for set"):
        compare.plot_comparison(comparison, weights_view=("encoder", "space", 0))
    with pytest.raises(ValueError, match="student layer must be an index from 0 to 0"):
        compare.plot_comparison(comparison, weights_view=("dual_path", "time", 1))


def test_own_file_comparison_has_no_reference_views(comparison, models):
    clip = compare.Clip("mine.wav", comparison.clip.noisy, None, "file mine.wav")
    own = compare.compute_comparison(clip, {"teacher": models[0]})
    assert own.systems == ["noisy", "teacher"] and own.metrics is None
    assert own.differences is None and own.weights is None
    assert compare.NO_REFERENCE_NOTE in own.notes
    with pytest.raises(ValueError, match="no clean reference"):
        compare.plot_comparison(own, difference=True)
    html = compare.audio_players_html(own.signals)
    assert html.count("<audio") == 2 and "teacher" in html


def test_weight_views_name_every_curve_set(comparison):
    views = compare.weight_views(comparison.weights)
    assert ("encoder · time · student E1", ("encoder", "time", 0)) in views
    assert ("inter · freq · student O_D", ("inter", "freq", 2)) in views
    assert len(views) == 2 * (3 + 1 + 3 + 3)                         # streams x student layers


# ----------------------------------------------------------------------------------- widget

@pytest.fixture
def widget(test_split, models, distiller):
    teacher, student = models
    counting = CountingEnhancer()
    w = compare.CompareWidget({"teacher": teacher, "student": student, "half": counting},
                              test_split, index=0, distiller=distiller,
                              weights_system="student", weights_note="untrained",
                              metrics=("si_sdr",))
    w.counting = counting
    yield w
    w.close()


def test_widget_state_follows_its_controls(widget, test_split):
    c = widget.controls
    assert widget.current.clip.name == test_split.names[0] and widget.message == ""
    assert widget.view["systems"] == ["noisy", "clean", "teacher", "student", "half"]
    assert widget.stats == {"comparisons": 1, "redraws": 1, "zooms": 0, "renders": 0}
    end = widget.current.axis_end
    assert c["time_range"].value[1] >= end and widget.view["time_range"] == (0.0, end)

    c["clip"].value = 3                                       # choose another test clip
    assert widget.current.clip.name == test_split.names[3]
    assert widget.counting.calls == 2 and widget.stats["comparisons"] == 2
    assert f"{widget.current.metrics.scores['teacher']['si_sdr']:.2f}" in widget.table.value
    c["clip"].value = 0                                       # back: cached, models not rerun
    assert widget.counting.calls == 2 and widget.stats["comparisons"] == 2

    c["systems"]["clean"].value = False
    assert "clean" not in widget.view["systems"] and "clean" not in widget.axes["spectrogram"]
    c["difference"].value = True
    assert set(widget.axes["difference"]) == {"noisy", "teacher", "student", "half"}
    c["time_range"].value = (0.25, 0.75)
    assert widget.view["time_range"] == (0.25, 0.75)
    assert all(ax.get_xlim() == pytest.approx((0.25, 0.75))
               for ax in compare._all_axes(widget.axes))
    c["weights"].value = ("decoder", "freq", 2)
    np.testing.assert_allclose(widget.axes["weights"].lines[1].get_ydata(),
                               widget.current.weights["decoder"]["freq"][:, 2, 1])
    assert widget.counting.calls == 2                         # no control reran the models

    for box in c["systems"].values():
        box.value = False
    assert widget.message_kind == "error" and "at least one system" in widget.message
    c["systems"]["half"].value = True
    assert widget.message == "" and list(widget.axes["spectrogram"]) == ["half"]


def test_widget_shows_a_message_for_every_bad_file(widget, tmp_path):
    sf.write(tmp_path / "stereo.wav", np.stack([_tone(), _tone()], 1), SAMPLE_RATE)
    (tmp_path / "notes.wav").write_text("this is text, not audio")
    before = widget.current
    for path, reason in [(tmp_path / "missing.wav", "no such file"),
                         (tmp_path / "notes.wav", "cannot read audio"),
                         (tmp_path / "stereo.wav", "has 2 channels"),
                         ("", "type the path")]:
        widget.controls["path"].value = str(path)
        widget.controls["load"].click()
        assert widget.message_kind == "error" and reason in widget.message, widget.message
        assert reason in widget.message_box.value
        assert widget.current is before                      # the last good clip stays

    # another sample rate is converted, and the widget says so
    sf.write(tmp_path / "cd.wav", _tone(1.5, 44100), 44100)
    widget.controls["path"].value = str(tmp_path / "cd.wav")
    widget.controls["load"].click()
    assert widget.current.clip.name == "cd.wav" and widget.message_kind == "info"
    assert "resampled from 44100 Hz to 16000 Hz" in widget.message
    assert compare.NO_REFERENCE_NOTE in widget.message
    assert widget.controls["difference"].disabled and widget.controls["clip"].value is None
    assert widget.view["difference"] is False and "clean" not in widget.view["systems"]
    assert "no clean reference" in widget.table.value
    assert widget.players.value.count("<audio") == 4          # noisy + three enhancers
    assert widget.axes["weights"] is not None                 # weights need no reference

    widget.controls["clip"].value = 2                         # back to a test clip
    assert widget.current.clip.has_reference and not widget.controls["difference"].disabled


def test_widget_redraws_into_one_figure_without_leaking(widget):
    gc.collect()
    pyplot_figures = len(plt.get_fignums())
    figures = sum(1 for o in gc.get_objects() if issubclass(type(o), Figure))
    axes_before = len(widget.figure.axes)
    slider = widget.controls["time_range"]
    end = slider.max
    for i in range(50):
        slider.value = (0.02 * i, min(end, 0.5 + 0.02 * i))
    for flag in (True, False) * 3:                            # full redraws too
        widget.controls["difference"].value = flag
    gc.collect()
    assert widget.stats["zooms"] == 50 and widget.stats["redraws"] == 7
    assert len(plt.get_fignums()) == pyplot_figures
    assert sum(1 for o in gc.get_objects() if issubclass(type(o), Figure)) == figures
    assert len(widget.figure.axes) == axes_before
    assert widget.counting.calls == 1
    png = widget.render_png()                     # what a notebook front-end is sent
    assert png.startswith(b"\x89PNG") and len(plt.get_fignums()) == pyplot_figures


def test_widget_argument_errors(test_split, models):
    with pytest.raises(ValueError, match="at least one enhancer"):
        compare.CompareWidget({}, test_split)
    with pytest.raises(ValueError, match="weights_system"):
        compare.CompareWidget({"teacher": models[0]}, test_split, distiller=object())
    with pytest.raises(IndexError, match="out of range"):
        compare.CompareWidget({"teacher": models[0]}, test_split, index=999)
    own_only = compare.CompareWidget({"half": CountingEnhancer()})
    assert own_only.current is None and own_only.controls["clip"].disabled
    with pytest.raises(ValueError, match="no dataset"):
        own_only.show_clip(0)
    own_only.close()


def test_make_compare_widget_uses_the_shipped_models(mini):
    widget = compare.make_compare_widget(mini, index=2, metrics=("si_sdr",))
    assert list(widget.systems) == compare.default_systems()
    assert widget.current.clip.name == open_corpus(mini, "test").names[2]
    assert set(widget.current.metrics.scores) == {"noisy", *compare.default_systems()}
    assert widget.controls["weights"].layout.display == "none"      # no distiller, no weights
    widget.close()


def test_importing_the_module_stays_light():
    code = ("import sys, tfckd_lite.compare; "
            "print('ipywidgets' in sys.modules, 'matplotlib.pyplot' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "False"]
