"""A MUSHRA-style listening test: a seeded design, equally loud stimuli, ratings kept in a CSV
that a later session resumes, and their analysis beside the objective scores.

Notebook: 08_judging_methods.ipynb

Pure functions do the work; :class:`ListeningWidget` only wires ipywidgets controls to them
(and is driven headless in the tests through its state).

=================================  ==========================================================
function                           returns
=================================  ==========================================================
:func:`design_test`                a :class:`ListeningTest`: trials, hidden reference, anchor,
                                   stimulus and trial orders shuffled from a seed
:func:`low_anchor`                 the clean recording low-pass filtered at 3.5 kHz
:func:`trial_signals`              ``{system: waveform}`` of one trial, equally loud
:func:`score_stimuli`              ``{system: {metric: score}}`` of one clip
:func:`mean_scores`                those scores averaged over the clips
:class:`RatingsFile`               the CSV of ratings: ``save_trial``, ``load``, ``next_trial``
:func:`post_screen`                BS.1534-3 post-screening of listeners
:func:`summarise_ratings`          per system the mean rating with its t interval
:func:`paired_against`             per system the paired differences to the student alone
:func:`ratings_beside_metrics`     the mean ratings beside PESQ-WB, ESTOI, SI-SDR
:func:`plot_ratings`               bars with intervals
:func:`plot_paired_ratings`        paired differences with intervals
:func:`simulated_listener`         SIMULATED ratings from a metric plus noise (not human data)
:func:`make_listening_widget`      the widget over the shipped models and a corpus split
=================================  ==========================================================

Modules: ``design``, ``signals``, ``ratings``, ``analysis``, ``plots``, ``simulate``,
``widget``. ipywidgets is imported only when a widget is built, matplotlib only when plotting.
"""

from .analysis import (SCREEN_BELOW, SCREEN_SHARE, ListeningTable, Screening, paired_against,
                       post_screen, ratings_beside_metrics, summarise_ratings, t_interval)
from .design import (ANCHOR, ANCHOR_CUTOFF_HZ, DEFAULT_SYSTEMS, OPEN_REFERENCE_LABEL,
                     REFERENCE, ListeningTest, Trial, design_test, low_anchor)
from .plots import plot_paired_ratings, plot_ratings
from .ratings import COLUMNS, ForeignDesignError, Rating, RatingsFile, check_rating
from .signals import (LISTENING_METRICS, PEAK_LIMIT, TARGET_DB, equal_loudness, gated_level_db,
                      mean_scores, score_stimuli, trial_signals)
from .simulate import SIMULATION_SCALES, simulated_listener
from .widget import ListeningWidget, make_listening_widget

__all__ = ["ANCHOR", "ANCHOR_CUTOFF_HZ", "DEFAULT_SYSTEMS", "OPEN_REFERENCE_LABEL", "REFERENCE",
           "ListeningTest", "Trial", "design_test", "low_anchor",
           "LISTENING_METRICS", "PEAK_LIMIT", "TARGET_DB", "equal_loudness", "gated_level_db",
           "trial_signals", "score_stimuli", "mean_scores",
           "COLUMNS", "ForeignDesignError", "Rating", "RatingsFile", "check_rating",
           "SCREEN_BELOW", "SCREEN_SHARE", "ListeningTable", "Screening", "t_interval",
           "summarise_ratings", "paired_against", "post_screen", "ratings_beside_metrics",
           "plot_ratings", "plot_paired_ratings", "SIMULATION_SCALES", "simulated_listener",
           "ListeningWidget", "make_listening_widget"]
