"""HubProcess: a wslab serve process that listens, dies with SIGKILL, comes back on its port."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wslab.foundation.errors import ConfigError
from wslab.infrastructure.engines import connect
from wslab.lab.hubproc import HubProcess


async def hello(url: str) -> dict:
    conn = await connect(url)
    try:
        return json.loads(await conn.recv())
    finally:
        conn.abort()


async def test_kill_and_restart_on_the_same_port(tmp_path: Path) -> None:
    hub = HubProcess(database=f"sqlite:///{tmp_path / 'chat.db'}")
    await hub.start()
    try:
        port, first_pid = hub.port, hub.pid
        assert (await hello(hub.ws_url))["type"] == "system:connected"
        hub.kill()
        assert not hub.running and hub.process is not None and hub.process.returncode == -9
        with pytest.raises(OSError):
            await connect(hub.ws_url, open_timeout=2)
        await hub.start()
        assert hub.port == port and hub.pid != first_pid and hub.starts == 2
        assert (await hello(hub.ws_url))["type"] == "system:connected"
    finally:
        code = await hub.stop()
    assert code == 0 and not hub.running  # SIGTERM: a graceful exit


async def test_a_hub_that_cannot_start_says_why(tmp_path: Path) -> None:
    hub = HubProcess(database="nosuchscheme://x")
    with pytest.raises(ConfigError, match="exited"):
        await hub.start()
    assert not hub.running
    with pytest.raises(ConfigError):
        HubProcess(database="sqlite://", startup_timeout=0)
