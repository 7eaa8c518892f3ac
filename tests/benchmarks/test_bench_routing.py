"""A CI-sized run of benchmarks/bench_routing.py, so the benchmark never rots.

Counts, not timings: with each room on one hub of H and every hub alike, a hub receives 1/H of
the room traffic it received on the hub-wide channel, exactly.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_routing.py"

pytestmark = [pytest.mark.timeout(120)]


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_routing", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
async def test_smoke_run_over_the_memory_broker() -> None:
    bench = load_bench()
    args = bench.parse_args(
        [
            "--broker",
            "memory",
            "--hubs",
            "2",
            "4",
            "--rooms",
            "4",
            "--span",
            "1",
            "--users",
            "2",
            "--rooms-per-user",
            "1",
            "--messages",
            "2",
            "--dms",
            "1",
        ]
    )
    rows = {(r["hubs"], r["traffic"]): r for r in await bench.measure(args)}
    for hubs in (2, 4):
        room = rows[hubs, "room"]
        assert room["per-room msgs"] > 0
        assert room["msgs ratio"] == pytest.approx(hubs)
        assert rows[hubs, "direct"]["msgs ratio"] >= 1.0


def test_bad_arguments_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_bench()
    with pytest.raises(SystemExit):
        bench.parse_args(["--hubs", "2", "--span", "3"])
    assert "--span must be between 1 and the number of hubs (2)" in capsys.readouterr().err
