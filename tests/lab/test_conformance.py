"""Tests of the conformance runner: its codec, its case table, its judge, and real runs.

The judge is tested against small echo servers written here on raw asyncio streams, each
broken in one known way, and against the ``websockets`` library's echo server as a reference.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import os
import struct
import zlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection, serve

from wslab.foundation.deflate import DeflateParams
from wslab.foundation.errors import ConfigError
from wslab.lab.conformance import (
    Observation,
    Report,
    RunConfig,
    Verdict,
    all_cases,
    judge,
    main,
    run_case,
    run_cases,
    select_cases,
)
from wslab.lab.conformance.cases import SUBCATEGORIES, Case, Deflated, Ev, Generated, Repeat
from wslab.lab.conformance.payloads import KINDS, TEXT_KINDS, generate
from wslab.lab.conformance.pmd import (
    Agreement,
    AnswerError,
    Compression,
    WireInfo,
    check_answer,
    offer_problem,
)
from wslab.lab.conformance.wire import (
    FrameReader,
    accept_for,
    build_request,
    check_response,
    encode_frame,
    header_values,
    mask_bytes,
    parse_close_payload,
    valid_wire_close_code,
)

# -- the codec -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "header_len", "marker"),
    [(0, 6, 0), (125, 6, 125), (126, 8, 126), (65535, 8, 126), (65536, 14, 127)],
)
def test_encode_frame_uses_the_minimal_length_form(
    length: int, header_len: int, marker: int
) -> None:
    payload = os.urandom(length)
    key = b"\x01\x02\x03\x04"
    data = encode_frame(0x2, payload, mask_key=key)
    assert data[0] == 0x82
    assert data[1] == 0x80 | marker  # always masked, as a client must
    assert len(data) == header_len + length
    assert data[header_len - 4 : header_len] == key
    assert mask_bytes(data[header_len:], key) == payload


def test_encode_frame_writes_any_header_asked_for() -> None:
    data = encode_frame(0xB, b"x", fin=False, rsv=5)
    assert data[0] == 0x5B  # FIN clear, RSV1+RSV3, reserved opcode 11
    with pytest.raises(ValueError):
        encode_frame(16)


def test_frame_reader_parses_split_input_and_notes_violations() -> None:
    reader = FrameReader(max_frame=1 << 20)
    good = bytes([0x81, 5]) + b"hello"
    non_minimal = bytes([0x82, 126]) + struct.pack("!H", 3) + b"abc"
    masked = bytes([0x89, 0x80 | 2]) + b"\x00\x00\x00\x00" + b"hi"
    stream = good + non_minimal + masked
    frames = []
    for i in range(len(stream)):  # one byte at a time: parsing must be incremental
        frames += reader.feed(stream[i : i + 1])
    assert [(f.opcode, f.payload) for f in frames] == [(1, b"hello"), (2, b"abc"), (9, b"hi")]
    assert any("minimally" in v for v in reader.violations)
    assert any("masked" in v for v in reader.violations)


def test_frame_reader_flags_bad_control_frames_and_rsv() -> None:
    reader = FrameReader(max_frame=1 << 20)
    reader.feed(
        bytes([0x09, 0])
        + bytes([0xC1, 0])
        + bytes([0x8A, 126])
        + struct.pack("!H", 126)
        + b"p" * 126
    )
    joined = " ".join(reader.violations)
    assert "fragmented control" in joined
    assert "RSV" in joined
    assert "more than 125" in joined


def test_frame_reader_refuses_frames_over_its_limit() -> None:
    with pytest.raises(ValueError):
        FrameReader(max_frame=10).feed(bytes([0x82, 11]))


def test_close_payload_parsing() -> None:
    assert parse_close_payload(b"") == (None, b"", None)
    assert parse_close_payload(b"\x03")[2] is not None
    assert parse_close_payload(struct.pack("!H", 1000) + b"bye") == (1000, b"bye", None)
    assert "not allowed" in str(parse_close_payload(struct.pack("!H", 1005))[2])
    assert "UTF-8" in str(parse_close_payload(struct.pack("!H", 1000) + b"\xff")[2])
    assert [
        c for c in (999, 1000, 1004, 1012, 1015, 2999, 3000, 4999, 5000) if valid_wire_close_code(c)
    ] == [
        1000,
        1012,
        3000,
        4999,
    ]


def test_handshake_response_check() -> None:
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    assert accept_for(key) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # the example of RFC 6455 section 1.3
    ok = (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept_for(key)}"
    ).encode()
    assert check_response(ok, key) is None
    assert "101" in str(check_response(b"HTTP/1.1 200 OK\r\n", key))
    assert "Accept" in str(check_response(ok.replace(b"s3pP", b"XXXX"), key))


# -- the case table ------------------------------------------------------------------------------


def test_case_table_covers_every_autobahn_subcategory() -> None:
    cases = all_cases()
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids))
    assert len(cases) >= 300
    subs = {c.subcategory for c in cases}
    expected = {
        "1.1",
        "1.2",
        "2",
        "3",
        "4.1",
        "4.2",
        "5",
        "7.1",
        "7.3",
        "7.5",
        "7.7",
        "7.9",
        "7.13",
        "10.1",
    }
    expected |= {f"6.{i}" for i in range(1, 24)} | {f"9.{i}" for i in range(1, 9)}
    expected |= {f"12.{i}" for i in range(1, 7)} | {f"13.{i}" for i in range(1, 8)}
    assert expected <= subs
    assert {f"12.{i}" for i in range(1, 7)} | {
        f"13.{i}" for i in range(1, 8)
    } <= SUBCATEGORIES.keys()
    assert {f"6.{i}" for i in range(5, 24)} <= SUBCATEGORIES.keys()
    # Case counts of a few categories, as in Autobahn.
    assert len(select_cases("1.*")) == 16
    assert len(select_cases("2.*")) == 11
    assert len(select_cases("5.*")) == 20
    assert len(select_cases("9.*")) == 54
    assert len(select_cases("12.*")) == 5 * 12 + 8
    assert len(select_cases("13.*")) == 32
    # Only the compression cases offer an extension (12.6.5 checks RSV1 without one).
    offering = {c.id for c in cases if c.offers is not None}
    assert offering == {c.id for c in cases if c.category in (12, 13)} - {"12.6.5"}
    sizes = {len(c.expected[0].data) for c in select_cases("12.1")}
    assert {16, 64, 256, 1024, 4096, 8192, 16384, 32768, 65536, 131072} <= sizes


def test_utf8_cases_agree_with_a_strict_decoder() -> None:
    # Every 6.x case that sends one text frame expects an echo exactly when the payload is UTF-8.
    checked = 0
    for case in all_cases():
        if case.category != 6 or int(case.id.split(".")[1]) < 5:
            continue
        (step,) = case.steps
        (frame,) = step.frames  # type: ignore[union-attr]
        payload = frame.payload
        assert isinstance(payload, bytes)
        try:
            payload.decode("utf-8")
            valid = True
        except UnicodeDecodeError:
            valid = False
        assert (case.expected == (Ev("message", payload, 1),)) is valid, case.id
        assert case.closing.codes == (frozenset({1000}) if valid else frozenset({1007})), case.id
        checked += 1
    assert checked == 132


def test_select_cases_patterns() -> None:
    assert [c.id for c in select_cases("6.4")] == ["6.4.1", "6.4.2", "6.4.3", "6.4.4"]
    assert [c.id for c in select_cases(["2.5", "10.*"])] == ["2.5", "10.1.1"]
    assert "3.1" not in [c.id for c in select_cases("3.*", exclude="3.1")]
    with pytest.raises(ConfigError):
        select_cases("8.*")


def test_quick_mode_shrinks_only_categories_9_and_12() -> None:
    full = {c.id: c for c in all_cases(False)}
    quick = {c.id: c for c in all_cases(True)}
    assert full.keys() == quick.keys()
    assert full["1.1.7"] == quick["1.1.7"]
    assert full["13.4.1"] == quick["13.4.1"]
    assert (len(full["12.3.4"].expected), len(quick["12.3.4"].expected)) == (10, 4)
    big = full["9.1.6"].expected[0].data
    small = quick["9.1.6"].expected[0].data
    assert isinstance(big, Repeat) and isinstance(small, Repeat)
    assert big.length == 16 * 1024 * 1024 > small.length


# -- the judge on synthetic observations ---------------------------------------------------------


def _case(case_id: str) -> Case:
    (case,) = [c for c in all_cases() if c.id == case_id]
    return case


def test_judge_strict_failure_case() -> None:
    case = _case("2.5")  # ping of 126 bytes: the server must fail with 1002
    ok = Observation(close_seen=True, close_code=1002, server_closed_first=True, tcp="server")
    assert judge(case, ok)[0] is Verdict.OK
    dropped = Observation(tcp="server")
    verdict, text = judge(case, dropped)
    assert verdict is Verdict.NON_STRICT and "without sending a close frame" in text
    wrong = Observation(close_seen=True, close_code=1011, server_closed_first=True, tcp="server")
    assert judge(case, wrong)[0] is Verdict.FAILED
    lingering = Observation(
        close_seen=True, close_code=1002, server_closed_first=True, tcp="client"
    )
    assert judge(case, lingering)[0] is Verdict.FAILED
    ignored = Observation(
        events=[Ev("pong", b"\xfe" * 126)], close_seen=True, close_code=1000, tcp="server"
    )
    assert judge(case, ignored)[0] is Verdict.FAILED


def test_judge_clean_close_case() -> None:
    case = _case("2.2")
    echo = [Ev("pong", b"Hello, world!")]
    assert (
        judge(case, Observation(events=echo, close_seen=True, close_code=1000, tcp="server"))[0]
        is Verdict.OK
    )
    # Dropping TCP instead of answering our close is never acceptable for a clean close.
    assert judge(case, Observation(events=echo, tcp="server"))[0] is Verdict.FAILED
    # The server closing first is the wrong endpoint.
    first = Observation(
        events=echo, close_seen=True, close_code=1000, server_closed_first=True, tcp="server"
    )
    assert judge(case, first)[0] is Verdict.FAILED
    bad = Observation(
        events=echo, close_seen=True, close_code=1000, tcp="server", violations=["masked"]
    )
    assert judge(case, bad)[0] is Verdict.FAILED


def test_judge_lenient_codes_and_informational() -> None:
    case = _case("7.5.1")
    assert judge(case, Observation(close_seen=True, close_code=1007, tcp="server"))[0] is Verdict.OK
    assert (
        judge(case, Observation(close_seen=True, close_code=1002, tcp="server"))[0]
        is Verdict.NON_STRICT
    )
    assert judge(_case("7.1.6"), Observation(tcp="server"))[0] is Verdict.INFORMATIONAL
    assert judge(_case("1.1.1"), Observation(error="refused"))[0] is Verdict.FAILED


# -- deliberately wrong echo servers on raw asyncio streams --------------------------------------

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def _server_frame(opcode: int, payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        return bytes([0x80 | opcode, n]) + payload
    if n < 65536:
        return bytes([0x80 | opcode, 126]) + struct.pack("!H", n) + payload
    return bytes([0x80 | opcode, 127]) + struct.pack("!Q", n) + payload


class SloppyServer:
    """A small echo server with switches that break it in known ways.

    ``check_rsv=False``: frames with RSV bits are treated as normal ones.
    ``close_on_error=False``: protocol errors drop TCP without a close frame.
    ``error_code``: the close code used on protocol errors.
    ``check_utf8=True``: text is validated frame by frame (fail fast, close 1007); it cannot see
    inside a frame before the whole frame has arrived.
    ``deflate_answer``: answered to any permessage-deflate offer, whatever it asked; the server
    then inflates RSV1 messages and compresses every echo with a window of ``deflate_window``
    bits, keeping its compressor between messages when ``keep_context`` (whatever it answered),
    and resetting its inflater after each message when ``reset_inflater``.
    ``echo_rsv``: RSV bits set on every uncompressed echo (which no extension allows).
    """

    def __init__(
        self,
        *,
        check_rsv: bool = True,
        close_on_error: bool = True,
        error_code: int = 1002,
        check_utf8: bool = False,
        deflate_answer: str | None = None,
        deflate_window: int = 15,
        keep_context: bool = False,
        reset_inflater: bool = False,
        echo_rsv: int = 0,
    ) -> None:
        self.check_rsv = check_rsv
        self.close_on_error = close_on_error
        self.error_code = error_code
        self.check_utf8 = check_utf8
        self.deflate_answer = deflate_answer
        self.deflate_window = deflate_window
        self.keep_context = keep_context
        self.reset_inflater = reset_inflater
        self.echo_rsv = echo_rsv

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            key = next(
                line.split(b":", 1)[1].strip().decode()
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key:")
            )
            import base64
            import hashlib

            accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
            offered = b"sec-websocket-extensions:" in head.lower()
            deflate = offered and self.deflate_answer is not None
            extension = f"Sec-WebSocket-Extensions: {self.deflate_answer}\r\n" if deflate else ""
            writer.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + f"Sec-WebSocket-Accept: {accept}\r\n{extension}\r\n".encode()
            )
            await self._frames(reader, writer, deflate)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _frames(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, deflate: bool = False
    ) -> None:
        message_op: int | None = None
        parts: list[bytes] = []
        compressed = False
        inflater = zlib.decompressobj(-15)
        compressor = None
        decoder = codecs.getincrementaldecoder("utf-8")()
        while True:
            b0, b1 = await reader.readexactly(2)
            n = b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", await reader.readexactly(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", await reader.readexactly(8))
            key = await reader.readexactly(4)
            payload = mask_bytes(await reader.readexactly(n), key)
            fin, rsv, op = bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0xF
            allowed = 4 if deflate and op in (0x1, 0x2) else 0
            if (rsv & ~allowed and self.check_rsv) or op in (3, 4, 5, 6, 7, 11, 12, 13, 14, 15):
                return await self._fail(writer)
            if op == 0x9:
                writer.write(_server_frame(0xA, payload))
            elif op == 0x8:
                writer.write(_server_frame(0x8, payload[:2]))
                await writer.drain()
                return
            elif op in (0x1, 0x2):
                message_op, parts, compressed = op, [payload], deflate and bool(rsv & 4)
                decoder = codecs.getincrementaldecoder("utf-8")()
            elif op == 0x0 and message_op is not None:
                parts.append(payload)
            if self.check_utf8 and message_op == 0x1 and op in (0x0, 0x1):
                try:
                    decoder.decode(payload, final=fin)
                except UnicodeDecodeError:
                    return await self._fail(writer, 1007)
            if fin and op in (0x0, 0x1, 0x2) and message_op is not None:
                data = b"".join(parts)
                if compressed:
                    if self.reset_inflater:
                        inflater = zlib.decompressobj(-15)
                    try:
                        data = inflater.decompress(data + b"\x00\x00\xff\xff")
                    except zlib.error:
                        return await self._fail(writer, 1007)
                if deflate:
                    if compressor is None or not self.keep_context:
                        compressor = zlib.compressobj(6, zlib.DEFLATED, -self.deflate_window)
                    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
                    writer.write(_server_frame(0x40 | message_op, out[:-4]))  # 0x40: RSV1
                else:
                    writer.write(_server_frame(self.echo_rsv << 4 | message_op, data))
                message_op, parts = None, []
            await writer.drain()

    async def _fail(self, writer: asyncio.StreamWriter, code: int | None = None) -> None:
        if self.close_on_error:
            writer.write(_server_frame(0x8, struct.pack("!H", code or self.error_code)))
            await writer.drain()


async def _start(handler: Callable[..., object]) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)  # type: ignore[arg-type]
    port = server.sockets[0].getsockname()[1]
    return server, f"ws://127.0.0.1:{port}/"


async def test_judge_fails_a_server_that_ignores_rsv_bits() -> None:
    server, url = await _start(SloppyServer(check_rsv=False).handle)
    async with server:
        report = await run_cases(url, "1.1.1,1.2.6,2.1,3.*", timeout=2.0)
    assert report["1.1.1"].verdict is Verdict.OK
    assert report["1.2.6"].verdict is Verdict.OK
    assert report["2.1"].verdict is Verdict.OK
    rsv = report.select("3")
    assert len(rsv) == 7
    assert all(r.verdict is Verdict.FAILED for r in rsv), [(r.id, r.observed) for r in rsv]
    assert not report.passed


async def test_the_same_server_passes_rsv_cases_once_it_checks_them() -> None:
    server, url = await _start(SloppyServer().handle)
    async with server:
        report = await run_cases(url, "3.1,3.5,3.6,3.7,4.1.1,4.2.2", timeout=2.0)
    assert report.passed, report.to_markdown(details=False)


async def test_fail_fast_utf8_is_told_apart_from_failing_at_the_end() -> None:
    server, url = await _start(SloppyServer(check_utf8=True).handle)
    async with server:
        report = await run_cases(url, "6.3.1,6.4", timeout=2.0, pause=0.3)
    assert report["6.3.1"].verdict is Verdict.OK
    # Frame by frame, the server sees the bad frame at once: strict pass.
    assert report["6.4.1"].verdict is Verdict.OK, report["6.4.1"].observed
    assert report["6.4.2"].verdict is Verdict.OK, report["6.4.2"].observed
    # Within one frame it only notices when the frame is complete: non-strict.
    assert report["6.4.3"].verdict is Verdict.NON_STRICT, report["6.4.3"].observed
    assert report["6.4.4"].verdict is Verdict.NON_STRICT, report["6.4.4"].observed


async def test_rsv_bits_on_the_servers_own_frames_fail_the_case() -> None:
    # What the frame parser notes (here RSV2 on every echo) must reach the judge.
    report = await _run_sloppy(SloppyServer(echo_rsv=2), "1.1.2")
    assert report["1.1.2"].verdict is Verdict.FAILED
    assert "RSV bits 010 set without an extension" in report["1.1.2"].observed


async def test_dropping_tcp_instead_of_a_close_frame_is_non_strict() -> None:
    server, url = await _start(SloppyServer(close_on_error=False).handle)
    async with server:
        report = await run_cases(url, "4.1.1", timeout=2.0)
    assert report["4.1.1"].verdict is Verdict.NON_STRICT
    assert not report.passed
    assert report.failures() == [report["4.1.1"]]


async def test_wrong_close_code_fails() -> None:
    server, url = await _start(SloppyServer(error_code=1011).handle)
    async with server:
        report = await run_cases(url, "4.2.1", timeout=2.0)
    assert report["4.2.1"].verdict is Verdict.FAILED
    assert "1011" in report["4.2.1"].observed


async def test_a_server_that_never_closes_fails_within_the_timeout() -> None:
    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Completes the handshake, then never answers anything.
        await SloppyServer().handle(_Stall(reader), writer)

    server, url = await _start(mute)
    async with server:
        result = await run_case(url, _case("2.5"), RunConfig(timeout=0.5))
    assert result.verdict is Verdict.FAILED
    assert "did not end the connection" in result.observed


class _Stall:
    """A reader that hands the handshake through and then blocks forever (a hung server)."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    async def readuntil(self, sep: bytes) -> bytes:
        return await self._reader.readuntil(sep)

    async def readexactly(self, n: int) -> bytes:
        # Swallow everything unanswered until the client gives up and drops the connection.
        while await self._reader.read(4096):
            pass
        raise asyncio.IncompleteReadError(b"", n)


async def test_refused_connection_is_a_failure_not_a_crash() -> None:
    server, url = await _start(SloppyServer().handle)
    server.close()
    await server.wait_closed()
    report = await run_cases(url, "1.1.1", timeout=1.0)
    assert report["1.1.1"].verdict is Verdict.FAILED
    assert "could not open" in report["1.1.1"].observed


# -- permessage-deflate: the runner's side -------------------------------------------------------


def test_request_carries_offers_and_response_headers_are_read() -> None:
    request = build_request("h", 80, "/", "k", extensions=["permessage-deflate", "x; a=1"])
    assert b"\r\nSec-WebSocket-Extensions: permessage-deflate\r\n" in request
    assert b"\r\nSec-WebSocket-Extensions: x; a=1\r\n" in request
    assert b"Extensions" not in build_request("h", 80, "/", "k")  # categories 1-10: no offer
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    head = (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept_for(key)}\r\nsec-websocket-extensions: permessage-deflate"
    ).encode()
    assert "never offered" in str(check_response(head, key))
    assert check_response(head, key, extensions_offered=True) is None
    assert header_values(head, "Sec-WebSocket-Extensions") == ["permessage-deflate"]


def test_frame_reader_allows_rsv1_only_where_an_extension_gives_it_meaning() -> None:
    reader = FrameReader(max_frame=1 << 20, allowed_rsv=4)
    frames = reader.feed(bytes([0xC1, 1]) + b"x")  # RSV1 text: a compressed message
    assert frames[0].rsv == 4 and reader.violations == []
    reader.feed(bytes([0xC9, 0]) + bytes([0xA1, 0]))  # RSV1 ping, then RSV2 text
    joined = " ".join(reader.violations)
    assert "control frame" in joined and "RSV bits 010" in joined


def test_offer_problems_follow_rfc_7692() -> None:
    ok = [("server_no_context_takeover", None), ("client_max_window_bits", None)]
    assert offer_problem("permessage-deflate", ok) is None
    assert offer_problem("permessage-deflate", [("client_max_window_bits", "8")]) is None
    assert "unknown" in str(offer_problem("permessage-deflate", [("x", None)]))
    assert "duplicated" in str(offer_problem("permessage-deflate", ok + ok[:1]))
    assert offer_problem("permessage-deflate", [("server_max_window_bits", None)]) is not None
    assert offer_problem("permessage-deflate", [("server_max_window_bits", "16")]) is not None
    assert offer_problem("permessage-deflate", [("client_no_context_takeover", "1")]) is not None
    assert offer_problem("x-webkit-deflate-frame", []) is not None


def test_check_answer_accepts_only_answers_to_an_acceptable_offer() -> None:
    pmd = "permessage-deflate"
    assert check_answer([pmd], []) is None  # declined
    agreed = check_answer([f"{pmd}; client_max_window_bits=10"], [pmd])
    assert agreed is not None and agreed.client_window == 10  # the offer's value caps our window
    agreed = check_answer(
        [f"{pmd}; server_max_window_bits=10"], [f"{pmd}; server_max_window_bits=9"]
    )
    assert agreed is not None and agreed.params.server_max_window_bits == 9
    bad = [
        ([pmd], [f"{pmd}; client_max_window_bits=10"]),  # not offered: MUST NOT (7.1.2.2)
        ([f"{pmd}; server_no_context_takeover"], [pmd]),  # asked for, dropped
        ([f"{pmd}; server_max_window_bits=10"], [f"{pmd}; server_max_window_bits=12"]),
        ([f"{pmd}; server_max_window_bits=10"], [pmd]),
        ([f"{pmd}; x_unknown, {pmd}"], [f"{pmd}; x_unknown"]),  # accepting the bad offer
        ([f"x-other, {pmd}"], ["x-other"]),
        ([pmd], [f"{pmd}, {pmd}"]),
        ([f"{pmd}; server_max_window_bits=16"], [pmd]),  # the only offer was unacceptable
    ]
    for offers, answer in bad:
        with pytest.raises(AnswerError):
            check_answer(offers, answer)
    # Several offers: the answer may accept the second when the first is unacceptable.
    agreed = check_answer([f"{pmd}; x_unknown", f"{pmd}; server_no_context_takeover"],
                          [f"{pmd}; server_no_context_takeover"])  # fmt: skip
    assert agreed is not None and agreed.params.server_no_context_takeover


@pytest.mark.parametrize(("fragment", "stream"), [(0, False), (100, False), (1000, True)])
@pytest.mark.parametrize("bits", [8, 9, 15])
def test_compression_round_trips_through_a_server_side_inflater(
    fragment: int, stream: bool, bits: int
) -> None:
    params = DeflateParams(client_max_window_bits=bits)
    ours = Compression(Agreement(params, "permessage-deflate", bits))
    theirs = params.inflater(server=True)
    payloads = [
        generate("prose", 5000, 1),
        generate("prose", 5000, 1),
        b"",
        generate("random", 3000, 2),
    ]
    for i, payload in enumerate(payloads):
        frames = ours.message_frames(payload, fragment, stream)
        if fragment and payload and (i != 1 or stream):  # copy 1 deflates to a few bytes
            assert len(frames) > 1
        assert [fin for _, fin in frames] == [False] * (len(frames) - 1) + [True]
        out = b"".join(theirs.inflate(data, fin=fin, limit=None) for data, fin in frames)
        assert out == payload
    # With context takeover and a window larger than the text, a copy costs almost nothing; in
    # a 512-byte window (or stored blocks for 8) it cannot refer back 5000 bytes.
    again = ours.message_frames(payloads[0], 0, False)
    assert (len(again[0][0]) < 100) is (bits == 15)


def test_compression_inflates_bounded_and_notes_the_wire() -> None:
    ours = Compression(Agreement(DeflateParams(), "permessage-deflate", 15))
    bomb = Deflated(Repeat(b"\x00", 4 << 20)).materialize()
    assert len(bomb) < 8 * 1024
    with pytest.raises(ValueError, match="cannot inflate"):
        ours.inflate(bomb, fin=True, limit=1 << 20)
    fresh = Compression(Agreement(DeflateParams(), "permessage-deflate", 15))
    data = Deflated(b"hello hello hello").materialize()
    assert fresh.inflate(data, fin=True, limit=100) == b"hello hello hello"
    info = fresh.finish_message()
    assert info.compressed and info.wire_bytes == len(data)
    with pytest.raises(ValueError, match="cannot inflate"):
        fresh.inflate(b"\xff\xff\xff\xff", fin=True, limit=100)


def test_generated_payloads_are_deterministic_and_of_their_kind() -> None:
    for kind in KINDS:
        for n in (0, 16, 17, 1000, 4099):
            data = generate(kind, n, 7)
            assert len(data) == n
            assert data == Generated(kind, n, 7).materialize()
            if kind in TEXT_KINDS:
                data.decode("utf-8")
        assert generate(kind, 2000, 1) != generate(kind, 2000, 2)
    assert any(b >= 0x80 for b in generate("verse", 4096, 1))  # real multi-byte UTF-8
    random_size = len(zlib.compress(generate("random", 8192, 1)))
    assert random_size > 8192 > 4 * len(zlib.compress(generate("chat", 8192, 1)))


def test_judge_checks_identical_echoes_under_server_no_context_takeover() -> None:
    (case,) = select_cases("13.3.1")
    params = DeflateParams(server_no_context_takeover=True)
    text = b"x" * 100

    def obs(second: bytes) -> Observation:
        return Observation(
            events=[Ev("message", text, 1), Ev("message", text, 1)],
            message_wire=[WireInfo(True, 9, b"a"), WireInfo(True, 9, second)],
            agreement=Agreement(params, "permessage-deflate; server_no_context_takeover", 15),
            close_seen=True,
            close_code=1000,
            tcp="server",
        )

    verdict, observed = judge(case, obs(b"b"))
    assert verdict is Verdict.FAILED and "different deflate bytes" in observed
    # Same bytes: only the (here incomplete) event list is wrong.
    assert "different deflate bytes" not in judge(case, obs(b"a"))[1]


async def _run_sloppy(server: SloppyServer, patterns: str) -> Report:
    srv, url = await _start(server.handle)
    async with srv:
        return await run_cases(url, patterns, timeout=2.0)


async def test_judge_fails_a_server_that_keeps_context_it_promised_to_drop() -> None:
    answer = "permessage-deflate; server_no_context_takeover"
    honest = await _run_sloppy(SloppyServer(deflate_answer=answer), "13.1.1,13.3.1")
    assert honest.passed, honest.to_markdown(details=False)
    liar = await _run_sloppy(SloppyServer(deflate_answer=answer, keep_context=True), "13.3.1")
    assert liar["13.3.1"].verdict is Verdict.FAILED
    assert "cannot inflate" in liar["13.3.1"].observed


async def test_judge_fails_a_server_that_drops_the_context_the_runner_keeps() -> None:
    # The runner keeps its compressor's context unless client_no_context_takeover was agreed; a
    # server that inflates every message from scratch cannot read the repeated copies.
    forgetful = SloppyServer(deflate_answer="permessage-deflate", reset_inflater=True)
    report = await _run_sloppy(forgetful, "13.1.1")
    assert report["13.1.1"].verdict is Verdict.FAILED
    assert "close 1007" in report["13.1.1"].observed
    agreed = "permessage-deflate; client_no_context_takeover"
    ok = SloppyServer(deflate_answer=agreed, reset_inflater=True)
    assert (await _run_sloppy(ok, "13.1.1")).passed


async def test_judge_fails_a_server_that_ignores_the_window_it_agreed() -> None:
    answer = "permessage-deflate; server_max_window_bits=9"
    small = SloppyServer(deflate_answer=answer, deflate_window=9, keep_context=True)
    assert (await _run_sloppy(small, "13.4.1")).passed
    big = SloppyServer(deflate_answer=answer, deflate_window=15, keep_context=True)
    report = await _run_sloppy(big, "13.4.1")
    assert report["13.4.1"].verdict is Verdict.FAILED
    assert "too far back" in report["13.4.1"].observed


async def test_an_answer_to_no_offer_made_fails_the_handshake() -> None:
    server = SloppyServer(deflate_answer="permessage-deflate; client_max_window_bits=10")
    report = await _run_sloppy(server, "13.1.1,13.1.2")
    # 13.1.2 offers client_max_window_bits, 13.1.1 does not: the same answer is wrong there.
    assert report["13.1.2"].verdict is Verdict.OK, report["13.1.2"].observed
    assert report["13.1.1"].verdict is Verdict.FAILED
    assert (
        "client_max_window_bits in the answer to an offer without it" in report["13.1.1"].observed
    )


async def test_a_server_without_the_extension_is_unimplemented_not_failed() -> None:
    report = await _run_sloppy(SloppyServer(), "12.1.1,12.6,13.7.1")
    assert report["12.6.5"].verdict is Verdict.OK  # RSV1 without negotiation: 1002 all the same
    others = [r for r in report if r.id != "12.6.5"]
    assert {r.verdict for r in others} == {Verdict.UNIMPLEMENTED}
    assert "declined permessage-deflate" in others[0].observed
    assert report.passed and report.failures() == []


# -- the reference: the websockets library's echo server -----------------------------------------


@pytest.fixture
async def websockets_url() -> AsyncIterator[str]:
    async def echo(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    async with serve(echo, "127.0.0.1", 0, max_size=16 * 1024 * 1024 + 1024) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/"


async def test_websockets_echo_server_quick_run(websockets_url: str) -> None:
    report = await run_cases(websockets_url, quick=True)
    assert len(report) == len(all_cases(True))
    bad = {r.id: (r.verdict.value, r.observed) for r in report.failures()}
    # The core categories pass strictly.
    for prefix in ("1", "2", "9", "10", "6.1", "6.2", "6.3", "6.5", "6.6", "6.11", "6.20", "6.22"):
        assert not [i for i in bad if i == prefix or i.startswith(prefix + ".")], bad
    for prefix in ("7.1.1", "7.1.2", "7.1.3", "7.1.4", "7.3", "7.7", "7.9", "7.13"):
        assert all(r.verdict is Verdict.OK for r in report.select(prefix)), bad
    # Invalid UTF-8 split over frames is caught at the latest when the message completes.
    assert all(r.verdict in (Verdict.OK, Verdict.NON_STRICT) for r in report.select("6.4"))
    assert report["7.1.6"].verdict is Verdict.INFORMATIONAL
    # permessage-deflate: every traffic and negotiation case passes strictly, the bomb too.
    for prefix in ("12.1", "12.2", "12.3", "12.4", "12.5", "12.6.5", "12.6.8", "13"):
        assert all(r.verdict is Verdict.OK for r in report.select(prefix)), bad
    # As in 3.2/3.3, websockets fails the connection on a bad frame before it echoes the good
    # message that arrived in the same write: the right close code, but NON-STRICT.
    for case_id in ("12.6.1", "12.6.2", "12.6.3", "12.6.4", "12.6.6", "12.6.7"):
        assert report[case_id].verdict is Verdict.NON_STRICT, report[case_id].observed
        assert "close 1002" in report[case_id].observed


async def test_cli_writes_json_and_markdown(websockets_url: str, tmp_path: Path) -> None:
    out_json, out_md = tmp_path / "r.json", tmp_path / "r.md"
    argv = [
        websockets_url,
        "--cases",
        "1.1.*,2.1,7.7.1",
        "--quick",
        "--json",
        str(out_json),
        "--markdown",
        str(out_md),
    ]
    # main() runs its own event loop, so it gets a thread while this loop serves.
    status = await asyncio.to_thread(main, argv)
    assert status == 0
    data = json.loads(out_json.read_text())
    assert data["passed"] is True
    assert [r["id"] for r in data["results"]] == [f"1.1.{i}" for i in range(1, 9)] + [
        "2.1",
        "7.7.1",
    ]
    assert all(r["verdict"] == "OK" for r in data["results"])
    md = out_md.read_text()
    assert "| 1 Framing |" in md and "### 1.1 Text messages" in md


def test_cli_usage_errors_and_listing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--list", "--cases", "6.4"]) == 0
    assert "6.4.3" in capsys.readouterr().out
    assert main(["ws://127.0.0.1:1/", "--cases", "8.*"]) == 2
    assert main(["http://example.invalid/"]) == 2
    assert main([]) == 2


def test_report_conversions() -> None:
    from wslab.lab.conformance import CaseResult

    results = [
        CaseResult("2.10", "d", "e", "o", Verdict.OK, 0.1),
        CaseResult("2.9", "d", "e", "o", Verdict.NON_STRICT, 0.2),
        CaseResult("7.1.6", "d", "e", "o", Verdict.INFORMATIONAL, 0.3),
    ]
    report = Report("ws://x/", results)
    assert [r.id for r in report] == ["2.9", "2.10", "7.1.6"]  # numeric, not text, order
    assert report.counts()["NON-STRICT"] == 1 and not report.passed
    assert report.by_category()[2]["OK"] == 1
    frame = report.to_dataframe()
    assert list(frame["verdict"]) == ["NON-STRICT", "OK", "INFORMATIONAL"]
    assert set(frame["category_name"]) == {"Pings/Pongs", "Close handling"}
    assert json.loads(report.to_json())["counts"]["OK"] == 1
    assert "## Failures (1)" in report.to_markdown()


def test_the_runner_keeps_its_old_names() -> None:
    # The raw-socket client and the judge moved out of runner.py; their old import path works.
    from wslab.lab.conformance import judging, runner, session

    assert runner.Observation is session.Observation
    assert runner.RunConfig is session.RunConfig
    assert runner.judge is judging.judge
    assert runner.describe is judging.describe
