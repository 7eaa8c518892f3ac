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

An idle connection costs no task: once authenticated, the connection is handed over
(:meth:`Connection.hand_over`) to a small :class:`_Served` holding its session and rate
limiter, and the server runs a task only while messages wait — the same steps, in the same
order, one message at a time. Where the engine cannot hand over (the ``websockets`` engine), the
handler task stays and loops on ``recv()``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from wslab.foundation.codes import CloseCode, ErrorCode
from wslab.foundation.errors import ConnectionClosed, RateLimitedError, WslabError
from wslab.foundation.wire import ERROR, error_envelope
from wslab.infrastructure.connection import Connection, Message
from wslab.infrastructure.events import EventKind, EventLog
from wslab.infrastructure.heartbeat import HeartbeatMonitor
from wslab.infrastructure.logs import bind, correlate, new_correlation_id, unbind
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
        log_fields: Mapping[str, Any] | None = None,
    ) -> None:
        self.chat = chat
        self.router = router
        self.heartbeat = heartbeat
        #: Builds each connection's rate limiter as it opens. Replaceable on a running hub (only
        #: connections opened afterwards see the change): chapter 4 plugs a student's bucket in here.
        self.new_limiter = new_limiter
        self.events = events
        self._verdicts = verdicts
        self._allowed = verdicts[Verdict.ALLOW]
        #: Messages handled so far, refused ones included: the hub's sign of activity.
        self.seen = 0
        self._errors = errors
        self._error_children: dict[str, Any] = {}
        self.on_opened = on_opened
        self.on_internal_error = on_internal_error
        #: Bound in the log context of every task handling a connection's messages (hub_id).
        self.log_fields = dict(log_fields or {})

    async def serve(self, connection: Connection) -> None:
        """Authenticate ``connection`` (or close it) and handle its messages until it closes.

        Returns once the session is open where the connection can be handed over: its messages
        are then handled by tasks that run only while there are some (see :class:`_Served`).
        """
        limiter = self.new_limiter()
        session = await self.chat.open_session(connection)
        if session is None:
            return
        # Authenticated: the upgrade's headers (the token among them) have served.
        connection.release_upgrade()
        self.heartbeat.watch(connection)
        self.on_opened(connection, session)
        served = _Served(self, session, limiter)
        if connection.hand_over(served):
            # Not bound here: the heartbeat's timers keep the context they were made in, and
            # every task handling this connection's messages binds it anew (_Served.resumed).
            return
        bind(user_id=session.user_id)
        recv = connection.recv
        step = self._step
        try:
            while True:
                try:
                    raw = await recv()
                except ConnectionClosed:
                    break
                if not await step(connection, limiter, raw):
                    break
        finally:
            await served.finished(connection)

    async def _step(self, connection: Connection, limiter: ConnectionLimiter, raw: Message) -> bool:
        """One message: rate limit, parse, route, reply. False once the connection must end."""
        self.seen += 1
        verdict = limiter.check(len(raw))
        if verdict is not Verdict.ALLOW:
            self._refuse_flood(connection, raw, verdict)
            return verdict is not Verdict.CLOSE
        self._allowed.inc()
        try:
            request = self.router.parse(connection, raw)
        except WslabError as error:
            reply: dict[str, Any] | None = error_envelope(error, getattr(error, "ref", None))
        else:
            ref = request.ref
            token = correlate(ref if ref is not None else new_correlation_id())
            try:
                reply = await self.router.handle(request)
            except BaseException:
                connection.uncork()
                raise
            finally:
                unbind(token)
        if reply is not None:
            if reply.get("type") == ERROR:
                self._count_error(reply, raw)
            connection.send_nowait(encode(reply))
        # A handler may have corked the connection (a chat message: the sender's copy, then
        # this reply): both go out now, in one write.
        connection.uncork()
        return True

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


class _Served:
    """One handed-over connection's share of the loop: its session and its rate limiter.

    The whole per-connection state of an idle authenticated connection on the hub's side, beside
    the session itself: no task, no coroutine frames, no closures.
    """

    __slots__ = ("limiter", "loop", "session")

    def __init__(self, loop: SessionLoop, session: Session, limiter: ConnectionLimiter) -> None:
        self.loop = loop
        self.session = session
        self.limiter = limiter

    def resumed(self, connection: Connection) -> None:
        # A fresh task each time: give it the log context the handler task had.
        bind(
            connection_id=connection.id, user_id=self.session.user_id, **self.loop.log_fields
        )

    async def message(self, connection: Connection, message: Message) -> bool:
        try:
            return await self.loop._step(connection, self.limiter, message)
        except Exception as error:
            # As the hub's handler did: kept in hub.errors; the server logs it and closes 1011.
            self.loop.on_internal_error(error)
            raise

    async def finished(self, connection: Connection) -> None:
        loop = self.loop
        loop.heartbeat.unwatch(connection)
        await loop.chat.close_session(self.session)
