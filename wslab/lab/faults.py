"""Fault injection for the course: peers that go silent, networks that vanish, processes that freeze.

A heartbeat exists because TCP cannot tell a quiet peer from a dead one. To show that, the course
needs peers that are dead in each of the ways that matter — on real sockets, so that the hub
cannot tell them from the real thing:

- :class:`ZombieClient` completes the opening handshake and then goes silent: it never reads
  again and never answers a ping. Its kernel keeps the TCP connection alive (it still
  acknowledges every byte), exactly like a program stuck in a deadlock after connecting.
- :class:`TcpProxy` relays TCP between clients and a server. :meth:`TcpProxy.blackhole` stops
  forwarding in both directions *without closing anything*: the network went away, and both
  ends keep a half-open connection. :meth:`TcpProxy.restore` brings it back (nothing is lost:
  TCP delivers late, not never), :meth:`TcpProxy.cut` resets every relayed connection at once.
- :class:`FrozenProcess` runs a client in a child process and freezes it with ``SIGSTOP`` (a
  closed laptop lid, a paused VM, a stop-the-world pause): the kernel keeps its sockets open
  while the program does nothing. ``SIGCONT`` thaws it, ``SIGKILL`` ends it.

Bounds and cleanup
    A zombie holds one socket; what the hub sends it waits in the kernel's receive buffer, which
    the kernel bounds (TCP flow control then stops the hub). The proxy relays at most
    ``max_connections`` connections (more are refused at once) and buffers nothing of its own:
    a side whose peer does not keep up stops being read (the write buffer's high-water mark), so
    memory stays bounded and TCP pushes back on the sender. A frozen process keeps at most
    ``max_lines`` lines of its standard output (the oldest are dropped and counted); it is killed
    by :meth:`FrozenProcess.kill`, by leaving its ``with`` block, when it is garbage collected,
    and at interpreter exit — and the bundled client also dies with its parent (Linux).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import urllib.parse
import weakref
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any

from wslab.foundation import handshake
from wslab.foundation.errors import ConfigError, InvalidHandshakeResponse, OperationTimeout
from wslab.foundation.http import Response, ResponseParser

__all__ = ["CHAT_CLIENT_SCRIPT", "DEFAULT_PORTS", "FrozenProcess", "TcpProxy", "ZombieClient"]

log = logging.getLogger("wslab.lab.faults")


# -- a client that goes silent after the handshake --------------------------------------------------


class _ZombieWire(asyncio.Protocol):
    """Reads the 101 response, then stops reading for good."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = ResponseParser()
        self.response: asyncio.Future[Response] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.response.done():
            return
        try:
            response = self.parser.feed(data)
        except InvalidHandshakeResponse as error:
            self.response.set_exception(error)
            return
        if response is not None:
            # From here on the zombie is silent: whatever follows the 101 (the hub's greeting,
            # its pings) stays unread in the kernel's receive buffer, and nothing is answered.
            assert self.transport is not None
            self.transport.pause_reading()
            self.response.set_result(response)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.response.done():
            self.response.set_exception(
                InvalidHandshakeResponse("connection closed during the handshake")
            )
        if not self.lost.done():
            self.lost.set_result(None)


class ZombieClient:
    """A WebSocket client that completes the opening handshake and then never reads again.

    ::

        zombie = await ZombieClient.connect(hub.ws_url, token=hub.token("zed"))
        ...                        # the hub's pings go unanswered: 1011 after its bound
        await zombie.close()

    Because it never reads, it never sees the hub's close frame either: its socket stays open
    until :meth:`close`, which drops it without a closing handshake (a zombie says no goodbye).
    The hub knows it by :attr:`local_address`, the ``remote`` of the hub's connection.
    """

    def __init__(self, url: str, wire: _ZombieWire, response: Response) -> None:
        assert wire.transport is not None
        self.url = url
        self._wire = wire
        self._transport = wire.transport
        #: The server's answer to the upgrade request (status 101 and its headers).
        self.response = response
        sock = self._transport.get_extra_info("sockname")
        #: ``(host, port)`` of this end of the TCP connection: what the server sees as remote.
        self.local_address: tuple[str, int] = (sock[0], sock[1])

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        token: str | None = None,
        headers: Iterable[tuple[str, str]] | Mapping[str, str] = (),
        origin: str | None = None,
        timeout: float = 10.0,
    ) -> ZombieClient:
        """Open a TCP connection to ``url`` (``ws://`` only), upgrade it, and go silent.

        ``token`` is sent as ``Authorization: Bearer <token>``; ``headers`` are added as given.
        Raises :class:`~wslab.foundation.errors.InvalidHandshakeResponse` if the server refuses
        the upgrade and :class:`~wslab.foundation.errors.OperationTimeout` after ``timeout``.
        """
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "ws" or not parts.hostname:
            raise ConfigError(f"a zombie speaks plain ws:// only; got {url!r}")
        port = parts.port or 80
        extra = list(headers.items() if isinstance(headers, Mapping) else headers)
        if token is not None:
            extra.append(("Authorization", f"Bearer {token}"))
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host_header = parts.netloc.rsplit("@", 1)[-1]
        request, key = handshake.build_upgrade_request(
            host_header, target, origin=origin, extra_headers=extra
        )
        loop = asyncio.get_running_loop()
        transport: asyncio.Transport | None = None

        async def open_and_upgrade() -> tuple[_ZombieWire, Response]:
            nonlocal transport
            transport, wire = await loop.create_connection(_ZombieWire, parts.hostname, port)
            transport.write(request)
            return wire, await wire.response

        try:
            wire, response = await asyncio.wait_for(open_and_upgrade(), timeout)
            handshake.validate_upgrade_response(response, key)
        except asyncio.TimeoutError:
            if transport is not None:
                transport.abort()
            raise OperationTimeout(f"opening handshake with {url} timed out") from None
        except BaseException:
            if transport is not None:
                transport.abort()
            raise
        return cls(url, wire, response)

    @property
    def closed(self) -> bool:
        """True once this end's socket is closed."""
        return self._wire.lost.done()

    async def close(self) -> None:
        """Drop the TCP connection (no close frame) and wait until the socket is closed."""
        self._transport.abort()
        await asyncio.shield(self._wire.lost)

    async def __aenter__(self) -> ZombieClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "silent"
        return (
            f"<ZombieClient {state} {self.local_address[0]}:{self.local_address[1]} -> {self.url}>"
        )


# -- a TCP proxy that can lose the network ------------------------------------------------------------


class _Side(asyncio.Protocol):
    """One of the two TCP connections of a relayed pair: bytes read here go to the other."""

    def __init__(self, pair: _Pair, name: str) -> None:
        self.pair = pair
        self.name = name  # "client" (accepted) or "server" (the connection to the target)
        self.transport: asyncio.Transport | None = None
        self.reading = True
        self.write_paused = False  # our transport's write buffer is over its high-water mark
        self.eof = False
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.pair.made(self)

    def data_received(self, data: bytes) -> None:
        self.pair.forward(self, data)

    def eof_received(self) -> bool:
        self.eof = True
        self.pair.half_closed(self)
        return True  # keep our write side open: the other direction may still be talking

    def pause_writing(self) -> None:
        self.write_paused = True
        self.pair.update_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        self.pair.update_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.pair.side_lost(self)

    def set_reading(self, reading: bool) -> None:
        transport = self.transport
        if transport is None or reading == self.reading or transport.is_closing():
            return
        self.reading = reading
        if reading:
            transport.resume_reading()
        else:
            transport.pause_reading()


class _Pair:
    """A relayed connection: the client's TCP connection to the proxy and the proxy's to the target."""

    def __init__(self, proxy: TcpProxy) -> None:
        self.proxy = proxy
        self.client = _Side(self, "client")
        self.server: _Side | None = None

    def peer_of(self, side: _Side) -> _Side | None:
        return self.server if side is self.client else self.client

    def made(self, side: _Side) -> None:
        if side is self.client:
            if self.proxy._admit(self):
                self.update_reading()  # paused until the connection to the target is up
                self.proxy._spawn(self._open_server())
            return
        self.server = side
        if self.client.lost:  # the client gave up while we were connecting
            self.close()
        else:
            self.update_reading()

    async def _open_server(self) -> None:
        loop = asyncio.get_running_loop()
        proxy = self.proxy
        try:
            await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Side(self, "server"), proxy.target_host, proxy.target_port
                ),
                proxy.connect_timeout,
            )
        except (OSError, asyncio.TimeoutError) as error:
            proxy.failed_connects += 1
            log.info("proxy: cannot reach %s:%s: %s", proxy.target_host, proxy.target_port, error)
            self.abort()

    def update_reading(self) -> None:
        """Read a side only while the network is up and the other side takes what it gets."""
        blackholed = self.proxy.blackholed
        for side in (self.client, self.server):
            if side is None:
                continue
            peer = self.peer_of(side)
            ready = peer is not None and peer.transport is not None and not peer.lost
            side.set_reading(ready and not blackholed and not peer.write_paused)  # type: ignore[union-attr]

    def forward(self, source: _Side, data: bytes) -> None:
        target = self.peer_of(source)
        if target is None or target.transport is None or target.transport.is_closing():
            return
        target.transport.write(data)
        if source is self.client:
            self.proxy.bytes_up += len(data)
        else:
            self.proxy.bytes_down += len(data)

    def half_closed(self, source: _Side) -> None:
        """One end shut its sending side: pass the FIN on, close when both have."""
        target = self.peer_of(source)
        transport = target.transport if target is not None else None
        if transport is not None and not transport.is_closing() and transport.can_write_eof():
            transport.write_eof()
        if self.client.eof and self.server is not None and self.server.eof:
            self.close()

    def side_lost(self, side: _Side) -> None:
        peer = self.peer_of(side)
        if peer is not None and peer.transport is not None and not peer.transport.is_closing():
            peer.transport.close()  # what was already relayed is still delivered
        if self.client.lost and (self.server is None or self.server.lost):
            self.proxy._pairs.discard(self)

    def close(self) -> None:
        for side in (self.client, self.server):
            if side is not None and side.transport is not None:
                side.transport.close()

    def abort(self, reset: bool = False) -> None:
        for side in (self.client, self.server):
            if side is None or side.transport is None:
                continue
            sock = side.transport.get_extra_info("socket")
            if reset and sock is not None:
                # Linger 0: closing sends a RST, as a middlebox that drops a connection does.
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            side.transport.abort()


#: The port a URL without one means, by scheme, for :meth:`TcpProxy.for_url`.
DEFAULT_PORTS: Mapping[str, int] = {
    "ws": 80,
    "http": 80,
    "wss": 443,
    "https": 443,
    "postgres": 5432,
    "postgresql": 5432,
    "redis": 6379,
    "rediss": 6379,
}


class TcpProxy:
    """A TCP relay on ``127.0.0.1`` in front of ``target_host:target_port`` that can fail on cue.

    ::

        proxy = await TcpProxy("127.0.0.1", hub.port).start()
        client = await ChatClient(proxy.url_for(hub.ws_url), token=...).connect()
        proxy.blackhole()          # the network is gone: nothing flows, nothing closes
        proxy.restore()            # it is back: the delayed bytes arrive
        proxy.cut()                # every relayed connection is reset
        await proxy.stop()         # stop listening too (start() listens again, same port)

    It relays bytes and knows no protocol, so the same proxy stands in front of PostgreSQL or
    Redis too (``TcpProxy.for_url(dsn)``, then connect to ``proxy.url_for(dsn)``): :meth:`stop`
    is then the database going away, :meth:`start` it coming back on the same address.

    Attributes ``bytes_up`` (client to target) and ``bytes_down`` count what was relayed,
    ``accepted``/``refused``/``failed_connects`` count connections.
    """

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_connections: int = 64,
        connect_timeout: float = 5.0,
    ) -> None:
        if max_connections < 1:
            raise ConfigError("max_connections must be at least 1")
        self.target_host = target_host
        self.target_port = target_port
        self.host = host
        self._port = port
        self.max_connections = max_connections
        self.connect_timeout = connect_timeout
        self.blackholed = False
        self.accepted = 0
        self.refused = 0
        self.failed_connects = 0
        self.bytes_up = 0
        self.bytes_down = 0
        #: Failures of the proxy's own background tasks (the newest 16), also logged.
        self.errors: deque[BaseException] = deque(maxlen=16)
        self._server: asyncio.base_events.Server | None = None
        self._pairs: set[_Pair] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def for_url(cls, url: str, **options: Any) -> TcpProxy:
        """A proxy in front of the host and port of ``url``.

        Any TCP service will do: ``ws://host:port/...``, but also the store's
        ``postgresql://user@host:port/db`` or the broker's ``redis://host:port/0``. A URL without
        a port means its scheme's usual one (:data:`DEFAULT_PORTS`; 80 for a scheme not listed).
        """
        parts = urllib.parse.urlsplit(url)
        if not parts.hostname:
            raise ConfigError(f"no host in {url!r}")
        return cls(parts.hostname, parts.port or DEFAULT_PORTS.get(parts.scheme, 80), **options)

    # -- listening ---------------------------------------------------------------------------------

    async def start(self) -> TcpProxy:
        """Listen (again, on the same port after a :meth:`stop`); returns the proxy."""
        if self._server is not None:
            return self
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Pair(self).client, self.host, self._port)
        self._port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Stop listening and reset every relayed connection."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        self.cut()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=self.connect_timeout)
        if server is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 1.0)
        # Let the transports deliver connection_lost, so nothing is left half torn down.
        for _ in range(3):
            await asyncio.sleep(0)

    @property
    def listening(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._server is not None

    @property
    def port(self) -> int:
        """The port the proxy listens on (known once started)."""
        if not self._port:
            raise ConfigError("the proxy has no port until it is started")
        return self._port

    @property
    def connections(self) -> int:
        """How many connections are being relayed now."""
        return len(self._pairs)

    def url_for(self, url: str) -> str:
        """``url`` with its host and port replaced by the proxy's.

        Everything else is kept: path, query, and the ``user:password@`` of a database URL.
        """
        parts = urllib.parse.urlsplit(url)
        userinfo, _, _ = parts.netloc.rpartition("@")
        host = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 literal
        netloc = f"{userinfo}@{host}:{self.port}" if userinfo else f"{host}:{self.port}"
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))

    # -- faults ------------------------------------------------------------------------------------

    def blackhole(self) -> None:
        """Stop forwarding both ways without closing anything: a half-open connection.

        Bytes already relayed are delivered; new bytes wait in the kernels' buffers (and TCP
        flow control stops the senders when those fill). New connections are accepted by the
        kernel but nothing flows on them either.
        """
        self.blackholed = True
        for pair in list(self._pairs):
            pair.update_reading()

    def restore(self) -> None:
        """Forward again; everything that waited is delivered, in order."""
        self.blackholed = False
        for pair in list(self._pairs):
            pair.update_reading()

    def cut(self) -> None:
        """Reset every relayed connection (both ends see the TCP connection die, no close frame)."""
        for pair in list(self._pairs):
            pair.abort(reset=True)

    # -- bookkeeping -------------------------------------------------------------------------------

    def _admit(self, pair: _Pair) -> bool:
        if len(self._pairs) >= self.max_connections or self._server is None:
            self.refused += 1
            assert pair.client.transport is not None
            pair.client.transport.abort()
            return False
        self.accepted += 1
        self._pairs.add(pair)
        return True

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            assert error is not None
            log.error("proxy task failed", exc_info=error)
            self.errors.append(error)

    async def __aenter__(self) -> TcpProxy:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def __repr__(self) -> str:
        where = f"{self.host}:{self._port}" if self._port else "not started"
        state = "blackholed" if self.blackholed else "forwarding"
        return (
            f"<TcpProxy {where} -> {self.target_host}:{self.target_port} {state}, "
            f"{self.connections} connections>"
        )


# -- a client in a process that can be frozen ---------------------------------------------------------

#: The client :meth:`FrozenProcess.chat_client` runs: connect with ``ChatClient`` (no reconnect)
#: on the given engine, print a ``ready`` line, wait until the hub closes the connection, print a
#: ``closed`` line. Arguments: URL, token ("" for none), engine, the parent's pid.
CHAT_CLIENT_SCRIPT = r"""
import asyncio, json, os, signal, sys

def die_with_parent(parent):
    # A frozen child of a dead parent would stay stopped for ever, holding its socket.
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except Exception:
            pass
    if os.getppid() != parent:
        os._exit(1)

async def main(url, token, engine):
    from wslab.client import ChatClient, Disconnected
    client = ChatClient(url, token=token or None, engine=engine, reconnect=False)
    await client.connect()
    info = client.connection_info
    print(json.dumps({"event": "ready", "connection_id": info.connection_id,
                      "user_id": info.user_id, "pid": os.getpid()}), flush=True)
    gone = await client.next_event(Disconnected, timeout=None)
    print(json.dumps({"event": "closed", "code": gone.code, "reason": gone.reason}), flush=True)
    await client.close()

die_with_parent(int(sys.argv[4]))
asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
"""


class _Output:
    """The child's standard output, line by line, in a bounded buffer filled by a reader thread.

    Kept apart from :class:`FrozenProcess` so that the thread holds no reference to it: a
    forgotten process can then be garbage collected (and killed) while its child still runs.
    """

    def __init__(self, max_lines: int) -> None:
        self.lines: deque[str] = deque(maxlen=max_lines)
        self.dropped = 0
        self.eof = False
        self.cond = threading.Condition()

    def pump(self, stdout: IO[bytes], max_line: int) -> None:
        """Reader thread: move lines into the buffer until the pipe closes."""
        try:
            for raw in iter(lambda: stdout.readline(max_line), b""):
                with self.cond:
                    if len(self.lines) == self.lines.maxlen:
                        self.dropped += 1  # the oldest unread line makes room
                    self.lines.append(raw.decode("utf-8", "replace").rstrip("\r\n"))
                    self.cond.notify_all()
        except (OSError, ValueError):  # the pipe was closed under us
            pass
        finally:
            with self.cond:
                self.eof = True
                self.cond.notify_all()

    def take(self, timeout: float) -> str | None:
        """The oldest unread line; None at the end; OperationTimeout if none comes in time."""
        with self.cond:
            if not self.cond.wait_for(lambda: self.lines or self.eof, timeout):
                raise OperationTimeout(f"the child printed nothing within {timeout}s")
            return self.lines.popleft() if self.lines else None


_live_processes: weakref.WeakSet[FrozenProcess] = weakref.WeakSet()


@atexit.register
def _kill_live_processes() -> None:
    for process in list(_live_processes):
        process.kill()


class FrozenProcess:
    """A program in a child process that can be frozen (``SIGSTOP``), thawed and killed.

    ::

        with FrozenProcess.chat_client(hub.ws_url, token=hub.token("fred")) as fred:
            ready = await fred.start()         # {"event": "ready", "connection_id": ...}
            fred.freeze()                      # the kernel keeps its socket; it answers nothing
            ...
            fred.thaw()

    The child prints one JSON object per line on its standard output; :meth:`start` waits for
    the first (its "ready" line) and :meth:`read_json` reads the next ones. Its standard error
    goes to an anonymous temporary file (:meth:`stderr_tail` shows the end of it). POSIX only.
    """

    def __init__(
        self,
        args: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        max_lines: int = 100,
        max_line: int = 64 * 1024,
    ) -> None:
        if not hasattr(signal, "SIGSTOP"):
            raise ConfigError("freezing a process needs SIGSTOP/SIGCONT (POSIX)")
        if max_lines < 1 or max_line < 1:
            raise ConfigError("max_lines and max_line must be at least 1")
        self.args = list(args)
        self.env = dict(env) if env is not None else None
        self.max_line = max_line
        self.frozen = False
        self._output = _Output(max_lines)
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._reader: threading.Thread | None = None

    @classmethod
    def chat_client(
        cls, url: str, *, token: str | None = None, engine: str = "wslab", **options: Any
    ) -> FrozenProcess:
        """A child running a ``ChatClient`` connected to ``url`` (see :data:`CHAT_CLIENT_SCRIPT`)."""
        args = [
            sys.executable,
            "-c",
            CHAT_CLIENT_SCRIPT,
            url,
            token or "",
            engine,
            str(os.getpid()),
        ]
        return cls(args, **options)

    # -- life --------------------------------------------------------------------------------------

    async def start(self, timeout: float = 20.0) -> dict[str, Any]:
        """Start the child and return its first line of output, parsed as JSON.

        Raises :class:`~wslab.foundation.errors.OperationTimeout` (and kills the child) if no
        line comes within ``timeout`` seconds, :class:`RuntimeError` with the end of its
        standard error if it exits first.
        """
        if self._process is not None:
            raise ConfigError("this process was already started")
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the child
        # Started from the loop's own thread, on purpose: the bundled client's "die with the
        # parent" is tied to the thread that forks it.
        self._process = subprocess.Popen(
            self.args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=self.env,
            close_fds=True,
        )
        _live_processes.add(self)
        assert self._process.stdout is not None
        self._reader = threading.Thread(
            target=self._output.pump,
            args=(self._process.stdout, self.max_line),
            name=f"frozen-{self._process.pid}",
            daemon=True,
        )
        self._reader.start()
        try:
            return await self.read_json(timeout)
        except OperationTimeout as error:
            detail = self.stderr_tail()
            self.kill()
            raise OperationTimeout(f"{error.message}; its stderr: {detail or '(empty)'}") from None
        except BaseException:
            self.kill()
            raise

    async def read_line(self, timeout: float = 10.0) -> str:
        """The next line the child printed; :class:`EOFError` once it has exited and all were read."""

        if self._process is None:
            raise ConfigError("the process is not started")
        line = await asyncio.to_thread(self._output.take, timeout)
        if line is None:
            raise EOFError(f"the child exited (code {self.returncode}); {self.stderr_tail()}")
        return line

    async def read_json(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next line the child printed, parsed as a JSON object."""
        line = await self.read_line(timeout)
        try:
            value = json.loads(line)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            raise ValueError(f"the child printed {line[:200]!r}, not a JSON object")
        return value

    def freeze(self) -> None:
        """Stop the child (``SIGSTOP``): it runs no code; its sockets stay open in the kernel."""
        self._signal(signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        """Let a frozen child run again (``SIGCONT``)."""
        self._signal(signal.SIGCONT)
        self.frozen = False

    def _signal(self, signum: int) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            raise ProcessLookupError("the process is not running")
        process.send_signal(signum)

    def kill(self) -> None:
        """Kill the child (``SIGKILL`` works on a frozen one too) and release everything. Idempotent."""
        process = self._process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        if process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(5.0)
        self.frozen = False
        if self._reader is not None:
            self._reader.join(1.0)  # the pipe closed with the child: the reader ends
        if (
            process is not None
            and process.stdout is not None
            and not (self._reader is not None and self._reader.is_alive())
        ):
            process.stdout.close()
        if self._stderr is not None and not self._stderr.closed:
            self._stderr.close()
        _live_processes.discard(self)

    async def wait(self, timeout: float = 10.0) -> int:
        """Wait for the child to exit by itself; its exit code. OperationTimeout if it does not."""
        process = self._process
        if process is None:
            raise ConfigError("the process is not started")
        try:
            return await asyncio.to_thread(process.wait, timeout)
        except subprocess.TimeoutExpired:
            raise OperationTimeout(f"the child did not exit within {timeout}s") from None

    # -- looking at it -----------------------------------------------------------------------------

    @property
    def dropped_lines(self) -> int:
        """Lines of standard output dropped because ``max_lines`` were waiting unread."""
        return self._output.dropped

    @property
    def pid(self) -> int | None:
        """The child's process id (None before :meth:`start`)."""
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        """True while the child exists (frozen or not)."""
        return self._process is not None and self._process.poll() is None

    @property
    def returncode(self) -> int | None:
        """The exit status once it has exited (negative: killed by that signal)."""
        return self._process.poll() if self._process is not None else None

    def stderr_tail(self, limit: int = 2000) -> str:
        """The last ``limit`` characters the child wrote to its standard error."""
        stream = self._stderr
        if stream is None or stream.closed:
            return ""
        stream.flush()
        size = stream.seek(0, os.SEEK_END)
        stream.seek(max(0, size - limit))
        return stream.read().decode("utf-8", "replace")

    def __enter__(self) -> FrozenProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()

    async def __aenter__(self) -> FrozenProcess:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.kill()

    def __del__(self) -> None:
        # The last line of defence: a frozen child must never outlive its owner.
        with contextlib.suppress(Exception):
            self.kill()

    def __repr__(self) -> str:
        if self._process is None:
            state = "not started"
        elif self.running:
            state = "frozen" if self.frozen else "running"
        else:
            state = f"exited {self.returncode}"
        return f"<FrozenProcess pid={self.pid} {state}>"
