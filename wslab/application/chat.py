"""The chat: rooms, messages, direct messages, typing, history, presence, admin broadcasts.

``ChatService`` holds the rules and workflows; everything it touches comes in through its
constructor (a store, a broker, the connection manager, a router), so one service class serves
one hub or many hubs in one kernel alike.

The life of a chat message::

    client --chat:message--> validate (4 layers) --> store.save (assigns seq) --> ack to sender
                                                   \\-> local room members (encoded once)
                                                   \\-> broker "room:<name>" --> other hubs' members

The ``ack`` is sent only after the store has the message. If the store is down, the message is
still relayed live (``seq: null``), the sender gets ``DEGRADED`` with the ``message_id``, and the
draft waits in the bounded :class:`~wslab.application.retry.RetryQueue`; the ``ack`` follows once
it is stored. If the broker is down, local members still get everything; when it returns, every
local client is sent ``system:resync`` to fetch what the other hubs sent meanwhile
(``chat:history`` with ``since_seq``) — nothing is silently lost.

The broker never hands a hub its own messages (``echo_own=False``, skipped once in
:class:`~wslab.integration.broker.BrokerBase`): the hub has delivered them locally already, so
no handler here checks ``origin_hub``. That is what makes delivery exactly-once per client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from wslab.foundation.codes import CloseCode
from wslab.foundation.errors import (
    ConflictError,
    DegradedError,
    DependencyError,
    PermissionDeniedError,
    RateLimitedError,
    ValidationError,
    WslabError,
)
from wslab.foundation.wire import (
    ACK,
    ADMIN_BROADCAST,
    AUTH,
    AUTH_REFRESH,
    AUTH_REFRESHED,
    CHAT_HISTORY,
    CHAT_MESSAGE,
    CHAT_TYPING,
    ERROR,
    PRESENCE_LIST,
    ROOM_JOIN,
    ROOM_LEAVE,
    SYSTEM_BROADCAST,
    SYSTEM_CONNECTED,
    format_timestamp,
)
from wslab.infrastructure.connection import Connection
from wslab.infrastructure.events import EventKind, EventLog
from wslab.infrastructure.manager import ConnectionManager
from wslab.infrastructure.metrics import Metrics
from wslab.infrastructure.router import MessageRouter, RoutedMessage, RouteHandler
from wslab.integration.broker import Broker, BrokerMessage
from wslab.integration.store import MessageDraft, Store, StoredMessage, utc_now

from .chat_hubs import ADMIN, PRESENCE, CrossHubRelay, encode
from .presence import PresenceTracker
from .presence_fanout import PresenceFanout
from .retry import PendingMessage, RetryQueue
from .routing import DEFAULT_LIMIT, DIRECT, ROOMS, BrokerRouting
from .session import Authenticator, Session
from .validation import DEFAULT_ROOM, validate
from .versioning import CURRENT_VERSION, upgrade_request

__all__ = ["ADMIN", "DIRECT", "PRESENCE", "ROOMS", "ChatService", "encode"]

ChatHandler = Callable[
    ["Session", dict[str, Any], RoutedMessage], Awaitable["dict[str, Any] | None"]
]

log = logging.getLogger("wslab.chat")

#: After this many refused admin-only actions the connection is closed with 4003.
MAX_DENIED_ADMIN_ACTIONS = 3


class ChatService(CrossHubRelay):
    """The application layer of one hub."""

    def __init__(
        self,
        *,
        hub_id: str,
        store: Store,
        broker: Broker,
        manager: ConnectionManager,
        authenticator: Authenticator,
        event_log: EventLog | None = None,
        metrics: Metrics | None = None,
        retry_queue_size: int = 1000,
        retry_queue_per_user: int | None = None,
        presence_interval: float = 5.0,
        max_rooms: int = 10_000,
        max_rooms_per_user: int = 50,
        presence_broadcast_limit: int = 50,
        on_error: Callable[[BaseException], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        routing: str | None = None,
        max_room_channels: int = DEFAULT_LIMIT,
        max_user_channels: int = DEFAULT_LIMIT,
    ) -> None:
        self.hub_id = hub_id
        self.store = store
        self.broker = broker
        self.manager = manager
        self.auth = authenticator
        self.events = event_log
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.on_error = on_error
        self.presence = PresenceTracker(
            snapshot_interval=presence_interval,
            max_rooms=max_rooms,
            reserved_rooms=frozenset({DEFAULT_ROOM}),
        )
        #: Announces presence changes once per loop turn, per room, by count in large rooms.
        self.presence_fanout = PresenceFanout(
            manager,
            self.presence,
            broadcast_limit=presence_broadcast_limit,
            encode=encode,
            publish=lambda payload: self._publish(PRESENCE, payload),
            metrics=self.metrics,
        )
        #: Distinct rooms one user's connections on this hub may be in together (the lobby not
        #: counted): with it below ``max_rooms``, one user cannot fill the hub-wide table from
        #: many connections.
        self.max_rooms_per_user = max_rooms_per_user
        #: Which broker channels carry room and direct traffic; ``routing="hub"`` (the
        #: hub's ``broker_routing`` setting) keeps the old hub-wide channels.
        self.routing = BrokerRouting(
            broker,
            on_room=self._from_rooms,
            on_direct=self._from_direct,
            mode=routing,
            max_room_channels=max_room_channels,
            max_user_channels=max_user_channels,
        )
        self.retry = RetryQueue(
            store,
            self._late_ack,
            max_size=retry_queue_size,
            max_per_sender=retry_queue_per_user,
            on_error=on_error,
        )
        self.sessions: dict[str, Session] = {}
        self.store_healthy = True
        self._tasks: set[asyncio.Task[Any]] = set()
        self._presence_task: asyncio.Task[None] | None = None
        self._unsubscribe_state: Callable[[], None] | None = None
        m = self.metrics
        self._m_messages = m.counter("chat_messages_total", "Chat messages accepted", ["kind"])
        #: The series of chat_messages_total by kind, looked up once each (hot path).
        self._m_kinds = {kind: self._m_messages.labels(kind) for kind in ("room", "direct")}
        self._m_store = m.histogram("store_save_seconds", "Time to store one message")
        self._m_fanout = m.histogram(
            "fanout_recipients",
            "Local recipients per delivery",
            buckets=(1, 2, 5, 10, 50, 100, 1000),
        )

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe to the other hubs and start announcing presence."""
        for channel, handler in self._channels():
            await self.broker.subscribe(channel, handler)
        await self.routing.start()
        self._unsubscribe_state = self.broker.on_state_change(self._broker_state_changed)
        self._presence_task = asyncio.ensure_future(self._announce_presence())

    async def stop(self) -> None:
        """Say goodbye to the other hubs, stop background work (queued retries are kept)."""
        if self._presence_task is not None:
            self._presence_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._presence_task
        self.presence_fanout.cancel()
        with contextlib.suppress(DependencyError):
            await self.broker.publish(PRESENCE, {"op": "goodbye"})
        for task in list(self._tasks):
            task.cancel()
        for session in list(self.sessions.values()):
            if session.expiry_task is not None:
                session.expiry_task.cancel()
        await self.retry.drain(1.0)
        await self.retry.close()
        if self._unsubscribe_state is not None:
            self._unsubscribe_state()
        for channel, handler in self._channels():
            with contextlib.suppress(Exception):
                await self.broker.unsubscribe(channel, handler)
        with contextlib.suppress(Exception):
            await self.routing.stop()

    def _channels(self) -> list[tuple[str, Callable[[BrokerMessage], Any]]]:
        return [
            (PRESENCE, self._from_presence),
            (ADMIN, self._from_admin),
        ]

    def register(self, router: MessageRouter) -> None:
        """Route every client request type of the protocol to this service."""
        routes = {
            AUTH: self._on_auth_again,
            AUTH_REFRESH: self._on_refresh,
            ROOM_JOIN: self._on_join,
            ROOM_LEAVE: self._on_leave,
            CHAT_MESSAGE: self._on_message,
            CHAT_TYPING: self._on_typing,
            CHAT_HISTORY: self._on_history,
            PRESENCE_LIST: self._on_presence_list,
            ADMIN_BROADCAST: self._on_admin_broadcast,
        }
        versions = router.versions | set(router.deprecated_versions)
        for type_, handler in routes.items():
            router.add_route(type_, self._validated(type_, handler), versions=versions)

    def _validated(self, type_: str, handler: ChatHandler) -> RouteHandler:
        """Wrap a chat handler: find the session, upgrade old versions, validate (layers 1-3)."""

        async def run(request: RoutedMessage) -> dict[str, Any] | None:
            session = self.sessions.get(request.connection.id)
            if session is None:
                raise PermissionDeniedError("not authenticated")
            body = upgrade_request(request.version, request.type, request.body)
            return await handler(session, validate(type_, body), request)

        return run

    # -- sessions ----------------------------------------------------------------------------------

    async def open_session(self, connection: Connection) -> Session | None:
        """Authenticate ``connection``, greet it and put it in the lobby.

        None if refused: 4001 for failed authentication, 1013 (try again later) when the hub
        already has ``max_connections``. Nothing of a refused or failed opening is kept.
        """
        admitted = await self.auth.admit(connection)
        if admitted is None:
            return None
        identity, method = admitted
        try:
            self.manager.add(connection, key=identity.user_id)
        except ConflictError as error:
            await connection.close(CloseCode.TRY_AGAIN_LATER, error.message)
            return None
        session = Session(connection, identity, auth_method=method)
        self.sessions[connection.id] = session
        try:
            # Before the greeting: a direct message stored after it reaches this hub live.
            await self.routing.user_connected(identity.user_id)
            # The greeting and the lobby's snapshot leave in one socket write (uncorked below).
            connection.cork()
            self.send(
                connection,
                {
                    "type": SYSTEM_CONNECTED,
                    "connection_id": connection.id,
                    "user_id": identity.user_id,
                    "username": identity.username,
                    "roles": list(identity.roles),
                    "server": self.hub_id,
                    "protocol_version": CURRENT_VERSION,
                },
            )
            self.auth.watch_expiry(session, lambda message: self.send(connection, message))
            try:
                await self._join(session, DEFAULT_ROOM)
            finally:
                connection.uncork()
        except BaseException:
            # The caller cleans up only sessions it was given: undo this one here.
            await self.close_session(session)
            raise
        return session

    async def close_session(self, session: Session) -> None:
        """The connection ended: leave every room (presence) and forget it."""
        if session.expiry_task is not None:
            session.expiry_task.cancel()
        for room in list(session.rooms):
            self._leave(session, room)
        self.manager.remove(session.connection)
        if self.sessions.pop(session.connection.id, None) is not None:
            self.routing.user_disconnected(session.user_id)

    def send(self, connection: Connection, message: dict[str, Any]) -> bool:
        """Send one message to one connection (never waits; see the slow-consumer policy)."""
        return connection.send_nowait(encode(message))

    # -- rooms and presence ------------------------------------------------------------------------

    async def _on_join(
        self, session: Session, fields: dict[str, Any], request: RoutedMessage
    ) -> dict[str, Any]:
        room = fields["room"]
        await self._join(session, room)
        latest = await self._latest_seq(room)
        return {"type": ACK, "status": "success", "room": room, "latest_seq": latest}

    async def _join(self, session: Session, room: str) -> None:
        if room in session.rooms:
            return
        # Every limit is checked before anything changes: a refused join leaves no trace (no
        # membership, no presence), so a message to that room is refused too.
        self._check_user_rooms(session, room)
        self.presence.check_capacity(room)
        if not self.manager.join(session.connection, room):  # raises at the per-connection limit
            return
        try:
            change = self.presence.join(
                room, session.user_id, session.username, session.connection.id
            )
        except BaseException:
            self.manager.leave(session.connection, room)
            raise
        session.rooms.add(room)
        self.presence_fanout.changed(change, publish=True)
        self.presence_fanout.send_snapshot(session.connection, room)
        # Awaited before the join's ack reads latest_seq: see .routing for the guarantee.
        await self.routing.join_room(room)

    def _check_user_rooms(self, session: Session, room: str) -> None:
        """RateLimitedError if joining ``room`` would put the user in too many rooms."""
        if room == DEFAULT_ROOM:
            return
        rooms: set[str] = set()
        for connection in self.manager.by_key(session.user_id):
            other = self.sessions.get(connection.id)
            if other is not None:
                rooms |= other.rooms
        if room in rooms:
            return
        rooms.discard(DEFAULT_ROOM)
        if len(rooms) >= self.max_rooms_per_user:
            raise RateLimitedError(
                f"a user may be in at most {self.max_rooms_per_user} rooms at once; leave one first"
            )

    async def _on_leave(
        self, session: Session, fields: dict[str, Any], request: RoutedMessage
    ) -> dict[str, Any]:
        room = fields["room"]
        if room not in session.rooms:
            raise ValidationError(f"not in room {room!r}")
        self._leave(session, room)
        return {"type": ACK, "status": "success", "room": room}

    def _leave(self, session: Session, room: str) -> None:
        self.manager.leave(session.connection, room)
        session.rooms.discard(room)
        self.routing.leave_room(room)
        change = self.presence.leave(room, session.user_id, session.connection.id)
        self.presence_fanout.changed(change, publish=True)

    async def _on_presence_list(
        self, session: Session, fields: dict[str, Any], request: RoutedMessage
    ) -> dict[str, Any]:
        room = fields["room"]
        users = self.presence.users(room)
        return {
            "type": PRESENCE_LIST,
            "room": room,
            "users": [{"user_id": uid, "username": name} for uid, name in sorted(users.items())],
            "count": len(users),
        }

    async def _announce_presence(self) -> None:
        """Publish this hub's presence periodically; forget hubs that went silent."""
        while True:
            with contextlib.suppress(DependencyError):
                await self.broker.publish(
                    PRESENCE, {"op": "snapshot", "rooms": self.presence.local_snapshot()}
                )
            for change in self.presence.expire(self.clock()):
                self.presence_fanout.changed(change, publish=False)
            self.presence_fanout.send_counts(self.clock(), self.presence.snapshot_interval)
            await asyncio.sleep(self.presence.snapshot_interval)

    # -- messages ----------------------------------------------------------------------------------

    async def _on_message(
        self, session: Session, fields: dict[str, Any], request: RoutedMessage
    ) -> dict[str, Any]:
        to_user = fields["to_user"]
        room = fields["room"]
        if to_user is None and room not in session.rooms:
            raise ValidationError(f"join room {room!r} before posting to it")
        draft = MessageDraft(
            room=room,
            from_user=session.user_id,
            from_username=session.username,
            content=fields["content"],
            to_user=to_user,
            origin_hub=self.hub_id,
        )
        if len(self.retry):
            # Earlier messages still wait for the store: this one queues behind them, so a
            # sender's messages are stored (and get their seq) in the order they were sent.
            return self._store_down(session, draft, request)
        started = time.perf_counter()
        try:
            stored = await self.store.save(draft)
        except DependencyError:
            return self._store_down(session, draft, request)
        self._m_store.observe(time.perf_counter() - started)
        self._set_store_healthy(True)
        self._m_kinds["direct" if to_user else "room"].inc()
        # The sender's own copy and the ack that follows it leave in one socket write: the
        # session loop uncorks once the reply is written (SessionLoop._step).
        session.connection.cork()
        self._deliver(stored.to_wire(), stored.to_user, stored.from_user, room=stored.room)
        return {
            "type": ACK,
            "status": "success",
            "message_id": stored.message_id,
            "seq": stored.seq,
        }

    def _store_down(
        self, session: Session, draft: MessageDraft, request: RoutedMessage
    ) -> dict[str, Any]:
        """The store failed: relay live, queue for retry, tell the sender (not an ack)."""
        self._set_store_healthy(False)
        if not self.retry.offer(PendingMessage(draft, session.connection.id, request.ref)):
            if self.retry.sender_full(draft.from_user):
                raise RateLimitedError(
                    f"the message store is down and {self.retry.max_per_sender} of your messages "
                    "already wait for it: message not sent; wait for their acks"
                )
            raise DegradedError(
                "the message store is down and the retry queue is full: message not sent"
            )
        wire = {
            "type": CHAT_MESSAGE,
            "room": draft.storage_room,
            "message_id": draft.message_id,
            "seq": None,
            "from_user": draft.from_user,
            "from_username": draft.from_username,
            "to_user": draft.to_user,
            "content": draft.content,
            "timestamp": format_timestamp(draft.timestamp),
        }
        session.connection.cork()  # the copy and the reply in one write (see _on_message)
        self._deliver(wire, draft.to_user, draft.from_user, room=draft.storage_room)
        # Counted once, as the error reply it is (errors_total{code="DEGRADED"}).
        error = DegradedError("delivered live but not stored yet: it is acknowledged once stored")
        return {"type": ERROR, "error": error.to_dict(), "message_id": draft.message_id}

    async def _late_ack(self, pending: PendingMessage, stored: StoredMessage) -> None:
        self._set_store_healthy(True)
        connection = self.manager.get(pending.connection_id) if pending.connection_id else None
        if connection is not None:
            ack: dict[str, Any] = {
                "type": ACK,
                "status": "success",
                "message_id": stored.message_id,
                "seq": stored.seq,
            }
            if pending.ref is not None:
                ack["ref"] = pending.ref
            self.send(connection, ack)

    def _deliver(
        self, wire: dict[str, Any], to_user: str | None, from_user: str, *, room: str
    ) -> None:
        """Local fan-out, then the other hubs through the broker."""
        self._deliver_locally(wire, to_user, from_user)
        if to_user is None:
            self._publish(self.routing.room_channel(room), {"kind": "message", "message": wire})
        else:
            payload = {"message": wire, "to_user": to_user, "from_user": from_user}
            for channel in self.routing.direct_channels(to_user, from_user):
                self._publish(channel, payload)

    def _deliver_locally(self, wire: dict[str, Any], to_user: str | None, from_user: str) -> None:
        text = encode(wire)
        if to_user is None:
            result = self.manager.broadcast(text, wire["room"])
        else:
            result = self.manager.send_to_key(to_user, text)
            if from_user != to_user:
                # The sender's own connections (other tabs) see the conversation too.
                mine = self.manager.send_to_key(from_user, text)
                result = type(result)(
                    result.delivered + mine.delivered, result.failed + mine.failed
                )
        self._m_fanout.observe(result.attempted)

    async def _on_typing(
        self, session: Session, fields: dict[str, Any], request: RoutedMessage
    ) -> None:
        room = fields["room"]
        if room not in session.rooms:
            raise ValidationError(f"join room {room!r} before typing in it")
        wire = {
            "type": CHAT_TYPING,
            "room": room,
            "user_id": session.user_id,
            "username": session.username,
            "is_typing": fields["is_typing"],
        }
        self.manager.broadcast(encode(wire), room, exclude=(session.connection.id,))
        self._publish(self.routing.room_channel(room), {"kind": "typing", "message": wire})
        return None

    async def _on_history(
        self, session: Session, fields: dict[str, Any], request: RoutedMessage
    ) -> dict[str, Any]:
        cursor = {
            "limit": fields["limit"],
            "before_seq": fields["before_seq"],
            "since_seq": fields["since_seq"],
        }
        try:
            if fields["with_user"] is not None:
                page = await self.store.direct_history(
                    session.user_id, fields["with_user"], **cursor
                )
            else:
                page = await self.store.history(fields["room"], **cursor)
        except DependencyError:
            self._set_store_healthy(False)
            raise DegradedError("history is unavailable while the message store is down") from None
        self._set_store_healthy(True)
        return page.to_wire()

    async def _on_admin_broadcast(
        self, session: Session, fields: dict[str, Any], request: RoutedMessage
    ) -> dict[str, Any]:
        if not session.identity.is_admin:
            session.denied_admin_actions += 1
            if session.denied_admin_actions >= MAX_DENIED_ADMIN_ACTIONS:
                session.connection.close_nowait(CloseCode.FORBIDDEN, "admin-only action repeated")
            raise PermissionDeniedError("admin:broadcast needs the admin role")
        wire = {
            "type": SYSTEM_BROADCAST,
            "content": fields["content"],
            "from_user": session.user_id,
            "from_username": session.username,
            "timestamp": format_timestamp(utc_now()),
        }
        result = self.manager.broadcast(encode(wire))
        self._publish(ADMIN, {"message": wire})
        return {"type": ACK, "status": "success", "delivered": result.delivered}

    # -- authentication after the first message ----------------------------------------------------

    async def _on_auth_again(
        self, session: Session, fields: dict[str, Any], request: RoutedMessage
    ) -> dict[str, Any]:
        raise ValidationError("already authenticated; use auth:refresh to replace the token")

    async def _on_refresh(
        self, session: Session, fields: dict[str, Any], request: RoutedMessage
    ) -> dict[str, Any]:
        if self.auth.verifier is None:
            raise ValidationError("this hub runs without authentication")
        try:
            identity = self.auth.refresh(session, fields["token"])
        except WslabError as error:
            session.connection.close_nowait(
                CloseCode.AUTHENTICATION_FAILED, f"authentication failed: {error.message}"
            )
            raise
        connection = session.connection
        self.auth.watch_expiry(session, lambda message: self.send(connection, message))
        return {
            "type": AUTH_REFRESHED,
            "expires_in": round(identity.expires_at - self.auth.wall_clock(), 3),
        }

    # -- health ------------------------------------------------------------------------------------

    def _set_store_healthy(self, healthy: bool) -> None:
        if healthy != self.store_healthy:
            self.store_healthy = healthy
            self._record(EventKind.CUSTOM, what="store", healthy=healthy)

    async def _latest_seq(self, room: str) -> int | None:
        try:
            return await self.store.latest_seq(room)
        except DependencyError:
            self._set_store_healthy(False)
            return None

    def _record(self, kind: EventKind, **fields: object) -> None:
        if self.events is not None and self.events.enabled_for(kind):
            self.events.record(kind, None, **fields)
