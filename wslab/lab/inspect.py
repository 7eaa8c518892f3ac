"""A frame inspector: one frame's bytes drawn as the bit-field diagram of RFC 6455 section 5.2.

Three views of the same frame::

    describe_frame(data)   # dict of the header fields: fin, rsv1..3, opcode, masked, mask_key...
    frame_diagram(data)    # plain-text diagram, monospaced and deterministic (asserts, nbval)
    show_frame(data)       # the same as a coloured HTML table in Jupyter; text elsewhere

The header is parsed here, field by field, because the point is to *show* it — including the
frames the engine refuses (an RSV bit, a reserved opcode), which still deserve a picture. Whether
the frame is valid, and what its unmasked payload is, is decided by the foundation's own
:class:`~wslab.foundation.FrameParser`, so the inspector can never disagree with the engine.
"""

from __future__ import annotations

import html
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from wslab.foundation import (
    CloseCode,
    FrameParser,
    Opcode,
    ProtocolError,
    apply_mask,
    parse_close_payload,
)
from wslab.foundation.deflate import Inflater

__all__ = [
    "describe_frame",
    "frame_diagram",
    "frame_html",
    "show_frame",
    "split_frames",
]

_ROW_BITS = 32  # the RFC draws 32 bits (4 bytes) per row
_OPCODE_NAMES = {op.value: op.name for op in Opcode}
DEFAULT_PAYLOAD_BYTES = 16  # payload bytes shown before "... N more"; keeps output small

BytesLike = bytes | bytearray | memoryview


# -- parsing the header for display ----------------------------------------------------------------


@dataclass(frozen=True)
class _Header:
    """The header fields of one frame, exactly as they are on the wire."""

    first: int
    second: int
    fin: bool
    rsv: int  # three bits: RSV1 RSV2 RSV3
    opcode: int
    masked: bool
    len7: int  # the 7-bit "Payload len" field as sent (126 and 127 mean "extended")
    payload_length: int
    header_length: int
    mask_key: bytes | None

    @property
    def length_encoding(self) -> str:
        return {126: "16-bit", 127: "64-bit"}.get(self.len7, "7-bit")

    @property
    def ext_bytes(self) -> int:
        return {126: 2, 127: 8}.get(self.len7, 0)

    @property
    def opcode_name(self) -> str:
        return _OPCODE_NAMES.get(self.opcode, f"reserved {self.opcode:#x}")


def _parse_header(data: BytesLike) -> _Header | None:
    """The header at the start of ``data``, or ``None`` if ``data`` is too short to hold it."""
    if len(data) < 2:
        return None
    first, second = data[0], data[1]
    masked = bool(second & 0x80)
    len7 = second & 0x7F
    offset = 2
    length = len7
    if len7 == 126:
        if len(data) < 4:
            return None
        (length,) = struct.unpack_from("!H", data, 2)
        offset = 4
    elif len7 == 127:
        if len(data) < 10:
            return None
        (length,) = struct.unpack_from("!Q", data, 2)
        offset = 10
    mask_key = None
    if masked:
        if len(data) < offset + 4:
            return None
        mask_key = bytes(data[offset : offset + 4])
        offset += 4
    return _Header(
        first=first,
        second=second,
        fin=bool(first & 0x80),
        rsv=(first >> 4) & 0x7,
        opcode=first & 0x0F,
        masked=masked,
        len7=len7,
        payload_length=length,
        header_length=offset,
        mask_key=mask_key,
    )


def _one_frame(data: BytesLike) -> _Header:
    """Parse the header of ``data`` and check that ``data`` holds exactly one frame."""
    header = _parse_header(data)
    if header is None:
        raise ValueError(f"incomplete frame: {len(data)} bytes do not hold a whole header")
    total = header.header_length + header.payload_length
    if len(data) < total:
        raise ValueError(f"incomplete frame: the header announces {total} bytes, got {len(data)}")
    if len(data) > total:
        raise ValueError(
            f"{len(data) - total} bytes after the end of the frame (several frames? "
            "use split_frames() and inspect them one at a time)"
        )
    return header


def split_frames(data: BytesLike) -> list[bytes]:
    """Cut a byte stream holding whole frames (e.g. several ``send_*()`` results) into frames.

    Only the lengths are read, so invalid frames are cut too. A trailing partial frame raises
    :class:`ValueError`.
    """
    frames: list[bytes] = []
    view = memoryview(bytes(data))
    pos = 0
    while pos < len(view):
        header = _parse_header(view[pos:])
        end = pos + (header.header_length + header.payload_length if header else len(view) + 1)
        if header is None or end > len(view):
            raise ValueError(f"incomplete frame at byte {pos} of {len(view)}")
        frames.append(bytes(view[pos:end]))
        pos = end
    return frames


#: The most bytes the inspector inflates one compressed payload to (it shows, it does not store).
MAX_INFLATED_BYTES = 1 << 20

#: ``deflate=`` of the inspector: an Inflater to use (a connection's, whose window holds its past
#: messages), True for a fresh one (a message without context takeover), or False.
DeflateOption = Inflater | bool


@dataclass(frozen=True)
class _Verdict:
    """What the foundation's parser makes of the frame."""

    payload: bytes  # unmasked
    error: ProtocolError | None
    close: tuple[int, str] | None  # decoded close payload, for close frames
    inflated: bytes | None = None  # a permessage-deflate payload, inflated


def _judge(
    data: BytesLike, header: _Header, require_mask: bool | None, deflate: DeflateOption = False
) -> _Verdict:
    # With permessage-deflate negotiated, RSV1 marks a compressed message (RFC 7692 6).
    parser = FrameParser(require_mask=require_mask, allowed_rsv=0b100 if deflate else 0)
    try:
        frames = parser.feed(data)
    except ProtocolError as error:
        # The engine refused the frame; unmask the payload anyway so it can still be shown.
        start = header.header_length
        raw = bytes(data[start:])
        payload = apply_mask(raw, header.mask_key) if header.mask_key else raw
        return _Verdict(payload, error, None)
    (frame,) = frames
    if frame.rsv1 and frame.is_control:
        violation = ProtocolError(
            "RSV1 set on a control frame: control frames are never compressed"
        )
        return _Verdict(frame.payload, violation, None)
    if frame.rsv1 or (deflate and frame.opcode is Opcode.CONT and isinstance(deflate, Inflater)):
        inflater = deflate if isinstance(deflate, Inflater) else Inflater(15)
        try:
            inflated = inflater.inflate(frame.payload, fin=frame.fin, limit=MAX_INFLATED_BYTES)
        except ProtocolError as error:  # bad deflate data, or past the inspector's limit (1009)
            return _Verdict(frame.payload, error, None)
        return _Verdict(frame.payload, None, None, inflated)
    close = None
    if frame.opcode is Opcode.CLOSE:
        try:
            close = parse_close_payload(frame.payload)
        except ProtocolError as error:
            return _Verdict(frame.payload, error, None)
    return _Verdict(frame.payload, None, close)


def describe_frame(
    data: BytesLike, *, require_mask: bool | None = None, deflate: DeflateOption = False
) -> dict[str, Any]:
    """The header fields of the single frame in ``data``, decoded, plus the engine's verdict.

    Keys: ``fin``, ``rsv1``, ``rsv2``, ``rsv3`` (bool); ``opcode`` (int) and ``opcode_name``;
    ``masked``; ``mask_key`` (hex string or ``None``); ``payload_length``; ``header_length``;
    ``frame_length``; ``length_encoding`` (``"7-bit"``, ``"16-bit"`` or ``"64-bit"``); ``valid``,
    ``error`` (the parser's message or ``None``) and ``close_code`` (what a receiver would close
    with, or ``None``). ``require_mask`` is passed to the parser: ``True`` judges the frame as a
    server would (clients must mask), ``False`` as a client would, ``None`` accepts both.

    ``deflate`` judges the frame as on a connection that negotiated permessage-deflate: RSV1 is
    then allowed on a data frame, and ``compressed`` and ``inflated_length`` say what its
    payload inflates to. ``True`` inflates with a fresh window (right for a first message, or
    without context takeover); pass a connection's own :class:`Inflater` to follow its context.
    Raises :class:`ValueError` unless ``data`` is exactly one whole frame.
    """
    header = _one_frame(data)
    verdict = _judge(data, header, require_mask, deflate)
    return {
        "fin": header.fin,
        "rsv1": bool(header.rsv & 4),
        "rsv2": bool(header.rsv & 2),
        "rsv3": bool(header.rsv & 1),
        "opcode": header.opcode,
        "opcode_name": header.opcode_name,
        "masked": header.masked,
        "mask_key": header.mask_key.hex() if header.mask_key else None,
        "payload_length": header.payload_length,
        "header_length": header.header_length,
        "frame_length": header.header_length + header.payload_length,
        "length_encoding": header.length_encoding,
        "valid": verdict.error is None,
        "error": verdict.error.message if verdict.error else None,
        "close_code": int(verdict.error.close_code) if verdict.error else None,
        "compressed": verdict.inflated is not None,
        "inflated_length": len(verdict.inflated) if verdict.inflated is not None else None,
    }


# -- the fields of the diagram ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Cell:
    """One cell of the diagram: a field, or the part of a field that falls in one row."""

    kind: str  # fin, rsv, opcode, mask, len, extlen, key, payload: picks the colour
    label: tuple[str, ...]  # label lines (1-bit fields spell their name downwards, as the RFC)
    start: int  # first bit, counted from the start of the frame
    width: int  # bits
    value: str
    bits: str | None  # "0101..." or None for the payload cell (its bytes are listed below)


def _bits(data: BytesLike, start: int, width: int) -> str:
    value = int.from_bytes(bytes(data[start // 8 : (start + width + 7) // 8]), "big")
    shift = (8 - (start + width) % 8) % 8
    return format((value >> shift) & ((1 << width) - 1), f"0{width}b")


def _fields(data: BytesLike, header: _Header) -> list[_Cell]:
    """The header fields in wire order, each whole (not yet cut into rows)."""
    b = lambda start, width: _bits(data, start, width)  # noqa: E731 - local shorthand
    len_value = str(header.len7)
    if header.len7 >= 126:
        len_value = f"{header.len7} ({header.length_encoding})"
    opcode_value = header.opcode_name if header.opcode in _OPCODE_NAMES else "reserved"
    cells = [
        _Cell("fin", ("F", "I", "N"), 0, 1, "", b(0, 1)),
        _Cell("rsv", ("R", "S", "V", "1"), 1, 1, "", b(1, 1)),
        _Cell("rsv", ("R", "S", "V", "2"), 2, 1, "", b(2, 1)),
        _Cell("rsv", ("R", "S", "V", "3"), 3, 1, "", b(3, 1)),
        _Cell("opcode", ("opcode", "(4)"), 4, 4, opcode_value, b(4, 4)),
        _Cell("mask", ("M", "A", "S", "K"), 8, 1, "", b(8, 1)),
        _Cell("len", ("payload len", "(7)"), 9, 7, len_value, b(9, 7)),
    ]
    pos = 16
    if header.ext_bytes:
        width = header.ext_bytes * 8
        label = ("extended payload length", f"({width} bits)")
        cells.append(_Cell("extlen", label, pos, width, "", b(pos, width)))
        pos += width
    if header.mask_key is not None:
        cells.append(_Cell("key", ("masking key",), pos, 32, "", b(pos, 32)))
        pos += 32
    if header.payload_length:
        # The payload fills the rest of the header's last row; its bytes are listed below.
        width = _ROW_BITS - pos % _ROW_BITS
        value = f"{header.payload_length} bytes, below"
        cells.append(_Cell("payload", ("payload data",), pos, width, value, None))
    return cells


def _hex(data: BytesLike) -> str:
    return " ".join(f"{byte:02x}" for byte in data)


def _rows(data: BytesLike, header: _Header) -> list[list[_Cell]]:
    """Cut the fields into rows of 32 bits; a field crossing a row boundary becomes two cells."""
    rows: list[list[_Cell]] = []
    for cell in _fields(data, header):
        start, end = cell.start, cell.start + cell.width
        first = True
        while start < end:
            row = start // _ROW_BITS
            stop = min(end, (row + 1) * _ROW_BITS)
            width = stop - start
            label = cell.label if first else (f"{cell.label[0]} (cont.)",)
            value = cell.value
            if cell.kind in ("extlen", "key"):
                # Multi-byte fields: the bytes of this piece in hex; the length's value at its end.
                value = _hex(data[start // 8 : stop // 8])
                if cell.kind == "extlen" and stop == end:
                    value += f" = {header.payload_length}"
            bits = cell.bits[start - cell.start : stop - cell.start] if cell.bits else None
            piece = _Cell(cell.kind, label, start, width, value, bits)
            while len(rows) <= row:
                rows.append([])
            rows[row].append(piece)
            start, first = stop, False
    return rows


# -- plain text ------------------------------------------------------------------------------------


def _col(bit: int) -> int:
    """Column of the boundary before ``bit`` (within a row): the RFC gives each bit 2 columns."""
    return 2 * (bit % _ROW_BITS)


def _border(*rows: list[_Cell]) -> str:
    """A ``+-+---+`` line with a ``+`` at every cell boundary of the rows it separates."""
    cells = [cell for row in rows for cell in row]
    width = max(_col(c.start) + 2 * c.width for c in cells)
    line = ["-"] * (width + 1)
    for c in cells:
        line[_col(c.start)] = "+"
        line[_col(c.start) + 2 * c.width] = "+"
    return "".join(line)


def _center(text: str, width: int) -> str:
    return text[:width].center(width)


def _text_rows(rows: list[list[_Cell]]) -> list[str]:
    tens = " ".join(str(i // 10) if i % 10 == 0 else " " for i in range(_ROW_BITS))
    lines = [(" " + tens).rstrip(), " " + " ".join(str(i % 10) for i in range(_ROW_BITS))]
    previous: list[_Cell] = []
    for row in rows:
        lines.append(_border(previous, row) if previous else _border(row))
        n_labels = max(len(c.label) for c in row)
        for i in range(n_labels):
            text = "|" + "|".join(
                _center(c.label[i] if i < len(c.label) else "", 2 * c.width - 1) for c in row
            )
            lines.append(text + "|")
        # A dashed rule (the RFC's own "- - -") between the names and the bits on the wire.
        lines.append("|" + "|".join(" ".join("-" * c.width) for c in row) + "|")
        lines.append(
            "|"
            + "|".join(" ".join(c.bits) if c.bits else " " * (2 * c.width - 1) for c in row)
            + "|"
        )
        if any(c.value for c in row):
            lines.append("|" + "|".join(_center(c.value, 2 * c.width - 1) for c in row) + "|")
        previous = row
    if previous:
        lines.append(_border(previous))
    return lines


def _payload_lines(
    header: _Header, payload: bytes, limit: int, inflated: bytes | None = None
) -> list[str]:
    """The payload as bytes on the wire, mask, unmasked and (for text) as text, truncated."""
    n = header.payload_length
    if n == 0:
        return ["payload data: none"]

    shown = payload[:limit]
    more = f" ... +{n - len(shown)} bytes" if n > len(shown) else ""
    lines = []
    if header.mask_key is not None:
        key = header.mask_key
        lines.append(
            f"payload data: {n} bytes, masked (RFC 6455 5.3: unmasked[i] = wire[i] XOR key[i % 4])"
        )
        wire = apply_mask(shown, key)
        lines.append(f"  on the wire  {_hex(wire)}{more}")
        lines.append(f"  key[i % 4]   {_hex((key * (len(shown) // 4 + 1))[: len(shown)])}")
        lines.append(f"  unmasked     {_hex(shown)}{more}")
    else:
        lines.append(f"payload data: {n} bytes, not masked")
        lines.append(f"  bytes        {_hex(shown)}{more}")
    if inflated is not None:  # the wire bytes are deflate data: the text is in the inflated
        lines.append(
            f"  inflated     {len(inflated)} bytes (permessage-deflate, 00 00 ff ff restored)"
        )
        lines += _inflated_lines(header, inflated, limit)
    elif header.opcode in (Opcode.TEXT, Opcode.CONT) or (
        header.opcode in (Opcode.PING, Opcode.PONG) and shown.isascii()
    ):
        lines.append(f"  as text      {shown.decode('utf-8', errors='replace')!r}{more}")
    return lines


def _inflated_lines(header: _Header, inflated: bytes, limit: int) -> list[str]:
    shown = inflated[:limit]
    more = f" ... +{len(inflated) - len(shown)} bytes" if len(inflated) > len(shown) else ""
    lines = [f"  bytes        {_hex(shown)}{more}"]
    if header.opcode in (Opcode.TEXT, Opcode.CONT):
        lines.append(f"  as text      {shown.decode('utf-8', errors='replace')!r}{more}")
    return lines


def _summary(header: _Header, verdict: _Verdict | None = None) -> str:
    flags = "FIN" if header.fin else "no FIN (more fragments follow)"
    mask = "masked" if header.masked else "not masked"
    text = (
        f"{header.opcode_name} frame, {flags}, {mask}, {header.payload_length}-byte payload "
        f"({header.length_encoding} length): header {header.header_length} + payload "
        f"{header.payload_length} = {header.header_length + header.payload_length} bytes"
    )
    if verdict is not None and verdict.inflated is not None:
        n = len(verdict.inflated)
        ratio = f", {header.payload_length / n:.0%} of it" if n else ""
        text += f"; compressed: inflates to {n} bytes{ratio}"
    return text


def _verdict_line(verdict: _Verdict) -> str:
    if verdict.error is not None:
        code = CloseCode(verdict.error.close_code)
        return f"FrameParser: rejected -> close {int(code)} ({code.name}): {verdict.error.message}"
    if verdict.close is not None:
        number, reason = verdict.close
        name = CloseCode(number).name if number in CloseCode._value2member_map_ else "unregistered"
        return f"FrameParser: valid; close code {number} ({name}), reason {reason!r}"
    return "FrameParser: valid"


def frame_diagram(
    data: BytesLike,
    *,
    max_payload_bytes: int = DEFAULT_PAYLOAD_BYTES,
    require_mask: bool | None = None,
    deflate: DeflateOption = False,
) -> str:
    """The frame in ``data`` as a plain-text RFC 6455 5.2 diagram, its payload and its verdict.

    Deterministic for given bytes, so it can be asserted on and stored in a notebook. At most
    ``max_payload_bytes`` payload bytes are listed. ``require_mask`` as in :func:`describe_frame`.
    Raises :class:`ValueError` unless ``data`` is exactly one whole frame.
    """
    header = _one_frame(data)
    verdict = _judge(data, header, require_mask, deflate)
    lines = [_summary(header, verdict), *_text_rows(_rows(data, header))]
    lines += _payload_lines(header, verdict.payload, max_payload_bytes, verdict.inflated)
    lines.append(_verdict_line(verdict))
    return "\n".join(lines)


# -- HTML ------------------------------------------------------------------------------------------

_COLOURS = {
    "fin": "#ffd6a5",
    "rsv": "#fdffb6",
    "opcode": "#caffbf",
    "mask": "#9bf6ff",
    "len": "#a0c4ff",
    "extlen": "#bdb2ff",
    "key": "#ffc6ff",
    "payload": "#e9ecef",
}


def _html_cells(row: list[_Cell]) -> Iterator[str]:
    for c in row:
        label = "<br>".join(html.escape(part) for part in c.label)
        bits = f"<code>{c.bits}</code>" if c.bits else ""
        value = f"<b>{html.escape(c.value)}</b>" if c.value else ""
        body = "<br>".join(part for part in (label, bits, value) if part)
        yield (
            f'<td colspan="{c.width}" style="background:{_COLOURS[c.kind]};text-align:center;'
            "border:1px solid #888;padding:2px 0;font-size:11px;line-height:1.25;"
            f'overflow:hidden;word-break:break-all">{body}</td>'
        )


_BIT_PX = 24  # every bit column the same width, so a field's width shows its size in bits


def frame_html(
    data: BytesLike,
    *,
    max_payload_bytes: int = DEFAULT_PAYLOAD_BYTES,
    require_mask: bool | None = None,
    deflate: DeflateOption = False,
) -> str:
    """The HTML version of :func:`frame_diagram`: a 32-column table, one colour per field."""
    header = _one_frame(data)
    verdict = _judge(data, header, require_mask, deflate)
    th = '<th style="font-weight:normal;font-size:10px;padding:0">'
    tens = "".join(f"{th}{i // 10 if i % 10 == 0 else ''}</th>" for i in range(_ROW_BITS))
    units = "".join(f"{th}{i % 10}</th>" for i in range(_ROW_BITS))
    columns = f'<col style="width:{_BIT_PX}px">' * _ROW_BITS
    rows = "".join(f"<tr>{''.join(_html_cells(row))}</tr>" for row in _rows(data, header))
    payload = html.escape(
        "\n".join(_payload_lines(header, verdict.payload, max_payload_bytes, verdict.inflated))
    )
    colour = "#2b8a3e" if verdict.error is None else "#c92a2a"
    return (
        '<div class="wslab-frame">'
        f"<p><b>{html.escape(_summary(header, verdict))}</b></p>"
        '<table style="border-collapse:collapse;table-layout:fixed;font-family:monospace;'
        f'width:{_BIT_PX * _ROW_BITS}px"><colgroup>{columns}</colgroup>'
        f"<tr>{tens}</tr><tr>{units}</tr>{rows}</table>"
        f'<pre style="margin:4px 0">{payload}</pre>'
        f'<p style="color:{colour}">{html.escape(_verdict_line(verdict))}</p>'
        "</div>"
    )


def show_frame(
    data: BytesLike,
    *,
    max_payload_bytes: int = DEFAULT_PAYLOAD_BYTES,
    require_mask: bool | None = None,
    deflate: DeflateOption = False,
) -> None:
    """Display the frame as a coloured HTML table in Jupyter; print the text diagram elsewhere."""
    try:
        from IPython import get_ipython
        from IPython.display import HTML, display
    except ImportError:  # pragma: no cover - IPython is a dependency of the lab extra
        get_ipython = None
    shell = get_ipython() if get_ipython is not None else None
    if shell is None:
        print(
            frame_diagram(
                data,
                max_payload_bytes=max_payload_bytes,
                require_mask=require_mask,
                deflate=deflate,
            )
        )
        return
    html_text = frame_html(
        data, max_payload_bytes=max_payload_bytes, require_mask=require_mask, deflate=deflate
    )
    display(HTML(html_text))
