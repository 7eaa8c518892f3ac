"""The chat client's requests: send with a ``ref``, resolve with the reply that names it.

:class:`Requests` is the part of :class:`~wslab.client.ChatClient` that talks to the hub: the
generic :meth:`~Requests.request` (at most ``max_pending`` at once, each with a timeout, all
failed with ``ConnectionClosed`` when the connection drops), on which the client builds its calls
(``send_message``, ``join``, ``history``...), and :meth:`~Requests.resolve`, which hands a reply
to the request that waits for it. It also measures the latency of the client's own messages:
send -> the message received back from the hub. :class:`Link` is the connection the parts
share: which one is open, and whether it may be used.

Chat messages are never resent automatically: the hub gives each message its own id, so a resend
after a lost ack could store it twice. The ref of a chat message whose request failed (timeout,
``DEGRADED``, a drop) is remembered so that its late ack is reported as a
:class:`~.events.LateAck`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from wslab.foundation.errors import (
    ConflictError,
    ConnectionBroken,
    ConnectionClosed,
    ConnectionClosedLocally,
    OperationTimeout,
)
from wslab.foundation.wire import ACK, CHAT_MESSAGE, ERROR
from wslab.infrastructure.connection import Connection

from .bounds import MAX_TRACKED_REFS, bounded_put
from .errors import TooManyPending, error_from_envelope
from .events import LateAck
from .inbox import Inbox
from .results import ClientStats

__all__ = ["Link", "Pending", "Requests"]


@dataclass
class Pending:
    """A request waiting for its reply: resolved by a reply of an ``expect`` type."""

    future: asyncio.Future[dict[str, Any]]
    expect: frozenset[str] | None
    sent_at: float
    kind: str


class Link:
    """The client's connection as its parts see it: the open one (if any) and its standing."""

    def __init__(self, inbox: Inbox) -> None:
        self.conn: Connection | None = None
        #: Set while a connection is open and admitted.
        self.connected = asyncio.Event()
        #: True once ``close()`` was called.
        self.closing = False
        self._inbox = inbox

    @property
    def finished(self) -> bool:
        """True once the client is done: closed, or refused for good."""
        return self._inbox.finished

    def usable(self) -> Connection:
        """The open connection; ``ConnectionClosed`` (saying why) when there is none."""
        conn = self.conn
        if conn is None or not self.connected.is_set():
            raise self.not_connected()
        return conn

    def not_connected(self) -> ConnectionClosed:
        """The error for a call made while there is no usable connection."""
        if self.closing:
            return ConnectionClosedLocally("the client is closed")
        if self.finished:
            return ConnectionBroken("the hub ended the connection for good")
        return ConnectionBroken("not connected to the hub (reconnecting)")


class Requests:
    """Requests and their replies; part of :class:`~wslab.client.ChatClient`.

    ``latencies`` receives, for each of the client's own messages, the time from sending it to
    receiving it back live.
    """

    def __init__(
        self,
        *,
        link: Link,
        stats: ClientStats,
        inbox: Inbox,
        latencies: deque[float],
        max_pending: int,
        request_timeout: float,
    ) -> None:
        self.link = link
        self.stats = stats
        self.inbox = inbox
        self.latencies = latencies
        self.max_pending = max_pending
        self.request_timeout = request_timeout
        self._pending: dict[str, Pending] = {}
        self._abandoned: OrderedDict[str, None] = OrderedDict()  # chat refs that may ack late
        self._awaiting_echo: OrderedDict[str, float] = OrderedDict()  # message_id -> sent at
        self._early_echo: OrderedDict[str, float] = OrderedDict()  # echo before ack
        self._ref_prefix = secrets.token_hex(4) + "-"
        self._refs = itertools.count(1)

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
        conn = self.link.usable()
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
                if entry.kind == CHAT_MESSAGE:
                    self.abandon(ref)
                raise OperationTimeout(f"no reply to {entry.kind} (ref {ref}) in {wait}s") from None
        finally:
            self._pending.pop(ref, None)

    async def send(self, message: Mapping[str, Any]) -> None:
        """Send ``message`` without a ref: nothing answers it."""
        conn = self.link.usable()
        await conn.send(json.dumps(message, separators=(",", ":")))
        self.stats.sent += 1

    def resolve(self, message: Mapping[str, Any]) -> bool:
        """Hand a reply to the request it names, or report a late ack. True if it was one."""
        ref = message.get("ref")
        if ref is None:
            return False
        kind = message.get("type")
        entry = self._pending.get(str(ref))
        if entry is not None and (kind == ERROR or entry.expect is None or kind in entry.expect):
            if not entry.future.done():
                if kind == ERROR:
                    self.stats.errors += 1
                    entry.future.set_exception(error_from_envelope(message))
                else:
                    entry.future.set_result(dict(message))
            return True
        if kind == ACK and str(ref) in self._abandoned:
            self._abandoned.pop(str(ref), None)
            seq = message.get("seq")
            self.inbox.put(
                LateAck(str(ref), message.get("message_id"), seq if isinstance(seq, int) else None)
            )
            return True
        return False

    def abandon(self, ref: str) -> None:
        """A chat message's request failed: its ack, if one comes, is a :class:`LateAck`."""
        bounded_put(self._abandoned, ref, None, MAX_TRACKED_REFS)

    def fail_pending(self, error: ConnectionClosed) -> None:
        """The connection ended: every waiting request fails with ``error``."""
        for ref, entry in list(self._pending.items()):
            if not entry.future.done():
                entry.future.set_exception(error)
            if entry.kind == CHAT_MESSAGE:
                self.abandon(ref)
        self._pending.clear()

    # -- latency ------------------------------------------------------------------------------------

    def sent_message(self, message_id: str, started: float) -> None:
        """The hub named the id of a message sent at ``started``; wait for (or match) its echo."""
        echoed = self._early_echo.pop(message_id, None)
        if echoed is not None:
            self.latencies.append(echoed - started)
        else:
            bounded_put(self._awaiting_echo, message_id, started, MAX_TRACKED_REFS)

    def own_echo(self, message_id: str) -> None:
        """One of this client's own messages came back live."""
        now = time.perf_counter()
        started = self._awaiting_echo.pop(message_id, None)
        if started is not None:
            self.latencies.append(now - started)
        else:  # the echo overtook the ack
            bounded_put(self._early_echo, message_id, now, MAX_TRACKED_REFS)
