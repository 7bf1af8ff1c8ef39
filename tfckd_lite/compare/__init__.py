"""Side-by-side comparison of enhancers on one clip: spectrograms, metrics, audio, calibration.

Notebook: 06_compare_spectrograms.ipynb

Pure functions do all the work; :class:`CompareWidget` only wires ipywidgets controls to them.

=================================  ==========================================================
function                           returns
=================================  ==========================================================
:func:`load_test_clip`             a :class:`Clip` of a paired corpus (noisy + clean)
:func:`load_wav_clip`              a :class:`Clip` of a user's WAV file (no clean reference)
:func:`default_systems`            the shipped enhancers to compare, teacher first
:func:`initially_shown`            which of them a widget ticks when it opens
:func:`compute_signals`            ``{system: waveform}``: noisy, clean, each enhancer's output
:func:`compute_spectrograms`       ``{system: dB [T, F]}``
:func:`compute_color_limits`       ``(vmin, vmax)``: one colour scale for every panel
:func:`compute_differences`        ``{system: system dB - clean dB}`` and its shared limit
:func:`compute_metrics`            a :class:`MetricsTable`: scores and improvement over noisy
:func:`compute_frame_weights`      per-frame calibration weights ``{set: {stream: [T, n_s,
                                   n_t]}}`` of a whole utterance
:func:`zoom_limits`                a checked, clamped time range in seconds
:func:`compute_comparison`         all of the above for one clip, as a :class:`Comparison`
:func:`plot_comparison`            the figure: one column per system, shared axes and scale
:func:`audio_players_html`         one audio player per system
=================================  ==========================================================

System names: ``"noisy"`` (the input), ``"clean"`` (the reference, when there is one) and one
name per enhancer, e.g. the shipped ``lite-teacher``, ``lite-student`` and distilled students
``lite-student-<method>``. matplotlib is imported only when plotting and ipywidgets only when a
widget is built, so importing this package stays light.

Modules: ``clips`` (clips and systems), ``computations`` (the pure functions and
:class:`Comparison`), ``figure`` (the figure and the audio players), ``widget``
(:class:`CompareWidget`).
"""

from .clips import (MAX_SECONDS, MOST_SHOWN, REFERENCE_SYSTEMS, Clip, default_systems,
                    initially_shown, load_systems, load_test_clip, load_wav_clip, system_label)
from .computations import (COMPARE_METRICS, METRIC_LABELS, NO_REFERENCE_NOTE, Comparison,
                           MetricsTable, compute_color_limits, compute_comparison,
                           compute_differences, compute_frame_weights, compute_metrics,
                           compute_signals, compute_spectrograms, zoom_limits)
from .figure import _all_axes, audio_players_html, plot_comparison, weight_views
from .widget import NO_SYSTEM_MESSAGE, CompareWidget, make_compare_widget

__all__ = ["COMPARE_METRICS", "MAX_SECONDS", "Clip", "MetricsTable", "Comparison",
           "load_test_clip", "load_wav_clip", "default_systems", "initially_shown", "MOST_SHOWN",
           "load_systems", "system_label",
           "compute_signals", "compute_spectrograms", "compute_color_limits",
           "compute_differences", "compute_metrics", "compute_frame_weights", "zoom_limits",
           "compute_comparison", "weight_views", "plot_comparison", "audio_players_html",
           "CompareWidget", "make_compare_widget"]
