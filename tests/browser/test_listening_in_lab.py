"""The listening-test widget in JupyterLab, driven with the mouse like a listener would.

A one-cell scratch notebook (written into the server's folder, so this test does not depend on
any notebook of the collection) shows :func:`tfckd_lite.listening.make_listening_widget` on the
mini set; :func:`rate_one_trial` types a name, drags every slider, clicks "Save and next", and
the CSV must then hold one row per stimulus with the values the sliders show.
"""

import csv
from pathlib import Path

import nbformat
import pytest

from notebook_page import (close_notebook, open_notebook, run_all, screenshot,
                           wait_until_drawn, wait_until_idle)

SYSTEMS = ("noisy", "lite-student", "lite-teacher")
STIMULI = len(SYSTEMS) + 2                       # + hidden reference + low anchor
LISTENER = "browser-listener"
#: as the other browser tests (git-ignored)
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"

_STATE = """() => {
  const w = jupyterapp.shell.currentWidget.node.querySelector('.listening-widget');
  return {progress: w.querySelector('.listening-progress').textContent.trim(),
          message: w.querySelector('.listening-message').textContent.trim(),
          sliders: w.querySelectorAll('.widget-hslider').length,
          players: w.querySelectorAll('audio').length,
          reference: w.querySelector('.listening-reference').textContent.trim(),
          readouts: [...w.querySelectorAll('.widget-hslider')].map(s =>
              [s.querySelector('.widget-label').textContent.trim(),
               Number(s.querySelector('.widget-readout').textContent.trim())])};
}"""


def widget_state(page) -> dict:
    return page.evaluate(_STATE)


def _wait_for(page, what: str, value, timeout_s: float = 120) -> dict:
    """The state once its ``what`` equals ``value``."""
    page.wait_for_function(f"v => ({_STATE})().{what} === v", arg=value,
                           timeout=timeout_s * 1000)
    return widget_state(page)


def drag_slider(page, slider, fraction: float) -> None:
    """Drag a slider's handle to ``fraction`` of its track with the mouse."""
    slider.scroll_into_view_if_needed()
    track = slider.locator(".noUi-target").bounding_box()
    handle = slider.locator(".noUi-handle").bounding_box()
    y = handle["y"] + handle["height"] / 2
    page.mouse.move(handle["x"] + handle["width"] / 2, y)
    page.mouse.down()
    page.mouse.move(track["x"] + track["width"] * fraction, y, steps=6)
    page.mouse.up()


def rate_one_trial(page, widget, fractions) -> dict:
    """Drag slider i to ``fractions[i]``, click "Save and next"; returns the state just before
    the click (the sliders' readouts: what the listener chose)."""
    sliders = widget.locator(".widget-hslider")
    for i, fraction in enumerate(fractions):
        drag_slider(page, sliders.nth(i), fraction)
    wait_until_idle(page)
    chosen = widget_state(page)
    widget.get_by_role("button", name="Save and next").click()
    return chosen


@pytest.fixture
def listening_notebook(lab, mini, tmp_path):
    """A scratch notebook showing the listening widget over 2 mini clips; its CSV path."""
    ratings = tmp_path / "ratings.csv"
    cell = ("from tfckd_lite.listening import make_listening_widget\n"
            f"widget = make_listening_widget({str(mini)!r}, {str(ratings)!r}, clips=2,\n"
            f"                               systems={SYSTEMS!r}, seed=0)\n"
            "widget")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    path = lab.root_dir / "listening_scratch.ipynb"
    nbformat.write(notebook, path)
    yield path.name, ratings
    path.unlink()


def test_listening_widget_rates_a_trial_with_the_mouse(lab, page_context, listening_notebook):
    name, ratings = listening_notebook
    page = open_notebook(page_context, lab, name)
    try:
        assert run_all(page), "the scratch notebook's cell failed"
        shown = wait_until_drawn(page)
        assert not shown.errors, shown.errors
        assert shown.rendered_widgets == 1 and not shown.widget_texts and not shown.too_wide

        widget = page.locator(".listening-widget")
        start = widget_state(page)
        assert start["progress"] == "" and "your name" in start["message"]
        widget.locator(".widget-text input").fill(LISTENER)
        widget.locator(".widget-text input").press("Enter")
        first = _wait_for(page, "progress", "trial 1 of 2")
        assert first["sliders"] == STIMULI
        assert first["players"] == STIMULI + 1, "a player per stimulus and the open reference"
        assert first["reference"].startswith("Reference")

        # saving before every slider has moved is refused, and nothing is written
        widget.get_by_role("button", name="Save and next").click()
        page.wait_for_function(f"() => ({_STATE})().message.includes('move every slider')",
                               timeout=60_000)
        refused = widget_state(page)
        assert not ratings.exists() and refused["progress"] == "trial 1 of 2"

        chosen = rate_one_trial(page, widget, [0.15 + 0.14 * i for i in range(STIMULI)])
        values = dict(chosen["readouts"])
        assert len(set(values.values())) == STIMULI, f"the sliders did not move: {values}"
        second = _wait_for(page, "progress", "trial 2 of 2")
        assert all(v == 0 for _, v in second["readouts"]), "the next trial's sliders start at 0"
        screenshot(page, SCREENSHOTS / "listening_widget.png")
    finally:
        close_notebook(page, lab)

    with open(ratings, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == STIMULI
    assert {row["listener"] for row in rows} == {LISTENER}
    assert {row["stimulus_label"]: int(row["rating"]) for row in rows} == values
    assert {row["system"] for row in rows} == {*SYSTEMS, "clean", "anchor-3.5k"}
