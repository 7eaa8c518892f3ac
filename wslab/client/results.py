"""What the chat client's requests return, and its counters.

:class:`Ack` (``send_message``), :class:`History` (``history``) and :class:`User`
(``presence``) are the replies of requests, as frozen dataclasses; :class:`ClientStats` is the
client's running tally, one row of a pandas DataFrame per client.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .events import ChatMessage

__all__ = ["Ack", "ClientStats", "History", "User"]


@dataclass(frozen=True)
class User:
    """A user present in a room."""

    user_id: str
    username: str


@dataclass(frozen=True)
class Ack:
    """The hub stored a message: its id and ``seq``; ``rtt`` is send -> ack in seconds."""

    ref: str
    message_id: str | None
    seq: int | None
    rtt: float


@dataclass(frozen=True)
class History:
    """One page of ``chat:history``: messages oldest first; ``complete`` false if some are gone."""

    room: str
    messages: tuple[ChatMessage, ...]
    complete: bool = True


@dataclass
class ClientStats:
    """Counters of one client; :meth:`as_dict` gives a row for a pandas DataFrame."""

    sent: int = 0
    received: int = 0
    acks: int = 0
    errors: int = 0
    reconnects: int = 0
    failed_attempts: int = 0
    recovered: int = 0
    duplicates: int = 0
    gaps: int = 0
    last_rtt: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """The counters as a plain dict."""
        return asdict(self)
