"""The notebooks as a student meets them: JupyterLab in Chromium, Run All, then what the page shows.

Expected counts (figures, widgets, audio players) come from running the same notebook headless
(``expected_outputs``); the page must show each of them rendered: pictures decoded, widgets
drawn as widgets (not their text, not "Error displaying widget"), and no error output.
Screenshots land in tests/browser/screenshots/ (git-ignored). The tests of this module run in
order on one server: notebook 06 stays open after its run, and the widget test drives it.
"""

import json

import nbformat
import pytest

from expected_outputs import execute_headless
from lab_server import LAB_SETTINGS, WIDGETS_EXTENSION, isolated_environment
from notebook_page import (close_notebook, open_notebook, rendered_outputs,
                           rendering_problems, run_all, wait_until_drawn, wait_until_idle)
from tfckd_lite.catalog import NOTEBOOKS, notebook_dir

NOTEBOOK_FILES = [nb.file for nb in NOTEBOOKS]
NOTEBOOK_DIR = notebook_dir()
COMPARE_NOTEBOOK = "06_compare_spectrograms.ipynb"


def test_the_catalog_lists_every_notebook_of_the_folder_in_order():
    """Every numbered notebook joins these tests through the catalog (a new one too)."""
    on_disk = sorted(p.name for p in NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
    assert NOTEBOOK_FILES == on_disk, f"catalog {NOTEBOOK_FILES}, notebooks/ holds {on_disk}"
    assert COMPARE_NOTEBOOK in NOTEBOOK_FILES


@pytest.mark.parametrize("name", NOTEBOOK_FILES)
def test_notebook_runs_and_renders_in_jupyterlab(notebook_runs, name):
    page, shown, ok = notebook_runs.run(name)
    problems = rendering_problems(shown, notebook_runs.expected(name))
    assert not problems, f"{name} in JupyterLab:\n" + "\n".join(problems)
    assert ok, f"Run All stopped before the end of {name}"


# --------------------------------------------------------------------------------------------
# notebook 06's widget, driven by hand

_WIDGET_STATE = """() => {
  const w = jupyterapp.shell.currentWidget.node.querySelector('.compare-widget');
  const img = w.querySelector('.compare-figure img');
  const rows = [...w.querySelectorAll('.widget-hbox')];
  return {picture: img && img.naturalWidth > 0 ? img.src : null,
          metrics: w.querySelector('.compare-metrics').textContent,
          message: w.querySelector('.compare-message').textContent,
          clip: w.querySelector('.widget-dropdown select').value,
          path: w.querySelector('.widget-text input').value,
          zoom: w.querySelector('.widget-hslider .widget-readout').textContent,
          players: w.querySelectorAll('.compare-players audio').length,
          systems: rows.find(r => r.textContent.trim().startsWith('systems:'))
                       .querySelectorAll('.widget-checkbox input').length,
          overflowing: rows.filter(r => r.scrollWidth > r.clientWidth + 1).length,
          too_wide: w.scrollWidth > w.clientWidth + 1};
}"""


def _widget(page) -> dict:
    return page.evaluate(_WIDGET_STATE)


def _after(page, before: dict, what: str, timeout_s: float = 300) -> dict:
    """The widget's state once ``what`` (a key of the state) differs from ``before``."""
    page.wait_for_function(f"old => ({_WIDGET_STATE})().{what} !== old", arg=before[what],
                           timeout=timeout_s * 1000)
    wait_until_idle(page)
    wait_until_drawn(page)
    return _widget(page)


def test_compare_widget_answers_the_mouse_in_jupyterlab(notebook_runs, lab):
    page, shown, ok = notebook_runs.run(COMPARE_NOTEBOOK)
    assert ok and not shown.errors
    widget = page.locator(".compare-widget")
    start = _widget(page)
    assert start["picture"], "the widget shows no picture"
    assert "PESQ-WB" in start["metrics"]
    assert start["players"] == start["systems"], "one audio player per system"
    assert start["path"] == "", "the file field keeps a path from the notebook's demo"
    assert start["overflowing"] == 0 and not start["too_wide"], \
        "the widget's controls are wider than the notebook"

    # another test clip: a new picture and new scores
    select = widget.get_by_label("test clip")
    values = select.locator("option").evaluate_all("options => options.map(o => o.value)")
    select.select_option(value=next(v for v in values if v != start["clip"]))
    clip = _after(page, start, "picture")
    assert clip["clip"] != start["clip"] and clip["metrics"] != start["metrics"]

    # zoom: drag the slider's upper handle halfway back; the same clip, so the same scores
    widget.locator(".widget-hslider").scroll_into_view_if_needed()  # the mouse needs it on screen
    track = widget.locator(".widget-hslider .noUi-target").bounding_box()
    handle = widget.locator(".widget-hslider .noUi-handle-upper").bounding_box()
    page.mouse.move(handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2)
    page.mouse.down()
    page.mouse.move(track["x"] + track["width"] * 0.5, handle["y"] + handle["height"] / 2,
                    steps=8)
    page.mouse.up()
    zoomed = _after(page, clip, "picture")
    assert zoomed["zoom"] != clip["zoom"], "the slider's readout did not move"
    assert zoomed["metrics"] == clip["metrics"]

    # untick the teacher: one column less, scores unchanged
    widget.locator(".widget-checkbox").filter(has=page.get_by_text("teacher", exact=True)) \
        .locator("input").click()
    toggled = _after(page, zoomed, "picture")
    assert toggled["metrics"] == zoomed["metrics"]

    # a file that is not audio: an error message, the clip stays on show
    bad = lab.root_dir / "not_audio.wav"
    bad.write_text("this is text, not a recording")
    widget.locator(".widget-text input").fill(str(bad))
    widget.get_by_role("button", name="load file").click()
    failed = _after(page, toggled, "message")
    assert "could not load" in failed["message"] and bad.name in failed["message"]
    assert failed["picture"] == toggled["picture"] and failed["metrics"] == toggled["metrics"]


# --------------------------------------------------------------------------------------------
# the control: the same check fails when JupyterLab cannot draw widgets

WIDGET_CELL = ("import ipywidgets as widgets\n"
               "widgets.VBox([widgets.IntSlider(value=3, description='level'),\n"
               "              widgets.Checkbox(description='tick me')])")


@pytest.fixture
def widget_notebook(lab, tmp_path):
    """A one-cell notebook that shows one widget, next to the served notebooks."""
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(WIDGET_CELL)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    path = lab.root_dir / "widget_control.ipynb"
    nbformat.write(notebook, path)
    expected = execute_headless(path, isolated_environment(tmp_path / "jupyter"))
    assert expected.widgets == 1
    return path.name, expected


@pytest.mark.parametrize("extension", [
    "enabled",
    pytest.param("disabled", marks=pytest.mark.xfail(
        strict=True, reason="control: without the ipywidgets extension the check must fail"))])
def test_the_widget_check_fails_without_the_widget_extension(lab, page_context, widget_notebook,
                                                            extension):
    name, expected = widget_notebook
    if extension == "disabled":
        lab.disable_extension(WIDGETS_EXTENSION)        # in the server's own config folder
    try:
        page = open_notebook(page_context, lab, name)
        run_all(page)
        shown = rendered_outputs(page)
        close_notebook(page, lab)
    finally:
        if extension == "disabled":
            lab.enable_extension(WIDGETS_EXTENSION)
    problems = rendering_problems(shown, expected)
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------------------------
# JupyterLab's first-run prompts are off (the project's settings overrides)

def test_jupyterlab_opens_without_first_run_prompts(lab, page_context):
    overrides = json.loads((LAB_SETTINGS / "overrides.json").read_text())
    plugin = "@jupyterlab/apputils-extension:notification"
    assert overrides[plugin]["fetchNews"] == "false"
    # the server applies the overrides to the plugin's defaults
    schema = lab.api("GET", f"settings/{plugin}", prefix="lab/api")["schema"]["properties"]
    assert schema["fetchNews"]["default"] == "false"
    assert schema["checkForUpdates"]["default"] is False
    page = page_context.new_page()
    page.goto(lab.url("lab", "reset"))
    page.wait_for_function("() => window.jupyterapp && jupyterapp.shell", timeout=60_000)
    page.wait_for_timeout(3000)                 # the news question would pop up by now
    toasts = page.locator(".Toastify__toast").all_inner_texts()
    assert not [t for t in toasts if "news" in t.lower()], toasts
    page.close()


# --------------------------------------------------------------------------------------------
# nbgrader's JupyterLab extensions load (the instructor's and the students' panels)

NBGRADER_PLUGINS = ("@jupyter/nbgrader:assignment-list", "@jupyter/nbgrader:formgrader",
                    "@jupyter/nbgrader:menu")
NBGRADER_COMMANDS = ("nbgrader:open-assignment-list", "nbgrader:open-formgrader")


def test_nbgrader_extensions_load_in_jupyterlab(lab, page_context):
    page = page_context.new_page()
    page.goto(lab.url("lab", "reset"))
    page.wait_for_function("() => window.jupyterapp && jupyterapp.shell", timeout=60_000)
    page.wait_for_function("(ids) => ids.every(id => jupyterapp.isPluginActivated(id))",
                           arg=list(NBGRADER_PLUGINS), timeout=60_000)
    commands = page.evaluate("(ids) => ids.filter(id => jupyterapp.commands.hasCommand(id))",
                             list(NBGRADER_COMMANDS))
    assert commands == list(NBGRADER_COMMANDS)
    # its menu joins the lab's menu bar
    page.wait_for_function("() => Array.from(document.querySelectorAll('.lm-MenuBar-item'))"
                           ".some(item => item.textContent === 'Nbgrader')", timeout=60_000)
    # the assignment list (the students' panel) opens in the lab's main area
    page.evaluate("() => jupyterapp.commands.execute('nbgrader:open-assignment-list')")
    page.wait_for_function("() => Array.from(jupyterapp.shell.widgets('main'))"
                           ".some(w => w.id === 'nbgrader-assignment-list')", timeout=60_000)
    page.close()
