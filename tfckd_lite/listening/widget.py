"""The listening-test widget: ipywidgets controls over the design, the signals and the ratings
file of this package.

Notebook: 08_judging_methods.ipynb
"""

from __future__ import annotations

import html
from typing import Mapping, Sequence

from ..compare.widget import QuietControls
from ..data.display import audio_player_html
from .design import DEFAULT_SYSTEMS, OPEN_REFERENCE_LABEL, ListeningTest, design_test
from .ratings import RatingsFile, check_rating
from .signals import trial_signals

NAME_FIRST = "type your name and press Enter to start (or to resume where you stopped)"


class ListeningWidget(QuietControls):
    """A MUSHRA listening test in a notebook (ipywidgets).

    Notebook: 08_judging_methods.ipynb

    ``ListeningWidget(test, clips, enhancers, csv, *, listener="")``: ``test`` a
    :class:`ListeningTest`, ``clips`` its clips (:class:`~tfckd_lite.compare.Clip` objects, a
    sequence or ``{name: clip}``), ``enhancers`` ``{name: model}`` for every system under test
    but ``"noisy"``, ``csv`` the ratings file (a :class:`RatingsFile` of this design: a file of
    another design raises :class:`ForeignDesignError` here). ``display(widget)`` shows it.

    Per trial: the open reference's player, then per neutral label a player and a 0–100 slider,
    and "Save and next". The trial shown is the listener's first unfinished one
    (:meth:`RatingsFile.next_trial`), so typing one's name resumes an earlier session. "Save
    and next" refuses, with a message, until every slider has been moved at least once (MUSHRA
    practice: no stimulus is rated by leaving it alone), then saves the trial to the CSV.

    Headless driving (tests, scripts): :meth:`set_listener`, :meth:`set_rating`,
    :meth:`submit`; state in ``trial`` (the :class:`Trial` on show, ``None`` before a name or
    after the last trial), ``values``, ``moved``, ``progress``, ``message``/``message_kind``,
    ``finished``, ``signals`` (the audio of the trial on show).
    """

    def __init__(self, test: ListeningTest, clips, enhancers: Mapping[str, object], csv, *,
                 listener: str = ""):
        import ipywidgets as widgets

        self.ratings_file = csv if isinstance(csv, RatingsFile) else RatingsFile(csv, test)
        if self.ratings_file.test != test:
            raise ValueError("the ratings file was opened for another design than this test")
        self.ratings_file.load()                  # a foreign or broken file: refuse it now
        self.test = test
        clips = dict(clips) if isinstance(clips, Mapping) else {c.name: c for c in clips}
        missing = [name for name in test.clips if name not in clips]
        if missing:
            raise ValueError(f"the test plays clips {missing} that were not given")
        self.clips = clips
        needed = [s for s in test.systems if s != "noisy"]
        absent = [s for s in needed if s not in enhancers]
        if absent:
            raise ValueError(f"no enhancer for system(s) {absent}; give {{name: model}} for "
                             f"{needed}")
        self.enhancers = {s: enhancers[s] for s in needed}
        self.listener = ""
        self.trial = None
        self.signals: dict = {}
        self.values: dict[str, int] = {}
        self.moved: set[str] = set()
        self.message, self.message_kind = "", ""
        self._cache: dict[str, dict] = {}
        self._updating = False

        labels = test.trials[0].labels
        self.name_field = widgets.Text(description="listener", placeholder="your name",
                                       continuous_update=False)
        self.progress_label = widgets.HTML()
        self.reference_player = widgets.HTML()
        self.players = {label: widgets.HTML() for label in labels}
        self.sliders = {label: widgets.IntSlider(value=0, min=0, max=100, step=1,
                                                 description=label, disabled=True,
                                                 layout=widgets.Layout(width="420px"))
                        for label in labels}
        self.next_button = widgets.Button(description="Save and next", disabled=True,
                                          button_style="primary")
        self.message_box = widgets.HTML()
        rows = [widgets.HBox([self.players[label], self.sliders[label]],
                             layout=widgets.Layout(align_items="center", flex_flow="row wrap"))
                for label in labels]
        self.ui = widgets.VBox([widgets.HBox([self.name_field, self.progress_label]),
                                self.reference_player, *rows, self.next_button,
                                self.message_box])
        for part, name in ((self.ui, "listening-widget"), (self.message_box, "listening-message"),
                           (self.progress_label, "listening-progress"),
                           (self.reference_player, "listening-reference")):
            part.add_class(name)
        for label, slider in self.sliders.items():
            slider.observe(lambda change, label=label: self._on_slider(label, change["new"]),
                           names="value")
        self.name_field.observe(lambda change: None if self._updating else
                                self.set_listener(change["new"]), names="value")
        self.next_button.on_click(lambda _button: self.submit())
        if listener:
            self.set_listener(listener)
        else:
            self._say(NAME_FIRST, "info")

    # ------------------------------------------------------------------ public actions
    @property
    def finished(self) -> bool:
        return bool(self.listener) and self.trial is None

    @property
    def progress(self) -> str:
        """``"trial 3 of 8"`` (the trial on show), ``"done: 8 of 8"`` or ``""`` before a name."""
        total = len(self.test.trials)
        if not self.listener:
            return ""
        done = len(self.ratings_file.completed_trials(self.listener))
        return f"done: {done} of {total}" if self.trial is None else f"trial {done + 1} of {total}"

    def set_listener(self, name: str) -> None:
        """Start (or resume) the test as ``name``: show their first unfinished trial."""
        name = str(name).strip()
        with self._programmatic():
            self.name_field.value = name
        self.listener = name
        if not name:
            self.trial = None
            self._show(None)
            self._say(NAME_FIRST, "info")
            return
        self._show(self.ratings_file.next_trial(name))

    def set_rating(self, label: str, value: int) -> None:
        """Move slider ``label`` to ``value`` (what dragging it does)."""
        if label not in self.sliders:
            raise KeyError(f"no stimulus {label!r}; the labels are {list(self.sliders)}")
        if self.trial is None:
            raise ValueError("no trial on show: " + (NAME_FIRST if not self.listener
                                                      else "every trial is rated"))
        value = check_rating(value)
        if self.sliders[label].value == value:      # no change event: count it as moved here
            self._on_slider(label, value)
        self.sliders[label].value = value

    def submit(self) -> bool:
        """"Save and next": save the trial's ratings and show the next trial; returns whether it
        saved. Refuses (with ``message`` saying why) while a slider has not been moved."""
        if self.trial is None:
            self._say(NAME_FIRST if not self.listener else "every trial is rated already",
                      "error")
            return False
        unmoved = [label for label in self.sliders if label not in self.moved]
        if unmoved:
            self._say(f"move every slider at least once before saving (not yet: "
                      f"{', '.join(unmoved)})", "error")
            return False
        ratings = {self.trial.system_of(label): value for label, value in self.values.items()}
        try:
            self.ratings_file.save_trial(self.listener, self.trial.index, ratings)
        except ValueError as error:                 # e.g. rated meanwhile in another session
            self._say(f"not saved: {error}", "error")
            return False
        saved = len(self.ratings_file.completed_trials(self.listener))
        self._show(self.ratings_file.next_trial(self.listener))
        if self.trial is not None:
            self._say(f"saved ({saved} of {len(self.test.trials)} trials) to "
                      f"{self.ratings_file.path.name}", "info")
        return True

    def close(self) -> None:
        for control in (*self.sliders.values(), *self.players.values(), self.name_field,
                        self.progress_label, self.reference_player, self.next_button,
                        self.message_box, self.ui):
            control.close()

    def _repr_mimebundle_(self, **kwargs):
        return self.ui._repr_mimebundle_(**kwargs)

    # ----------------------------------------------------------------------- helpers
    def _on_slider(self, label: str, value: int) -> None:
        if not self._updating and self.trial is not None:
            self.moved.add(label)
            self.values[label] = int(value)

    def _say(self, text: str, kind: str) -> None:
        self.message, self.message_kind = text, kind
        colour = {"error": "#b00020", "info": "#555555"}.get(kind, "#000000")
        self.message_box.value = (f"<span style='color:{colour}'>{html.escape(text)}</span>"
                                  if text else "")

    def _trial_signals(self, clip_name: str) -> dict:
        if clip_name not in self._cache:
            self._cache[clip_name] = trial_signals(
                self.clips[clip_name], self.enhancers, reference=self.test.reference,
                anchor=self.test.anchor, anchor_cutoff_hz=self.test.anchor_cutoff_hz)
        return self._cache[clip_name]

    def _show(self, index: int | None) -> None:
        """Show trial ``index`` with fresh sliders, or nothing (``None``: no name, or done)."""
        self.trial = None if index is None else self.test.trial(index)
        self.values, self.moved = {}, set()
        self.signals = {} if self.trial is None else self._trial_signals(self.trial.clip)
        rate = self.clips[self.test.clips[0]].sample_rate
        with self._programmatic():
            for label, slider in self.sliders.items():
                slider.value = 0
                slider.disabled = self.trial is None
                self.players[label].value = "" if self.trial is None else \
                    _player(label, self.signals[self.trial.system_of(label)], rate)
            self.values = {label: 0 for label in self.sliders} if self.trial else {}
        self.reference_player.value = "" if self.trial is None else _player(
            OPEN_REFERENCE_LABEL, self.signals[self.test.reference], rate)
        self.next_button.disabled = self.trial is None
        self.progress_label.value = html.escape(self.progress)
        if self.listener and self.trial is None:
            self._say(f"all {len(self.test.trials)} trials are rated: thank you", "info")
        elif self.trial is not None:
            self._say("", "")


def _player(label: str, wave, sample_rate: int) -> str:
    """A player labelled with a letter; levels kept (the stimuli are already equally loud and
    none clips). Not ``compare.audio_players_html``: it labels each player with its system's
    name, which a blind test must not show."""
    return (f"<div style='display:flex; align-items:center; gap:8px'><b style='width:80px'>"
            f"{html.escape(label)}</b>{audio_player_html(wave, sample_rate, normalize=False)}"
            f"</div>")


def make_listening_widget(data_root, csv, *, clips=2, systems: Sequence[str] = DEFAULT_SYSTEMS,
                          seed: int = 0, listener: str = "", split: str = "test"
                          ) -> ListeningWidget:
    """A :class:`ListeningWidget` over the shipped models and clips of a corpus split.

    Notebook: 08_judging_methods.ipynb

    ``data_root``: a corpus (:func:`tfckd_lite.data.open_corpus`); ``clips``: how many clips
    (the split's first ones) or which clip indices; ``systems``: the systems under test (shipped
    model names and ``"noisy"``); ``seed``: the design's seed (:func:`design_test`); ``csv``:
    the ratings file; ``listener``: start at once as this listener.
    """
    from ..compare import load_systems, load_test_clip
    from ..data import open_corpus

    dataset = open_corpus(data_root, split)
    if isinstance(clips, bool):
        raise TypeError("clips must be a count or a sequence of clip indices")
    indices = list(range(clips)) if isinstance(clips, int) else list(clips)
    chosen = [load_test_clip(dataset, i) for i in indices]
    test = design_test(chosen, systems, seed)
    enhancers = load_systems([s for s in systems if s != "noisy"])
    return ListeningWidget(test, chosen, enhancers, csv, listener=listener)
