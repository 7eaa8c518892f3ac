"""What this hub and the others tell each other through the broker, for ``ChatService``.

The broker handlers (room traffic, direct messages, admin broadcasts, presence), the reaction to
the broker coming back (``system:resync``) and publishing without making a sender wait. They are
part of :class:`~wslab.application.chat.ChatService`, which inherits them from
:class:`CrossHubRelay`; this module only keeps them out of the chat's request handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from wslab.foundation.errors import DependencyError
from wslab.foundation.wire import SYSTEM_RESYNC
from wslab.infrastructure.connection import Connection
from wslab.infrastructure.events import EventKind
from wslab.infrastructure.manager import ConnectionManager
from wslab.infrastructure.metrics import Histogram
from wslab.integration.broker import Broker, BrokerMessage

from .presence import PresenceTracker
from .presence_fanout import PresenceFanout
from .routing import user_of
from .session import Session

__all__ = ["ADMIN", "PRESENCE", "CrossHubRelay", "encode"]

log = logging.getLogger("wslab.chat")

# Broker channels. Room traffic and direct messages are routed per room and per user (see
# .routing: a hub receives only the rooms its users are in); presence and admin broadcasts
# concern every hub and stay on one hub-wide channel each.
PRESENCE, ADMIN = "presence", "admin"


def encode(message: dict[str, Any]) -> str:
    """Compact JSON, with text as it came (no ASCII escaping: the page renders it as text)."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


class CrossHubRelay:
    """The cross-hub half of ``ChatService``: a mixin, using the service's own state."""

    # Set by ChatService.__init__.
    broker: Broker
    manager: ConnectionManager
    presence: PresenceTracker
    presence_fanout: PresenceFanout
    sessions: dict[str, Session]
    clock: Callable[[], float]
    _tasks: set[asyncio.Task[Any]]
    _m_fanout: Histogram

    if TYPE_CHECKING:
        # Defined by ChatService.

        def send(self, connection: Connection, message: dict[str, Any]) -> bool: ...

        def _deliver_locally(
            self, wire: dict[str, Any], to_user: str | None, from_user: str
        ) -> None: ...

        def _record(self, kind: EventKind, **fields: object) -> None: ...

    def _publish(self, channel: str, payload: dict[str, Any]) -> None:
        """Publish without making the sender wait; a failure only degrades cross-hub delivery."""
        if self.broker.alone:
            return  # no other hub on an in-process bus: nobody to tell (one JSON encode saved)
        publish_nowait = getattr(self.broker, "publish_nowait", None)
        if publish_nowait is not None:
            # An in-process broker: published here and now, no task per message.
            try:
                publish_nowait(channel, payload)
            except DependencyError as error:
                self._record(EventKind.ERROR, error="broker", message=error.message)
            except Exception:
                # What a task would have logged: the message was delivered locally already.
                log.exception("publishing on %r failed", channel)
            return
        task = asyncio.ensure_future(self._publish_now(channel, payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish_now(self, channel: str, payload: dict[str, Any]) -> None:
        try:
            await self.broker.publish(channel, payload)
        except DependencyError as error:
            self._record(EventKind.ERROR, error="broker", message=error.message)

    async def _from_rooms(self, message: BrokerMessage) -> None:
        wire = message.payload["message"]
        if message.payload.get("kind") == "typing":
            self.manager.broadcast(encode(wire), wire["room"])
        else:
            self._deliver_locally(wire, None, wire["from_user"])

    async def _from_direct(self, message: BrokerMessage) -> None:
        payload = message.payload
        user = user_of(message.channel)
        if user is None:  # the hub-wide channel: for both parties' connections here
            self._deliver_locally(payload["message"], payload["to_user"], payload["from_user"])
        else:  # one user's channel: the other party's copy travels on their own channel
            result = self.manager.send_to_key(user, encode(payload["message"]))
            self._m_fanout.observe(result.attempted)

    async def _from_admin(self, message: BrokerMessage) -> None:
        self.manager.broadcast(encode(message.payload["message"]))

    async def _from_presence(self, message: BrokerMessage) -> None:
        hub, payload, now = message.origin_hub, message.payload, self.clock()
        op = payload.get("op")
        if op == "snapshot":
            changes = self.presence.remote_snapshot(hub, payload.get("rooms", {}), now)
        elif op == "goodbye":
            changes = self.presence.hub_gone(hub)
        elif op == "resync":
            self._ask_to_resync(set(payload.get("rooms", [])), f"hub {hub} reconnected")
            return
        elif op == "diff":  # one loop turn's changes of that hub (see presence_fanout)
            changes = []
            for room, user_id, username, joined in payload.get("changes", []):
                change = self.presence.remote_event(hub, room, user_id, username, joined, now)
                if change is not None:
                    changes.append(change)
        elif op in ("join", "leave"):  # from hubs of earlier versions
            change = self.presence.remote_event(
                hub, payload["room"], payload["user_id"], payload["username"], op == "join", now
            )
            changes = [change] if change else []
        else:
            return
        for change in changes:
            self.presence_fanout.changed(change, publish=False)

    async def _broker_state_changed(self, healthy: bool, reason: str) -> None:
        self._record(EventKind.CUSTOM, what="broker", healthy=healthy, reason=reason)
        if not healthy:
            return
        # Back from an outage: other hubs' messages may have been missed here, and ours there.
        # Our clients fetch theirs; the other hubs are told, so that theirs fetch ours.
        self._ask_to_resync(None, "broker reconnected")
        snapshot = self.presence.local_snapshot()
        with contextlib.suppress(DependencyError):
            await self.broker.publish(PRESENCE, {"op": "snapshot", "rooms": snapshot})
            await self.broker.publish(PRESENCE, {"op": "resync", "rooms": sorted(snapshot)})

    def _ask_to_resync(self, rooms: set[str] | None, reason: str) -> None:
        """Send ``system:resync`` to local clients (those in ``rooms``, or all of them)."""
        told = 0
        for session in list(self.sessions.values()):
            mine = session.rooms if rooms is None else session.rooms & rooms
            if mine:
                message = {"type": SYSTEM_RESYNC, "rooms": sorted(mine), "reason": reason}
                told += self.send(session.connection, message)
        self._record(EventKind.CUSTOM, what="resync", reason=reason, clients=told)
