"""The frame inspector: header fields, the RFC 5.2 diagram, the engine's verdict, HTML."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wslab.foundation import Frame, Opcode, encode_close_payload, encode_frame
from wslab.foundation.deflate import Deflater, Inflater
from wslab.lab import describe_frame, frame_diagram, frame_html, show_frame, split_frames

# RFC 6455 section 5.7, byte for byte.
HELLO_UNMASKED = bytes([0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])
HELLO_MASKED = bytes([0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])
FRAGMENT_1 = bytes([0x01, 0x03, 0x48, 0x65, 0x6C])
FRAGMENT_2 = bytes([0x80, 0x02, 0x6C, 0x6F])
PING_UNMASKED = bytes([0x89, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])
PONG_MASKED = bytes([0x8A, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])
BINARY_256 = bytes([0x82, 0x7E, 0x01, 0x00]) + bytes(range(256))
BINARY_64K = bytes([0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]) + bytes(65536)

HELLO_MASKED_DIAGRAM = """\
TEXT frame, FIN, masked, 5-byte payload (7-bit length): header 6 + payload 5 = 11 bytes
 0                   1                   2                   3
 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
+-+-+-+-+-------+-+-------------+-------------------------------+
|F|R|R|R| opcode|M| payload len |          masking key          |
|I|S|S|S|  (4)  |A|     (7)     |                               |
|N|V|V|V|       |S|             |                               |
| |1|2|3|       |K|             |                               |
|-|-|-|-|- - - -|-|- - - - - - -|- - - - - - - - - - - - - - - -|
|1|0|0|0|0 0 0 1|1|0 0 0 0 1 0 1|0 0 1 1 0 1 1 1 1 1 1 1 1 0 1 0|
| | | | |  TEXT | |      5      |             37 fa             |
+-+-+-+-+-------+-+-------------+-------------------------------+
|      masking key (cont.)      |          payload data         |
|- - - - - - - - - - - - - - - -|- - - - - - - - - - - - - - - -|
|0 0 1 0 0 0 0 1 0 0 1 1 1 1 0 1|                               |
|             21 3d             |         5 bytes, below        |
+-------------------------------+-------------------------------+
payload data: 5 bytes, masked (RFC 6455 5.3: unmasked[i] = wire[i] XOR key[i % 4])
  on the wire  7f 9f 4d 51 58
  key[i % 4]   37 fa 21 3d 37
  unmasked     48 65 6c 6c 6f
  as text      'Hello'
FrameParser: valid"""


def test_the_rfc_masked_hello_draws_the_known_diagram() -> None:
    assert frame_diagram(HELLO_MASKED) == HELLO_MASKED_DIAGRAM


def test_the_diagram_is_deterministic_and_fits_the_rfc_width() -> None:
    text = frame_diagram(BINARY_64K)
    assert text == frame_diagram(BINARY_64K)
    grid = [line for line in text.splitlines() if line[:1] in "+|"]
    assert grid and all(len(line) == 65 for line in grid)  # 32 bits, 2 columns each, plus 1


@pytest.mark.parametrize(
    ("data", "fields"),
    [
        (
            HELLO_UNMASKED,
            {"fin": True, "opcode": 1, "opcode_name": "TEXT", "masked": False, "mask_key": None},
        ),
        (HELLO_MASKED, {"fin": True, "opcode": 1, "masked": True, "mask_key": "37fa213d"}),
        (FRAGMENT_1, {"fin": False, "opcode": 1, "payload_length": 3, "masked": False}),
        (FRAGMENT_2, {"fin": True, "opcode": 0, "opcode_name": "CONT", "payload_length": 2}),
        (PING_UNMASKED, {"opcode": 9, "opcode_name": "PING", "masked": False}),
        (PONG_MASKED, {"opcode": 10, "opcode_name": "PONG", "mask_key": "37fa213d"}),
    ],
)
def test_rfc_examples_decode_to_their_header_fields(data: bytes, fields: dict[str, object]) -> None:
    described = describe_frame(data)
    assert {key: described[key] for key in fields} == fields
    assert described["valid"] and described["error"] is None and described["close_code"] is None
    assert not (described["rsv1"] or described["rsv2"] or described["rsv3"])


@pytest.mark.parametrize(
    ("data", "payload_length", "header_length", "encoding"),
    [
        (HELLO_UNMASKED, 5, 2, "7-bit"),
        (HELLO_MASKED, 5, 6, "7-bit"),
        (BINARY_256, 256, 4, "16-bit"),
        (BINARY_64K, 65536, 10, "64-bit"),
        (encode_frame(Frame(Opcode.BINARY, bytes(125))), 125, 2, "7-bit"),
        (encode_frame(Frame(Opcode.BINARY, bytes(126)), b"abcd"), 126, 8, "16-bit"),
        (encode_frame(Frame(Opcode.BINARY, bytes(65535))), 65535, 4, "16-bit"),
        (encode_frame(Frame(Opcode.BINARY, bytes(65536)), b"abcd"), 65536, 14, "64-bit"),
    ],
)
def test_all_three_length_encodings(
    data: bytes, payload_length: int, header_length: int, encoding: str
) -> None:
    described = describe_frame(data)
    assert described["payload_length"] == payload_length
    assert described["header_length"] == header_length
    assert described["frame_length"] == len(data)
    assert described["length_encoding"] == encoding


def test_a_16_bit_length_is_drawn_with_its_escape_and_value() -> None:
    text = frame_diagram(BINARY_256)
    assert "126 (16-bit)" in text
    assert "extended payload length" in text and "(16 bits)" in text
    assert "01 00 = 256" in text
    assert "|1|0|0|0|0 0 1 0|0|1 1 1 1 1 1 0|0 0 0 0 0 0 0 1 0 0 0 0 0 0 0 0|" in text


def test_a_64_bit_length_spans_three_rows() -> None:
    text = frame_diagram(BINARY_64K)
    assert "127 (64-bit)" in text and "(64 bits)" in text
    assert text.count("extended payload length (cont.)") == 2
    assert "00 00 = 65536" in text
    # The 1 of 65536 = 0x10000 is bit 63 of the frame: the last bit of the second row.
    assert "|" + "0 " * 31 + "1|" in text


def test_masked_and_unmasked_frames_show_the_payload_differently() -> None:
    masked = frame_diagram(HELLO_MASKED)
    assert "masking key" in masked
    assert "on the wire  7f 9f 4d 51 58" in masked
    assert "unmasked     48 65 6c 6c 6f" in masked
    unmasked = frame_diagram(HELLO_UNMASKED)
    assert "masking key" not in unmasked and "key[i % 4]" not in unmasked
    assert "bytes        48 65 6c 6c 6f" in unmasked
    assert "|1|0|0|0|0 0 0 1|0|0 0 0 0 1 0 1|" in unmasked


def test_long_payloads_are_truncated() -> None:
    text = frame_diagram(BINARY_256)
    assert "00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f ... +240 bytes" in text
    assert " 10 " not in text.split("bytes        ")[1]
    short = frame_diagram(BINARY_256, max_payload_bytes=4)
    assert "00 01 02 03 ... +252 bytes" in short


def test_fragments_and_close_frames_are_described_in_words() -> None:
    assert "TEXT frame, no FIN (more fragments follow)" in frame_diagram(FRAGMENT_1)
    assert "as text      'Hel'" in frame_diagram(FRAGMENT_1)
    close = encode_frame(Frame(Opcode.CLOSE, encode_close_payload(1001, "bye")))
    assert "close code 1001 (GOING_AWAY), reason 'bye'" in frame_diagram(close)


@pytest.mark.parametrize(
    ("data", "require_mask", "message"),
    [
        (bytes([0xC1, 0x00]), None, "reserved bits"),  # RSV1
        (bytes([0x83, 0x00]), None, "reserved opcode"),
        (HELLO_UNMASKED, True, "must be masked"),  # a server's view of an unmasked frame
        (HELLO_MASKED, False, "must not be masked"),  # a client's view of a masked frame
        (bytes([0x89, 0x7E, 0x00, 0x7E]) + bytes(126), None, "control frame"),
        (bytes([0x09, 0x00]), None, "fragmented control frame"),
    ],
)
def test_invalid_frames_are_drawn_with_the_engines_verdict(
    data: bytes, require_mask: bool | None, message: str
) -> None:
    described = describe_frame(data, require_mask=require_mask)
    assert not described["valid"]
    assert described["close_code"] == 1002
    assert message in described["error"]
    text = frame_diagram(data, require_mask=require_mask)
    assert text.endswith(f"rejected -> close 1002 (PROTOCOL_ERROR): {described['error']}")


def test_an_invalid_close_payload_is_reported() -> None:
    bad = bytes([0x88, 0x02, 0x03, 0xED])  # close code 1005 may not be sent on the wire
    described = describe_frame(bad)
    assert described["close_code"] == 1002 and "1005" in described["error"]


def test_reserved_opcodes_are_still_drawn() -> None:
    text = frame_diagram(bytes([0x83, 0x00]))
    assert "reserved 0x3 frame" in text
    assert "|1|0|0|0|0 0 1 1|0|0 0 0 0 0 0 0|" in text


def test_only_whole_single_frames_are_accepted() -> None:
    with pytest.raises(ValueError, match="incomplete"):
        describe_frame(HELLO_MASKED[:4])
    with pytest.raises(ValueError, match="incomplete"):
        frame_diagram(HELLO_MASKED[:-1])
    with pytest.raises(ValueError, match="split_frames"):
        describe_frame(FRAGMENT_1 + FRAGMENT_2)


def test_split_frames_cuts_a_stream_into_frames() -> None:
    stream = FRAGMENT_1 + PING_UNMASKED + FRAGMENT_2 + BINARY_256
    assert split_frames(stream) == [FRAGMENT_1, PING_UNMASKED, FRAGMENT_2, BINARY_256]
    assert split_frames(b"") == []
    with pytest.raises(ValueError, match="incomplete frame at byte 5"):
        split_frames(FRAGMENT_1 + PING_UNMASKED[:3])


@given(
    opcode=st.sampled_from([Opcode.TEXT, Opcode.BINARY, Opcode.CONT]),
    size=st.sampled_from([0, 1, 125, 126, 127, 65535, 65536]),
    fin=st.booleans(),
    key=st.none() | st.binary(min_size=4, max_size=4),
)
def test_describe_agrees_with_the_encoder(
    opcode: Opcode, size: int, fin: bool, key: bytes | None
) -> None:
    data = encode_frame(Frame(opcode, b"x" * size, fin), key)
    described = describe_frame(data)
    assert described["opcode"] == opcode and described["fin"] is fin
    assert described["masked"] is (key is not None)
    assert described["mask_key"] == (key.hex() if key else None)
    assert described["payload_length"] == size
    assert described["header_length"] + size == len(data)
    assert described["valid"]


def test_html_has_one_coloured_cell_per_field_and_escapes_text() -> None:
    page = frame_html(encode_frame(Frame(Opcode.TEXT, b"<b>&"), b"\x00\x00\x00\x00"))
    assert page.count("<td") == 10  # 7 fixed fields, key in two rows, payload
    assert 'colspan="4"' in page and "#caffbf" in page  # the opcode, in its colour
    assert "&#x27;&lt;b&gt;&amp;&#x27;" in page  # the payload text is escaped, never markup
    assert "FrameParser: valid" in page


def test_show_frame_prints_the_text_outside_ipython(capsys: pytest.CaptureFixture[str]) -> None:
    show_frame(HELLO_MASKED)
    assert capsys.readouterr().out == HELLO_MASKED_DIAGRAM + "\n"


# -- permessage-deflate ----------------------------------------------------------------------------

CHAT = b'{"type":"chat:message","room":"lobby","text":"hello hello hello hello hello"}'


def _compressed(deflater: Deflater, message: bytes = CHAT) -> bytes:
    return encode_frame(Frame(Opcode.TEXT, deflater.compress(message), True, rsv1=True))


def test_a_compressed_frame_shows_its_wire_and_inflated_sizes() -> None:
    data = _compressed(Deflater(12))
    info = describe_frame(data, deflate=True)
    assert info["valid"] and info["rsv1"] and info["compressed"]
    assert info["inflated_length"] == len(CHAT) > info["payload_length"]
    diagram = frame_diagram(data, deflate=True, max_payload_bytes=200)
    assert f"compressed: inflates to {len(CHAT)} bytes" in diagram
    assert repr(CHAT.decode()) in diagram  # the text, inflated
    assert "inflated" in frame_html(data, deflate=True)


def test_rsv1_without_the_extension_or_on_a_control_frame_is_1002() -> None:
    data = _compressed(Deflater(12))
    assert describe_frame(data)["close_code"] == 1002  # not negotiated
    ping = encode_frame(Frame(Opcode.PING, b"x", True, rsv1=True))
    info = describe_frame(ping, deflate=True)
    assert not info["valid"] and info["close_code"] == 1002


def test_context_takeover_needs_the_connections_own_inflater() -> None:
    deflater, inflater = Deflater(12), Inflater(12)
    first, second = _compressed(deflater), _compressed(deflater)
    assert describe_frame(first, deflate=inflater)["inflated_length"] == len(CHAT)
    # The second copy refers back into the first: only the connection's window can inflate it.
    assert describe_frame(second, deflate=inflater)["inflated_length"] == len(CHAT)
    assert len(second) < len(first)


def test_a_bomb_is_refused_with_1009_without_being_held() -> None:
    bomb = Deflater(15, level=9).compress(b"\x00" * (8 << 20))
    info = describe_frame(encode_frame(Frame(Opcode.BINARY, bomb, True, rsv1=True)), deflate=True)
    assert not info["valid"] and info["close_code"] == 1009
