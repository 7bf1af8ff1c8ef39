"""Project-level checks: packaging files agree, the CLI starts, the notebooks are well formed."""

import ast
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _requirements_from_pyproject() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        reqs.extend(extra)
    return dict(_split(r) for r in reqs)


def _split(requirement: str) -> tuple[str, str]:
    match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", requirement)
    assert match, f"cannot parse requirement {requirement!r}"
    return match.group(1).lower().replace("_", "-"), match.group(2).replace(" ", "")


def _constraints() -> dict[str, str]:
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    return dict(_split(line) for line in lines if line.strip() and not line.startswith("#"))


def test_environment_yml_agrees_with_pyproject_and_the_constraints():
    """environment.yml (Binder) is pyproject.toml's list with the exact pins of constraints.txt."""
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    from_env = dict(_split(r) for r in pip_section if not r.startswith("-"))   # not pip options
    expected = _requirements_from_pyproject() | _constraints()
    assert from_env == expected, (
        "environment.yml should list pyproject.toml's requirements with constraints.txt's pins:\n"
        f"missing or different: {sorted(set(expected.items()) - set(from_env.items()))}\n"
        f"only in environment.yml: {sorted(set(from_env.items()) - set(expected.items()))}")


def test_torch_is_a_lower_bound_in_the_metadata_and_pinned_in_the_constraints():
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    bound, pin = _requirements_from_pyproject()["torch"], _constraints()["torch"]
    assert re.fullmatch(r">=\d+\.\d+", bound), \
        f"pyproject.toml must declare torch as a lower bound (>=X.Y), not {bound!r}"
    assert re.fullmatch(r"==\d+\.\d+\.\d+", pin), f"constraints.txt must pin torch exactly: {pin!r}"
    assert Version(pin[2:]) in SpecifierSet(bound), f"the pin {pin} breaks the bound {bound}"
    import torch
    assert Version(torch.__version__) in SpecifierSet(pin), \
        f"this environment runs torch {torch.__version__}, constraints.txt pins {pin}"


def test_the_makefile_installs_with_the_constraints():
    makefile = (ROOT / "Makefile").read_text()
    project = [line for line in makefile.splitlines() if "pip install" in line and " -e " in line]
    assert project and all("-c constraints.txt" in line for line in project), project
    assert not re.search(r"pip install[^\n]*\btorch\b", makefile), \
        "torch comes from the constraints, never from a separate pip install"


def test_no_notebook_names_a_path_outside_its_folder():
    """Every notebook also runs copied alone into an empty folder (Colab, a JupyterHub home):
    its code reaches data and runs through tfckd_lite.locations, never through '..'."""
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted(
        (ROOT / "notebooks" / "assignments" / "source").glob("*/*.ipynb"))
    assert len(notebooks) > 7, notebooks
    for path in notebooks:
        for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
            if cell.cell_type != "code":
                continue
            code = "\n".join(line for line in cell.source.splitlines()
                             if not line.lstrip().startswith(("%", "!")))      # IPython magics
            for node in ast.walk(ast.parse(code)):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    assert ".." not in re.split(r"[/\\]", node.value), \
                        f"{path.name} cell {index} names a path outside its folder: {node.value!r}"


def test_cli_help_runs():
    out = subprocess.run([sys.executable, "-m", "tfckd_lite", "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert "model" in out


def test_notebooks_are_stored_without_outputs_and_with_a_python_kernel():
    notebooks = sorted((ROOT / "notebooks").rglob("*.ipynb"))
    assert notebooks, "no notebooks found"
    # nbgrader's working folders (release/, submitted/, autograded/, ...) are git-ignored
    # outputs of an instructor's session; only the sources under assignments/source are ours
    work = {"release", "submitted", "autograded", "feedback", "downloaded"}
    for path in notebooks:
        if ".ipynb_checkpoints" in path.parts or work & set(path.relative_to(ROOT).parts):
            continue
        raw = json.loads(path.read_text())
        if (raw["nbformat"], raw["nbformat_minor"]) >= (4, 5):
            # nbformat fills in a missing cell id with a warning now and will refuse it later
            assert all("id" in cell for cell in raw["cells"]), f"{path.name}: a cell has no id"
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        assert nb.metadata.get("kernelspec", {}).get("language") == "python", path
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs, f"{path.name}: commit notebooks without outputs"


def test_readme_lists_the_notebook_sequence_of_the_catalog():
    from tfckd_lite.catalog import NOTEBOOKS, notebook_table_markdown

    readme = (ROOT / "README.md").read_text()
    assert notebook_table_markdown("notebooks/") in readme, \
        "README's notebook table is out of date: paste tfckd_lite.catalog.notebook_table_markdown('notebooks/')"
    for nb in NOTEBOOKS:
        assert (ROOT / "notebooks" / nb.file).is_file(), nb.file
        assert nb.cpu_time and "TBD" not in nb.cpu_time, f"{nb.file}: run time not measured"


def test_readme_names_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert "make lab" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_readme_results_come_from_the_shipped_models():
    from tfckd_lite import pretrained

    # the training section shows the teacher and the student baseline (issue 4's models); the
    # distilled students that the experiment ships have their own table (the next test)
    names = ["lite-student", "lite-teacher"]
    assert set(names) <= set(pretrained.available()), "the base models are not shipped"
    readme = (ROOT / "README.md").read_text()
    assert pretrained.results_table_markdown(names) in readme, \
        f"README's results table is out of date: paste " \
        f"tfckd_lite.pretrained.results_table_markdown({names})"
    for field in ("noise", "snr"):
        assert pretrained.breakdown_table_markdown(field, names) in readme, \
            f"README's per-{field} table is out of date: paste " \
            f"tfckd_lite.pretrained.breakdown_table_markdown({field!r}, {names})"


@pytest.mark.parametrize("mics", [None, "A"], ids=["single-channel", "mics-A"])
def test_readme_shows_the_shipped_experiment_results(mics):
    from tfckd_lite import experiment

    readme = (ROOT / "README.md").read_text()
    shipped = experiment.shipped_results(mics)
    target = "reproduce" if mics is None else "reproduce-mc"
    if shipped is None:
        # not shipped yet: the README says which command makes it and how to see its progress
        assert f"`make {target}`" in readme and f"`make {target}-status`" in readme, \
            f"no results of make {target} are shipped: the README must say how to make them"
    else:
        assert experiment.results_markdown(shipped) in readme, \
            "README's experiment table is out of date: paste experiment.results_markdown(" \
            f"experiment.shipped_results({mics!r}))"
        assert shipped["command"] in readme


def test_the_committed_experiment_folder_keeps_what_a_fresh_clone_resumes_from():
    """``make reproduce`` writes into a tracked folder: finished runs are committed, resume
    states and logs are not, and distiller extras only for the methods whose distiller ships."""
    from tfckd_lite import experiment
    from tfckd_lite.distill import METHODS
    from tfckd_lite.run_folder import RunFolder as R

    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    makefile = (ROOT / "Makefile").read_text()
    folder = re.search(r"REPRODUCE_ARGS := .*--out (\S+)", makefile).group(1)
    run = f"{folder}/runs/{{}}/lam-1/seed-0/{{}}"
    paths = {run.format(m, f): (f in (R.BEST, R.HISTORY, R.TEST_SCORES)
                                or (f == R.BEST_EXTRAS and m in experiment.SHIPPED_EXTRAS))
             for m in METHODS for f in (R.BEST, R.HISTORY, R.TEST_SCORES, R.BEST_EXTRAS,
                                        R.STATE, R.LOG, R.LOCK)}
    # the teacher's cached test scores are kept; the report is not (--ship copies it)
    paths.update({f"{folder}/{experiment.TEACHER_SCORES_FILE}": True,
                  f"{folder}/results.json": False,
                  f"{folder}/results.md": False, f"{folder}/results.png": False})
    ignored = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=ROOT,
                             capture_output=True, text=True).stdout.split()
    assert {p for p, kept in paths.items() if not kept} == set(ignored)
