"""The graded nbgrader assignments (notebooks/assignments/) cannot give away or lose their answers.

* the nbgrader metadata of every source notebook is sane (nbgrader's own validator, unique
  grade ids, points on every graded cell, locked tests, solution markers where they belong);
* every instructor (source) version passes all of its own autograder tests;
* ``nbgrader generate_assignment`` produces student versions that contain no answer, and in
  which every autograder test fails while the provided cells still run;
* the helpers of ``tfckd_lite.grading`` fail with readable messages, and the instructor guide
  shows the assignment table of ``tfckd_lite.catalog``.

The notebooks are executed with nbclient in a kernel of this interpreter, in copies under a
temporary folder, so nothing is written into the checkout.
"""

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from nbclient import NotebookClient
from nbgrader_course import (COURSE, HIDDEN_MARKERS, ROOT, SOLUTION_MARKERS, SOURCE, STUB,
                             copy_course, is_solution, is_test, meta, mini_parent, nbgrader,
                             read)

from tfckd_lite import catalog, grading, locations

NAMES = [entry.name for entry in catalog.ASSIGNMENTS]
# Errors that mean "the answer is missing or wrong" (not "the provided scaffolding broke").
FAILED_TEST_ERRORS = {"NotImplementedError", "AssertionError"}


def _source_notebook(name: str):
    return read(catalog.assignment_notebook(name))


def _execute(path: Path, timeout: int = 600):
    """Run a notebook top to bottom in its own folder, keeping going after errors (as nbgrader's
    autograder does); returns the executed notebook."""
    nb = read(path)
    NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb


def _error(cell):
    """``(ename, evalue)`` of a cell's error output, or None."""
    for output in cell.get("outputs", []):
        if output.output_type == "error":
            return output.ename, output.evalue
    return None


def _label(cell, index: int) -> str:
    return f"cell {index} ({meta(cell).get('grade_id', 'no grade_id')})"


@pytest.fixture
def data_env(request, monkeypatch):
    """Point a4_ablation (whose kernel inherits this environment) at the session's mini set."""
    if request.node.callspec.params["name"] == "a4_ablation":
        mini = request.getfixturevalue("mini")
        monkeypatch.setenv(locations.DATA_ENV, str(mini_parent(mini)))


# ---------------------------------------------------------------- catalog, guide and metadata

def test_catalog_lists_every_assignment_on_disk():
    on_disk = sorted(p.name for p in SOURCE.iterdir() if p.is_dir())
    assert on_disk == sorted(NAMES), f"source/ holds {on_disk}, catalog.ASSIGNMENTS {NAMES}"
    for name in NAMES:
        notebooks = sorted(p.name for p in (SOURCE / name).glob("*.ipynb"))
        assert notebooks == [f"{name}.ipynb"], f"{name}: expected one notebook named after it"


def test_guide_shows_the_assignment_table_and_the_make_target():
    guide = (COURSE / "README.md").read_text(encoding="utf-8")
    assert catalog.assignment_table_markdown() in guide, (
        "notebooks/assignments/README.md is out of date: paste "
        "tfckd_lite.catalog.assignment_table_markdown()")
    assert "make assignments" in guide
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^assignments:", makefile, re.M), "the Makefile has no 'assignments' target"


@pytest.mark.parametrize("name", NAMES)
def test_nbgrader_metadata_is_sane(name):
    from nbgrader.nbgraderformat import MetadataValidator

    nb = _source_notebook(name)
    MetadataValidator().validate_nb(nb)            # nbgrader's own checks (types, duplicate ids)
    ids, tests, solutions, written = [], 0, 0, 0
    for index, cell in enumerate(nb.cells):
        info, label = meta(cell), _label(cell, index)
        text = cell.source
        assert info, f"{name} {label}: every cell carries nbgrader metadata (read-only if provided)"
        assert info["schema_version"] == 3, f"{name} {label}: schema_version must be 3"
        assert info["grade_id"].startswith(name.split("_")[0] + "_"), \
            f"{name} {label}: grade ids start with the assignment's prefix (unique course-wide)"
        ids.append(info["grade_id"])
        if info["grade"]:
            assert info.get("points", 0) > 0, f"{name} {label}: a graded cell needs points > 0"
        if is_test(cell):
            tests += 1
            assert info["locked"], f"{name} {label}: autograder tests must be locked"
            assert solutions, f"{name} {label}: a test cell comes before any solution cell"
            assert not any(m in text for m in SOLUTION_MARKERS), f"{name} {label}"
        elif cell.cell_type == "code" and is_solution(cell):
            solutions += 1
            assert not info["locked"] and not info["grade"], f"{name} {label}"
            assert all(m in text for m in SOLUTION_MARKERS), \
                f"{name} {label}: a solution cell needs BEGIN/END SOLUTION markers"
            assert STUB not in text, f"{name} {label}: the instructor version holds the answer"
        elif cell.cell_type == "markdown" and info["grade"]:
            written += 1
            assert is_solution(cell) and not info["locked"], f"{name} {label}"
        else:
            assert info["locked"] and not info["grade"] and not is_solution(cell), \
                f"{name} {label}: provided cells are read-only"
            assert not any(m in text for m in SOLUTION_MARKERS + HIDDEN_MARKERS), \
                f"{name} {label}: solution or hidden-test markers outside a graded cell"
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, \
                f"{name} {label}: store the notebook without outputs"
    assert len(ids) == len(set(ids)), f"{name}: duplicate grade ids"
    assert tests >= 3 and solutions >= 3 and written >= 1, \
        f"{name}: {tests} test cells, {solutions} solution cells, {written} written answers"
    auto, manual = catalog.assignment_points(catalog.assignment_notebook(name))
    assert auto >= 10 and manual > 0, f"{name}: {auto} autograded and {manual} written points"


def test_grade_ids_are_unique_across_the_course():
    ids = [meta(cell)["grade_id"] for name in NAMES for cell in _source_notebook(name).cells]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    assert not duplicates, f"grade ids used twice: {duplicates}"


# ---------------------------------------------------------------- instructor versions

@pytest.mark.parametrize("name", NAMES)
def test_instructor_version_passes_all_its_tests(name, tmp_path, data_env):
    shutil.copytree(SOURCE / name, tmp_path / name)
    nb = _execute(tmp_path / name / f"{name}.ipynb")
    failures = [f"{_label(cell, i)}: {error[0]}: {error[1][:300]}"
                for i, cell in enumerate(nb.cells) if (error := _error(cell))]
    assert not failures, f"{name} (instructor version) has failing cells:\n" + "\n".join(failures)


# ---------------------------------------------------------------- student versions

@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    """Student versions of every assignment, made by nbgrader with the course's config."""
    course = copy_course(tmp_path_factory.mktemp("course"))
    # One call for all assignments; --no-db: the gradebook is not needed to make the notebooks.
    nbgrader(course, "generate_assignment", "*", "--no-db", "--force", timeout=300)
    for name in NAMES:
        assert (course / "release" / name / f"{name}.ipynb").is_file(), f"{name} not released"
    return course / "release"


def _solution_lines(nb) -> tuple[set[str], set[str]]:
    """Lines inside answers (solution regions, hidden tests, written answers) and lines
    elsewhere, stripped; only lines long enough to be specific."""
    inside, outside = set(), set()
    for cell in nb.cells:
        if cell.cell_type == "markdown" and meta(cell).get("grade"):
            inside.update(line.strip() for line in cell.source.splitlines())
            continue
        region = None
        for line in cell.source.splitlines():
            stripped = line.strip()
            if stripped in (SOLUTION_MARKERS[0], HIDDEN_MARKERS[0]):
                region = stripped
            elif stripped in (SOLUTION_MARKERS[1], HIDDEN_MARKERS[1]):
                region = None
            else:
                (inside if region else outside).add(stripped)
    specific = {line for line in inside - outside if len(line) >= 12}
    return specific, outside


@pytest.mark.parametrize("name", NAMES)
def test_student_version_contains_no_answer(name, release):
    source, student = _source_notebook(name), read(release / name / f"{name}.ipynb")
    answers, _ = _solution_lines(source)
    assert answers, f"{name}: no answer lines found in the source"
    text = "\n".join(cell.source for cell in student.cells)
    for marker in SOLUTION_MARKERS + HIDDEN_MARKERS:
        assert marker not in text, f"{name}: the student version still holds {marker!r}"
    leaked = sorted(line for line in answers if line in text)
    assert not leaked, f"{name}: answer lines in the student version: {leaked[:5]}"
    assert [is_test(c) for c in student.cells] == [is_test(c) for c in source.cells], \
        f"{name}: the student version lost or gained test cells"
    for index, cell in enumerate(student.cells):
        if cell.cell_type == "code" and is_solution(cell):
            assert STUB in cell.source, f"{name} {_label(cell, index)}: no stub left to fill in"
        if cell.cell_type == "markdown" and meta(cell).get("grade"):
            assert cell.source.strip() == "YOUR ANSWER HERE", f"{name} {_label(cell, index)}"


@pytest.mark.parametrize("name", NAMES)
def test_student_version_fails_every_test(name, release, tmp_path, data_env):
    shutil.copytree(release / name, tmp_path / name)
    nb = _execute(tmp_path / name / f"{name}.ipynb")
    problems = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        error, label = _error(cell), _label(cell, index)
        if is_test(cell):
            if error is None:
                problems.append(f"{label}: this autograder test PASSES on the blank student "
                                f"version (its answer is given away, or it tests nothing)")
            elif error[0] not in FAILED_TEST_ERRORS:
                problems.append(f"{label}: fails with {error[0]}: {error[1][:200]} instead of "
                                f"the stub's NotImplementedError or an AssertionError")
        elif error is not None and error[0] != "NotImplementedError":
            problems.append(f"{label}: a provided cell breaks in the student version: "
                            f"{error[0]}: {error[1][:200]}")
    assert not problems, f"{name} (student version):\n" + "\n".join(problems)


# ---------------------------------------------------------------- grading helpers and points

def test_assert_matches_names_what_differs():
    expected = torch.ones(2, 3)
    grading.assert_matches(expected.clone(), expected, "same")
    with pytest.raises(AssertionError, match=r"f\(x\) has shape \(3, 2\), but the expected"):
        grading.assert_matches(torch.ones(3, 2), expected, "f(x)")
    with pytest.raises(AssertionError, match="should return a torch.Tensor, but it returned list"):
        grading.assert_matches([1.0], expected, "f(x)")
    with pytest.raises(AssertionError, match="f\\(x\\) differs from the reference result"):
        grading.assert_matches(expected + 0.1, expected, "f(x)")
    with pytest.raises(AssertionError, match="dtype"):
        grading.assert_matches(expected.double(), expected, "f(x)")
    with pytest.raises(ValueError, match="both rtol and atol"):
        grading.assert_matches(expected, expected, "f(x)", rtol=1e-3)


def test_assert_raises_passes_stubs_through_and_names_wrong_errors():
    def stub(x):
        raise NotImplementedError()

    def wrong(x):
        raise TypeError("bad type")

    assert isinstance(grading.assert_raises(ValueError, int, "seven"), ValueError)
    with pytest.raises(NotImplementedError):      # a stub is never "the right error"
        grading.assert_raises(RuntimeError, stub, 1)
    with pytest.raises(AssertionError, match="should raise ValueError, but it raised TypeError"):
        grading.assert_raises(ValueError, wrong, 1)
    with pytest.raises(AssertionError, match="returned normally"):
        grading.assert_raises(ValueError, abs, -1, what="abs(-1)")


def test_assert_own_work_catches_calls_into_the_library():
    namespace = {}
    exec("import torch\n"
         "import tfckd_lite.distill as lib\n"
         "from tfckd_lite.distill import time_relation as tr\n"
         "def honest(x):\n    return torch.softmax(x, -1)\n"
         "def aliased(x):\n    return tr(x)\n"
         "def nested(x):\n    def inner(y):\n        return lib.time_relation(y)\n"
         "    return inner(x)\n", namespace)
    grading.assert_own_work(namespace["honest"])
    for name in ("aliased", "nested"):
        with pytest.raises(AssertionError, match="uses the library's own implementation"):
            grading.assert_own_work(namespace[name])
    grading.assert_own_work(namespace["aliased"],
                            allowed=("tfckd_lite.distill.relations.time_relation",))
    with pytest.raises(TypeError):
        grading.assert_own_work(print)


def test_assignment_points_reads_the_metadata(tmp_path):
    cells = [{"cell_type": "code", "metadata": {"nbgrader": {"grade": True, "points": 2}}},
             {"cell_type": "code", "metadata": {"nbgrader": {"grade": False}}},
             {"cell_type": "markdown", "metadata": {"nbgrader": {"grade": True, "points": 1.5}}},
             {"cell_type": "markdown", "metadata": {}}]
    path = tmp_path / "x.ipynb"
    path.write_text(json.dumps({"cells": cells}))
    assert catalog.assignment_points(path) == (2.0, 1.5)
    cells[0]["metadata"]["nbgrader"].pop("points")
    path.write_text(json.dumps({"cells": cells}))
    with pytest.raises(ValueError, match="has no points"):
        catalog.assignment_points(path)
