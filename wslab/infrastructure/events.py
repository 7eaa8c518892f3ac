"""The bounded event log: what the engine did, one small record at a time.

Every observable thing the hub does — a frame read or written (with its header fields), a state
transition, a ping and its pong (with the round-trip time), a close code, an error, a rate-limit
hit — can be recorded here as an :class:`Event`. The course notebooks plot these events, the
dashboards stream them, and tests assert on them.

Cost and levels
    :meth:`EventLog.record` is on the engine's hot path, so it does as little as possible: a set
    membership test, two clock reads and a ``deque.append`` of a plain tuple. The
    :class:`Event` objects are built from those tuples only when someone reads the log (or when
    a subscriber is attached), because building a frozen dataclass costs several times more
    than the append. ``benchmarks/bench_eventlog.py`` measures it. The ``level`` decides what
    is kept:

    ``"frames"``     everything, including the high-volume *traffic* kinds
                     (:data:`TRAFFIC_KINDS`: ``FRAME_IN``, ``FRAME_OUT``, ``MESSAGE``);
    ``"lifecycle"``  everything except the traffic kinds (the default: cheap under load);
    ``"off"``        nothing at all, not even errors (subscribers see nothing either).

    Callers that would have to build expensive fields first ask :meth:`EventLog.enabled_for`::

        if log.enabled_for(EventKind.FRAME_IN):
            log.record(EventKind.FRAME_IN, cid, opcode=f.opcode, fin=f.fin, length=len(f.data))

Bounds
    The log keeps at most ``maxlen`` events. At the limit the **oldest** event is dropped to make
    room and :attr:`EventLog.dropped` counts it; :meth:`EventLog.counts` keeps counting every
    recorded event by kind, dropped or not. At most ``max_subscribers`` live subscribers may be
    attached; one more is refused with :class:`~wslab.foundation.errors.ConflictError`.

Subscribers
    A subscriber is a plain callable, called synchronously inside ``record`` with each kept event,
    so it must be quick and must not block (hand the event to a queue if it needs to do work). A
    subscriber that raises is detached, the failure is logged on the ``wslab.events`` logger and
    recorded as an ``ERROR`` event — it is never raised into the engine.

Time
    ``Event.t`` comes from the injectable ``clock`` (default :func:`time.monotonic`), so a fake
    clock drives the log in tests and notebooks; ``Event.wall`` is always :func:`time.time`, for
    display. Everything runs on the event loop's thread; readers take a snapshot of the deque, so
    they never see it change under them.
"""

from __future__ import annotations

import enum
import itertools
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from wslab.foundation.errors import ConfigError, ConflictError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "LEVELS",
    "NULL_EVENT_LOG",
    "TRAFFIC_KINDS",
    "ConnectionEvents",
    "Event",
    "EventKind",
    "EventLevel",
    "EventLog",
    "NullEventLog",
    "Subscriber",
]

logger = logging.getLogger("wslab.events")

Clock = Callable[[], float]
EventLevel = Literal["frames", "lifecycle", "off"]
LEVELS: tuple[EventLevel, ...] = ("frames", "lifecycle", "off")


class EventKind(str, enum.Enum):
    """What an event is about. The value is the short lowercase name shown in DataFrames."""

    FRAME_IN = "frame_in"  # fields: opcode, fin, rsv, masked, length
    FRAME_OUT = "frame_out"  # fields: opcode, fin, rsv, masked, length
    MESSAGE = "message"  # a reassembled data message: type, length
    TRANSITION = "transition"  # old, new, cause
    PING = "ping"  # payload / id
    PONG = "pong"  # rtt (seconds)
    CLOSE = "close"  # code, reason, initiator
    ERROR = "error"  # error (class name), message, where
    RATE_LIMIT = "rate_limit"  # verdict, nbytes, limit
    CONNECT = "connect"  # address, path
    DISCONNECT = "disconnect"  # code, reason, duration
    AUTH = "auth"  # user_id, method, ok
    HEARTBEAT_TIMEOUT = "heartbeat_timeout"  # missed, last_pong
    SLOW_CONSUMER = "slow_consumer"  # queue_size, limit
    BACKPRESSURE = "backpressure"  # paused / resumed, buffered
    CUSTOM = "custom"  # anything a notebook wants to mark on the timeline

    def __str__(self) -> str:
        return self.value


#: The high-volume kinds, kept only at level ``"frames"``: one event per frame or message.
TRAFFIC_KINDS: frozenset[EventKind] = frozenset(
    {EventKind.FRAME_IN, EventKind.FRAME_OUT, EventKind.MESSAGE}
)

_ENABLED_BY_LEVEL: dict[str, frozenset[EventKind]] = {
    "frames": frozenset(EventKind),
    "lifecycle": frozenset(EventKind) - TRAFFIC_KINDS,
    "off": frozenset(),
}

# The fixed DataFrame columns; a field with one of these names is shown as ``field_<name>``.
_BASE_COLUMNS = ("t", "wall", "kind", "connection_id")


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened.

    ``t`` is the log's clock (monotonic seconds), ``wall`` the Unix time for display, ``kind`` an
    :class:`EventKind`, ``connection_id`` the connection it belongs to (``None`` for hub-wide
    events) and ``fields`` the details (treat as read-only).
    """

    t: float
    wall: float
    kind: EventKind
    connection_id: str | None
    fields: Mapping[str, object]

    def get(self, key: str, default: object = None) -> object:
        """One field's value, or ``default`` when the event has no such field."""
        return self.fields.get(key, default)

    def as_dict(self) -> dict[str, object]:
        """A flat dict: ``t``, ``wall``, ``kind``, ``connection_id`` and then the fields."""
        row: dict[str, object] = {
            "t": self.t,
            "wall": self.wall,
            "kind": self.kind,
            "connection_id": self.connection_id,
        }
        for key, value in self.fields.items():
            row[f"field_{key}" if key in _BASE_COLUMNS else key] = value
        return row


# What the log stores: the fields of an Event, in order, as a tuple (cheap to build).
_Row = tuple[float, float, EventKind, "str | None", Mapping[str, object]]

Subscriber = Callable[[Event], object]


class EventLog:
    """A bounded, filterable log of :class:`Event` s, hub-wide or for one connection.

    :param maxlen: how many events to keep; at the limit the oldest is dropped and counted.
    :param level: ``"frames"``, ``"lifecycle"`` (default) or ``"off"``; may be changed live.
    :param clock: the source of ``Event.t``; inject a fake clock in tests.
    :param max_subscribers: how many live subscribers may be attached at once.
    """

    def __init__(
        self,
        maxlen: int = 10_000,
        level: EventLevel = "lifecycle",
        clock: Clock = time.monotonic,
        *,
        max_subscribers: int = 16,
    ) -> None:
        if maxlen < 1:
            raise ConfigError(f"maxlen must be at least 1, got {maxlen}")
        if max_subscribers < 0:
            raise ConfigError(f"max_subscribers must be >= 0, got {max_subscribers}")
        self._rows: deque[_Row] = deque(maxlen=maxlen)
        self._maxlen = maxlen
        self._clock = clock
        self._enabled: frozenset[EventKind] = frozenset()
        #: Whether outgoing frames are recorded: the fan-out asks once per recipient, so it is
        #: a plain attribute kept with the level rather than a set lookup behind a call.
        self.frames_out = False
        self._level: EventLevel = "off"
        self.level = level
        # A plain dict with every kind present: ``+= 1`` on it is several times cheaper than
        # on a collections.Counter.
        self._counts: dict[EventKind, int] = dict.fromkeys(EventKind, 0)
        self._subscribers: list[Subscriber] = []
        self._max_subscribers = max_subscribers
        #: Events pushed out of the full log since creation or the last :meth:`clear`.
        self.dropped = 0

    # -- configuration --------------------------------------------------------------------------

    @property
    def maxlen(self) -> int:
        """The most events the log keeps."""
        return self._maxlen

    @property
    def level(self) -> EventLevel:
        """What is recorded: ``"frames"``, ``"lifecycle"`` or ``"off"`` (settable)."""
        return self._level

    @level.setter
    def level(self, level: EventLevel) -> None:
        self._set_level(level)

    def _set_level(self, level: EventLevel) -> None:
        """What setting :attr:`level` does (a subclass that restricts it overrides this)."""
        if level not in _ENABLED_BY_LEVEL:
            raise ConfigError(f"event level must be one of {LEVELS}, got {level!r}")
        self._level = level
        self._enabled = _ENABLED_BY_LEVEL[level]
        self.frames_out = EventKind.FRAME_OUT in self._enabled

    def enabled_for(self, kind: EventKind) -> bool:
        """True if an event of ``kind`` would be kept at the current level."""
        return kind in self._enabled

    # -- recording: the hot path ----------------------------------------------------------------

    def record(
        self, kind: EventKind, /, connection_id: str | None = None, **fields: object
    ) -> bool:
        """Record one event (if the level keeps ``kind``) and hand it to the subscribers.

        Returns False when the level filtered the event out. Never raises because of a
        subscriber.
        """
        if kind not in self._enabled:
            return False
        row = (self._clock(), time.time(), kind, connection_id, fields)
        rows = self._rows
        if len(rows) == self._maxlen:
            self.dropped += 1  # the append below pushes the oldest row out
        rows.append(row)
        self._counts[kind] += 1
        if self._subscribers:
            self._publish(Event(*row))
        return True

    def _publish(self, event: Event) -> None:
        failed: list[tuple[Subscriber, Exception]] = []
        # Iterate over a copy: a subscriber may subscribe or unsubscribe while being called.
        for callback in tuple(self._subscribers):
            try:
                callback(event)
            except Exception as exc:
                failed.append((callback, exc))
        # Detach every failed subscriber before reporting, so none of them is called again with
        # the ERROR events below; and report only after every subscriber saw this event, so an
        # ERROR event never overtakes the event that caused it.
        for callback, _ in failed:
            self.unsubscribe(callback)
        for callback, error in failed:
            logger.warning("event subscriber %r failed and was detached", callback, exc_info=error)
            self.record(
                EventKind.ERROR,
                None,
                where="event_subscriber",
                subscriber=repr(callback),
                error=type(error).__name__,
                message=str(error),
            )

    # -- subscribers ----------------------------------------------------------------------------

    def subscribe(self, callback: Subscriber) -> Callable[[], bool]:
        """Call ``callback(event)`` for every event kept from now on; returns an unsubscriber
        (which says, as :meth:`unsubscribe` does, whether the callback was still attached).

        Raises :class:`~wslab.foundation.errors.ConflictError` when ``max_subscribers`` are
        already attached.
        """
        if len(self._subscribers) >= self._max_subscribers:
            raise ConflictError(
                f"the event log already has {self._max_subscribers} subscribers (the limit)"
            )
        self._subscribers.append(callback)
        return lambda: self.unsubscribe(callback)

    def unsubscribe(self, callback: Subscriber) -> bool:
        """Detach ``callback``; returns False if it was not attached."""
        try:
            self._subscribers.remove(callback)
        except ValueError:
            return False
        return True

    @property
    def subscribers(self) -> int:
        """How many subscribers are attached."""
        return len(self._subscribers)

    # -- reading --------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[Event]:
        """The kept events, oldest first (a snapshot: recording meanwhile is fine)."""
        return iter([Event(*row) for row in tuple(self._rows)])

    def events(
        self,
        kind: EventKind | str | Collection[EventKind | str] | None = None,
        connection_id: str | None = None,
    ) -> list[Event]:
        """The kept events, oldest first, optionally of some kinds and/or one connection."""
        return [Event(*row) for row in self._select(kind, connection_id)]

    def _select(
        self,
        kind: EventKind | str | Collection[EventKind | str] | None,
        connection_id: str | None,
    ) -> list[_Row]:
        kinds = _kinds(kind)
        return [
            row
            for row in tuple(self._rows)
            if (kinds is None or row[2] in kinds)
            and (connection_id is None or row[3] == connection_id)
        ]

    def since(self, t: float, connection_id: str | None = None) -> list[Event]:
        """The kept events with ``event.t >= t`` (inclusive), oldest first.

        Scans from the newest event backwards and stops at the first older one, so polling for
        the latest few events stays cheap however long the log is. This relies on the clock
        never going backwards, as a monotonic clock guarantees.
        """
        newer: list[Event] = []
        for row in reversed(tuple(self._rows)):
            if row[0] < t:
                break
            if connection_id is None or row[3] == connection_id:
                newer.append(Event(*row))
        newer.reverse()
        return newer

    def last(self, kind: EventKind | None = None, connection_id: str | None = None) -> Event | None:
        """The newest kept event (of ``kind`` / for ``connection_id`` if given), or ``None``."""
        for row in reversed(tuple(self._rows)):
            if (kind is None or row[2] == kind) and (
                connection_id is None or row[3] == connection_id
            ):
                return Event(*row)
        return None

    def for_connection(self, connection_id: str) -> ConnectionEvents:
        """A live view of this connection's events in the log (it follows later recording)."""
        return ConnectionEvents(self, connection_id)

    def counts(self, retained: bool = False) -> dict[EventKind, int]:
        """Events recorded per kind since creation or :meth:`clear`, including dropped ones.

        With ``retained=True``: only the events still in the log.
        """
        if retained:
            return dict(Counter(row[2] for row in tuple(self._rows)))
        return {k: n for k, n in self._counts.items() if n}

    def clear(self) -> None:
        """Forget every event, the per-kind counts and the dropped counter (subscribers stay)."""
        self._rows.clear()
        self._counts = dict.fromkeys(EventKind, 0)
        self.dropped = 0

    def to_dataframe(
        self,
        kind: EventKind | str | Collection[EventKind | str] | None = None,
        connection_id: str | None = None,
    ) -> pd.DataFrame:
        """The kept events as a pandas DataFrame, oldest first.

        Columns: ``t`` (float seconds from the log's clock), ``wall`` (a UTC ``datetime64``),
        ``kind`` (the kind's string value), ``connection_id``, then one column per field key in
        the order first seen (missing values are NaN/None). A field named like a fixed column
        appears as ``field_<name>``.
        """
        return _rows_to_dataframe(self._select(kind, connection_id))


class NullEventLog(EventLog):
    """An event log that keeps nothing: what a part holds when it was given no log.

    Parts record through it unconditionally instead of asking ``if events is not None`` first;
    its level stays ``"off"`` (setting another is a :class:`ConfigError`, since the one
    instance is shared).
    """

    def __init__(self) -> None:
        super().__init__(maxlen=1, level="off", max_subscribers=0)

    def _set_level(self, level: EventLevel) -> None:
        if level != "off":
            raise ConfigError("the null event log records nothing; give the part an EventLog")
        self._level = "off"
        self._enabled = frozenset()
        self.frames_out = False


#: The one :class:`NullEventLog`, shared by every part built without an event log.
NULL_EVENT_LOG: EventLog = NullEventLog()


class ConnectionEvents:
    """A live, read-only view of one connection's events in an :class:`EventLog`.

    It holds no copy: each read filters the log as it is now, so it shows what the log still
    keeps for the connection (older events may have been pushed out by the hub-wide bound).
    """

    __slots__ = ("_cid", "_log")

    def __init__(self, log: EventLog, connection_id: str) -> None:
        self._log = log
        self._cid = connection_id

    @property
    def connection_id(self) -> str:
        """The connection this view follows."""
        return self._cid

    def __iter__(self) -> Iterator[Event]:
        return iter(self._log.events(connection_id=self._cid))

    def __len__(self) -> int:
        return len(self._log._select(None, self._cid))

    def events(
        self, kind: EventKind | str | Collection[EventKind | str] | None = None
    ) -> list[Event]:
        """This connection's kept events, optionally of some kinds."""
        return self._log.events(kind, self._cid)

    def since(self, t: float) -> list[Event]:
        """This connection's kept events with ``event.t >= t``."""
        return self._log.since(t, self._cid)

    def last(self, kind: EventKind | None = None) -> Event | None:
        """This connection's newest kept event (of ``kind`` if given)."""
        return self._log.last(kind, self._cid)

    def counts(self) -> dict[EventKind, int]:
        """This connection's kept events per kind."""
        return dict(Counter(row[2] for row in self._log._select(None, self._cid)))

    def to_dataframe(
        self, kind: EventKind | str | Collection[EventKind | str] | None = None
    ) -> pd.DataFrame:
        """This connection's kept events as a DataFrame (columns as :meth:`EventLog.to_dataframe`)."""
        return self._log.to_dataframe(kind, self._cid)

    def __repr__(self) -> str:
        return f"<ConnectionEvents {self._cid!r} of {self._log!r}>"


def _kinds(
    kind: EventKind | str | Collection[EventKind | str] | None,
) -> frozenset[EventKind] | None:
    """Normalise a kind filter (a kind, its string value, or several) to a set of kinds."""
    if kind is None:
        return None
    if isinstance(kind, (EventKind, str)):
        return frozenset({EventKind(kind)})
    return frozenset(EventKind(k) for k in kind)


def _rows_to_dataframe(rows: list[_Row]) -> pd.DataFrame:
    # pandas is imported here, not at module level: recording events must not pay for it.
    import pandas as pd

    def column(key: str) -> str:
        return f"field_{key}" if key in _BASE_COLUMNS else key

    field_names: dict[str, None] = {}  # an ordered set: columns in first-seen order
    for row in rows:
        for key in row[4]:
            field_names.setdefault(column(key), None)
    data: dict[str, list[object]] = {
        "t": [row[0] for row in rows],
        "wall": [row[1] for row in rows],
        "kind": [str(row[2]) for row in rows],  # EventKind's str() is its value
        "connection_id": [row[3] for row in rows],
    }
    for name in field_names:
        data[name] = []
    for row in rows:
        fields = {column(k): v for k, v in row[4].items()}
        for name in field_names:
            data[name].append(fields.get(name))
    frame = pd.DataFrame(data, columns=list(itertools.chain(_BASE_COLUMNS, field_names)))
    frame["t"] = frame["t"].astype("float64")
    frame["wall"] = pd.to_datetime(frame["wall"].astype("float64"), unit="s", utc=True)
    frame["kind"] = frame["kind"].astype(object)
    frame["connection_id"] = frame["connection_id"].astype(object)
    return frame
