"""The course's fault injectors, on real sockets and real processes.

Each injector must imitate its failure exactly where the heartbeat notebook relies on it: a
zombie completes the handshake and then answers nothing, yet its TCP connection stays up; a
blackholed proxy delivers nothing in either direction and closes nothing, and delivers it all
after ``restore``; a frozen process runs no code until thawed. And each must clean up after
itself: no socket, task or child process outlives ``close``/``stop``/``kill``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from wslab.foundation.codes import CloseCode
from wslab.foundation.errors import (
    ConfigError,
    ConnectionClosed,
    ForbiddenOrigin,
    InvalidHandshakeResponse,
    OperationTimeout,
)
from wslab.foundation.handshake import Upgrade
from wslab.hub import Hub
from wslab.infrastructure.connection import Connection
from wslab.infrastructure.engines.wslab import connect, serve
from wslab.infrastructure.events import EventKind
from wslab.infrastructure.heartbeat import HeartbeatMonitor
from wslab.infrastructure.server import Server
from wslab.lab.faults import FrozenProcess, TcpProxy, ZombieClient
from wslab.testing import wait_until

pytestmark = pytest.mark.timeout(60)

#: How long a test waits for something before failing instead of hanging (not a timing check).
GUARD = 10.0
#: A wait after which something that should not happen is taken not to happen.
QUIET = 0.3
needs_sigstop = pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="needs SIGSTOP (POSIX)")


class EchoServer:
    """A WebSocket echo server that keeps its connections where a test can look at them."""

    def __init__(self) -> None:
        self.connections: list[Connection] = []
        self.server: Server | None = None

    async def handler(self, connection: Connection) -> None:
        self.connections.append(connection)
        async for message in connection:
            await connection.send(message)

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"ws://127.0.0.1:{self.server.port}/ws"


@pytest.fixture
async def echo() -> AsyncIterator[EchoServer]:
    echo = EchoServer()
    echo.server = await serve(echo.handler, port=0)
    try:
        yield echo
    finally:
        await echo.server.close()


@pytest.fixture
async def proxy(echo: EchoServer) -> AsyncIterator[TcpProxy]:
    proxy = await TcpProxy.for_url(echo.url).start()
    try:
        yield proxy
    finally:
        await proxy.stop()


def proc_state(pid: int) -> str:
    """The one-letter state of a process from /proc (``T`` = stopped)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text.rsplit(")", 1)[1].split()[0]


needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")


async def wait_state(pid: int, state: str) -> None:
    await wait_until(lambda: proc_state(pid) == state, f"process {pid} in state {state}")


# -- ZombieClient ----------------------------------------------------------------------------------


async def test_a_zombie_completes_the_handshake_and_then_answers_nothing(
    echo: EchoServer,
) -> None:
    zombie = await ZombieClient.connect(echo.url, token="t0ken", headers={"X-Test": "1"})
    try:
        assert zombie.response.status == 101
        await wait_until(lambda: len(echo.connections) == 1, "the server's connection")
        (conn,) = echo.connections
        assert conn.headers.get("Authorization") == "Bearer t0ken"
        assert conn.headers.get("X-Test") == "1"
        assert conn.remote == zombie.local_address  # how a hub tells which connection it is

        pong = conn.ping()
        await conn.send("anyone there?")
        done, _ = await asyncio.wait({pong}, timeout=QUIET)
        assert not done, "a zombie must not answer pings"
        # TCP is fine: the server's connection is open and its writes still succeed.
        assert conn.state.name == "OPEN" and not conn.closed
        assert conn.send_nowait("still writing")
        pong.cancel()
    finally:
        await zombie.close()
    assert zombie.closed
    # Dropped without a closing handshake: the server sees an abnormal closure.
    await asyncio.wait_for(conn.wait_closed(), GUARD)
    assert conn.close_code == CloseCode.ABNORMAL_CLOSURE


async def test_a_heartbeat_closes_a_zombie_with_1011(echo: EchoServer) -> None:
    monitor = HeartbeatMonitor(0.1, 0.1)
    async with await ZombieClient.connect(echo.url) as zombie:
        await wait_until(lambda: len(echo.connections) == 1, "the server's connection")
        (conn,) = echo.connections
        monitor.watch(conn)
        await asyncio.wait_for(conn.wait_closed(), GUARD)
        assert conn.protocol.close_sent[0] == CloseCode.INTERNAL_ERROR  # type: ignore[attr-defined]
        assert monitor.dead_peers == 1
        assert not zombie.closed  # it never read the close frame: still silent
    assert zombie.closed
    await monitor.close()


async def test_a_refused_upgrade_raises_and_leaves_nothing_open() -> None:
    async def refuse(upgrade: Upgrade, remote: object) -> None:
        raise ForbiddenOrigin("no")

    server = await serve(lambda c: asyncio.sleep(0), port=0, process_upgrade=refuse)
    try:
        with pytest.raises(InvalidHandshakeResponse) as refused:
            await ZombieClient.connect(f"ws://127.0.0.1:{server.port}/")
        assert refused.value.status == 403
    finally:
        await server.close()


async def test_a_zombie_times_out_against_a_server_that_never_answers() -> None:
    silent = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    try:
        with pytest.raises(OperationTimeout):
            await ZombieClient.connect(f"ws://127.0.0.1:{port}/", timeout=0.2)
    finally:
        silent.close()
        await silent.wait_closed()


def test_a_zombie_speaks_plain_ws_only() -> None:
    with pytest.raises(ConfigError):
        asyncio.run(ZombieClient.connect("wss://127.0.0.1:1/"))


# -- TcpProxy ----------------------------------------------------------------------------------------


async def test_the_proxy_relays_both_ways_and_counts(echo: EchoServer, proxy: TcpProxy) -> None:
    url = proxy.url_for(echo.url)
    assert url == f"ws://127.0.0.1:{proxy.port}/ws"
    client = await connect(url + "?x=1")
    try:
        await client.send("hello")
        assert await asyncio.wait_for(client.recv(), GUARD) == "hello"
        assert proxy.connections == 1 and proxy.accepted == 1
        assert proxy.bytes_up > 0 and proxy.bytes_down > 0
        assert echo.connections[0].query == {"x": ["1"]}
    finally:
        await client.close()
    await wait_until(lambda: proxy.connections == 0, "the relay to be released")


async def test_a_blackhole_delivers_nothing_closes_nothing_and_restore_delivers_it_all(
    echo: EchoServer, proxy: TcpProxy
) -> None:
    client = await connect(proxy.url_for(echo.url))
    try:
        await client.send("before")
        assert await asyncio.wait_for(client.recv(), GUARD) == "before"
        (server_side,) = echo.connections
        up, down = proxy.bytes_up, proxy.bytes_down

        proxy.blackhole()
        for i in range(3):
            await client.send(f"lost? {i}")
        assert server_side.send_nowait("from the server")
        ping = server_side.ping()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(client.recv(), QUIET)
        assert not ping.done()
        assert (proxy.bytes_up, proxy.bytes_down) == (up, down)
        # Half-open: both ends still believe they are connected.
        assert not client.closed and not server_side.closed
        assert proxy.connections == 1

        proxy.restore()  # TCP delivers late, not never: everything arrives, in order
        received = [await asyncio.wait_for(client.recv(), GUARD) for _ in range(4)]
        assert received == ["from the server", "lost? 0", "lost? 1", "lost? 2"]
        await asyncio.wait_for(ping, GUARD)
    finally:
        await client.close()


async def test_a_heartbeat_detects_a_blackholed_client(echo: EchoServer, proxy: TcpProxy) -> None:
    monitor = HeartbeatMonitor(0.1, 0.1)
    client = await connect(proxy.url_for(echo.url))
    try:
        await wait_until(lambda: len(echo.connections) == 1, "the server's connection")
        (conn,) = echo.connections
        monitor.watch(conn)
        await wait_until(lambda: conn.stats.pongs_received >= 2, "healthy pongs")
        proxy.blackhole()
        await asyncio.wait_for(conn.wait_closed(), GUARD)
        assert monitor.dead_peers == 1
        assert not client.closed  # the client has no idea yet
        proxy.restore()  # the 1011 close frame reaches it now
        await asyncio.wait_for(client.wait_closed(), GUARD)
        assert client.close_code == CloseCode.INTERNAL_ERROR
    finally:
        await client.close()
        await monitor.close()


async def test_a_cut_resets_both_ends_without_a_close_frame(
    echo: EchoServer, proxy: TcpProxy
) -> None:
    client = await connect(proxy.url_for(echo.url))
    await wait_until(lambda: len(echo.connections) == 1, "the server's connection")
    (server_side,) = echo.connections
    proxy.cut()
    await asyncio.wait_for(client.wait_closed(), GUARD)
    await asyncio.wait_for(server_side.wait_closed(), GUARD)
    assert client.close_code == server_side.close_code == CloseCode.ABNORMAL_CLOSURE
    with pytest.raises(ConnectionClosed):
        await client.send("too late")
    await wait_until(lambda: proxy.connections == 0, "the relay to be released")


async def test_stop_refuses_new_connections_and_start_listens_on_the_same_port(
    echo: EchoServer, proxy: TcpProxy
) -> None:
    port = proxy.port
    client = await connect(proxy.url_for(echo.url))
    await proxy.stop()
    assert not proxy.listening
    await asyncio.wait_for(client.wait_closed(), GUARD)  # stop also cuts what was relayed
    with pytest.raises(OSError):
        await connect(proxy.url_for(echo.url), open_timeout=GUARD)
    await proxy.start()
    assert proxy.port == port
    again = await connect(proxy.url_for(echo.url))
    await again.send("back")
    assert await asyncio.wait_for(again.recv(), GUARD) == "back"
    await again.close()


async def test_connections_over_the_limit_are_refused(echo: EchoServer) -> None:
    async with TcpProxy.for_url(echo.url, max_connections=1) as proxy:
        first = await connect(proxy.url_for(echo.url))
        with pytest.raises((InvalidHandshakeResponse, OSError)):
            await connect(proxy.url_for(echo.url))
        assert proxy.refused == 1 and proxy.connections == 1
        await first.close()


async def test_an_unreachable_target_closes_the_client_side() -> None:
    placeholder = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = placeholder.sockets[0].getsockname()[1]
    placeholder.close()
    await placeholder.wait_closed()  # nothing listens on `port` any more
    async with TcpProxy("127.0.0.1", port) as proxy:
        with pytest.raises((InvalidHandshakeResponse, OSError)):
            await connect(f"ws://127.0.0.1:{proxy.port}/")
        assert proxy.failed_connects == 1
        await wait_until(lambda: proxy.connections == 0, "the relay to be released")
        assert not proxy.errors


def test_url_for_needs_a_started_proxy() -> None:
    with pytest.raises(ConfigError):
        TcpProxy("127.0.0.1", 1).url_for("ws://example.org:1/ws")


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("ws://example.org/ws", ("example.org", 80)),
        ("wss://example.org/ws", ("example.org", 443)),
        ("postgresql://postgres@db.example/test", ("db.example", 5432)),
        ("postgres://db.example:6543/test", ("db.example", 6543)),
        ("redis://cache.example/0", ("cache.example", 6379)),
        ("rediss://:secret@cache.example/0", ("cache.example", 6379)),
    ],
)
def test_for_url_knows_the_usual_port_of_each_scheme(url: str, target: tuple[str, int]) -> None:
    proxy = TcpProxy.for_url(url)
    assert (proxy.target_host, proxy.target_port) == target


async def test_url_for_keeps_the_credentials_of_a_database_url() -> None:
    async with TcpProxy("127.0.0.1", 1) as proxy:
        where = f"127.0.0.1:{proxy.port}"
        dsn = "postgresql://postgres:s3cret@db.example:5432/test?sslmode=disable"
        assert proxy.url_for(dsn) == f"postgresql://postgres:s3cret@{where}/test?sslmode=disable"
        assert proxy.url_for("redis://cache.example:6379/0") == f"redis://{where}/0"


async def test_the_proxy_relays_a_protocol_that_is_not_websocket() -> None:
    """A line protocol (as PostgreSQL's or Redis's would be): bytes through, outage, recovery."""

    async def shout(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionResetError):  # what stop() does to this end
            while line := await reader.readline():
                writer.write(line.upper())
                await writer.drain()
        writer.close()

    service = await asyncio.start_server(shout, "127.0.0.1", 0)
    url = f"tcp://127.0.0.1:{service.sockets[0].getsockname()[1]}"
    try:
        async with TcpProxy.for_url(url) as proxy:
            port = proxy.port
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"ping\n")
            assert await asyncio.wait_for(reader.readline(), GUARD) == b"PING\n"

            await proxy.stop()  # the service "goes away": the open connection is reset
            with pytest.raises(ConnectionResetError):
                await asyncio.wait_for(reader.read(), GUARD)
            writer.close()
            with pytest.raises(OSError):
                await asyncio.open_connection("127.0.0.1", port)

            await proxy.start()  # and comes back on the same address
            assert proxy.port == port
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"back\n")
            assert await asyncio.wait_for(reader.readline(), GUARD) == b"BACK\n"
            writer.close()
    finally:
        service.close()
        await service.wait_closed()


# -- FrozenProcess ---------------------------------------------------------------------------------

TICKER = r"""
import json, sys, time
print(json.dumps({"event": "ready"}), flush=True)
i = 0
while True:
    print(i, flush=True)
    i += 1
    time.sleep(0.02)
"""

SELF_STOPPING = r"""
import json, os, signal
print(json.dumps({"event": "ready"}), flush=True)
os.kill(os.getpid(), signal.SIGSTOP)  # wait, frozen, until the test thaws us
for i in range(300):
    print(i)
"""


@needs_sigstop
@needs_proc
async def test_a_frozen_process_runs_nothing_until_thawed() -> None:
    with FrozenProcess([sys.executable, "-c", TICKER]) as ticker:
        assert await ticker.start() == {"event": "ready"}
        assert int(await ticker.read_line()) >= 0
        ticker.freeze()
        assert ticker.frozen and ticker.running
        await wait_state(ticker.pid, "T")  # type: ignore[arg-type]
        # Drain what was printed before the stop; then nothing more comes.
        with contextlib.suppress(OperationTimeout):
            while True:
                await ticker.read_line(timeout=QUIET)
        with pytest.raises(OperationTimeout):
            await ticker.read_line(timeout=QUIET)
        ticker.thaw()
        assert not ticker.frozen
        assert int(await ticker.read_line()) > 0  # it carries on counting
        pid = ticker.pid
    assert not ticker.running and ticker.returncode == -signal.SIGKILL
    assert not Path(f"/proc/{pid}").exists()  # killed and reaped


@needs_sigstop
@needs_proc
async def test_output_is_bounded_and_the_overflow_is_counted() -> None:
    with FrozenProcess([sys.executable, "-c", SELF_STOPPING], max_lines=10) as child:
        await child.start()
        await wait_state(child.pid, "T")  # type: ignore[arg-type]
        child.thaw()
        assert await child.wait() == 0
        lines = []
        with contextlib.suppress(EOFError):
            while True:
                lines.append(await child.read_line())
        assert lines == [str(i) for i in range(290, 300)]
        assert child.dropped_lines == 290


async def test_a_child_that_dies_at_once_reports_its_stderr() -> None:
    failing = FrozenProcess([sys.executable, "-c", "import sys; sys.exit('no hub here')"])
    with pytest.raises(EOFError, match="no hub here"):
        await failing.start()
    assert not failing.running and failing.returncode == 1


async def test_a_silent_child_times_out_and_is_killed() -> None:
    silent = FrozenProcess([sys.executable, "-c", "import time; time.sleep(60)"])
    with pytest.raises(OperationTimeout):
        await silent.start(timeout=0.5)
    assert not silent.running


@needs_sigstop
async def test_a_forgotten_frozen_process_is_killed_when_collected() -> None:
    child = FrozenProcess([sys.executable, "-c", TICKER])
    await child.start()
    child.freeze()
    process = child._process
    assert process is not None
    del child
    gc.collect()
    assert process.poll() == -signal.SIGKILL


async def test_signals_need_a_running_process() -> None:
    child = FrozenProcess([sys.executable, "-c", "pass"])
    with pytest.raises(ProcessLookupError):
        child.freeze()
    child.kill()  # idempotent, also before start


# -- against a real hub ------------------------------------------------------------------------------


@pytest.fixture
async def hub(tmp_path: Path, unique_name: str) -> AsyncIterator[Hub]:
    hub = await Hub.start(
        port=0,
        database=f"sqlite:///{tmp_path / 'chat.db'}",
        broker=f"memory://{unique_name}",
        ping_interval=0.2,
        pong_timeout=0.2,
        event_log_level="lifecycle",
    )
    try:
        yield hub
    finally:
        await hub.stop()


def closed_with(hub: Hub, connection_id: str) -> list[object]:
    return [
        e.get("code")
        for e in hub.events.events(EventKind.CLOSE, connection_id)
        if e.get("direction") == "out"
    ]


async def wait_timeout_event(hub: Hub, connection_id: str) -> None:
    await wait_until(
        lambda: hub.events.last(EventKind.HEARTBEAT_TIMEOUT, connection_id) is not None,
        f"the heartbeat's verdict on {connection_id}",
    )


async def test_the_hub_closes_a_zombie_with_1011(hub: Hub) -> None:
    zombie = await ZombieClient.connect(hub.ws_url, token=hub.token("zed"))
    try:
        await wait_until(
            lambda: any(c.remote == zombie.local_address for c in hub.connections),
            "the zombie to be admitted",
        )
        (conn,) = [c for c in hub.connections if c.remote == zombie.local_address]
        await wait_timeout_event(hub, conn.id)
        assert closed_with(hub, conn.id) == [CloseCode.INTERNAL_ERROR]
    finally:
        await zombie.close()


@needs_sigstop
async def test_the_hub_closes_a_frozen_client_with_1011_and_it_learns_so_when_thawed(
    hub: Hub,
) -> None:
    client = FrozenProcess.chat_client(hub.ws_url, token=hub.token("fred"))
    with client as fred:
        ready = await fred.start()
        assert ready["event"] == "ready" and ready["user_id"] == "fred"
        cid = ready["connection_id"]
        await wait_until(
            lambda: hub.events.last(EventKind.PONG, cid) is not None, "a pong from the child"
        )
        fred.freeze()
        await wait_timeout_event(hub, cid)
        assert closed_with(hub, cid) == [CloseCode.INTERNAL_ERROR]
        fred.thaw()
        assert await fred.read_json() == {
            "event": "closed",
            "code": CloseCode.INTERNAL_ERROR,
            "reason": "heartbeat: no pong in time",
        }
        assert await fred.wait() == 0


@needs_sigstop
async def test_the_bundled_client_dies_with_its_parent(tmp_path: Path) -> None:
    # A parent runs the bundled client's guard, stops the child, and dies without cleaning up.
    marker = tmp_path / "child.pid"
    script = (
        "import os, signal, sys, time\n"
        "from wslab.lab.faults import CHAT_CLIENT_SCRIPT\n"
        "guard = CHAT_CLIENT_SCRIPT.split('async def main')[0]\n"
        "exec(guard)\n"
        "die_with_parent(int(sys.argv[1]))\n"
        f"open({str(marker)!r}, 'w').write(str(os.getpid()))\n"
        "os.kill(os.getpid(), signal.SIGSTOP)\n"
    )
    launcher = (
        "import subprocess, sys, os, time\n"
        f"p = subprocess.Popen([sys.executable, '-c', {script!r}, str(os.getpid())])\n"
        f"while not os.path.exists({str(marker)!r}): time.sleep(0.01)\n"
        "time.sleep(0.1)\n"
        "os._exit(0)\n"  # no cleanup: the child is stopped and orphaned
    )
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", launcher)
    assert await asyncio.wait_for(process.wait(), GUARD) == 0
    pid = int(marker.read_text())

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return Path(f"/proc/{pid}/stat").exists() and proc_state(pid) == "Z"

    if not sys.platform.startswith("linux"):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        pytest.skip("the parent-death signal is Linux only")
    await wait_until(gone, "the orphaned child to be killed")
