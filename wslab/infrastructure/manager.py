"""``ConnectionManager``: the registry of live connections, their groups, and fan-out.

Groups (the chat calls them rooms) are plain sets of connection ids, so joining, leaving and
looking up are O(1). ``broadcast`` encodes the message once (:class:`Prepared`) and hands the same
bytes to every member; each send is isolated, so a member that is closed, slow or broken costs
only itself: its failure is counted and the others still get the message.

Connections are also indexed by a *key* the layers above choose (the chat uses the user id), so
``send_to_key`` reaches every connection of one user — a user with two tabs open gets both.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from wslab.foundation.errors import ConflictError

from .connection import Connection, Message, Prepared

__all__ = ["ConnectionManager", "FanoutResult"]

log = logging.getLogger("wslab.manager")


@dataclass(frozen=True)
class FanoutResult:
    """How a send to many connections went."""

    delivered: int = 0
    failed: int = 0

    @property
    def attempted(self) -> int:
        """Connections the message was offered to."""
        return self.delivered + self.failed


class ConnectionManager:
    """Registry, groups and fan-out, bounded by ``max_connections`` and ``max_groups_per_connection``."""

    def __init__(
        self,
        *,
        max_connections: int = 10_000,
        max_groups_per_connection: int = 100,
        on_fanout: Callable[[Prepared, FanoutResult], None] | None = None,
    ) -> None:
        self.max_connections = max_connections
        #: Called after each fan-out with the shared message and the result (for notebooks and
        #: metrics: ``prepared.encodes`` is 1 however many connections it reached).
        self.on_fanout = on_fanout
        self.max_groups_per_connection = max_groups_per_connection
        self._connections: dict[str, Connection] = {}
        # group -> connection id -> connection: a broadcast walks the members themselves, with no
        # lookup per member (the fan-out's per-recipient work is the write and nothing else)
        self._groups: dict[str, dict[str, Connection]] = {}
        # Per connection: its groups, a tuple (at most max_groups_per_connection, usually one:
        # a set of one is 216 bytes, a tuple of one 48, for every connection the hub holds).
        self._memberships: dict[str, tuple[str, ...]] = {}
        # Per key: the connection id, or a set of them once a key has several (most users have
        # one connection: no set of one each).
        self._by_key: dict[str, str | set[str]] = {}
        self._key_of: dict[str, str] = {}

    # -- registry ----------------------------------------------------------------------------------

    def add(self, connection: Connection, key: str | None = None) -> None:
        """Register ``connection`` (optionally under ``key``, e.g. its user id)."""
        if len(self._connections) >= self.max_connections:
            raise ConflictError(f"connection limit of {self.max_connections} reached")
        self._connections[connection.id] = connection
        if key is not None:
            self.set_key(connection, key)

    def set_key(self, connection: Connection, key: str) -> None:
        """Index ``connection`` under ``key`` (replacing a previous key)."""
        old = self._key_of.get(connection.id)
        cid = connection.id
        if old is not None:
            self._unkey(old, cid)
        self._key_of[cid] = key
        held = self._by_key.get(key)
        if held is None:
            self._by_key[key] = cid
        elif isinstance(held, str):
            if held != cid:
                self._by_key[key] = {held, cid}
        else:
            held.add(cid)

    def remove(self, connection: Connection) -> set[str]:
        """Forget ``connection`` and its memberships; returns the groups it was in."""
        cid = connection.id
        self._connections.pop(cid, None)
        groups = self._memberships.pop(cid, ())
        for group in groups:
            self._leave_group(group, cid)
        key = self._key_of.pop(cid, None)
        if key is not None:
            self._unkey(key, cid)
        return set(groups)

    def _unkey(self, key: str, cid: str) -> None:
        held = self._by_key.get(key)
        if held is None:
            return
        if isinstance(held, str):
            if held == cid:
                del self._by_key[key]  # empty keys vanish, so the index cannot grow forever
            return
        held.discard(cid)
        if len(held) == 1:
            self._by_key[key] = next(iter(held))
        elif not held:
            del self._by_key[key]

    def _leave_group(self, group: str, cid: str) -> None:
        members = self._groups.get(group)
        if members is not None:
            members.pop(cid, None)
            if not members:
                del self._groups[group]  # empty groups vanish too

    def get(self, connection_id: str) -> Connection | None:
        """The connection with this id, if registered."""
        return self._connections.get(connection_id)

    def __len__(self) -> int:
        return len(self._connections)

    def __iter__(self) -> Iterator[Connection]:
        return iter(list(self._connections.values()))

    def __contains__(self, connection: object) -> bool:
        return isinstance(connection, Connection) and connection.id in self._connections

    def by_key(self, key: str) -> list[Connection]:
        """Every connection registered under ``key``."""
        held = self._by_key.get(key)
        ids = () if held is None else (held,) if isinstance(held, str) else held
        return [self._connections[c] for c in ids if c in self._connections]

    def key_of(self, connection: Connection) -> str | None:
        """The key ``connection`` is registered under."""
        return self._key_of.get(connection.id)

    # -- groups ------------------------------------------------------------------------------------

    def join(self, connection: Connection, group: str) -> bool:
        """Add ``connection`` to ``group``; False if it was already a member."""
        memberships = self._memberships.get(connection.id, ())
        if group in memberships:
            return False
        if len(memberships) >= self.max_groups_per_connection:
            raise ConflictError(
                f"a connection may join at most {self.max_groups_per_connection} rooms"
            )
        self._memberships[connection.id] = (*memberships, group)
        members = self._groups.get(group)
        if members is None:
            members = self._groups[group] = {}
        members[connection.id] = connection
        return True

    def leave(self, connection: Connection, group: str) -> bool:
        """Remove ``connection`` from ``group``; False if it was not a member."""
        memberships = self._memberships.get(connection.id)
        if not memberships or group not in memberships:
            return False
        rest = tuple(g for g in memberships if g != group)
        if rest:
            self._memberships[connection.id] = rest
        else:
            del self._memberships[connection.id]
        self._leave_group(group, connection.id)
        return True

    def groups_of(self, connection: Connection) -> set[str]:
        """The groups ``connection`` belongs to."""
        return set(self._memberships.get(connection.id, ()))

    def members(self, group: str) -> list[Connection]:
        """The connections in ``group``."""
        members = self._groups.get(group)
        return list(members.values()) if members is not None else []

    def group_size(self, group: str) -> int:
        """How many connections are in ``group`` (O(1))."""
        members = self._groups.get(group)
        return len(members) if members is not None else 0

    def groups(self) -> dict[str, int]:
        """Every non-empty group and its size."""
        return {name: len(members) for name, members in self._groups.items()}

    # -- sending -----------------------------------------------------------------------------------

    def send_to(self, connection_id: str, message: Message) -> bool:
        """Send to one connection by id; False if it is gone or dropped the message."""
        connection = self._connections.get(connection_id)
        return connection is not None and self._offer(connection, Prepared(message))

    def send_to_key(self, key: str, message: Message) -> FanoutResult:
        """Send to every connection registered under ``key``."""
        return self._fanout(self.by_key(key), message)

    def broadcast(
        self,
        message: Message,
        group: str | None = None,
        *,
        exclude: Iterable[str] = (),
    ) -> FanoutResult:
        """Send to every member of ``group`` (every connection if None), encoding once."""
        if group is None:
            pool: Iterable[Connection] = self._connections.values()
        else:
            pool = self._groups.get(group, {}).values()
        skip = set(exclude)
        # A snapshot of the members: a send may close a connection, which leaves its groups.
        targets = [c for c in pool if c.id not in skip] if skip else list(pool)
        return self._fanout(targets, message)

    def _fanout(self, targets: list[Connection], message: Message) -> FanoutResult:
        prepared = Prepared(message)
        failed = 0
        for connection in targets:
            try:
                if not connection.send_prepared(prepared):
                    failed += 1
            except Exception:
                # One broken connection must not stop the fan-out to the others.
                log.exception("send to %s failed", connection.id)
                failed += 1
        result = FanoutResult(len(targets) - failed, failed)
        if self.on_fanout is not None:
            self.on_fanout(prepared, result)
        return result

    @staticmethod
    def _offer(connection: Connection, prepared: Prepared) -> bool:
        try:
            return connection.send_prepared(prepared)
        except Exception:
            # One broken connection must not stop the fan-out to the others.
            log.exception("send to %s failed", connection.id)
            return False
