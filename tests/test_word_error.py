"""Word error rate and the L3DAS23 Task 1 metric on hand-checkable transcripts."""

import pytest

from tfckd_lite.word_error import (l3das23_task1, l3das23_task1_metric, normalise, word_edits,
                                   word_error_rate)


def test_normalise_lowers_and_strips_punctuation_but_keeps_contractions():
    assert normalise("  Hello, World!  It's 'fine'.") == ["hello", "world", "it's", "fine"]
    with pytest.raises(TypeError):
        normalise(None)


def test_word_edits_count_substitutions_deletions_and_insertions():
    assert word_edits("a b c".split(), "a b c".split()) == 0
    assert word_edits("a b c".split(), "a x c".split()) == 1          # substitution
    assert word_edits("a b c".split(), "a c".split()) == 1            # deletion
    assert word_edits("a b c".split(), "a b c d".split()) == 1        # insertion
    assert word_edits("the cat sat".split(), "cat sat down".split()) == 2
    assert word_edits([], "a b".split()) == 2 and word_edits("a b".split(), []) == 2


def test_word_error_rate_is_corpus_level_over_reference_words():
    # 1 edit in 4 words + 2 edits in 2 words = 3 / 6
    refs = ["The cat sat down.", "hello world"]
    hyps = ["the cat sat", "yellow word"]
    assert word_error_rate(refs, hyps) == pytest.approx(0.5)
    assert word_error_rate(["a b"], ["a b c d e"]) == pytest.approx(1.5)   # insertions
    with pytest.raises(ValueError, match="2 references but 1"):
        word_error_rate(refs, hyps[:1])
    with pytest.raises(TypeError, match="lists of transcripts"):
        word_error_rate("a b", "a b")
    with pytest.raises(ValueError, match="no words"):
        word_error_rate(["..."], ["a"])


def test_the_l3das23_metric_clips_and_averages_per_utterance():
    assert l3das23_task1_metric(0.8, 0.2) == pytest.approx(0.8)
    assert l3das23_task1_metric(0.9, 1.5) == pytest.approx(0.45)     # WER clipped to 1
    assert l3das23_task1_metric(1.0, 0.0) == 1.0
    with pytest.raises(ValueError):
        l3das23_task1_metric(0.5, -0.1)
    score = l3das23_task1([0.8, 0.6, 0.7], ["a b c d", "x y", ""], ["a b c", "x y", "hm"])
    # utterance 1: WER 1/4 -> (0.8 + 0.75) / 2 = 0.775; utterance 2: WER 0 -> 0.8; 3: unscored
    assert score["metric"] == pytest.approx((0.775 + 0.8) / 2)
    assert score["wer"] == pytest.approx(0.125) and score["stoi"] == pytest.approx(0.7)
    assert (score["scored"], score["unscored"]) == (2, 1)


def test_the_l3das23_metric_with_a_recogniser_runs_it_on_labels_and_enhanced_speech():
    import numpy as np

    from tfckd_lite.metrics import stoi
    from tfckd_lite.word_error import l3das23_task1, l3das23_task1_with

    rng = np.random.default_rng(0)
    labels = [rng.standard_normal(16000) for _ in range(2)]
    enhanced = [x + 0.3 * rng.standard_normal(16000) for x in labels]
    heard = {id(labels[0]): "one two three", id(enhanced[0]): "one two tree",
             id(labels[1]): "four", id(enhanced[1]): "four"}
    calls = []

    def recognise(wave):
        calls.append(id(wave))
        return heard[id(wave)]

    result = l3das23_task1_with(recognise, enhanced, labels)
    assert sorted(calls) == sorted(heard)               # every label and every enhanced signal
    stois = [float(stoi(e, c)) for e, c in zip(enhanced, labels)]
    assert result == l3das23_task1(stois, ["one two three", "four"], ["one two tree", "four"])
    with pytest.raises(ValueError, match="one of each per utterance"):
        l3das23_task1_with(recognise, enhanced[:1], labels)
