"""How much does ``EventLog.record`` cost on the engine's hot path?

Measures, in one run and on the same machine, the cost per call of recording a frame event at
level ``"frames"`` (kept), ``"lifecycle"`` (filtered out), ``"off"`` (filtered out), of the
``enabled_for`` guard callers use before building fields, and of a bare ``deque.append`` of a
tuple as the floor, and prints each as nanoseconds and as a ratio to that floor.

    python benchmarks/bench_eventlog.py [--number N] [--repeat R]

A measurement, not a test: the numbers depend on the machine, so nothing here asserts on them.
"""

from __future__ import annotations

import argparse
import time
import timeit
from collections import deque

from wslab.infrastructure.events import EventKind, EventLog


def measure(stmt: str, env: dict[str, object], number: int, repeat: int) -> float:
    """The best of ``repeat`` runs of ``number`` calls, in nanoseconds per call."""
    timer = timeit.Timer(stmt, globals=env)
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=200_000, help="calls per run")
    parser.add_argument("--repeat", type=int, default=5, help="runs; the best one counts")
    args = parser.parse_args()

    kind = EventKind.FRAME_IN
    baseline: deque[object] = deque(maxlen=10_000)
    env: dict[str, object] = {
        "kind": kind,
        "baseline": baseline,
        "time": time,
        "frames": EventLog(level="frames"),
        "lifecycle": EventLog(level="lifecycle"),
        "off": EventLog(level="off"),
    }
    fields = "opcode=1, fin=True, rsv=0, masked=True, length=125"
    cases = [
        (
            "deque.append (baseline)",
            "baseline.append((time.monotonic(), kind, 'c1', "
            "dict(opcode=1, fin=True, rsv=0, masked=True, length=125)))",
        ),
        ("record, level=frames (kept)", f"frames.record(kind, 'c1', {fields})"),
        ("record, level=lifecycle (dropped)", f"lifecycle.record(kind, 'c1', {fields})"),
        ("record, level=off (dropped)", f"off.record(kind, 'c1', {fields})"),
        ("enabled_for guard, level=off", "off.enabled_for(kind)"),
    ]
    results = [(label, measure(stmt, env, args.number, args.repeat)) for label, stmt in cases]
    floor = results[0][1]
    print(f"{'case':<36} {'ns/call':>10} {'x baseline':>11}")
    for label, ns in results:
        print(f"{label:<36} {ns:>10.0f} {ns / floor:>11.2f}")


if __name__ == "__main__":
    main()
