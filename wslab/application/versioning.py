"""Protocol versions: what the hub speaks, what it still accepts, and how old requests are upgraded.

A client may put ``"version": "X.Y"`` in any message. The hub serves:

- the **current** version, ``1.0``;
- **deprecated** versions, still served, with a ``warning`` field in every reply telling the
  client to move on. Version ``0.9`` of the chat protocol called a message's text ``text``
  rather than ``content``; its requests are translated to 1.0 before validation, so the rest of
  the hub only ever sees the current shape (one set of handlers, not one per version);
- anything else is refused with ``INVALID_INPUT``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wslab.foundation.wire import CHAT_MESSAGE

__all__ = ["CURRENT_VERSION", "DEPRECATED_VERSIONS", "UPGRADERS", "upgrade_request"]

CURRENT_VERSION = "1.0"

#: Deprecated version -> the warning sent with replies to requests that use it.
DEPRECATED_VERSIONS: dict[str, str] = {
    "0.9": "protocol version 0.9 is deprecated and will be removed; send version 1.0 "
    "(chat:message uses 'content' instead of 'text')",
}


def _from_0_9(message_type: str, body: dict[str, Any]) -> dict[str, Any]:
    if message_type == CHAT_MESSAGE and "content" not in body and "text" in body:
        body = dict(body)
        body["content"] = body.pop("text")
    return body


#: Deprecated version -> a function turning its request body into the current shape.
UPGRADERS: dict[str, Callable[[str, dict[str, Any]], dict[str, Any]]] = {"0.9": _from_0_9}


def upgrade_request(version: str, message_type: str, body: dict[str, Any]) -> dict[str, Any]:
    """The request body in the current version's shape."""
    upgrader = UPGRADERS.get(version)
    return upgrader(message_type, body) if upgrader is not None else body
