"""The durable message store: the message model and the ``Store`` contract.

The backends are built from a URL by :func:`wslab.integration.backends.open_store`.

Every chat message the hub acknowledges has been written here first. The store gives each message
a ``seq`` that is per room, starts at 1 and has no gaps — also when several hubs (processes or
machines) write to the same database — and serves history pages so that a reconnecting client can
ask for everything after the last ``seq`` it saw.

Two backends implement the contract:

- :class:`~wslab.integration.sqlite_store.SQLiteStore` (``sqlite:///path.db``) — the embedded
  default, nothing to install; several processes may share one file.
- :class:`~wslab.integration.postgres_store.PostgresStore` (``postgresql://...``) — for several
  hubs on several machines; needs the optional ``scale`` extra (asyncpg).

The model, in the order a message lives through it::

    MessageDraft  -- store.save() -->  StoredMessage  -- .to_wire() -->  chat:message dict
    (message_id chosen by the caller, so a retried save is idempotent)

Decisions every backend follows (the contract tests in ``tests/integration/test_store.py`` check
them on both):

- **message ids** are chosen by the caller (``MessageDraft`` makes a time-ordered UUIDv7 hex
  by default, :func:`new_message_id`). Saving a draft whose ``message_id`` is already stored
  returns the stored message and consumes no ``seq``; that is what makes the hub's retry queue
  safe. The same id with a different room, sender, recipient or content is a
  :class:`ConflictError`.
- **direct messages** are stored in a room of their own, :func:`dm_room` of the two user ids
  (``"dm:<a>:<b>"``, sorted), so a conversation has its own gap-free ``seq`` like any room and
  ``direct_history`` is ``history`` of that room. ``StoredMessage.room`` is that key.
- **timestamps** are aware UTC datetimes; on the wire they are ISO 8601 with milliseconds and a
  ``"Z"`` suffix (``2024-05-01T12:00:00.123Z``, what JavaScript's ``toISOString`` writes).
- **history** pages are oldest first. ``limit`` is 1..100 (:data:`MAX_HISTORY_LIMIT`); anything
  else is a :class:`ValidationError` (the protocol answers ``INVALID_INPUT``), never silently
  clamped. ``since_seq`` pages forward (the ``limit`` messages right after it); ``before_seq`` and
  no cursor page backward (the ``limit`` newest messages before it / overall).
- **retention** keeps the newest ``retention`` messages per room (overridable per room). It is
  enforced inside ``save`` in batches of ``retention_batch``: when a room's ``seq`` reaches a
  multiple of the batch, everything older than the newest ``retention`` is deleted in one
  statement. A room therefore holds between ``retention`` and ``retention + batch - 1`` messages.
  The highest deleted ``seq`` is remembered per room, so ``HistoryPage.complete`` is false exactly
  when the requested range reaches into deleted messages — never a silent gap.
- **errors** from the database are :class:`DependencyError` with a message safe to show a peer;
  the original exception is chained (``__cause__``) for the logs.
"""

from __future__ import annotations

import abc
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import TracebackType
from typing import Any, ClassVar, Protocol, runtime_checkable

from wslab.foundation.errors import ConfigError, ConflictError, DependencyError, ValidationError
from wslab.foundation.wire import CHAT_MESSAGE, dm_room, format_timestamp, parse_timestamp

__all__ = [
    "DEFAULT_HISTORY_LIMIT",
    "DEFAULT_RETENTION",
    "MAX_CONTENT_LENGTH",
    "MAX_HISTORY_LIMIT",
    "MAX_ID_LENGTH",
    "BaseStore",
    "HistoryPage",
    "MessageDraft",
    "Store",
    "StoredMessage",
    "dm_room",
    "format_timestamp",
    "new_message_id",
    "parse_timestamp",
]

DEFAULT_HISTORY_LIMIT = 50
MAX_HISTORY_LIMIT = 100
DEFAULT_RETENTION = 10_000
# Backstops only: the chat layer validates the protocol's tighter limits (content <= 5000 chars).
# These keep a single row bounded whatever the caller does.
MAX_CONTENT_LENGTH = 65_536
MAX_ID_LENGTH = 512


# -- message ids -----------------------------------------------------------------------------


def new_message_id() -> str:
    """A fresh message id: a UUID version 7 (RFC 9562) as 32 hex digits.

    Its first 48 bits are the Unix time in milliseconds, the other 74 free bits random (from
    ``os.urandom``, as ``uuid4`` draws them): unique as a uuid4 is, but ids made one after the
    other sort together. That is what the stores' unique index on ``message_id`` wants: each
    new id lands on the index's newest page instead of a random one, so a commit and a WAL
    checkpoint write the same few pages again instead of one more random page per message.
    """
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    # Version 7 in bits 76-79, the RFC variant (0b10) in bits 62-63.
    value = (value & _CLEAR_VERSION_VARIANT) | _VERSION_7_VARIANT
    return f"{value:032x}"


_CLEAR_VERSION_VARIANT = ~((0xF << 76) | (0x3 << 62)) & ((1 << 128) - 1)
_VERSION_7_VARIANT = (0x7 << 76) | (0x2 << 62)


# -- timestamps (the wire format itself is wslab.foundation.wire's) ---------------------------


def utc_now() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(timezone.utc)


# -- the model -----------------------------------------------------------------------------------


def _check_text(name: str, value: object, *, max_length: int, allow_empty: bool = False) -> None:
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be a string")
    if not value and not allow_empty:
        raise ValidationError(f"{name} must not be empty")
    if len(value) > max_length:
        raise ValidationError(f"{name} is longer than {max_length} characters")


@dataclass(frozen=True)
class MessageDraft:
    """A message to store: everything but the ``seq``, which the store assigns.

    Keep the draft (or at least its ``message_id``) when a save fails: saving it again is
    idempotent. For a direct message set ``to_user``; the message is then stored in
    ``dm_room(from_user, to_user)`` whatever ``room`` says (see :attr:`storage_room`).
    """

    room: str
    from_user: str
    from_username: str
    content: str
    to_user: str | None = None
    message_id: str = field(default_factory=new_message_id)
    timestamp: datetime = field(default_factory=utc_now)
    origin_hub: str = ""

    def __post_init__(self) -> None:
        _check_text("room", self.room, max_length=MAX_ID_LENGTH)
        _check_text("from_user", self.from_user, max_length=MAX_ID_LENGTH)
        _check_text("from_username", self.from_username, max_length=MAX_ID_LENGTH, allow_empty=True)
        _check_text("content", self.content, max_length=MAX_CONTENT_LENGTH, allow_empty=True)
        if self.to_user is not None:
            _check_text("to_user", self.to_user, max_length=MAX_ID_LENGTH)
        _check_text("message_id", self.message_id, max_length=MAX_ID_LENGTH)
        _check_text("origin_hub", self.origin_hub, max_length=MAX_ID_LENGTH, allow_empty=True)
        if not isinstance(self.timestamp, datetime) or self.timestamp.tzinfo is None:
            raise ValidationError("timestamp must be an aware datetime")
        # Normalise once so every backend stores and returns UTC.
        object.__setattr__(self, "timestamp", self.timestamp.astimezone(timezone.utc))

    @property
    def storage_room(self) -> str:
        """The room the message is stored (and sequenced) in: the DM room for direct messages."""
        if self.to_user is not None:
            return dm_room(self.from_user, self.to_user)
        return self.room


@dataclass(frozen=True)
class StoredMessage:
    """A message as stored, with its per-room ``seq`` (1, 2, 3, ... without gaps)."""

    message_id: str
    room: str
    seq: int
    from_user: str
    from_username: str
    to_user: str | None
    content: str
    timestamp: datetime
    origin_hub: str

    def to_wire(self) -> dict[str, Any]:
        """The protocol's ``chat:message`` object (``origin_hub`` is internal and left out)."""
        return {
            "type": CHAT_MESSAGE,
            "room": self.room,
            "message_id": self.message_id,
            "seq": self.seq,
            "from_user": self.from_user,
            "from_username": self.from_username,
            "to_user": self.to_user,
            "content": self.content,
            "timestamp": format_timestamp(self.timestamp),
        }

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-ready (for the broker between hubs); inverse of :meth:`from_dict`."""
        data = self.to_wire()
        del data["type"]
        data["origin_hub"] = self.origin_hub
        # Full precision, so a message that crossed the broker equals the stored one.
        data["timestamp"] = self.timestamp.isoformat()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StoredMessage:
        """Rebuild a message from :meth:`to_dict` (or a ``chat:message`` wire dict)."""
        try:
            seq = data["seq"]
            if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
                raise ValidationError("seq must be a positive integer")
            to_user = data.get("to_user")
            return cls(
                message_id=str(data["message_id"]),
                room=str(data["room"]),
                seq=seq,
                from_user=str(data["from_user"]),
                from_username=str(data.get("from_username", "")),
                to_user=None if to_user is None else str(to_user),
                content=str(data["content"]),
                timestamp=parse_timestamp(str(data["timestamp"])),
                origin_hub=str(data.get("origin_hub", "")),
            )
        except KeyError as exc:
            raise ValidationError(f"message field {exc.args[0]!r} is missing") from None

    def same_message(self, draft: MessageDraft) -> bool:
        """True if ``draft`` describes this message (used to check an idempotent re-save)."""
        return (
            self.room == draft.storage_room
            and self.from_user == draft.from_user
            and self.to_user == draft.to_user
            and self.content == draft.content
        )


@dataclass(frozen=True)
class HistoryPage:
    """One page of a room's history, oldest first.

    ``complete`` is false when messages in the requested range were deleted by retention (the
    client must be told, never left with a silent gap). ``has_more`` is true when further
    retained messages exist beyond the page in the direction of paging (newer for ``since_seq``,
    older otherwise). ``latest_seq`` is the room's newest ``seq`` (0 for an empty room).
    """

    room: str
    messages: tuple[StoredMessage, ...]
    complete: bool
    has_more: bool
    latest_seq: int

    def to_wire(self) -> dict[str, Any]:
        """The protocol's ``chat:history`` reply (the caller adds ``ref``)."""
        return {
            "type": "chat:history",
            "room": self.room,
            "messages": [m.to_wire() for m in self.messages],
            "complete": self.complete,
        }


# -- the contract --------------------------------------------------------------------------------


@runtime_checkable
class Store(Protocol):
    """What the hub needs from a message store. See the module docstring for the rules."""

    async def open(self) -> None:
        """Connect, create or migrate the schema. Idempotent."""

    async def close(self) -> None:
        """Release connections. Idempotent."""

    async def save(self, draft: MessageDraft) -> StoredMessage:
        """Store ``draft`` with the room's next ``seq`` and return it; idempotent on message_id."""
        ...

    async def get(self, message_id: str) -> StoredMessage | None:
        """The stored message with this id, or None."""
        ...

    async def history(
        self,
        room: str,
        *,
        limit: int = DEFAULT_HISTORY_LIMIT,
        before_seq: int | None = None,
        since_seq: int | None = None,
    ) -> HistoryPage:
        """A page of ``room``'s history, oldest first."""
        ...

    async def direct_history(
        self,
        user_a: str,
        user_b: str,
        *,
        limit: int = DEFAULT_HISTORY_LIMIT,
        before_seq: int | None = None,
        since_seq: int | None = None,
    ) -> HistoryPage:
        """A page of the direct conversation between two users, oldest first."""
        ...

    async def latest_seq(self, room: str) -> int:
        """The newest ``seq`` assigned in ``room`` (0 if none)."""
        ...

    async def ping(self) -> bool:
        """True if the database answers; never raises (for health checks)."""
        ...

    async def purge(self, room: str) -> None:
        """Delete a room's messages and reset its ``seq`` (tests and teaching only)."""


@dataclass(frozen=True)
class _HistoryQuery:
    """Validated history arguments."""

    room: str
    limit: int
    before_seq: int | None
    since_seq: int | None

    def select(self, columns: str, mark: Callable[[int], str]) -> tuple[str, tuple[Any, ...]]:
        """The SELECT for this page, in a backend's placeholder style (``?`` or ``$1``).

        One row more than ``limit`` is fetched, to tell whether more exist beyond the page.
        ``since_seq`` pages forward (oldest first); otherwise the newest rows before the cursor
        come back newest first, and the caller reverses them.
        """
        where = f"room = {mark(1)}"
        args: list[str | int] = [self.room]
        if self.since_seq is not None:
            where += f" AND seq > {mark(2)}"
            args.append(self.since_seq)
        elif self.before_seq is not None:
            where += f" AND seq < {mark(2)}"
            args.append(self.before_seq)
        order = "seq" if self.since_seq is not None else "seq DESC"
        args.append(self.limit + 1)
        sql = (
            f"SELECT {columns} FROM messages WHERE {where} ORDER BY {order} LIMIT {mark(len(args))}"
        )
        return sql, tuple(args)


class BaseStore(abc.ABC):
    """What both backends share: configuration, argument checks and the history bookkeeping."""

    #: Human name for error messages, e.g. "SQLite".
    backend_name = "store"

    def __init__(
        self,
        *,
        retention: int = DEFAULT_RETENTION,
        retention_overrides: Mapping[str, int] | None = None,
        retention_batch: int | None = None,
    ) -> None:
        for name, value in [("retention", retention), *(retention_overrides or {}).items()]:
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"history retention for {name!r} must be an integer >= 1")
        if retention_batch is None:
            # About a tenth of the retention, at most 100 rows per delete: cheap and bounded.
            retention_batch = max(1, min(100, retention // 10))
        if (
            not isinstance(retention_batch, int)
            or isinstance(retention_batch, bool)
            or retention_batch < 1
        ):
            raise ConfigError("retention_batch must be an integer >= 1")
        self.retention = retention
        self.retention_overrides: dict[str, int] = dict(retention_overrides or {})
        self.retention_batch = retention_batch

    # -- lifecycle sugar

    @abc.abstractmethod
    async def open(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    # -- the rest of the Store contract, which each backend implements (history and
    # direct_history are below)

    @abc.abstractmethod
    async def save(self, draft: MessageDraft) -> StoredMessage: ...

    @abc.abstractmethod
    async def get(self, message_id: str) -> StoredMessage | None: ...

    @abc.abstractmethod
    async def latest_seq(self, room: str) -> int: ...

    @abc.abstractmethod
    async def ping(self) -> bool: ...

    @abc.abstractmethod
    async def purge(self, room: str) -> None: ...

    async def __aenter__(self) -> BaseStore:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- shared behaviour

    #: The schema migrations of a backend, in order (each backend lists its own).
    migrations: ClassVar[tuple[str, ...]] = ()

    @property
    def schema_version(self) -> int:
        """The version this code brings the schema to: one per migration."""
        return len(self.migrations)

    def retention_for(self, room: str) -> int:
        """How many of ``room``'s newest messages are kept."""
        return self.retention_overrides.get(room, self.retention)

    def trim_cutoff(self, room: str, seq: int) -> int | None:
        """After storing ``seq``: the highest seq to delete now, or None outside a batch point."""
        keep = self.retention_for(room)
        if seq > keep and seq % self.retention_batch == 0:
            return seq - keep
        return None

    @staticmethod
    def check_history_args(
        room: str, limit: int, before_seq: int | None, since_seq: int | None
    ) -> _HistoryQuery:
        """Validate history arguments (ValidationError: the protocol's INVALID_INPUT)."""
        _check_text("room", room, max_length=MAX_ID_LENGTH)
        if not isinstance(limit, int) or isinstance(limit, bool):
            raise ValidationError("limit must be an integer")
        if not 1 <= limit <= MAX_HISTORY_LIMIT:
            raise ValidationError(f"limit must be between 1 and {MAX_HISTORY_LIMIT}")
        for name, value in (("before_seq", before_seq), ("since_seq", since_seq)):
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or value < 0
            ):
                raise ValidationError(f"{name} must be an integer >= 0")
        if before_seq is not None and since_seq is not None:
            raise ValidationError("give before_seq or since_seq, not both")
        return _HistoryQuery(room, limit, before_seq, since_seq)

    @staticmethod
    def make_page(
        query: _HistoryQuery,
        rows: list[StoredMessage],
        latest_seq: int,
        trimmed_through: int,
    ) -> HistoryPage:
        """Turn up to ``limit + 1`` fetched rows into a page and decide ``complete``.

        ``rows`` come from a query that asked for one more than ``limit`` (to learn ``has_more``)
        and were read in the same snapshot as ``latest_seq``/``trimmed_through``; for backward
        paging they are newest first. Seqs have no gaps, so the requested range is known from
        the cursor and ``limit`` alone, and ``complete`` is "that range starts after the highest
        seq retention deleted".
        """
        limit = query.limit
        has_more = len(rows) > limit
        rows = rows[:limit]
        if query.since_seq is not None:
            first_wanted = query.since_seq + 1
            complete = first_wanted > trimmed_through or query.since_seq >= latest_seq
        else:
            rows.reverse()  # fetched newest first; pages are oldest first
            upper = (
                latest_seq + 1
                if query.before_seq is None
                else min(query.before_seq, latest_seq + 1)
            )
            first_wanted = max(1, upper - limit)
            complete = upper <= 1 or first_wanted > trimmed_through
        return HistoryPage(
            room=query.room,
            messages=tuple(rows),
            complete=complete,
            has_more=has_more,
            latest_seq=latest_seq,
        )

    async def direct_history(
        self,
        user_a: str,
        user_b: str,
        *,
        limit: int = DEFAULT_HISTORY_LIMIT,
        before_seq: int | None = None,
        since_seq: int | None = None,
    ) -> HistoryPage:
        """A page of the direct conversation between two users, oldest first."""
        _check_text("user_a", user_a, max_length=MAX_ID_LENGTH)
        _check_text("user_b", user_b, max_length=MAX_ID_LENGTH)
        return await self.history(
            dm_room(user_a, user_b), limit=limit, before_seq=before_seq, since_seq=since_seq
        )

    @abc.abstractmethod
    async def history(
        self,
        room: str,
        *,
        limit: int = DEFAULT_HISTORY_LIMIT,
        before_seq: int | None = None,
        since_seq: int | None = None,
    ) -> HistoryPage: ...

    def existing_or_conflict(self, existing: StoredMessage, draft: MessageDraft) -> StoredMessage:
        """An idempotent re-save returns the stored message; a different one reusing the id fails."""
        if not existing.same_message(draft):
            raise ConflictError("message_id is already used by a different message")
        return existing

    def unavailable(self, exc: BaseException, action: str) -> DependencyError:
        """A safe DependencyError for a database failure (chain the original with ``from``)."""
        return DependencyError(
            f"message store ({self.backend_name}) unavailable: {action} failed "
            f"({type(exc).__name__})"
        )
