"""Tests of wslab.foundation.protocol: the sans-I/O engine, one RFC 6455 MUST at a time.

Each test drives a real :class:`Protocol` with the bytes a peer would send (masked towards a
server, unmasked towards a client) and checks the events, the bytes the engine produced and the
state history. No I/O is involved: time is passed in, masking keys come from an injected factory.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Iterator
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wslab.foundation.codes import CloseCode, Opcode
from wslab.foundation.errors import (
    ConnectionBroken,
    ConnectionClosedLocally,
    InvalidCloseFrame,
    InvalidStateTransition,
    InvalidUTF8,
    PayloadTooBig,
    ProtocolError,
)
from wslab.foundation.frames import (
    Frame,
    FrameParser,
    encode_close_payload,
    encode_frame,
    parse_close_payload,
)
from wslab.foundation.protocol import (
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
from wslab.foundation.state import ConnectionState, Transition

S = ConnectionState
PEER_KEY = b"\x0f\xa0\x5a\xc3"


# -- helpers ---------------------------------------------------------------------------------------


def opened(role: Role, **kwargs: object) -> Protocol:
    """A protocol past its opening handshake, created at t=0 and opened at t=1."""
    proto = Protocol(role, clock=lambda: 99.0, now=0.0, **kwargs)  # type: ignore[arg-type]
    proto.open(now=1.0)
    return proto


def from_peer(proto: Protocol, *frames: Frame) -> bytes:
    """The bytes ``proto``'s peer sends for ``frames``: masked towards a server, as RFC 5.1 says."""
    key = PEER_KEY if proto.role is Role.SERVER else None
    return b"".join(encode_frame(frame, key) for frame in frames)


def decode_output(proto: Protocol, data: bytes) -> list[Frame]:
    """Parse bytes ``proto`` produced, checking it masked exactly when it is the client."""
    parser = FrameParser(require_mask=proto.role is Role.CLIENT)
    frames = parser.feed(data)
    assert parser.buffered == 0 and parser.partial_header is None
    return frames


def close_frame(code: int | None = 1000, reason: str = "") -> Frame:
    """A close frame with a status code and reason."""
    return Frame(Opcode.CLOSE, encode_close_payload(code, reason))


def assert_failed_with(proto: Protocol, events: list[Event], close_code: int) -> None:
    """The last event is a ProtocolFailure with ``close_code`` and the output is its close."""
    assert events and isinstance(events[-1], ProtocolFailure), events
    assert not any(isinstance(e, ProtocolFailure) for e in events[:-1])
    assert events[-1].close_code == close_code
    assert proto.failure is events[-1].error
    out = decode_output(proto, proto.data_to_send())
    assert out[-1].opcode is Opcode.CLOSE
    assert parse_close_payload(out[-1].payload)[0] == close_code
    assert proto.close_sent is not None and proto.close_sent[0] == close_code
    assert proto.state is S.CLOSING
    assert proto.close_expected
    # Everything after a failure is ignored.
    assert proto.receive_data(from_peer(proto, Frame(Opcode.TEXT, b"later"))) == []
    assert proto.data_to_send() == b""


@pytest.fixture(params=[Role.SERVER, Role.CLIENT], ids=["server", "client"])
def role(request: pytest.FixtureRequest) -> Role:
    return request.param


# -- opening and the state machine -----------------------------------------------------------------


def test_receive_and_send_before_open_raise(role: Role) -> None:
    proto = Protocol(role, now=0.0)
    assert proto.state is S.CONNECTING
    with pytest.raises(InvalidStateTransition):
        proto.receive_data(b"\x81\x00")
    with pytest.raises(InvalidStateTransition):
        proto.send_text("too early")
    with pytest.raises(InvalidStateTransition):
        proto.send_ping()
    with pytest.raises(InvalidStateTransition):
        proto.send_close()
    proto.open(now=1.0)
    with pytest.raises(InvalidStateTransition):
        proto.open(now=2.0)  # OPEN -> OPEN is not in the table


def test_lifecycle_we_close_first(role: Role) -> None:
    seen: list[Transition] = []
    proto = Protocol(role, now=0.0, transition_observer=seen.append)
    proto.open(now=1.0)
    assert proto.state is S.OPEN
    proto.send_close(1001, "shutting down", now=2.0)
    assert proto.state is S.CLOSING and proto.closed_locally
    assert not proto.close_expected  # the peer's close has not come back yet
    events = proto.receive_data(from_peer(proto, close_frame(1001)), now=3.0)
    assert events == [CloseReceived(1001, "")]
    assert proto.data_to_send() == b""  # no second close frame
    assert proto.close_expected and proto.state is S.CLOSING
    proto.connection_lost(now=4.0)
    assert proto.state is S.CLOSED
    assert [(t.old, t.new, t.at, t.cause) for t in proto.machine.history] == [
        (S.CONNECTING, S.CONNECTING, 0.0, "created"),
        (S.CONNECTING, S.OPEN, 1.0, "handshake accepted"),
        (S.OPEN, S.CLOSING, 2.0, "close sent (1001)"),
        (S.CLOSING, S.CLOSED, 4.0, "closing handshake complete"),
    ]
    assert seen == list(proto.machine.history[1:])


def test_lifecycle_peer_closes_first(role: Role) -> None:
    proto = opened(role)
    events = proto.receive_data(from_peer(proto, close_frame(1000, "bye")), now=5.0)
    assert events == [CloseReceived(1000, "bye")]
    assert proto.state is S.CLOSING and not proto.closed_locally
    assert proto.close_expected
    assert proto.close_received == (1000, "bye") and proto.close_code == 1000
    proto.connection_lost(now=6.0)
    causes = [t.cause for t in proto.machine.history]
    assert causes == ["created", "handshake accepted", "close received (1000)",
                      "closing handshake complete"]  # fmt: skip


def test_transport_lost_without_a_close(role: Role) -> None:
    proto = opened(role)
    proto.connection_lost(now=3.0)
    assert proto.machine.history[-1] == Transition(S.OPEN, S.CLOSED, 3.0, "transport lost")
    assert proto.close_code == CloseCode.ABNORMAL_CLOSURE
    assert proto.receive_data(from_peer(proto, Frame(Opcode.TEXT, b"x"))) == []
    with pytest.raises(ConnectionBroken) as info:
        proto.send_text("nobody listens")
    assert info.value.received_code == 1006
    proto.connection_lost(now=4.0)  # idempotent
    assert len(proto.machine.history) == 3


def test_time_comes_from_the_clock_when_not_passed() -> None:
    ticks = itertools.count(10.0)
    proto = Protocol(Role.SERVER, clock=lambda: next(ticks))
    proto.open()
    proto.send_close()
    assert [t.at for t in proto.machine.history] == [10.0, 11.0, 12.0]


# -- masking (RFC 6455 5.1, 5.3) -------------------------------------------------------------------


def test_server_fails_an_unmasked_frame_with_1002() -> None:
    proto = opened(Role.SERVER)
    assert_failed_with(proto, proto.receive_data(b"\x81\x02hi"), 1002)


def test_client_fails_a_masked_frame_with_1002() -> None:
    proto = opened(Role.CLIENT)
    masked = encode_frame(Frame(Opcode.TEXT, b"hi"), PEER_KEY)
    assert_failed_with(proto, proto.receive_data(masked), 1002)


def test_client_masks_with_keys_from_the_factory_exactly() -> None:
    keys = iter([bytes.fromhex("37fa213d"), b"\x00\x00\x00\x00", b"\xff\xff\xff\xff"])
    requested: list[int] = []

    def factory(n: int) -> bytes:
        requested.append(n)
        return next(keys)

    proto = opened(Role.CLIENT, mask_key_factory=factory)
    # RFC 6455 5.7: "A single-frame masked text message".
    assert proto.send_text("Hello") == bytes.fromhex("818537fa213d7f9f4d5158")
    assert proto.send_binary(b"\x01\x02") == b"\x82\x82\x00\x00\x00\x00\x01\x02"
    assert proto.send_ping(b"\x0f") == b"\x89\x81\xff\xff\xff\xff\xf0"
    assert requested == [4, 4, 4]


def test_server_never_masks() -> None:
    proto = opened(Role.SERVER, mask_key_factory=lambda n: pytest.fail("server asked for a key"))
    assert proto.send_text("Hello") == bytes.fromhex("810548656c6c6f")
    assert proto.send_pong(b"Hello") == bytes.fromhex("8a0548656c6c6f")


# -- frame-level violations, through the engine ----------------------------------------------------


BAD_HEADERS = [
    pytest.param(0xC1, "rsv1"),
    pytest.param(0xA1, "rsv2"),
    pytest.param(0x91, "rsv3"),
    *[pytest.param(0x80 | op, f"opcode-{op:x}") for op in (3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF)],
    pytest.param(0x08, "fragmented-close"),
    pytest.param(0x09, "fragmented-ping"),
    pytest.param(0x0A, "fragmented-pong"),
]


@pytest.mark.parametrize(("first", "why"), BAD_HEADERS)
def test_bad_first_byte_fails_with_1002(role: Role, first: int, why: str) -> None:
    proto = opened(role)
    mask_bit = 0x80 if role is Role.SERVER else 0
    events = proto.receive_data(bytes([first, mask_bit | 0]) + (PEER_KEY if mask_bit else b""))
    assert_failed_with(proto, events, 1002)


@pytest.mark.parametrize("opcode", [Opcode.CLOSE, Opcode.PING, Opcode.PONG])
def test_control_frame_over_125_bytes_fails_with_1002(role: Role, opcode: Opcode) -> None:
    proto = opened(role)
    wire = from_peer(proto, Frame(opcode, b"\x03\xe8" + b"x" * 124))
    assert_failed_with(proto, proto.receive_data(wire[:4]), 1002)  # length known: fail now


def test_64_bit_length_with_top_bit_fails_with_1002(role: Role) -> None:
    proto = opened(role)
    mask_bit = 0x80 if role is Role.SERVER else 0
    events = proto.receive_data(bytes([0x82, mask_bit | 127]) + struct.pack("!Q", 1 << 63))
    assert_failed_with(proto, events, 1002)


def test_stray_continuation_fails_with_1002(role: Role) -> None:
    proto = opened(role)
    assert_failed_with(proto, proto.receive_data(from_peer(proto, Frame(Opcode.CONT, b"x"))), 1002)


@pytest.mark.parametrize("second", [Opcode.TEXT, Opcode.BINARY])
def test_new_data_frame_inside_a_fragmented_message_fails_with_1002(
    role: Role, second: Opcode
) -> None:
    proto = opened(role)
    assert proto.receive_data(from_peer(proto, Frame(Opcode.TEXT, b"a", fin=False))) == []
    # Only the header of the offending frame arrives: the violation is visible from it.
    wire = from_peer(proto, Frame(second, b"payload"))
    header = 2 + (4 if role is Role.SERVER else 0)
    assert_failed_with(proto, proto.receive_data(wire[:header]), 1002)


def test_control_frames_between_fragments_are_fine(role: Role) -> None:
    proto = opened(role)
    wire = from_peer(
        proto,
        Frame(Opcode.TEXT, b"Hel", fin=False),
        Frame(Opcode.PING, b"p1"),
        Frame(Opcode.CONT, b"l", fin=False),
        Frame(Opcode.PONG, b"unsolicited"),
        Frame(Opcode.PING, b""),
        Frame(Opcode.CONT, b"o"),
    )
    events = proto.receive_data(wire)
    assert events == [
        PingReceived(b"p1"),
        PongReceived(b"unsolicited"),
        PingReceived(b""),
        TextReceived("Hello", 3),
    ]
    assert decode_output(proto, proto.data_to_send()) == [
        Frame(Opcode.PONG, b"p1"),
        Frame(Opcode.PONG, b""),
    ]


# -- limits ----------------------------------------------------------------------------------------


def test_frame_over_max_frame_size_fails_with_1009_on_its_header(role: Role) -> None:
    proto = opened(role, max_frame_size=1000)
    wire = from_peer(proto, Frame(Opcode.BINARY, bytes(1001)))
    events = proto.receive_data(wire[:4])  # 2 bytes + 16-bit length; payload never sent
    assert isinstance(events[-1].error, PayloadTooBig)  # type: ignore[union-attr]
    assert_failed_with(proto, events, 1009)


def test_frame_of_max_frame_size_is_accepted(role: Role) -> None:
    proto = opened(role, max_frame_size=1000)
    events = proto.receive_data(from_peer(proto, Frame(Opcode.BINARY, bytes(1000))))
    assert events == [BinaryReceived(bytes(1000))]


@pytest.mark.parametrize("opcode", [Opcode.TEXT, Opcode.BINARY])
def test_message_over_max_message_size_across_fragments_fails_with_1009(
    role: Role, opcode: Opcode
) -> None:
    proto = opened(role, max_message_size=100, max_frame_size=80)
    assert proto.receive_data(from_peer(proto, Frame(opcode, b"a" * 60, fin=False))) == []
    assert proto.receive_data(from_peer(proto, Frame(Opcode.CONT, b"b" * 40, fin=False))) == []
    events = proto.receive_data(from_peer(proto, Frame(Opcode.CONT, b"c")))
    assert_failed_with(proto, events, 1009)


def test_message_of_exactly_max_message_size_is_accepted(role: Role) -> None:
    proto = opened(role, max_message_size=100)
    wire = from_peer(proto, Frame(Opcode.TEXT, b"a" * 50, fin=False), Frame(Opcode.CONT, b"b" * 50))
    assert proto.receive_data(wire) == [TextReceived("a" * 50 + "b" * 50, 2)]


# -- the close frame (RFC 6455 5.5.1, 7.1.5, 7.4) --------------------------------------------------


def test_close_payload_of_one_byte_fails_with_1002(role: Role) -> None:
    proto = opened(role)
    events = proto.receive_data(from_peer(proto, Frame(Opcode.CLOSE, b"\x03")))
    assert isinstance(events[-1].error, InvalidCloseFrame)  # type: ignore[union-attr]
    assert_failed_with(proto, events, 1002)


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535])
def test_invalid_close_code_fails_with_1002(role: Role, code: int) -> None:
    proto = opened(role)
    wire = from_peer(proto, Frame(Opcode.CLOSE, struct.pack("!H", code)))
    assert_failed_with(proto, proto.receive_data(wire), 1002)


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, *range(1007, 1015), 3000, 4999])
def test_valid_close_code_is_accepted_and_echoed(role: Role, code: int) -> None:
    proto = opened(role)
    events = proto.receive_data(from_peer(proto, close_frame(code, "reason ✓")))
    assert events == [CloseReceived(code, "reason ✓")]
    # The echo carries the received code (RFC 6455 5.5.1), without the reason.
    assert decode_output(proto, proto.data_to_send()) == [close_frame(code)]
    assert proto.close_sent == (code, "")


def test_empty_close_is_answered_with_an_empty_close(role: Role) -> None:
    proto = opened(role)
    events = proto.receive_data(from_peer(proto, Frame(Opcode.CLOSE, b"")))
    assert events == [CloseReceived(1005, "")]
    assert decode_output(proto, proto.data_to_send()) == [Frame(Opcode.CLOSE, b"")]
    assert proto.close_code == 1005 and proto.close_expected


def test_close_reason_that_is_not_utf8_fails_with_1007(role: Role) -> None:
    proto = opened(role)
    events = proto.receive_data(from_peer(proto, Frame(Opcode.CLOSE, b"\x03\xe8\xc3\x28")))
    assert isinstance(events[-1].error, InvalidUTF8)  # type: ignore[union-attr]
    assert_failed_with(proto, events, 1007)


def test_send_close_keeps_the_reason_within_123_bytes(role: Role) -> None:
    """send_close() cuts a long reason at a character boundary; encode_close_payload refuses."""
    proto = opened(role)
    (frame,) = decode_output(proto, proto.send_close(1000, "é" * 100))
    code, reason = parse_close_payload(frame.payload)
    assert code == 1000 and reason == "é" * 61  # 122 bytes: the 62nd "é" would make 124
    assert len(frame.payload) <= 125
    with pytest.raises(ValueError):
        opened(role).send_close(1005)  # API-only codes never go on the wire
    with pytest.raises(ValueError):
        opened(role).send_close(None, "a reason needs a code")


def test_send_close_without_a_code_sends_an_empty_close(role: Role) -> None:
    proto = opened(role)
    assert decode_output(proto, proto.send_close(None)) == [Frame(Opcode.CLOSE, b"")]
    assert proto.close_sent == (None, "")
    assert proto.send_close() == b""  # only one close frame, ever


def test_data_after_a_received_close_is_ignored(role: Role) -> None:
    proto = opened(role)
    wire = from_peer(proto, Frame(Opcode.TEXT, b"before"), close_frame(1000))
    after = from_peer(proto, Frame(Opcode.TEXT, b"after"), Frame(Opcode.PING, b"p"))
    # In the same chunk as the close, and garbage that would otherwise fail the connection.
    events = proto.receive_data(wire + after + b"\xff\xff\xff")
    assert events == [TextReceived("before"), CloseReceived(1000, "")]
    assert proto.receive_data(after) == []
    assert decode_output(proto, proto.data_to_send()) == [close_frame(1000)]  # no pong
    assert proto.failure is None


def test_frames_after_our_close_are_still_received_until_the_peers_close(role: Role) -> None:
    proto = opened(role)
    proto.send_close(1000)
    wire = from_peer(proto, Frame(Opcode.TEXT, b"in flight"), Frame(Opcode.PING, b"p"))
    assert proto.receive_data(wire) == [TextReceived("in flight"), PingReceived(b"p")]
    assert proto.data_to_send() == b""  # no pong once our close is sent


# -- ping and pong (RFC 6455 5.5.2, 5.5.3) ---------------------------------------------------------


def test_ping_is_answered_with_a_pong_with_the_same_payload(role: Role) -> None:
    proto = opened(role)
    payload = bytes(range(125))
    assert proto.receive_data(from_peer(proto, Frame(Opcode.PING, payload))) == [
        PingReceived(payload)
    ]
    assert decode_output(proto, proto.data_to_send()) == [Frame(Opcode.PONG, payload)]
    assert proto.data_to_send() == b""  # drained


def test_auto_pong_can_be_turned_off(role: Role) -> None:
    proto = opened(role, auto_pong=False)
    assert proto.receive_data(from_peer(proto, Frame(Opcode.PING, b"x"))) == [PingReceived(b"x")]
    assert proto.data_to_send() == b""
    assert decode_output(proto, proto.send_pong(b"x")) == [Frame(Opcode.PONG, b"x")]


def test_unsolicited_pong_is_accepted(role: Role) -> None:
    proto = opened(role)
    events = proto.receive_data(from_peer(proto, Frame(Opcode.PONG, b"heartbeat")))
    assert events == [PongReceived(b"heartbeat")]
    assert proto.data_to_send() == b"" and proto.failure is None


def test_control_payload_over_125_bytes_is_refused_when_sending(role: Role) -> None:
    proto = opened(role)
    with pytest.raises(ValueError):
        proto.send_ping(bytes(126))
    with pytest.raises(ValueError):
        proto.send_pong(bytes(126))
    assert decode_output(proto, proto.send_ping(bytes(125))) == [Frame(Opcode.PING, bytes(125))]


# -- who ended it: ConnectionClosedLocally vs ConnectionBroken -------------------------------------


def test_sending_after_our_close_raises_closed_locally(role: Role) -> None:
    proto = opened(role)
    proto.send_close(4001, "bad token")
    for send in (lambda: proto.send_text("x"), lambda: proto.send_binary(b"x"),
                 lambda: proto.send_ping(), lambda: proto.send_pong()):  # fmt: skip
        with pytest.raises(ConnectionClosedLocally) as info:
            send()
        assert info.value.received_code == 4001 and info.value.reason == "bad token"
    proto.receive_data(from_peer(proto, close_frame(4001)))
    proto.connection_lost()
    with pytest.raises(ConnectionClosedLocally):
        proto.send_text("still ours")


def test_sending_after_the_peer_closed_raises_broken(role: Role) -> None:
    proto = opened(role)
    proto.receive_data(from_peer(proto, close_frame(1001, "restart")))
    for send in (lambda: proto.send_text("x"), lambda: proto.send_ping()):
        with pytest.raises(ConnectionBroken) as info:
            send()
        assert info.value.close_code is CloseCode.GOING_AWAY
        assert info.value.reason == "restart"
    assert proto.send_close() == b""  # the echo was our close


def test_sending_after_a_protocol_failure_raises_broken(role: Role) -> None:
    proto = opened(role)
    proto.receive_data(from_peer(proto, Frame(Opcode.CONT, b"?")))
    with pytest.raises(ConnectionBroken):
        proto.send_text("x")
    assert not proto.closed_locally


def test_fail_sends_our_code_ignores_input_and_expects_the_tcp_close(role: Role) -> None:
    proto = opened(role)
    (frame,) = decode_output(proto, proto.fail(1011, "no pong"))
    assert parse_close_payload(frame.payload) == (1011, "no pong")
    assert proto.closed_locally and proto.close_expected
    assert proto.failure is None  # the peer did nothing wrong
    assert proto.receive_data(from_peer(proto, close_frame(1011))) == []
    with pytest.raises(ConnectionClosedLocally):
        proto.send_text("x")


# -- close_expected --------------------------------------------------------------------------------


def test_close_expected_only_once_both_closes_crossed(role: Role) -> None:
    proto = opened(role)
    assert not proto.close_expected
    proto.receive_data(from_peer(proto, Frame(Opcode.PING, b"")))
    assert not proto.close_expected
    proto.send_close()
    assert not proto.close_expected
    proto.receive_data(from_peer(proto, close_frame(1000)))
    assert proto.close_expected


# -- "a valid message received earlier is still delivered" -----------------------------------------


@pytest.mark.parametrize(
    ("bad", "close_code"),
    [
        pytest.param(Frame(Opcode.CONT, b"x"), 1002, id="stray-continuation"),
        pytest.param(Frame(Opcode.PING, b"p", fin=False), 1002, id="fragmented-ping"),
        pytest.param(Frame(Opcode.TEXT, b"\xff"), 1007, id="invalid-utf8"),
        pytest.param(Frame(Opcode.CLOSE, b"\x00\x00"), 1002, id="close-code-0"),
        pytest.param(Frame(Opcode.BINARY, bytes(300)), 1009, id="too-big"),
        pytest.param(Frame(Opcode.TEXT, b"r", rsv2=True), 1002, id="rsv2"),
    ],
)
def test_valid_message_before_a_violation_is_delivered(
    role: Role, bad: Frame, close_code: int
) -> None:
    proto = opened(role, max_frame_size=200)
    wire = from_peer(proto, Frame(Opcode.TEXT, b"valid"), Frame(Opcode.BINARY, b"\x00"), bad)
    events = proto.receive_data(wire + from_peer(proto, Frame(Opcode.TEXT, b"never")))
    assert events[:2] == [TextReceived("valid"), BinaryReceived(b"\x00")]
    assert len(events) == 3
    assert_failed_with(proto, events, close_code)


def test_reserved_opcode_after_a_valid_message_in_one_chunk(role: Role) -> None:
    proto = opened(role)
    mask_bit = 0x80 if role is Role.SERVER else 0
    wire = from_peer(proto, Frame(Opcode.TEXT, b"hi")) + bytes([0x83, mask_bit]) + PEER_KEY
    events = proto.receive_data(wire)
    assert events[0] == TextReceived("hi")
    assert_failed_with(proto, events, 1002)


# -- fail-fast UTF-8 -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [b"\xff", b"\x80", b"\xc0", b"\xe0\x80", b"\xed\xa0\x80", b"\xf4\x90", b"\xf5"],
    ids=["ff", "lone-continuation", "c0", "overlong", "surrogate", "above-max", "f5"],
)
def test_invalid_utf8_fails_while_the_frame_is_still_arriving(role: Role, bad: bytes) -> None:
    proto = opened(role)
    full = from_peer(proto, Frame(Opcode.TEXT, b"okay " + bad + b"x" * 10_000))
    header = 4 + (4 if role is Role.SERVER else 0)  # 16-bit length (+ mask key)
    assert proto.receive_data(full[: header + 5]) == []  # "okay " is fine so far
    events = proto.receive_data(full[header + 5 : header + 5 + len(bad)])  # the rest never comes
    assert_failed_with(proto, events, 1007)


def test_invalid_utf8_fails_at_the_start_of_an_unfinished_second_fragment(role: Role) -> None:
    proto = opened(role)
    assert proto.receive_data(from_peer(proto, Frame(Opcode.TEXT, b"first", fin=False))) == []
    second = from_peer(proto, Frame(Opcode.CONT, b"\xc3\x28 and more", fin=False))
    header = 2 + (4 if role is Role.SERVER else 0)
    assert proto.receive_data(second[:header]) == []
    events = proto.receive_data(second[header : header + 2])  # FIN is never sent
    assert_failed_with(proto, events, 1007)


def test_split_multibyte_characters_are_accepted(role: Role) -> None:
    proto = opened(role)
    text = "€𝄞é"
    encoded = text.encode()
    # Across frames: each byte in its own fragment.
    frames = [
        Frame(Opcode.TEXT if i == 0 else Opcode.CONT, bytes([b]), fin=i == len(encoded) - 1)
        for i, b in enumerate(encoded)
    ]
    wire = from_peer(proto, *frames)
    # Across chunks too: one byte per receive_data() call.
    events = [e for i in range(len(wire)) for e in proto.receive_data(wire[i : i + 1])]
    assert events == [TextReceived(text, len(encoded))]
    single = from_peer(proto, Frame(Opcode.TEXT, encoded))
    events = [e for i in range(len(single)) for e in proto.receive_data(single[i : i + 1])]
    assert events == [TextReceived(text, 1)]


# -- sending ---------------------------------------------------------------------------------------


def test_sending_a_fragmented_message_with_a_ping_in_between(role: Role) -> None:
    proto = opened(role)
    wire = (
        proto.send_text("Hel", fin=False)
        + proto.send_ping(b"mid")
        + proto.send_continuation(b"l", fin=False)
        + proto.send_continuation(b"o", fin=True)
    )
    assert decode_output(proto, wire) == [
        Frame(Opcode.TEXT, b"Hel", fin=False),
        Frame(Opcode.PING, b"mid"),
        Frame(Opcode.CONT, b"l", fin=False),
        Frame(Opcode.CONT, b"o"),
    ]
    assert proto.stats.messages_out == 1 and proto.stats.frames_out == 4


def test_fragment_order_is_enforced_when_sending(role: Role) -> None:
    proto = opened(role)
    with pytest.raises(ProtocolError):
        proto.send_continuation(b"nothing to continue", fin=True)
    proto.send_binary(b"a", fin=False)
    with pytest.raises(ProtocolError):
        proto.send_text("a new message in the middle")
    proto.send_continuation(b"b", fin=True)
    proto.send_text("fine again")


def test_observers_and_stats_see_every_frame(role: Role) -> None:
    log: list[tuple[str, Frame]] = []
    proto = opened(role, frame_observer=lambda d, f, _inflated: log.append((d, f)))
    wire_in = from_peer(proto, Frame(Opcode.TEXT, b"hi"), Frame(Opcode.PING, b""))
    proto.receive_data(wire_in)
    out = proto.send_binary(b"xyz") + proto.data_to_send()
    assert [(d, f.opcode) for d, f in log] == [
        ("in", Opcode.TEXT),
        ("in", Opcode.PING),
        ("out", Opcode.PONG),
        ("out", Opcode.BINARY),
    ]
    assert all(f.masked is (role is Role.SERVER) for d, f in log if d == "in")
    assert all(f.masked is (role is Role.CLIENT) for d, f in log if d == "out")
    stats = proto.stats
    assert (stats.frames_in, stats.messages_in, stats.bytes_in) == (2, 1, len(wire_in))
    assert (stats.frames_out, stats.messages_out, stats.bytes_out) == (2, 1, len(out))


# -- property: client -> server -> client under any chunking --------------------------------------


@st.composite
def conversation(draw: st.DrawFn) -> list[tuple[str, object]]:
    """Messages (text/binary, maybe fragmented with pings between fragments) and lone pings."""
    steps: list[tuple[str, object]] = []
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["text", "binary", "ping"]))
        if kind == "ping":
            steps.append(("ping", draw(st.binary(max_size=125))))
            continue
        data: str | bytes = draw(
            st.text(max_size=40) if kind == "text" else st.binary(max_size=300)
        )
        raw = data.encode() if isinstance(data, str) else data
        cuts = sorted(draw(st.lists(st.integers(0, len(raw)), max_size=3)))
        pings = draw(st.lists(st.binary(max_size=8), min_size=len(cuts), max_size=len(cuts)))
        steps.append((kind, (data, cuts, pings)))
    return steps


def send_steps(proto: Protocol, steps: list[tuple[str, object]]) -> tuple[bytes, list[Event]]:
    """Send ``steps`` from ``proto``; return the bytes and the events the peer should see."""
    out: list[bytes] = []
    expected: list[Event] = []
    for kind, arg in steps:
        if kind == "ping":
            out.append(proto.send_ping(arg))  # type: ignore[arg-type]
            expected.append(PingReceived(arg))  # type: ignore[arg-type]
            continue
        data, cuts, pings = arg  # type: ignore[misc]
        raw = data.encode() if kind == "text" else data
        if not cuts:
            out.append(proto.send_text(data) if kind == "text" else proto.send_binary(data))
        else:
            # The first fragment goes through send_text/send_binary, so it is cut on a character;
            # the continuations are raw bytes and may split a character anywhere.
            if kind == "text":
                first_chars = len(raw[: cuts[0]].decode(errors="ignore"))
                head = data[:first_chars]
                out.append(proto.send_text(head, fin=False))
                raw = raw[len(head.encode()) :]
                bounds = [0, *(max(0, c - len(head.encode())) for c in cuts[1:]), len(raw)]
            else:
                out.append(proto.send_binary(raw[: cuts[0]], fin=False))
                raw = raw[cuts[0] :]
                bounds = [0, *(c - cuts[0] for c in cuts[1:]), len(raw)]
            pieces = [raw[a:b] for a, b in pairwise(bounds)]
            for i, (piece, ping) in enumerate(zip(pieces, pings, strict=True)):
                out.append(proto.send_ping(ping))
                expected.append(PingReceived(ping))
                out.append(proto.send_continuation(piece, fin=i == len(pieces) - 1))
        frames = len(cuts) + 1
        expected.append(
            TextReceived(data, frames) if kind == "text" else BinaryReceived(data, frames)
        )
    return b"".join(out), expected


def receive_chunked(proto: Protocol, data: bytes, cuts: list[int]) -> list[Event]:
    """Feed ``data`` to ``proto`` in pieces cut at ``cuts`` (taken modulo the length)."""
    bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    return [e for a, b in pairwise(bounds) for e in proto.receive_data(data[a:b])]


def chunked(data: bytes, cuts: list[int]) -> Iterator[bytes]:
    bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    return (data[a:b] for a, b in pairwise(bounds))


@settings(max_examples=150, deadline=None)
@given(
    steps=conversation(),
    cuts_up=st.lists(st.integers(0, 1 << 16), max_size=10),
    cuts_down=st.lists(st.integers(0, 1 << 16), max_size=10),
    seed=st.binary(min_size=4, max_size=4),
)
def test_client_server_round_trip_under_any_chunking(
    steps: list[tuple[str, object]], cuts_up: list[int], cuts_down: list[int], seed: bytes
) -> None:
    keys = itertools.cycle([seed, b"\x00\x00\x00\x00", b"\xff\x01\x7f\x80"])
    client = opened(Role.CLIENT, mask_key_factory=lambda n: next(keys))
    server = opened(Role.SERVER, max_message_size=300, max_frame_size=300)

    wire, expected = send_steps(client, steps)
    events = receive_chunked(server, wire, cuts_up)
    assert events == expected

    # The server answers every ping and echoes every message, then closes.
    pings = [e.payload for e in events if isinstance(e, PingReceived)]
    back = server.data_to_send()
    echoes: list[Event] = [PongReceived(p) for p in pings]
    for e in events:
        if isinstance(e, TextReceived):
            back += server.send_text(e.text)
            echoes.append(TextReceived(e.text))
        elif isinstance(e, BinaryReceived):
            back += server.send_binary(e.data)
            echoes.append(BinaryReceived(e.data))
    back += server.send_close(1000, "done")
    got = [e for chunk in chunked(back, cuts_down) for e in client.receive_data(chunk)]
    assert got == [*echoes, CloseReceived(1000, "done")]

    # The client's close echo completes the handshake on both ends.
    assert server.receive_data(client.data_to_send()) == [CloseReceived(1000, "")]
    assert client.close_expected and server.close_expected
    assert client.failure is None and server.failure is None
