"""``ChatClient``: the asyncio client of the wslab chat hub.

Notebooks, tests, benchmarks and load tools all talk to the hub through this one class. It speaks
the chat protocol (``docs/protocol.md``) and adds what a real client needs on a real network:

- **Requests with acks.** Every request gets a unique ``ref``; the reply with the same ``ref``
  resolves it (``ack``, ``chat:history``, ``presence:list``...) or fails it with the exception
  mapped from the ``error`` envelope's code (``RATE_LIMITED`` -> :class:`RateLimitedError`...).
  At most ``max_pending`` requests wait at once; all of them fail with ``ConnectionClosed`` when
  the connection drops. Chat messages are *not* resent automatically: the hub gives each message
  its own id, so a resend after a lost ack could store it twice. A message whose ack was lost
  comes back through recovery instead (it is in the store), and a late ack for a request that
  already failed (timeout, ``DEGRADED``) is reported as a :class:`LateAck` event.
- **Reconnect** after an unexpected close (not after :meth:`ChatClient.close`, and never after
  4001/4003, which are verdicts, not accidents), with capped exponential backoff and *full
  jitter*: before attempt ``n`` (from 0) it sleeps ``uniform(0, min(backoff_max,
  backoff_initial * 2**n))``, so a thousand clients dropped at once do not come back in step. The
  counter starts again from 0 after every successful reconnect.
- **Recovery without gaps or duplicates.** The client remembers the last ``seq`` it delivered per
  room. After a reconnect it rejoins its rooms and pages through ``chat:history`` with
  ``since_seq`` (``limit`` 100 while pages come back full); live messages that arrive meanwhile
  are held and merged, so each room's messages are delivered in ``seq`` order, each once (deduped
  by ``message_id``). A live ``seq`` that jumps by more than one, or a ``system:resync`` from the
  hub, triggers the same recovery. Where the store no longer has the missing messages
  (``complete: false``) a :class:`HistoryGap` event says so — never a silent gap.
- **Typed events** (small frozen dataclasses) in one bounded inbox, read with ``async for event
  in client`` or :meth:`ChatClient.next_event`.
- **Numbers for notebooks**: :attr:`ChatClient.stats` and :attr:`ChatClient.latencies` (the
  delay from sending a message to receiving it back from the hub).

A first join of a room asks the hub for its newest message (``chat:history`` with ``limit`` 1):
that ``seq`` is the baseline from which later gaps are measured, so a client that saw no message
in a room before a disconnect still recovers what was said while it was away.

Bounds and what happens at them:

====================  ==========================  ================================================
what                  bound                       at the limit
====================  ==========================  ================================================
inbox of events       ``max_inbox``               the oldest event is dropped, ``dropped_events``
pending requests      ``max_pending``             the new request fails (:class:`TooManyPending`)
messages per room     ``max_room_messages``       ``messages(room)`` forgets the oldest
held live messages    ``max_inbox`` per room      the newest are dropped; recovery refetches them
seen message ids      ``_MAX_SEEN``               the oldest id is forgotten (seq still dedupes)
followed rooms + DMs  ``_MAX_TRACKS``             the oldest idle direct conversation or left
                                                  room is forgotten (its seq restarts from the
                                                  next message)
latencies, backoffs   10 000 / 1 000              the oldest sample is forgotten
====================  ==========================  ================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import json
import logging
import random as random_module
import secrets
import time
import urllib.parse
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from wslab.foundation.codes import CloseCode, ErrorCode
from wslab.foundation.errors import (
    AuthenticationError,
    ConfigError,
    ConflictError,
    ConnectionBroken,
    ConnectionClosed,
    ConnectionClosedLocally,
    DegradedError,
    DependencyError,
    InvalidHandshakeResponse,
    NotFoundError,
    OperationTimeout,
    PermissionDeniedError,
    RateLimitedError,
    ValidationError,
    WslabError,
)
from wslab.infrastructure.connection import Connection
from wslab.infrastructure.engines import connect as engine_connect
from wslab.integration.store import dm_room, parse_timestamp

__all__ = [
    "Ack",
    "AuthExpiring",
    "ChatClient",
    "ChatMessage",
    "ClientStats",
    "Connected",
    "Disconnected",
    "ErrorEvent",
    "Event",
    "History",
    "HistoryGap",
    "LateAck",
    "PresenceJoin",
    "PresenceLeave",
    "Reconnected",
    "SystemBroadcast",
    "TooManyPending",
    "Typing",
    "UnknownEvent",
    "User",
    "error_from_envelope",
]

log = logging.getLogger("wslab.client")

HISTORY_PAGE = 100  # the protocol's maximum `limit`: recovery pages with it
_MAX_SEEN = 10_000  # message ids remembered for deduplication
_MAX_LATENCIES = 10_000
_MAX_BACKOFFS = 1_000
_MAX_TRACKED_REFS = 1_000  # refs/ids kept for late acks and latency matching
_MAX_TRACKS = 1_000  # rooms and direct conversations whose seq the client follows
FINAL_CLOSE_CODES = frozenset({CloseCode.AUTHENTICATION_FAILED, CloseCode.FORBIDDEN})

E = TypeVar("E", bound="Event")


# -- errors ---------------------------------------------------------------------------------------


class TooManyPending(RateLimitedError):
    """``max_pending`` requests are already waiting for their replies: this one was not sent."""


_ERRORS: dict[int, type[WslabError]] = {
    ErrorCode.INVALID_INPUT: ValidationError,
    ErrorCode.NOT_FOUND: NotFoundError,
    ErrorCode.PERMISSION_DENIED: PermissionDeniedError,
    ErrorCode.CONFLICT: ConflictError,
    ErrorCode.DEPENDENCY_ERROR: DependencyError,
    ErrorCode.TIMEOUT: OperationTimeout,
    ErrorCode.RATE_LIMITED: RateLimitedError,
    ErrorCode.DEGRADED: DegradedError,
}


def error_from_envelope(envelope: Mapping[str, Any]) -> WslabError:
    """The exception for an ``error`` envelope of the protocol.

    The class follows ``error.code`` (``INVALID_INPUT`` -> :class:`ValidationError`, ...; an
    unknown code gives a plain :class:`WslabError` with ``INTERNAL_ERROR``). The exception also
    carries ``ref``, ``message_id`` (set by the hub on ``DEGRADED``: the message was relayed but
    not stored yet), ``retry_after`` if given, and ``details`` (the whole ``error`` object).
    """
    body = envelope.get("error")
    if not isinstance(body, Mapping):
        body = {}
    raw_code = body.get("code")
    message = body.get("message")
    message = message if isinstance(message, str) and message else "the hub refused the request"
    cls = _ERRORS.get(raw_code) if isinstance(raw_code, int) else None
    if cls is None:
        code = ErrorCode(raw_code) if raw_code in ErrorCode._value2member_map_ else None
        error = WslabError(message, code=code or ErrorCode.INTERNAL_ERROR)
    else:
        error = cls(message)
    error.ref = envelope.get("ref")  # type: ignore[attr-defined]
    error.message_id = body.get("message_id", envelope.get("message_id"))  # type: ignore[attr-defined]
    error.retry_after = body.get("retry_after", envelope.get("retry_after"))  # type: ignore[attr-defined]
    error.details = dict(body)  # type: ignore[attr-defined]
    return error


# -- values returned by requests -------------------------------------------------------------------


@dataclass(frozen=True)
class User:
    """A user present in a room."""

    user_id: str
    username: str


@dataclass(frozen=True)
class Ack:
    """The hub stored a message: its id and ``seq``; ``rtt`` is send -> ack in seconds."""

    ref: str
    message_id: str | None
    seq: int | None
    rtt: float


@dataclass(frozen=True)
class History:
    """One page of ``chat:history``: messages oldest first; ``complete`` false if some are gone."""

    room: str
    messages: tuple[ChatMessage, ...]
    complete: bool = True


# -- events ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """Base of every event in the client's inbox (``next_event(Event)`` matches them all)."""


@dataclass(frozen=True)
class ChatMessage(Event):
    """A chat message; ``recovered`` is true if it came from history after a gap or reconnect."""

    room: str
    message_id: str
    seq: int | None
    from_user: str
    from_username: str
    to_user: str | None
    content: str
    timestamp: datetime | None
    recovered: bool = False

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], *, recovered: bool = False) -> ChatMessage:
        """Build from a ``chat:message`` object (live or inside a ``chat:history`` page)."""
        raw_ts = data.get("timestamp")
        try:
            timestamp = parse_timestamp(raw_ts) if isinstance(raw_ts, str) else None
        except ValidationError:
            timestamp = None  # shown as unknown rather than dropping the message
        seq = data.get("seq")
        return cls(
            room=str(data.get("room", "")),
            message_id=str(data.get("message_id", "")),
            seq=seq if isinstance(seq, int) and not isinstance(seq, bool) else None,
            from_user=str(data.get("from_user", "")),
            from_username=str(data.get("from_username", "")),
            to_user=data.get("to_user"),
            content=str(data.get("content", "")),
            timestamp=timestamp,
            recovered=recovered,
        )


@dataclass(frozen=True)
class Typing(Event):
    """Someone started or stopped typing in a room."""

    room: str
    user_id: str
    username: str
    is_typing: bool


@dataclass(frozen=True)
class PresenceJoin(Event):
    """A user became present in a room."""

    room: str
    user_id: str
    username: str


@dataclass(frozen=True)
class PresenceLeave(Event):
    """A user is no longer present in a room."""

    room: str
    user_id: str
    username: str


@dataclass(frozen=True)
class SystemBroadcast(Event):
    """An announcement to everyone (``admin:broadcast``)."""

    content: str
    from_user: str | None = None
    timestamp: datetime | None = None


@dataclass(frozen=True)
class AuthExpiring(Event):
    """The token expires in ``expires_in`` seconds; the hub closes with 4001 unless refreshed."""

    expires_in: float


@dataclass(frozen=True)
class HistoryGap(Event):
    """Messages of ``room`` after ``after_seq`` are gone from the hub's store (retention)."""

    room: str
    after_seq: int


@dataclass(frozen=True)
class Connected(Event):
    """The hub admitted this connection (``system:connected``)."""

    connection_id: str
    user_id: str
    server: str
    username: str = ""
    protocol_version: str = ""
    roles: tuple[str, ...] = ()

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Connected:
        """Build from a ``system:connected`` message."""
        roles = data.get("roles")
        return cls(
            connection_id=str(data.get("connection_id", "")),
            user_id=str(data.get("user_id", "")),
            server=str(data.get("server", "")),
            username=str(data.get("username", "")),
            protocol_version=str(data.get("protocol_version", "")),
            roles=tuple(str(r) for r in roles) if isinstance(roles, list) else (),
        )


@dataclass(frozen=True)
class Disconnected(Event):
    """The connection ended with ``code``; ``will_reconnect`` says whether the client retries."""

    code: int | None
    reason: str
    will_reconnect: bool


@dataclass(frozen=True)
class Reconnected(Event):
    """The client is back after ``attempt`` connection attempts; recovery follows."""

    attempt: int


@dataclass(frozen=True)
class ErrorEvent(Event):
    """An error no request was waiting for (an unsolicited ``error``, or a client-side failure)."""

    code: int
    name: str
    message: str
    ref: str | None = None


@dataclass(frozen=True)
class LateAck(Event):
    """An ack for a message whose request had already failed (timeout, ``DEGRADED``)."""

    ref: str
    message_id: str | None
    seq: int | None


@dataclass(frozen=True)
class UnknownEvent(Event):
    """A message of a type this client does not know (a newer hub): kept, not lost."""

    type: str
    data: Mapping[str, Any]


# -- bookkeeping ----------------------------------------------------------------------------------


@dataclass
class ClientStats:
    """Counters of one client; :meth:`as_dict` gives a row for a pandas DataFrame."""

    sent: int = 0
    received: int = 0
    acks: int = 0
    errors: int = 0
    reconnects: int = 0
    failed_attempts: int = 0
    recovered: int = 0
    duplicates: int = 0
    gaps: int = 0
    last_rtt: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """The counters as a plain dict."""
        return asdict(self)


@dataclass
class _Pending:
    future: asyncio.Future[dict[str, Any]]
    expect: frozenset[str] | None
    sent_at: float
    kind: str


@dataclass
class _RoomTrack:
    """Delivery state of one room (or direct conversation): the last seq delivered and more."""

    key: str
    peer: str | None  # the other user of a direct conversation: history asks `with_user`
    last_seq: int | None = None
    held: dict[int, dict[str, Any]] = field(default_factory=dict)  # seq -> live message
    head: int | None = None  # newest seq per the last join's ack, until recovery uses it
    hold: bool = False
    again: bool = False
    task: asyncio.Task[None] | None = None
    messages: deque[ChatMessage] = field(default_factory=deque)


def _bounded_put(store: OrderedDict[Any, Any], key: Any, value: Any, limit: int) -> None:
    store[key] = value
    store.move_to_end(key)
    while len(store) > limit:
        store.popitem(last=False)


class ChatClient:
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
        self.latencies: deque[float] = deque(maxlen=_MAX_LATENCIES)
        #: The backoff delays actually slept, in order (for plots of the reconnect schedule).
        self.backoff_delays: deque[float] = deque(maxlen=_MAX_BACKOFFS)
        self.dropped_events = 0
        #: What ``system:connected`` said (``None`` before the first connection).
        self.connection_info: Connected | None = None

        self._rooms: dict[str, None] = dict.fromkeys(rooms)  # joined rooms, in join order
        self._tracks: dict[str, _RoomTrack] = {}
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._inbox: deque[Event] = deque()
        self._inbox_changed = asyncio.Event()
        self._pending: dict[str, _Pending] = {}
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
        bound = min(self.backoff_max, self.backoff_initial * 2 ** min(attempt, 64))
        return float(self.rng.uniform(0, bound))

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

    async def request(
        self,
        message: Mapping[str, Any],
        *,
        timeout: float | None = None,
        expect: Iterable[str] | None = None,
    ) -> dict[str, Any]:
        """Send ``message`` with a fresh ``ref`` and return the reply with that ``ref``.

        ``expect`` names the reply types that resolve it (others with the same ``ref`` are
        treated as ordinary events); an ``error`` reply raises the mapped ``WslabError``. Raises
        :class:`OperationTimeout` after ``timeout`` (default ``request_timeout``) seconds,
        :class:`TooManyPending` beyond ``max_pending``, ``ConnectionClosed`` if the connection
        drops first.
        """
        conn = self._conn
        if conn is None or not self._connected.is_set():
            raise self._not_connected()
        if len(self._pending) >= self.max_pending:
            raise TooManyPending(f"{self.max_pending} requests are already waiting for replies")
        ref = str(message.get("ref") or f"{self._ref_prefix}{next(self._refs)}")
        if ref in self._pending:
            raise ConflictError(f"a request with ref {ref!r} is already pending")
        outgoing = {**message, "ref": ref}
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        entry = _Pending(
            future,
            frozenset(expect) if expect is not None else None,
            time.perf_counter(),
            str(outgoing.get("type")),
        )
        self._pending[ref] = entry
        try:
            await conn.send(json.dumps(outgoing, separators=(",", ":")))
            self.stats.sent += 1
            wait = self.request_timeout if timeout is None else timeout
            try:
                return await asyncio.wait_for(future, wait)
            except asyncio.TimeoutError:
                if entry.kind == "chat:message":
                    _bounded_put(self._abandoned, ref, None, _MAX_TRACKED_REFS)
                raise OperationTimeout(f"no reply to {entry.kind} (ref {ref}) in {wait}s") from None
        finally:
            self._pending.pop(ref, None)

    async def send_message(
        self, content: str, room: str = "lobby", to_user: str | None = None
    ) -> Ack:
        """Send a chat message; returns the :class:`Ack` once the hub has stored it.

        Raises the mapped error (:class:`ValidationError`, :class:`RateLimitedError`,
        :class:`DegradedError` with ``message_id``...), :class:`OperationTimeout` or
        ``ConnectionClosed``. It is never resent automatically (see the module docstring).
        """
        message: dict[str, Any] = {"type": "chat:message", "room": room, "content": content}
        if to_user is not None:
            message["to_user"] = to_user
        started = time.perf_counter()
        try:
            reply = await self.request(message, expect=("ack",))
        except DegradedError as error:
            # Relayed but not stored yet: a late ack may follow, and the echo still counts.
            message_id = getattr(error, "message_id", None)
            if error.ref:  # type: ignore[attr-defined]
                _bounded_put(self._abandoned, error.ref, None, _MAX_TRACKED_REFS)  # type: ignore[attr-defined]
            if message_id:
                self._sent_message(str(message_id), started)
            raise
        rtt = time.perf_counter() - started
        self.stats.acks += 1
        self.stats.last_rtt = rtt
        message_id = reply.get("message_id")
        seq = reply.get("seq")
        if message_id:
            self._sent_message(str(message_id), started)
        return Ack(str(reply.get("ref")), message_id, seq if isinstance(seq, int) else None, rtt)

    async def join(self, room: str) -> dict[str, Any]:
        """Join ``room`` (kept across reconnects); returns the hub's reply."""
        track = self._track(room)
        track.hold = True
        try:
            reply = await self._join_request(room)
        except BaseException:
            track.hold = False
            self._drain(track)
            raise
        self._rooms[room] = None
        self._note_head(track, reply)
        task = self._start_recovery(track)
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)
        return reply

    async def _join_request(self, room: str) -> dict[str, Any]:
        try:
            return await self.request({"type": "room:join", "room": room})
        except ConflictError:
            return {"type": "ack", "room": room}  # already a member: the goal is reached

    async def leave(self, room: str) -> dict[str, Any]:
        """Leave ``room`` (and stop rejoining it)."""
        reply = await self.request({"type": "room:leave", "room": room})
        self._rooms.pop(room, None)
        track = self._tracks.pop(room, None)
        if track is not None and track.task is not None:
            track.task.cancel()
        return reply

    async def typing(self, room: str, is_typing: bool) -> None:
        """Tell the room you are (not) typing. No ack: fire and forget."""
        await self._send({"type": "chat:typing", "room": room, "is_typing": is_typing})

    async def history(
        self,
        room: str = "lobby",
        limit: int = 50,
        before_seq: int | None = None,
        since_seq: int | None = None,
        with_user: str | None = None,
    ) -> History:
        """One page of a room's (or, with ``with_user``, a direct conversation's) history."""
        message: dict[str, Any] = {"type": "chat:history", "room": room, "limit": limit}
        if before_seq is not None:
            message["before_seq"] = before_seq
        if since_seq is not None:
            message["since_seq"] = since_seq
        if with_user is not None:
            message["with_user"] = with_user
        reply = await self.request(message, expect=("chat:history",))
        return self._history_from(reply, room)

    async def presence(self, room: str = "lobby") -> list[User]:
        """Who is in ``room`` now."""
        reply = await self.request(
            {"type": "presence:list", "room": room}, expect=("presence:list",)
        )
        users = reply.get("users") or []
        if isinstance(users, Mapping):
            return [User(str(uid), str(name)) for uid, name in users.items()]
        result = []
        for user in users:
            if isinstance(user, Mapping):
                uid = str(user.get("user_id", ""))
                result.append(User(uid, str(user.get("username", uid))))
            else:
                result.append(User(str(user), str(user)))
        return result

    async def admin_broadcast(self, content: str) -> dict[str, Any]:
        """Announce ``content`` to everyone (needs the ``admin`` role)."""
        return await self.request({"type": "admin:broadcast", "content": content})

    async def refresh_token(self, token: str) -> dict[str, Any]:
        """Replace the connection's token (``auth:refresh``); later reconnects use it too."""
        self.token = token
        return await self.request({"type": "auth:refresh", "token": token})

    async def ping(self) -> float:
        """A WebSocket ping; the round-trip time in seconds."""
        conn = self._conn
        if conn is None:
            raise self._not_connected()
        return await asyncio.wait_for(conn.ping(), self.request_timeout)

    async def _send(self, message: Mapping[str, Any]) -> None:
        conn = self._conn
        if conn is None or not self._connected.is_set():
            raise self._not_connected()
        await conn.send(json.dumps(message, separators=(",", ":")))
        self.stats.sent += 1

    def _not_connected(self) -> ConnectionClosed:
        if self._closing:
            return ConnectionClosedLocally("the client is closed")
        if self._finished:
            return ConnectionBroken("the hub ended the connection for good")
        return ConnectionBroken("not connected to the hub (reconnecting)")

    def _fail_pending(self, error: ConnectionClosed) -> None:
        for ref, entry in list(self._pending.items()):
            if not entry.future.done():
                entry.future.set_exception(error)
            if entry.kind == "chat:message":
                _bounded_put(self._abandoned, ref, None, _MAX_TRACKED_REFS)
        self._pending.clear()

    # -- incoming messages -------------------------------------------------------------------------

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        ref = message.get("ref")
        if ref is not None:
            entry = self._pending.get(str(ref))
            if entry is not None and (
                kind == "error" or entry.expect is None or kind in entry.expect
            ):
                if not entry.future.done():
                    if kind == "error":
                        self.stats.errors += 1
                        entry.future.set_exception(error_from_envelope(message))
                    else:
                        entry.future.set_result(message)
                return
            if kind == "ack" and str(ref) in self._abandoned:
                self._abandoned.pop(str(ref), None)
                seq = message.get("seq")
                self._emit(
                    LateAck(
                        str(ref), message.get("message_id"), seq if isinstance(seq, int) else None
                    )
                )
                return
        handler = _HANDLERS.get(kind)  # type: ignore[arg-type]
        if handler is not None:
            handler(self, message)
        elif kind == "ack":
            pass  # an ack nobody waits for any more (its request timed out long ago)
        else:
            self._emit(UnknownEvent(str(kind), message))

    def _on_error(self, message: dict[str, Any]) -> None:
        self.stats.errors += 1
        error = error_from_envelope(message)
        ref = message.get("ref")
        self._emit(ErrorEvent(int(error.code), error.code.name, error.message, ref))

    def _on_chat_message(self, message: dict[str, Any]) -> None:
        track = self._track_of(message)
        seq = message.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool):
            self._deliver(track, message, recovered=False)  # no seq (e.g. degraded): dedupe only
            return
        if track.last_seq is not None and seq <= track.last_seq:
            self.stats.duplicates += 1
            return
        if track.hold or track.task is not None:
            self._hold(track, seq, message)
            return
        if track.last_seq is None:
            track.last_seq = seq - 1  # first message of a conversation we had no baseline for
        if seq == track.last_seq + 1:
            self._accept(track, message, recovered=False)
        else:
            self._hold(track, seq, message)  # a gap: fetch what is missing first
            self._start_recovery(track)

    def _on_typing(self, message: dict[str, Any]) -> None:
        self._emit(
            Typing(
                str(message.get("room", "")),
                str(message.get("user_id", "")),
                str(message.get("username", "")),
                bool(message.get("is_typing")),
            )
        )

    def _on_presence(self, message: dict[str, Any]) -> None:
        cls = PresenceJoin if message.get("type") == "presence:join" else PresenceLeave
        user_id = str(message.get("user_id", ""))
        self._emit(
            cls(str(message.get("room", "")), user_id, str(message.get("username", user_id)))
        )

    def _on_broadcast(self, message: dict[str, Any]) -> None:
        raw_ts = message.get("timestamp")
        try:
            timestamp = parse_timestamp(raw_ts) if isinstance(raw_ts, str) else None
        except ValidationError:
            timestamp = None
        sender = message.get("from_user")
        self._emit(
            SystemBroadcast(
                str(message.get("content", "")),
                sender if isinstance(sender, str) else None,
                timestamp,
            )
        )

    def _on_auth_expiring(self, message: dict[str, Any]) -> None:
        expires_in = message.get("expires_in")
        self._emit(AuthExpiring(float(expires_in) if isinstance(expires_in, (int, float)) else 0.0))
        if self.token_provider is not None:
            self._spawn(self._refresh_from_provider(), "token refresh")

    async def _refresh_from_provider(self) -> None:
        assert self.token_provider is not None
        token = self.token_provider()
        if inspect.isawaitable(token):
            token = await token
        if not isinstance(token, str) or not token:
            raise AuthenticationError("token_provider returned no token")
        await self.refresh_token(token)

    def _on_resync(self, message: dict[str, Any]) -> None:
        rooms = message.get("rooms")
        if isinstance(rooms, list) and rooms:
            tracks = [self._tracks[r] for r in rooms if isinstance(r, str) and r in self._tracks]
        else:
            tracks = list(self._tracks.values())
        for track in tracks:
            self._start_recovery(track)

    def _on_connected(self, message: dict[str, Any]) -> None:
        # A repeated system:connected (e.g. after auth:refresh) updates what we know.
        self.connection_info = Connected.from_wire(message)
        self._emit(self.connection_info)

    def _on_history(self, message: dict[str, Any]) -> None:
        # A history page nobody asked for (its request timed out): not an event of the chat.
        log.debug("unrequested chat:history for %r ignored", message.get("room"))

    # -- ordered, deduplicated delivery ------------------------------------------------------------

    def _track(self, room: str, peer: str | None = None) -> _RoomTrack:
        track = self._tracks.get(room)
        if track is None:
            if len(self._tracks) >= _MAX_TRACKS:
                self._forget_a_track()
            track = self._tracks[room] = _RoomTrack(
                room, peer, messages=deque(maxlen=self.max_room_messages)
            )
        return track

    def _forget_a_track(self) -> None:
        """Forget the oldest conversation that is not a joined room and not recovering."""
        for key, track in self._tracks.items():
            if key not in self._rooms and track.task is None and not track.hold:
                del self._tracks[key]
                return

    def _track_of(self, message: Mapping[str, Any]) -> _RoomTrack:
        """The track of a message: its room, or the direct conversation it belongs to."""
        to_user = message.get("to_user")
        from_user = str(message.get("from_user", ""))
        if isinstance(to_user, str) and to_user:
            me = self.user_id
            peer = from_user if to_user == me else to_user
            return self._track(dm_room(from_user, to_user), peer)
        return self._track(str(message.get("room", "")))

    def _hold(self, track: _RoomTrack, seq: int, message: dict[str, Any]) -> None:
        track.held[seq] = message
        if len(track.held) > self.max_inbox:
            # The newest go first: the recovery that is (or will be) running fetches them again.
            del track.held[max(track.held)]

    def _accept(self, track: _RoomTrack, message: Mapping[str, Any], *, recovered: bool) -> None:
        """Deliver a message whose seq follows the track's (or that history vouches for)."""
        seq = message.get("seq")
        if isinstance(seq, int):
            if track.last_seq is not None and seq <= track.last_seq:
                self.stats.duplicates += 1
                return
            track.last_seq = seq
        self._deliver(track, message, recovered=recovered)

    def _deliver(self, track: _RoomTrack, message: Mapping[str, Any], *, recovered: bool) -> None:
        event = ChatMessage.from_wire(message, recovered=recovered)
        if event.message_id in self._seen:
            self.stats.duplicates += 1
            return
        _bounded_put(self._seen, event.message_id, None, _MAX_SEEN)
        if recovered:
            self.stats.recovered += 1
        track.messages.append(event)
        if not recovered and event.from_user and event.from_user == self.user_id:
            self._own_echo(event.message_id)
        self._emit(event)

    def _drain(self, track: _RoomTrack) -> None:
        """Deliver held live messages that now follow on; keep the rest (after a gap)."""
        while track.held:
            low = min(track.held)
            if track.last_seq is not None and low <= track.last_seq:
                del track.held[low]
                self.stats.duplicates += 1
            elif track.last_seq is None or low == track.last_seq + 1:
                self._accept(track, track.held.pop(low), recovered=False)
            else:
                return

    def _skip_gap(self, track: _RoomTrack) -> None:
        """The missing messages are not to be had: report the gap, deliver what is held."""
        self.stats.gaps += 1
        self._emit(HistoryGap(track.key, track.last_seq or 0))
        while track.held:
            low = min(track.held)
            self._accept(track, track.held.pop(low), recovered=False)

    def _start_recovery(self, track: _RoomTrack) -> asyncio.Task[None] | None:
        if track.task is not None:
            track.again = True  # the running recovery goes round once more
            return track.task
        if self._conn is None or self._closing:
            return None  # the next resume recovers this room
        track.task = self._spawn(self._recover(track), f"recover {track.key}")
        return track.task

    async def _recover(self, track: _RoomTrack) -> None:
        """Fetch what ``track`` is missing, merge it with held live messages, in seq order."""
        try:
            while True:
                track.again = False
                if track.last_seq is None:
                    await self._baseline(track)
                    self._drain(track)
                    if not track.held and not track.again:
                        return
                    continue
                head, track.head = track.head, None
                if head is not None and track.last_seq >= head:
                    # The join's ack says nothing was stored after what we have: no fetch.
                    self._drain(track)
                    if not track.held and not track.again:
                        return
                    continue
                before = track.last_seq
                page = await self._history_page(track, since_seq=before, limit=HISTORY_PAGE)
                if not page.complete:
                    self.stats.gaps += 1
                    self._emit(HistoryGap(track.key, before))
                for message in sorted(page.messages, key=lambda m: m.get("seq") or 0):
                    # A message also held from the live stream was not missed: not "recovered".
                    live = track.held.pop(message.get("seq"), None)  # type: ignore[arg-type]
                    self._accept(track, live or message, recovered=live is None)
                self._drain(track)
                if len(page.messages) >= HISTORY_PAGE or track.again:
                    continue
                if track.held:  # still a gap the store could not fill
                    if track.last_seq == before:
                        self._skip_gap(track)
                        return
                    continue
                return
        except ConnectionClosed:
            pass  # the next resume starts over from last_seq; held messages stay held
        except asyncio.CancelledError:
            raise
        except Exception as error:
            track.again = False  # a hub that refuses history must not make us ask forever
            self._emit_error(
                getattr(error, "code", ErrorCode.INTERNAL_ERROR),
                f"recovering {track.key!r} failed: {error}",
            )
            if track.held:
                self._skip_gap(track)
        finally:
            track.task = None
            track.hold = False
            # A resync or gap that came in while this run was ending: go round once more.
            if track.again and self._tracks.get(track.key) is track:
                self._start_recovery(track)

    def _note_head(self, track: _RoomTrack, reply: Mapping[str, Any]) -> None:
        """The join's ack names the room's newest seq: a baseline, or proof nothing was missed."""
        latest = reply.get("latest_seq")
        if not isinstance(latest, int) or isinstance(latest, bool):
            return  # an older hub, or its store is down: recovery asks history instead
        if track.last_seq is None:
            self._set_baseline(track, latest)
        track.head = latest

    async def _baseline(self, track: _RoomTrack) -> None:
        """The newest seq of a room we just joined: gaps are measured from there."""
        page = await self._history_page(track, limit=1)
        seqs = [m["seq"] for m in page.messages if isinstance(m.get("seq"), int)]
        self._set_baseline(track, max(seqs) if seqs else 0)

    def _set_baseline(self, track: _RoomTrack, head: int) -> None:
        if track.held:  # messages that arrived live after the join are delivered, not skipped
            head = min(head, min(track.held) - 1)
        track.last_seq = head

    async def _history_page(self, track: _RoomTrack, **fields: Any) -> _Page:
        message: dict[str, Any] = {"type": "chat:history", **fields}
        if track.peer is not None:
            message["with_user"] = track.peer
        else:
            message["room"] = track.key
        reply = await self.request(message, expect=("chat:history",))
        raw = reply.get("messages")
        messages = [m for m in raw if isinstance(m, dict)] if isinstance(raw, list) else []
        return _Page(messages, reply.get("complete", True) is not False)

    def _history_from(self, reply: Mapping[str, Any], room: str) -> History:
        raw = reply.get("messages")
        messages = [m for m in raw if isinstance(m, dict)] if isinstance(raw, list) else []
        return History(
            str(reply.get("room", room)),
            tuple(ChatMessage.from_wire(m) for m in messages),
            reply.get("complete", True) is not False,
        )

    # -- latency ------------------------------------------------------------------------------------

    def _sent_message(self, message_id: str, started: float) -> None:
        echoed = self._early_echo.pop(message_id, None)
        if echoed is not None:
            self.latencies.append(echoed - started)
        else:
            _bounded_put(self._awaiting_echo, message_id, started, _MAX_TRACKED_REFS)

    def _own_echo(self, message_id: str) -> None:
        now = time.perf_counter()
        started = self._awaiting_echo.pop(message_id, None)
        if started is not None:
            self.latencies.append(now - started)
        else:  # the echo overtook the ack
            _bounded_put(self._early_echo, message_id, now, _MAX_TRACKED_REFS)

    # -- the inbox ----------------------------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        self._inbox.append(event)
        while len(self._inbox) > self.max_inbox:
            self._inbox.popleft()
            self.dropped_events += 1
        self._inbox_changed.set()

    def _emit_error(self, code: int, message: str) -> None:
        code = ErrorCode(code) if code in ErrorCode._value2member_map_ else ErrorCode.INTERNAL_ERROR
        self._emit(ErrorEvent(int(code), code.name, message))

    def _finish(self) -> None:
        self._finished = True
        self._connected.clear()
        self._inbox_changed.set()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        """The next event in order; the iteration ends once the client is closed and drained."""
        while not self._inbox:
            if self._finished:
                raise StopAsyncIteration
            self._inbox_changed.clear()
            await self._inbox_changed.wait()
        return self._inbox.popleft()

    async def next_event(
        self,
        type: type[E] = Event,  # reads naturally: next_event(type=ChatMessage)
        timeout: float | None = 5.0,
        where: Callable[[E], bool] | None = None,
    ) -> E:
        """The oldest event of ``type`` (matching ``where``), removed from the inbox.

        Events of other types stay in the inbox, in order. Raises :class:`OperationTimeout` when
        none arrives within ``timeout`` seconds, ``ConnectionClosed`` once the client is done.
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            for index, event in enumerate(self._inbox):
                if isinstance(event, type) and (where is None or where(event)):
                    del self._inbox[index]
                    return event
            if self._finished:
                raise self._not_connected()
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                raise OperationTimeout(f"no {type.__name__} within {timeout}s")
            self._inbox_changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._inbox_changed.wait(), remaining)

    def pending_events(self) -> list[Event]:
        """The events waiting in the inbox (a copy; nothing is removed)."""
        return list(self._inbox)

    def messages(self, room: str = "lobby", *, with_user: str | None = None) -> list[ChatMessage]:
        """The messages received in ``room`` (or the direct conversation ``with_user``), by seq.

        Kept whether or not the events were read; the last ``max_room_messages`` per room.
        """
        if with_user is not None:
            me = self.user_id or ""
            room = dm_room(me, with_user)
        track = self._tracks.get(room)
        if track is None:
            return []
        return sorted(track.messages, key=lambda m: (m.seq is None, m.seq or 0))

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


@dataclass(frozen=True)
class _Page:
    messages: list[dict[str, Any]]
    complete: bool


_HANDLERS: dict[str, Callable[[ChatClient, dict[str, Any]], None]] = {
    "error": ChatClient._on_error,
    "chat:message": ChatClient._on_chat_message,
    "chat:typing": ChatClient._on_typing,
    "presence:join": ChatClient._on_presence,
    "presence:leave": ChatClient._on_presence,
    "system:broadcast": ChatClient._on_broadcast,
    "admin:broadcast": ChatClient._on_broadcast,
    "auth:expiring": ChatClient._on_auth_expiring,
    "system:resync": ChatClient._on_resync,
    "system:connected": ChatClient._on_connected,
    "chat:history": ChatClient._on_history,
}
