"""A private JupyterLab server for the browser tests: the project's environment, 127.0.0.1, a free
port, a random token, every Jupyter folder inside one temporary folder.

The server runs from ``sys.executable`` (the project's environment, as ``make lab`` does) on a
copy of the notebooks, so what the notebooks write (the mini data set, ``runs/``) stays in the
temporary folder too. Its settings come from the project's JupyterLab settings folder
(``ROOT/jupyterlab-settings``, the file ``make setup`` installs into the environment), so the
tests see JupyterLab exactly as a student of ``make lab`` does. ``stop()`` ends exactly this
server's process (terminate, wait, kill); the server shuts its kernels down on SIGTERM.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: JupyterLab's settings overrides of the project (first-run prompts off); make setup installs
#: this folder's overrides.json into $(VENV)/share/jupyter/lab/settings.
LAB_SETTINGS = ROOT / "jupyterlab-settings"
WIDGETS_EXTENSION = "@jupyter-widgets/jupyterlab-manager"
NOTEBOOKS = ROOT / "notebooks"
#: what a session leaves in the notebooks folder (git-ignored): not part of the collection
NOT_COPIED = (".ipynb_checkpoints", "__pycache__", "release", "submitted", "autograded",
              "feedback", "downloaded", "gradebook.db", ".nbgrader.log", "tfckd_mini_data")


def free_port() -> int:
    """A TCP port that nothing listens on now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def copy_notebooks(workdir: Path) -> Path:
    """A copy of the project's notebooks folder at ``workdir/notebooks`` (what the notebooks
    write next to it, ``../data`` and ``../runs``, then lands in ``workdir`` too)."""
    return Path(shutil.copytree(NOTEBOOKS, Path(workdir) / "notebooks",
                                ignore=shutil.ignore_patterns(*NOT_COPIED)))


def isolated_environment(folder: Path) -> dict[str, str]:
    """The environment of a server or kernel whose Jupyter, IPython and matplotlib state lives
    in ``folder``; without MPLBACKEND (the test runner sets Agg, which would hide every figure
    from the notebooks' inline backend)."""
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)
    folders = {"JUPYTER_CONFIG_DIR": "config", "JUPYTER_DATA_DIR": "data",
               "JUPYTER_RUNTIME_DIR": "runtime", "JUPYTERLAB_SETTINGS_DIR": "user-settings",
               "JUPYTERLAB_WORKSPACES_DIR": "workspaces", "IPYTHONDIR": "ipython",
               "MPLCONFIGDIR": "matplotlib"}
    for name, sub in folders.items():
        (Path(folder) / sub).mkdir(parents=True, exist_ok=True)
        env[name] = str(Path(folder) / sub)
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    return env


class LabServer:
    """``LabServer(workdir)``: copy the project's notebooks folder into ``workdir/notebooks``
    and serve that copy; :meth:`start`, :meth:`url`, :meth:`api`, :meth:`stop`."""

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.root_dir = copy_notebooks(self.workdir)
        self.jupyter = self.workdir / "jupyter"
        self.token = secrets.token_hex(24)
        self.port = None
        self.process: subprocess.Popen | None = None
        self.log_path = self.workdir / "jupyterlab.log"

    # ----------------------------------------------------------------------------- life
    def environment(self) -> dict[str, str]:
        return isolated_environment(self.jupyter)

    def start(self, timeout: float = 90.0) -> None:
        self.port = free_port()
        command = [sys.executable, "-m", "jupyterlab", "--no-browser",
                   "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}",
                   "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
                   f"--ServerApp.root_dir={self.root_dir}",
                   f"--LabApp.app_settings_dir={LAB_SETTINGS}",
                   # window.jupyterapp: the tests run JupyterLab's own commands (Run All)
                   "--LabApp.expose_app_in_browser=True"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.append("--allow-root")
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(command, cwd=self.root_dir, env=self.environment(),
                                        stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with status {self.process.returncode}:\n"
                                   f"{self.log_tail()}")
            try:
                self.api("GET", "status")
                return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"JupyterLab did not answer within {timeout:.0f} s:\n"
                           f"{self.log_tail()}")

    def stop(self) -> None:
        """Shut the kernels down, then end this server's own process."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            self.shutdown_kernels()
        except (urllib.error.URLError, ConnectionError):
            pass                  # the server is not answering: terminating it is all we can do
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=20)

    # -------------------------------------------------------------------------- access
    def url(self, path: str = "lab", flag: str = "") -> str:
        """The address of ``path`` with the token (and a bare query ``flag`` such as reset)."""
        flag = f"{flag}&" if flag else ""
        return f"http://127.0.0.1:{self.port}/{path}?{flag}token={self.token}"

    def api(self, method: str, path: str, prefix: str = "api"):
        """A call of the server's REST API (``prefix="lab/api"`` for JupyterLab's own)."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/{prefix}/{path}",
                                         method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        for kernel in self.api("GET", "kernels"):
            self.api("DELETE", f"kernels/{kernel['id']}")

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    # ----------------------------------------------------------------- page config
    def disable_extension(self, name: str) -> None:
        """``jupyter labextension disable`` at the user level, which is this server's own
        config folder (JUPYTER_CONFIG_DIR); JupyterLab reads it on each page load."""
        self._labextension("disable", name)

    def enable_extension(self, name: str) -> None:
        self._labextension("enable", name)

    def _labextension(self, action: str, name: str) -> None:
        subprocess.run([sys.executable, "-m", "jupyter", "labextension", action, "--level=user",
                        name], env=self.environment(), check=True, capture_output=True)
