"""Differential tests: wslab's engine against the websockets library, the reference implementation.

Two levels:

- the frame codec: frames encoded by one side are parsed by the other and must come out the same
  (websockets' ``Frame.serialize`` / ``Frame.parse`` driven by its ``StreamReader``), for
  hypothesis-generated frames, masked and not, under any chunking;
- the connection: websockets' sans-I/O ``ServerProtocol`` / ``ClientProtocol`` (put in the OPEN
  state, as after a handshake) talks to a wslab :class:`Protocol` in both directions — messages,
  fragments, pings, the closing handshake — and both fail the same bad input with the same code.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Iterable
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wslab.foundation.codes import Opcode
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

websockets = pytest.importorskip("websockets")
from websockets.client import ClientProtocol  # noqa: E402
from websockets.frames import Frame as WsFrame  # noqa: E402
from websockets.frames import Opcode as WsOpcode  # noqa: E402
from websockets.protocol import State as WsState  # noqa: E402
from websockets.server import ServerProtocol  # noqa: E402
from websockets.streams import StreamReader  # noqa: E402
from websockets.uri import parse_uri  # noqa: E402

WsProtocol = ServerProtocol | ClientProtocol


# -- frame codec -----------------------------------------------------------------------------------


def ws_parse(chunks: Iterable[bytes], *, mask: bool) -> list[WsFrame]:
    """Parse a byte stream with websockets' generator-based frame parser, chunk by chunk."""
    reader = StreamReader()
    frames: list[WsFrame] = []

    def start() -> object:
        return WsFrame.parse(reader.read_exact, mask=mask, max_size=None, extensions=[])

    parser = start()
    for chunk in chunks:
        reader.feed_data(chunk)
        while True:
            try:
                next(parser)  # type: ignore[call-overload]
            except StopIteration as done:
                frames.append(done.value)
                parser = start()
            else:
                break  # the parser waits for more data
    assert not reader.buffer
    return frames


def as_tuple(frame: Frame | WsFrame) -> tuple[int, bytes, bool, bool, bool, bool]:
    """The fields both libraries agree a frame is made of."""
    data = frame.payload if isinstance(frame, Frame) else frame.data
    return (int(frame.opcode), bytes(data), frame.fin, frame.rsv1, frame.rsv2, frame.rsv3)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    return [data[a:b] for a, b in pairwise(bounds)]


@st.composite
def any_frame(draw: st.DrawFn) -> Frame:
    """A frame valid on the wire without extensions (websockets checks that too)."""
    if draw(st.booleans()):
        opcode = draw(st.sampled_from([Opcode.CLOSE, Opcode.PING, Opcode.PONG]))
        return Frame(opcode, draw(st.binary(max_size=125)))
    opcode = draw(st.sampled_from([Opcode.CONT, Opcode.TEXT, Opcode.BINARY]))
    size = draw(st.one_of(st.integers(0, 300), st.sampled_from([65535, 65536])))
    seed = draw(st.binary(min_size=1, max_size=8))
    return Frame(opcode, (seed * (size // len(seed) + 1))[:size], fin=draw(st.booleans()))


@settings(max_examples=150, deadline=None)
@given(
    frames=st.lists(any_frame(), min_size=1, max_size=5),
    masked=st.booleans(),
    key=st.binary(min_size=4, max_size=4),
    cuts=st.lists(st.integers(0, 1 << 20), max_size=8),
)
def test_websockets_parses_what_we_encode(
    frames: list[Frame], masked: bool, key: bytes, cuts: list[int]
) -> None:
    wire = b"".join(encode_frame(f, key if masked else None) for f in frames)
    parsed = ws_parse(split(wire, cuts), mask=masked)
    assert [as_tuple(f) for f in parsed] == [as_tuple(f) for f in frames]


@settings(max_examples=150, deadline=None)
@given(
    frames=st.lists(any_frame(), min_size=1, max_size=5),
    masked=st.booleans(),
    cuts=st.lists(st.integers(0, 1 << 20), max_size=8),
)
def test_we_parse_what_websockets_encodes(
    frames: list[Frame], masked: bool, cuts: list[int]
) -> None:
    ws_frames = [WsFrame(WsOpcode(int(f.opcode)), f.payload, f.fin) for f in frames]
    wire = b"".join(f.serialize(mask=masked, extensions=[]) for f in ws_frames)
    parser = FrameParser(require_mask=masked)
    parsed = [f for chunk in split(wire, cuts) for f in parser.feed(chunk)]
    assert [as_tuple(f) for f in parsed] == [as_tuple(f) for f in ws_frames]
    assert all(f.masked is masked for f in parsed)
    if not masked:  # without a random key the two encodings are byte for byte the same
        assert wire == b"".join(encode_frame(f) for f in frames)


# -- connection: websockets' sans-I/O protocols against ours ---------------------------------------


def ws_open(side: Role, max_size: int | None = 2**20) -> WsProtocol:
    """A websockets protocol object for ``side``, already past the opening handshake."""
    if side is Role.SERVER:
        return ServerProtocol(state=WsState.OPEN, max_size=max_size)
    return ClientProtocol(parse_uri("ws://127.0.0.1/"), state=WsState.OPEN, max_size=max_size)


def ours_open(role: Role, **kwargs: object) -> Protocol:
    proto = Protocol(role, now=0.0, **kwargs)  # type: ignore[arg-type]
    proto.open(now=0.0)
    return proto


def ws_output(ws: WsProtocol) -> tuple[bytes, bool]:
    """websockets' pending output: the bytes, and whether it asked to half-close TCP (EOF)."""
    writes = ws.data_to_send()
    return b"".join(writes), b"" in writes


def ws_receive(ws: WsProtocol, data: bytes, cuts: list[int] | None = None) -> list[WsFrame]:
    """Feed ``data`` to websockets in pieces; return the frames it received."""
    for chunk in split(data, cuts or []):
        if chunk:
            ws.receive_data(chunk)
    return ws.events_received()


def ws_messages(frames: list[WsFrame]) -> list[tuple[str, object]]:
    """websockets' sans-I/O layer yields frames; put data frames together as messages."""
    out: list[tuple[str, object]] = []
    parts: list[bytes] = []
    kind = ""
    for f in frames:
        if f.opcode in (WsOpcode.TEXT, WsOpcode.BINARY):
            kind, parts = f.opcode.name, [f.data]
        elif f.opcode is WsOpcode.CONT:
            parts.append(f.data)
        else:
            out.append((f.opcode.name, bytes(f.data)))
            continue
        if f.fin:
            data = b"".join(parts)
            out.append(("TEXT", data.decode()) if kind == "TEXT" else ("BINARY", data))
    return out


def our_messages(events: list[Event]) -> list[tuple[str, object]]:
    """Our events in the same shape as :func:`ws_messages`."""
    out: list[tuple[str, object]] = []
    for e in events:
        if isinstance(e, TextReceived):
            out.append(("TEXT", e.text))
        elif isinstance(e, BinaryReceived):
            out.append(("BINARY", e.data))
        elif isinstance(e, PingReceived):
            out.append(("PING", e.payload))
        elif isinstance(e, PongReceived):
            out.append(("PONG", e.payload))
        elif isinstance(e, CloseReceived):
            out.append(("CLOSE", (e.code, e.reason)))
        else:
            out.append(("FAILURE", e.close_code))
    return out


@pytest.fixture(params=[Role.SERVER, Role.CLIENT], ids=["ours-server", "ours-client"])
def our_role(request: pytest.FixtureRequest) -> Role:
    return request.param


def other(role: Role) -> Role:
    return Role.CLIENT if role is Role.SERVER else Role.SERVER


def test_messages_and_pings_from_us_to_websockets(our_role: Role) -> None:
    ours, ws = ours_open(our_role), ws_open(other(our_role))
    wire = (
        ours.send_text("héllo wörld")
        + ours.send_binary(bytes(range(256)) * 300)  # 64-bit length
        + ours.send_text("frag", fin=False)
        + ours.send_ping(b"in the middle")
        + ours.send_continuation("mént€".encode()[:5], fin=False)
        + ours.send_continuation("mént€".encode()[5:], fin=True)
        + ours.send_pong(b"unsolicited")
    )
    frames = ws_receive(ws, wire, [1, 7, 100, 70000])
    assert ws_messages(frames) == [
        ("TEXT", "héllo wörld"),
        ("BINARY", bytes(range(256)) * 300),
        ("PING", b"in the middle"),
        ("TEXT", "fragmént€"),
        ("PONG", b"unsolicited"),
    ]
    # websockets answered the ping; we accept its pong.
    back, eof = ws_output(ws)
    assert not eof
    assert our_messages(ours.receive_data(back)) == [("PONG", b"in the middle")]
    assert ws.state is WsState.OPEN and ours.failure is None


def test_messages_and_pings_from_websockets_to_us(our_role: Role) -> None:
    ours, ws = ours_open(our_role), ws_open(other(our_role))
    ws.send_text("héllo".encode())
    ws.send_binary(b"\x00" * 70000)
    ws.send_binary(b"ab", fin=False)
    ws.send_ping(b"p")
    ws.send_continuation(b"cd", fin=True)
    ws.send_text("€".encode()[:1], fin=False)  # a character split across frames
    ws.send_continuation("€".encode()[1:], fin=True)
    ws.send_pong(b"")
    wire, _ = ws_output(ws)
    events = [e for chunk in split(wire, [3, 9, 65000]) for e in ours.receive_data(chunk)]
    assert our_messages(events) == [
        ("TEXT", "héllo"),
        ("BINARY", b"\x00" * 70000),
        ("PING", b"p"),
        ("BINARY", b"abcd"),
        ("TEXT", "€"),
        ("PONG", b""),
    ]
    assert ws_messages(ws_receive(ws, ours.data_to_send())) == [("PONG", b"p")]


@pytest.mark.parametrize(
    ("code", "reason"), [(1000, "bye"), (1001, ""), (4001, "token"), (None, "")]
)
def test_closing_handshake_started_by_websockets(
    our_role: Role, code: int | None, reason: str
) -> None:
    ours, ws = ours_open(our_role), ws_open(other(our_role))
    ws.send_close(code, reason)
    wire, _ = ws_output(ws)
    expected_code = 1005 if code is None else code
    assert ours.receive_data(wire) == [CloseReceived(expected_code, reason)]
    assert ours.close_expected and ours.state.name == "CLOSING"
    assert ws_receive(ws, ours.data_to_send())[0].opcode is WsOpcode.CLOSE
    # websockets saw the echo of its own code.
    assert ws.close_rcvd is not None and ws.close_rcvd.code == expected_code
    ws.receive_eof()
    assert ws.state is WsState.CLOSED and ws.close_code == expected_code
    ours.connection_lost()
    assert ours.machine.history[-1].cause == "closing handshake complete"


@pytest.mark.parametrize(("code", "reason"), [(1000, "done"), (1008, "flood"), (3000, "")])
def test_closing_handshake_started_by_us(our_role: Role, code: int, reason: str) -> None:
    ours, ws = ours_open(our_role), ws_open(other(our_role))
    frames = ws_receive(ws, ours.send_close(code, reason))
    assert [f.opcode for f in frames] == [WsOpcode.CLOSE]
    assert (ws.close_rcvd.code, ws.close_rcvd.reason) == (code, reason)  # type: ignore[union-attr]
    echo, eof = ws_output(ws)
    assert eof is (our_role is Role.CLIENT)  # a websockets server closes TCP right after
    assert ours.receive_data(echo) == [CloseReceived(code, reason)]  # websockets echoes it all
    assert ours.close_expected and ours.closed_locally


# Bad input both engines must refuse with the same close code. Each builds the bytes a peer of
# ``receiver_role`` would send.
def _peer(receiver: Role, *frames: Frame) -> bytes:
    key = b"\x01\x02\x03\x04" if receiver is Role.SERVER else None
    return b"".join(encode_frame(f, key) for f in frames)


def _raw(receiver: Role, first: int, length: int, extra: bytes = b"") -> bytes:
    masked = receiver is Role.SERVER
    return bytes([first, (0x80 if masked else 0) | length]) + extra + (b"\0" * 4 if masked else b"")


BAD_INPUT = {
    "rsv1": lambda r: _raw(r, 0xC1, 0),
    "reserved-opcode-3": lambda r: _raw(r, 0x83, 0),
    "reserved-opcode-b": lambda r: _raw(r, 0x8B, 0),
    "fragmented-ping": lambda r: _peer(r, Frame(Opcode.PING, b"", fin=False)),
    "long-ping": lambda r: _raw(r, 0x89, 126, struct.pack("!H", 126)) + b"\0" * 126,
    "stray-continuation": lambda r: _peer(r, Frame(Opcode.CONT, b"x")),
    "text-inside-fragments": lambda r: _peer(
        r, Frame(Opcode.TEXT, b"a", fin=False), Frame(Opcode.TEXT, b"b")
    ),
    "close-1-byte": lambda r: _peer(r, Frame(Opcode.CLOSE, b"\x03")),
    "close-code-1005": lambda r: _peer(r, Frame(Opcode.CLOSE, struct.pack("!H", 1005))),
    "close-code-999": lambda r: _peer(r, Frame(Opcode.CLOSE, struct.pack("!H", 999))),
    "close-code-5000": lambda r: _peer(r, Frame(Opcode.CLOSE, struct.pack("!H", 5000))),
    "close-reason-not-utf8": lambda r: _peer(r, Frame(Opcode.CLOSE, b"\x03\xe8\xff")),
    "too-big": lambda r: _peer(r, Frame(Opcode.BINARY, bytes(1001))),
    "too-big-fragmented": lambda r: _peer(
        r, Frame(Opcode.BINARY, bytes(600), fin=False), Frame(Opcode.CONT, bytes(600))
    ),
}


def unmasked_to_server(r: Role) -> bytes:
    return b"\x81\x02hi" if r is Role.SERVER else encode_frame(Frame(Opcode.TEXT, b"hi"), b"abcd")


BAD_INPUT["wrong-masking"] = unmasked_to_server


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_both_engines_fail_bad_input_with_the_same_code(our_role: Role, case: str) -> None:
    wire = BAD_INPUT[case](our_role)
    ours = ours_open(our_role, max_message_size=1000)
    ws = ws_open(our_role, max_size=1000)  # the same role: both receive the same bytes
    events = ours.receive_data(wire)
    assert isinstance(events[-1], ProtocolFailure), events
    ws.receive_data(wire)
    ws_out, _ = ws_output(ws)
    # Both engines play ``our_role``, so both send unmasked frames exactly when it is the server.
    (ws_close,) = FrameParser(require_mask=our_role is Role.CLIENT).feed(ws_out)
    ws_code = parse_close_payload(ws_close.payload)[0]
    our_close = FrameParser(require_mask=our_role is Role.CLIENT).feed(ours.data_to_send())[-1]
    assert parse_close_payload(our_close.payload)[0] == ws_code == events[-1].close_code


# -- property: any conversation, either direction, any chunking ------------------------------------


STEP = st.one_of(
    st.tuples(st.just("text"), st.text(max_size=30), st.integers(0, 3)),
    st.tuples(st.just("binary"), st.binary(max_size=200), st.integers(0, 3)),
    st.tuples(st.just("ping"), st.binary(max_size=20), st.just(0)),
)


def fragments(raw: bytes, n: int) -> list[bytes]:
    """``raw`` cut into ``n + 1`` pieces of roughly equal size (pieces may be empty)."""
    size = len(raw) // (n + 1) + 1
    return [raw[i * size : (i + 1) * size] for i in range(n + 1)]


def expected_of(steps: list[tuple[str, object, int]]) -> list[tuple[str, object]]:
    return [(kind.upper(), data) for kind, data, _ in steps]


@settings(max_examples=80, deadline=None)
@given(
    steps=st.lists(STEP, min_size=1, max_size=6),
    cuts=st.lists(st.integers(0, 1 << 12), max_size=8),
    our_role=st.sampled_from([Role.SERVER, Role.CLIENT]),
)
def test_random_conversations_from_us_to_websockets(
    steps: list[tuple[str, object, int]], cuts: list[int], our_role: Role
) -> None:
    ours, ws = ours_open(our_role), ws_open(other(our_role))
    wire = b""
    for kind, data, n in steps:
        if kind == "ping":
            wire += ours.send_ping(data)  # type: ignore[arg-type]
            continue
        raw = data.encode() if kind == "text" else data  # type: ignore[union-attr]
        pieces = fragments(raw, n)  # type: ignore[arg-type]
        if kind == "text" and n:
            # send_text takes a str: start with an empty first fragment, then raw pieces.
            wire += ours.send_text("", fin=False)
        elif kind == "text":
            wire += ours.send_text(data)  # type: ignore[arg-type]
            continue
        else:
            wire += ours.send_binary(pieces.pop(0), fin=not pieces)
        for i, piece in enumerate(pieces):
            wire += ours.send_continuation(piece, fin=i == len(pieces) - 1)
    wire += ours.send_close(1000, "end")
    got = ws_messages(ws_receive(ws, wire, cuts))
    assert got == [*expected_of(steps), ("CLOSE", encode_close_payload(1000, "end"))]
    assert ws.state is WsState.CLOSING
    pongs = [("PONG", d) for k, d, _ in steps if k == "ping"]
    back, _ = ws_output(ws)
    assert our_messages(ours.receive_data(back)) == [*pongs, ("CLOSE", (1000, "end"))]


@settings(max_examples=80, deadline=None)
@given(
    steps=st.lists(STEP, min_size=1, max_size=6),
    cuts=st.lists(st.integers(0, 1 << 12), max_size=8),
    our_role=st.sampled_from([Role.SERVER, Role.CLIENT]),
)
def test_random_conversations_from_websockets_to_us(
    steps: list[tuple[str, object, int]], cuts: list[int], our_role: Role
) -> None:
    ours, ws = ours_open(our_role), ws_open(other(our_role))
    for kind, data, n in steps:
        if kind == "ping":
            ws.send_ping(data)  # type: ignore[arg-type]
            continue
        raw = data.encode() if kind == "text" else data  # type: ignore[union-attr]
        first, *rest = fragments(raw, n)  # type: ignore[arg-type]
        (ws.send_text if kind == "text" else ws.send_binary)(first, fin=not rest)
        for i, piece in enumerate(rest):
            ws.send_continuation(piece, fin=i == len(rest) - 1)
    ws.send_close(1001, "bye")
    wire, _ = ws_output(ws)
    events = [e for chunk in split(wire, cuts) for e in ours.receive_data(chunk)]
    assert our_messages(events) == [*expected_of(steps), ("CLOSE", (1001, "bye"))]
    frames = ws_receive(ws, ours.data_to_send())
    assert ws_messages(frames) == [
        *[("PONG", d) for k, d, _ in steps if k == "ping"],
        ("CLOSE", encode_close_payload(1001)),
    ]
    messages = [e for e in events if isinstance(e, (TextReceived, BinaryReceived))]
    sent = [n for kind, _, n in steps if kind != "ping"]
    assert [e.frames for e in messages] == [n + 1 for n in sent]


def test_fragments_helper_keeps_every_byte() -> None:
    """``fragments`` keeps every byte, in order, in n + 1 pieces."""
    for raw, n in itertools.product([b"", b"a", b"abcdefg"], range(4)):
        pieces = fragments(raw, n)
        assert len(pieces) == n + 1 and b"".join(pieces) == raw
