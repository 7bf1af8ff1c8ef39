"""pytest: nbval must not collect the assignment notebooks.

``pytest tests notebooks --nbval-lax`` would otherwise run every ``.ipynb`` below this folder:
the instructor versions in ``source/`` (already executed, with stricter checks, by
``tests/test_assignments.py``) and whatever nbgrader writes here (``release/`` student versions,
whose stubs raise by design, and ``submitted/``, ``autograded/``, ``feedback/``).
"""

collect_ignore_glob = ["*"]
