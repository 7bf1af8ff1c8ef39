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
import queue
import signal
import subprocess
import sys
import time
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


#: seconds of one wait for the kernel's execute reply
#: (see :meth:`_Client.async_start_new_kernel_client`)
REPLY_POLL_S = 0.5


class _Client(nbclient.NotebookClient):
    """nbclient, also noting which widgets the kernel closed: JupyterLab removes a closed
    widget's view (a finished tqdm bar with ``leave=False``), nbclient keeps its output."""

    def handle_comm_msg(self, outs, msg, cell_index):
        super().handle_comm_msg(outs, msg, cell_index)
        if msg["msg_type"] == "comm_close":
            self.closed_widgets.add(msg["content"]["comm_id"])

    async def async_start_new_kernel_client(self):
        """The kernel client, whose shell channel waits for a reply in short polls.

        Why: nbclient waits for a cell's execute reply with one poll of the shell socket for the
        whole cell timeout, and mirrors an ipywidgets ``Output`` widget by *sending* comm
        messages on that same socket meanwhile (notebook 06's widget draws into one). A send
        can swallow the socket's wake-up, so the poll sleeps until its timeout although the
        reply is there: notebook 06 then stalls for the whole cell timeout, now and then (every
        other run on a slow 2-core machine; jupyter/nbconvert#2003 looks like the same). Polling
        in slices of :data:`REPLY_POLL_S` makes a missed wake-up cost at most that.
        """
        client = await super().async_start_new_kernel_client()
        channel = client.shell_channel
        wait_whole = channel.get_msg

        async def get_msg_in_slices(timeout=None):
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    return await wait_whole(timeout=REPLY_POLL_S if left is None
                                            else min(REPLY_POLL_S, left))
                except queue.Empty:
                    if left is not None and left <= REPLY_POLL_S:
                        raise

        channel.get_msg = get_msg_in_slices
        return client


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

    In a child process with a wall-clock limit, tried ``attempts`` times. Plain nbclient stalled
    on notebook 06's ``Output`` widget (a missed wake-up of its shell poll, which
    :class:`_Client` works around: measured on a slow 2-core machine, 3 runs in 5 stalled for
    the whole cell timeout before, 0 in 5 after, each about 27 s); the second attempt is a
    backstop for a stall not yet understood. A notebook that fails (an error in a cell) fails at
    once, not retried.
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
