"""Word error rate and the L3DAS23 Task 1 metric, from transcripts the user supplies.

Notebook: 07_multichannel.ipynb

L3DAS23 ranks speech enhancement by ``(STOI + (1 - WER)) / 2``. Its evaluation code computes
it per utterance and averages: the WER is that of a pretrained recogniser (a wav2vec 2.0
model) transcribing the enhanced speech, *against the same recogniser's transcript of the clean
label* (so it measures what the enhancement changes, not the recogniser's own errors); WER and
STOI are clipped to [0, 1]; an utterance whose reference transcript has no word gets no score.

No recogniser can be downloaded here, so this library cannot produce WERs itself: a user runs
their own recogniser on the clean labels and on the enhanced files and passes both lists of
transcripts, with the STOIs from :func:`tfckd_lite.metrics.stoi`, to :func:`l3das23_task1`, or
passes the recogniser itself to :func:`l3das23_task1_with`.
:func:`word_error_rate` is also available on its own (corpus-level: the word edits,
substitutions + deletions + insertions by Levenshtein alignment, summed over utterances and
divided by the number of reference words). Text is normalised first (:func:`normalise`):
lower case, punctuation other than in-word apostrophes removed, whitespace collapsed.
"""

from __future__ import annotations

import re
from typing import Callable, Sequence

import numpy as np

from .audio import SAMPLE_RATE

_PUNCTUATION = re.compile(r"[^\w\s']|(?<!\w)'|'(?!\w)")


def normalise(text: str) -> list[str]:
    """The words of ``text``, lower-cased, without punctuation (in-word apostrophes kept).

    Notebook: 07_multichannel.ipynb
    """
    if not isinstance(text, str):
        raise TypeError(f"a transcript must be a str, got {type(text).__name__}")
    return _PUNCTUATION.sub(" ", text.lower()).split()


def word_edits(reference: Sequence[str], hypothesis: Sequence[str]) -> int:
    """Fewest substitutions, deletions and insertions turning ``reference`` into ``hypothesis``.

    Notebook: 07_multichannel.ipynb

    Word-level Levenshtein distance (dynamic programming over one row).
    """
    previous = list(range(len(hypothesis) + 1))
    for i, word in enumerate(reference, start=1):
        current = [i]
        for j, guess in enumerate(hypothesis, start=1):
            current.append(min(previous[j] + 1,                      # deletion
                               current[j - 1] + 1,                   # insertion
                               previous[j - 1] + (word != guess)))   # substitution / match
        previous = current
    return previous[-1]


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus word error rate of the ``hypotheses`` (recogniser output) against ``references``.

    Notebook: 07_multichannel.ipynb

    Both are lists of transcripts, one per utterance, in the same order; a single string is
    refused (it would be read as a list of characters). The result is
    ``sum(edits) / sum(reference words)`` and can exceed 1 when the recogniser inserts words.
    """
    if isinstance(references, str) or isinstance(hypotheses, str):
        raise TypeError("pass lists of transcripts (one per utterance), not a single string")
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    edits = words = 0
    for reference, hypothesis in zip(references, hypotheses):
        ref, hyp = normalise(reference), normalise(hypothesis)
        edits += word_edits(ref, hyp)
        words += len(ref)
    if words == 0:
        raise ValueError("the references contain no words; the WER is undefined")
    return edits / words


def l3das23_task1_metric(stoi: float, wer: float) -> float:
    """L3DAS23 Task 1's metric of one utterance, ``(STOI + (1 - WER)) / 2`` (higher is better).

    Notebook: 07_multichannel.ipynb

    As in the challenge's code, STOI and WER are clipped to [0, 1] first, so the metric lies
    in [0, 1] even when a recogniser inserts more words than the reference has.
    """
    for name, value in (("stoi", stoi), ("wer", wer)):
        if not np.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value}")
    if wer < 0.0:
        raise ValueError(f"a word error rate is not negative, got {wer}")
    stoi, wer = min(max(stoi, 0.0), 1.0), min(wer, 1.0)
    return (stoi + (1.0 - wer)) / 2.0


def l3das23_task1(stois: Sequence[float], references: Sequence[str],
                  hypotheses: Sequence[str]) -> dict:
    """The L3DAS23 Task 1 score of a test set from per-utterance STOIs and transcripts.

    Notebook: 07_multichannel.ipynb

    ``references[i]`` is the recogniser's transcript of the clean label of utterance ``i``,
    ``hypotheses[i]`` its transcript of the enhanced speech. Returns ``{"metric", "stoi",
    "wer"}`` (means over the scored utterances) and ``"scored"``, ``"unscored"`` (references
    without a word, left out as the challenge's code leaves them out).
    """
    if not len(stois) == len(references) == len(hypotheses):
        raise ValueError(f"{len(stois)} STOIs, {len(references)} references and "
                         f"{len(hypotheses)} hypotheses: one of each per utterance")
    metrics, kept_stoi, kept_wer = [], [], []
    for stoi, reference, hypothesis in zip(stois, references, hypotheses):
        if not normalise(reference):
            continue
        wer = word_error_rate([reference], [hypothesis])
        metrics.append(l3das23_task1_metric(stoi, wer))
        kept_stoi.append(min(max(stoi, 0.0), 1.0))
        kept_wer.append(min(wer, 1.0))
    if not metrics:
        raise ValueError("no reference transcript contains a word; nothing can be scored")
    return {"metric": float(np.mean(metrics)), "stoi": float(np.mean(kept_stoi)),
            "wer": float(np.mean(kept_wer)), "scored": len(metrics),
            "unscored": len(stois) - len(metrics)}


def l3das23_task1_with(recognise: Callable[[np.ndarray], str], enhanced: Sequence[np.ndarray],
                       labels: Sequence[np.ndarray], sample_rate: int = SAMPLE_RATE) -> dict:
    """:func:`l3das23_task1` of enhanced waveforms, with ``recognise(wave) -> str`` the user's
    speech recogniser (run on every clean label and every enhanced signal, as the challenge
    runs its wav2vec 2.0 model) and the STOIs computed here (:func:`tfckd_lite.metrics.stoi`).

    Notebook: 07_multichannel.ipynb

    ``enhanced[i]`` and ``labels[i]`` are ``[N]`` arrays at ``sample_rate`` of utterance ``i``.
    """
    from .metrics import stoi

    if len(enhanced) != len(labels):
        raise ValueError(f"{len(enhanced)} enhanced signals and {len(labels)} labels: one of "
                         "each per utterance")
    stois = [float(stoi(e, c, sample_rate)) for e, c in zip(enhanced, labels)]
    return l3das23_task1(stois, [recognise(c) for c in labels], [recognise(e) for e in enhanced])
