"""benchmarks/gpu_throughput.py runs on the CPU (tiny models, a few batches), so that the GPU
benchmark cannot rot between the sessions that have a GPU."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_throughput.py"


@pytest.mark.slow
def test_the_gpu_benchmark_runs_on_the_cpu():
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--smoke"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if re.match(r"\| (demo|vit-b16) ", line)]
    assert len(rows) == 2, done.stdout
    for row in rows:
        forward, pipeline = (float(cell.replace(",", "")) for cell in row.split("|")[3:5])
        assert forward > 0 and pipeline > 0
