"""One connection's life after the upgrade: authenticate, then route its messages until it closes.

This is the hub's hot path, so each message is handled with as little work as it needs:

- the rate limit is checked on the raw message, before anything is parsed (a flood is refused
  cheaply; only a refused message small enough is parsed, once, for its ``ref``);
- an allowed message is parsed **once** (:meth:`MessageRouter.parse`); its ``ref`` becomes the
  correlation id of everything logged while it is handled, and the parsed request goes on to
  the handler — nothing parses it again;
- the reply is encoded once and written without waiting (the slow-consumer policy applies).

The composition root (:class:`wslab.hub.Hub`) builds one :class:`SessionLoop` and hands it each
new connection; what the hub wants to know (a session opened, an internal error) comes back
through the hooks it passes in.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from wslab.foundation.codes import CloseCode, ErrorCode
from wslab.foundation.errors import ConnectionClosed, RateLimitedError, WslabError
from wslab.foundation.wire import ERROR, error_envelope
from wslab.infrastructure.connection import Connection
from wslab.infrastructure.events import EventKind, EventLog
from wslab.infrastructure.heartbeat import HeartbeatMonitor
from wslab.infrastructure.logs import bind, log_context, new_correlation_id
from wslab.infrastructure.metrics import Counter
from wslab.infrastructure.ratelimit import ConnectionLimiter, Verdict
from wslab.infrastructure.router import MessageRouter

from .chat import ChatService, encode
from .session import Session

__all__ = ["SessionLoop", "ref_of"]

log = logging.getLogger("wslab.hub")

#: Refused messages longer than this are not parsed for their ``ref``: refusing stays cheap.
MAX_REF_PARSE = 4096


def ref_of(raw: str | bytes) -> str | int | None:
    """The ``ref`` of a request refused before routing, so the client can match the error.

    Only small text messages are parsed for it: refusing a flood must stay cheap.
    """
    if not isinstance(raw, str) or len(raw) > MAX_REF_PARSE:
        return None
    try:
        ref = json.loads(raw).get("ref")
    except (ValueError, AttributeError, RecursionError):
        return None
    return ref if isinstance(ref, (str, int)) and not isinstance(ref, bool) else None


class SessionLoop:
    """Serves connections: session, rate limit, routing, replies, and the hub's counters."""

    def __init__(
        self,
        chat: ChatService,
        router: MessageRouter,
        heartbeat: HeartbeatMonitor,
        *,
        new_limiter: Callable[[], ConnectionLimiter],
        events: EventLog,
        verdicts: dict[Verdict, Any],
        errors: Counter,
        on_opened: Callable[[Connection, Session], None],
        on_internal_error: Callable[[BaseException], None],
    ) -> None:
        self.chat = chat
        self.router = router
        self.heartbeat = heartbeat
        #: Builds each connection's rate limiter as it opens. Replaceable on a running hub (only
        #: connections opened afterwards see the change): chapter 4 plugs a student's bucket in here.
        self.new_limiter = new_limiter
        self.events = events
        self._verdicts = verdicts
        self._errors = errors
        self._error_children: dict[str, Any] = {}
        self.on_opened = on_opened
        self.on_internal_error = on_internal_error

    async def serve(self, connection: Connection) -> None:
        """Authenticate ``connection`` (or close it) and handle its messages until it closes."""
        limiter = self.new_limiter()
        session = await self.chat.open_session(connection)
        if session is None:
            return
        bind(user_id=session.user_id)
        self.heartbeat.watch(connection)
        self.on_opened(connection, session)
        allowed = self._verdicts[Verdict.ALLOW]
        check = limiter.check
        parse = self.router.parse
        handle = self.router.handle
        send = connection.send_nowait
        allow = Verdict.ALLOW
        recv = connection.recv
        try:
            while True:
                try:
                    raw = await recv()
                except ConnectionClosed:
                    break
                verdict = check(len(raw))
                if verdict is not allow:
                    self._refuse_flood(connection, raw, verdict)
                    if verdict is Verdict.CLOSE:
                        break
                    continue
                allowed.inc()
                try:
                    request = parse(connection, raw)
                except WslabError as error:
                    reply: dict[str, Any] | None = error_envelope(
                        error, getattr(error, "ref", None)
                    )
                else:
                    ref = request.ref
                    with log_context(
                        correlation_id=ref if ref is not None else new_correlation_id()
                    ):
                        reply = await handle(request)
                if reply is not None:
                    if reply.get("type") == ERROR:
                        self._count_error(reply, raw)
                    send(encode(reply))
        finally:
            self.heartbeat.unwatch(connection)
            await self.chat.close_session(session)

    def _refuse_flood(self, connection: Connection, raw: str | bytes, verdict: Verdict) -> None:
        self._verdicts[verdict].inc()
        if self.events.enabled_for(EventKind.RATE_LIMIT):
            self.events.record(
                EventKind.RATE_LIMIT, connection.id, verdict=verdict.value, nbytes=len(raw)
            )
        if verdict is Verdict.CLOSE:
            log.info("closing %s: sustained flooding", connection.id)
            connection.close_nowait(
                CloseCode.POLICY_VIOLATION, "sustained flooding past the rate limit"
            )
            return
        limited = RateLimitedError("rate limit exceeded; slow down")
        connection.send_nowait(encode(error_envelope(limited, ref_of(raw))))

    def _count_error(self, reply: dict[str, Any], raw: str | bytes) -> None:
        """Every error reply counted once in ``errors_total{code}``, by its name."""
        error = reply["error"]
        name = error.get("name", "UNKNOWN")
        child = self._error_children.get(name)
        if child is None:
            child = self._error_children[name] = self._errors.labels(name)
        child.inc()
        if error.get("code") == ErrorCode.INTERNAL_ERROR:
            # The router has logged the failure (with its traceback, throttled per type): the
            # hub only keeps it in hub.errors and the event log.
            self.on_internal_error(RuntimeError(f"internal error handling {str(raw)[:80]!r}"))
