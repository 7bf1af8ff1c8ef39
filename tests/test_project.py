"""Project-level checks: packaging files agree, the CLI starts, the notebooks are well formed."""

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


def test_environment_yml_agrees_with_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    from_env = dict(_split(r) for r in pip_section)
    from_pyproject = _requirements_from_pyproject()
    assert from_env == from_pyproject, (
        "environment.yml and pyproject.toml list different requirements:\n"
        f"only in pyproject: {sorted(set(from_pyproject.items()) - set(from_env.items()))}\n"
        f"only in environment.yml: {sorted(set(from_env.items()) - set(from_pyproject.items()))}")


def test_torch_is_pinned_to_the_local_cpu_wheel():
    assert _requirements_from_pyproject()["torch"] == "==2.13.0"


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


def test_readme_shows_the_shipped_experiment_results():
    from tfckd_lite import experiment

    readme = (ROOT / "README.md").read_text()
    shipped = experiment.shipped_results()
    if shipped is None:
        assert "not yet run at full budget" in readme, \
            "no experiment results are shipped: the README must say so"
    else:
        assert experiment.results_markdown(shipped) in readme, \
            "README's experiment table is out of date: paste experiment.results_markdown(" \
            "experiment.shipped_results())"
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
