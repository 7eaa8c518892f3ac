"""The four layers of message validation, from cheapest to most contextual.

1. **Type** — each field has the JSON type it should (a string, a boolean, an integer...).
2. **Range** — values are within bounds: content 1..5000 characters, ``limit`` ≤ 100, room names
   short and printable, sequence numbers positive.
3. **Business rules** — the request makes sense: ``before_seq`` and ``since_seq`` together are
   contradictory; a direct message names a user.
4. **Connection state** — the sender may do this now: it has joined the room it posts to, it has
   the ``admin`` role for ``admin:broadcast``.

Layers 1-3 need only the message (:func:`validate`); layer 4 needs the session and lives in
:mod:`wslab.application.chat`. Every failure is a ``ValidationError`` (``INVALID_INPUT``) or
``PermissionDeniedError`` naming the field, so the client can show the user what to fix.

The hub stores and relays text exactly as it came: validation never rewrites content (no
escaping, no trimming). Rendering it safely is the client's job (as text, never as HTML).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wslab.foundation.errors import ValidationError
from wslab.foundation.wire import (
    ADMIN_BROADCAST,
    AUTH,
    AUTH_REFRESH,
    CHAT_HISTORY,
    CHAT_MESSAGE,
    CHAT_TYPING,
    PRESENCE_LIST,
    ROOM_JOIN,
    ROOM_LEAVE,
)

# History page sizes are the store's contract; the protocol's validation enforces the same ones.
from wslab.integration.store import DEFAULT_HISTORY_LIMIT, MAX_HISTORY_LIMIT

__all__ = [
    "DEFAULT_HISTORY_LIMIT",
    "DEFAULT_ROOM",
    "MAX_CONTENT_LENGTH",
    "MAX_HISTORY_LIMIT",
    "SCHEMAS",
    "Field",
    "validate",
    "validate_room",
]

DEFAULT_ROOM = "lobby"
MAX_CONTENT_LENGTH = 5000
MAX_ROOM_LENGTH = 64
MAX_USER_ID_LENGTH = 128
MAX_TOKEN_LENGTH = 8192

# Room names are identifiers people type: letters, digits and a few separators. "dm:" is
# reserved for the store's direct-message rooms.
_ROOM_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


@dataclass(frozen=True)
class Field:
    """One field of a message: its type, whether it is required, its default and its range."""

    type: type | tuple[type, ...]
    required: bool = False
    default: Any = None
    check: Callable[[str, Any], None] | None = None


def _length(low: int, high: int) -> Callable[[str, Any], None]:
    def check(name: str, value: Any) -> None:
        if not low <= len(value) <= high:
            raise ValidationError(
                f"'{name}' must be {low} to {high} characters long (got {len(value)})"
            )

    return check


def _int_range(low: int, high: int | None = None) -> Callable[[str, Any], None]:
    def check(name: str, value: Any) -> None:
        if value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f"at least {low}"
            # The value is echoed shortened: a 10,000-digit integer must not come back whole.
            raise ValidationError(f"'{name}' must be {bound} (got {str(value)[:24]})")

    return check


def validate_room(name: str, value: Any) -> None:
    """A room name: 1-64 characters, letters, digits, ``_ . -``, starting with a letter or digit."""
    # fullmatch, not match: "$" also matches before a final newline, which let "lobby\n" in.
    if not _ROOM_PATTERN.fullmatch(value):
        raise ValidationError(
            f"'{name}' must be 1-64 letters, digits, '_', '.' or '-' and start with a letter or digit"
        )


_ROOM = Field(str, default=DEFAULT_ROOM, check=validate_room)
_ROOM_REQUIRED = Field(str, required=True, check=validate_room)
_USER = Field(str, check=_length(1, MAX_USER_ID_LENGTH))
#: Sequence numbers are stored as signed 64-bit integers (SQLite INTEGER, PostgreSQL BIGINT):
#: a larger one is the client's mistake, refused here instead of failing in the store.
MAX_SEQ = 2**63 - 1
_SEQ = Field(int, check=_int_range(0, MAX_SEQ))

#: Layers 1 and 2 for every client request type.
SCHEMAS: dict[str, dict[str, Field]] = {
    AUTH: {"token": Field(str, required=True, check=_length(1, MAX_TOKEN_LENGTH))},
    AUTH_REFRESH: {"token": Field(str, required=True, check=_length(1, MAX_TOKEN_LENGTH))},
    ROOM_JOIN: {"room": _ROOM_REQUIRED},
    ROOM_LEAVE: {"room": _ROOM_REQUIRED},
    CHAT_MESSAGE: {
        "room": _ROOM,
        "content": Field(str, required=True, check=_length(1, MAX_CONTENT_LENGTH)),
        "to_user": _USER,
    },
    CHAT_TYPING: {"room": _ROOM, "is_typing": Field(bool, required=True)},
    CHAT_HISTORY: {
        "room": _ROOM,
        "limit": Field(int, default=DEFAULT_HISTORY_LIMIT, check=_int_range(1, MAX_HISTORY_LIMIT)),
        "before_seq": _SEQ,
        "since_seq": _SEQ,
        "with_user": _USER,
    },
    PRESENCE_LIST: {"room": _ROOM},
    ADMIN_BROADCAST: {"content": Field(str, required=True, check=_length(1, MAX_CONTENT_LENGTH))},
}

_ENVELOPE = frozenset({"type", "ref", "version"})


def _type_name(expected: type | tuple[type, ...]) -> str:
    names = {str: "a string", bool: "a boolean", int: "an integer"}
    if isinstance(expected, tuple):
        return " or ".join(names.get(t, t.__name__) for t in expected)
    return names.get(expected, expected.__name__)


def validate(message_type: str, body: dict[str, Any]) -> dict[str, Any]:
    """Check ``body`` against the schema of ``message_type`` (layers 1-3).

    Returns the fields with defaults filled in; unknown fields are ignored (clients of a newer
    minor version may send more). Raises ``ValidationError`` naming the first bad field.
    """
    schema = SCHEMAS.get(message_type)
    if schema is None:
        raise ValidationError(f"no schema for {message_type!r}")
    clean: dict[str, Any] = {}
    for name, spec in schema.items():
        value = body.get(name)
        if value is None:
            if spec.required:
                raise ValidationError(f"'{name}' is required for {message_type}")
            clean[name] = spec.default
            continue
        # bool is a subclass of int in Python; JSON true is not a number.
        wrong_bool = isinstance(value, bool) and spec.type is int
        if wrong_bool or not isinstance(value, spec.type):
            raise ValidationError(f"'{name}' must be {_type_name(spec.type)}")
        if spec.check is not None:
            spec.check(name, value)
        clean[name] = value
    _business_rules(message_type, clean)
    return clean


def _business_rules(message_type: str, fields: dict[str, Any]) -> None:
    """Layer 3: rules across fields."""
    if message_type == CHAT_HISTORY:
        if fields["before_seq"] is not None and fields["since_seq"] is not None:
            raise ValidationError("give 'before_seq' or 'since_seq', not both")
        if fields["before_seq"] == 0:
            raise ValidationError("'before_seq' must be at least 1")
