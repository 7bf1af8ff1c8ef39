"""tfckd_lite.listening: the MUSHRA design, the stimuli, the ratings file, the analysis and the
widget driven headless."""

import csv
import math
import os

import numpy as np
import pytest
from scipy import signal, stats

from tfckd_lite import compare, files, listening
from tfckd_lite.data import open_corpus
from tfckd_lite.listening import (ANCHOR, REFERENCE, ForeignDesignError, Rating, RatingsFile,
                                  design_test)
from tfckd_lite.stft import SAMPLE_RATE

pytestmark = pytest.mark.usefixtures("one_torch_thread", "close_figures")

SYSTEMS = ("noisy", "lite-student", "lite-student-tfckd", "lite-teacher")
CLIPS = [f"clip{i}" for i in range(8)]




def _noise(seconds=2.0, seed=0):
    return np.random.default_rng(seed).normal(0, 0.1, int(seconds * SAMPLE_RATE))


# --------------------------------------------------------------------------------- design

def test_design_is_deterministic_and_shuffles_trials_and_stimuli():
    test = design_test(CLIPS, SYSTEMS, seed=3)
    assert test == design_test(CLIPS, SYSTEMS, seed=3)
    assert test.fingerprint == design_test(CLIPS, SYSTEMS, seed=3).fingerprint
    other = design_test(CLIPS, SYSTEMS, seed=4)
    assert other.trials != test.trials and other.fingerprint != test.fingerprint
    assert test.stimuli == SYSTEMS + (REFERENCE, ANCHOR)
    assert [t.index for t in test.trials] == list(range(len(CLIPS)))
    assert sorted(t.clip for t in test.trials) == sorted(CLIPS)
    orders = [t.stimuli for t in test.trials]
    assert len(set(orders)) == len(orders), "two trials share a stimulus order"
    for trial in test.trials:
        assert sorted(trial.stimuli) == sorted(test.stimuli)
        assert trial.labels == ("A", "B", "C", "D", "E", "F")
        for label in trial.labels:
            assert trial.label_of(trial.system_of(label)) == label
    # the trial order is drawn too: over a few seeds it is not always the given one
    assert len({tuple(t.clip for t in design_test(CLIPS, SYSTEMS, s).trials)
                for s in range(5)}) > 1
    # few possible orders: 3 stimuli (3! = 6 orders) over 6 trials use every one of them
    small = design_test([f"c{i}" for i in range(6)], ["x"], seed=0)
    assert len({t.stimuli for t in small.trials}) == 6
    # clips given as Clip objects are named by their name
    clip = compare.Clip("mine", np.zeros(16000, np.float32), np.zeros(16000, np.float32), "x")
    assert design_test([clip], ["noisy"], 0).clips == ("mine",)


def test_fingerprint_follows_what_defines_the_design():
    base = design_test(CLIPS, SYSTEMS, 0).fingerprint
    assert design_test(CLIPS[:-1], SYSTEMS, 0).fingerprint != base
    assert design_test(CLIPS, SYSTEMS[:-1], 0).fingerprint != base
    assert design_test(CLIPS, SYSTEMS, 0, anchor_cutoff_hz=7000.0).fingerprint != base


def test_design_errors():
    with pytest.raises(ValueError, match="more than once"):
        design_test(["a", "a"], SYSTEMS, 0)
    with pytest.raises(ValueError, match="distinct"):
        design_test(["a"], ["noisy", "clean"], 0)
    with pytest.raises(ValueError, match="seed"):
        design_test(["a"], SYSTEMS, -1)
    with pytest.raises(ValueError, match="at least one clip"):
        design_test([], SYSTEMS, 0)
    with pytest.raises(ValueError, match="at least one system"):
        design_test(["a"], [], 0)
    with pytest.raises(TypeError, match="Clip or a clip name"):
        design_test([3], SYSTEMS, 0)
    test = design_test(["a"], SYSTEMS, 0)
    with pytest.raises(IndexError):
        test.trial(1)
    with pytest.raises(KeyError, match="no stimulus"):
        test.trials[0].system_of("Z")


# --------------------------------------------------------------------------------- anchor

def test_low_anchor_removes_the_band_above_3_5_khz_and_keeps_the_band_below():
    x = _noise()
    anchor = listening.low_anchor(x, SAMPLE_RATE)
    assert anchor.dtype == np.float32 and anchor.shape == x.shape
    f, before = signal.welch(x, SAMPLE_RATE, nperseg=1024)
    _, after = signal.welch(anchor, SAMPLE_RATE, nperseg=1024)
    above, below = f > 3700, f < 3300
    assert after[above].sum() < 1e-4 * before[above].sum()          # at least 40 dB down
    np.testing.assert_allclose(after[below], before[below], rtol=0.02)
    # zero phase: a tone below the cut-off comes out as it went in, not delayed
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    tone = 0.5 * np.sin(2 * np.pi * 1000 * t)
    np.testing.assert_allclose(listening.low_anchor(tone, SAMPLE_RATE), tone, atol=1e-5)
    assert np.abs(listening.low_anchor(np.sin(2 * np.pi * 5000 * t), SAMPLE_RATE)).max() < 1e-5


def test_low_anchor_errors():
    with pytest.raises(ValueError, match="Nyquist"):
        listening.low_anchor(_noise(), SAMPLE_RATE, cutoff_hz=9000)
    with pytest.raises(ValueError, match="NaN"):
        listening.low_anchor(np.array([0.0, np.nan]), SAMPLE_RATE)
    with pytest.raises(ValueError, match="mono"):
        listening.low_anchor(np.zeros((2, 100)), SAMPLE_RATE)


# ------------------------------------------------------------------------------- loudness

def test_gated_level_ignores_pauses_and_refuses_silence():
    speechlike = _noise(2.0)
    with_pause = np.concatenate([speechlike, np.zeros(2 * SAMPLE_RATE)])
    level = listening.gated_level_db(speechlike, SAMPLE_RATE)
    assert level == pytest.approx(20 * np.log10(0.1), abs=0.2)
    # a plain RMS drops by 3 dB with the pause; the gated level only by the few blocks that
    # straddle the pause's edge
    plain = 10 * np.log10(np.mean(with_pause ** 2))
    assert plain == pytest.approx(level - 3.0, abs=0.1)
    assert listening.gated_level_db(with_pause, SAMPLE_RATE) == pytest.approx(level, abs=0.5)
    with pytest.raises(ValueError, match="silent"):
        listening.gated_level_db(np.zeros(SAMPLE_RATE), SAMPLE_RATE)


def test_equal_loudness_levels_everything_and_never_clips():
    quiet, loud = 0.01 * _noise(seed=1), _noise(seed=2)
    spiky = quiet.copy()
    spiky[100] = 0.9                        # a peak that scaling up would push past full scale
    out = listening.equal_loudness({"quiet": quiet, "loud": loud, "spiky": spiky}, SAMPLE_RATE)
    levels = [listening.gated_level_db(x, SAMPLE_RATE) for x in out.values()]
    assert max(levels) - min(levels) < 0.01
    assert max(np.abs(x).max() for x in out.values()) <= listening.PEAK_LIMIT + 1e-6
    assert levels[0] < listening.TARGET_DB          # lowered together because of the spike
    calm = listening.equal_loudness({"quiet": quiet, "loud": loud}, SAMPLE_RATE)
    assert listening.gated_level_db(calm["quiet"], SAMPLE_RATE) == \
        pytest.approx(listening.TARGET_DB, abs=0.01)
    with pytest.raises(ValueError, match="stimulus 'nothing'.*silent"):
        listening.equal_loudness({"nothing": np.zeros(8000)}, SAMPLE_RATE)


def test_trial_signals_of_a_corpus_clip(test_split):
    clip = compare.load_test_clip(test_split, 0)
    out = listening.trial_signals(clip, {"half": lambda w: 0.5 * w})
    assert set(out) == {"noisy", "half", REFERENCE, ANCHOR}
    levels = [listening.gated_level_db(x, SAMPLE_RATE) for x in out.values()]
    assert max(levels) - min(levels) < 0.01
    # the noisy input and half of it are the same sound once levelled
    np.testing.assert_allclose(out["half"], out["noisy"], atol=1e-5)
    # the reference is the clean recording, scaled
    assert np.corrcoef(out[REFERENCE], clip.clean)[0, 1] > 0.99999
    own = compare.Clip("own", clip.noisy, None, "file")
    with pytest.raises(ValueError, match="no clean recording"):
        listening.trial_signals(own, {})


def test_score_stimuli_are_the_library_scores(test_split):
    clip = compare.load_test_clip(test_split, 1)
    scores = listening.score_stimuli(clip, {"same": lambda w: w}, metrics=("si_sdr",))
    assert set(scores) == {"noisy", "same", ANCHOR}
    assert scores["same"]["si_sdr"] == pytest.approx(scores["noisy"]["si_sdr"], abs=1e-4)
    assert scores[ANCHOR]["si_sdr"] > scores["noisy"]["si_sdr"]
    means = listening.mean_scores({"a": {"x": {"m": 1.0}}, "b": {"x": {"m": 3.0}},
                                   "c": {"x": {"m": float("nan")}}})
    assert means == {"x": {"m": 2.0}}


# --------------------------------------------------------------------------- ratings file

def _all(test, trial, value=50):
    return {s: value for s in test.trial(trial).stimuli}


def test_ratings_round_trip_through_the_csv(tmp_path):
    test = design_test(["a", "b", "c"], SYSTEMS, 0)
    path = tmp_path / "ratings.csv"
    store = RatingsFile(path, test)
    assert store.load() == [] and store.next_trial("ann") == 0
    values = {s: i * 10 for i, s in enumerate(test.trial(0).stimuli)}
    new = store.save_trial("ann", 0, values)
    assert [r.rating for r in new] == [values[s] for s in test.trial(0).stimuli]
    assert [r.label for r in new] == list("ABCDEF")
    loaded = RatingsFile(path, test).load()
    assert [(r.listener, r.trial, r.system, r.rating) for r in loaded] == \
        [(r.listener, r.trial, r.system, r.rating) for r in new]
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == listening.COLUMNS
    assert {row["design"] for row in rows} == {test.fingerprint}
    assert {row["test_seed"] for row in rows} == {"0"}
    assert store.completed_trials("ann") == [0] and store.next_trial("ann") == 1
    assert store.next_trial("bob") == 0                        # listeners are apart
    store.save_trial("ann", 1, _all(test, 1))
    store.save_trial("ann", 2, _all(test, 2))
    assert store.next_trial("ann") is None


@pytest.mark.parametrize("value, message", [(101, "from 0 to 100"), (-1, "from 0 to 100"),
                                            (3.5, "whole number"), ("50", "whole number"),
                                            (True, "whole number")])
def test_bad_ratings_are_refused_and_leave_the_file_alone(tmp_path, value, message):
    test = design_test(["a"], SYSTEMS, 0)
    store = RatingsFile(tmp_path / "r.csv", test)
    ratings = _all(test, 0)
    ratings["noisy"] = value
    with pytest.raises(ValueError, match=message):
        store.save_trial("ann", 0, ratings)
    assert not store.path.exists()


def test_unknown_missing_duplicate_and_nameless_ratings_are_refused(tmp_path):
    test = design_test(["a", "b"], SYSTEMS, 0)
    store = RatingsFile(tmp_path / "r.csv", test)
    with pytest.raises(ValueError, match="unknown system"):
        store.save_trial("ann", 0, {**_all(test, 0), "lite-student-fitnets": 3})
    ratings = _all(test, 0)
    del ratings["clean"]
    with pytest.raises(ValueError, match="missing.*clean"):
        store.save_trial("ann", 0, ratings)
    with pytest.raises(ValueError, match="listener name"):
        store.save_trial("  ", 0, _all(test, 0))
    store.save_trial("ann", 0, _all(test, 0))
    before = store.path.read_bytes()
    with pytest.raises(ValueError, match="already rated trial 0"):
        store.save_trial("ann", 0, _all(test, 0, 70))
    assert store.path.read_bytes() == before


def test_a_crash_while_saving_leaves_the_previous_file(tmp_path, monkeypatch):
    test = design_test(["a", "b"], SYSTEMS, 0)
    store = RatingsFile(tmp_path / "r.csv", test)
    store.save_trial("ann", 0, _all(test, 0))
    before = store.path.read_bytes()

    def crash(*args):
        raise KeyboardInterrupt()

    monkeypatch.setattr(files.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        store.save_trial("ann", 1, _all(test, 1))
    monkeypatch.undo()
    assert store.path.read_bytes() == before
    assert os.listdir(tmp_path) == ["r.csv"], "a temporary file was left behind"
    assert RatingsFile(store.path, test).next_trial("ann") == 1


def test_a_later_session_resumes_and_an_incomplete_trial_is_rated_again(tmp_path):
    test = design_test(["a", "b", "c"], SYSTEMS, 0)
    path = tmp_path / "r.csv"
    RatingsFile(path, test).save_trial("ann", 0, _all(test, 0))
    RatingsFile(path, test).save_trial("ann", 1, _all(test, 1))
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-2]))                 # trial 1 lost its last two rows
    later = RatingsFile(path, test)
    assert later.completed_trials("ann") == [0] and later.next_trial("ann") == 1
    later.save_trial("ann", 1, _all(test, 1, 80))         # replaces the four rows left
    ratings = later.load()
    assert len(ratings) == 2 * len(test.stimuli)
    assert {r.rating for r in ratings if r.trial == 1} == {80}
    path.write_text(path.read_text() + "ann,0,cut")      # a cut line: said, not guessed
    with pytest.raises(ValueError, match="3 fields.*cut short"):
        later.load()


def test_a_file_of_another_design_or_not_a_ratings_file_is_refused(tmp_path):
    path = tmp_path / "r.csv"
    first = design_test(["a", "b"], SYSTEMS, 0)
    RatingsFile(path, first).save_trial("ann", 0, _all(first, 0))
    for other in (design_test(["a", "b"], SYSTEMS, 1), design_test(["a", "c"], SYSTEMS, 0),
                  design_test(["a", "b"], SYSTEMS[:3], 0)):
        with pytest.raises(ForeignDesignError, match="another design"):
            RatingsFile(path, other).load()
        with pytest.raises(ForeignDesignError):
            RatingsFile(path, other).save_trial("bob", 0, _all(other, 0))
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a ratings file"):
        RatingsFile(tmp_path / "x.csv", first).load()
    text = path.read_text().replace(",50,", ",250,", 1)
    path.write_text(text)
    with pytest.raises(ValueError, match="line 2: .*from 0 to 100"):
        RatingsFile(path, first).load()


# ------------------------------------------------------------------------------- analysis

def _ratings(table):
    """Ratings from ``{(listener, trial): {system: value}}`` (label and clip made up)."""
    return [Rating(listener, trial, f"c{trial}", "A", system, value)
            for (listener, trial), row in table.items() for system, value in row.items()]


def test_summary_is_the_t_interval_and_covers_the_mean():
    values = [60, 70, 80, 65, 75]
    summary = listening.summarise_ratings(
        _ratings({("a", i): {"x": v, "y": 10} for i, v in enumerate(values)}))
    assert list(summary) == ["x", "y"]                            # highest mean first
    half = stats.t.ppf(0.975, 4) * np.std(values, ddof=1) / math.sqrt(5)
    assert summary["x"]["mean"] == pytest.approx(70.0)
    assert (summary["x"]["low"], summary["x"]["high"]) == \
        (pytest.approx(70 - half), pytest.approx(70 + half))
    assert summary["y"]["low"] == summary["y"]["high"] == 10.0 and summary["x"]["n"] == 5
    # coverage: the interval holds the true mean about 95 % of the time
    rng = np.random.default_rng(0)
    covered = 0
    for _ in range(400):
        draw = listening.t_interval(rng.normal(50, 12, size=15))
        covered += draw["low"] <= 50 <= draw["high"]
    assert 0.92 <= covered / 400 <= 0.98
    one = listening.t_interval([3])
    assert one["mean"] == 3 and math.isnan(one["low"])


def test_paired_differences_are_exact():
    table = {("a", 0): {"lite-student": 40, "tfckd": 50, "clean": 100},
             ("a", 1): {"lite-student": 60, "tfckd": 62, "clean": 95},
             ("b", 0): {"lite-student": 20, "tfckd": 35, "clean": 90}}
    paired = listening.paired_against(_ratings(table))
    assert set(paired) == {"tfckd", "clean"}
    assert paired["tfckd"]["differences"] == (10, 2, 15)
    assert paired["clean"]["differences"] == (60, 35, 70)
    assert paired["tfckd"]["mean"] == pytest.approx(9.0)
    assert paired["tfckd"]["sd"] == pytest.approx(np.std([10, 2, 15], ddof=1))
    with pytest.raises(ValueError, match="baseline 'teacher'"):
        listening.paired_against(_ratings(table), baseline="teacher")


def test_post_screening_excludes_the_listener_who_misses_the_reference():
    table = {}
    for trial in range(20):
        table[("careful", trial)] = {"clean": 85 if trial < 3 else 100, "x": 40}   # 15 %: kept
        table[("careless", trial)] = {"clean": 70 if trial < 4 else 100, "x": 40}  # 20 %: out
        table[("perfect", trial)] = {"clean": 100, "x": 40}
    screening = listening.post_screen(_ratings(table))
    assert screening.shares == {"careful": 0.15, "careless": 0.2, "perfect": 0.0}
    assert screening.excluded == ("careless",)
    assert screening.kept == ("careful", "perfect")
    assert {r.listener for r in screening.ratings} == {"careful", "perfect"}
    with pytest.raises(ValueError, match="hidden reference"):
        listening.post_screen(_ratings({("a", 0): {"x": 1}}))


def test_ratings_beside_metrics_and_plots():
    table = {("a", t): {"lite-student": 40 + t, "clean": 100, ANCHOR: 15} for t in range(4)}
    summary = listening.summarise_ratings(_ratings(table))
    metrics = {"lite-student": {"pesq_wb": 2.1, "estoi": 0.8, "si_sdr": 12.0},
               ANCHOR: {"pesq_wb": 2.5, "estoi": 0.9, "si_sdr": 8.0}}
    joined = listening.ratings_beside_metrics(summary, metrics)
    assert [row["system"] for row in joined.rows] == ["clean", "lite-student", ANCHOR]
    assert math.isnan(joined.rows[0]["pesq_wb"]) and joined.rows[1]["estoi"] == 0.8
    text = joined.markdown()
    assert "PESQ-WB" in text and "| `lite-student` | 41.5 [" in text and "–" in text
    assert "<table>" in joined.html()
    fig, ax, bars = listening.plot_ratings(summary)
    assert len(bars) == 3 and ax.get_ylim() == (0, 100)
    fig, ax, lines = listening.plot_paired_ratings(listening.paired_against(_ratings(table)))
    assert len(lines) == 2


def test_simulated_listener_is_labelled_seeded_and_screenable():
    test = design_test(["a", "b"], ["noisy", "s"], 0)
    scores = {c: {"noisy": {"pesq_wb": 1.5}, "s": {"pesq_wb": 3.0}, ANCHOR: {"pesq_wb": 2.0}}
              for c in ("a", "b")}
    first = listening.simulated_listener(test, scores, seed=1)
    assert first == listening.simulated_listener(test, scores, seed=1)
    assert {r.timestamp for r in first} == {"simulated"}
    assert len(first) == 2 * len(test.stimuli)
    assert {r.rating for r in first if r.system == REFERENCE} == {100}    # no noise on it
    assert {r.rating for r in first if r.system != REFERENCE} != \
        {r.rating for r in listening.simulated_listener(test, scores, seed=2)
         if r.system != REFERENCE}
    exact = listening.simulated_listener(test, scores, noise_sd=0.0)
    assert {r.system: r.rating for r in exact} == \
        {"noisy": 14, "s": 55, ANCHOR: 27, REFERENCE: 100}
    careless = listening.simulated_listener(test, scores, name="simulated-careless",
                                            reference_score=3.0, noise_sd=0.0)
    assert listening.post_screen(exact + careless).excluded == ("simulated-careless",)
    with pytest.raises(ValueError, match="start with 'simulated'"):
        listening.simulated_listener(test, scores, name="alice")
    with pytest.raises(ValueError, match="no finite pesq_wb"):
        listening.simulated_listener(test, {c: {} for c in ("a", "b")})


# --------------------------------------------------------------------------------- widget

@pytest.fixture(scope="module")
def shipped(test_split):
    from tfckd_lite.compare import load_systems

    clips = [compare.load_test_clip(test_split, i) for i in (0, 1)]
    return clips, load_systems(["lite-student", "lite-teacher"])


def test_widget_rates_saves_and_a_new_widget_resumes(shipped, tmp_path):
    clips, enhancers = shipped
    test = design_test(clips, ["noisy", "lite-student", "lite-teacher"], seed=5)
    path = tmp_path / "ratings.csv"
    widget = listening.ListeningWidget(test, clips, enhancers, path)
    assert widget.trial is None and widget.progress == "" and not widget.finished
    assert not widget.submit() and "your name" in widget.message
    widget.set_listener("ann")
    assert widget.trial == test.trials[0] and widget.progress == "trial 1 of 2"
    # blind: the players show letters and the open reference, never a system's name
    shown = widget.reference_player.value + "".join(p.value for p in widget.players.values())
    assert "Reference" in shown and not any(s in shown for s in test.stimuli)
    assert len(widget.sliders) == len(test.stimuli) == 5
    levels = [listening.gated_level_db(x, SAMPLE_RATE) for x in widget.signals.values()]
    assert max(levels) - min(levels) < 0.01
    widget.set_rating("A", 30)
    assert not widget.submit() and "not yet: B, C, D, E" in widget.message
    assert not path.exists()
    for value, label in enumerate("BCDE"):
        widget.set_rating(label, 10 * value)       # B stays at 0: setting it counts as moved
    assert widget.submit(), widget.message
    assert widget.progress == "trial 2 of 2" and widget.trial == test.trials[1]
    assert widget.moved == set() and all(s.value == 0 for s in widget.sliders.values())
    rows = RatingsFile(path, test).load()
    assert len(rows) == 5 and {r.listener for r in rows} == {"ann"}
    assert {r.label: r.rating for r in rows} == {"A": 30, "B": 0, "C": 10, "D": 20, "E": 30}
    assert {r.system for r in rows} == set(test.stimuli)
    widget.close()

    again = listening.ListeningWidget(test, clips, enhancers, path, listener="ann")
    assert again.trial == test.trials[1] and again.progress == "trial 2 of 2"
    for label in again.sliders:
        again.set_rating(label, 77)
    assert again.submit() and again.finished and again.trial is None
    assert again.progress == "done: 2 of 2" and "all 2 trials" in again.message
    assert again.next_button.disabled and all(s.disabled for s in again.sliders.values())
    assert not again.submit() and "already" in again.message
    with pytest.raises(ValueError, match="no trial"):
        again.set_rating("A", 3)
    assert len(RatingsFile(path, test).load()) == 10
    again.name_field.value = " bob "              # typed: another listener starts afresh
    assert again.listener == "bob" and again.name_field.value == "bob"
    assert again.trial == test.trials[0] and again.progress == "trial 1 of 2"
    again.close()


def test_widget_refuses_what_it_cannot_play(shipped, tmp_path):
    clips, enhancers = shipped
    test = design_test(clips, ["noisy", "lite-student"], seed=0)
    with pytest.raises(ValueError, match="clips"):
        listening.ListeningWidget(test, clips[:1], enhancers, tmp_path / "r.csv")
    with pytest.raises(ValueError, match="no enhancer"):
        listening.ListeningWidget(test, clips, {}, tmp_path / "r.csv")
    other = design_test(clips, ["noisy", "lite-student"], seed=1)
    RatingsFile(tmp_path / "r.csv", other).save_trial("ann", 0, _all(other, 0))
    with pytest.raises(ForeignDesignError):
        listening.ListeningWidget(test, clips, enhancers, tmp_path / "r.csv")
    widget = listening.ListeningWidget(test, clips, enhancers, tmp_path / "new.csv",
                                       listener="ann")
    with pytest.raises(KeyError, match="no stimulus 'Z'"):
        widget.set_rating("Z", 3)
    with pytest.raises(ValueError, match="from 0 to 100"):
        widget.set_rating("A", 300)
    widget.close()


def test_make_listening_widget_uses_the_shipped_models(mini, tmp_path):
    widget = listening.make_listening_widget(mini, tmp_path / "r.csv", clips=[2, 3],
                                             systems=("noisy", "lite-student"), seed=4,
                                             listener="ann")
    names = open_corpus(mini, "test").names
    assert set(widget.test.clips) == {names[2], names[3]} and widget.test.seed == 4
    assert widget.progress == "trial 1 of 2"
    widget.close()


def test_importing_the_package_stays_light():
    import subprocess
    import sys

    code = ("import sys, tfckd_lite.listening; "
            "print('ipywidgets' in sys.modules, 'matplotlib.pyplot' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "MPLBACKEND": "Agg"})
    assert out.stdout.split() == ["False", "False"]
