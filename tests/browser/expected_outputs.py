"""What a notebook makes, counted by executing it headless (nbclient, no browser).

The browser test compares the page with these counts, so no expected number is typed in by
hand: ``figures`` are the image outputs of the cells, ``widgets`` their widget views (of widgets
still open at the end), ``audio`` the ``<audio>`` players in their HTML. nbclient treats an ipywidgets ``Output`` widget as
JupyterLab does (what is displayed inside it belongs to the widget, not to the cell), so the
two counts mean the same thing.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nbclient
import nbformat

IMAGE_TYPES = ("image/png", "image/svg+xml", "image/jpeg")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@dataclass(frozen=True)
class ExpectedOutputs:
    figures: int
    widgets: int
    audio: int


class _Client(nbclient.NotebookClient):
    """nbclient, also noting which widgets the kernel closed: JupyterLab removes a closed
    widget's view (a finished tqdm bar with ``leave=False``), nbclient keeps its output."""

    def handle_comm_msg(self, outs, msg, cell_index):
        super().handle_comm_msg(outs, msg, cell_index)
        if msg["msg_type"] == "comm_close":
            self.closed_widgets.add(msg["content"]["comm_id"])


def count_outputs(notebook, closed_widgets=frozenset()) -> ExpectedOutputs:
    figures = widgets = audio = 0
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            figures += any(kind in data for kind in IMAGE_TYPES)
            if WIDGET_VIEW in data:
                widgets += data[WIDGET_VIEW]["model_id"] not in closed_widgets
            audio += "".join(data.get("text/html", "")).count("<audio")
    return ExpectedOutputs(figures, widgets, audio)


def _execute_in_this_process(path: Path, timeout_s: int) -> ExpectedOutputs:
    notebook = nbformat.read(path, as_version=4)
    client = _Client(notebook, timeout=timeout_s, kernel_name="python3",
                     resources={"metadata": {"path": str(path.parent)}})
    client.closed_widgets = set()
    client.execute(env=dict(os.environ))
    return count_outputs(notebook, client.closed_widgets)


def execute_headless(path: Path, env: dict[str, str], timeout_s: int = 900,
                     wall_s: int = 300, attempts: int = 2) -> ExpectedOutputs:
    """Run the notebook at ``path`` (in its own folder) and count what its cells display.

    In a child process with a wall-clock limit, tried ``attempts`` times: nbclient can wait
    forever on the ipywidgets ``Output`` areas of notebook 06 after its last cell (the upstream
    bug the README names, jupyter/nbconvert#2003); it happens only now and then, and a second
    run gets through. A notebook that fails (an error in a cell) fails at once, not retried.
    """
    for attempt in range(1, attempts + 1):
        child = subprocess.Popen([sys.executable, __file__, str(path), str(timeout_s)], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 start_new_session=True)
        try:
            out, err = child.communicate(timeout=wall_s)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)      # the child and the kernel it started
            child.communicate()
            continue
        if child.returncode != 0:
            raise RuntimeError(f"headless run of {path.name} failed:\n{err[-3000:]}")
        return ExpectedOutputs(**json.loads(out.strip().splitlines()[-1]))
    raise TimeoutError(f"headless run of {path.name} did not finish in {wall_s} s, "
                       f"{attempts} times")


if __name__ == "__main__":
    counts = _execute_in_this_process(Path(sys.argv[1]), int(sys.argv[2]))
    print(json.dumps(dataclasses.asdict(counts)))
