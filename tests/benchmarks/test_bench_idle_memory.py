"""A CI-sized run of ``benchmarks/bench_idle_memory.py``: it must keep working, whatever it measures.

Ten connections: a few seconds. Nothing here looks at the byte counts — only that the breakdown
came out, and that the idle connections held no task of their own (a design property, not a
number: the hub hands an authenticated connection over instead of parking a task on it).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_idle_memory_breakdown_runs(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_idle_memory.py"),
         "--connections", "10", "--top", "5"],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    match = re.search(r"10 idle connections \(10 held by the server\), (-?\d+) more asyncio tasks", done.stdout)
    assert match, done.stdout
    assert int(match.group(1)) < 10  # fewer tasks than connections: none is parked on one
    assert "B per connection" in done.stdout
