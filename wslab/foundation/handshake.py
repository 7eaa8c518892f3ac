"""The opening handshake of RFC 6455 (section 4), for both roles, without I/O.

A WebSocket connection begins as an HTTP/1.1 request that asks to switch protocols::

    client -> server                              server -> client
    GET /chat HTTP/1.1                            HTTP/1.1 101 Switching Protocols
    Host: server.example.com                      Upgrade: websocket
    Upgrade: websocket                            Connection: Upgrade
    Connection: Upgrade                           Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==   Sec-WebSocket-Protocol: chat
    Origin: http://example.com
    Sec-WebSocket-Protocol: chat, superchat
    Sec-WebSocket-Version: 13

The key is 16 random bytes in base64; the server proves it understood the request (and is not
an HTTP cache replaying an old answer) by returning ``base64(SHA-1(key + GUID))``. After the
empty line both sides speak WebSocket frames.

Server role::

    parser = RequestParser()
    request = parser.feed(data)               # None until the head is complete
    if request and is_upgrade_request(request):
        try:
            upgrade = validate_upgrade_request(request)
        except HandshakeError as exc:
            send(reject(exc))                 # 400 / 405 / 426 with a short text body
        else:
            send(build_upgrade_response(upgrade, subprotocol=None))
            frames_so_far = parser.leftover   # a client may send frames right away

Client role::

    data, key = build_upgrade_request("server.example.com", "/chat")
    response = ResponseParser().feed(received)
    subprotocol = validate_upgrade_response(response, key)

Checking the ``Origin`` against an allow-list, choosing a subprotocol and authenticating are the
jobs of the layers above; this module only exposes what the client sent. Extensions are passed
through as header values: ``wslab.foundation.deflate`` negotiates permessage-deflate.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import HandshakeError, InvalidHandshakeResponse, InvalidUpgrade, UnsupportedVersion
from .http import (
    HeaderItems,
    Headers,
    Request,
    RequestParser,
    Response,
    ResponseParser,
    build_response,
    is_token,
    serialize_head,
)

__all__ = [
    "GUID",
    "WEBSOCKET_VERSION",
    "HandshakeError",
    "Headers",
    "Request",
    "RequestParser",
    "Response",
    "ResponseParser",
    "Upgrade",
    "accept_key",
    "build_response",
    "build_upgrade_request",
    "build_upgrade_response",
    "generate_key",
    "is_upgrade_request",
    "reject",
    "validate_upgrade_request",
    "validate_upgrade_response",
]

#: The fixed string of RFC 6455 section 1.3, appended to the key before hashing.
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: The only protocol version RFC 6455 defines (``Sec-WebSocket-Version``).
WEBSOCKET_VERSION = "13"

# Headers the handshake functions write themselves; extra_headers may not repeat or override
# them. Content-Length/Transfer-Encoding are also refused: a 101 has no body (RFC 9110 8.6)
# and a GET upgrade request sends none.
_SERVER_OWNED = frozenset(
    {"upgrade", "connection", "sec-websocket-accept", "sec-websocket-protocol"}
    | {"sec-websocket-extensions", "content-length", "transfer-encoding"}
)
_CLIENT_OWNED = frozenset(
    {"host", "upgrade", "connection", "sec-websocket-key", "sec-websocket-version", "origin"}
    | {"sec-websocket-protocol", "sec-websocket-extensions", "content-length", "transfer-encoding"}
)
_ORIGIN_FORM = re.compile(r"/[\x21-\x22\x24-\x7e]*")  # visible ASCII except "#"


def generate_key() -> str:
    """A fresh ``Sec-WebSocket-Key``: 16 random bytes, base64-encoded (RFC 6455 4.1)."""
    return base64.b64encode(secrets.token_bytes(16)).decode("ascii")


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` answering ``key``: base64(SHA-1(key + GUID)).

    SHA-1 is not used for security here, only to show that the server read this very key, so
    ``usedforsecurity=False`` keeps it available on FIPS-restricted systems.
    """
    digest = hashlib.sha1((key + GUID).encode("utf-8"), usedforsecurity=False).digest()
    return base64.b64encode(digest).decode("ascii")


# The canonical base64 of 16 bytes: 21 characters, a 22nd that carries 2 bits (the other 4 zero,
# so one of A, Q, g, w: a stray low bit is a non-canonical spelling b64decode would tolerate),
# and "==". ASCII-only, so a non-ASCII key does not match either.
_KEY = re.compile(r"[A-Za-z0-9+/]{21}[AQgw]==")


def _is_valid_key(key: str) -> bool:
    """True if ``key`` is the canonical base64 encoding of exactly 16 bytes."""
    return _KEY.fullmatch(key) is not None


def _lower(items: Iterable[str]) -> list[str]:
    return [item.lower() for item in items]


# -- server role ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Upgrade:
    """A valid upgrade request, as the layers above need it.

    ``origin`` and ``subprotocols`` are reported, not judged: the hub decides whether the origin
    is allowed (:class:`~wslab.foundation.errors.ForbiddenOrigin`) and which subprotocol to use.
    ``extensions`` holds the raw ``Sec-WebSocket-Extensions`` values, one per header line.
    """

    key: str
    accept: str
    origin: str | None
    subprotocols: tuple[str, ...]
    extensions: tuple[str, ...]
    path: str
    query: dict[str, list[str]]
    headers: Headers
    host: str


def is_upgrade_request(request: Request) -> bool:
    """True if ``request`` asks for a WebSocket (``Upgrade: websocket``), to route it.

    Only the ``Upgrade`` header is looked at, so that a broken WebSocket request is routed to
    :func:`validate_upgrade_request` and gets a precise error instead of a plain 404 page.
    """
    return "websocket" in _lower(request.headers.tokens("Upgrade"))


def validate_upgrade_request(request: Request) -> Upgrade:
    """Check a client's opening handshake (RFC 6455 4.2.1) and return what it asked for.

    Raises :class:`InvalidUpgrade` (405 for another method, else 400) or
    :class:`UnsupportedVersion` (426, with ``Sec-WebSocket-Version: 13``); pass the error to
    :func:`reject` for the response. The numbers below are the items of RFC 6455 4.2.1.
    """
    headers = request.headers
    # 1. An HTTP/1.1 or higher GET request.
    if request.method != "GET":
        raise InvalidUpgrade(
            "a WebSocket handshake must use GET", status=405, headers={"Allow": "GET"}
        )
    if request.version < "HTTP/1.1":  # the parser only lets through "HTTP/1.<digit>"
        raise InvalidUpgrade("a WebSocket handshake needs HTTP/1.1")
    # 2. A Host header field (RFC 9112 3.2: exactly one; a second one is a 400 too).
    hosts = headers.get_all("Host")
    if len(hosts) != 1 or not hosts[0]:
        raise InvalidUpgrade("exactly one non-empty Host header is required")
    # 3. Upgrade contains "websocket", 4. Connection contains "Upgrade", both case-insensitive.
    if "websocket" not in _lower(headers.tokens("Upgrade")):
        raise InvalidUpgrade("the Upgrade header must contain 'websocket'")
    if "upgrade" not in _lower(headers.tokens("Connection")):
        raise InvalidUpgrade("the Connection header must contain 'Upgrade'")
    # 5. Sec-WebSocket-Key: base64 of 16 bytes, and only one (RFC 6455 11.3.1).
    keys = headers.get_all("Sec-WebSocket-Key")
    if len(keys) != 1 or not _is_valid_key(keys[0]):
        raise InvalidUpgrade("Sec-WebSocket-Key must be one base64-encoded 16-byte value")
    # 7. Origin is optional, but a request carrying two is not from a browser we can trust.
    origins = headers.get_all("Origin")
    if len(origins) > 1:
        raise InvalidUpgrade("more than one Origin header")
    # 9. Sec-WebSocket-Version: 13; 4.2.2 says to answer anything else with 426 and our version.
    if headers.get_all("Sec-WebSocket-Version") != [WEBSOCKET_VERSION]:
        raise UnsupportedVersion(f"only WebSocket version {WEBSOCKET_VERSION} is supported")
    # 10. Sec-WebSocket-Protocol: comma-separated tokens, in the client's order of preference.
    subprotocols = tuple(headers.tokens("Sec-WebSocket-Protocol"))
    if not all(is_token(name) for name in subprotocols):
        raise InvalidUpgrade("Sec-WebSocket-Protocol must list tokens")
    key = keys[0]
    return Upgrade(
        key=key,
        accept=accept_key(key),
        origin=origins[0] if origins else None,
        subprotocols=subprotocols,
        extensions=tuple(headers.get_all("Sec-WebSocket-Extensions")),
        path=request.path,
        query=request.query,
        headers=headers,
        host=hosts[0],
    )


def _add_extra(headers: Headers, extra: HeaderItems, owned: frozenset[str]) -> None:
    for name, value in Headers(extra).items():
        if name.lower() in owned:
            raise ValueError(f"the handshake sets {name} itself")
        headers.add(name, value)


_UPGRADE_HEAD = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"


def build_upgrade_response(
    upgrade: Upgrade,
    subprotocol: str | None = None,
    extra_headers: HeaderItems = (),
    extensions: str | None = None,
) -> bytes:
    """The ``101 Switching Protocols`` response accepting ``upgrade`` (RFC 6455 4.2.2).

    ``subprotocol`` must be one the client offered (ValueError otherwise): the client fails the
    connection if the server picks one it did not ask for. ``extensions`` is the accepted
    ``Sec-WebSocket-Extensions`` value (``wslab.foundation.deflate.negotiate(...).header()``).
    """
    if subprotocol is not None and subprotocol not in upgrade.subprotocols:
        raise ValueError(f"the client did not offer subprotocol {subprotocol!r}")
    if not extra_headers and not extensions:
        # The usual answer, written out: its values are known to be safe (a base64 accept, a
        # token the client offered), so they need no field checks. Same bytes as below.
        protocol = f"Sec-WebSocket-Protocol: {subprotocol}\r\n" if subprotocol is not None else ""
        return f"{_UPGRADE_HEAD}Sec-WebSocket-Accept: {upgrade.accept}\r\n{protocol}\r\n".encode(
            "ascii"
        )
    headers = Headers(
        [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", upgrade.accept),
        ]
    )
    if subprotocol is not None:
        headers.add("Sec-WebSocket-Protocol", subprotocol)
    if extensions:
        headers.add("Sec-WebSocket-Extensions", extensions)
    _add_extra(headers, extra_headers, _SERVER_OWNED)
    return serialize_head("HTTP/1.1 101 Switching Protocols", headers)


def reject(error: HandshakeError) -> bytes:
    """The HTTP response refusing a handshake: ``error.status``, its headers, a one-line text."""
    body = (error.message + "\n").encode("utf-8")
    return build_response(
        error.status, error.headers, body, content_type="text/plain; charset=utf-8"
    )


# -- client role ---------------------------------------------------------------------------------


def build_upgrade_request(
    host: str,
    path: str = "/",
    key: str | None = None,
    origin: str | None = None,
    subprotocols: Iterable[str] = (),
    extra_headers: HeaderItems = (),
    extensions: str | None = None,
) -> tuple[bytes, str]:
    """A client's opening handshake (RFC 6455 4.1) and the key it used.

    ``host`` is the authority (``"example.com"`` or ``"example.com:8080"``); ``path`` the
    resource name with any query, already percent-encoded. A fresh random ``key`` is generated
    unless one is given (tests and the RFC example need a fixed one). Keep the key: it is what
    :func:`validate_upgrade_response` checks the answer against.
    """
    if not _ORIGIN_FORM.fullmatch(path):
        raise ValueError("path must start with '/' and be percent-encoded visible ASCII, no '#'")
    key = generate_key() if key is None else key
    if not _is_valid_key(key):
        raise ValueError("key must be the base64 encoding of 16 bytes")
    offered = list(subprotocols)
    if not all(is_token(name) for name in offered):
        raise ValueError("subprotocols must be tokens")
    # The order of the example in RFC 6455 1.2, so that the two can be compared byte for byte.
    headers = Headers(
        [
            ("Host", host),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", key),
        ]
    )
    if origin is not None:
        headers.add("Origin", origin)
    if offered:
        headers.add("Sec-WebSocket-Protocol", ", ".join(offered))
    headers.add("Sec-WebSocket-Version", WEBSOCKET_VERSION)
    if extensions:  # an offer, e.g. wslab.foundation.deflate.client_offer()
        headers.add("Sec-WebSocket-Extensions", extensions)
    _add_extra(headers, extra_headers, _CLIENT_OWNED)
    return serialize_head(f"GET {path} HTTP/1.1", headers), key


def validate_upgrade_response(
    response: Response,
    key: str,
    offered_subprotocols: Iterable[str] = (),
    extensions_offered: bool = False,
) -> str | None:
    """Check the server's answer (RFC 6455 4.1, client side); return the chosen subprotocol.

    Raises :class:`InvalidHandshakeResponse` whose ``status`` is the status the server sent,
    so a caller can tell "refused" (401, 403) from "try again" (503).
    """

    def fail(message: str) -> InvalidHandshakeResponse:
        return InvalidHandshakeResponse(message, status=response.status)

    headers = response.headers
    if response.status != 101:
        raise fail(f"expected 101 Switching Protocols, got {response.status} {response.reason}")
    if _lower(headers.tokens("Upgrade")) != ["websocket"]:
        raise fail("the Upgrade header of the response must be 'websocket'")
    if "upgrade" not in _lower(headers.tokens("Connection")):
        raise fail("the Connection header of the response must contain 'Upgrade'")
    if headers.get_all("Sec-WebSocket-Accept") != [accept_key(key)]:
        raise fail("Sec-WebSocket-Accept does not match our key")
    # With an offer, the caller checks the answer (wslab.foundation.deflate.accept_response).
    if "Sec-WebSocket-Extensions" in headers and not extensions_offered:
        raise fail("the server chose an extension we did not offer")
    chosen = headers.tokens("Sec-WebSocket-Protocol")
    if not chosen:
        return None
    if len(chosen) != 1 or chosen[0] not in set(offered_subprotocols):
        raise fail("the server chose a subprotocol we did not offer")
    return chosen[0]
