"""The chat client's requests: send with a ``ref``, resolve with the reply that names it.

:class:`RequestsMixin` is the part of :class:`~wslab.client.ChatClient` that talks to the hub:
the generic :meth:`~RequestsMixin.request` (at most ``max_pending`` at once, each with a timeout,
all failed with ``ConnectionClosed`` when the connection drops) and the calls built on it
(``send_message``, ``join``, ``leave``, ``typing``, ``history``, ``presence``,
``admin_broadcast``, ``refresh_token``, ``ping``). It also measures the latency of the client's
own messages: send -> the message received back from the hub.

Chat messages are never resent automatically: the hub gives each message its own id, so a resend
after a lost ack could store it twice. The ref of a chat message whose request failed (timeout,
``DEGRADED``, a drop) is remembered so that its late ack is reported as a
:class:`~.events.LateAck`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wslab.foundation.errors import (
    ConflictError,
    ConnectionBroken,
    ConnectionClosed,
    ConnectionClosedLocally,
    DegradedError,
    OperationTimeout,
)
from wslab.infrastructure.connection import Connection

from .bounds import MAX_TRACKED_REFS, bounded_put
from .errors import TooManyPending
from .events import ChatMessage
from .results import Ack, ClientStats, History, User
from .tracking import RoomTrack

__all__ = ["Pending", "RequestsMixin"]


@dataclass
class Pending:
    """A request waiting for its reply: resolved by a reply of an ``expect`` type."""

    future: asyncio.Future[dict[str, Any]]
    expect: frozenset[str] | None
    sent_at: float
    kind: str


class RequestsMixin:
    """Requests and their replies; part of :class:`~wslab.client.ChatClient`."""

    token: str | None
    request_timeout: float
    max_pending: int
    stats: ClientStats
    latencies: deque[float]
    _rooms: dict[str, None]
    _tracks: dict[str, RoomTrack]
    _pending: dict[str, Pending]
    _abandoned: OrderedDict[str, None]
    _awaiting_echo: OrderedDict[str, float]
    _early_echo: OrderedDict[str, float]
    _ref_prefix: str
    _refs: itertools.count[int]
    _conn: Connection | None
    _connected: asyncio.Event
    _closing: bool
    _finished: bool

    if TYPE_CHECKING:

        def _track(self, room: str, peer: str | None = None) -> RoomTrack: ...

        def _drain(self, track: RoomTrack) -> None: ...

        def _note_head(self, track: RoomTrack, reply: Mapping[str, Any]) -> None: ...

        def _start_recovery(self, track: RoomTrack) -> asyncio.Task[None] | None: ...

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
        entry = Pending(
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
                    bounded_put(self._abandoned, ref, None, MAX_TRACKED_REFS)
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
                bounded_put(self._abandoned, error.ref, None, MAX_TRACKED_REFS)  # type: ignore[attr-defined]
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
                bounded_put(self._abandoned, ref, None, MAX_TRACKED_REFS)
        self._pending.clear()

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
            bounded_put(self._awaiting_echo, message_id, started, MAX_TRACKED_REFS)

    def _own_echo(self, message_id: str) -> None:
        now = time.perf_counter()
        started = self._awaiting_echo.pop(message_id, None)
        if started is not None:
            self.latencies.append(now - started)
        else:  # the echo overtook the ack
            bounded_put(self._early_echo, message_id, now, MAX_TRACKED_REFS)
