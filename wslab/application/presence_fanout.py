"""Presence at scale: how changes in who is where reach the clients and the other hubs.

Announcing every join to every member, one message each, makes letting N users into one room
cost N² messages — at 10,000 users, most of an hour of CPU. So, as Phoenix and Discord do:

- **Coalesced per tick.** Changes are collected and sent once per turn of the event loop. A user
  who joins and leaves within one turn is not announced at all (the *net* change is sent), and
  the other hubs get one broker message per turn (``{"op": "diff", "changes": [...]}``), not one
  per change.
- **Small rooms** (at most ``broadcast_limit`` members on this hub) keep the protocol's
  ``presence:join`` / ``presence:leave``, one per net change, encoded once for all members: with
  the room bounded by the limit, a join costs at most ``broadcast_limit`` messages.
- **Large rooms** (more members than that) get no message per join or leave: only a
  ``presence:count`` while their count changes, and the full list on request
  (``presence:list``). A count goes to every member, so its interval grows with the room:
  ``presence_interval`` seconds per :data:`COUNT_BUDGET` members (a room of 10,000 hears every
  50 s by default) — counts cost at most ``COUNT_BUDGET`` messages per room per interval,
  however large the room. A room that shrinks back to the limit is sent one
  ``presence:snapshot``, so its members' lists are right again before changes resume.
- **A snapshot on join.** Whoever enters a room gets one ``presence:snapshot`` (the count, and
  the users when there are at most ``broadcast_limit``) instead of having to ask.

So a join costs O(1) messages however large the room (the joiner's snapshot), plus at most
``broadcast_limit`` while the room is small.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from wslab.foundation.wire import PRESENCE_COUNT, PRESENCE_JOIN, PRESENCE_LEAVE, PRESENCE_SNAPSHOT
from wslab.infrastructure.connection import Connection
from wslab.infrastructure.manager import ConnectionManager
from wslab.infrastructure.metrics import Metrics

from .presence import PresenceChange, PresenceTracker

__all__ = ["PresenceFanout"]

Encoder = Callable[[dict[str, Any]], str]

#: Members a large room's ``presence:count`` may reach per ``presence_interval``.
COUNT_BUDGET = 1000


class PresenceFanout:
    """Collects presence changes during one loop turn, then announces the net result."""

    def __init__(
        self,
        manager: ConnectionManager,
        tracker: PresenceTracker,
        *,
        broadcast_limit: int,
        encode: Encoder,
        publish: Callable[[dict[str, Any]], None],
        metrics: Metrics,
    ) -> None:
        self.manager = manager
        self.tracker = tracker
        #: Rooms with more members than this on this hub are announced by count only.
        self.broadcast_limit = broadcast_limit
        self._encode = encode
        self._publish = publish
        # room -> user -> (present before this turn, the latest change): the net change per user
        self._pending: dict[str, dict[str, tuple[bool, PresenceChange]]] = {}
        # (room, user) -> latest local change this turn, for the other hubs
        self._outgoing: dict[tuple[str, str], PresenceChange] = {}
        self._flush_handle: asyncio.Handle | None = None
        self._large: set[str] = set()  # rooms over the limit at the last flush
        self._counts_sent: dict[str, int] = {}  # large room -> the count last sent to it
        self._count_due: dict[str, float] = {}  # large room -> when its next count may go
        self._m_sent = metrics.counter(
            "presence_messages_total",
            "Presence messages queued for clients, by type (each recipient counts once)",
            ["type"],
        )
        self._m_by_type = {
            t: self._m_sent.labels(t)
            for t in (PRESENCE_JOIN, PRESENCE_LEAVE, PRESENCE_SNAPSHOT, PRESENCE_COUNT)
        }

    # -- collecting --------------------------------------------------------------------------------

    def changed(self, change: PresenceChange | None, *, publish: bool) -> None:
        """A user became present or absent in a room; announce it at the end of this turn."""
        if change is None:
            return
        users = self._pending.setdefault(change.room, {})
        previous = users.get(change.user_id)
        users[change.user_id] = (previous[0] if previous else not change.joined, change)
        if publish:
            self._outgoing[(change.room, change.user_id)] = change
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_soon(self.flush)

    def cancel(self) -> None:
        """Drop what is pending (the hub is stopping)."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self._pending.clear()
        self._outgoing.clear()

    # -- announcing --------------------------------------------------------------------------------

    def flush(self) -> None:
        """Send this turn's net changes: to small rooms' members, and to the other hubs."""
        self._flush_handle = None
        pending, self._pending = self._pending, {}
        outgoing, self._outgoing = self._outgoing, {}
        for room, users in pending.items():
            size = self.manager.group_size(room)
            if size > self.broadcast_limit:
                self._large.add(room)
                continue
            if room in self._large:
                # Back under the limit: the members' lists are stale, one snapshot corrects them.
                self._large.discard(room)
                self._counts_sent.pop(room, None)
                self._count_due.pop(room, None)
                self._broadcast(room, self.snapshot(room))
                continue
            messages = [
                {
                    "type": PRESENCE_JOIN if change.joined else PRESENCE_LEAVE,
                    "room": room,
                    "user_id": change.user_id,
                    "username": change.username,
                }
                for was_present, change in users.values()
                if was_present != change.joined  # not joined and left (or back) within the turn
            ]
            if len(messages) > 1:
                # Several changes for one room in one turn (a class arriving at once): each
                # member gets them in one socket write, not one write per change.
                members = self.manager.members(room)
                for member in members:
                    member.cork()
                try:
                    for message in messages:
                        self._broadcast(room, message)
                finally:
                    for member in members:
                        member.uncork()
            elif messages:
                self._broadcast(room, messages[0])
        if outgoing:
            self._publish(
                {
                    "op": "diff",
                    "changes": [
                        [c.room, c.user_id, c.username, c.joined] for c in outgoing.values()
                    ],
                }
            )

    def send_counts(self, now: float, interval: float) -> None:
        """``presence:count`` to each large room whose count changed since it was last sent.

        Called every ``interval`` seconds; a room of ``size`` members is sent one at most every
        ``interval * size / COUNT_BUDGET`` seconds.
        """
        for room in list(self._large):
            size = self.manager.group_size(room)
            if size == 0:
                self._large.discard(room)  # emptied: forget it (bounded by rooms with members)
                self._counts_sent.pop(room, None)
                self._count_due.pop(room, None)
                continue
            if size <= self.broadcast_limit or now < self._count_due.get(room, now):
                continue  # small again (the next change's flush sends a snapshot), or not yet
            count = self.tracker.count(room)
            if self._counts_sent.get(room) == count:
                continue
            self._counts_sent[room] = count
            # A hair early, so that a room due every interval is not put off by timer jitter.
            self._count_due[room] = now + interval * (max(1.0, size / COUNT_BUDGET) - 0.01)
            self._broadcast(room, {"type": PRESENCE_COUNT, "room": room, "count": count})

    def snapshot(self, room: str) -> dict[str, Any]:
        """The ``presence:snapshot`` of ``room``: its count, and its users if few enough."""
        count = self.tracker.count(room)
        # Names only for a small room: a large one's would cost every joiner the room's size.
        small = 0 < count <= self.broadcast_limit
        users = self.tracker.users(room, limit=self.broadcast_limit) if small else {}
        return {
            "type": PRESENCE_SNAPSHOT,
            "room": room,
            "count": count,
            "users": [{"user_id": uid, "username": name} for uid, name in sorted(users.items())],
            "complete": len(users) >= count,
        }

    def send_snapshot(self, connection: Connection, room: str) -> None:
        """Send ``room``'s snapshot to one connection (it has just joined)."""
        if connection.send_nowait(self._encode(self.snapshot(room))):
            self._m_by_type[PRESENCE_SNAPSHOT].inc()

    def _broadcast(self, room: str, message: dict[str, Any]) -> None:
        result = self.manager.broadcast(self._encode(message), room)
        if result.delivered:
            self._m_by_type[message["type"]].inc(result.delivered)
