"""permessage-deflate: negotiation, round trips, differential against websockets, and bombs."""

from __future__ import annotations

import itertools
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.extensions.base import Extension
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import Frame as WsFrame
from websockets.frames import Opcode as WsOpcode

from wslab.foundation.codes import Opcode
from wslab.foundation.deflate import (
    DeflateParams,
    Deflater,
    DeflateSettings,
    Inflater,
    accept_response,
    client_offer,
    negotiate,
    parse_extensions,
)
from wslab.foundation.errors import InvalidHandshakeResponse, PayloadTooBig
from wslab.foundation.frames import Frame, encode_frame
from wslab.foundation.protocol import (
    BinaryReceived,
    PingReceived,
    Protocol,
    ProtocolFailure,
    Role,
    TextReceived,
)

CHAT = (
    '{"type": "chat:message", "room": "lobby", "content": "hello there, how are you?"}' * 3
).encode()

# -- negotiation -----------------------------------------------------------------------------------


def test_parse_several_offers_and_quoted_values() -> None:
    parsed = parse_extensions(
        ['permessage-deflate; client_max_window_bits="10", x-foo', "permessage-deflate"]
    )
    assert parsed == [
        ("permessage-deflate", [("client_max_window_bits", "10")]),
        ("x-foo", []),
        ("permessage-deflate", []),
    ]
    with pytest.raises(ValueError):
        parse_extensions(["permessage-deflate; =3"])


def test_server_accepts_the_first_acceptable_offer() -> None:
    offers = [
        "permessage-deflate; unknown_param, permessage-deflate; server_no_context_takeover;"
        " server_no_context_takeover",
        "permessage-deflate; client_max_window_bits; server_max_window_bits=10",
    ]
    params = negotiate(offers, DeflateSettings(max_window_bits=15))
    assert params == DeflateParams(server_max_window_bits=10, client_max_window_bits=15)
    assert params.header() == "permessage-deflate; server_max_window_bits=10"


@pytest.mark.parametrize(
    "offer",
    [
        "x-webkit-deflate-frame",
        "permessage-deflate; foo=1",
        "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
        "permessage-deflate; server_max_window_bits",  # needs a value
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; client_max_window_bits=07",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; server_max_window_bits=8",  # zlib cannot honour it
    ],
)
def test_server_declines_bad_offers(offer: str) -> None:
    assert negotiate([offer]) is None


def test_server_caps_the_clients_window_only_when_it_may() -> None:
    s = DeflateSettings(max_window_bits=11)
    assert negotiate(["permessage-deflate"], s) == DeflateParams(
        server_max_window_bits=11, client_max_window_bits=15
    )
    assert negotiate(["permessage-deflate; client_max_window_bits"], s) == DeflateParams(
        server_max_window_bits=11, client_max_window_bits=11
    )


@pytest.mark.parametrize(
    "answer",
    [
        "x-foo",
        "permessage-deflate, permessage-deflate",
        "permessage-deflate; client_max_window_bits",  # a response needs a value
        "permessage-deflate; bogus",
        "permessage-deflate; server_max_window_bits=15",  # we offered 12
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
    ],
)
def test_client_fails_a_response_it_did_not_offer(answer: str) -> None:
    with pytest.raises(InvalidHandshakeResponse):
        accept_response([answer], DeflateSettings(max_window_bits=12))


def test_client_without_an_answer_runs_uncompressed() -> None:
    assert accept_response([]) is None


@pytest.mark.parametrize(
    ("server_reset", "client_reset", "server_bits", "client_bits"),
    list(itertools.product([False, True], [False, True], [None, 9, 12], [None, True, 10])),
)
def test_negotiation_against_websockets_both_ways(
    server_reset: bool, client_reset: bool, server_bits: int | None, client_bits: object
) -> None:
    # websockets client offers -> wslab server answers -> websockets client accepts the answer.
    factory = ClientPerMessageDeflateFactory(
        server_reset,
        client_reset,
        server_bits,
        client_bits,  # type: ignore[arg-type]
    )
    offer = "permessage-deflate" + "".join(
        f"; {k}" if v is None else f"; {k}={v}" for k, v in factory.get_request_params()
    )
    params = negotiate([offer], DeflateSettings(max_window_bits=15))
    assert params is not None
    answer = parse_extensions([params.header()])[0][1]
    ws_ext = factory.process_response_params(answer, [])
    assert isinstance(ws_ext, PerMessageDeflate)
    _exchange(params, ws_ext, wslab_is_server=True)

    # wslab client offers -> websockets server answers -> wslab client accepts.
    ours = DeflateSettings(max_window_bits=server_bits or 15, no_context_takeover=server_reset)
    server = ServerPerMessageDeflateFactory(
        client_no_context_takeover=client_reset, server_max_window_bits=server_bits
    )
    offered = parse_extensions([client_offer(ours)])[0][1]
    response, ws_server_ext = server.process_request_params(offered, [])
    header = "permessage-deflate" + "".join(
        f"; {k}" if v is None else f"; {k}={v}" for k, v in response
    )
    client_params = accept_response([header], ours)
    assert client_params is not None
    _exchange(client_params, ws_server_ext, wslab_is_server=False)


def _exchange(params: DeflateParams, ws_ext: Extension, *, wslab_is_server: bool) -> None:
    """Messages compressed by each side inflate on the other, several in a row."""
    deflater = params.deflater(server=wslab_is_server, settings=DeflateSettings(max_window_bits=15))
    inflater = params.inflater(server=wslab_is_server)
    for i in range(4):
        message = CHAT + str(i).encode()
        ours = deflater.compress(message)
        decoded = ws_ext.decode(WsFrame(WsOpcode.TEXT, ours, rsv1=True))
        assert decoded.data == message
        theirs = ws_ext.encode(WsFrame(WsOpcode.TEXT, message))
        assert theirs.rsv1
        assert inflater.inflate(bytes(theirs.data), fin=True, limit=None) == message


# -- messages --------------------------------------------------------------------------------------


def test_tail_removed_and_context_takeover_shrinks_repeats() -> None:
    keep, reset = Deflater(12), Deflater(12, no_context_takeover=True)
    first = keep.compress(CHAT)
    assert not first.endswith(b"\x00\x00\xff\xff")
    assert len(keep.compress(CHAT)) < len(first) // 4  # the window remembers the last message
    assert len(reset.compress(CHAT)) == len(reset.compress(CHAT))
    assert reset.memory == 0 and keep.memory > 0


@settings(max_examples=60, deadline=None)
@given(
    messages=st.lists(st.binary(max_size=3000) | st.just(CHAT), min_size=1, max_size=5),
    cut=st.lists(st.integers(min_value=1, max_value=400), min_size=1, max_size=8),
    reset=st.booleans(),
    bits=st.integers(min_value=9, max_value=15),
)
def test_round_trip_under_any_fragmentation(
    messages: list[bytes], cut: list[int], reset: bool, bits: int
) -> None:
    deflater = Deflater(bits, no_context_takeover=reset)
    inflater = Inflater(bits, no_context_takeover=reset)
    for message in messages:
        # Fragment the message itself; each fragment is sync-flushed, the last loses its tail.
        pieces, pos = [], 0
        for size in cut:
            pieces.append(message[pos : pos + size])
            pos += size
        pieces.append(message[pos:])
        out = b"".join(
            inflater.inflate(
                deflater.compress(p, fin=i == len(pieces) - 1), fin=i == len(pieces) - 1, limit=None
            )
            for i, p in enumerate(pieces)
        )
        assert out == message


def _bomb(size: int, *, final_block: bool = False) -> bytes:
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    out = z.compress(b"\x00" * size) + (z.flush() if final_block else z.flush(zlib.Z_SYNC_FLUSH))
    return out[:-4] if out.endswith(b"\x00\x00\xff\xff") else out


@pytest.mark.parametrize(
    "bomb",
    [
        _bomb(50_000_000),  # 50 MB of zeros in ~50 KB
        _bomb(2_000_000, final_block=True),  # a stream with a BFINAL block
        _bomb(300_000) * 1,
    ],
)
def test_bombs_are_stopped_at_the_limit(bomb: bytes) -> None:
    inflater = Inflater(15)
    assert len(bomb) < 100_000
    with pytest.raises(PayloadTooBig) as info:
        inflater.inflate(bomb, fin=True, limit=65536)
    assert info.value.close_code == 1009


def test_bomb_spread_over_fragments_counts_the_whole_message() -> None:
    deflater, inflater = Deflater(15), Inflater(15)
    budget = 100_000
    with pytest.raises(PayloadTooBig):
        for _ in range(100):
            out = inflater.inflate(
                deflater.compress(b"\x00" * 10_000, fin=False), fin=False, limit=budget
            )
            budget -= len(out)


# -- in the Protocol -------------------------------------------------------------------------------

PARAMS = DeflateParams(server_max_window_bits=12, client_max_window_bits=12)


def _pair(
    params: DeflateParams | None = PARAMS, limit: int | None = None
) -> tuple[Protocol, Protocol]:
    server = Protocol(Role.SERVER, deflate=params, max_message_size=limit)
    client = Protocol(Role.CLIENT, deflate=params, max_message_size=limit)
    server.open(now=0.0)
    client.open(now=0.0)
    return server, client


def test_protocols_exchange_compressed_messages_under_any_chunking() -> None:
    server, client = _pair()
    wire = client.send_text(CHAT.decode()) + client.send_ping(b"hi") + client.send_binary(b"x")
    assert wire[0] & 0x40  # RSV1 on the compressed text
    assert len(wire) < len(CHAT)
    events = [e for i in range(len(wire)) for e in server.receive_data(wire[i : i + 1])]
    assert events == [TextReceived(CHAT.decode()), PingReceived(b"hi"), BinaryReceived(b"x")]
    # The short binary message stayed below the threshold: sent uncompressed, without RSV1.
    back = server.send_text(CHAT.decode(), fin=False) + server.send_continuation(b"!", fin=True)
    assert back[0] & 0x40
    assert client.receive_data(back) == [TextReceived(CHAT.decode() + "!", 2)]


def _client_frame(frame: Frame) -> bytes:
    return encode_frame(frame, b"\x01\x02\x03\x04")


@pytest.mark.parametrize(
    ("params", "frame"),
    [
        (None, Frame(Opcode.TEXT, b"hi", rsv1=True)),  # RSV1 without the extension
        (PARAMS, Frame(Opcode.PING, b"", rsv1=True)),  # control frames are never compressed
    ],
)
def test_rsv1_where_it_does_not_belong_fails_with_1002(
    params: DeflateParams | None, frame: Frame
) -> None:
    server, _ = _pair(params)
    (failure,) = server.receive_data(_client_frame(frame))
    assert isinstance(failure, ProtocolFailure) and failure.close_code == 1002


def test_rsv1_on_a_continuation_fails_with_1002() -> None:
    server, _ = _pair()
    first = Deflater(12).compress(CHAT, fin=False)
    wire = _client_frame(Frame(Opcode.TEXT, first, fin=False, rsv1=True))
    wire += _client_frame(Frame(Opcode.CONT, b"\x00", fin=True, rsv1=True))
    (failure,) = server.receive_data(wire)
    assert isinstance(failure, ProtocolFailure) and failure.close_code == 1002


@pytest.mark.parametrize("fragments", [1, 8])
def test_a_bomb_closes_with_1009(fragments: int) -> None:
    server, _ = _pair(DeflateParams(), limit=1 << 20)
    deflater = Deflater(15)
    wire = b""
    for i in range(fragments):
        last = i == fragments - 1
        chunk = deflater.compress(b"\x00" * (20_000_000 // fragments), fin=last)
        opcode = Opcode.BINARY if i == 0 else Opcode.CONT
        wire += _client_frame(Frame(opcode, chunk, fin=last, rsv1=i == 0))
    assert len(wire) < 100_000
    events = server.receive_data(wire)
    assert isinstance(events[-1], ProtocolFailure) and events[-1].close_code == 1009
    assert server.assembler.buffered <= 1 << 20


def test_invalid_utf8_inside_compressed_text_is_1007() -> None:
    server, _ = _pair()
    wire = _client_frame(Frame(Opcode.TEXT, Deflater(12).compress(b"ok \xff" * 30), rsv1=True))
    (failure,) = server.receive_data(wire)
    assert isinstance(failure, ProtocolFailure) and failure.close_code == 1007
