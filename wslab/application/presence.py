"""Who is in which room — across every hub that shares a broker.

Each hub knows its own connections exactly. It learns about the other hubs' from the broker:

- a **join** or **leave** event as it happens, for prompt updates;
- a **snapshot** of a hub's whole local presence every ``snapshot_interval`` seconds, which
  *replaces* what was known of that hub — so a missed event (a broker hiccup, a hub that started
  late) is corrected at the next snapshot, and a hub that crashed without saying goodbye is
  forgotten once its snapshots stop for ``3 × snapshot_interval``.

A user is *present* in a room while at least one of their connections, on any hub, is in it.
Every change returns the room/user pairs that became present or absent, and only those turn into
``presence:join`` / ``presence:leave`` messages — a user opening a second tab is not announced
twice. The tracker does no I/O; :mod:`wslab.application.presence_fanout` announces.

It also keeps, per room, the number of distinct users present (:meth:`count`), updated with every
change, so that a room of 10,000 can say how big it is without listing anyone.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from wslab.foundation.errors import ConflictError

__all__ = ["PresenceChange", "PresenceTracker"]

RoomUsers = dict[str, dict[str, str]]  # room -> user_id -> username


@dataclass(frozen=True)
class PresenceChange:
    """A user became present in (``joined``) or absent from a room, as seen across all hubs."""

    room: str
    user_id: str
    username: str
    joined: bool


@dataclass
class _RemoteHub:
    rooms: RoomUsers = field(default_factory=dict)
    seen_at: float = 0.0


class PresenceTracker:
    """Local presence (exact) merged with what the broker told us about other hubs."""

    def __init__(
        self,
        *,
        snapshot_interval: float = 5.0,
        max_rooms: int = 10_000,
        reserved_rooms: frozenset[str] = frozenset(),
    ) -> None:
        self.snapshot_interval = snapshot_interval
        self.max_rooms = max_rooms
        #: Rooms that never count against ``max_rooms`` (the lobby): a full table must not stop
        #: newcomers from entering the room every session starts in.
        self.reserved_rooms = reserved_rooms
        # room -> user_id -> connection ids on this hub
        self._local: dict[str, dict[str, set[str]]] = defaultdict(dict)
        self._names: dict[str, str] = {}
        self._remote: dict[str, _RemoteHub] = {}
        # room -> distinct users present on any hub; kept in step with every change returned
        self._counts: dict[str, int] = {}

    # -- queries -----------------------------------------------------------------------------------

    def users(self, room: str, limit: int | None = None) -> dict[str, str]:
        """Everyone present in ``room`` on any live hub: user_id -> username.

        ``limit``: stop after that many (local users first), so a snapshot of a huge room costs
        ``limit`` steps, not the room's size.
        """
        present: dict[str, str] = {}
        names = self._names
        for uid in self._local.get(room, {}):
            if limit is not None and len(present) >= limit:
                return present
            present[uid] = names.get(uid, uid)
        for hub in self._remote.values():
            for uid, name in hub.rooms.get(room, {}).items():
                if limit is not None and len(present) >= limit:
                    return present
                present.setdefault(uid, name)
        return present

    def count(self, room: str) -> int:
        """How many distinct users are present in ``room`` on any live hub (O(1))."""
        return self._counts.get(room, 0)

    def _counted(self, change: PresenceChange | None) -> PresenceChange | None:
        """Keep :meth:`count` in step with a change about to be returned."""
        if change is not None:
            room = change.room
            left = self._counts.get(room, 0) + (1 if change.joined else -1)
            if left > 0:
                self._counts[room] = left
            else:
                self._counts.pop(room, None)
        return change

    def is_present(self, room: str, user_id: str) -> bool:
        """True if ``user_id`` has a connection in ``room`` on any live hub."""
        if user_id in self._local.get(room, {}):
            return True
        return any(user_id in hub.rooms.get(room, {}) for hub in self._remote.values())

    def local_snapshot(self) -> RoomUsers:
        """This hub's presence, to publish to the others."""
        return {
            room: {uid: self._names.get(uid, uid) for uid in users}
            for room, users in self._local.items()
            if users
        }

    @property
    def remote_hubs(self) -> list[str]:
        """The other hubs we have heard from recently."""
        return sorted(self._remote)

    # -- local changes -----------------------------------------------------------------------------

    def join(
        self, room: str, user_id: str, username: str, connection_id: str
    ) -> PresenceChange | None:
        """A local connection entered ``room``; the change if the user was absent everywhere."""
        self.check_capacity(room)
        was = self.is_present(room, user_id)
        self._names[user_id] = username
        self._local[room].setdefault(user_id, set()).add(connection_id)
        return None if was else self._counted(PresenceChange(room, user_id, username, True))

    def check_capacity(self, room: str) -> None:
        """ConflictError if ``room`` would be a new room in a full table (nothing is changed)."""
        if room in self._local or room in self.reserved_rooms:
            return
        if len(self._local) - len(self.reserved_rooms & self._local.keys()) >= self.max_rooms:
            raise ConflictError(f"the hub's room table is full ({self.max_rooms} rooms); try later")

    def leave(self, room: str, user_id: str, connection_id: str) -> PresenceChange | None:
        """A local connection left ``room``; the change if the user is now absent everywhere."""
        users = self._local.get(room)
        if not users or user_id not in users:
            return None
        users[user_id].discard(connection_id)
        if not users[user_id]:
            del users[user_id]
        if not users:
            del self._local[room]
        if self.is_present(room, user_id):
            return None
        username = self._names.get(user_id, user_id)
        if not any(user_id in u for u in self._local.values()):
            self._names.pop(user_id, None)
        return self._counted(PresenceChange(room, user_id, username, False))

    # -- news from other hubs ----------------------------------------------------------------------

    def remote_event(
        self, hub_id: str, room: str, user_id: str, username: str, joined: bool, now: float
    ) -> PresenceChange | None:
        """Another hub reports a join or leave (the broker never hands a hub its own)."""
        was = self.is_present(room, user_id)
        hub = self._remote.setdefault(hub_id, _RemoteHub())
        hub.seen_at = max(hub.seen_at, now)
        if joined:
            hub.rooms.setdefault(room, {})[user_id] = username
        else:
            users = hub.rooms.get(room, {})
            users.pop(user_id, None)
            if not users:
                hub.rooms.pop(room, None)
        now_present = self.is_present(room, user_id)
        if was == now_present:
            return None
        return self._counted(PresenceChange(room, user_id, username, now_present))

    def remote_snapshot(self, hub_id: str, rooms: RoomUsers, now: float) -> list[PresenceChange]:
        """Another hub's full presence replaces what we knew of it."""
        return self._replace(hub_id, _RemoteHub({r: dict(u) for r, u in rooms.items()}, now))

    def hub_gone(self, hub_id: str) -> list[PresenceChange]:
        """Another hub said goodbye (or went silent): forget its users."""
        return self._replace(hub_id, None)

    def expire(self, now: float) -> list[PresenceChange]:
        """Forget hubs whose snapshots stopped arriving (crashed without a goodbye)."""
        limit = 3 * self.snapshot_interval
        changes: list[PresenceChange] = []
        for hub_id in [h for h, hub in self._remote.items() if now - hub.seen_at > limit]:
            changes.extend(self.hub_gone(hub_id))
        return changes

    def _replace(self, hub_id: str, new: _RemoteHub | None) -> list[PresenceChange]:
        old = self._remote.get(hub_id)
        touched: set[tuple[str, str, str]] = set()
        for state in (old, new):
            if state is not None:
                touched.update(
                    (room, uid, name)
                    for room, users in state.rooms.items()
                    for uid, name in users.items()
                )
        before = {(room, uid): self.is_present(room, uid) for room, uid, _ in touched}
        if new is None:
            self._remote.pop(hub_id, None)
        else:
            self._remote[hub_id] = new
        changes = []
        for room, uid, name in sorted(touched):
            now_present = self.is_present(room, uid)
            if before[(room, uid)] != now_present:
                changes.append(PresenceChange(room, uid, name, now_present))
                self._counted(changes[-1])
                before[(room, uid)] = now_present  # a user listed under two names changes once
        return changes
