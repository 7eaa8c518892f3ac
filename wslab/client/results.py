"""What the chat client's requests return, and its counters.

:class:`Ack` (``send_message``), :class:`History` (``history``) and :class:`User`
(``presence``) are the replies of requests, as frozen dataclasses, and :func:`history_from`
and :func:`users_from` read them from the hub's replies; :class:`ClientStats` is the client's
running tally, one row of a pandas DataFrame per client.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from .events import ChatMessage

__all__ = ["Ack", "ClientStats", "History", "User", "history_from", "users_from"]


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


def history_from(reply: Mapping[str, Any], room: str) -> History:
    """The :class:`History` in a ``chat:history`` reply (``room`` when the reply names none)."""
    raw = reply.get("messages")
    messages = [m for m in raw if isinstance(m, dict)] if isinstance(raw, list) else []
    return History(
        str(reply.get("room", room)),
        tuple(ChatMessage.from_wire(m) for m in messages),
        reply.get("complete", True) is not False,
    )


def users_from(reply: Mapping[str, Any]) -> list[User]:
    """The users of a ``presence:list`` reply: a list of users (or ids), or a map id -> name."""
    users = reply.get("users") or []
    if isinstance(users, Mapping):
        return [User(str(uid), str(name)) for uid, name in users.items()]
    result = []
    for user in users:
        if isinstance(user, Mapping):
            uid = str(user.get("user_id", ""))
            result.append(User(uid, str(user.get("username", uid))))
        else:
            result.append(User(str(user), str(user)))
    return result
