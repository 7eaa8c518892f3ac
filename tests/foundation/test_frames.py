"""Tests of wslab.foundation.frames: encoding, masking, close payloads and the incremental parser.

The byte vectors of RFC 6455 section 5.7 are checked exactly, in both directions; every
frame-level MUST of section 5 is checked on the parser, including *when* it reports a violation
(from the header, before any payload); property tests check that any frame survives
encode -> parse under any chunking of the byte stream.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wslab.foundation import frames
from wslab.foundation.codes import CloseCode, Opcode
from wslab.foundation.errors import (
    InvalidCloseFrame,
    InvalidUTF8,
    PayloadTooBig,
    ProtocolError,
)
from wslab.foundation.frames import (
    MAX_CLOSE_REASON,
    MAX_CONTROL_PAYLOAD,
    Frame,
    FrameParser,
    apply_mask,
    apply_mask_python,
    encode_close_payload,
    encode_frame,
    encode_header,
    parse_close_payload,
)

RFC_MASK = bytes.fromhex("37fa213d")
HELLO = b"Hello"


def parse_all(data: bytes, *, require_mask: bool | None = None, **kwargs: object) -> list[Frame]:
    """Parse ``data`` in one go and check that nothing is left over."""
    parser = FrameParser(require_mask=require_mask, **kwargs)  # type: ignore[arg-type]
    result = parser.feed(data)
    assert parser.buffered == 0
    assert parser.partial_header is None
    return result


def parse_in_chunks(data: bytes, cuts: list[int], **kwargs: object) -> list[Frame]:
    """Feed ``data`` to one parser, cut at the positions ``cuts`` (any order, duplicates ok)."""
    parser = FrameParser(**kwargs)  # type: ignore[arg-type]
    result: list[Frame] = []
    start = 0
    for cut in [*sorted(c % (len(data) + 1) for c in cuts), len(data)]:
        result.extend(parser.feed(data[start:cut]))
        start = cut
    assert parser.buffered == 0
    return result


def fail_with(data: bytes, error: type[ProtocolError], close_code: int, **kwargs: object) -> str:
    """Feed ``data``; assert it raises ``error`` carrying ``close_code``; return the message."""
    parser = FrameParser(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(error) as info:
        parser.feed(data)
    assert type(info.value) is error
    assert info.value.close_code == close_code
    assert parser.error is info.value
    # After a violation the parser refuses further input, with the same error.
    with pytest.raises(error) as again:
        parser.feed(b"\x81\x00")
    assert again.value is info.value
    return info.value.message


# -- RFC 6455 section 5.7: the examples, byte for byte -------------------------------------------


RFC_VECTORS = [
    pytest.param(
        bytes.fromhex("810548656c6c6f"), [Frame(Opcode.TEXT, HELLO)], None, id="unmasked-text"
    ),
    pytest.param(
        bytes.fromhex("818537fa213d7f9f4d5158"),
        [Frame(Opcode.TEXT, HELLO)],
        RFC_MASK,
        id="masked-text",
    ),
    pytest.param(
        bytes.fromhex("010348656c") + bytes.fromhex("80026c6f"),
        [Frame(Opcode.TEXT, b"Hel", fin=False), Frame(Opcode.CONT, b"lo")],
        None,
        id="fragmented-text",
    ),
    pytest.param(
        bytes.fromhex("890548656c6c6f"), [Frame(Opcode.PING, HELLO)], None, id="unmasked-ping"
    ),
    pytest.param(
        bytes.fromhex("8a8537fa213d7f9f4d5158"),
        [Frame(Opcode.PONG, HELLO)],
        RFC_MASK,
        id="masked-pong",
    ),
    pytest.param(
        bytes.fromhex("827e0100") + bytes(range(256)),
        [Frame(Opcode.BINARY, bytes(range(256)))],
        None,
        id="binary-256",
    ),
    pytest.param(
        bytes.fromhex("827f0000000000010000") + bytes(65536),
        [Frame(Opcode.BINARY, bytes(65536))],
        None,
        id="binary-64KiB",
    ),
]


@pytest.mark.parametrize(("wire", "expected", "mask"), RFC_VECTORS)
def test_rfc_5_7_examples_decode(wire: bytes, expected: list[Frame], mask: bytes | None) -> None:
    parsed = parse_all(wire, require_mask=mask is not None)
    assert parsed == expected
    for frame in parsed:
        assert frame.masked is (mask is not None)
        assert frame.mask_key == mask


@pytest.mark.parametrize(("wire", "expected", "mask"), RFC_VECTORS)
def test_rfc_5_7_examples_encode(wire: bytes, expected: list[Frame], mask: bytes | None) -> None:
    assert b"".join(encode_frame(frame, mask) for frame in expected) == wire


def test_rfc_5_7_masked_hello_exact_bytes() -> None:
    assert encode_frame(Frame(Opcode.TEXT, HELLO), RFC_MASK) == bytes(
        [0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58]
    )


# -- lengths: 7, 16 and 64 bits, always the minimal form ------------------------------------------


@pytest.mark.parametrize(
    ("length", "header_size", "marker"),
    [(0, 2, 0), (1, 2, 1), (125, 2, 125), (126, 4, 126), (65535, 4, 126), (65536, 10, 127)],
)
@pytest.mark.parametrize("mask", [None, b"\x00\xff\x10\x01"])
def test_length_uses_minimal_encoding_and_parses_back(
    length: int, header_size: int, marker: int, mask: bytes | None
) -> None:
    payload = bytes(i % 251 for i in range(length))
    wire = encode_frame(Frame(Opcode.BINARY, payload), mask)
    extra = 4 if mask else 0
    assert len(wire) == header_size + extra + length
    assert wire[1] & 0x7F == marker
    assert bool(wire[1] & 0x80) is (mask is not None)
    if marker == 126:
        assert struct.unpack("!H", wire[2:4])[0] == length
    elif marker == 127:
        assert struct.unpack("!Q", wire[2:10])[0] == length
    (frame,) = parse_all(wire)
    assert frame.payload == payload
    assert frame.mask_key == mask


def test_encode_header_sets_flags_and_opcode() -> None:
    header = encode_header(Opcode.CONT, 3, fin=False, rsv1=True, rsv2=False, rsv3=True)
    assert header == bytes([0x50, 0x03])
    assert encode_header(Opcode.CLOSE, 0) == b"\x88\x00"
    assert encode_header(Opcode.PING, 1, mask_key=b"abcd") == b"\x89\x81abcd"


def test_frame_reports_control_and_prints_readably() -> None:
    assert Frame(Opcode.PING).is_control and Frame(Opcode.CLOSE).is_control
    assert not Frame(Opcode.TEXT).is_control and not Frame(Opcode.CONT).is_control
    assert str(Frame(Opcode.TEXT, b"abc", fin=False, masked=True)) == "TEXT ... 3 bytes masked"
    assert str(Frame(Opcode.BINARY, b"")) == "BINARY FIN 0 bytes"
    # How a frame travelled is not part of its identity.
    assert Frame(Opcode.TEXT, b"x", masked=True, mask_key=b"abcd") == Frame(Opcode.TEXT, b"x")


# -- masking ---------------------------------------------------------------------------------------


def test_mask_of_rfc_example() -> None:
    assert apply_mask(HELLO, RFC_MASK) == bytes.fromhex("7f9f4d5158")
    assert apply_mask_python(HELLO, RFC_MASK) == bytes.fromhex("7f9f4d5158")


def test_c_extension_is_used_when_built() -> None:
    """The C extension is built in this environment; the public function must go through it."""
    if frames._apply_mask_c is None:
        pytest.skip("wslab.foundation._speedups is not built here")
    from wslab.foundation._speedups import apply_mask as c_apply_mask

    assert frames._apply_mask_c is c_apply_mask
    assert c_apply_mask(bytes(9), b"\x01\x02\x03\x04") == b"\x01\x02\x03\x04" * 2 + b"\x01"
    with pytest.raises(ValueError):
        c_apply_mask(b"abc", b"abc")


def test_apply_mask_refuses_a_key_of_the_wrong_length() -> None:
    for key in (b"", b"abc", b"abcde"):
        with pytest.raises(ValueError):
            apply_mask(b"data", key)


@settings(max_examples=200, deadline=None)
@given(
    data=st.binary(max_size=300),
    mask=st.binary(min_size=4, max_size=4),
    offset=st.integers(0, 40),
    kind=st.sampled_from([bytes, bytearray, memoryview]),
)
def test_apply_mask_matches_the_python_reference(
    data: bytes, mask: bytes, offset: int, kind: type
) -> None:
    # Offsets into a larger buffer exercise the C loop's unaligned words and its tail.
    view = (b"\xaa" * offset + data)[offset:]
    expected = bytes(b ^ mask[i % 4] for i, b in enumerate(view))
    assert apply_mask_python(kind(view), mask) == expected
    assert apply_mask(kind(view), mask) == expected
    assert apply_mask(apply_mask(view, mask), mask) == view  # an involution


@pytest.mark.parametrize("length", [0, 1, 3, 4, 7, 8, 9, 15, 16, 17, 1000, 65536 + 3])
def test_apply_mask_lengths_around_word_sizes(length: int) -> None:
    data = bytes(i * 7 % 256 for i in range(length))
    key = b"\x9a\x01\xfe\x42"
    assert apply_mask(data, key) == apply_mask_python(data, key)
    assert apply_mask_python(apply_mask_python(data, key), key) == data


def test_parser_unmasks_a_frame_split_at_every_offset() -> None:
    payload = bytes(range(40)) * 5  # 200 bytes: a 16-bit length, several mask periods
    key = b"\x12\x34\x56\x78"
    wire = encode_frame(Frame(Opcode.BINARY, payload), key)
    for cut in range(len(wire) + 1):
        parser = FrameParser(require_mask=True)
        frames_ = parser.feed(wire[:cut]) + parser.feed(wire[cut:])
        assert frames_ == [Frame(Opcode.BINARY, payload)], cut
    for size in (1, 2, 3, 5):  # and in runs of small pieces
        pieces = [wire[i : i + size] for i in range(0, len(wire), size)]
        parser = FrameParser(require_mask=True)
        got = [f for piece in pieces for f in parser.feed(piece)]
        assert got == [Frame(Opcode.BINARY, payload)]


def test_parser_exposes_the_partial_frame_unmasked() -> None:
    key = b"\xff\x00\xff\x00"
    wire = encode_frame(Frame(Opcode.TEXT, b"abcdefgh", fin=False), key)
    parser = FrameParser(require_mask=True)
    assert parser.partial_header is None
    assert parser.feed(wire[:5]) == []  # header incomplete: the mask key is still missing
    assert parser.partial_header is None
    assert parser.feed(wire[5:9]) == []
    header = parser.partial_header
    assert header is not None
    assert (header.opcode, header.fin, header.masked, header.mask_key) == (
        Opcode.TEXT,
        False,
        True,
        key,
    )
    assert header.payload == b""
    assert bytes(parser.partial_payload) == b"abc"
    assert parser.buffered == 3
    assert parser.feed(wire[9:]) == [Frame(Opcode.TEXT, b"abcdefgh", fin=False)]
    assert parser.partial_header is None
    assert bytes(parser.partial_payload) == b""


# -- parser: every frame-level MUST, reported from the header -------------------------------------


@pytest.mark.parametrize("bits", [0x40, 0x20, 0x10, 0x70])
def test_rsv_bits_without_extension_fail_with_1002(bits: int) -> None:
    fail_with(bytes([0x81 | bits, 0x00]), ProtocolError, 1002)


def test_rsv_bits_allowed_when_an_extension_negotiated_them() -> None:
    parser = FrameParser(allowed_rsv=0b100)
    (frame,) = parser.feed(bytes([0xC1, 0x01, 0x41]))
    assert frame.rsv1 and not frame.rsv2 and not frame.rsv3
    with pytest.raises(ProtocolError):
        parser.feed(bytes([0xA1, 0x00]))  # RSV2 was not negotiated


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])
def test_reserved_opcodes_fail_with_1002(opcode: int) -> None:
    # The first two bytes are enough; nothing else has to arrive.
    fail_with(bytes([0x80 | opcode, 0x05]), ProtocolError, 1002)


@pytest.mark.parametrize("opcode", [Opcode.CLOSE, Opcode.PING, Opcode.PONG])
def test_fragmented_control_frame_fails_with_1002(opcode: Opcode) -> None:
    fail_with(bytes([opcode, 0x00]), ProtocolError, 1002)


@pytest.mark.parametrize("opcode", [Opcode.CLOSE, Opcode.PING, Opcode.PONG])
@pytest.mark.parametrize("marker", [126, 127])
def test_control_frame_over_125_bytes_fails_from_its_first_two_bytes(
    opcode: Opcode, marker: int
) -> None:
    fail_with(bytes([0x80 | opcode, marker]), ProtocolError, 1002)


@pytest.mark.parametrize("opcode", [Opcode.CLOSE, Opcode.PING, Opcode.PONG])
def test_control_frame_of_exactly_125_bytes_is_accepted(opcode: Opcode) -> None:
    payload = b"\x03\xe8" + b"x" * 123 if opcode is Opcode.CLOSE else b"p" * 125
    assert len(payload) == MAX_CONTROL_PAYLOAD
    assert parse_all(encode_frame(Frame(opcode, payload))) == [Frame(opcode, payload)]


def test_64_bit_length_with_top_bit_set_fails_with_1002() -> None:
    wire = bytes([0x82, 127]) + struct.pack("!Q", 1 << 63)
    fail_with(wire, ProtocolError, 1002)
    fail_with(bytes([0x82, 127]) + b"\xff" * 8, ProtocolError, 1002)


def test_frame_over_max_frame_size_fails_with_1009_as_soon_as_its_header_arrives() -> None:
    # 16-bit and 64-bit lengths: only the header is fed, the payload never comes.
    fail_with(bytes([0x82, 126, 0x01, 0x00]), PayloadTooBig, 1009, max_frame_size=255)
    fail_with(bytes([0x82, 127]) + struct.pack("!Q", 1 << 40), PayloadTooBig, 1009,
              max_frame_size=1 << 20)  # fmt: skip
    # Masked: refused before the masking key is even there.
    fail_with(bytes([0x82, 0x80 | 126, 0x01, 0x00]), PayloadTooBig, 1009, max_frame_size=255)
    # A 7-bit length over a tiny limit.
    fail_with(bytes([0x81, 11]), PayloadTooBig, 1009, max_frame_size=10)


def test_frame_of_exactly_max_frame_size_is_accepted() -> None:
    wire = encode_frame(Frame(Opcode.BINARY, bytes(256)))
    assert parse_all(wire, max_frame_size=256) == [Frame(Opcode.BINARY, bytes(256))]


def test_server_side_parser_requires_masked_frames() -> None:
    fail_with(b"\x81\x05Hello", ProtocolError, 1002, require_mask=True)
    masked = encode_frame(Frame(Opcode.TEXT, HELLO), RFC_MASK)
    assert parse_all(masked, require_mask=True) == [Frame(Opcode.TEXT, HELLO)]


def test_client_side_parser_refuses_masked_frames() -> None:
    masked = encode_frame(Frame(Opcode.TEXT, HELLO), RFC_MASK)
    fail_with(masked[:2], ProtocolError, 1002, require_mask=False)
    assert parse_all(b"\x81\x05Hello", require_mask=False) == [Frame(Opcode.TEXT, HELLO)]


def test_parser_without_a_role_accepts_both() -> None:
    masked = encode_frame(Frame(Opcode.TEXT, HELLO), RFC_MASK)
    assert parse_all(masked + b"\x81\x05Hello") == [Frame(Opcode.TEXT, HELLO)] * 2


def test_frames_before_a_violation_are_returned_and_the_error_raised_next() -> None:
    parser = FrameParser()
    good = encode_frame(Frame(Opcode.TEXT, b"ok"))
    assert parser.feed(good + good + b"\x83\x00" + good) == [Frame(Opcode.TEXT, b"ok")] * 2
    assert isinstance(parser.error, ProtocolError)
    assert parser.buffered == 0  # nothing after the violation is kept
    with pytest.raises(ProtocolError) as info:
        parser.feed(good)
    assert info.value is parser.error


def test_many_frames_in_one_chunk_and_one_frame_in_many() -> None:
    frames_ = [Frame(Opcode.TEXT, b"a" * n, fin=n % 2 == 0) for n in (0, 1, 125, 126, 300)]
    wire = b"".join(encode_frame(f) for f in frames_)
    assert parse_all(wire) == frames_
    parser = FrameParser()
    assert [f for b in wire for f in parser.feed(bytes([b]))] == frames_


# -- close payloads (RFC 6455 5.5.1, 7.4) ---------------------------------------------------------

INVALID_CLOSE_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535]
VALID_CLOSE_CODES = [1000, 1001, 1002, 1003, *range(1007, 1015), 3000, 3999, 4000, 4999]


@pytest.mark.parametrize("code", VALID_CLOSE_CODES)
def test_valid_close_codes_round_trip(code: int) -> None:
    payload = encode_close_payload(code, "bye ✓")
    assert payload[:2] == struct.pack("!H", code)
    assert parse_close_payload(payload) == (code, "bye ✓")


@pytest.mark.parametrize("code", INVALID_CLOSE_CODES)
def test_invalid_close_codes_are_refused_both_ways(code: int) -> None:
    with pytest.raises(InvalidCloseFrame) as info:
        parse_close_payload(struct.pack("!H", code) + b"reason")
    assert info.value.close_code == 1002
    with pytest.raises(ValueError):
        encode_close_payload(code)


def test_empty_close_payload_means_no_status() -> None:
    assert parse_close_payload(b"") == (1005, "")
    assert encode_close_payload(None) == b""
    with pytest.raises(ValueError):
        encode_close_payload(None, "a reason needs a code")


def test_close_payload_of_one_byte_is_a_protocol_error() -> None:
    with pytest.raises(InvalidCloseFrame) as info:
        parse_close_payload(b"\x03")
    assert info.value.close_code == 1002


def test_close_payload_over_125_bytes_is_a_protocol_error() -> None:
    with pytest.raises(InvalidCloseFrame):
        parse_close_payload(b"\x03\xe8" + b"x" * 124)


def test_close_reason_that_is_not_utf8_fails_with_1007() -> None:
    with pytest.raises(InvalidUTF8) as info:
        parse_close_payload(b"\x03\xe8\xff")
    assert info.value.close_code == 1007
    with pytest.raises(InvalidUTF8):
        parse_close_payload(b"\x03\xe8" + "é".encode()[:1])  # a truncated character


def test_close_reason_over_123_bytes_is_refused_when_sending() -> None:
    assert MAX_CLOSE_REASON == 123
    assert len(encode_close_payload(1000, "x" * 123)) == 125
    with pytest.raises(ValueError):
        encode_close_payload(1000, "x" * 124)
    with pytest.raises(ValueError):
        encode_close_payload(1000, "é" * 62)  # 62 characters, 124 bytes


def test_default_close_payload_is_normal_closure() -> None:
    assert encode_close_payload() == b"\x03\xe8"
    assert parse_close_payload(b"\x03\xe8")[0] is not None
    assert parse_close_payload(b"\x03\xe8") == (CloseCode.NORMAL_CLOSURE, "")


# -- property: encode -> parse is the identity, under any chunking --------------------------------

DATA_OPCODES = [Opcode.CONT, Opcode.TEXT, Opcode.BINARY]
CONTROL_OPCODES = [Opcode.CLOSE, Opcode.PING, Opcode.PONG]


@st.composite
def any_frame(draw: st.DrawFn) -> Frame:
    """Any frame RFC 6455 allows on the wire (no RSV bits: no extension is negotiated)."""
    if draw(st.booleans()):
        opcode = draw(st.sampled_from(CONTROL_OPCODES))
        return Frame(opcode, draw(st.binary(max_size=MAX_CONTROL_PAYLOAD)), fin=True)
    opcode = draw(st.sampled_from(DATA_OPCODES))
    size = draw(st.one_of(st.integers(0, 130), st.sampled_from([65535, 65536, 70000])))
    # Large payloads are built from a short random seed to keep the examples fast.
    seed = draw(st.binary(min_size=1, max_size=16))
    payload = (seed * (size // len(seed) + 1))[:size]
    return Frame(opcode, payload, fin=draw(st.booleans()))


@settings(max_examples=200, deadline=None)
@given(
    frames_=st.lists(any_frame(), min_size=1, max_size=6),
    masked=st.booleans(),
    keys=st.lists(st.binary(min_size=4, max_size=4), min_size=6, max_size=6),
    cuts=st.lists(st.integers(0, 1 << 20), max_size=12),
)
def test_encode_then_parse_round_trips_under_any_chunking(
    frames_: list[Frame], masked: bool, keys: list[bytes], cuts: list[int]
) -> None:
    wire = b"".join(
        encode_frame(frame, key if masked else None)
        for frame, key in zip(frames_, keys[: len(frames_)], strict=True)
    )
    parsed = parse_in_chunks(wire, cuts, require_mask=masked)
    assert parsed == frames_
    for frame, key in zip(parsed, keys[: len(parsed)], strict=True):
        assert frame.masked is masked
        assert frame.mask_key == (key if masked else None)
        assert encode_frame(frame, frame.mask_key) == encode_frame(
            Frame(frame.opcode, frame.payload, frame.fin), key if masked else None
        )


@settings(max_examples=100, deadline=None)
@given(
    frame=any_frame(),
    rsv=st.integers(1, 7),
    cuts=st.lists(st.integers(0, 1 << 20), max_size=6),
)
def test_rsv_bits_round_trip_when_allowed(frame: Frame, rsv: int, cuts: list[int]) -> None:
    frame.rsv1, frame.rsv2, frame.rsv3 = bool(rsv & 4), bool(rsv & 2), bool(rsv & 1)
    assert parse_in_chunks(encode_frame(frame), cuts, allowed_rsv=rsv) == [frame]


@pytest.mark.parametrize("size", [4095, 4096, 4097, 65535, 65536, 1 << 20])
def test_large_masked_frames_equal_header_plus_the_python_masking(size: int) -> None:
    """Big frames take the one-copy path of the C extension: the bytes must not change."""
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    key = b"\x9a\x01\xfe\x42"
    expected = encode_header(Opcode.BINARY, size, mask_key=key) + apply_mask_python(payload, key)
    assert encode_frame(Frame(Opcode.BINARY, payload), key) == expected


def test_payload_due_counts_what_is_left_of_the_frame_in_progress() -> None:
    parser = FrameParser(require_mask=True)
    wire = encode_frame(Frame(Opcode.BINARY, bytes(1000)), b"abcd")  # a 4-byte header here
    assert parser.payload_due == 0
    assert parser.feed(wire[:1]) == [] and parser.payload_due == 0  # header not complete yet
    parser.feed(wire[1:8])  # the header (2 + 2 length + 4 mask) and no payload
    assert parser.payload_due == 1000
    parser.feed(wire[8:308])
    assert parser.payload_due == 700
    (frame,) = parser.feed(wire[308:])
    assert frame.payload == bytes(1000) and parser.payload_due == 0


def test_span_ahead_is_one_frame_of_the_bytes_to_come() -> None:
    parser = FrameParser(require_mask=True)
    small = encode_frame(Frame(Opcode.TEXT, b"hi"), b"abcd")  # 2 + 4 + 2
    medium = encode_frame(Frame(Opcode.BINARY, bytes(300)), b"abcd")  # 2 + 2 + 4 + 300
    large = encode_frame(Frame(Opcode.BINARY, bytes(70_000)), b"abcd")  # 2 + 8 + 4 + 70,000
    assert parser.span_ahead(small + medium) == 8
    assert parser.span_ahead(medium) == 308
    assert parser.span_ahead(large[:10]) == 70_014
    assert parser.span_ahead(large[:9]) == 0  # the 64-bit length is not all here yet
    assert parser.span_ahead(b"\x82") == 0
    parser.feed(large[:5000])
    assert parser.span_ahead(b"") == parser.payload_due == 70_014 - 5000
    parser.feed(large[5000:])
    parser.feed(small[:1])  # half a header buffered: the next bytes are not a frame's start
    assert parser.span_ahead(small[1:]) == 0
