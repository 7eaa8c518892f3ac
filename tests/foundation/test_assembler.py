"""Tests of wslab.foundation.assembler: fragments to messages, size limits, fail-fast UTF-8.

RFC 6455 section 5.4 (fragmentation) and 8.1 (text must be UTF-8). "Fail fast" is tested by
handing the assembler a frame that is still arriving (``check_partial``) whose rest never comes:
the error must be raised from the bytes seen so far.
"""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wslab.foundation.assembler import Message, MessageAssembler
from wslab.foundation.codes import Opcode
from wslab.foundation.errors import InvalidUTF8, PayloadTooBig, ProtocolError
from wslab.foundation.frames import Frame

TEXT, BINARY, CONT = Opcode.TEXT, Opcode.BINARY, Opcode.CONT

# Byte sequences that are not UTF-8 (RFC 3629), with the reason.
INVALID_UTF8 = [
    pytest.param(b"\x80", id="lone-continuation"),
    pytest.param(b"a\xbfb", id="continuation-after-ascii"),
    pytest.param(b"\xc0\xaf", id="overlong-2-byte-slash"),
    pytest.param(b"\xc1\xbf", id="overlong-2-byte-C1"),
    pytest.param(b"\xe0\x80\xaf", id="overlong-3-byte"),
    pytest.param(b"\xf0\x80\x80\xaf", id="overlong-4-byte"),
    pytest.param(b"\xed\xa0\x80", id="surrogate-D800"),
    pytest.param(b"\xed\xbf\xbf", id="surrogate-DFFF"),
    pytest.param(b"\xf4\x90\x80\x80", id="above-U+10FFFF"),
    pytest.param(b"\xf5\x80\x80\x80", id="F5-start-byte"),
    pytest.param(b"\xff", id="FF"),
    pytest.param(b"\xe2\x82", id="truncated-at-end"),
    pytest.param(b"\xe2\x28\xa1", id="bad-second-byte"),
]

# Prefixes that CPython's incremental decoder already knows cannot be completed.
FAIL_FAST_PREFIXES = [
    pytest.param(b"\x80", id="lone-continuation"),
    pytest.param(b"\xc0", id="C0"),
    pytest.param(b"\xe0\x80", id="overlong-3-byte"),
    pytest.param(b"\xf0\x80", id="overlong-4-byte"),
    pytest.param(b"\xf4\x90", id="above-U+10FFFF"),
    pytest.param(b"\xf5", id="F5"),
    pytest.param(b"\xe2\x28", id="bad-second-byte"),
    pytest.param(b"\xed\xa0\x80", id="surrogate"),
]


def frame(opcode: Opcode, payload: bytes = b"", fin: bool = True) -> Frame:
    """A received data frame."""
    return Frame(opcode, payload, fin)


def header_of(f: Frame) -> Frame:
    """The header fields of ``f`` as the parser exposes them while the payload arrives."""
    return Frame(f.opcode, b"", f.fin)


# -- messages --------------------------------------------------------------------------------------


def test_single_frame_messages() -> None:
    assembler = MessageAssembler()
    assert assembler.add(frame(TEXT, "héllo".encode())) == Message("héllo", 1)
    assert assembler.add(frame(BINARY, b"\x00\xff")) == Message(b"\x00\xff", 1)
    assert assembler.add(frame(TEXT)) == Message("", 1)
    assert assembler.add(frame(BINARY)) == Message(b"", 1)
    assert Message("x").is_text and not Message(b"x").is_text
    assert not assembler.in_progress


def test_fragmented_messages_with_frame_counts() -> None:
    assembler = MessageAssembler()
    assert assembler.add(frame(TEXT, b"Hel", fin=False)) is None
    assert assembler.in_progress and assembler.buffered == 3
    assert assembler.add(frame(CONT, b"", fin=False)) is None
    assert assembler.add(frame(CONT, b"lo")) == Message("Hello", 3)
    assert not assembler.in_progress and assembler.buffered == 0
    assert assembler.add(frame(BINARY, b"\x01", fin=False)) is None
    assert assembler.add(frame(CONT, b"\x02", fin=False)) is None
    message = assembler.add(frame(CONT, b"\x03"))
    assert message == Message(b"\x01\x02\x03", 3)
    assert isinstance(message.data, bytes)


def test_stray_continuation_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError) as info:
        MessageAssembler().add(frame(CONT, b"x"))
    assert type(info.value) is ProtocolError and info.value.close_code == 1002


@pytest.mark.parametrize("first", [TEXT, BINARY])
@pytest.mark.parametrize("second", [TEXT, BINARY])
def test_new_data_frame_inside_a_fragmented_message_is_a_protocol_error(
    first: Opcode, second: Opcode
) -> None:
    assembler = MessageAssembler()
    assembler.add(frame(first, b"a", fin=False))
    with pytest.raises(ProtocolError) as info:
        assembler.add(frame(second, b"b"))
    assert info.value.close_code == 1002


@pytest.mark.parametrize("opcode", [Opcode.CLOSE, Opcode.PING, Opcode.PONG])
def test_control_frames_are_not_data(opcode: Opcode) -> None:
    with pytest.raises(ProtocolError):
        MessageAssembler().add(frame(opcode))


# -- size limit ------------------------------------------------------------------------------------


def test_message_over_max_message_size_across_fragments_fails_with_1009() -> None:
    assembler = MessageAssembler(max_message_size=10)
    assembler.add(frame(BINARY, b"x" * 6, fin=False))
    with pytest.raises(PayloadTooBig) as info:
        assembler.add(frame(CONT, b"x" * 5, fin=False))  # the limit is passed before FIN
    assert info.value.close_code == 1009


def test_message_of_exactly_max_message_size_is_accepted() -> None:
    assembler = MessageAssembler(max_message_size=10)
    assembler.add(frame(TEXT, b"x" * 4, fin=False))
    assert assembler.add(frame(CONT, b"y" * 6)) == Message("xxxxyyyyyy", 2)
    assert assembler.add(frame(BINARY, b"z" * 10)) == Message(b"z" * 10)  # the count restarts
    with pytest.raises(PayloadTooBig):
        assembler.add(frame(TEXT, b"z" * 11))


def test_size_limit_counts_partial_text_too() -> None:
    assembler = MessageAssembler(max_message_size=8)
    header = header_of(frame(TEXT, fin=False))
    assembler.check_partial(header, memoryview(b"12345"))
    with pytest.raises(PayloadTooBig):
        assembler.check_partial(header, memoryview(b"123456789"))


# -- UTF-8 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", INVALID_UTF8)
def test_invalid_utf8_in_a_single_frame_fails_with_1007(bad: bytes) -> None:
    with pytest.raises(InvalidUTF8) as info:
        MessageAssembler().add(frame(TEXT, b"ok " + bad))
    assert info.value.close_code == 1007


@pytest.mark.parametrize("bad", INVALID_UTF8)
def test_invalid_utf8_in_a_fragmented_message_fails_with_1007(bad: bytes) -> None:
    assembler = MessageAssembler()
    assembler.add(frame(TEXT, b"ok", fin=False))
    with pytest.raises(InvalidUTF8):
        assembler.add(frame(CONT, bad))


def test_invalid_utf8_is_not_checked_in_binary() -> None:
    assert MessageAssembler().add(frame(BINARY, b"\xff\xfe")) == Message(b"\xff\xfe")


@pytest.mark.parametrize("char", ["é", "€", "𝄞"])  # 2, 3 and 4 bytes
def test_character_split_across_fragments_is_accepted(char: str) -> None:
    encoded = ("a" + char + "b").encode()
    for cut in range(1, len(encoded)):
        assembler = MessageAssembler()
        assert assembler.add(frame(TEXT, encoded[:cut], fin=False)) is None
        assert assembler.add(frame(CONT, encoded[cut:])) == Message("a" + char + "b", 2)


def test_truncated_character_at_the_end_of_a_fragmented_message_is_refused() -> None:
    assembler = MessageAssembler()
    assembler.add(frame(TEXT, "€".encode()[:2], fin=False))
    with pytest.raises(InvalidUTF8):
        assembler.add(frame(CONT, b""))


@pytest.mark.parametrize("bad", FAIL_FAST_PREFIXES)
def test_invalid_byte_in_a_frame_still_arriving_fails_at_once(bad: bytes) -> None:
    """A text frame whose invalid start arrives and whose rest never does: 1007 right away."""
    assembler = MessageAssembler()
    header = header_of(frame(TEXT, fin=True))
    assembler.check_partial(header, memoryview(b"fine so far "))
    with pytest.raises(InvalidUTF8) as info:
        assembler.check_partial(header, memoryview(b"fine so far " + bad))
    assert info.value.close_code == 1007


@pytest.mark.parametrize("bad", FAIL_FAST_PREFIXES)
def test_invalid_start_of_a_second_fragment_fails_before_fin(bad: bytes) -> None:
    assembler = MessageAssembler()
    assert assembler.add(frame(TEXT, b"valid first fragment", fin=False)) is None
    header = header_of(frame(CONT, fin=False))
    with pytest.raises(InvalidUTF8):
        assembler.check_partial(header, memoryview(bad))


def test_partial_checks_are_incremental_and_agree_with_the_final_frame() -> None:
    text = "naïve café — 𝄞 done"
    encoded = text.encode()
    assembler = MessageAssembler()
    f = frame(TEXT, encoded)
    for end in range(len(encoded)):  # each byte arrives on its own, split characters included
        assembler.check_partial(header_of(f), memoryview(encoded[:end]))
    assert assembler.buffered == len(encoded) - 1
    assert assembler.add(f) == Message(text, 1)
    assert assembler.buffered == 0 and not assembler.in_progress


def test_partial_check_sees_order_violations_from_the_header() -> None:
    with pytest.raises(ProtocolError):
        MessageAssembler().check_partial(header_of(frame(CONT)), memoryview(b""))
    assembler = MessageAssembler()
    assembler.add(frame(BINARY, b"a", fin=False))
    with pytest.raises(ProtocolError):
        assembler.check_partial(header_of(frame(TEXT)), memoryview(b""))


def test_partial_check_ignores_binary() -> None:
    assembler = MessageAssembler(max_message_size=4)
    assembler.check_partial(header_of(frame(BINARY)), memoryview(b"\xff\xff"))
    assert assembler.buffered == 0


# -- property: any fragmentation of any text and any arrival pattern gives the same message -------


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(max_size=60),
    cuts=st.lists(st.integers(0, 400), max_size=5),
    partial=st.lists(st.integers(0, 400), max_size=4),
)
def test_any_fragmentation_of_text_reassembles(
    text: str, cuts: list[int], partial: list[int]
) -> None:
    encoded = text.encode()
    bounds = [0, *sorted(c % (len(encoded) + 1) for c in cuts), len(encoded)]
    pieces = [encoded[a:b] for a, b in pairwise(bounds)]
    assembler = MessageAssembler(max_message_size=len(encoded))
    result = None
    for i, piece in enumerate(pieces):
        f = frame(TEXT if i == 0 else CONT, piece, fin=i == len(pieces) - 1)
        for end in sorted(p % (len(piece) + 1) for p in partial):  # parts arrive early
            assembler.check_partial(header_of(f), memoryview(piece[:end]))
        result = assembler.add(f)
        assert (result is None) is (i < len(pieces) - 1)
    assert result == Message(text, len(pieces))
