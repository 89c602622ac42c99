"""`make bench` keeps working: the suite's smoke run (`--quick`) finishes and writes its table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_suite_quick_run(tmp_path):
    output = tmp_path / "results.md"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "run.py"),
            "--quick",
            "--silent",
            "--workloads",
            "a,b,c",
            "--contenders",
            "hand,pyblaze_pl,pyblaze_pl_trainer",
            "--output",
            str(output),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    text = output.read_text()
    for heading in ("## Workload (a)", "## Workload (b)", "## Workload (c)"):
        assert heading in text
    assert "| pyblaze_pl `fit` (runner='auto': on Lightning Fabric) |" in text
    assert "| pyblaze_pl `fit`, runner='trainer' |" in text
