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
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection, serve

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
from wslab.lab.conformance.cases import SUBCATEGORIES, Case, Ev, Repeat
from wslab.lab.conformance.wire import (
    FrameReader,
    accept_for,
    check_response,
    encode_frame,
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
    assert expected <= subs
    assert {f"6.{i}" for i in range(5, 24)} <= SUBCATEGORIES.keys()
    # Case counts of a few categories, as in Autobahn.
    assert len(select_cases("1.*")) == 16
    assert len(select_cases("2.*")) == 11
    assert len(select_cases("5.*")) == 20
    assert len(select_cases("9.*")) == 54


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


def test_quick_mode_shrinks_only_category_9() -> None:
    full = {c.id: c for c in all_cases(False)}
    quick = {c.id: c for c in all_cases(True)}
    assert full.keys() == quick.keys()
    assert full["1.1.7"] == quick["1.1.7"]
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
    """

    def __init__(
        self,
        *,
        check_rsv: bool = True,
        close_on_error: bool = True,
        error_code: int = 1002,
        check_utf8: bool = False,
    ) -> None:
        self.check_rsv = check_rsv
        self.close_on_error = close_on_error
        self.error_code = error_code
        self.check_utf8 = check_utf8

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
            writer.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + f"Sec-WebSocket-Accept: {accept}\r\n\r\n".encode()
            )
            await self._frames(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _frames(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        message_op: int | None = None
        parts: list[bytes] = []
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
            if (rsv and self.check_rsv) or op in (3, 4, 5, 6, 7, 11, 12, 13, 14, 15):
                return await self._fail(writer)
            if op == 0x9:
                writer.write(_server_frame(0xA, payload))
            elif op == 0x8:
                writer.write(_server_frame(0x8, payload[:2]))
                await writer.drain()
                return
            elif op in (0x1, 0x2):
                message_op, parts = op, [payload]
                decoder = codecs.getincrementaldecoder("utf-8")()
            elif op == 0x0 and message_op is not None:
                parts.append(payload)
            if self.check_utf8 and message_op == 0x1 and op in (0x0, 0x1):
                try:
                    decoder.decode(payload, final=fin)
                except UnicodeDecodeError:
                    return await self._fail(writer, 1007)
            if fin and op in (0x0, 0x1, 0x2) and message_op is not None:
                writer.write(_server_frame(message_op, b"".join(parts)))
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
