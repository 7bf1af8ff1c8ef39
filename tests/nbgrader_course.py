"""Helpers shared by the tests of the graded assignments (test_assignments.py and
test_nbgrader_roundtrip.py).

The nbgrader metadata of a cell, a temporary copy of the course (notebooks/assignments/) and
nbgrader's own command line run on it from this environment, as the Makefile's ``assignments``
target and the instructor guide (notebooks/assignments/README.md) run it.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
COURSE = ROOT / "notebooks" / "assignments"
SOURCE = COURSE / "source"
SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")
HIDDEN_MARKERS = ("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")
STUB = "raise NotImplementedError()"


def meta(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def is_test(cell) -> bool:
    """An autograder test: a graded code cell that is not an answer."""
    return cell.cell_type == "code" and meta(cell).get("grade", False) \
        and not meta(cell).get("solution", False)


def is_solution(cell) -> bool:
    return meta(cell).get("solution", False)


def read(path: Path):
    return nbformat.read(path, as_version=4)


def copy_course(folder: Path) -> Path:
    """A course root in ``folder``: the instructor versions and the course's configuration."""
    shutil.copytree(SOURCE, folder / "source")
    shutil.copy(COURSE / "nbgrader_config.py", folder / "nbgrader_config.py")
    return folder


def nbgrader(course: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``python -m nbgrader ARGS`` in ``course`` and fail with its log when it fails.

    nbgrader runs helper executables (alembic) found on PATH: this environment's bin/ goes first,
    as in the Makefile. The kernels it starts inherit this process's environment.
    """
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent),
                                                  os.environ.get("PATH", "")]))
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, \
        f"nbgrader {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-4000:]}"
    return done


def mini_parent(mini: Path) -> Path:
    """The folder to set ``$TFCKD_DATA`` to so that ``locations.data_dir("mini")`` is ``mini``."""
    assert mini.name == "mini", f"the session's mini set must sit in a folder named mini: {mini}"
    return mini.parent
