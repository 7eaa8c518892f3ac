"""What the hub tells operators: ``/metrics`` that follows Prometheus' conventions, counters that
move by exactly what real traffic did (on both engines), and the INFO lines of a connection."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from wslab.foundation.errors import ConnectionClosed, HandshakeError
from wslab.hub import Hub
from wslab.infrastructure.connection import Connection, ConnectionLimits
from wslab.infrastructure.engines.wslab import connect
from wslab.testing import http_request

pytestmark = pytest.mark.timeout(60)

WAIT = 5.0
ENGINES = ("wslab", "websockets")
#: The test clients do not compress, so the bytes they send are known exactly.
PLAIN = ConnectionLimits(compression=None)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


# -- helpers ---------------------------------------------------------------------------------------


@pytest.fixture
def settings(tmp_path: Path, unique_name: str) -> dict[str, Any]:
    return {
        "port": 0,
        "database": f"sqlite:///{tmp_path / 'hub.db'}",
        "broker": f"memory://{unique_name}",
        "jwt_secret": "hub-test-secret-0123456789abcdef0123",
        "ping_interval": 3600.0,  # no heartbeat frames in the counts
    }


async def scrape(hub: Hub) -> tuple[Samples, list[Any]]:
    """Every sample of ``GET /metrics`` by (name, labels), and the parsed families."""
    status, _, body = await http_request(hub.url, "/metrics", timeout=WAIT)
    assert status == 200
    families = list(text_string_to_metric_families(body.decode()))
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples
    }
    return samples, families


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


async def join(hub: Hub, user: str = "alice") -> Connection:
    conn = await connect(
        hub.ws_url, headers=[("Authorization", f"Bearer {hub.token(user)}")], limits=PLAIN
    )
    hello = json.loads(await asyncio.wait_for(conn.recv(), WAIT))
    assert hello["type"] == "system:connected"
    return conn


async def drain(conn: Connection) -> int:
    """Read until the connection closes; how many messages arrived meanwhile."""
    received = 0

    async def read_all() -> None:
        nonlocal received
        with contextlib.suppress(ConnectionClosed):
            while True:
                await conn.recv()
                received += 1

    await asyncio.wait_for(read_all(), WAIT)
    await asyncio.wait_for(conn.wait_closed(), WAIT)
    return received


async def settled(hub: Hub) -> None:
    """Wait until every connection the hub served has closed and been folded into the totals."""

    async def wait() -> None:
        while len(hub.traffic) or len(hub.server.connections):
            await asyncio.sleep(0.01)

    await asyncio.wait_for(wait(), WAIT)


def client_frame_bytes(payload: int) -> int:
    """Bytes of one masked client frame carrying ``payload`` bytes."""
    header = 2 if payload < 126 else 4 if payload < 65536 else 10
    return header + 4 + payload


# -- the exposition follows the conventions --------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
async def test_metrics_follow_prometheus_conventions(started: Any, engine: str) -> None:
    hub = await started(engine=engine)
    conn = await join(hub)
    await conn.close()
    await settled(hub)
    samples, families = await scrape(hub)

    names = [f.name for f in families]
    assert len(names) == len(set(names)), "a family appears twice"
    sample_names = [s.name for f in families for s in f.samples]
    owners: dict[str, str] = {}
    for family in families:
        for sample in family.samples:
            assert owners.setdefault(sample.name, family.name) == family.name, sample.name
    assert len(set(sample_names)) >= len(families)
    helps = [f.documentation for f in families]
    assert all(helps), "a family without help"
    assert len(helps) == len(set(helps)), "two families share one help text"
    for family in families:
        if family.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples), family.name
        else:
            assert not family.name.endswith("_total"), family.name

    # The process and platform collectors are on the hub's registry, with the build info.
    assert ("process_resident_memory_bytes", ()) in samples
    assert any(name == "python_info" for name, _ in samples)
    build = [labels for name, labels in samples if name == "wslab_build_info"]
    assert len(build) == 1 and dict(build[0])["engine"] == engine
    assert samples["wslab_build_info", build[0]] == 1
    # The old gauge that shared a family with the connections counter is gone.
    assert "wslab_connections" not in {f.name for f in families if f.type == "gauge"}
    has_frames = any(name == "wslab_websocket_frames_total" for name, _ in samples)
    assert has_frames == (engine == "wslab")  # websockets shows no frames


# -- counters move by what the traffic did ---------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
async def test_a_client_closing_with_1000_is_counted_exactly(started: Any, engine: str) -> None:
    hub = await started(engine=engine)
    before, _ = await scrape(hub)
    conn = await join(hub)
    payloads = [json.dumps({"type": "chat:message", "content": f"m{i}"}) for i in range(3)]
    for payload in payloads:
        await conn.send(payload)
    acks = 0
    while acks < 3:
        if json.loads(await asyncio.wait_for(conn.recv(), WAIT)).get("type") == "ack":
            acks += 1
    await conn.close(1000, "bye")
    await settled(hub)
    after, _ = await scrape(hub)

    assert delta(before, after, "wslab_connections_total") == 1
    assert delta(before, after, "wslab_websocket_messages_total", direction="in") == 3
    assert delta(before, after, "wslab_websocket_messages_total", direction="out") == (
        conn.stats.messages_in
    )
    sent = sum(client_frame_bytes(len(p.encode())) for p in payloads)
    sent += client_frame_bytes(2 + len(b"bye"))  # the close frame
    assert delta(before, after, "wslab_websocket_bytes_total", direction="in") == sent
    assert delta(before, after, "wslab_rate_limit_verdicts_total", verdict="allow") == 3
    assert delta(before, after, "wslab_close_codes_total", direction="in", code="1000") == 1
    assert delta(before, after, "wslab_close_codes_total", direction="out", code="1000") == 1
    if engine == "wslab":
        frames_in = delta(before, after, "wslab_websocket_frames_total", direction="in")
        assert frames_in == 4  # three messages and the close
        frames_out = delta(before, after, "wslab_websocket_frames_total", direction="out")
        assert frames_out == conn.stats.messages_in + 1  # and the close echo


@pytest.mark.parametrize("engine", ENGINES)
async def test_tasks_of_the_hub_loop_are_counted_and_none_outlives_its_connection(
    started: Any, engine: str
) -> None:
    hub = await started(engine=engine)
    before, _ = await scrape(hub)
    idle = before["wslab_asyncio_tasks", ()]
    assert idle >= 1  # at least the test's own task shares the hub's loop
    conns = [await join(hub, f"user{i}") for i in range(20)]
    for i, conn in enumerate(conns):
        await conn.send(json.dumps({"type": "chat:message", "content": f"hello {i}"}))
    for conn in conns:
        await conn.close()
    await settled(hub)
    after, _ = await scrape(hub)
    assert after["wslab_asyncio_tasks", ()] == idle  # every connection's tasks ended with it


@pytest.mark.parametrize("engine", ENGINES)
async def test_a_flood_is_limited_then_closed_with_1008(started: Any, engine: str) -> None:
    hub = await started(
        engine=engine, rate_messages_per_second=0.01, rate_burst=2, rate_flood_close_after=3
    )
    before, _ = await scrape(hub)
    conn = await join(hub)
    for i in range(5):
        await conn.send(json.dumps({"type": "chat:message", "content": f"flood {i}"}))
    await drain(conn)
    await settled(hub)
    after, _ = await scrape(hub)

    assert conn.close_code == 1008
    verdicts = {
        v: delta(before, after, "wslab_rate_limit_verdicts_total", verdict=v)
        for v in ("allow", "reject", "close")
    }
    assert verdicts == {"allow": 2, "reject": 2, "close": 1}
    assert delta(before, after, "wslab_close_codes_total", direction="out", code="1008") == 1
    assert delta(before, after, "wslab_websocket_messages_total", direction="in") == 5


@pytest.mark.parametrize("engine", ENGINES)
async def test_a_message_too_big_is_closed_with_1009(started: Any, engine: str) -> None:
    hub = await started(engine=engine, max_message_size=1024)
    before, _ = await scrape(hub)
    conn = await join(hub)
    await conn.send("x" * 2048)
    await drain(conn)
    await settled(hub)
    after, _ = await scrape(hub)

    assert delta(before, after, "wslab_close_codes_total", direction="out", code="1009") == 1
    assert delta(before, after, "wslab_websocket_messages_total", direction="in") == 0
    closes_in = sum(
        value
        for (name, labels), value in after.items()
        if name == "wslab_close_codes_total" and ("direction", "in") in labels
    ) - sum(
        value
        for (name, labels), value in before.items()
        if name == "wslab_close_codes_total" and ("direction", "in") in labels
    )
    assert closes_in == 1  # one connection ended, whatever the client answered


@pytest.mark.parametrize("engine", ENGINES)
async def test_refused_handshakes_and_tokens_are_counted_by_reason(
    started: Any, engine: str
) -> None:
    hub = await started(engine=engine, allowed_origins=("http://good.example",))
    before, _ = await scrape(hub)

    with pytest.raises(HandshakeError) as refused:
        await connect(hub.ws_url, origin="http://evil.example", limits=PLAIN)
    assert refused.value.status == 403
    with pytest.raises(HandshakeError) as refused:
        await connect(hub.ws_url.replace("/ws", "/nowhere"), limits=PLAIN)
    assert refused.value.status == 404
    # An upgrade without Sec-WebSocket-Key: refused by the engine itself.
    reader, writer = await asyncio.open_connection(hub.host, hub.port)
    writer.write(
        b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    status_line = await asyncio.wait_for(reader.readline(), WAIT)
    assert b" 400 " in status_line
    writer.close()
    bad = await connect(hub.ws_url, headers=[("Authorization", "Bearer not-a-token")], limits=PLAIN)
    await drain(bad)
    assert bad.close_code == 4001
    await settled(hub)
    after, _ = await scrape(hub)

    refusals = {
        reason: delta(before, after, "wslab_handshakes_refused_total", reason=reason)
        for reason in ("origin", "path", "bad_request", "rate", "capacity", "per_ip")
    }
    assert refusals == {
        "origin": 1,
        "path": 1,
        "bad_request": 1,
        "rate": 0,
        "capacity": 0,
        "per_ip": 0,
    }
    assert delta(before, after, "wslab_auth_failures_total", reason="malformed") == 1
    assert delta(before, after, "wslab_close_codes_total", direction="out", code="4001") == 1
    assert delta(before, after, "wslab_connections_total") == 0


@pytest.mark.parametrize("engine", ENGINES)
async def test_the_connection_rate_and_the_per_ip_cap_are_counted(
    started: Any, engine: str
) -> None:
    hub = await started(engine=engine, connections_per_ip_per_minute=2, max_connections_per_ip=1)
    before, _ = await scrape(hub)
    first = await join(hub)
    with pytest.raises(HandshakeError) as refused:  # attempt 2: over the per-IP cap
        await join(hub, "bob")
    assert refused.value.status == 429
    with pytest.raises(HandshakeError) as refused:  # attempt 3: over the rate
        await join(hub, "carol")
    assert refused.value.status == 429
    after, _ = await scrape(hub)
    assert delta(before, after, "wslab_handshakes_refused_total", reason="per_ip") == 1
    assert delta(before, after, "wslab_handshakes_refused_total", reason="rate") == 1
    await first.close()


# -- log lines -------------------------------------------------------------------------------------


def hub_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "wslab.hub" and r.levelno == logging.INFO]


@pytest.mark.parametrize("engine", ENGINES)
async def test_a_connect_and_close_log_one_line_each(
    started: Any,
    engine: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hub = await started(engine=engine)
    caplog.set_level(logging.INFO, logger="wslab")
    monkeypatch.setattr(logging.getLogger("wslab"), "propagate", True)  # caplog listens on root
    conn = await join(hub, "alice")
    await conn.close(1000, "done")
    await settled(hub)

    records = hub_records(caplog)
    assert [r.getMessage() for r in records] == ["connection opened", "connection closed"]
    opened, closed = records
    local = conn.transport.get_extra_info("sockname")
    assert opened.connection_id == closed.connection_id  # type: ignore[attr-defined]
    assert opened.user_id == "alice" and closed.user_id == "alice"  # type: ignore[attr-defined]
    assert opened.remote == f"{local[0]}:{local[1]}"  # type: ignore[attr-defined]
    assert closed.code == 1000 and closed.reason == "done"  # type: ignore[attr-defined]
    assert closed.closed_by == "peer"  # type: ignore[attr-defined]
    assert closed.duration_s >= 0  # type: ignore[attr-defined]


async def test_the_hub_closing_says_so(
    started: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = await started(rate_messages_per_second=0.01, rate_burst=1, rate_flood_close_after=1)
    caplog.set_level(logging.INFO, logger="wslab")
    monkeypatch.setattr(logging.getLogger("wslab"), "propagate", True)
    conn = await join(hub)
    for _ in range(2):
        await conn.send(json.dumps({"type": "chat:message", "content": "x"}))
    await drain(conn)
    await settled(hub)
    (closed,) = [r for r in hub_records(caplog) if r.getMessage() == "connection closed"]
    assert closed.code == 1008 and closed.closed_by == "hub"  # type: ignore[attr-defined]
    assert "flooding" in closed.reason  # type: ignore[attr-defined]


async def test_refusals_are_logged_but_a_flood_of_them_is_throttled(
    started: Any,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hub = await started()
    caplog.set_level(logging.INFO, logger="wslab")
    monkeypatch.setattr(logging.getLogger("wslab"), "propagate", True)
    hub._refusal_log._clock = lambda: 100.0  # one window for the whole test
    hub._refusal_log._window_start = float("-inf")
    attempts = hub._refusal_log.per_second + 5
    for _ in range(attempts):
        with pytest.raises(HandshakeError):
            await connect(hub.ws_url.replace("/ws", "/nowhere"), limits=PLAIN)
    lines = [r for r in hub_records(caplog) if r.getMessage() == "handshake refused"]
    assert len(lines) == hub._refusal_log.per_second
    assert all(r.reason == "path" and r.status == 404 for r in lines)  # type: ignore[attr-defined]
    assert hub._refusal_log.suppressed == 5
    samples, _ = await scrape(hub)
    assert samples["wslab_handshakes_refused_total", (("reason", "path"),)] == attempts

    bad = await connect(hub.ws_url, headers=[("Authorization", "Bearer x.y.z")], limits=PLAIN)
    await drain(bad)
    (token,) = [r for r in hub_records(caplog) if r.getMessage() == "token refused"]
    assert token.reason == "malformed" and token.method == "header"  # type: ignore[attr-defined]


def test_internal_errors_are_logged_once(
    settings: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def run() -> None:
        hub = await Hub.start(**settings)
        try:

            async def broken(request: Any) -> None:
                raise RuntimeError("bug in a handler")

            hub.router.route("test:broken")(broken)
            conn = await join(hub)
            await conn.send(json.dumps({"type": "test:broken", "ref": "r1"}))
            while True:
                reply = json.loads(await asyncio.wait_for(conn.recv(), WAIT))
                if reply.get("ref") == "r1":
                    break
            assert reply["type"] == "error"
            await conn.close()
            assert any("internal error" in e["message"] for e in hub.errors)
        finally:
            await hub.stop()

    caplog.set_level(logging.INFO, logger="wslab")
    monkeypatch.setattr(logging.getLogger("wslab"), "propagate", True)
    asyncio.run(run())
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert errors[0].exc_info is not None  # the one line has the traceback
