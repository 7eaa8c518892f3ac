""":class:`ChatClient`: its state and the life of its connection.

This module holds what the client *is*: its settings and bounded state (``__init__``), connect and
close, the supervisor that notices a drop and reconnects with backoff (:mod:`.backoff`), and the
resume that rejoins rooms and starts recovery after every (re)connect. What the client *does*
comes from the parts it is assembled from, one module each:

- :mod:`.requests` — requests with refs and timeouts, and the calls built on them;
- :mod:`.incoming` — each message from the hub to its handler and an event;
- :mod:`.tracking` — per-room delivery in ``seq`` order, deduplicated;
- :mod:`.recovery` — fetching what a room missed from history;
- :mod:`.inbox` — the bounded inbox of events and the ways to read it.

The behaviour as a whole (acks, reconnect, recovery, bounds) is described in :mod:`wslab.client`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import random as random_module
import secrets
import urllib.parse
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from typing import Any

from wslab.foundation.codes import CloseCode, ErrorCode
from wslab.foundation.errors import (
    AuthenticationError,
    ConfigError,
    ConnectionBroken,
    ConnectionClosed,
    ConnectionClosedLocally,
    InvalidHandshakeResponse,
    OperationTimeout,
    PermissionDeniedError,
    WslabError,
)
from wslab.infrastructure.backoff import full_jitter
from wslab.infrastructure.connection import Connection
from wslab.infrastructure.engines import connect as engine_connect

from .bounds import MAX_BACKOFFS, MAX_LATENCIES
from .events import Connected, Disconnected, Event, Reconnected
from .inbox import InboxMixin
from .incoming import IncomingMixin
from .recovery import RecoveryMixin
from .requests import Pending, RequestsMixin
from .results import ClientStats
from .tracking import RoomTrack, TrackingMixin

__all__ = ["FINAL_CLOSE_CODES", "ChatClient"]

log = logging.getLogger("wslab.client")


# 4001/4003 are verdicts of the hub, not accidents: never reconnect after them.
FINAL_CLOSE_CODES = frozenset({CloseCode.AUTHENTICATION_FAILED, CloseCode.FORBIDDEN})


class ChatClient(RequestsMixin, IncomingMixin, RecoveryMixin, TrackingMixin, InboxMixin):
    """A client of the wslab chat hub: connect, chat, and survive disconnects.

    ::

        async with ChatClient(hub.ws_url, token=hub.token("alice")) as alice:
            ack = await alice.send_message("hello")
            async for event in alice:
                ...

    ``auth`` chooses how the token travels: ``"header"`` (``Authorization: Bearer``, the
    default), ``"message"`` (a first ``auth`` message, as browsers must) or ``"query"``
    (``?token=``, the weakest). ``token_provider`` (sync or async, returning a token) is called on
    ``auth:expiring`` to refresh the token. ``rng`` (anything with ``uniform``) and ``sleep``
    make the backoff schedule testable.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        username: str | None = None,
        auth: str = "header",
        engine: str = "wslab",
        reconnect: bool = True,
        backoff_initial: float = 0.1,
        backoff_max: float = 10.0,
        request_timeout: float = 10.0,
        max_inbox: int = 10_000,
        max_pending: int = 1000,
        max_room_messages: int = 1000,
        rooms: Iterable[str] = ("lobby",),
        token_provider: Callable[[], str | Awaitable[str]] | None = None,
        rng: Any = None,
        sleep: Callable[[float], Awaitable[Any]] | None = None,
    ) -> None:
        if auth not in ("header", "message", "query"):
            raise ConfigError("auth must be 'header', 'message' or 'query'")
        if backoff_initial <= 0 or backoff_max < backoff_initial:
            raise ConfigError("backoff needs 0 < backoff_initial <= backoff_max")
        if min(max_inbox, max_pending, max_room_messages) < 1 or request_timeout <= 0:
            raise ConfigError("max_inbox, max_pending, max_room_messages, request_timeout > 0")
        self.url = url
        self.token = token
        self.username = username
        self.auth = auth
        self.engine = engine
        self.reconnect = reconnect
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.request_timeout = request_timeout
        self.max_inbox = max_inbox
        self.max_pending = max_pending
        self.max_room_messages = max_room_messages
        self.token_provider = token_provider
        self.rng = rng if rng is not None else random_module.Random()
        self._sleep = sleep if sleep is not None else asyncio.sleep

        self.stats = ClientStats()
        #: Send -> own message received back from the hub, in seconds (``time.perf_counter``).
        self.latencies: deque[float] = deque(maxlen=MAX_LATENCIES)
        #: The backoff delays actually slept, in order (for plots of the reconnect schedule).
        self.backoff_delays: deque[float] = deque(maxlen=MAX_BACKOFFS)
        self.dropped_events = 0
        #: What ``system:connected`` said (``None`` before the first connection).
        self.connection_info: Connected | None = None

        self._rooms: dict[str, None] = dict.fromkeys(rooms)  # joined rooms, in join order
        self._tracks: dict[str, RoomTrack] = {}
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._inbox: deque[Event] = deque()
        self._inbox_changed = asyncio.Event()
        self._pending: dict[str, Pending] = {}
        self._abandoned: OrderedDict[str, None] = OrderedDict()  # chat refs that may ack late
        self._awaiting_echo: OrderedDict[str, float] = OrderedDict()  # message_id -> sent at
        self._early_echo: OrderedDict[str, float] = OrderedDict()  # echo before ack
        self._ref_prefix = secrets.token_hex(4) + "-"
        self._refs = itertools.count(1)
        self._conn: Connection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._connected = asyncio.Event()
        self._closing = False
        self._finished = False

    # -- lifecycle --------------------------------------------------------------------------------

    async def connect(self) -> ChatClient:
        """Connect, wait for ``system:connected``, join the rooms; return ``self``.

        Raises :class:`AuthenticationError` if the hub refuses the token (4001),
        :class:`PermissionDeniedError` on 4003, or the transport's error if the hub is not there.
        """
        if self._supervisor is not None or self._conn is not None:
            raise ConfigError("this client is already connected")
        if self._finished:
            raise ConfigError("a closed client cannot connect again; create a new one")
        conn, hello = await self._open()
        self._install(conn, hello)
        try:
            await self._resume(initial=True)
        except BaseException:
            await self.close()
            raise
        self._supervisor = asyncio.ensure_future(self._supervise())
        self._supervisor.add_done_callback(self._supervisor_done)
        return self

    async def close(self) -> None:
        """Close the connection (1000), stop reconnecting, fail what is pending. Idempotent."""
        if self._closing:
            return
        self._closing = True
        current = asyncio.current_task()
        if self._supervisor is not None and self._supervisor is not current:
            self._supervisor.cancel()
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(ConnectionClosed, OSError):
                await conn.close()
            self._emit(Disconnected(conn.close_code, "closed by the client", will_reconnect=False))
        tasks = [t for t in (self._reader, self._supervisor, *self._tasks) if t is not None]
        for task in tasks:
            if task is not current:
                task.cancel()
        waiting = [t for t in tasks if t is not current]
        if waiting:
            await asyncio.gather(*waiting, return_exceptions=True)
        self._conn = None
        self._connected.clear()
        self._fail_pending(ConnectionClosedLocally("the client was closed"))
        self._finish()

    async def __aenter__(self) -> ChatClient:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        """True while a connection is open and admitted."""
        return self._connected.is_set()

    @property
    def closed(self) -> bool:
        """True once the client is done: closed, or refused for good (4001/4003)."""
        return self._finished

    @property
    def user_id(self) -> str | None:
        """The user id the hub assigned (the token's ``sub``, or a guest id)."""
        return self.connection_info.user_id if self.connection_info else None

    @property
    def rooms(self) -> list[str]:
        """The rooms this client is in (rejoined after every reconnect)."""
        return list(self._rooms)

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until connected (e.g. after a drop, while reconnecting)."""
        if self._finished:
            raise ConnectionClosedLocally("the client is closed")
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except asyncio.TimeoutError:
            raise OperationTimeout(f"not connected within {timeout}s") from None

    def backoff_delay(self, attempt: int) -> float:
        """The sleep before reconnect attempt ``attempt`` (0-based): full jitter, capped."""
        return full_jitter(attempt, self.backoff_initial, self.backoff_max, self.rng)

    # -- opening a connection ---------------------------------------------------------------------

    def _target(self) -> tuple[str, list[tuple[str, str]]]:
        url, headers = self.url, []
        if self.token is not None and self.auth == "header":
            headers.append(("Authorization", f"Bearer {self.token}"))
        elif self.token is not None and self.auth == "query":
            parts = urllib.parse.urlsplit(url)
            query = urllib.parse.parse_qsl(parts.query)
            query = [(k, v) for k, v in query if k != "token"] + [("token", self.token)]
            url = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))
        return url, headers

    async def _open(self) -> tuple[Connection, dict[str, Any]]:
        """One connection attempt: handshake, authentication, ``system:connected``."""
        url, headers = self._target()
        try:
            conn = await engine_connect(
                url, headers=headers, engine=self.engine, open_timeout=self.request_timeout
            )
        except InvalidHandshakeResponse as error:
            if error.status == 401:
                raise AuthenticationError(f"the hub refused the token: {error.message}") from error
            if error.status == 403:
                raise PermissionDeniedError(f"the hub refused us: {error.message}") from error
            raise
        try:
            if self.auth == "message" and self.token is not None:
                await conn.send(json.dumps({"type": "auth", "token": self.token}))
                self.stats.sent += 1
            hello = await asyncio.wait_for(self._await_hello(conn), self.request_timeout)
        except asyncio.TimeoutError:
            conn.abort("no system:connected in time")
            raise OperationTimeout(f"no system:connected within {self.request_timeout}s") from None
        except ConnectionClosed as error:
            code = conn.close_code if conn.close_code is not None else error.received_code
            reason = conn.close_reason or error.reason
            if code == CloseCode.AUTHENTICATION_FAILED:
                raise AuthenticationError(reason or "authentication failed") from error
            if code == CloseCode.FORBIDDEN:
                raise PermissionDeniedError(reason or "forbidden") from error
            raise
        except BaseException:
            conn.abort("connect failed")
            raise
        return conn, hello

    async def _await_hello(self, conn: Connection) -> dict[str, Any]:
        while True:
            raw = await conn.recv()
            self.stats.received += 1
            message = self._parse(raw)
            if message is None:
                continue
            if message.get("type") == "system:connected":
                return message
            self._dispatch(message)  # anything earlier (a warning, an error) is still reported

    def _install(self, conn: Connection, hello: Mapping[str, Any]) -> None:
        self._conn = conn
        info = self.connection_info = Connected.from_wire(hello)
        self._reader = asyncio.ensure_future(self._read_loop(conn))
        self._connected.set()
        self._emit(info)

    # -- staying connected ------------------------------------------------------------------------

    async def _supervise(self) -> None:
        """Wait for the connection to end; reconnect unless that was final."""
        while True:
            assert self._reader is not None
            await asyncio.wait({self._reader})
            conn = self._conn
            code = conn.close_code if conn is not None else None
            reason = conn.close_reason if conn is not None else ""
            self._conn = None
            self._connected.clear()
            self._fail_pending(
                ConnectionBroken("the connection to the hub ended", close_code=code, reason=reason)
            )
            if self._closing:
                return
            final = code in FINAL_CLOSE_CODES or not self.reconnect
            self._emit(Disconnected(code, reason, will_reconnect=not final))
            if final:
                self._finish()
                return
            opened = await self._reconnect()
            if opened is None:
                return
            conn, hello, attempt = opened
            self.stats.reconnects += 1
            self._install(conn, hello)
            self._emit(Reconnected(attempt))
            self._spawn(self._resume(initial=False), "resume")

    async def _reconnect(self) -> tuple[Connection, dict[str, Any], int] | None:
        """Attempts with backoff until one succeeds; None if refused for good."""
        attempt = 0
        while True:
            delay = self.backoff_delay(attempt)
            self.backoff_delays.append(delay)
            await self._sleep(delay)
            attempt += 1
            try:
                conn, hello = await self._open()
            except (AuthenticationError, PermissionDeniedError) as error:
                code = error.close_code
                self._emit(Disconnected(int(code) if code else None, error.message, False))
                self._finish()
                return None
            except (OSError, WslabError, asyncio.TimeoutError) as error:
                self.stats.failed_attempts += 1
                log.info("reconnect attempt %d to %s failed: %s", attempt, self.url, error)
                continue
            return conn, hello, attempt

    def _supervisor_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            log.error("the connection supervisor failed", exc_info=error)
            self._emit_error(ErrorCode.INTERNAL_ERROR, f"supervisor failed: {error!r}")
            self._finish()

    async def _resume(self, *, initial: bool) -> None:
        """After (re)connecting: rejoin rooms, then recover what was missed, room by room."""
        tracks = [self._track(room) for room in self._rooms]
        tracks += [t for t in self._tracks.values() if t.peer is not None]
        for track in tracks:
            track.hold = True  # live messages wait until the room has caught up
        try:
            for room in list(self._rooms):
                try:
                    self._note_head(self._track(room), await self._join_request(room))
                except (ConnectionClosed, OperationTimeout):
                    raise
                except WslabError as error:
                    if initial:
                        raise
                    self._emit_error(error.code, f"rejoining {room!r} failed: {error.message}")
                    self._rooms.pop(room, None)
                    self._tracks.pop(room, None)
        except BaseException:
            for track in tracks:
                track.hold = False
            raise
        started = []
        for track in tracks:
            if self._tracks.get(track.key) is not track:
                continue  # left (or failed to rejoin) meanwhile
            task = self._start_recovery(track)
            if task is None:
                track.hold = False
                self._drain(track)
            else:
                started.append(task)
        if started:
            await asyncio.wait(started)

    async def _read_loop(self, conn: Connection) -> None:
        async for raw in conn:
            self.stats.received += 1
            message = self._parse(raw)
            if message is None:
                continue
            try:
                self._dispatch(message)
            except Exception as error:  # one bad message must not end the connection
                log.exception("handling a %r message failed", message.get("type"))
                self._emit_error(ErrorCode.INTERNAL_ERROR, f"handling a message failed: {error!r}")

    def _parse(self, raw: str | bytes) -> dict[str, Any] | None:
        try:
            message = json.loads(raw)
        except ValueError:
            message = None
        if not isinstance(message, dict):
            self._emit_error(ErrorCode.INVALID_INPUT, "the hub sent a message that is not JSON")
            return None
        return message

    # -- requests ---------------------------------------------------------------------------------

    # -- background tasks ---------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._task_done(t, name))
        return task

    def _task_done(self, task: asyncio.Task[Any], name: str) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is None or isinstance(error, ConnectionClosed):
            return  # a drop is handled by the supervisor
        log.warning("background task %r failed: %r", name, error)
        self._emit_error(getattr(error, "code", ErrorCode.INTERNAL_ERROR), f"{name}: {error}")

    def __repr__(self) -> str:
        state = "closed" if self._finished else "connected" if self.connected else "connecting"
        return f"<ChatClient {self.url} {state} user={self.user_id}>"
