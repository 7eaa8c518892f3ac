"""Real hubs for the dashboard tests, and a count of what a process has running."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.lab.processes import children
from wslab.hub import Hub

# Permissive limits: one test reconnects its load clients from one address several times.
HUB_SETTINGS: dict[str, Any] = {
    "port": 0,
    "auth_required": False,
    "connections_per_ip_per_minute": 100_000,
    "max_connections_per_ip": 20_000,
    "rate_messages_per_second": 1000,
    "rate_burst": 1000,
    "ping_interval": 0.5,
}


@pytest.fixture
async def hub(tmp_path: Path, unique_name: str) -> AsyncIterator[Hub]:
    hub = await Hub.start(database=f"sqlite:///{tmp_path / 'chat.db'}",
                          broker=f"memory://{unique_name}", **HUB_SETTINGS)
    try:
        yield hub
    finally:
        await hub.stop()


def running_things() -> dict[str, Any]:
    """Tasks (but the current one), threads and child processes of this process, right now.

    The loop's default executor threads (``asyncio_N``) are left out: the loop starts them on
    first use of ``to_thread`` and keeps them for its lifetime, whoever asked first."""
    current = asyncio.current_task()
    return {
        "tasks": sorted(repr(t.get_coro()) for t in asyncio.all_tasks() if t is not current),
        "threads": sorted(
            t.name for t in threading.enumerate() if not t.name.startswith("asyncio_")
        ),
        "children": children(),
    }


async def settle_until(predicate: Any, timeout: float = 30.0, step: float = 0.1) -> bool:
    """Wait until ``predicate()`` holds (a generous bound, not a timing assertion)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if predicate():
            return True
        await asyncio.sleep(step)
    return bool(predicate())


@pytest.fixture
def running() -> Any:
    """``running()``: the tasks, threads and child processes alive now."""
    return running_things


@pytest.fixture
def until() -> Any:
    """``await until(predicate)``: wait (boundedly) for a condition."""
    return settle_until


@pytest.fixture
def hub_settings() -> dict[str, Any]:
    """The settings of the ``hub`` fixture, for a test that starts (and stops) its own hub."""
    return dict(HUB_SETTINGS)
