"""A small, self-contained RFC 6455 codec used only by the conformance runner.

The runner is the judge of wslab's own engine, so it must not share a single line of frame
code with it: a bug in ``wslab.foundation`` would otherwise be repeated by the judge and pass
unnoticed. This module is therefore written from the RFC alone, with the stdlib only, and it
deliberately allows what a normal client never does: arbitrary RSV bits and opcodes, control
frames that are too long or fragmented, close payloads of any shape.

- :func:`encode_frame` builds one client frame (always masked, as RFC 6455 section 5.3 requires
  of clients), whatever its header says.
- :class:`FrameReader` parses the server's byte stream into :class:`WireFrame` objects and notes,
  rather than raises, every rule of section 5 the server broke (masking, RSV, opcodes, control
  frame limits, non-minimal lengths), so the judge can report them.
- :func:`build_request` / :func:`check_response` do the opening handshake of section 4.1;
  :func:`header_values` reads one header of the response (the permessage-deflate answer, which
  :mod:`.pmd` judges).
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "CONTROL_OPCODES",
    "DATA_OPCODES",
    "GUID",
    "OP_BINARY",
    "OP_CLOSE",
    "OP_CONT",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "FrameReader",
    "WireFrame",
    "accept_for",
    "build_request",
    "check_response",
    "close_payload",
    "encode_frame",
    "header_values",
    "make_key",
    "mask_bytes",
    "parse_close_payload",
    "valid_wire_close_code",
]

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA
DATA_OPCODES = frozenset({OP_CONT, OP_TEXT, OP_BINARY})
CONTROL_OPCODES = frozenset({OP_CLOSE, OP_PING, OP_PONG})

#: The magic string of RFC 6455 section 1.3, appended to the key before hashing.
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


# -- building client frames ----------------------------------------------------------------------


def mask_bytes(data: bytes, key: bytes) -> bytes:
    """XOR ``data`` with the repeating 4-byte ``key`` (RFC 6455 section 5.3).

    Done as one big-integer XOR rather than a byte loop: a 16 MiB payload is masked in tens of
    milliseconds instead of seconds, which keeps the performance cases about the server.
    """
    n = len(data)
    if n == 0:
        return b""
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(stream, "little")).to_bytes(n, "little")


def encode_frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask_key: bytes | None = None,
) -> bytes:
    """One masked client frame with exactly the header asked for, valid or not.

    ``rsv`` is the three RSV bits as a number 0-7 (4 = RSV1, 2 = RSV2, 1 = RSV3), ``opcode`` any
    value 0-15. Nothing is checked: sending broken frames is the point.
    """
    if not 0 <= opcode <= 0xF or not 0 <= rsv <= 7:
        raise ValueError("opcode must be 0-15 and rsv 0-7")
    key = mask_key if mask_key is not None else os.urandom(4)
    head = bytearray()
    head.append((0x80 if fin else 0) | (rsv << 4) | opcode)
    n = len(payload)
    if n < 126:
        head.append(0x80 | n)
    elif n < 1 << 16:
        head.append(0x80 | 126)
        head += struct.pack("!H", n)
    else:
        head.append(0x80 | 127)
        head += struct.pack("!Q", n)
    head += key
    return bytes(head) + mask_bytes(payload, key)


def close_payload(code: int | None = None, reason: bytes = b"") -> bytes:
    """The payload of a close frame: a 2-byte code (any 0-65535) and raw reason bytes."""
    if code is None:
        return reason
    return struct.pack("!H", code) + reason


def valid_wire_close_code(code: int) -> bool:
    """True if ``code`` may be sent in a close frame (RFC 6455 section 7.4 and the IANA registry).

    1000-1003 and 1007-1014 are defined (1012-1014 were registered after the RFC), 3000-4999 are
    for libraries and applications; 1004-1006, 1015 and everything else may not appear on the wire.
    """
    return code in (1000, 1001, 1002, 1003) or 1007 <= code <= 1014 or 3000 <= code <= 4999


def parse_close_payload(payload: bytes) -> tuple[int | None, bytes, str | None]:
    """Split a close payload into (code, reason bytes, problem or None)."""
    if not payload:
        return None, b"", None
    if len(payload) == 1:
        return None, payload, "close payload of 1 byte"
    (code,) = struct.unpack("!H", payload[:2])
    reason = payload[2:]
    if not valid_wire_close_code(code):
        return code, reason, f"close code {code} is not allowed on the wire"
    try:
        reason.decode("utf-8")
    except UnicodeDecodeError:
        return code, reason, "close reason is not valid UTF-8"
    return code, reason, None


# -- reading server frames -----------------------------------------------------------------------


@dataclass(frozen=True)
class WireFrame:
    """One frame as the server put it on the wire (payload already unmasked)."""

    fin: bool
    rsv: int
    opcode: int
    masked: bool
    payload: bytes


class FrameReader:
    """Incremental parser of the server's frames that records rule violations instead of raising.

    Bounded: a frame whose declared length exceeds ``max_frame`` raises :class:`ValueError` (the
    runner then gives up on the connection); the internal buffer therefore never holds more than
    one such frame plus one read. ``allowed_rsv`` holds the RSV bits a negotiated extension
    gives a meaning to (4 = RSV1 once permessage-deflate is agreed); any other bit is a violation.
    """

    def __init__(self, max_frame: int, allowed_rsv: int = 0) -> None:
        self.max_frame = max_frame
        self.allowed_rsv = allowed_rsv
        self.violations: list[str] = []
        self._buf = bytearray()

    def _violation(self, text: str) -> None:
        # Bounded: a server that breaks the same rule on every frame must not grow this forever.
        if len(self.violations) < 50 and text not in self.violations:
            self.violations.append(text)

    def feed(self, data: bytes) -> list[WireFrame]:
        """Add received bytes; return every frame now complete, in order."""
        self._buf += data
        buf = self._buf
        frames: list[WireFrame] = []
        pos = 0
        while True:
            if len(buf) - pos < 2:
                break
            b0, b1 = buf[pos], buf[pos + 1]
            masked = bool(b1 & 0x80)
            n = b1 & 0x7F
            header = 2
            if n == 126:
                if len(buf) - pos < 4:
                    break
                (n,) = struct.unpack_from("!H", buf, pos + 2)
                header = 4
                if n < 126:
                    self._violation("payload length not minimally encoded (16-bit form for < 126)")
            elif n == 127:
                if len(buf) - pos < 10:
                    break
                (n,) = struct.unpack_from("!Q", buf, pos + 2)
                header = 10
                if n >> 63:
                    raise ValueError("64-bit payload length with the most significant bit set")
                if n < 1 << 16:
                    self._violation(
                        "payload length not minimally encoded (64-bit form for < 65536)"
                    )
            if n > self.max_frame:
                raise ValueError(f"server frame of {n} bytes exceeds the runner's limit")
            key_len = 4 if masked else 0
            end = pos + header + key_len + n
            if len(buf) < end:
                break
            body = bytes(buf[pos + header + key_len : end])
            if masked:
                self._violation(
                    "server frame is masked (RFC 6455 section 5.1: a server must not mask)"
                )
                body = mask_bytes(body, bytes(buf[pos + header : pos + header + 4]))
            frame = WireFrame(
                fin=bool(b0 & 0x80),
                rsv=(b0 >> 4) & 0x7,
                opcode=b0 & 0xF,
                masked=masked,
                payload=body,
            )
            self._check(frame)
            frames.append(frame)
            pos = end
        # Drop consumed bytes once per feed, not once per frame, to stay linear in the input.
        if pos:
            del buf[:pos]
        return frames

    def _check(self, frame: WireFrame) -> None:
        if frame.rsv & ~self.allowed_rsv:
            self._violation(f"server frame has RSV bits {frame.rsv:03b} set without an extension")
        elif frame.rsv and frame.opcode in CONTROL_OPCODES:
            self._violation(
                "server set RSV1 on a control frame (RFC 7692 section 6: never compressed)"
            )
        if frame.opcode not in DATA_OPCODES and frame.opcode not in CONTROL_OPCODES:
            self._violation(f"server frame uses reserved opcode {frame.opcode}")
        if frame.opcode in CONTROL_OPCODES:
            if not frame.fin:
                self._violation("server sent a fragmented control frame")
            if len(frame.payload) > 125:
                self._violation("server sent a control frame with more than 125 payload bytes")


# -- the opening handshake -----------------------------------------------------------------------


def make_key() -> str:
    """A fresh Sec-WebSocket-Key: 16 random bytes, base64-encoded."""
    return base64.b64encode(os.urandom(16)).decode("ascii")


def accept_for(key: str) -> str:
    """The Sec-WebSocket-Accept a server must answer ``key`` with."""
    digest = hashlib.sha1((key + GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def build_request(
    host: str,
    port: int,
    target: str,
    key: str,
    *,
    default_port: int = 80,
    extensions: Sequence[str] = (),
) -> bytes:
    """The HTTP/1.1 upgrade request of RFC 6455 section 4.1, without subprotocols.

    Each item of ``extensions`` becomes one ``Sec-WebSocket-Extensions`` header line, exactly as
    given (malformed offers included: servers must decline them); none by default.
    """
    authority = host if port == default_port else f"{host}:{port}"
    if ":" in host and not host.startswith("["):
        authority = f"[{host}]" if port == default_port else f"[{host}]:{port}"
    lines = [
        f"GET {target} HTTP/1.1",
        f"Host: {authority}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        "User-Agent: wslab-conformance",
    ]
    lines += [f"Sec-WebSocket-Extensions: {value}" for value in extensions]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def check_response(head: bytes, key: str, *, extensions_offered: bool = False) -> str | None:
    """Check the server's response head (up to the blank line); return a problem or None.

    Without ``extensions_offered`` any ``Sec-WebSocket-Extensions`` is a problem; with it the
    answer is left to the caller (:func:`header_values`).
    """
    try:
        text = head.decode("iso-8859-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
        return "response head is not decodable"
    lines = text.split("\r\n")
    status = lines[0].split(" ", 2)
    if len(status) < 2 or not status[0].startswith("HTTP/1.1"):
        return f"not an HTTP/1.1 status line: {lines[0][:80]!r}"
    if status[1] != "101":
        return f"expected status 101, got {lines[0][:80]!r}"
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            return f"malformed header line {line[:80]!r}"
        # Repeated headers are joined with commas, as HTTP allows for list-valued fields.
        lname = name.strip().lower()
        headers[lname] = f"{headers[lname]}, {value.strip()}" if lname in headers else value.strip()
    if headers.get("upgrade", "").lower() != "websocket":
        return f"Upgrade header is {headers.get('upgrade')!r}, expected 'websocket'"
    if "upgrade" not in [t.strip().lower() for t in headers.get("connection", "").split(",")]:
        return f"Connection header is {headers.get('connection')!r}, expected 'Upgrade'"
    if headers.get("sec-websocket-accept") != accept_for(key):
        return "Sec-WebSocket-Accept does not match the key"
    if "sec-websocket-extensions" in headers and not extensions_offered:
        return "server negotiated an extension that was never offered"
    if "sec-websocket-protocol" in headers:
        return "server selected a subprotocol that was never offered"
    return None


def header_values(head: bytes, name: str) -> list[str]:
    """Every value of header ``name`` in a response head, one item per header line."""
    wanted = name.lower()
    values = []
    for line in head.decode("iso-8859-1").split("\r\n")[1:]:
        field, sep, value = line.partition(":")
        if sep and field.strip().lower() == wanted:
            values.append(value.strip())
    return values
