"""A chat session: one authenticated connection, and the rules for getting and keeping one.

Authentication follows the protocol's order of preference (``docs/protocol.md``):

1. ``Authorization: Bearer <token>`` on the upgrade request;
2. the first message ``{"type": "auth", "token": ...}`` within ``auth_timeout`` seconds — any
   other first message, or none in time, closes with 4001;
3. ``?token=`` on the URL (weakest: URLs end up in logs).

Any failure closes the connection with **4001**. A token that expires while connected gets
``auth:expiring`` first (see :func:`wslab.integration.auth.plan_expiry` for when), may be
replaced with ``auth:refresh``, and the connection is closed with 4001 at expiry otherwise.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from wslab.foundation.codes import CloseCode
from wslab.foundation.errors import AuthenticationError, ConnectionClosed
from wslab.foundation.wire import AUTH, AUTH_EXPIRING
from wslab.infrastructure.connection import Connection
from wslab.infrastructure.events import NULL_EVENT_LOG, EventKind, EventLog
from wslab.integration.auth.expiry import ExpiryPlan, check_refresh, plan_expiry
from wslab.integration.auth.sources import token_from_message, token_from_upgrade
from wslab.integration.auth.tokens import Identity, TokenVerifier

__all__ = ["Authenticator", "Session"]

#: How the authenticator sends ``auth:expiring`` to the client.
#: Called with the message; it may return an awaitable (then awaited in the background), a bool
#: or None, so any of the hub's send functions fits.
Sender = Callable[..., object]
#: Called with the connection, the failure's safe message and where the token came from
#: (``"header"``, ``"query"``, ``"message"``, ``"upgrade"`` or ``"expiry"``).
FailureHook = Callable[[Connection, str, str], None]

log = logging.getLogger("wslab.session")


@dataclass(eq=False, slots=True)
class Session:
    """What the chat knows about one connection (slots: a hub holds thousands)."""

    connection: Connection
    identity: Identity
    auth_method: str = "header"
    rooms: set[str] = field(default_factory=set)
    denied_admin_actions: int = 0
    #: The pending step of the token's expiry (the warning, then the close): a timer handle on
    #: the loop, not a task per connection. ``cancel()`` stops it.
    expiry_task: asyncio.TimerHandle | None = None

    @property
    def user_id(self) -> str:
        """The authenticated user's id (the token's ``sub``)."""
        return self.identity.user_id

    @property
    def username(self) -> str:
        """The name shown to others."""
        return self.identity.username


class Authenticator:
    """Admits connections (or closes them with 4001) and watches token expiry.

    ``verifier=None`` admits everyone as a guest (``wslab serve --no-auth``).
    """

    def __init__(
        self,
        verifier: TokenVerifier | None,
        *,
        auth_timeout: float = 10.0,
        event_log: EventLog | None = None,
        wall_clock: Callable[[], float] = time.time,
        on_failure: FailureHook | None = None,
    ) -> None:
        self.verifier = verifier
        self.auth_timeout = auth_timeout
        self.events = event_log if event_log is not None else NULL_EVENT_LOG
        self.wall_clock = wall_clock
        #: Told of every refused or expired token, before the 4001 (metrics, the hub's log).
        self.on_failure = on_failure
        self._sending: set[asyncio.Future[None]] = set()

    async def admit(self, connection: Connection) -> tuple[Identity, str] | None:
        """The identity of ``connection`` and how it was proven; None after closing it with 4001."""
        if self.verifier is None:
            # Random ids: a counter would hand a restarted hub's new guest an old guest's
            # id, and with it that guest's direct messages.
            return Identity.guest(), "guest"
        source = "upgrade"  # until we know better: a malformed header or query fails here
        try:
            token, source = token_from_upgrade(connection.headers, connection.query)
            if token is None:
                token = await self._first_message_token(connection)
                source = "message"
            identity = self.verifier.verify(token)
        except AuthenticationError as error:
            self._record(connection, ok=False, reason=error.message, method=source)
            if self.on_failure is not None:
                self.on_failure(connection, error.message, source)
            await connection.close(
                CloseCode.AUTHENTICATION_FAILED, f"authentication failed: {error.message}"
            )
            return None
        except ConnectionClosed:
            return None
        self._record(connection, ok=True, user_id=identity.user_id, method=source)
        return identity, source

    async def _first_message_token(self, connection: Connection) -> str:
        try:
            raw = await asyncio.wait_for(connection.recv(), self.auth_timeout)
        except asyncio.TimeoutError:
            raise AuthenticationError(f"no auth message within {self.auth_timeout:g}s") from None
        try:
            message = json.loads(raw) if isinstance(raw, str) else None
        except ValueError:
            message = None
        if not isinstance(message, dict) or message.get("type") != AUTH:
            raise AuthenticationError('the first message must be {"type": "auth", "token": ...}')
        return token_from_message(message)

    def refresh(self, session: Session, token: str) -> Identity:
        """Verify a refreshed token for the same user and make it the session's identity."""
        assert self.verifier is not None
        refreshed = self.verifier.verify(token)
        check_refresh(session.identity, refreshed)
        session.identity = refreshed
        self._record(session.connection, ok=True, user_id=refreshed.user_id, method="refresh")
        return refreshed

    def watch_expiry(
        self, session: Session, send: Sender
    ) -> None:
        """(Re)start the timer that warns before the token expires and closes at expiry."""
        if session.expiry_task is not None:
            session.expiry_task.cancel()
            session.expiry_task = None
        plan = plan_expiry(session.identity, self.wall_clock())
        if plan is None:
            return  # guests and tokens without expiry
        delay = max(0.0, plan.warn_at - self.wall_clock())
        session.expiry_task = asyncio.get_running_loop().call_later(
            delay, self._warn, session, plan, send
        )

    def _warn(self, session: Session, plan: ExpiryPlan, send: Sender) -> None:
        connection = session.connection
        if connection.closed:
            session.expiry_task = None
            return
        result = send(
            {"type": AUTH_EXPIRING, "expires_in": round(plan.expires_in(self.wall_clock()), 3)}
        )
        if asyncio.iscoroutine(result):  # an async sender: keep the task until it is done
            task = asyncio.ensure_future(result)
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)
        delay = max(0.0, plan.close_at - self.wall_clock())
        session.expiry_task = asyncio.get_running_loop().call_later(delay, self._expired, session)

    def _expired(self, session: Session) -> None:
        session.expiry_task = None
        connection = session.connection
        if not connection.closed:
            self._record(connection, ok=False, reason="token expired")
            if self.on_failure is not None:
                self.on_failure(connection, "token expired", "expiry")
            connection.close_nowait(CloseCode.AUTHENTICATION_FAILED, "token expired")

    def _record(self, connection: Connection, **fields: object) -> None:
        self.events.record(EventKind.AUTH, connection.id, **fields)
