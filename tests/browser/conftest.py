"""Fixtures of the browser tests: Chromium (Debian's, driven by Playwright), one private
JupyterLab server for the session, and each notebook run once in it.

Without Chromium or Playwright these tests are skipped with the reason (``pytest -ra`` lists
it); ``make setup`` installs both when it runs as root. The browser is the system's Chromium:
Playwright's own browser download (``playwright install``) is never used.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

from expected_outputs import execute_headless
from lab_server import LabServer, copy_notebooks, isolated_environment
from notebook_page import close_notebook, open_notebook, rendered_outputs, run_all, screenshot

#: where each notebook's screenshot goes (git-ignored): look at them after a run
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
#: Debian's chromium package; TFCKD_CHROMIUM points elsewhere
CHROMIUM_CANDIDATES = ("/usr/lib/chromium/chromium", "/usr/bin/chromium",
                       "/usr/bin/chromium-browser")
INSTALL_HINT = ("install it with `sudo apt-get install -y chromium` (make setup does this when "
                "run as root)")


def chromium_executable() -> str | None:
    explicit = os.environ.get("TFCKD_CHROMIUM")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    for candidate in CHROMIUM_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("chromium")


def pytest_collection_modifyitems(config, items):
    """A session that runs the browser tests runs each notebook there twice: headless (nbclient,
    which fails on the first error, as nbval does) and in JupyterLab (which fails on any error
    output). Their nbval items in the same session are then skipped with that reason, so that
    ``make test`` runs each notebook twice rather than three times; without Chromium or
    Playwright (the browser tests skipped) nbval runs them as before."""
    if chromium_executable() is None or importlib.util.find_spec("playwright") is None:
        return
    covered = {item.callspec.params["name"] for item in items
               if getattr(item, "originalname", None) == "test_notebook_runs_and_renders_in_jupyterlab"}
    skip = pytest.mark.skip(reason="run by tests/browser: headless (fails on any error, as "
                                   "nbval does) and in JupyterLab")
    for item in items:
        path = Path(str(item.fspath))
        if path.suffix == ".ipynb" and path.parent.name == "notebooks" and path.name in covered:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def browser():
    """A headless Chromium for the whole session (one browser, a fresh context per test)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("browser tests need Playwright (pip package `playwright`, in the project's "
                    "test extras: make setup installs it)")
    executable = chromium_executable()
    if executable is None:
        pytest.skip(f"browser tests need Chromium, which is not installed: {INSTALL_HINT}")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def lab(browser, tmp_path_factory):
    """One JupyterLab server for the session, serving a temporary copy of the notebooks."""
    server = LabServer(tmp_path_factory.mktemp("lab"))
    server.start()
    yield server
    server.stop()
    assert server.process.poll() is not None, "the JupyterLab server is still running"


@pytest.fixture
def page_context(browser):
    """A fresh browser context (no shared storage) at a laptop's window size."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield context
    context.close()


class NotebookRuns:
    """Each notebook run once per session, in the browser and headless.

    ``run(name)`` opens the notebook in JupyterLab, runs every cell, saves a screenshot and
    returns ``(page, outputs, ok)``; the page stays open (and its kernel running) until another
    notebook is run, so a later test can drive what the notebook left on screen (notebook 06's
    widget). ``expected(name)`` executes the same notebook headless (nbclient) in a separate
    copy and counts its figures, widgets and audio players. The two runs take turns: side by
    side, two kernels' OpenMP threads on a 2-core machine slow each other down many times over.
    """

    def __init__(self, lab: LabServer, browser, tmp_path_factory):
        self.lab, self.browser = lab, browser
        self.headless = tmp_path_factory.mktemp("headless")
        self.headless_notebooks = copy_notebooks(self.headless)
        self.context = None
        self.current = None                     # (name, page, outputs, ok)
        self._expected = {}

    def run(self, name: str):
        if self.current and self.current[0] == name:
            return self.current[1:]
        self.close()
        self.context = self.browser.new_context(viewport={"width": 1280, "height": 900})
        page = open_notebook(self.context, self.lab, name)
        ok = run_all(page)
        outputs = rendered_outputs(page)
        screenshot(page, SCREENSHOTS / f"{Path(name).stem}.png")
        self.current = (name, page, outputs, ok)
        return page, outputs, ok

    def expected(self, name: str):
        if name not in self._expected:
            self._expected[name] = execute_headless(
                self.headless_notebooks / name, isolated_environment(self.headless / "jupyter"))
        return self._expected[name]

    def close(self) -> None:
        if self.current:
            close_notebook(self.current[1], self.lab)
            self.current = None
        if self.context:
            self.context.close()
            self.context = None


@pytest.fixture(scope="session")
def notebook_runs(lab, browser, tmp_path_factory):
    runs = NotebookRuns(lab, browser, tmp_path_factory)
    yield runs
    runs.close()
