"""Fuzzing the engine: random and mutated byte streams, in random chunks, into both roles.

Whatever arrives, :meth:`Protocol.receive_data` must only ever return events — a clean
:class:`ProtocolFailure` for a violation — and never raise. After a failure the engine's output
must end with a valid close frame carrying the failure's code, and nothing else may happen.
Hypothesis explores small inputs cleverly; a seeded loop adds volume with reproducible cases.
"""

from __future__ import annotations

import random
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wslab.foundation.codes import Opcode
from wslab.foundation.errors import ConnectionBroken, ProtocolError
from wslab.foundation.frames import Frame, FrameParser, encode_frame, parse_close_payload
from wslab.foundation.protocol import (
    BinaryReceived,
    CloseReceived,
    PingReceived,
    PongReceived,
    Protocol,
    ProtocolFailure,
    Role,
    TextReceived,
)
from wslab.foundation.state import ConnectionState

EVENT_TYPES = (
    TextReceived,
    BinaryReceived,
    PingReceived,
    PongReceived,
    CloseReceived,
    ProtocolFailure,
)
LIMITS = [
    {},
    {"max_frame_size": 300, "max_message_size": 600},
    {"max_frame_size": 64},
]


def run_stream(role: Role, chunks: list[bytes], limits: dict[str, int]) -> None:
    """Feed ``chunks`` to a fresh protocol and check every invariant of the engine's reaction."""
    proto = Protocol(role, now=0.0, **limits)  # type: ignore[arg-type]
    proto.open(now=0.0)
    output = bytearray()
    finished = False  # a close frame or a failure ends what the peer can tell us
    for chunk in chunks:
        events = proto.receive_data(chunk)  # must never raise
        output += proto.data_to_send()
        if finished:
            assert events == []
            continue
        for i, event in enumerate(events):
            assert isinstance(event, EVENT_TYPES), event
            if isinstance(event, (ProtocolFailure, CloseReceived)):
                assert i == len(events) - 1, events
                finished = True
            if isinstance(event, ProtocolFailure):
                assert isinstance(event.error, ProtocolError)
                assert event.close_code in (1002, 1007, 1009)
                assert proto.failure is event.error

    # Everything the engine wrote is well-formed, masked exactly when it is the client.
    parser = FrameParser(require_mask=role is Role.CLIENT)
    sent = parser.feed(bytes(output))
    assert parser.buffered == 0
    assert all(f.opcode in (Opcode.PONG, Opcode.CLOSE) for f in sent)
    closes = [f for f in sent if f.opcode is Opcode.CLOSE]
    assert len(closes) <= 1 and (not closes or sent[-1] is closes[0])  # nothing after a close
    if proto.failure is not None:
        assert sent[-1].opcode is Opcode.CLOSE
        assert parse_close_payload(sent[-1].payload)[0] == proto.failure.close_code
        assert proto.close_expected and proto.state is ConnectionState.CLOSING
        with pytest.raises(ConnectionBroken):
            proto.send_text("after the failure")
    elif proto.close_received is not None:
        assert sent[-1].opcode is Opcode.CLOSE and proto.close_expected
    else:
        assert not closes and proto.state is ConnectionState.OPEN
    proto.connection_lost(now=1.0)
    assert proto.state is ConnectionState.CLOSED


def valid_stream(rng: random.Random, role: Role) -> bytes:
    """A plausible stream a peer of ``role`` might send: messages, fragments, pings, a close."""
    key = (lambda: rng.randbytes(4)) if role is Role.SERVER else (lambda: None)
    frames: list[Frame] = []
    for _ in range(rng.randint(1, 6)):
        kind = rng.choice(["text", "binary", "frag", "ping", "pong", "close"])
        if kind == "text":
            frames.append(Frame(Opcode.TEXT, "hé€𝄞x".encode() * rng.randint(0, 30)))
        elif kind == "binary":
            frames.append(Frame(Opcode.BINARY, rng.randbytes(rng.choice([0, 5, 126, 400]))))
        elif kind == "frag":
            opcode = rng.choice([Opcode.TEXT, Opcode.BINARY])
            frames += [Frame(opcode, b"ab", fin=False), Frame(Opcode.PING, b"!"),
                       Frame(Opcode.CONT, "€".encode(), fin=True)]  # fmt: skip
        elif kind in ("ping", "pong"):
            frames.append(Frame(Opcode[kind.upper()], rng.randbytes(rng.randint(0, 125))))
        else:
            frames.append(Frame(Opcode.CLOSE, b"\x03\xe8" + b"bye"))
    return b"".join(encode_frame(f, key()) for f in frames)


def mutate(rng: random.Random, data: bytes) -> bytes:
    """Bit flips, truncation, insertions and deletions, a few at a time."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.choice(["flip", "truncate", "insert", "delete", "byte"])
        pos = rng.randint(0, max(len(buf) - 1, 0))
        if op == "flip" and buf:
            buf[pos] ^= 1 << rng.randint(0, 7)
        elif op == "truncate":
            del buf[pos:]
        elif op == "insert":
            buf[pos:pos] = rng.randbytes(rng.randint(1, 8))
        elif op == "delete":
            del buf[pos : pos + rng.randint(1, 8)]
        elif buf:
            buf[pos] = rng.choice([0x00, 0x7E, 0x7F, 0x80, 0xFF, rng.randint(0, 255)])
    return bytes(buf)


def chunk(rng: random.Random, data: bytes) -> list[bytes]:
    """Cut ``data`` at random points (sometimes into single bytes)."""
    if rng.random() < 0.1:
        return [data[i : i + 1] for i in range(len(data))]
    cuts = sorted(rng.randint(0, len(data)) for _ in range(rng.randint(0, 6)))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in pairwise(bounds)]


# -- hypothesis --------------------------------------------------------------------------------------


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    return [data[a:b] for a, b in pairwise(bounds)]


FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(
    data=st.binary(max_size=600),
    cuts=st.lists(st.integers(0, 1 << 16), max_size=8),
    role=st.sampled_from(list(Role)),
    limits=st.sampled_from(LIMITS),
)
def test_random_bytes_never_raise(
    data: bytes, cuts: list[int], role: Role, limits: dict[str, int]
) -> None:
    run_stream(role, split(data, cuts), limits)


@FUZZ
@given(
    seed=st.integers(0, 2**32 - 1),
    role=st.sampled_from(list(Role)),
    limits=st.sampled_from(LIMITS),
    mutations=st.lists(
        st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), min_size=1, max_size=5
    ),
    cuts=st.lists(st.integers(0, 1 << 16), max_size=8),
)
def test_mutated_valid_streams_never_raise(
    seed: int,
    role: Role,
    limits: dict[str, int],
    mutations: list[tuple[int, int]],
    cuts: list[int],
) -> None:
    data = bytearray(valid_stream(random.Random(seed), role))
    for pos, value in mutations:  # hypothesis chooses where to write which byte
        if data:
            data[pos % len(data)] = value
    run_stream(role, split(bytes(data), cuts), limits)


@FUZZ
@given(
    prefix_seed=st.integers(0, 2**32 - 1),
    garbage=st.binary(min_size=1, max_size=64),
    role=st.sampled_from(list(Role)),
)
def test_garbage_after_valid_frames_never_raises(
    prefix_seed: int, garbage: bytes, role: Role
) -> None:
    data = valid_stream(random.Random(prefix_seed), role) + garbage
    run_stream(role, [data], {})
    run_stream(role, [data[: len(data) // 2], data[len(data) // 2 :]], LIMITS[1])


# -- a seeded loop: volume, reproducible from the printed seed ------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_seeded_random_mutations(seed: int) -> None:
    rng = random.Random(0x5EED + seed)
    for case in range(250):
        role = rng.choice(list(Role))
        source = rng.random()
        if source < 0.2:
            data = rng.randbytes(rng.randint(0, 400))
        else:
            data = mutate(rng, valid_stream(rng, role))
        limits = rng.choice(LIMITS)
        try:
            run_stream(role, chunk(rng, data), limits)
        except AssertionError as exc:  # pragma: no cover - reports the failing case
            raise AssertionError(f"seed {seed} case {case}: {role} {limits} {data!r}") from exc


# -- close payloads and HTTP heads: structured inputs ------------------------------------------

from wslab.foundation.errors import HandshakeError, InvalidCloseFrame, InvalidUTF8  # noqa: E402
from wslab.foundation.frames import encode_close_payload  # noqa: E402
from wslab.foundation.handshake import reject, validate_upgrade_request  # noqa: E402
from wslab.foundation.http import RequestParser, ResponseParser  # noqa: E402


@FUZZ
@given(code=st.integers(0, 0xFFFF), reason=st.binary(max_size=130))
def test_close_payloads_parse_or_fail_cleanly(code: int, reason: bytes) -> None:
    """Any code and reason bytes: a pair that re-encodes identically, or 1002/1007."""
    payload = code.to_bytes(2, "big") + reason
    try:
        parsed = parse_close_payload(payload)
    except (InvalidCloseFrame, InvalidUTF8) as error:
        assert error.close_code in (1002, 1007)
        return
    assert encode_close_payload(*parsed) == payload


HEADER_NAMES = st.sampled_from(["Host", "Upgrade", "Connection", "Sec-WebSocket-Key",
    "Sec-WebSocket-Version", "Origin", "Content-Length", "Transfer-Encoding", "X-A b", ""])  # fmt: skip
HEADER_VALUES = st.sampled_from(["websocket", "Upgrade", "13", "dGhlIHNhbXBsZSBub25jZQ==",
    "localhost", "chunked", "5", "", " x ", "a\rb", "é"]) | st.text(max_size=20)  # fmt: skip


@FUZZ
@given(
    method=st.sampled_from(["GET", "POST", "HEAD", "G T", ""]),
    target=st.sampled_from(["/", "/ws?room=a&room=b", "/%zz", "*", "http://h/x", ""]),
    version=st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.10", "http/1.1"]),
    fields=st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=8),
    eol=st.sampled_from(["\r\n", "\n", "\r"]),
    cut=st.integers(0, 400),
)
def test_request_heads_parse_or_get_a_status(
    method: str, target: str, version: str, fields: list[tuple[str, str]], eol: str, cut: int
) -> None:
    """Any head, fed in two pieces: a Request (then an Upgrade or an error), or 4xx/5xx."""
    lines = [f"{method} {target} {version}", *(f"{n}: {v}" for n, v in fields)]
    head = (eol.join(lines) + eol + eol).encode("utf-8")
    parser = RequestParser(max_head_size=512)
    try:
        cut = min(cut, len(head) - 1)
        request = parser.feed(head[:cut]) or parser.feed(head[cut:])
        if request is not None:
            validate_upgrade_request(request)
    except HandshakeError as error:
        assert 400 <= error.status < 600
        response = ResponseParser().feed(reject(error))
        assert response is not None and response.status == error.status


@pytest.mark.parametrize("status", [b"000", b"099", b"600", b"901", b"999"])
def test_a_status_code_outside_100_to_599_is_a_malformed_response(status: bytes) -> None:
    """Found by atheris: ``HTTP/1.1 901`` parsed, and the client's error then carried 901 as
    the status the server "sent". RFC 9110 15: codes outside 100..599 are invalid."""
    head = b"HTTP/1.1 " + status + b" Odd\r\nUpgrade: websocket\r\n\r\n"
    with pytest.raises(HandshakeError, match="malformed status line"):
        ResponseParser().feed(head)
