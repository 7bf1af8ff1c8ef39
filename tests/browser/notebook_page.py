"""Driving one notebook in JupyterLab through Playwright, and reading what the page shows.

``open_notebook`` opens a notebook and waits for its kernel; ``run_all`` runs JupyterLab's own
"Run All Cells" command once it is enabled and waits until every cell has finished and every
output has been drawn; ``rendered_outputs`` reads the cells' outputs from the page (what a
student sees, not what the kernel sent); ``screenshot`` saves the whole notebook as one image.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

RUN_ALL = "notebook:run-all-cells"
#: JupyterLab's current notebook panel (the app is exposed by the test server)
PANEL = "jupyterapp.shell.currentWidget"


@dataclass
class RenderedOutputs:
    """What the page shows in a notebook's cell outputs (outputs of widgets not counted).

    ``figures``: image outputs whose picture was decoded (natural width > 0); ``audio``: audio
    players outside widgets; ``widgets``: per widget output, the text it shows when it failed
    (``""`` when it rendered as a widget); ``widget_texts``: plain-text outputs that are a
    widget's text representation (what JupyterLab shows without the widget manager);
    ``errors``: error and stderr outputs that carry a traceback or an error; ``prompts``:
    input prompts still running (``[*]``); ``too_wide``: outputs wider than the notebook (the
    reader would have to scroll sideways to see all of them).
    """

    figures: int = 0
    broken_images: int = 0
    audio: int = 0
    widgets: list[str] = field(default_factory=list)
    widget_texts: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    too_wide: list[str] = field(default_factory=list)

    @property
    def rendered_widgets(self) -> int:
        return sum(1 for problem in self.widgets if not problem)


# One pass over the DOM. An output "belongs to the cell" when no other output area encloses it
# (the outputs inside an ipywidgets Output widget belong to that widget).
_READ_OUTPUTS = r"""
() => {
  const panel = jupyterapp.shell.currentWidget.node;
  const found = {figures: 0, broken_images: 0, audio: 0, widgets: [], widget_texts: [],
                 errors: [], stderr: [], prompts: [], too_wide: []};
  const widgetRepr = /^[A-Z]\w*\((children|value|description|layout|options|index)=/;
  const failedWidget = /Error displaying widget|Loading widget/;
  for (const prompt of panel.querySelectorAll('.jp-InputPrompt')) {
    if (prompt.textContent.includes('*')) found.prompts.push(prompt.textContent.trim());
  }
  for (const out of panel.querySelectorAll('.jp-Cell .jp-OutputArea-output')) {
    if (out.parentElement.closest('.jp-OutputArea-output')) continue;   // inside a widget
    const mime = out.getAttribute('data-mime-type') || '';
    const text = out.textContent || '';
    if (mime.startsWith('image/')) {
      const img = out.querySelector('img, svg');
      if (img && (img.tagName.toLowerCase() === 'svg' || img.naturalWidth > 0)) found.figures++;
      else found.broken_images++;
    } else if (out.querySelector(':scope > .jupyter-widgets') || failedWidget.test(text)) {
      found.widgets.push(failedWidget.test(text) ? text.trim().slice(0, 300) : '');
    } else if (mime === 'text/plain' && widgetRepr.test(text.trim())) {
      found.widget_texts.push(text.trim().slice(0, 300));
    } else if (mime === 'application/vnd.jupyter.stderr') {
      const entry = text.trim().slice(0, 2000);
      if (/Traceback|Error\b|Exception\b/.test(text)) found.errors.push(entry);
      else found.stderr.push(entry);
    }
    if (!out.querySelector('.jupyter-widgets')) found.audio += out.querySelectorAll('audio').length;
    if (out.scrollWidth > out.clientWidth + 2) {             // cut off at the notebook's edge
      found.too_wide.push(`${mime || 'widget'}, ${out.scrollWidth} px in ${out.clientWidth} px: `
                          + text.trim().slice(0, 80));
    }
  }
  return found;
}
"""


def open_notebook(context, server, name: str, timeout_s: float = 120):
    """A new page showing notebook ``name`` with its kernel started and idle."""
    page = context.new_page()
    # ?reset: start from an empty workspace, or JupyterLab reopens the notebooks (and starts the
    # kernels) of earlier pages, whose layout the server keeps
    page.goto(server.url(f"lab/tree/{name}", "reset"))
    page.wait_for_function(
        f"""name => window.jupyterapp && {PANEL} && {PANEL}.context
                   && {PANEL}.context.path.endsWith(name)""",
        arg=name, timeout=timeout_s * 1000)
    wait_until_idle(page, timeout_s)
    return page


def wait_until_idle(page, timeout_s: float = 120) -> None:
    page.wait_for_function(
        f"() => {PANEL}.sessionContext.session?.kernel?.status === 'idle'",
        timeout=timeout_s * 1000)


def run_all(page, timeout_s: float = 900) -> bool:
    """Run All Cells once the command is enabled; wait until every cell ran and its outputs are
    drawn. Returns the command's answer (False when a cell failed and stopped the run)."""
    page.wait_for_function(
        f"""() => jupyterapp.commands.isEnabled('{RUN_ALL}')
                  && {PANEL}.sessionContext.session?.kernel?.status === 'idle'""",
        timeout=120_000)
    ok = page.evaluate(
        """([command, ms]) => Promise.race([
             jupyterapp.commands.execute(command),
             new Promise((_, fail) => setTimeout(() => fail(new Error(
               `Run All did not finish within ${ms / 1000} s`)), ms))])""",
        [RUN_ALL, timeout_s * 1000])
    wait_until_drawn(page)
    return bool(ok)


def wait_until_drawn(page, timeout_s: float = 120, settle_s: float = 1.5) -> RenderedOutputs:
    """Wait for an idle kernel, no running prompt, no widget still loading and outputs that stay
    the same for ``settle_s``; returns them."""
    deadline = time.monotonic() + timeout_s
    previous = None
    while True:
        wait_until_idle(page, max(1.0, deadline - time.monotonic()))
        now = rendered_outputs(page)
        loading = any("Loading widget" in w for w in now.widgets)
        if now == previous and not now.prompts and not loading:
            return now
        if time.monotonic() > deadline:
            return now            # the caller's assertions say what is still missing
        previous = now
        page.wait_for_timeout(settle_s * 1000)


def rendered_outputs(page) -> RenderedOutputs:
    return RenderedOutputs(**page.evaluate(_READ_OUTPUTS))


def screenshot(page, path: Path) -> None:
    """The whole notebook in one image: scroll it to the top, make the window as tall as the
    notebook's content, take the picture, and give the window its size back."""
    path.parent.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    scroller = (f"({PANEL}.content.node.closest('.jp-WindowedPanel-outer') "
                f"|| {PANEL}.content.node.querySelector('.jp-WindowedPanel-outer'))")
    page.evaluate(f"() => {{ {PANEL}.content.activeCellIndex = 0; }}")  # as a reader opens it
    height = size["height"]
    # where the last cell ends (the scroll height also counts the space JupyterLab leaves after
    # it); off-screen cells have estimated heights until they are drawn, so measure again
    measure = f"""() => {{ const s = {scroller}; s.scrollTop = 0;
        const cells = {PANEL}.content.widgets;
        const last = cells[cells.length - 1].node.getBoundingClientRect().bottom;
        return [last - s.getBoundingClientRect().top + 24, s.clientHeight]; }}"""
    for _ in range(8):
        content, view = page.evaluate(measure)
        if content <= view or height >= 32_000:
            break
        height = min(height + int(content - view), 32_000)
        page.set_viewport_size({"width": size["width"], "height": height})
        page.wait_for_timeout(1000)               # JupyterLab lays itself out for the new size
    page.evaluate(f"() => {{ {scroller}.scrollTop = 0; }}")
    page.screenshot(path=str(path))
    page.set_viewport_size(size)


def close_notebook(page, server) -> None:
    """Close the page and shut down its notebook's kernel (the server's other kernels stay)."""
    kernel = page.evaluate(f"() => {PANEL}.sessionContext.session?.kernel?.id ?? null")
    page.close()
    if kernel and any(k["id"] == kernel for k in server.api("GET", "kernels")):
        server.api("DELETE", f"kernels/{kernel}")


def rendering_problems(shown: RenderedOutputs, expected) -> list[str]:
    """What the page gets wrong against what the notebook makes (``expected``: figures, widgets
    and audio counted headless); an empty list when everything is rendered."""
    problems = [f"error output:\n{error}" for error in shown.errors]
    if shown.prompts:
        problems.append(f"cells still running: {shown.prompts}")
    if shown.broken_images:
        problems.append(f"{shown.broken_images} image output(s) not decoded")
    if shown.figures != expected.figures:
        problems.append(f"{shown.figures} figures on the page, the notebook makes "
                        f"{expected.figures}")
    problems += [f"widget shown as text: {text}" for text in shown.widget_texts]
    problems += [f"widget not rendered: {text}" for text in shown.widgets if text]
    if shown.rendered_widgets != expected.widgets:
        problems.append(f"{shown.rendered_widgets} widgets drawn, the notebook makes "
                        f"{expected.widgets}")
    problems += [f"output wider than the notebook: {text}" for text in shown.too_wide]
    if shown.audio != expected.audio:
        problems.append(f"{shown.audio} audio players on the page, the notebook makes "
                        f"{expected.audio}")
    return problems
