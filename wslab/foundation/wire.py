"""The chat protocol's wire format, in one place, for the hub and the client alike.

What both ends of ``/ws`` must agree on beyond JSON itself (the contract is
``/work/shared/PROTOCOL.md``): the message ``type`` names, the one timestamp format
(:func:`format_timestamp` / :func:`parse_timestamp`), the room key of a direct conversation
(:func:`dm_room`), and the ``error`` envelope in both directions — :func:`error_envelope`
builds it from a :class:`~wslab.foundation.errors.WslabError` (hub side),
:func:`error_from_envelope` turns it back into the matching exception (client side), with the
request's ``ref`` on :attr:`WslabError.ref <wslab.foundation.errors.WslabError.ref>`.

It lives in the foundation so that every layer and the client can import it;
:mod:`wslab.integration.store`, :mod:`wslab.infrastructure.router` and
:mod:`wslab.client.errors` re-export the names they used to define.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from wslab.foundation.codes import ErrorCode
from wslab.foundation.errors import (
    ConflictError,
    DegradedError,
    DependencyError,
    NotFoundError,
    OperationTimeout,
    PermissionDeniedError,
    RateLimitedError,
    ValidationError,
    WslabError,
)

__all__ = [
    "ACK",
    "ADMIN_BROADCAST",
    "AUTH",
    "AUTH_EXPIRING",
    "AUTH_REFRESH",
    "AUTH_REFRESHED",
    "CHAT_HISTORY",
    "CHAT_MESSAGE",
    "CHAT_TYPING",
    "ERROR",
    "PRESENCE_COUNT",
    "PRESENCE_JOIN",
    "PRESENCE_LEAVE",
    "PRESENCE_LIST",
    "PRESENCE_SNAPSHOT",
    "ROOM_JOIN",
    "ROOM_LEAVE",
    "SYSTEM_BROADCAST",
    "SYSTEM_CONNECTED",
    "SYSTEM_RESYNC",
    "dm_room",
    "error_envelope",
    "error_from_envelope",
    "format_timestamp",
    "parse_timestamp",
]

# -- message types (the envelope's ``type``) -----------------------------------------------------

AUTH = "auth"
AUTH_REFRESH = "auth:refresh"
AUTH_REFRESHED = "auth:refreshed"
AUTH_EXPIRING = "auth:expiring"
CHAT_MESSAGE = "chat:message"
CHAT_HISTORY = "chat:history"
CHAT_TYPING = "chat:typing"
ROOM_JOIN = "room:join"
ROOM_LEAVE = "room:leave"
PRESENCE_LIST = "presence:list"
PRESENCE_JOIN = "presence:join"
PRESENCE_LEAVE = "presence:leave"
PRESENCE_SNAPSHOT = "presence:snapshot"
PRESENCE_COUNT = "presence:count"
ADMIN_BROADCAST = "admin:broadcast"
SYSTEM_CONNECTED = "system:connected"
SYSTEM_RESYNC = "system:resync"
SYSTEM_BROADCAST = "system:broadcast"
ACK = "ack"
ERROR = "error"

# -- timestamps ----------------------------------------------------------------------------------


def format_timestamp(ts: datetime) -> str:
    """ISO 8601 UTC with milliseconds and a ``Z``: the one timestamp format on the wire."""
    return ts.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_timestamp(text: str) -> datetime:
    """Parse an ISO 8601 timestamp with an offset (``Z`` or ``+hh:mm``) into aware UTC."""
    try:
        ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (TypeError, ValueError) as exc:
        raise ValidationError("timestamp is not ISO 8601") from exc
    if ts.tzinfo is None:
        raise ValidationError("timestamp has no UTC offset")
    return ts.astimezone(timezone.utc)


# -- direct-message rooms ------------------------------------------------------------------------


def _escape_user_id(user_id: str) -> str:
    # User ids may contain ":" themselves; escaping keeps dm_room() injective
    # (otherwise "x:y"+"z" and "x"+"y:z" would share a room).
    return user_id.replace("%", "%25").replace(":", "%3A")


def dm_room(user_a: str, user_b: str) -> str:
    """The room key of the direct conversation between two users (order does not matter)."""
    a, b = sorted((_escape_user_id(user_a), _escape_user_id(user_b)))
    return f"dm:{a}:{b}"


# -- the error envelope, both directions ---------------------------------------------------------


def error_envelope(error: WslabError, ref: str | int | None = None) -> dict[str, Any]:
    """The protocol's ``error`` message for ``error``."""
    envelope: dict[str, Any] = {"type": ERROR, "error": error.to_dict()}
    if ref is not None:
        envelope["ref"] = ref
    return envelope


_ERRORS: dict[int, type[WslabError]] = {
    ErrorCode.INVALID_INPUT: ValidationError,
    ErrorCode.NOT_FOUND: NotFoundError,
    ErrorCode.PERMISSION_DENIED: PermissionDeniedError,
    ErrorCode.CONFLICT: ConflictError,
    ErrorCode.DEPENDENCY_ERROR: DependencyError,
    ErrorCode.TIMEOUT: OperationTimeout,
    ErrorCode.RATE_LIMITED: RateLimitedError,
    ErrorCode.DEGRADED: DegradedError,
}


def error_from_envelope(envelope: Mapping[str, Any]) -> WslabError:
    """The exception for an ``error`` envelope of the protocol.

    The class follows ``error.code`` (``INVALID_INPUT`` -> :class:`ValidationError`, ...; an
    unknown code gives a plain :class:`WslabError` with ``INTERNAL_ERROR``). The exception also
    carries ``ref``, ``message_id`` (set by the hub on ``DEGRADED``: the message was relayed but
    not stored yet), ``retry_after`` if given, and ``details`` (the whole ``error`` object).
    """
    body = envelope.get("error")
    if not isinstance(body, Mapping):
        body = {}
    raw_code = body.get("code")
    message = body.get("message")
    message = message if isinstance(message, str) and message else "the hub refused the request"
    cls = _ERRORS.get(raw_code) if isinstance(raw_code, int) else None
    if cls is None:
        code = None
        if isinstance(raw_code, int) and raw_code in ErrorCode._value2member_map_:
            code = ErrorCode(raw_code)
        error = WslabError(message, code=code or ErrorCode.INTERNAL_ERROR)
    else:
        error = cls(message)
    ref = envelope.get("ref")
    error.ref = ref if isinstance(ref, (str, int)) else None
    error.message_id = body.get("message_id", envelope.get("message_id"))
    error.retry_after = body.get("retry_after", envelope.get("retry_after"))
    error.details = dict(body)
    return error
