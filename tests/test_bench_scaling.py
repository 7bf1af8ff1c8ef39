"""``bench/bench_scaling.py`` runs end to end (one torchrun launch of one step; no timing is
checked: speed belongs to the benchmark's printed ratios, not to tests)."""

import importlib.util
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location(
    "bench_scaling", Path(__file__).resolve().parents[1] / "bench" / "bench_scaling.py")
bench_scaling = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(bench_scaling)


def test_one_launch_prints_a_row_with_a_positive_throughput(capsys):
    bench_scaling.main(["--methods", "none", "--ranks", "1", "--steps", "1", "--batch", "1",
                        "--seconds", "0.5", "--timeout", "120"])
    rows = [line.split() for line in capsys.readouterr().out.splitlines()
            if line.startswith("none ")]
    assert len(rows) == 1
    method, ranks, step, audio, ratio = rows[0]
    assert ranks == "1" and float(step) > 0 and float(audio) > 0 and ratio == "1.00"


def test_bad_arguments_are_refused():
    with pytest.raises(SystemExit):
        bench_scaling.main(["--steps", "0"])
