"""A CI-sized run of ``benchmarks/bench_scale.py``: it must keep working, whatever it measures.

Tiny N, one round (``--quick``): a few seconds. Nothing here looks at the numbers — only that
every row ran against both servers and the report came out whole.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_scale_benchmark_runs_every_row_against_both_servers(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_scale.py"), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(out.read_text())
    for row in ("connect_10", "fanout_5"):
        assert set(results[row]) == {"websockets", "wslab"}, row
    # CPU is read from /proc in clock ticks (10 ms): ten connections may cost less than one.
    assert 0 <= results["connect_10"]["wslab"]["cpu_ms"] < float("inf")
    assert results["fanout_5"]["wslab"]["per_s"] > 0
    # Both tables were printed, with a ratio on the hub's lines.
    assert "| 10 | wslab |" in done.stdout and "| 5 | wslab |" in done.stdout
