"""RunFolder: the one place that names a run folder's files, and what those files say."""

import io
import json
import tokenize
from pathlib import Path

from tfckd_lite.run_folder import RunFolder

ROOT = Path(__file__).resolve().parents[1]


def test_paths_and_what_the_history_says(tmp_path):
    run = RunFolder(tmp_path)
    assert run.best == tmp_path / "best.safetensors"
    assert run.best_description == run.best.with_suffix(".json")     # where save_model puts it
    assert run.state.parent == run.history_file.parent == run.test_scores.parent == tmp_path
    assert run.history() == [] and run.epochs_done() == 0 and not run.finished(1)
    run.history_file.write_text(json.dumps([{"epoch": 1}, {"epoch": 2}]))
    assert run.epochs_done() == 2 and run.finished(2) and not run.finished(3)
    assert RunFolder(str(tmp_path)) == run and len({run, RunFolder(tmp_path)}) == 1


def test_an_unfinished_run_without_its_state_is_orphaned(tmp_path):
    run = RunFolder(tmp_path)
    assert not run.orphaned(2)                          # an empty folder: nothing to resume
    run.best.write_bytes(b"weights")
    run.history_file.write_text(json.dumps([{"epoch": 1}]))
    assert run.orphaned(2)                              # outputs, no resume state
    assert not run.orphaned(1)                          # finished: nothing to resume either
    run.state.write_bytes(b"state")
    assert not run.orphaned(2)                          # resumable
    assert run.earlier_run_files() == [run.state, run.best, run.history_file]
    assert run.outputs(extras=False) == [run.best, run.best_description, run.history_file]
    assert run.outputs()[-1] == run.best_extras


def _string_literals(path: Path) -> set[str]:
    """Every string literal in a Python file (docstrings included)."""
    found = set()
    for token in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
        if token.type == tokenize.STRING and not token.string.lstrip("rbuRBU").startswith(
                ("f", "F")):
            try:
                found.add(eval(token.string))           # a literal of the file's own source
            except (SyntaxError, ValueError):
                pass
    return found


def test_no_other_module_spells_the_file_names():
    names = {RunFolder.BEST, RunFolder.BEST_DESCRIPTION, RunFolder.BEST_EXTRAS, RunFolder.STATE,
             RunFolder.HISTORY, RunFolder.LOCK, RunFolder.LOG, RunFolder.TEST_SCORES}
    files = [p for folder in ("tfckd_lite", "bench") for p in (ROOT / folder).rglob("*.py")
             if p.name != "run_folder.py"]
    spelled = {str(p.relative_to(ROOT)): sorted(names & _string_literals(p)) for p in files}
    assert {p: n for p, n in spelled.items() if n} == {}
