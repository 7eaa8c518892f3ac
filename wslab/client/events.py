"""The events of the chat client: what arrives in a :class:`~wslab.client.ChatClient`'s inbox.

Small frozen dataclasses, all subclasses of :class:`Event`, read with ``async for event in
client`` or ``client.next_event(ChatMessage)``. :meth:`ChatMessage.from_wire` and
:meth:`Connected.from_wire` build them from the protocol's JSON objects, tolerating fields a hub
left out rather than dropping the message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from wslab.foundation.errors import ValidationError
from wslab.foundation.wire import parse_timestamp

__all__ = [
    "AuthExpiring",
    "ChatMessage",
    "Connected",
    "Disconnected",
    "ErrorEvent",
    "Event",
    "HistoryGap",
    "LateAck",
    "PresenceJoin",
    "PresenceLeave",
    "Reconnected",
    "SystemBroadcast",
    "Typing",
    "UnknownEvent",
]


@dataclass(frozen=True)
class Event:
    """Base of every event in the client's inbox (``next_event(Event)`` matches them all)."""


@dataclass(frozen=True)
class ChatMessage(Event):
    """A chat message; ``recovered`` is true if it came from history after a gap or reconnect."""

    room: str
    message_id: str
    seq: int | None
    from_user: str
    from_username: str
    to_user: str | None
    content: str
    timestamp: datetime | None
    recovered: bool = False

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], *, recovered: bool = False) -> ChatMessage:
        """Build from a ``chat:message`` object (live or inside a ``chat:history`` page)."""
        raw_ts = data.get("timestamp")
        try:
            timestamp = parse_timestamp(raw_ts) if isinstance(raw_ts, str) else None
        except ValidationError:
            timestamp = None  # shown as unknown rather than dropping the message
        seq = data.get("seq")
        return cls(
            room=str(data.get("room", "")),
            message_id=str(data.get("message_id", "")),
            seq=seq if isinstance(seq, int) and not isinstance(seq, bool) else None,
            from_user=str(data.get("from_user", "")),
            from_username=str(data.get("from_username", "")),
            to_user=data.get("to_user"),
            content=str(data.get("content", "")),
            timestamp=timestamp,
            recovered=recovered,
        )


@dataclass(frozen=True)
class Typing(Event):
    """Someone started or stopped typing in a room."""

    room: str
    user_id: str
    username: str
    is_typing: bool


@dataclass(frozen=True)
class PresenceJoin(Event):
    """A user became present in a room."""

    room: str
    user_id: str
    username: str


@dataclass(frozen=True)
class PresenceLeave(Event):
    """A user is no longer present in a room."""

    room: str
    user_id: str
    username: str


@dataclass(frozen=True)
class SystemBroadcast(Event):
    """An announcement to everyone (``admin:broadcast``)."""

    content: str
    from_user: str | None = None
    timestamp: datetime | None = None


@dataclass(frozen=True)
class AuthExpiring(Event):
    """The token expires in ``expires_in`` seconds; the hub closes with 4001 unless refreshed."""

    expires_in: float


@dataclass(frozen=True)
class HistoryGap(Event):
    """Messages of ``room`` after ``after_seq`` are gone from the hub's store (retention)."""

    room: str
    after_seq: int


@dataclass(frozen=True)
class Connected(Event):
    """The hub admitted this connection (``system:connected``)."""

    connection_id: str
    user_id: str
    server: str
    username: str = ""
    protocol_version: str = ""
    roles: tuple[str, ...] = ()

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Connected:
        """Build from a ``system:connected`` message."""
        roles = data.get("roles")
        return cls(
            connection_id=str(data.get("connection_id", "")),
            user_id=str(data.get("user_id", "")),
            server=str(data.get("server", "")),
            username=str(data.get("username", "")),
            protocol_version=str(data.get("protocol_version", "")),
            roles=tuple(str(r) for r in roles) if isinstance(roles, list) else (),
        )


@dataclass(frozen=True)
class Disconnected(Event):
    """The connection ended with ``code``; ``will_reconnect`` says whether the client retries."""

    code: int | None
    reason: str
    will_reconnect: bool


@dataclass(frozen=True)
class Reconnected(Event):
    """The client is back after ``attempt`` connection attempts; recovery follows."""

    attempt: int


@dataclass(frozen=True)
class ErrorEvent(Event):
    """An error no request was waiting for (an unsolicited ``error``, or a client-side failure)."""

    code: int
    name: str
    message: str
    ref: str | None = None


@dataclass(frozen=True)
class LateAck(Event):
    """An ack for a message whose request had already failed (timeout, ``DEGRADED``)."""

    ref: str
    message_id: str | None
    seq: int | None


@dataclass(frozen=True)
class UnknownEvent(Event):
    """A message of a type this client does not know (a newer hub): kept, not lost."""

    type: str
    data: Mapping[str, Any]
