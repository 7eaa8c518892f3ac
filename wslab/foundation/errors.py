"""The one exception tree of wslab.

Every error wslab raises derives from :class:`WslabError`, carries an :class:`ErrorCode` (what
the chat protocol reports in ``error.code``) and, where the error ends a connection, the
:class:`CloseCode` to close it with::

    WslabError                      code                 close_code
    ├── ProtocolError               INVALID_INPUT        1002  the peer broke RFC 6455
    │   ├── InvalidUTF8             INVALID_INPUT        1007  text that is not UTF-8
    │   ├── PayloadTooBig           INVALID_INPUT        1009  frame or message over the limit
    │   └── InvalidCloseFrame       INVALID_INPUT        1002  bad close code or payload
    ├── HandshakeError              INVALID_INPUT        -     an upgrade that must be refused
    │   ├── InvalidUpgrade          (status 400/405)           method, Upgrade, Connection, key
    │   ├── UnsupportedVersion      (status 426)               Sec-WebSocket-Version is not 13
    │   ├── ForbiddenOrigin         (status 403)               Origin not in the allow-list
    │   └── InvalidHandshakeResponse                           a client's check of the server
    ├── InvalidStateTransition      INTERNAL_ERROR       -     a bug: the state table forbids it
    ├── ConnectionClosed            INTERNAL_ERROR       -     using a connection that has ended
    │   ├── ConnectionClosedLocally                          we closed it (trio: Closed...)
    │   └── ConnectionBroken                                 the peer or network broke it
    ├── ValidationError             INVALID_INPUT        -     a message field is wrong
    ├── NotFoundError               NOT_FOUND            -
    ├── PermissionDeniedError       PERMISSION_DENIED    4003
    ├── AuthenticationError         PERMISSION_DENIED    4001
    ├── ConflictError               CONFLICT             -
    ├── DependencyError             DEPENDENCY_ERROR     -     store, broker... failed
    ├── OperationTimeout            TIMEOUT              -
    ├── RateLimitedError            RATE_LIMITED         1008 (when sustained)
    ├── DegradedError               DEGRADED             -     served, but a dependency is down
    └── ConfigError                 INVALID_INPUT        -     a configuration value is wrong

Messages must be safe to show to a peer: no stack traces or file paths.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .codes import CloseCode, ErrorCode

__all__ = [
    "AuthenticationError",
    "ConfigError",
    "ConflictError",
    "ConnectionBroken",
    "ConnectionClosed",
    "ConnectionClosedLocally",
    "DegradedError",
    "DependencyError",
    "ForbiddenOrigin",
    "HandshakeError",
    "InvalidCloseFrame",
    "InvalidHandshakeResponse",
    "InvalidStateTransition",
    "InvalidUTF8",
    "InvalidUpgrade",
    "NotFoundError",
    "OperationTimeout",
    "PayloadTooBig",
    "PermissionDeniedError",
    "ProtocolError",
    "RateLimitedError",
    "UnsupportedVersion",
    "ValidationError",
    "WslabError",
]


class WslabError(Exception):
    """Root of every wslab error: a safe message, an ``ErrorCode`` and maybe a ``CloseCode``."""

    code: ErrorCode = ErrorCode.INTERNAL_ERROR
    close_code: CloseCode | None = None
    #: The ``ref`` of the request this error answers (an instance attribute, ``ref=`` in the
    #: constructor): set by the router, and by :func:`wslab.foundation.wire.error_from_envelope`
    #: on the client, which also sets the three below from the hub's error envelope.
    ref: str | int | None = None
    #: On ``DEGRADED``: the id of the message that was relayed but not stored yet.
    message_id: str | None = None
    #: Seconds to wait before retrying, when the hub said so.
    retry_after: float | None = None
    #: The whole ``error`` object of the envelope.
    details: dict[str, Any] | None = None

    def __init__(
        self,
        message: str = "",
        *,
        code: ErrorCode | None = None,
        close_code: CloseCode | None = None,
        ref: str | int | None = None,
    ) -> None:
        super().__init__(message or self.__class__.__name__)
        self.message = message or self.__class__.__name__
        self.ref = ref
        if code is not None:
            self.code = code
        if close_code is not None:
            self.close_code = close_code

    def to_dict(self) -> dict[str, object]:
        """The ``error`` object of the chat protocol's error envelope."""
        return {"code": int(self.code), "name": self.code.name, "message": self.message}


# -- RFC 6455 violations by the peer -------------------------------------------------------------


class ProtocolError(WslabError):
    """The peer violated RFC 6455; the connection must be failed with ``close_code``."""

    code = ErrorCode.INVALID_INPUT
    close_code: CloseCode = CloseCode.PROTOCOL_ERROR


class InvalidUTF8(ProtocolError):
    """A text message or close reason is not valid UTF-8 (close 1007)."""

    close_code = CloseCode.INVALID_PAYLOAD


class PayloadTooBig(ProtocolError):
    """A frame or a reassembled message exceeds the configured limit (close 1009)."""

    close_code = CloseCode.MESSAGE_TOO_BIG


class InvalidCloseFrame(ProtocolError):
    """A close frame with a one-byte payload, a code not allowed on the wire, or the like."""


# -- the opening handshake -----------------------------------------------------------------------


class HandshakeError(WslabError):
    """An upgrade request (or response) that must be refused, with the HTTP status to send."""

    code = ErrorCode.INVALID_INPUT
    status: int = 400

    def __init__(
        self,
        message: str = "",
        *,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status
        self.headers: dict[str, str] = dict(headers or {})


class InvalidUpgrade(HandshakeError):
    """A malformed upgrade request: wrong method, missing Upgrade/Connection, bad key..."""


class UnsupportedVersion(HandshakeError):
    """``Sec-WebSocket-Version`` is not 13: answered with 426 and the version we speak."""

    status = 426

    def __init__(
        self,
        message: str = "",
        *,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, status=status, headers=headers)
        self.headers.setdefault("Sec-WebSocket-Version", "13")


class ForbiddenOrigin(HandshakeError):
    """The ``Origin`` header is not in the allow-list (cross-site WebSocket hijacking)."""

    code = ErrorCode.PERMISSION_DENIED
    status = 403


class InvalidHandshakeResponse(HandshakeError):
    """The server's response to our upgrade request does not complete the handshake."""


# -- state and lifetime --------------------------------------------------------------------------


class InvalidStateTransition(WslabError):
    """The state table forbids this transition: a bug in the caller, never the peer's fault."""


class ConnectionClosed(WslabError):
    """The connection has ended; ``close_code``/``reason`` say how, if a close frame was seen."""

    def __init__(
        self,
        message: str = "",
        *,
        close_code: int | None = None,
        reason: str = "",
    ) -> None:
        super().__init__(message or "connection closed")
        self.close_code = (
            CloseCode(close_code)
            if close_code is not None and close_code in CloseCode._value2member_map_
            else None
        )
        self.received_code: int | None = close_code
        self.reason = reason


class ConnectionClosedLocally(ConnectionClosed):
    """We closed this connection ourselves and then tried to use it (trio: ClosedResourceError)."""


class ConnectionBroken(ConnectionClosed):
    """The peer or the network ended the connection (trio: BrokenResourceError)."""


# -- application errors --------------------------------------------------------------------------


class ValidationError(WslabError):
    """A message is well-formed JSON but a field is missing, of the wrong type or out of range."""

    code = ErrorCode.INVALID_INPUT


class NotFoundError(WslabError):
    """An unknown message type, room, user or route."""

    code = ErrorCode.NOT_FOUND


class PermissionDeniedError(WslabError):
    """The user is authenticated but not allowed to do this."""

    code = ErrorCode.PERMISSION_DENIED
    close_code = CloseCode.FORBIDDEN


class AuthenticationError(WslabError):
    """Missing, invalid or expired credentials (close 4001)."""

    code = ErrorCode.PERMISSION_DENIED
    close_code = CloseCode.AUTHENTICATION_FAILED


class ConflictError(WslabError):
    """The request conflicts with the current state (e.g. a duplicate id)."""

    code = ErrorCode.CONFLICT


class DependencyError(WslabError):
    """A system outside the process (store, broker) failed."""

    code = ErrorCode.DEPENDENCY_ERROR


class OperationTimeout(WslabError):
    """An operation did not complete in time."""

    code = ErrorCode.TIMEOUT


class RateLimitedError(WslabError):
    """Too many messages or bytes; sustained flooding closes the connection with 1008."""

    code = ErrorCode.RATE_LIMITED
    close_code = CloseCode.POLICY_VIOLATION


class DegradedError(WslabError):
    """The hub served the request but a dependency is down (e.g. the message is not stored yet)."""

    code = ErrorCode.DEGRADED


class ConfigError(WslabError):
    """A configuration value is invalid; the message names the key."""

    code = ErrorCode.INVALID_INPUT
