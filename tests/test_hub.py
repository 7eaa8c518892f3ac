"""The Hub composition root: start and stop, ports, HTTP endpoints, shutdown, a hub in a thread."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from wslab.foundation.codes import CloseCode
from wslab.foundation.errors import ConfigError, ConnectionClosed, DependencyError
from wslab.hub import Hub
from wslab.infrastructure.connection import Connection
from wslab.infrastructure.engines.wslab import connect
from wslab.testing import http_request

pytestmark = pytest.mark.timeout(60)

WAIT = 5.0


# -- helpers ---------------------------------------------------------------------------------------


async def join(hub: Hub, user: str = "alice") -> Connection:
    """A connection authenticated as ``user`` that has seen ``system:connected``."""
    token = hub.token(user)
    conn = await connect(hub.ws_url, headers=[("Authorization", f"Bearer {token}")])
    hello = json.loads(await asyncio.wait_for(conn.recv(), WAIT))
    assert hello["type"] == "system:connected" and hello["user_id"] == user
    return conn


async def close_code(conn: Connection) -> int | None:
    """Read until the hub closes ``conn``; the close code it sent."""

    async def read_all() -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await conn.recv()

    await asyncio.wait_for(read_all(), WAIT)
    await asyncio.wait_for(conn.wait_closed(), WAIT)
    return conn.close_code


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def settings(tmp_path: Path, unique_name: str) -> dict[str, Any]:
    """Settings for a test hub: a free port, a SQLite file and a bus of its own."""
    return {
        "port": 0,
        "database": f"sqlite:///{tmp_path / 'hub.db'}",
        "broker": f"memory://{unique_name}",
        "jwt_secret": "hub-test-secret-0123456789abcdef0123",
    }


# -- start and stop --------------------------------------------------------------------------------


async def test_start_and_stop(settings: dict[str, Any]) -> None:
    hub = await Hub.start(**settings, hub_id="hub-one")
    try:
        assert hub.running
        assert hub.hub_id == "hub-one"
        assert hub.port != 0  # port=0 picked a free one, and the hub reports it
        assert hub.url == f"http://127.0.0.1:{hub.port}"
        assert hub.ws_url == f"ws://127.0.0.1:{hub.port}/ws"
        assert "running" in repr(hub)
        conn = await join(hub)
        assert len(hub.connections) == 1
        await conn.close()
    finally:
        await hub.stop()
    assert not hub.running
    await hub.stop()  # a second stop is harmless
    with pytest.raises(OSError):
        await connect(hub.ws_url, open_timeout=2)


async def test_async_with(settings: dict[str, Any]) -> None:
    async with Hub(**settings) as hub:
        assert hub.running
        conn = await join(hub)
        status, _, _ = await http_request(hub.url, "/healthz", timeout=WAIT)
        assert status == 200
    assert not hub.running
    assert await close_code(conn) == CloseCode.GOING_AWAY


async def test_start_on_an_instance_starts_that_hub(settings: dict[str, Any]) -> None:
    hub = Hub(**settings)
    try:
        assert await hub.start() is hub  # not a second hub built from the class
        assert hub.running
        assert await hub.start() is hub  # starting a running hub again changes nothing
        conn = await join(hub)
        await conn.close()
        with pytest.raises(TypeError, match="takes no settings"):
            await hub.start(port=0)
    finally:
        await hub.stop()
    assert not hub.running


def test_a_script_that_never_stops_its_hub_still_exits(tmp_path: Path) -> None:
    script = tmp_path / "forgetful.py"
    script.write_text(
        "import asyncio\n"
        "from wslab.hub import Hub\n"
        "async def main():\n"
        f"    hub = await Hub.start(port=0, database='sqlite:///{tmp_path / 'f.db'}')\n"
        "    print(hub.port, flush=True)\n"
        "asyncio.run(main())\n"
    )
    # Before, the store's worker thread kept such a script alive at exit, for ever.
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=45
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.split()[0]) > 0


async def test_two_hubs_on_port_zero_get_different_ports(started: Any) -> None:
    first, second = await started(), await started()
    assert first.port != second.port
    assert first.hub_id != second.hub_id
    assert first.running and second.running


async def test_restart_on_the_same_port_replaces_the_old_hub(started: Any) -> None:
    # What re-running a notebook cell does: the old hub gives way instead of failing.
    port = free_port()
    old = await started(port=port)
    conn = await join(old)
    new = await started(port=port)
    assert not old.running
    assert new.running and new.port == port
    assert await close_code(conn) == CloseCode.GOING_AWAY
    fresh = await join(new)
    await fresh.close()


async def test_a_port_held_by_another_program_is_a_clear_error(settings: dict[str, Any]) -> None:
    with socket.socket() as foreign:
        foreign.bind(("127.0.0.1", 0))
        foreign.listen()
        port = foreign.getsockname()[1]
        hub = Hub(**{**settings, "port": port})
        with pytest.raises(ConfigError) as info:
            async with hub:
                pytest.fail("the hub started on a port that is taken")
        assert str(port) in str(info.value) and "in use" in str(info.value)
        assert not hub.running
        assert await hub.store.ping() is False  # what had started was stopped again


async def test_an_unreachable_store_fails_the_start(settings: dict[str, Any]) -> None:
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    with pytest.raises(DependencyError):
        await Hub.start(**{**settings, "database": dead})


# -- HTTP endpoints --------------------------------------------------------------------------------


async def test_healthz(started: Any) -> None:
    hub = await started(hub_id="hub-health")
    status, headers, body = await http_request(hub.url, "/healthz", timeout=WAIT)
    assert status == 200 and headers["content-type"].startswith("application/json")
    health = json.loads(body)
    assert health["status"] == "ok"
    assert health["hub_id"] == "hub-health"
    assert health["store"] == "ok" and health["broker"] == "ok"
    assert health == await hub.health()


async def test_metrics_are_prometheus_text(started: Any) -> None:
    hub = await started()
    conn = await join(hub)
    await conn.send(json.dumps({"type": "chat:message", "content": "counted", "ref": "1"}))
    while json.loads(await asyncio.wait_for(conn.recv(), WAIT)).get("type") != "ack":
        pass
    status, headers, body = await http_request(hub.url, "/metrics", timeout=WAIT)
    assert status == 200
    assert headers["content-type"].startswith("text/plain")
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }
    assert samples["wslab_open_connections", ()] == 1
    assert samples["wslab_connections_total", ()] == 1
    assert samples["wslab_websocket_messages_total", (("direction", "in"),)] >= 1
    assert samples["wslab_store_save_seconds_count", ()] == 1
    await conn.close()


async def test_config_json(started: Any) -> None:
    hub = await started()
    status, _, body = await http_request(hub.url, "/config.json", timeout=WAIT)
    assert status == 200
    assert json.loads(body) == {"auth_required": True, "ws_path": "/ws", "protocol_version": "1.0"}
    assert hub.config.jwt_secret not in body.decode()


async def test_page_and_static_files(started: Any) -> None:
    hub = await started()
    status, headers, body = await http_request(hub.url, "/", timeout=WAIT)
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b"<html" in body.lower()
    for name, kind in (("app.js", "text/javascript"), ("style.css", "text/css")):
        status, headers, body = await http_request(hub.url, f"/static/{name}", timeout=WAIT)
        assert status == 200, name
        assert headers["content-type"].startswith(kind) and body


@pytest.mark.parametrize(
    "path", ["/nowhere", "/static/missing.js", "/static/../hub.py", "/static/%2e%2e/hub.py"]
)
async def test_unknown_paths_are_404(started: Any, path: str) -> None:
    hub = await started()
    status, _, _ = await http_request(hub.url, path, timeout=WAIT)
    assert status == 404


@pytest.mark.parametrize("engine", ["wslab", "websockets"])
async def test_the_websocket_path_without_an_upgrade_is_426(started: Any, engine: str) -> None:
    hub = await started(engine=engine)
    status, headers, body = await http_request(hub.url, "/ws", timeout=WAIT)
    assert status == 426 and headers["upgrade"] == "websocket"
    assert b"WebSocket endpoint" in body


async def test_only_get_is_served(started: Any) -> None:
    hub = await started()
    status, headers, _ = await http_request(hub.url, "/healthz", method="POST", timeout=WAIT)
    assert status == 405 and headers["allow"] == "GET, HEAD"


# -- shutdown --------------------------------------------------------------------------------------


async def test_shutdown_sends_1001_to_every_client(settings: dict[str, Any]) -> None:
    hub = await Hub.start(**settings)
    conns = [await join(hub, user) for user in ("alice", "bob", "carol")]
    await hub.stop()
    codes = await asyncio.gather(*(close_code(c) for c in conns))
    assert codes == [CloseCode.GOING_AWAY] * 3
    assert len(hub.connections) == 0


# -- a hub in a thread -----------------------------------------------------------------------------


async def test_start_in_thread(settings: dict[str, Any]) -> None:
    threaded = await asyncio.to_thread(Hub.start_in_thread, **settings)
    try:
        assert threaded.hub.running
        assert threaded.port == threaded.hub.port != 0
        # A client on this thread's loop talks to the hub on its own loop.
        token = threaded.token("alice", username="Alice")
        conn = await connect(threaded.ws_url, headers=[("Authorization", f"Bearer {token}")])
        hello = json.loads(await asyncio.wait_for(conn.recv(), WAIT))
        assert hello["user_id"] == "alice"

        table = await asyncio.to_thread(threaded.connections)
        assert list(table["user_id"]) == ["alice"]
        events = await asyncio.to_thread(threaded.events)
        assert "connect" in set(events["kind"].astype(str))
        metrics = await asyncio.to_thread(threaded.metrics)
        assert metrics["counters"]["connections_total"][0]["value"] == 1
        assert (await asyncio.to_thread(threaded.health))["status"] == "ok"
        assert await asyncio.to_thread(lambda: threaded.errors) == []
    finally:
        await asyncio.to_thread(threaded.stop)
    assert await close_code(conn) == CloseCode.GOING_AWAY
    assert threaded.loop.is_closed()
    await asyncio.to_thread(threaded.stop)  # stopping twice is harmless


def test_start_in_thread_from_plain_code(settings: dict[str, Any]) -> None:
    # No event loop here at all: the way a script or a blocking cell uses it.
    with Hub.start_in_thread(**settings) as threaded:
        assert threaded.health()["status"] == "ok"
        assert len(threaded.connections()) == 0
        # The views have the shapes of the hub's own, each read on the hub's loop.
        hub = threaded.hub
        assert len(threaded.connections) == len(hub.connections) == 0
        assert list(threaded.connections) == [] and threaded.connections.rows() == []
        assert list(threaded.events.to_dataframe().columns) == list(
            hub.events.to_dataframe().columns
        )
        assert threaded.events.maxlen == hub.events.maxlen
        assert threaded.metrics.snapshot().keys() == hub.metrics.snapshot().keys()
        assert threaded.metrics() == threaded.metrics.snapshot()
    assert not threaded.hub.running


# -- compression -----------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["wslab", "websockets"])
@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {},
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
            "server_max_window_bits=12; client_max_window_bits=12",
        ),
        (
            {"compression_no_context_takeover": False, "compression_window_bits": 10},
            "permessage-deflate; server_max_window_bits=10; client_max_window_bits=10",
        ),
        ({"compression": False}, None),
    ],
)
async def test_the_hub_negotiates_compression_as_configured(
    started: Any, engine: str, overrides: dict[str, Any], expected: str | None
) -> None:
    from websockets.asyncio.client import connect as ws_connect

    hub = await started(engine=engine, auth_required=False, **overrides)
    # websockets offers what a browser does: the extension, and that it can limit its window.
    async with ws_connect(hub.ws_url) as ws:
        assert ws.request is not None and ws.response is not None
        offer = ws.request.headers["Sec-WebSocket-Extensions"]
        assert offer == "permessage-deflate; client_max_window_bits"
        answer = ws.response.headers.get("Sec-WebSocket-Extensions")
        assert (answer and "; ".join(p.strip() for p in answer.split(";"))) == expected
        await ws.send(json.dumps({"type": "chat:join", "room": "lobby", "text": "x" * 500}))
        assert json.loads(await ws.recv())["type"] == "system:connected"
