"""The one-line error a command of ``python -m tfckd_lite`` prints on bad input (tests' helper)."""


def error_line(capsys) -> str:
    """The single ``error: ...`` line on stderr (progress bars left out); fails otherwise."""
    err = capsys.readouterr().err
    lines = [part for line in err.splitlines() for part in line.split("\r")
             if part.strip() and "%|" not in part]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]
