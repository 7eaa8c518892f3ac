"""Shared fixtures: real services (PostgreSQL, Redis, Chromium) and how to treat their absence.

On a user's machine a test that needs a service that is not running is skipped with the reason.
In CI ``WSLAB_REQUIRE_SERVICES=1`` turns that skip into a failure, so a missing service can
never hide a broken feature.
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

POSTGRES_DSN = os.environ.get("WSLAB_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("WSLAB_TEST_REDIS", "redis://127.0.0.1:6379/0")
CHROMIUM_PATH = os.environ.get("WSLAB_TEST_CHROMIUM", "/usr/bin/chromium")


def services_required() -> bool:
    """True in CI, where a missing service is a failure rather than a skip."""
    return os.environ.get("WSLAB_REQUIRE_SERVICES", "") not in ("", "0", "false", "no")


def need_service(available: bool, reason: str) -> None:
    """Skip (locally) or fail (in CI) when a required service is absent."""
    if available:
        return
    if services_required():
        pytest.fail(f"{reason} (WSLAB_REQUIRE_SERVICES=1 makes this a failure)")
    pytest.skip(reason)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@pytest.fixture
def postgres_dsn() -> str:
    """The DSN of the real PostgreSQL server used by the tests."""
    need_service(port_open("127.0.0.1", 5432), "PostgreSQL is not running on 127.0.0.1:5432")
    return POSTGRES_DSN


@pytest.fixture
def redis_url() -> str:
    """The URL of the real Redis server used by the tests."""
    need_service(port_open("127.0.0.1", 6379), "Redis is not running on 127.0.0.1:6379")
    return REDIS_URL


@pytest.fixture
def chromium_path() -> str:
    """Path of the Chromium binary driven by Playwright in browser tests."""
    need_service(
        os.path.exists(CHROMIUM_PATH) or shutil.which("chromium") is not None,
        f"Chromium is not installed at {CHROMIUM_PATH}",
    )
    try:
        import playwright  # noqa: F401
    except ImportError:
        need_service(False, "the playwright package is not installed")
    return CHROMIUM_PATH


@pytest.fixture
def unique_name() -> str:
    """A name no other test run uses: for rooms, channels and schemas on shared services."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def pg_schema(postgres_dsn: str, unique_name: str) -> AsyncIterator[str]:
    """A fresh PostgreSQL schema, dropped after the test, so runs never see each other's rows."""
    asyncpg = pytest.importorskip("asyncpg")
    conn = await asyncpg.connect(postgres_dsn)
    try:
        await conn.execute(f'CREATE SCHEMA "{unique_name}"')
        yield unique_name
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{unique_name}" CASCADE')
        await conn.close()


@pytest.fixture
async def started(settings: dict[str, Any]) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    """``await started(**overrides)``: a running hub on the module's ``settings``, stopped after.

    Each test module that uses it defines its own ``settings`` fixture.
    """
    from wslab.hub import Hub

    hubs: list[Any] = []

    async def start(**overrides: Any) -> Any:
        hub = await Hub.start(**{**settings, **overrides})
        hubs.append(hub)
        return hub

    yield start
    for hub in hubs:
        await hub.stop()
