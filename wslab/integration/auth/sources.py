"""Where a token comes from: the upgrade request or the first message, in the protocol's order.

:func:`token_from_upgrade` looks at the ``Authorization: Bearer`` header, then the ``?token=``
query parameter, and says which it used (:data:`TokenSource`); when neither has one,
:func:`token_from_message` reads it from the first ``auth`` message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from wslab.foundation.errors import AuthenticationError

__all__ = ["TokenSource", "token_from_message", "token_from_upgrade"]

# RFC 6750 section 2.1: the characters a bearer token may use in an Authorization header.
_B64TOKEN = re.compile(r"[A-Za-z0-9._~+/-]+=*")

#: (when neither had one) it must come in the first message.
TokenSource = Literal["header", "query", "message"]


def _header_values(headers: Any, name: str) -> list[str]:
    """Every value of header ``name`` in ``headers``, whatever kind of mapping it is."""
    get_all = getattr(headers, "get_all", None)
    if callable(get_all):  # websockets.Headers, email.message.Message
        return [str(v) for v in (get_all(name) or [])]
    items = getattr(headers, "items", None)
    if callable(items):  # a plain dict whose keys may be in any case
        wanted = name.lower()
        return [str(v) for k, v in items() if isinstance(k, str) and k.lower() == wanted]
    value = headers.get(name)
    return [] if value is None else [str(value)]


def _bearer(values: list[str]) -> str:
    if len(values) > 1:
        raise AuthenticationError("more than one Authorization header")
    parts = values[0].split()
    if not parts:
        raise AuthenticationError("malformed Authorization header")
    if parts[0].lower() != "bearer":
        raise AuthenticationError("unsupported authorization scheme")
    if len(parts) != 2 or not _B64TOKEN.fullmatch(parts[1]):
        raise AuthenticationError("malformed Authorization header")
    return parts[1]


def token_from_upgrade(
    headers: Any, query: Mapping[str, Any] | None = None
) -> tuple[str | None, TokenSource]:
    """The token offered on the upgrade request and where it came from.

    ``Authorization: Bearer <t>`` (scheme case-insensitive) wins over ``?token=<t>``. A malformed
    Authorization header (another scheme, no token, two tokens, two headers) is refused with
    :class:`AuthenticationError` rather than ignored, so a client's mistake is not silently
    downgraded to the weaker query or message path. Two ``token`` query values are refused too.
    Returns ``(None, "message")`` when neither carries a token: it must then arrive in the first
    message. ``headers`` is any object with ``get_all``, ``items`` or ``get``; ``query`` maps
    names to a string or a list of strings (as :func:`urllib.parse.parse_qs` returns).
    """
    values = _header_values(headers, "Authorization") if headers is not None else []
    if values:
        return _bearer(values), "header"
    raw = query.get("token") if query is not None else None
    if isinstance(raw, (list, tuple)):
        if len(raw) > 1:
            raise AuthenticationError("more than one token in the query")
        raw = raw[0] if raw else None
    if raw is None:
        return None, "message"
    if not isinstance(raw, str) or not raw.strip():
        raise AuthenticationError("malformed token")
    return raw.strip(), "query"


def token_from_message(msg: object, *, expected_type: str = "auth") -> str:
    """The token of an ``{"type": "auth", "token": "..."}`` message (or ``auth:refresh``).

    Anything else - another type, a non-object, a missing or empty token - is an
    :class:`AuthenticationError`: before authentication no other message is accepted.
    """
    if not isinstance(msg, Mapping) or msg.get("type") != expected_type:
        raise AuthenticationError(
            "first message must be auth" if expected_type == "auth" else f"expected {expected_type}"
        )
    token = msg.get("token")
    if not isinstance(token, str) or not token.strip():
        raise AuthenticationError(f"{expected_type} message needs a token")
    return token.strip()
