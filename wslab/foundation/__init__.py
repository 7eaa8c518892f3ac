"""Layer 1: RFC 6455 with no I/O — frames, handshake, fragmentation, UTF-8, state, errors.

Everything here is pure Python (plus an optional C speedup for masking) and can be driven from a
notebook cell or a test with no event loop: bytes in, events out; calls in, bytes out.
"""

from .assembler import Message, MessageAssembler
from .codes import CloseCode, ErrorCode, Opcode, is_valid_wire_close_code
from .errors import *  # noqa: F403 - the exception tree is part of the public API
from .errors import __all__ as _errors_all
from .frames import (
    Frame,
    FrameParser,
    apply_mask,
    encode_close_payload,
    encode_frame,
    encode_header,
    parse_close_payload,
)
from .protocol import (
    BinaryReceived,
    CloseReceived,
    Event,
    PingReceived,
    PongReceived,
    Protocol,
    ProtocolFailure,
    Role,
    TextReceived,
)
from .state import TRANSITIONS, ConnectionState, StateMachine, Transition

__all__ = [
    "TRANSITIONS",
    "BinaryReceived",
    "CloseCode",
    "CloseReceived",
    "ConnectionState",
    "ErrorCode",
    "Event",
    "Frame",
    "FrameParser",
    "Message",
    "MessageAssembler",
    "Opcode",
    "PingReceived",
    "PongReceived",
    "Protocol",
    "ProtocolFailure",
    "Role",
    "StateMachine",
    "TextReceived",
    "Transition",
    "apply_mask",
    "encode_close_payload",
    "encode_frame",
    "encode_header",
    "is_valid_wire_close_code",
    "parse_close_payload",
    *_errors_all,
]
