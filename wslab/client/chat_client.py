""":class:`ChatClient`: its state and the life of its connection.

This module holds what the client *is*: its settings and bounded state (``__init__``), connect and
close, the supervisor that notices a drop and reconnects with full-jitter backoff
(:mod:`wslab.infrastructure.backoff`), the resume that rejoins rooms and starts recovery after
every (re)connect, and the calls a user makes. The rest is done by parts it is composed of, one
module each, each owning its own state and given the parts it works with:

- :class:`~.opening.Opener` — one connection attempt: handshake, token, ``system:connected``;
- :class:`~.requests.Link` — the connection the parts share, and whether it may be used;
- :class:`~.requests.Requests` — requests with refs and timeouts, replies, latency;
- :class:`~.incoming.Incoming` — each message from the hub to its handler and an event;
- :class:`~.tracking.Tracker` — per-room delivery in ``seq`` order, deduplicated;
- :class:`~.recovery.Recovery` — fetching what a room missed from history;
- :class:`~.inbox.Inbox` — the bounded inbox of events;
- :class:`~.tasks.Tasks` — the background tasks (resume, recovery, token refresh) and their errors.

Replies become results (:class:`~.results.History`, :class:`~.results.User`) in :mod:`.results`.

The behaviour as a whole (acks, reconnect, recovery, bounds) is described in :mod:`wslab.client`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random as random_module
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar, overload

from wslab.foundation.codes import CloseCode, ErrorCode
from wslab.foundation.errors import (
    AuthenticationError,
    ConfigError,
    ConflictError,
    ConnectionBroken,
    ConnectionClosed,
    ConnectionClosedLocally,
    DegradedError,
    OperationTimeout,
    PermissionDeniedError,
    WslabError,
)
from wslab.foundation.wire import (
    ACK,
    ADMIN_BROADCAST,
    AUTH_REFRESH,
    CHAT_HISTORY,
    CHAT_MESSAGE,
    CHAT_TYPING,
    PRESENCE_LIST,
    ROOM_JOIN,
    ROOM_LEAVE,
)
from wslab.infrastructure.backoff import full_jitter
from wslab.infrastructure.connection import Connection
from wslab.integration.store import DEFAULT_HISTORY_LIMIT

from .bounds import MAX_BACKOFFS, MAX_LATENCIES
from .events import ChatMessage, Connected, Disconnected, Event, Reconnected
from .inbox import Inbox
from .incoming import Incoming
from .opening import Opener
from .recovery import Recovery
from .requests import Link, Requests
from .results import Ack, ClientStats, History, User, history_from, users_from
from .tasks import Tasks
from .tracking import Tracker

__all__ = ["FINAL_CLOSE_CODES", "ChatClient"]

log = logging.getLogger("wslab.client")

E = TypeVar("E", bound=Event)


# 4001/4003 are verdicts of the hub, not accidents: never reconnect after them.
FINAL_CLOSE_CODES = frozenset({CloseCode.AUTHENTICATION_FAILED, CloseCode.FORBIDDEN})


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
        self.latencies: deque[float] = deque(maxlen=MAX_LATENCIES)
        #: The backoff delays actually slept, in order (for plots of the reconnect schedule).
        self.backoff_delays: deque[float] = deque(maxlen=MAX_BACKOFFS)
        #: What ``system:connected`` said (``None`` before the first connection).
        self.connection_info: Connected | None = None

        self._rooms: dict[str, None] = dict.fromkeys(rooms)  # joined rooms, in join order
        self._reader: asyncio.Task[None] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        # The parts, each with the others it works with.
        self._inbox = Inbox(max_inbox, lambda: self._link.not_connected())
        self._tasks = Tasks(self._inbox)
        self._link = Link(self._inbox)
        self._requests = Requests(
            link=self._link,
            stats=self.stats,
            inbox=self._inbox,
            latencies=self.latencies,
            max_pending=max_pending,
            request_timeout=request_timeout,
        )
        self._tracker = Tracker(
            stats=self.stats,
            inbox=self._inbox,
            joined=self._rooms,
            user_id=lambda: self.user_id,
            own_echo=self._requests.own_echo,
            max_held=max_inbox,
            max_room_messages=max_room_messages,
        )
        self._recovery = Recovery(
            tracker=self._tracker,
            requests=self._requests,
            link=self._link,
            inbox=self._inbox,
            stats=self.stats,
            spawn=self._tasks.spawn,
        )
        self._opener = Opener(
            url=url,
            auth=auth,
            engine=engine,
            timeout=request_timeout,
            token=lambda: self.token,
            stats=self.stats,
            inbox=self._inbox,
            dispatch=lambda message: self._incoming.dispatch(message),
        )
        self._incoming = Incoming(
            stats=self.stats,
            inbox=self._inbox,
            requests=self._requests,
            tracker=self._tracker,
            recovery=self._recovery,
            on_connected=self._connected_again,
            on_auth_expiring=self._auth_expiring,
        )

    # -- lifecycle --------------------------------------------------------------------------------

    async def connect(self) -> ChatClient:
        """Connect, wait for ``system:connected``, join the rooms; return ``self``.

        Raises :class:`AuthenticationError` if the hub refuses the token (4001),
        :class:`PermissionDeniedError` on 4003, or the transport's error if the hub is not there.
        """
        if self._supervisor is not None or self._link.conn is not None:
            raise ConfigError("this client is already connected")
        if self._inbox.finished:
            raise ConfigError("a closed client cannot connect again; create a new one")
        conn, hello = await self._opener.open()
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
        if self._link.closing:
            return
        self._link.closing = True
        current = asyncio.current_task()
        if self._supervisor is not None and self._supervisor is not current:
            self._supervisor.cancel()
        conn = self._link.conn
        if conn is not None:
            with contextlib.suppress(ConnectionClosed, OSError):
                await conn.close()
            self._inbox.put(Disconnected(conn.close_code, "closed by the client", will_reconnect=False))
        tasks = [t for t in (self._reader, self._supervisor, *self._tasks) if t is not None]
        for task in tasks:
            if task is not current:
                task.cancel()
        waiting = [t for t in tasks if t is not current]
        if waiting:
            await asyncio.gather(*waiting, return_exceptions=True)
        self._link.conn = None
        self._link.connected.clear()
        self._requests.fail_pending(ConnectionClosedLocally("the client was closed"))
        self._finish()

    async def __aenter__(self) -> ChatClient:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        """True while a connection is open and admitted."""
        return self._link.connected.is_set()

    @property
    def closed(self) -> bool:
        """True once the client is done: closed, or refused for good (4001/4003)."""
        return self._inbox.finished

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
        if self._inbox.finished:
            raise ConnectionClosedLocally("the client is closed")
        try:
            await asyncio.wait_for(self._link.connected.wait(), timeout)
        except asyncio.TimeoutError:
            raise OperationTimeout(f"not connected within {timeout}s") from None

    def backoff_delay(self, attempt: int) -> float:
        """The sleep before reconnect attempt ``attempt`` (0-based): full jitter, capped."""
        return full_jitter(attempt, self.backoff_initial, self.backoff_max, self.rng)

    # -- calls --------------------------------------------------------------------------------------

    async def request(
        self,
        message: Mapping[str, Any],
        *,
        timeout: float | None = None,
        expect: Iterable[str] | None = None,
    ) -> dict[str, Any]:
        """Send ``message`` with a fresh ``ref`` and return the reply (see :meth:`Requests.request
        <wslab.client.requests.Requests.request>`)."""
        return await self._requests.request(message, timeout=timeout, expect=expect)

    async def send_message(
        self, content: str, room: str = "lobby", to_user: str | None = None
    ) -> Ack:
        """Send a chat message; returns the :class:`Ack` once the hub has stored it.

        Raises the mapped error (:class:`ValidationError`, :class:`RateLimitedError`,
        :class:`DegradedError` with ``message_id``...), :class:`OperationTimeout` or
        ``ConnectionClosed``. It is never resent automatically (see the module docstring).
        """
        message: dict[str, Any] = {"type": CHAT_MESSAGE, "room": room, "content": content}
        if to_user is not None:
            message["to_user"] = to_user
        started = time.perf_counter()
        try:
            reply = await self._requests.request(message, expect=(ACK,))
        except DegradedError as error:
            # Relayed but not stored yet: a late ack may follow, and the echo still counts.
            message_id = getattr(error, "message_id", None)
            if isinstance(error.ref, str) and error.ref:  # our refs are strings
                self._requests.abandon(error.ref)
            if message_id:
                self._requests.sent_message(str(message_id), started)
            raise
        rtt = time.perf_counter() - started
        self.stats.acks += 1
        self.stats.last_rtt = rtt
        message_id = reply.get("message_id")
        seq = reply.get("seq")
        if message_id:
            self._requests.sent_message(str(message_id), started)
        return Ack(str(reply.get("ref")), message_id, seq if isinstance(seq, int) else None, rtt)

    async def join(self, room: str) -> dict[str, Any]:
        """Join ``room`` (kept across reconnects); returns the hub's reply."""
        track = self._tracker.track(room)
        track.hold = True
        try:
            reply = await self._join_request(room)
        except BaseException:
            track.hold = False
            self._tracker.drain(track)
            raise
        self._rooms[room] = None
        self._recovery.note_head(track, reply)
        task = self._recovery.start(track)
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)
        return reply

    async def _join_request(self, room: str) -> dict[str, Any]:
        try:
            return await self._requests.request({"type": ROOM_JOIN, "room": room})
        except ConflictError:
            return {"type": ACK, "room": room}  # already a member: the goal is reached

    async def leave(self, room: str) -> dict[str, Any]:
        """Leave ``room`` (and stop rejoining it)."""
        reply = await self._requests.request({"type": ROOM_LEAVE, "room": room})
        self._rooms.pop(room, None)
        track = self._tracker.tracks.pop(room, None)
        if track is not None and track.task is not None:
            track.task.cancel()
        return reply

    async def typing(self, room: str, is_typing: bool) -> None:
        """Tell the room you are (not) typing. No ack: fire and forget."""
        await self._requests.send({"type": CHAT_TYPING, "room": room, "is_typing": is_typing})

    async def history(
        self,
        room: str = "lobby",
        limit: int = DEFAULT_HISTORY_LIMIT,
        before_seq: int | None = None,
        since_seq: int | None = None,
        with_user: str | None = None,
    ) -> History:
        """One page of a room's (or, with ``with_user``, a direct conversation's) history."""
        message: dict[str, Any] = {"type": CHAT_HISTORY, "room": room, "limit": limit}
        if before_seq is not None:
            message["before_seq"] = before_seq
        if since_seq is not None:
            message["since_seq"] = since_seq
        if with_user is not None:
            message["with_user"] = with_user
        reply = await self._requests.request(message, expect=(CHAT_HISTORY,))
        return history_from(reply, room)

    async def presence(self, room: str = "lobby") -> list[User]:
        """Who is in ``room`` now."""
        reply = await self._requests.request(
            {"type": PRESENCE_LIST, "room": room}, expect=(PRESENCE_LIST,)
        )
        return users_from(reply)

    async def admin_broadcast(self, content: str) -> dict[str, Any]:
        """Announce ``content`` to everyone (needs the ``admin`` role)."""
        return await self._requests.request({"type": ADMIN_BROADCAST, "content": content})

    async def refresh_token(self, token: str) -> dict[str, Any]:
        """Replace the connection's token (``auth:refresh``); later reconnects use it too."""
        self.token = token
        return await self._requests.request({"type": AUTH_REFRESH, "token": token})

    async def ping(self) -> float:
        """A WebSocket ping; the round-trip time in seconds."""
        conn = self._link.conn
        if conn is None:
            raise self._link.not_connected()
        return await asyncio.wait_for(conn.ping(), self.request_timeout)

    # -- reading --------------------------------------------------------------------------------------

    @property
    def dropped_events(self) -> int:
        """Events dropped because the inbox was full (the oldest go first)."""
        return self._inbox.dropped

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        """The next event in order; the iteration ends once the client is closed and drained."""
        return await self._inbox.next()

    @overload
    async def next_event(
        self,
        type: type[E],  # reads naturally: next_event(type=...)
        timeout: float | None = ...,
        where: Callable[[E], bool] | None = ...,
    ) -> E: ...
    @overload
    async def next_event(
        self, *, timeout: float | None = ..., where: Callable[[Event], bool] | None = ...
    ) -> Event: ...
    async def next_event(
        self,
        type: type[Event] = Event,
        timeout: float | None = 5.0,
        where: Callable[[Any], bool] | None = None,
    ) -> Event:
        """The oldest event of ``type`` (matching ``where``), removed from the inbox.

        Events of other types stay in the inbox, in order. Raises :class:`OperationTimeout` when
        none arrives within ``timeout`` seconds, ``ConnectionClosed`` once the client is done.
        """
        return await self._inbox.next_event(type, timeout, where)

    def pending_events(self) -> list[Event]:
        """The events waiting in the inbox (a copy; nothing is removed)."""
        return self._inbox.pending()

    def messages(self, room: str = "lobby", *, with_user: str | None = None) -> list[ChatMessage]:
        """The messages received in ``room`` (or the direct conversation ``with_user``), by seq.

        Kept whether or not the events were read; the last ``max_room_messages`` per room.
        """
        return self._tracker.messages(room, with_user=with_user)

    def _install(self, conn: Connection, hello: Mapping[str, Any]) -> None:
        self._link.conn = conn
        info = self.connection_info = Connected.from_wire(hello)
        self._reader = asyncio.ensure_future(self._read_loop(conn))
        # What is pending fails as soon as this connection ends, whoever waits on it: also
        # while connect() is still joining its rooms, before the supervisor runs (a hub that
        # closed the connection then left connect() waiting out its request timeout).
        self._reader.add_done_callback(lambda _: self._connection_ended(conn))
        self._link.connected.set()
        self._inbox.put(info)

    def _connection_ended(self, conn: Connection) -> None:
        self._requests.fail_pending(
            ConnectionBroken(
                "the connection to the hub ended",
                close_code=conn.close_code,
                reason=conn.close_reason,
            )
        )

    # -- staying connected ------------------------------------------------------------------------

    async def _supervise(self) -> None:
        """Wait for the connection to end; reconnect unless that was final."""
        while True:
            assert self._reader is not None
            await asyncio.wait({self._reader})
            conn = self._link.conn
            code = conn.close_code if conn is not None else None
            reason = conn.close_reason if conn is not None else ""
            self._link.conn = None
            self._link.connected.clear()
            # What was pending has failed already (_connection_ended, when the reader ended).
            if self._link.closing:
                return
            final = code in FINAL_CLOSE_CODES or not self.reconnect
            self._inbox.put(Disconnected(code, reason, will_reconnect=not final))
            if final:
                self._finish()
                return
            opened = await self._reconnect()
            if opened is None:
                return
            conn, hello, attempt = opened
            self.stats.reconnects += 1
            self._install(conn, hello)
            self._inbox.put(Reconnected(attempt))
            self._tasks.spawn(self._resume(initial=False), "resume")

    async def _reconnect(self) -> tuple[Connection, dict[str, Any], int] | None:
        """Attempts with backoff until one succeeds; None if refused for good."""
        attempt = 0
        while True:
            delay = self.backoff_delay(attempt)
            self.backoff_delays.append(delay)
            await self._sleep(delay)
            attempt += 1
            try:
                conn, hello = await self._opener.open()
            except (AuthenticationError, PermissionDeniedError) as error:
                code = error.close_code
                self._inbox.put(Disconnected(int(code) if code else None, error.message, False))
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
            self._inbox.put_error(ErrorCode.INTERNAL_ERROR, f"supervisor failed: {error!r}")
            self._finish()

    async def _resume(self, *, initial: bool) -> None:
        """After (re)connecting: rejoin rooms, then recover what was missed, room by room."""
        tracker = self._tracker
        tracks = [tracker.track(room) for room in self._rooms]
        tracks += [t for t in tracker.tracks.values() if t.peer is not None]
        for track in tracks:
            track.hold = True  # live messages wait until the room has caught up
        try:
            for room in list(self._rooms):
                try:
                    self._recovery.note_head(tracker.track(room), await self._join_request(room))
                except (ConnectionClosed, OperationTimeout):
                    raise
                except WslabError as error:
                    if initial:
                        raise
                    self._inbox.put_error(error.code, f"rejoining {room!r} failed: {error.message}")
                    self._rooms.pop(room, None)
                    tracker.tracks.pop(room, None)
        except BaseException:
            for track in tracks:
                track.hold = False
            raise
        started = []
        for track in tracks:
            if tracker.tracks.get(track.key) is not track:
                continue  # left (or failed to rejoin) meanwhile
            task = self._recovery.start(track)
            if task is None:
                track.hold = False
                tracker.drain(track)
            else:
                started.append(task)
        if started:
            await asyncio.wait(started)

    async def _read_loop(self, conn: Connection) -> None:
        async for raw in conn:
            self.stats.received += 1
            message = self._opener.parse(raw)
            if message is None:
                continue
            try:
                self._incoming.dispatch(message)
            except Exception as error:  # one bad message must not end the connection
                log.exception("handling a %r message failed", message.get("type"))
                self._inbox.put_error(ErrorCode.INTERNAL_ERROR, f"handling a message failed: {error!r}")

    def _finish(self) -> None:
        """The client is done: not connected, and the inbox ends once drained."""
        self._link.connected.clear()
        self._inbox.finish()

    def _connected_again(self, info: Connected) -> None:
        # A repeated system:connected (e.g. after auth:refresh) updates what we know.
        self.connection_info = info

    def _auth_expiring(self) -> None:
        if self.token_provider is not None:
            self._tasks.spawn(self._refresh_from_provider(), "token refresh")

    async def _refresh_from_provider(self) -> None:
        assert self.token_provider is not None
        token = self.token_provider()
        if inspect.isawaitable(token):
            token = await token
        if not isinstance(token, str) or not token:
            raise AuthenticationError("token_provider returned no token")
        await self.refresh_token(token)

    def __repr__(self) -> str:
        state = "closed" if self._inbox.finished else "connected" if self.connected else "connecting"
        return f"<ChatClient {self.url} {state} user={self.user_id}>"
