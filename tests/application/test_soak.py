"""A short soak (``benchmarks/soak.py``): ~20 s of tiny load with every kind of fault once.

Bounds, not timings: the hub process's open file descriptors, event-loop tasks and RSS at the
end (faults off, clients back) stay within a small margin of the first sample, and the history checker finds
no acknowledged message lost or duplicated and every room in order.
"""

from __future__ import annotations

import pytest

from benchmarks.soak import soak

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

#: File descriptors the hub may hold at the end beyond its first sample (a reconnecting client,
#: a hostile one not yet reaped).
FD_MARGIN = 12
#: Event-loop tasks the hub may hold at the end beyond its first sample (as for fds).
TASK_MARGIN = 12
#: Resident memory the hub may gain in a short soak (caches, allocator high-water marks).
RSS_MARGIN_MB = 40.0


async def test_short_soak_keeps_fds_memory_and_history() -> None:
    result = await soak(20, clients=3, pause=0.1, fault_every=3, fault_seconds=2,
                        sample_every=2, hostiles=3, echo=False)  # fmt: skip
    first, last = result.samples[0], result.samples[-1]
    assert last.fault == "end"
    assert last.fds <= first.fds + FD_MARGIN, [s.fds for s in result.samples]
    assert 0 < last.tasks <= first.tasks + TASK_MARGIN, [s.tasks for s in result.samples]
    assert last.rss_mb <= first.rss_mb + RSS_MARGIN_MB, [s.rss_mb for s in result.samples]
    assert result.acks > 0
    assert result.valid, result.verdict
