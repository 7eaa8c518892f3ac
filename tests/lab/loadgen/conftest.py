"""Shared by the load-generator tests: a hub raised for load; no worker outlives a run."""

from __future__ import annotations

import multiprocessing
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.lab.processes import children
from wslab.hub import Hub


@pytest.fixture
async def hub(tmp_path: Path, unique_name: str) -> AsyncIterator[Hub]:
    """A hub whose admission and rate limits are raised so the load is not throttled."""
    hub = await Hub.start(
        port=0,
        database=f"sqlite:///{tmp_path / 'chat.db'}",
        broker=f"memory://{unique_name}",
        connections_per_ip_per_minute=100_000,
        max_connections_per_ip=20_000,
        rate_messages_per_second=1000,
        rate_burst=1000,
    )
    try:
        yield hub
    finally:
        await hub.stop()
        # Every worker is reaped when the run ends, whatever happened.
        assert multiprocessing.active_children() == []
        assert children() == []


def _is_resource_tracker(pid: str) -> bool:
    # multiprocessing's own long-lived helper, started once per interpreter: not a worker.
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"resource_tracker" in f.read()
    except OSError:
        return False
