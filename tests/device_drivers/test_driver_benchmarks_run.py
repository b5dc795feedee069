"""The driver benchmarks still run (tiny sizes): they print the load average and the driver/raw
ratios with their spread. Only that they run and report is checked, never a timing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("script", "args", "expected"),
    [
        ("epat_roundtrip.py", ["--rounds", "2", "--per-round", "20"], "ratio driver/raw: median"),
        ("emtt_query.py", ["--rounds", "2", "--queries", "20"], "ratio (median)"),
    ],
)
def test_a_driver_benchmark_runs_and_reports_its_ratio_and_the_load(
    script: str, args: list[str], expected: str
) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode in (0, 1), done.stderr  # 1: a target missed, which is not checked here
    assert expected in done.stdout and "load average" in done.stdout
    assert "Traceback" not in done.stderr
