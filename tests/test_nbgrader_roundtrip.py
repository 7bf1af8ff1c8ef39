"""The instructor's round trip with nbgrader's real command line and gradebook (issue 26, §3).

In a temporary course folder, exactly as the instructor guide (notebooks/assignments/README.md)
describes a course without JupyterHub: ``nbgrader generate_assignment`` for every assignment
(with the gradebook), two submissions per assignment placed at
``submitted/<student>/<assignment>/`` (what ``collect`` or ``zip_collect`` would produce),
``nbgrader autograde --create``, then ``nbgrader export`` to ``grades.csv``.

The submissions are made from the released student versions:

* ``full-marks`` fills every stub with the instructor's solution code and every written answer
  with the model answer: every autograder test passes, the written answers wait for the
  formgrader (they count 0 until graded by hand);
* ``forgot-return`` does the same except that its last function returns nothing (every ``return``
  of the last answer cell dropped), and leaves the written answers blank: the tests after that
  answer fail, everything before it passes, and nothing waits for a hand grade.

The expected points are read from the source notebooks' nbgrader metadata (the points of each
autograder test cell), never typed in.
"""

import csv
import re

import nbformat
import pytest
from nbgrader_course import SOLUTION_MARKERS, SOURCE, copy_course, is_solution, is_test, meta, \
    mini_parent, nbgrader, read

from tfckd_lite import catalog, locations

NAMES = [entry.name for entry in catalog.ASSIGNMENTS]
STUDENTS = ("full-marks", "forgot-return")
BLANK_ANSWER = "YOUR ANSWER HERE"


def _answer_code(cell) -> str:
    """What a student types into a stub: the instructor's solution without nbgrader's markers."""
    return "\n".join(line for line in cell.source.splitlines()
                     if line.strip() not in SOLUTION_MARKERS)


def _without_returns(code: str) -> str:
    """The same code with every ``return <value>`` turned into a discarded expression."""
    changed, count = re.subn(r"^(\s*)return\s+", r"\1_ = ", code, flags=re.M)
    assert count, "the last answer cell has no return statement to forget"
    compile(changed, "<forgot-return>", "exec")
    return changed


def _last_answer_id(source) -> str:
    return [meta(c)["grade_id"] for c in source.cells
            if c.cell_type == "code" and is_solution(c)][-1]


def _submission(release, source, student: str):
    """A student's notebook: the released version with the stubs filled in."""
    answers = {meta(c)["grade_id"]: c for c in source.cells if is_solution(c)}
    last = _last_answer_id(source)
    for cell in release.cells:
        if not is_solution(cell):
            continue
        answer = answers[meta(cell)["grade_id"]]
        if cell.cell_type == "markdown":
            if student == "full-marks":
                cell.source = answer.source
        else:
            code = _answer_code(answer)
            cell.source = _without_returns(code) if (student == "forgot-return" and
                                                     meta(cell)["grade_id"] == last) else code
    return release


def _expected_test_points(source, student: str) -> dict[str, float]:
    """Points each autograder test cell should earn: all of them, or none after the wrong answer."""
    expected, wrong_from = {}, None
    for index, cell in enumerate(source.cells):
        if student == "forgot-return" and meta(cell).get("grade_id") == _last_answer_id(source):
            wrong_from = index
        if is_test(cell):
            earned = wrong_from is None or index < wrong_from
            expected[meta(cell)["grade_id"]] = float(meta(cell)["points"]) if earned else 0.0
    return expected


@pytest.fixture(scope="module")
def course(tmp_path_factory, mini):
    """A course folder after generate, submit, autograde and export; a4's kernels use ``mini``."""
    folder = copy_course(tmp_path_factory.mktemp("roundtrip"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(locations.DATA_ENV, str(mini_parent(mini)))   # inherited by the kernels
        for name in NAMES:                             # as `make assignments` runs it
            nbgrader(folder, "generate_assignment", name, "--force", timeout=300)
        for name in NAMES:
            source = read(SOURCE / name / f"{name}.ipynb")
            for student in STUDENTS:
                release = read(folder / "release" / name / f"{name}.ipynb")
                target = folder / "submitted" / student / name / f"{name}.ipynb"
                target.parent.mkdir(parents=True)
                nbformat.write(_submission(release, source, student), target)
        for name in NAMES:
            nbgrader(folder, "autograde", name, "--create", timeout=900)
        nbgrader(folder, "export", timeout=300)
    return folder


def test_generate_assignment_records_every_test_in_the_gradebook(course):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for name in NAMES:
            source = read(SOURCE / name / f"{name}.ipynb")
            notebook = gradebook.find_notebook(name, name)
            recorded = sorted(cell.name for cell in notebook.grade_cells)
            graded = sorted(meta(c)["grade_id"] for c in source.cells if meta(c).get("grade"))
            assert recorded == graded, f"{name}: the gradebook holds {recorded}"


def test_exported_grades_hold_the_expected_points(course):
    with open(course / "grades.csv", newline="") as handle:
        rows = {(row["assignment"], row["student_id"]): row for row in csv.DictReader(handle)}
    assert sorted(rows) == sorted((name, s) for name in NAMES for s in STUDENTS)
    for name in NAMES:
        source = read(SOURCE / name / f"{name}.ipynb")
        auto, manual = catalog.assignment_points(SOURCE / name / f"{name}.ipynb")
        full = sum(_expected_test_points(source, "full-marks").values())
        wrong = sum(_expected_test_points(source, "forgot-return").values())
        assert full == auto and 0 < wrong < full, (name, auto, full, wrong)
        for student, expected in (("full-marks", full), ("forgot-return", wrong)):
            row = rows[(name, student)]
            assert float(row["max_score"]) == auto + manual, f"{name}: {row}"
            assert float(row["score"]) == expected, \
                f"{name}, {student}: grades.csv says {row['score']} points, expected {expected}"


@pytest.mark.parametrize("student", STUDENTS)
def test_gradebook_scores_each_test_cell_and_flags_written_answers(course, student):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for name in NAMES:
            source = read(SOURCE / name / f"{name}.ipynb")
            expected = _expected_test_points(source, student)
            got = {grade_id: gradebook.find_grade(grade_id, name, name, student).score
                   for grade_id in expected}
            assert got == expected, f"{name}, {student}: per-cell scores differ"
            # the guide: a filled-in written answer goes to the formgrader, a blank one scores 0
            submission = gradebook.find_submission_notebook(name, name, student)
            assert submission.needs_manual_grade == (student == "full-marks"), \
                f"{name}, {student}: needs_manual_grade is {submission.needs_manual_grade}"
