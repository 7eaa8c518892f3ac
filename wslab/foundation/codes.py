"""The numbers that travel on the wire: opcodes, close codes and application error codes.

They live in one small module, imported by everything else in the foundation, so that
``frames``, ``errors`` and ``protocol`` can all speak of them without importing each other.

- :class:`Opcode` — RFC 6455 section 5.2, the four-bit frame type.
- :class:`CloseCode` — RFC 6455 section 7.4 plus the hub's application codes (4001, 4003).
- :class:`ErrorCode` — the chat protocol's ``error.code`` (see ``docs/protocol.md``).
"""

from __future__ import annotations

import enum

__all__ = [
    "CONTROL_OPCODES",
    "DATA_OPCODES",
    "CloseCode",
    "ErrorCode",
    "Opcode",
    "is_valid_wire_close_code",
]


class Opcode(enum.IntEnum):
    """The frame types of RFC 6455 section 5.2. Values 3-7 and 11-15 are reserved."""

    CONT = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA

    @property
    def is_control(self) -> bool:
        """Control frames (close, ping, pong) have the high bit of the opcode set."""
        return self.value >= 0x8


DATA_OPCODES = frozenset({Opcode.CONT, Opcode.TEXT, Opcode.BINARY})
CONTROL_OPCODES = frozenset({Opcode.CLOSE, Opcode.PING, Opcode.PONG})


class CloseCode(enum.IntEnum):
    """Status codes of a close frame (RFC 6455 section 7.4.1) and the hub's own 4xxx codes."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    # 1004 is reserved; 1005, 1006 and 1015 must never be sent in a close frame.
    NO_STATUS_RCVD = 1005
    ABNORMAL_CLOSURE = 1006
    INVALID_PAYLOAD = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014
    TLS_HANDSHAKE = 1015
    # Application codes used by the wslab hub (the 4000-4999 private range).
    AUTHENTICATION_FAILED = 4001
    FORBIDDEN = 4003


_WIRE_CODES_1000 = frozenset(
    {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}
)


def is_valid_wire_close_code(code: int) -> bool:
    """True if ``code`` may appear in a close frame on the wire.

    RFC 6455 section 7.4: 1000-1003 and 1007-1014 are defined for use, 1004-1006 and 1015 are
    reserved or meant for APIs only, 3000-3999 are registered with IANA, 4000-4999 are private.
    Everything else (0-999, 1016-2999, 5000+) is a protocol error.
    """
    return code in _WIRE_CODES_1000 or 3000 <= code <= 4999


class ErrorCode(enum.IntEnum):
    """Application error codes carried in the chat protocol's ``error.code`` field."""

    SUCCESS = 0
    INVALID_INPUT = 1
    NOT_FOUND = 2
    PERMISSION_DENIED = 3
    CONFLICT = 4
    DEPENDENCY_ERROR = 5
    INTERNAL_ERROR = 6
    TIMEOUT = 7
    RATE_LIMITED = 8
    DEGRADED = 9
