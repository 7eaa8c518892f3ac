"""A TCP relay that can fail on cue: latency, jitter, bandwidth, stall, partition, reset; and a tap.

:class:`TcpProxy` relays TCP between clients and a server (a hub, PostgreSQL, Redis: it knows
no protocol). Every fault is a plain method, switchable while traffic flows, and most take a
``direction`` — ``"up"`` (client to server, also spelt ``"client->server"``), ``"down"``
(``"server->client"``) or ``"both"``:

- :meth:`TcpProxy.set_latency` delays every chunk by ``delay`` plus a random ``jitter`` (order
  is preserved: a chunk never overtakes the one before it, as on one TCP connection);
- :meth:`TcpProxy.set_bandwidth` caps the throughput with a token bucket;
- :meth:`TcpProxy.stall` stops forwarding (nothing closes; TCP pushes back on the sender),
  :meth:`TcpProxy.unstall` resumes; :meth:`TcpProxy.partition` stalls both ways for every
  connection and :meth:`TcpProxy.heal` ends it (``blackhole``/``restore`` are the old names);
- :meth:`TcpProxy.reset` (alias ``cut``) resets every relayed connection with a RST
  (``SO_LINGER`` 0), as a middlebox that drops a connection does.

:meth:`TcpProxy.tap` returns a :class:`Tap`: a read-only, bounded copy of what each relayed
connection carried, shown as raw bytes, the HTTP upgrade request, and WebSocket frames decoded
by the foundation's :class:`~wslab.foundation.frames.FrameParser`. On ``ws://`` a bearer token
in the upgrade request is plain to read; on ``wss://`` the same bytes are ciphertext.

Bounds
    At most ``max_connections`` connections are relayed (more are refused at once). A direction
    with no shaping buffers nothing: a side whose peer does not keep up stops being read (the
    write buffer's high-water mark). A shaped direction (latency or bandwidth) holds at most
    ``max_buffer`` bytes per connection; past that its source stops being read, so memory stays
    bounded and TCP pushes back on the sender. A tap keeps at most ``max_bytes`` per connection
    and direction, and the newest ``max_connections`` connections.

This module is the proxy server and the relay of each connection pair; what a direction does
to the bytes (:class:`LinkShape`, the bounded delay line) is in :mod:`.shaping`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import struct
import urllib.parse
from collections import deque
from collections.abc import Mapping
from typing import Any, cast

from wslab.foundation.errors import ConfigError

from .shaping import DIRECTIONS as DIRECTIONS  # its old home; re-exported
from .shaping import LinkShape, _directions, _Lane
from .tap import Tap

__all__ = ["DEFAULT_PORTS", "LinkShape", "Tap", "TcpProxy"]

log = logging.getLogger("wslab.lab.faults")
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
        # asyncio types the argument for every kind of protocol; a stream's is a Transport.
        self.transport = cast(asyncio.Transport, transport)
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

    _ids = itertools.count(1)

    def __init__(self, proxy: TcpProxy) -> None:
        self.proxy = proxy
        self.id = next(self._ids)
        self.client = _Side(self, "client")
        self.server: _Side | None = None
        self.lanes: dict[str, _Lane] = {"up": _Lane(self, "up"), "down": _Lane(self, "down")}

    def peer_of(self, side: _Side) -> _Side | None:
        return self.server if side is self.client else self.client

    def target_of(self, direction: str) -> _Side | None:
        return self.server if direction == "up" else self.client

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
        """Read a side only while its direction flows and the other side takes what it gets."""
        for side in (self.client, self.server):
            if side is None:
                continue
            direction = "up" if side is self.client else "down"
            lane = self.lanes[direction]
            peer = self.peer_of(side)
            ready = (
                peer is not None
                and peer.transport is not None
                and not peer.lost
                and not peer.write_paused
            )
            flowing = not self.proxy.shapes[direction].stalled and not lane.full
            side.set_reading(ready and flowing)
        for lane in self.lanes.values():
            lane.wake.set()  # a pump waiting on the target or a stall looks again

    def forward(self, source: _Side, data: bytes) -> None:
        direction = "up" if source is self.client else "down"
        for tap in self.proxy._taps:
            tap._record(self.id, direction, data)
        lane = self.lanes[direction]
        if self.proxy.shapes[direction].shaped or lane.queue:
            lane.push(data)
            if lane.full:
                self.update_reading()
            return
        target = self.peer_of(source)
        if target is None or target.transport is None or target.transport.is_closing():
            return
        target.transport.write(data)
        self.count(direction, len(data))

    def count(self, direction: str, size: int) -> None:
        if direction == "up":
            self.proxy.bytes_up += size
        else:
            self.proxy.bytes_down += size

    def half_closed(self, source: _Side) -> None:
        """One end shut its sending side: pass the FIN on, close when both have."""
        target = self.peer_of(source)
        lane = self.lanes["up" if source is self.client else "down"]
        if lane.queue:
            lane.eof_pending = True  # the FIN must not overtake the bytes before it
            return
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
            for lane in self.lanes.values():
                lane.cancel()
            self.proxy._pairs.discard(self)

    def close(self) -> None:
        for side in (self.client, self.server):
            if side is not None and side.transport is not None:
                side.transport.close()

    def abort(self, reset: bool = False) -> None:
        for lane in self.lanes.values():
            lane.cancel()
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
        max_buffer: int = 1024 * 1024,
    ) -> None:
        if max_connections < 1:
            raise ConfigError("max_connections must be at least 1")
        if max_buffer < 1:
            raise ConfigError("max_buffer must be at least 1 byte")
        self.target_host = target_host
        self.target_port = target_port
        self.host = host
        self._port = port
        self.max_connections = max_connections
        self.connect_timeout = connect_timeout
        #: Bytes a shaped direction may hold per connection before its source stops being read.
        self.max_buffer = max_buffer
        #: What each direction does to its bytes: ``shapes["up"]`` and ``shapes["down"]``.
        self.shapes: dict[str, LinkShape] = {"up": LinkShape(), "down": LinkShape()}
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
        self._taps: list[Tap] = []

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
    def buffered(self) -> int:
        """Bytes the proxy holds now in its delay lines (each bounded by ``max_buffer`` + one read)."""
        return sum(lane.queued for pair in self._pairs for lane in pair.lanes.values())

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

    def set_latency(self, delay: float, jitter: float = 0.0, direction: str = "both") -> None:
        """Delay every chunk by ``delay`` seconds plus up to ``jitter`` more (uniform), in order.

        Applies at once, to the connections being relayed too. ``set_latency(0)`` removes it.
        """
        if not (delay >= 0 and jitter >= 0):  # also refuses NaN
            raise ConfigError(f"delay and jitter must be >= 0 seconds; got {delay}, {jitter}")
        for name in _directions(direction):
            self.shapes[name].delay = float(delay)
            self.shapes[name].jitter = float(jitter)
        self._update()

    def set_bandwidth(
        self, rate: float | None, direction: str = "both", *, burst: int | None = None
    ) -> None:
        """Cap the throughput at ``rate`` bytes per second (a token bucket); None removes the cap.

        ``burst`` (default 16 KiB, at most ``rate``) is what may leave at once after a pause.
        """
        if rate is not None and not rate > 0:
            raise ConfigError(f"rate must be > 0 bytes per second or None; got {rate}")
        if burst is not None and burst < 1:
            raise ConfigError(f"burst must be at least 1 byte; got {burst}")
        for name in _directions(direction):
            shape = self.shapes[name]
            shape.rate = float(rate) if rate is not None else None
            if burst is not None:
                shape.burst = burst
            elif rate is not None:
                shape.burst = max(1, min(16 * 1024, int(rate)))
        self._update()

    def stall(self, direction: str = "both") -> None:
        """Stop forwarding in ``direction`` without closing anything (drop-like, nothing is lost).

        Bytes already relayed are delivered; new bytes wait in the kernels' buffers, and TCP
        flow control stops the sender when those fill.
        """
        for name in _directions(direction):
            self.shapes[name].stalled = True
        self._update()

    def unstall(self, direction: str = "both") -> None:
        """Forward again in ``direction``; what waited is delivered, in order."""
        for name in _directions(direction):
            self.shapes[name].stalled = False
        self._update()

    def partition(self) -> None:
        """The network between clients and server is gone: nothing flows either way, nothing closes.

        New connections are accepted by the kernel but nothing flows on them either.
        """
        self.stall("both")

    def heal(self) -> None:
        """End a partition (and any stall): everything that waited is delivered, in order."""
        self.unstall("both")

    def blackhole(self) -> None:
        """The same as :meth:`partition` (the name the heartbeat chapter uses)."""
        self.partition()

    def restore(self) -> None:
        """The same as :meth:`heal`."""
        self.heal()

    def clear(self) -> None:
        """Remove every fault: no latency, no cap, no stall."""
        for shape in self.shapes.values():
            shape.delay = shape.jitter = 0.0
            shape.rate = None
            shape.stalled = False
        self._update()

    @property
    def blackholed(self) -> bool:
        """True while both directions are stalled (a partition)."""
        return self.shapes["up"].stalled and self.shapes["down"].stalled

    def reset(self) -> None:
        """Reset every relayed connection with a RST (both ends see it die, no close frame)."""
        for pair in list(self._pairs):
            pair.abort(reset=True)

    def cut(self) -> None:
        """The same as :meth:`reset`."""
        self.reset()

    def tap(self, *, max_bytes: int = 256 * 1024, max_connections: int = 16) -> Tap:
        """Start recording what every relayed connection carries, from now on (see :class:`Tap`).

        Read-only: the bytes are copied, never changed or held back. ``tap.close()`` stops it.
        """
        tap = Tap(self, max_bytes=max_bytes, max_connections=max_connections)
        self._taps.append(tap)
        return tap

    def attach_tap(self, tap: Tap) -> Tap:
        """Attach a tap built elsewhere (a :class:`Tap` subclass that records differently, such
        as the dashboard's live frame stream); ``tap.close()`` detaches it."""
        self._taps.append(tap)
        return tap

    def _update(self) -> None:
        for pair in list(self._pairs):
            pair.update_reading()

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

    def _spawn(self, coroutine: Any) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

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
        shaped = [f"{name} {shape}" for name, shape in self.shapes.items() if shape != LinkShape()]
        if shaped and not self.blackholed:
            state = "; ".join(shaped)
        return (
            f"<TcpProxy {where} -> {self.target_host}:{self.target_port} {state}, "
            f"{self.connections} connections>"
        )
