"""The library as a Colab or JupyterHub user meets it (issue 26, §4).

The package is built into a wheel from a copy of its sources, installed with its dependencies
(``pip install -c constraints.txt``, as ``make`` installs) into a fresh virtual environment
outside the repository, and one notebook is copied alone into an empty folder and run there
under nbval by a kernel of that environment, with a fresh cache folder: no checkout to import
from, no data set built beforehand, nothing next to the notebook, and no Debian speech prompt
packages (so the data set is espeak-only, as on a stock Colab or JupyterHub image).

The notebook is 06_compare_spectrograms: it loads every shipped model (the distillers' extra
weights included), builds the ``mini`` data set and drives ipywidgets, so it needs the most of
what the wheel has to carry. The overview (00) runs alone too: it is the one notebook that
looks for the collection around it. That every notebook stays runnable on its own is checked for
all of them, cheaply, by tests/test_project.py (no path outside a notebook's folder).

Needs pip's package index (PyPI), as ``make setup`` does: the environment is built from scratch.
"""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from tfckd_lite.data import load_manifest
from tfckd_lite.data.speech import ASTERISK_ENV

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "06_compare_spectrograms.ipynb"
# What a source distribution of the package needs (pyproject.toml names README.md and LICENSE).
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "tfckd_lite")

def _clean_env(**extra) -> dict:
    """This process's environment without what points at the checkout or its environment."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "MPLBACKEND", "TFCKD_DATA")}
    env.update(extra)
    return env


def _run(args, cwd, env, timeout) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, \
        f"{' '.join(map(str, args))} failed ({done.returncode}):\n" \
        f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of the sources (the checkout gets no build/ or egg-info)."""
    work = tmp_path_factory.mktemp("wheel-build")
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, work / "src" / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            (work / "src").mkdir(exist_ok=True)
            shutil.copy(source, work / "src" / name)
    # the build backend (setuptools) of this environment: no download, no isolated build env
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
          "--wheel-dir", work / "dist", work / "src"], cwd=work, env=_clean_env(), timeout=300)
    wheels = list((work / "dist").glob("tfckd_lite-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def fresh_python(wheel, tmp_path_factory) -> Path:
    """The interpreter of a new virtual environment holding the wheel, its dependencies (with
    the constraints) and a Jupyter kernel (ipykernel, as any hosted Jupyter has), plus nbval to
    run a notebook the way CI runs the collection (nbclient alone hangs on notebook 06's widget
    output areas: README, "The notebooks")."""
    venv = tmp_path_factory.mktemp("fresh-venv") / "venv"
    _run([sys.executable, "-m", "venv", venv], cwd=venv.parent, env=_clean_env(), timeout=300)
    python = venv / "bin" / "python"
    _run([python, "-m", "pip", "install", "--quiet", "--no-compile", "-c",
          ROOT / "constraints.txt", wheel, "ipykernel", "nbval", "pytest"],
         cwd=venv.parent, env=_clean_env(), timeout=900)
    return python


def test_wheel_carries_every_file_of_the_package(wheel):
    with zipfile.ZipFile(wheel) as archive:
        packed = set(archive.namelist())
    on_disk = {p.relative_to(ROOT).as_posix() for p in (ROOT / "tfckd_lite").rglob("*")
               if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}
    missing = sorted(on_disk - packed)
    assert not missing, f"the wheel lacks {missing} (package-data in pyproject.toml?)"
    assert any(name.endswith(".safetensors") for name in packed)


def test_fresh_environment_imports_the_wheel_with_the_pinned_torch(fresh_python):
    done = _run([fresh_python, "-c",
                 "import torch, tfckd_lite, tfckd_lite.locations as loc\n"
                 "print(torch.__version__)\nprint(tfckd_lite.__file__)\n"
                 "print(loc.source_checkout())"],
                cwd=fresh_python.parents[2], env=_clean_env(), timeout=300)
    torch_version, library, checkout = done.stdout.split()
    assert torch_version == torch.__version__, \
        f"the constraints installed torch {torch_version}; make's environment has " \
        f"{torch.__version__}"
    assert Path(library).is_relative_to(fresh_python.parents[1]), library
    assert checkout == "None", f"an installed wheel must not look like a checkout: {checkout}"


def _run_alone(python: Path, notebook: str, tmp_path: Path) -> tuple[Path, Path]:
    """Copy ``notebook`` alone into an empty folder and run it there under nbval with the kernel of
    ``python``'s environment and a fresh cache; returns (the folder, the cache)."""
    folder, cache = tmp_path / "my-notebooks", tmp_path / "cache"
    folder.mkdir()
    shutil.copy(ROOT / "notebooks" / notebook, folder / notebook)
    # a stock Colab or JupyterHub image has no Debian prompt packages: an empty folder stands for
    # them, so the data set is espeak-only there, as it is here
    no_prompts = tmp_path / "no-asterisk-prompts"
    no_prompts.mkdir()
    env = _clean_env(XDG_CACHE_HOME=str(cache), JUPYTER_DATA_DIR=str(tmp_path / "jupyter"),
                     IPYTHONDIR=str(tmp_path / "ipython"), **{ASTERISK_ENV: str(no_prompts)})
    # the kernel is this environment's interpreter (--nbval-current-env); no pytest cache or
    # configuration is left in or read from the folder
    done = _run([python, "-m", "pytest", "-p", "no:cacheprovider", "--rootdir", folder,
                 "-c", os.devnull, "--nbval-lax", "--nbval-current-env", "-q", notebook],
                cwd=folder, env=env, timeout=1200)
    assert " passed" in done.stdout and " failed" not in done.stdout, done.stdout[-2000:]
    assert sorted(p.name for p in folder.iterdir()) == [notebook], "files left next to it"
    return folder, cache


def test_one_notebook_runs_alone_in_an_empty_folder(fresh_python, tmp_path):
    _, cache = _run_alone(fresh_python, NOTEBOOK, tmp_path)
    # the library of that environment (not a checkout) built the data set in the user's cache,
    # from espeak voices alone
    manifest = load_manifest(cache / "tfckd_lite" / "data" / "mini")
    assert manifest["sources_used"] == ["espeak"], manifest["sources_used"]


def test_the_overview_runs_alone_without_the_collection(fresh_python, tmp_path):
    """00 checks the collection when it runs from a checkout; alone, it says where it runs."""
    _run_alone(fresh_python, "00_overview.ipynb", tmp_path)
