"""The comparison widget: ipywidgets controls wired to the pure functions of this package.

Notebook: 06_compare_spectrograms.ipynb
"""

from __future__ import annotations

import contextlib
import html
import io
import math
from collections import OrderedDict
from pathlib import Path
from typing import Mapping, Sequence

from ..audio import AudioError
from .clips import (MAX_SECONDS, REFERENCE_SYSTEMS, Clip, initially_shown, load_systems,
                    load_test_clip, load_wav_clip, system_label)
from .computations import (COMPARE_METRICS, NO_REFERENCE_NOTE, Comparison, compute_comparison,
                           zoom_limits)
from .figure import _all_axes, audio_players_html, plot_comparison, weight_views

NO_SYSTEM_MESSAGE = "tick at least one system to draw"


class QuietControls:
    """A widget whose callbacks ignore the changes it makes itself: inside
    ``with self._programmatic():`` ``self._updating`` is true, and each callback checks it
    (one redraw afterwards, not one per control). Used by :class:`CompareWidget` and
    :class:`~tfckd_lite.listening.ListeningWidget`.

    Notebook: 06_compare_spectrograms.ipynb
    """

    _updating = False

    @contextlib.contextmanager
    def _programmatic(self):
        self._updating = True
        try:
            yield
        finally:
            self._updating = False


class CompareWidget(QuietControls):
    """Interactive comparison of enhancers on one clip (ipywidgets; works with the inline backend).

    Notebook: 06_compare_spectrograms.ipynb

    ``CompareWidget(systems, dataset=None, *, index=0, distiller=None, weights_system=None,
    weights_note="", metrics=COMPARE_METRICS, max_seconds=MAX_SECONDS, cache_size=8, dpi=80,
    shown=None)``;
    ``systems`` maps enhancer names to models (e.g. :func:`load_systems`), ``dataset`` is a
    paired split (``open_corpus(root, "test")``) whose clip ``index`` is shown first; without
    one, nothing is shown until a file is loaded. ``display(widget)`` shows it.

    Controls (``widget.controls``): ``clip`` (test clip), ``path`` + ``load`` (a user's own WAV
    file), ``time_range`` (zoom, seconds), ``difference`` (difference to clean), ``systems``
    (one checkbox per system; ``shown`` lists those ticked at first, default
    :func:`initially_shown`) and, with a distiller, ``weights`` (which set, stream and student
    layer's calibration weights to draw). Everything is computed by the module's pure
    functions; the widget only keeps the state a test or a reader can inspect:

    * ``current``: the :class:`Comparison` of the clip on show (arrays, metrics table, weights);
    * ``view``: what is drawn (systems, time range, difference, weights view);
    * ``message`` / ``message_kind``: the last message shown (``"error"`` for a file that could
      not be loaded, which leaves the previous clip on show; ``"info"`` for notes about the
      current clip; ``""`` for none);
    * ``axes``: the axes of the last drawing; ``stats``: how often clips were computed
      (``comparisons``), the figure redrawn (``redraws``), zoomed (``zooms``) and rendered for
      a front-end (``renders``).

    Drawing: the widget owns ONE matplotlib ``Figure``, made without pyplot, so pyplot never
    holds it (nothing to close, nothing that grows) and the inline backend never shows it by
    itself. A change of clip, systems, difference or weights clears the figure and draws it
    again (:func:`plot_comparison` with ``fig=``); a zoom only sets the x limits of the existing
    axes. Either way the figure is rendered to PNG (:meth:`render_png`) and shown in the
    ``Output`` with ``clear_output(wait=True)``, which swaps the old image for the new one only
    when it is there (no flicker). Rendering the PNG ourselves, rather than displaying the
    figure object, does not depend on the notebook's matplotlib backend having been set up
    (the inline backend registers its figure formatter only once pyplot has drawn a figure).
    Without a kernel (tests, scripts) nothing is rendered; the state above is all there is.
    Per clip the computed :class:`Comparison` is cached (the last ``cache_size`` clips), so
    zooming or toggling never reruns the models. The zoom slider reports on release
    (``continuous_update=False``): a PNG takes most of a second to render on a 2-core machine,
    too slow to follow a drag.
    """

    def __init__(self, systems: Mapping[str, object], dataset=None, *, index: int = 0,
                 distiller=None, weights_system: str | None = None, weights_note: str = "",
                 metrics: Sequence[str] = COMPARE_METRICS, max_seconds: float = MAX_SECONDS,
                 cache_size: int = 8, dpi: int = 80, shown: Sequence[str] | None = None):
        import ipywidgets as widgets
        from matplotlib.figure import Figure

        systems = dict(systems)
        if not systems:
            raise ValueError("give at least one enhancer to compare, e.g. load_systems()")
        if distiller is not None and weights_system not in systems:
            raise ValueError(f"weights_system must name the enhancer whose calibration weights "
                             f"are shown, one of {list(systems)}; got {weights_system!r}")
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 1:
            raise ValueError(f"cache_size must be a positive int, got {cache_size!r}")
        self.systems = systems
        self.dataset = dataset
        self.distiller = distiller
        self.weights_system = weights_system if distiller is not None else None
        self.weights_note = weights_note
        self.metrics = tuple(metrics)
        self.max_seconds = max_seconds
        self.cache_size = cache_size
        self.dpi = dpi
        self.figure = Figure(layout="constrained")          # not pyplot's: nothing to leak
        self.current: Comparison | None = None
        self.axes: dict | None = None
        self.message, self.message_kind = "", ""
        self.stats = {"comparisons": 0, "redraws": 0, "zooms": 0, "renders": 0}
        self._cache: OrderedDict = OrderedDict()
        self._updating = False           # set while controls are changed programmatically

        names = list(dataset.names) if dataset is not None else []
        clip = widgets.Dropdown(options=[(f"{i}: {n}", i) for i, n in enumerate(names)],
                                value=None, description="test clip",
                                disabled=dataset is None)
        path = widgets.Text(placeholder="path/to/your_file.wav", description="own WAV")
        load = widgets.Button(description="load file", tooltip="load the WAV file typed left")
        time_range = widgets.FloatRangeSlider(value=(0.0, 1.0), min=0.0, max=1.0, step=0.01,
                                              description="zoom (s)", continuous_update=False,
                                              readout_format=".2f",
                                              layout=widgets.Layout(width="60%"))
        difference = widgets.Checkbox(value=False, description="difference to clean")
        everything = list(REFERENCE_SYSTEMS) + list(systems)
        ticked = initially_shown(everything, self.weights_system) if shown is None else \
            list(shown)
        unknown = [n for n in ticked if n not in everything]
        if unknown:
            raise ValueError(f"shown names unknown system(s) {unknown}; choose from {everything}")
        boxes = {name: widgets.Checkbox(value=name in ticked, description=system_label(name),
                                        indent=False, layout=widgets.Layout(width="auto"))
                 for name in everything}
        weights = widgets.Dropdown(options=[], description="weights",
                                   layout=widgets.Layout(width="40%",
                                                         display="" if distiller is not None
                                                         else "none"))
        self.controls = {"clip": clip, "path": path, "load": load, "time_range": time_range,
                         "difference": difference, "systems": boxes, "weights": weights}
        self.output = widgets.Output()
        self.table = widgets.HTML()
        self.players = widgets.HTML()
        self.message_box = widgets.HTML()

        def row(children):
            """Controls side by side that wrap onto the next line at the notebook's width."""
            return widgets.HBox(children, layout=widgets.Layout(flex_flow="row wrap",
                                                                align_items="center"))

        self.ui = widgets.VBox([
            row([clip, path, load]),
            row([time_range, difference]),
            row([widgets.Label("systems:"), *boxes.values()]),
            weights, self.message_box, self.output, self.table, self.players])
        # class names for the page's style and for browser tests to find the parts
        for part, name in ((self.ui, "compare-widget"), (self.message_box, "compare-message"),
                           (self.output, "compare-figure"), (self.table, "compare-metrics"),
                           (self.players, "compare-players")):
            part.add_class(name)

        clip.observe(self._on_clip, names="value")
        load.on_click(self._on_load)
        time_range.observe(self._on_zoom, names="value")
        for control in (difference, weights, *boxes.values()):
            control.observe(self._on_view, names="value")
        if dataset is not None:
            self.show_clip(index)

    # ------------------------------------------------------------------ public actions
    def show_clip(self, index: int) -> None:
        """Show clip ``index`` of the dataset (what choosing it in the dropdown does)."""
        if self.dataset is None:
            raise ValueError("this widget has no dataset; load a file with load_file(path)")
        clip = load_test_clip(self.dataset, index)
        self._show_comparison(("test", int(index)), clip)
        with self._programmatic():
            self.controls["clip"].value = int(index)

    def load_file(self, path) -> bool:
        """Load and show a user's WAV file; on failure show why and keep the current clip.

        Returns whether the file was loaded. Bad files (missing, not audio, stereo, too short)
        set ``message`` with the reason instead of raising.
        """
        text = str(path).strip()
        if not text:
            self._say("type the path of a WAV file first", "error")
            return False
        file = Path(text).expanduser()
        try:
            clip = load_wav_clip(file, self.max_seconds)
        except AudioError as error:
            self._say(f"could not load {error.path}: {error.reason}", "error")
            return False
        stat = file.resolve().stat()          # same path, new contents: a new cache entry
        self._show_comparison(("file", str(file.resolve()), stat.st_mtime_ns, stat.st_size),
                              clip)
        with self._programmatic():               # no test clip is selected now
            self.controls["clip"].value = None
        return True

    @property
    def view(self) -> dict:
        """What is drawn: ``systems``, ``time_range`` (s), ``difference``, ``weights_view``."""
        if self.current is None:
            return {}
        shown = [s for s, box in self.controls["systems"].items()
                 if box.value and s in self.current.spectrograms]
        weights = self.controls["weights"].value if self.current.weights is not None else None
        end = self.current.axis_end           # the slider's 0.01 s grid may end a little later
        return {"systems": shown,
                "time_range": zoom_limits([min(t, end) for t in
                                           self.controls["time_range"].value], end),
                "difference": bool(self.controls["difference"].value
                                   and self.current.differences is not None),
                "weights_view": weights}

    def close(self) -> None:
        """Close every control (frees their comms); the figure goes with the object."""
        for control in self._all_controls():
            control.close()
        for extra in (self.output, self.table, self.players, self.message_box, self.ui):
            extra.close()

    def _repr_mimebundle_(self, **kwargs):
        return self.ui._repr_mimebundle_(**kwargs)

    # --------------------------------------------------------------------- callbacks
    def _on_clip(self, change) -> None:
        if not self._updating and change["new"] is not None:
            self.show_clip(change["new"])

    def _on_load(self, _button) -> None:
        self.load_file(self.controls["path"].value)

    def _on_view(self, _change) -> None:
        if not self._updating and self.current is not None:
            self._redraw()

    def _on_zoom(self, _change) -> None:
        if self._updating or self.current is None or self.axes is None:
            return
        start, end = self.view["time_range"]
        for ax in _all_axes(self.axes):
            ax.set_xlim(start, end)
        self.stats["zooms"] += 1
        self._display()

    # ----------------------------------------------------------------------- helpers
    def _all_controls(self) -> list:
        c = self.controls
        return [c["clip"], c["path"], c["load"], c["time_range"], c["difference"], c["weights"],
                *c["systems"].values()]

    def _say(self, text: str, kind: str) -> None:
        self.message, self.message_kind = text, kind
        colour = {"error": "#b00020", "info": "#555555"}.get(kind, "#000000")
        self.message_box.value = (f"<span style='color:{colour}'>{html.escape(text)}</span>"
                                  if text else "")

    def _show_comparison(self, key, clip: Clip) -> None:
        if key in self._cache:
            self._cache.move_to_end(key)
        else:
            self._cache[key] = compute_comparison(
                clip, self.systems, distiller=self.distiller, weights_system=self.weights_system,
                weights_note=self.weights_note, metrics=self.metrics)
            self.stats["comparisons"] += 1
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        self.current = comparison = self._cache[key]
        c = self.controls
        with self._programmatic():
            # the slider's end on its 0.01 s grid at or after the axis end: the whole clip
            c["time_range"].max = math.ceil(comparison.axis_end * 100) / 100
            c["time_range"].value = (0.0, c["time_range"].max)
            c["difference"].disabled = comparison.differences is None
            if comparison.differences is None:
                c["difference"].value = False
            c["systems"]["clean"].disabled = not comparison.clip.has_reference
            if comparison.weights is not None:
                options = weight_views(comparison.weights)
                previous = c["weights"].value
                c["weights"].options = options
                values = [value for _, value in options]
                c["weights"].value = previous if previous in values else values[0]
        self.table.value = (comparison.metrics.html() if comparison.metrics is not None
                            else f"<i>{html.escape(NO_REFERENCE_NOTE)}</i>")
        self.players.value = audio_players_html(comparison.signals)
        self._say("; ".join(comparison.notes), "info" if comparison.notes else "")
        self._redraw()

    def _redraw(self) -> None:
        view = self.view
        if not view["systems"]:
            self._say(NO_SYSTEM_MESSAGE, "error")
            return
        if self.message == NO_SYSTEM_MESSAGE:          # solved: a system is ticked again
            self._say("; ".join(self.current.notes), "info" if self.current.notes else "")
        _, self.axes, _ = plot_comparison(self.current, view["systems"],
                                          time_range=view["time_range"],
                                          difference=view["difference"],
                                          weights_view=view["weights_view"], fig=self.figure)
        self.stats["redraws"] += 1
        self._display()

    def render_png(self) -> bytes:
        """The figure as PNG bytes, as the widget shows it (at ``dpi``)."""
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png", dpi=self.dpi)
        return buffer.getvalue()

    def _display(self) -> None:
        from IPython import get_ipython
        from IPython.display import Image, display

        if getattr(get_ipython(), "kernel", None) is None:
            return      # headless (a test, a script): no front-end to show an image to
        png = self.render_png()
        with self.output:
            self.output.clear_output(wait=True)       # swap when the new image is there
            display(Image(data=png, format="png"))
        self.stats["renders"] += 1


def make_compare_widget(data_root=None, names: Sequence[str] | None = None, *,
                        split: str = "test", **options) -> CompareWidget:
    """A :class:`CompareWidget` over the shipped models and a corpus split.

    Notebook: 06_compare_spectrograms.ipynb

    ``data_root``: a corpus for :func:`tfckd_lite.data.open_corpus` (``None``: own files only);
    ``names``: shipped model names (default :func:`default_systems`); ``options`` go to the
    widget (``index``, ``distiller``, ``weights_system``, ...).
    """
    dataset = None
    if data_root is not None:
        from ..data import open_corpus

        dataset = open_corpus(data_root, split)
    return CompareWidget(load_systems(names), dataset, **options)
