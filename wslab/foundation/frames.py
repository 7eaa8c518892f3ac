"""RFC 6455 frames: the ``Frame`` type, encoding, masking, close payloads and an incremental parser.

A frame on the wire (RFC 6455 section 5.2)::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-------+-+-------------+-------------------------------+
    |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
    |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
    |N|V|V|V|       |S|             |   (if payload len==126/127)   |
    | |1|2|3|       |K|             |                               |
    +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
    |     Extended payload length continued, if payload len == 127  |
    + - - - - - - - - - - - - - - - +-------------------------------+
    |                               | Masking-key, if MASK set to 1 |
    +-------------------------------+-------------------------------+
    | Masking-key (continued)       |          Payload Data         |
    +-------------------------------- - - - - - - - - - - - - - - - +

This module knows single frames only. Putting fragments together and checking UTF-8 is the job
of :mod:`wslab.foundation.assembler`; deciding what a frame means for the connection is the job
of :mod:`wslab.foundation.protocol`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from .codes import CloseCode, Opcode, is_valid_wire_close_code
from .errors import InvalidCloseFrame, InvalidUTF8, PayloadTooBig, ProtocolError

__all__ = [
    "MAX_CLOSE_REASON",
    "MAX_CONTROL_PAYLOAD",
    "CloseCode",
    "Frame",
    "FrameParser",
    "Opcode",
    "apply_mask",
    "apply_mask_python",
    "encode_close_payload",
    "encode_frame",
    "encode_header",
    "parse_close_payload",
    "truncate_close_reason",
]

MAX_CONTROL_PAYLOAD = 125  # RFC 6455 5.5: control frames carry at most 125 bytes.
MAX_CLOSE_REASON = MAX_CONTROL_PAYLOAD - 2  # two bytes go to the status code.


def truncate_close_reason(reason: str) -> str:
    """Cut a close reason to 123 bytes of UTF-8 without splitting a character (both engines)."""
    encoded = reason.encode("utf-8")
    if len(encoded) <= MAX_CLOSE_REASON:
        return reason
    return encoded[:MAX_CLOSE_REASON].decode("utf-8", errors="ignore")

_FIN, _RSV1, _RSV2, _RSV3 = 0x80, 0x40, 0x20, 0x10
_MASK_BIT = 0x80
_OPCODES = {op.value: op for op in Opcode}  # dict lookup is faster than Opcode(value)
_U16 = struct.Struct("!H")
_U64 = struct.Struct("!Q")
#: A parsed frame header: fin, the RSV bits, the opcode, the masking key and the payload length.
_Header = tuple[bool, int, Opcode, bytes | None, int]


@dataclass(slots=True)
class Frame:
    """One WebSocket frame, as sent or as received (payload already unmasked).

    ``masked`` and ``mask_key`` describe how the frame travelled on the wire; they are kept so that
    inspectors and the event log can show them, and are ignored when the frame is re-encoded.
    """

    opcode: Opcode
    payload: bytes = b""
    fin: bool = True
    rsv1: bool = False
    rsv2: bool = False
    rsv3: bool = False
    masked: bool = field(default=False, compare=False)
    mask_key: bytes | None = field(default=None, compare=False, repr=False)

    @property
    def is_control(self) -> bool:
        """True for close, ping and pong frames."""
        return self.opcode >= 0x8

    def __str__(self) -> str:
        flags = "FIN" if self.fin else "..."
        size = len(self.payload)
        return f"{self.opcode.name} {flags} {size} bytes{' masked' if self.masked else ''}"


# -- masking ---------------------------------------------------------------------------------------


def apply_mask_python(data: bytes | bytearray | memoryview, mask: bytes) -> bytes:
    """XOR ``data`` with the four-byte ``mask`` repeated (RFC 6455 section 5.3), in pure Python.

    XOR-ing byte by byte in a Python loop would cost a microsecond per byte; instead the payload
    and the repeated mask are read as two big integers and XOR-ed in one operation in C.
    """
    n = len(data)
    if n == 0:
        return b""
    repeated = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(repeated, "little")).to_bytes(
        n, "little"
    )


_apply_mask_c: Callable[[bytes | bytearray | memoryview, bytes], bytes] | None
_mask_frame_c: Callable[[bytes, bytes | bytearray | memoryview, bytes], bytes] | None
try:  # The optional C extension does the same XOR a machine word at a time.
    from ._speedups import apply_mask as _apply_mask_c
    from ._speedups import mask_frame as _mask_frame_c
except ImportError:  # pragma: no cover - depends on whether the extension was built
    _apply_mask_c = None
    _mask_frame_c = None


def apply_mask(data: bytes | bytearray | memoryview, mask: bytes) -> bytes:
    """Mask or unmask ``data`` with ``mask`` (the operation is its own inverse).

    Uses the C extension when it was built at install time, else :func:`apply_mask_python`.
    """
    if len(mask) != 4:
        raise ValueError("the masking key must be exactly 4 bytes")
    if _apply_mask_c is not None:
        return _apply_mask_c(data, mask)
    return apply_mask_python(data, mask)


def _rotate(mask: bytes, offset: int) -> bytes:
    """The mask as seen from byte ``offset`` of the payload (for unmasking in pieces)."""
    shift = offset & 3
    return mask[shift:] + mask[:shift] if shift else mask


# -- encoding --------------------------------------------------------------------------------------


def encode_header(
    opcode: int,
    length: int,
    *,
    fin: bool = True,
    rsv1: bool = False,
    rsv2: bool = False,
    rsv3: bool = False,
    mask_key: bytes | None = None,
) -> bytes:
    """The header bytes of a frame: flags, opcode, the shortest length encoding, the mask key."""
    first = (_FIN if fin else 0) | (_RSV1 if rsv1 else 0) | (_RSV2 if rsv2 else 0)
    first |= (_RSV3 if rsv3 else 0) | opcode
    mask_bit = _MASK_BIT if mask_key is not None else 0
    # RFC 6455 5.2: "the minimal number of bytes MUST be used to encode the length".
    if length < 126:
        header = bytes((first, mask_bit | length))
    elif length < 65536:
        header = bytes((first, mask_bit | 126)) + _U16.pack(length)
    else:
        header = bytes((first, mask_bit | 127)) + _U64.pack(length)
    return header + mask_key if mask_key is not None else header


def encode_frame(frame: Frame, mask_key: bytes | None = None) -> bytes:
    """Serialize ``frame``; with a ``mask_key`` (clients must send one) the payload is masked."""
    payload = frame.payload
    header = encode_header(
        frame.opcode,
        len(payload),
        fin=frame.fin,
        rsv1=frame.rsv1,
        rsv2=frame.rsv2,
        rsv3=frame.rsv3,
        mask_key=mask_key,
    )
    if mask_key is not None:
        if _mask_frame_c is not None and len(payload) > 4096:
            # Header and masked payload built in one buffer: a big frame is copied once.
            return _mask_frame_c(header, payload, mask_key)
        return header + apply_mask(payload, mask_key)
    return header + payload


# -- close payloads --------------------------------------------------------------------------------


def encode_close_payload(code: int | None = CloseCode.NORMAL_CLOSURE, reason: str = "") -> bytes:
    """The payload of a close frame: a 2-byte code and a UTF-8 reason of at most 123 bytes.

    ``code=None`` gives an empty payload (a close without a status, 1005 on the other side).
    """
    if code is None:
        if reason:
            raise ValueError("a close reason needs a close code")
        return b""
    if not is_valid_wire_close_code(code):
        raise ValueError(f"close code {code} may not be sent on the wire")
    encoded = reason.encode("utf-8")
    if len(encoded) > MAX_CLOSE_REASON:
        raise ValueError(f"close reason is {len(encoded)} bytes; the limit is {MAX_CLOSE_REASON}")
    return _U16.pack(code) + encoded


def parse_close_payload(payload: bytes) -> tuple[int, str]:
    """Decode a received close payload into ``(code, reason)``.

    An empty payload means "no status code" and gives ``(1005, "")``. A one-byte payload, a code
    that is not allowed on the wire or a reason that is not UTF-8 is a protocol error.
    """
    if not payload:
        return CloseCode.NO_STATUS_RCVD, ""
    if len(payload) == 1:
        raise InvalidCloseFrame("close frame payload of 1 byte")
    if len(payload) > MAX_CONTROL_PAYLOAD:
        raise InvalidCloseFrame("close frame payload over 125 bytes")
    (code,) = _U16.unpack_from(payload)
    if not is_valid_wire_close_code(code):
        raise InvalidCloseFrame(f"close code {code} is not allowed on the wire")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidUTF8("close reason is not valid UTF-8") from None
    return code, reason


# -- the incremental parser ------------------------------------------------------------------------


class FrameParser:
    """Turns bytes, in any chunking, into :class:`Frame` objects, checking every frame-level rule.

    ``feed(data)`` returns the frames completed by ``data`` (possibly none). A frame that is still
    arriving is unmasked as its bytes come in and exposed as :attr:`partial_payload`, so that the
    layer above can check UTF-8 before the frame ends. Violations raise :class:`ProtocolError`
    (or :class:`PayloadTooBig`) as soon as the offending header byte is seen, never after
    buffering the payload; after an error the parser refuses further input. If the same ``data``
    completed valid frames before the violation, ``feed`` returns those frames first and keeps
    the error in :attr:`error` (the next ``feed`` raises it): what came before is still valid.

    ``require_mask``: ``True`` on a server (clients MUST mask, RFC 6455 5.1), ``False`` on a client
    (servers MUST NOT mask), ``None`` to accept both (inspectors, tests).
    ``allowed_rsv``: the RSV bits an extension negotiated (none are, so 0: RSV set is an error).
    """

    # One per connection: slots keep thousands of them small.
    __slots__ = (
        "_buffer", "_failed", "_header", "_payload", "allowed_rsv", "max_frame_size",
        "require_mask",
    )

    def __init__(
        self,
        *,
        max_frame_size: int | None = None,
        require_mask: bool | None = None,
        allowed_rsv: int = 0,
    ) -> None:
        self.max_frame_size = max_frame_size
        self.require_mask = require_mask
        self.allowed_rsv = allowed_rsv
        self._buffer = bytearray()
        self._failed: ProtocolError | None = None
        # The frame whose header has been read and whose payload is still arriving.
        self._header: _Header | None = None
        self._payload = bytearray()

    # -- public API --------------------------------------------------------------------------------

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        """Add received bytes; return every frame they complete, in order."""
        if self._failed is not None:
            raise self._failed
        frames: list[Frame] = []
        header = self._header
        if header is not None and not self._buffer:
            # Fast path for large frames: the payload continues; skip the buffer.
            rest = self._continue_payload(header, data, frames)
            if rest is None:
                return frames
            data = rest
        if self._buffer:
            self._buffer += data
            del self._buffer[: self._drain(self._buffer, frames)]
        else:
            # The usual case: nothing is buffered, so parse the bytes where they are instead of
            # copying them into the buffer first; keep only what is left of an unfinished header.
            used = self._drain(data, frames)
            if used < len(data) and self._failed is None:
                self._buffer += memoryview(data)[used:]
        if self._failed is not None:
            self._buffer.clear()
            self._payload.clear()
            if not frames:
                raise self._failed
        return frames

    @property
    def error(self) -> ProtocolError | None:
        """The violation that stopped the parser, or ``None`` while the input is valid."""
        return self._failed

    @property
    def partial_header(self) -> Frame | None:
        """The frame being received (header fields only, empty payload), or ``None``."""
        if self._header is None:
            return None
        fin, rsv, opcode, mask_key, _ = self._header
        return Frame(
            opcode,
            b"",
            fin,
            bool(rsv & 4),
            bool(rsv & 2),
            bool(rsv & 1),
            mask_key is not None,
            mask_key,
        )

    @property
    def partial_payload(self) -> memoryview:
        """The unmasked payload received so far of the frame still arriving (may be empty)."""
        return memoryview(self._payload)

    @property
    def buffered(self) -> int:
        """Bytes held by the parser: unparsed input plus the partial payload."""
        return len(self._buffer) + len(self._payload)

    @property
    def payload_due(self) -> int:
        """Bytes still to come of the frame in progress (0 between frames).

        They are payload, so they hold no frame header: a reader that bounds its work in frames
        may feed them in one go.
        """
        header = self._header
        return 0 if header is None else header[4] - len(self._payload)

    def span_ahead(self, data: bytes | bytearray | memoryview) -> int:
        """How many of ``data``'s bytes belong to one frame: the rest of the frame in progress,
        or, between frames, the whole next frame if ``data`` holds its header (else 0).

        A peek, checking nothing (:meth:`feed` does): those bytes hold one frame header at
        most, so a reader that bounds its work in frames may feed them in one go, and a frame
        that arrives whole in one read is unmasked straight out of it, copied once.
        """
        if self._header is not None:
            return self.payload_due
        if self._buffer or len(data) < 2:
            return 0
        second = data[1]
        length = second & 0x7F
        size = 2
        if length == 126:
            if len(data) < 4:
                return 0
            (length,), size = _U16.unpack_from(data, 2), 4
        elif length == 127:
            if len(data) < 10:
                return 0
            (length,), size = _U64.unpack_from(data, 2), 10
        return size + (4 if second & _MASK_BIT else 0) + length

    # -- internals ---------------------------------------------------------------------------------

    def release(self) -> None:
        """Drop whatever is buffered (the connection is gone); later input is refused."""
        self._buffer = bytearray()
        self._payload = bytearray()
        self._header = None
        if self._failed is None:
            self._failed = ProtocolError("the connection is closed")

    def _fail(self, error: ProtocolError) -> ProtocolError:
        # feed() drops the buffered bytes once _drain() has released its view of them.
        self._failed = error
        return error

    def _drain(self, data: bytes | bytearray | memoryview, frames: list[Frame]) -> int:
        """Parse frames from ``data`` into ``frames``; return how many bytes were used.

        On a violation, stop there: _fail() recorded it, and the frames before it stand.
        """
        pos = 0
        end = len(data)
        # Slices of a memoryview copy nothing: a payload is copied once, by unmasking it. The
        # slices are never kept, so the view is released (and ``data`` resizable) on return.
        with memoryview(data) as view:
            try:
                while True:
                    header = self._header
                    if header is None:
                        parsed = self._parse_header(view, pos)
                        if parsed is None:
                            break
                        pos, header = parsed
                    fin, rsv, opcode, mask_key, length = header
                    have = len(self._payload)
                    need = length - have
                    if end - pos < need:
                        # Keep what we have of the payload, unmasked, and wait for more.
                        if end > pos:
                            self._append_payload(view[pos:], mask_key, have)
                            pos = end
                        break
                    if have:
                        self._append_payload(view[pos : pos + need], mask_key, have)
                        payload = bytes(self._payload)
                        self._payload.clear()
                    elif mask_key:
                        payload = apply_mask(view[pos : pos + need], mask_key)
                    else:
                        payload = bytes(view[pos : pos + need])
                    pos += need
                    frames.append(self._finish(fin, rsv, opcode, mask_key, payload))
            except ProtocolError:
                pass  # _fail() recorded it in self._failed; feed() decides when to raise it
        return pos

    def _continue_payload(
        self, header: _Header, data: bytes | bytearray | memoryview, frames: list[Frame]
    ) -> bytes | bytearray | memoryview | None:
        """Append ``data`` to the frame in progress (``header``, the one in ``self._header``);
        return leftover bytes past its end, if any."""
        fin, rsv, opcode, mask_key, length = header
        have = len(self._payload)
        need = length - have
        if len(data) < need:
            self._append_payload(data, mask_key, have)
            return None
        self._append_payload(data[:need] if len(data) > need else data, mask_key, have)
        payload = bytes(self._payload)
        self._payload.clear()
        frames.append(self._finish(fin, rsv, opcode, mask_key, payload))
        return data[need:]

    def _append_payload(
        self, chunk: bytes | bytearray | memoryview, mask_key: bytes | None, offset: int
    ) -> None:
        if mask_key:
            self._payload += apply_mask(chunk, _rotate(mask_key, offset))
        else:
            self._payload += chunk

    def _finish(
        self, fin: bool, rsv: int, opcode: Opcode, mask_key: bytes | None, payload: bytes
    ) -> Frame:
        self._header = None
        return Frame(
            opcode,
            payload,
            fin,
            bool(rsv & 4),
            bool(rsv & 2),
            bool(rsv & 1),
            mask_key is not None,
            mask_key,
        )

    def _parse_header(self, buf: memoryview, pos: int) -> tuple[int, _Header] | None:
        """Parse a header at ``pos``; set ``self._header``, return the payload's offset and it.

        Every check that can be made from the first two bytes is made before waiting for the
        rest, so a violation is reported as early as possible.
        """
        end = len(buf)
        if end - pos < 2:
            return None
        first, second = buf[pos], buf[pos + 1]
        fin = bool(first & _FIN)
        rsv = (first >> 4) & 0x7
        if rsv & ~self.allowed_rsv:
            raise self._fail(ProtocolError(f"reserved bits set (RSV={rsv:03b}) without extension"))
        opcode = _OPCODES.get(first & 0x0F)
        if opcode is None:
            raise self._fail(ProtocolError(f"reserved opcode {first & 0x0F:#x}"))
        masked = bool(second & _MASK_BIT)
        if self.require_mask is True and not masked:
            raise self._fail(ProtocolError("client frames must be masked"))
        if self.require_mask is False and masked:
            raise self._fail(ProtocolError("server frames must not be masked"))
        length = second & 0x7F
        if opcode >= 0x8:
            if not fin:
                raise self._fail(ProtocolError("fragmented control frame"))
            if length > MAX_CONTROL_PAYLOAD:
                raise self._fail(ProtocolError("control frame payload over 125 bytes"))
        offset = pos + 2
        if length == 126:
            if end - offset < 2:
                return None
            (length,) = _U16.unpack_from(buf, offset)
            offset += 2
        elif length == 127:
            if end - offset < 8:
                return None
            (length,) = _U64.unpack_from(buf, offset)
            if length >> 63:
                raise self._fail(ProtocolError("64-bit payload length has its top bit set"))
            offset += 8
        if self.max_frame_size is not None and length > self.max_frame_size:
            raise self._fail(
                PayloadTooBig(f"frame of {length} bytes over the limit of {self.max_frame_size}")
            )
        mask_key: bytes | None = None
        if masked:
            if end - offset < 4:
                return None
            mask_key = bytes(buf[offset : offset + 4])
            offset += 4
        header = self._header = (fin, rsv, opcode, mask_key, length)
        return offset, header
