"""Tests for wslab.foundation.http: header fields, the bounded head parsers, response building."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wslab.foundation import http
from wslab.foundation.errors import HandshakeError, InvalidHandshakeResponse, InvalidUpgrade
from wslab.foundation.http import (
    DEFAULT_MAX_HEAD_SIZE,
    DEFAULT_MAX_HEADERS,
    Headers,
    Request,
    RequestParser,
    Response,
    ResponseParser,
    build_response,
    reason_phrase,
    serialize_head,
)


def head(*lines: str) -> bytes:
    """A head from its lines: CRLF after each, then the empty line."""
    return ("".join(line + "\r\n" for line in lines) + "\r\n").encode("latin-1")


SIMPLE = head("GET /chat?room=lobby&x=1&x=2&empty= HTTP/1.1", "Host: example.com", "X-Thing: a b")


# -- Headers -------------------------------------------------------------------------------------


def test_headers_lookup_ignores_case_and_output_keeps_it() -> None:
    h = Headers([("Sec-WebSocket-Key", "k"), ("X-A", "1"), ("x-a", "2")])
    assert h.get("sec-websocket-key") == "k"
    assert h["SEC-WEBSOCKET-KEY"] == "k"
    assert h.get("X-A") == "1"  # the first value
    assert h.get_all("X-a") == ["1", "2"]
    assert "x-A" in h and "Missing" not in h
    assert h.get("Missing") is None and h.get("Missing", "d") == "d"
    assert h.get_all("Missing") == []
    assert list(h) == ["Sec-WebSocket-Key", "X-A", "x-a"]
    assert h.items() == [("Sec-WebSocket-Key", "k"), ("X-A", "1"), ("x-a", "2")]
    assert len(h) == 3
    with pytest.raises(KeyError):
        h["Missing"]


def test_headers_accepts_a_mapping_and_compares_case_insensitively() -> None:
    assert Headers({"Host": "h", "Upgrade": "websocket"}) == Headers(
        [("host", "h"), ("UPGRADE", "websocket")]
    )
    assert Headers({"A": "1"}) != Headers({"A": "2"})
    assert Headers(Headers({"A": "1"})).items() == [("A", "1")]


def test_headers_tokens_splits_comma_lists_over_every_line() -> None:
    h = Headers([("Connection", "keep-alive, Upgrade"), ("Connection", " , close ,")])
    assert h.tokens("connection") == ["keep-alive", "Upgrade", "close"]
    assert h.tokens("Missing") == []


def test_headers_add_strips_surrounding_whitespace() -> None:
    h = Headers()
    h.add("X", " \t value with  inner space\t ")
    assert h["X"] == "value with  inner space"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Bad Name", "v"),
        ("Bad:Name", "v"),
        ("", "v"),
        ("Name\r\n", "v"),
        ("X", "a\r\nInjected: yes"),
        ("X", "a\nb"),
        ("X", "a\x00b"),
        ("X", "caf\u00e9"),
    ],
)
def test_headers_refuse_fields_that_could_break_the_head(name: str, value: str) -> None:
    with pytest.raises(ValueError):
        Headers().add(name, value)
    with pytest.raises(ValueError):
        serialize_head("HTTP/1.1 200 OK", [(name, value)])


# -- RequestParser -------------------------------------------------------------------------------


def test_request_parser_parses_the_request_line_target_and_headers() -> None:
    request = RequestParser().feed(SIMPLE)
    assert isinstance(request, Request)
    assert request.method == "GET"
    assert request.target == "/chat?room=lobby&x=1&x=2&empty="
    assert request.path == "/chat"
    assert request.query == {"room": ["lobby"], "x": ["1", "2"], "empty": [""]}
    assert request.version == "HTTP/1.1"
    assert request.headers.items() == [("Host", "example.com"), ("X-Thing", "a b")]


def test_request_parser_keeps_the_path_percent_encoded() -> None:
    request = RequestParser().feed(head("GET /a%2Fb?q=%41 HTTP/1.1"))
    assert request is not None
    assert request.path == "/a%2Fb"
    assert request.query == {"q": ["A"]}


def test_request_parser_accepts_absolute_form_and_http_1_0() -> None:
    request = RequestParser().feed(head("GET http://example.com:8080/ws?t=1 HTTP/1.0"))
    assert request is not None
    assert (request.path, request.query, request.version) == ("/ws", {"t": ["1"]}, "HTTP/1.0")
    bare = RequestParser().feed(head("GET https://example.com HTTP/1.1"))
    assert bare is not None and bare.path == "/"


def test_request_parser_returns_none_until_the_head_is_complete() -> None:
    parser = RequestParser()
    assert parser.feed(SIMPLE[:-1]) is None
    assert parser.request is None
    request = parser.feed(SIMPLE[-1:])
    assert request is not None and parser.request is request
    assert parser.head == SIMPLE


def test_byte_at_a_time_gives_the_same_request() -> None:
    whole = RequestParser().feed(SIMPLE)
    parser = RequestParser()
    results = [parser.feed(SIMPLE[i : i + 1]) for i in range(len(SIMPLE))]
    assert results[:-1] == [None] * (len(SIMPLE) - 1)
    assert results[-1] == whole
    assert parser.leftover == b""


@pytest.mark.parametrize("split", [1, 5, len(SIMPLE) - 3, len(SIMPLE) - 2, len(SIMPLE) - 1])
def test_leftover_keeps_the_bytes_after_the_head(split: int) -> None:
    frames = b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"  # RFC 6455 5.7 masked "Hello"
    data = SIMPLE + frames
    parser = RequestParser()
    assert parser.feed(data[:split]) is None
    assert parser.feed(data[split:]) is not None
    assert parser.leftover == frames
    assert parser.head == SIMPLE


def test_feeding_a_finished_parser_is_a_bug() -> None:
    parser = RequestParser()
    parser.feed(SIMPLE)
    with pytest.raises(RuntimeError):
        parser.feed(b"more")
    failed = RequestParser()
    with pytest.raises(InvalidUpgrade):
        failed.feed(head("NOT A REQUEST LINE"))
    with pytest.raises(RuntimeError):
        failed.feed(b"more")


def _head_of_size(size: int) -> bytes:
    """A valid request head of exactly ``size`` bytes (padding one header value)."""
    base = head("GET / HTTP/1.1", "X-Pad: ")
    return head("GET / HTTP/1.1", "X-Pad: " + "a" * (size - len(base)))


def test_head_exactly_at_the_size_limit_is_accepted() -> None:
    data = _head_of_size(DEFAULT_MAX_HEAD_SIZE)
    assert len(data) == DEFAULT_MAX_HEAD_SIZE
    assert RequestParser().feed(data) is not None


def test_head_one_byte_over_the_size_limit_gets_431() -> None:
    with pytest.raises(InvalidUpgrade) as info:
        RequestParser().feed(_head_of_size(DEFAULT_MAX_HEAD_SIZE + 1))
    assert info.value.status == 431


def test_an_endless_head_is_refused_without_waiting_for_its_end() -> None:
    parser = RequestParser(max_head_size=1024)
    assert parser.feed(b"GET / HTTP/1.1\r\nX: " + b"a" * 900) is None
    with pytest.raises(InvalidUpgrade) as info:
        parser.feed(b"a" * 200)  # no end in sight, and already past the limit
    assert info.value.status == 431


def test_large_leftover_does_not_count_against_the_head_limit() -> None:
    parser = RequestParser(max_head_size=1024)
    assert parser.feed(SIMPLE + b"\x00" * 100_000) is not None
    assert len(parser.leftover) == 100_000


def test_header_count_limit() -> None:
    lines = [f"X-{i}: v" for i in range(DEFAULT_MAX_HEADERS)]
    assert RequestParser().feed(head("GET / HTTP/1.1", *lines)) is not None
    with pytest.raises(InvalidUpgrade) as info:
        RequestParser().feed(head("GET / HTTP/1.1", *lines, "X-Last: v"))
    assert info.value.status == 431
    with pytest.raises(InvalidUpgrade) as info:
        RequestParser(max_headers=2).feed(head("GET / HTTP/1.1", "A: 1", "B: 2", "C: 3"))
    assert info.value.status == 431


@pytest.mark.parametrize(
    "data",
    [
        head("GET / HTTP/1.1", "NoColon"),
        head("GET / HTTP/1.1", "Host : example.com"),  # whitespace before the colon
        head("GET / HTTP/1.1", ": empty-name"),
        head("GET / HTTP/1.1", "X-Folded: a", " continued"),  # obs-fold
        head("GET / HTTP/1.1", "X-Folded: a", "\tcontinued"),
        head("GET / HTTP/1.1", "X: caf\u00e9"),  # non-ASCII value
        head("GET /caf\u00e9 HTTP/1.1"),  # non-ASCII target
        head("GET / HTTP/1.1", "X: a\nY: b"),  # bare LF
        head("GET / HTTP/1.1", "X: a\rb"),  # bare CR
        head("GET / HTTP/1.1", "X: a\x00b"),
        head("GET /"),
        head("GET  / HTTP/1.1"),
        head("GET / http/1.1"),
        head("GET / HTTP/1.1 "),
        head("G(T / HTTP/1.1"),
        head("GET / HTTP/11"),
        head("GET /#frag HTTP/1.1"),
        head("GET chat HTTP/1.1"),
        head("GET ftp://example.com/ HTTP/1.1"),
        head(""),
    ],
)
def test_malformed_requests_get_400(data: bytes) -> None:
    with pytest.raises(InvalidUpgrade) as info:
        RequestParser().feed(data)
    assert info.value.status == 400


def test_obsolete_line_folding_is_named_in_the_error() -> None:
    # A continuation line would also fail as a bad header name; the message says why it is bad.
    with pytest.raises(InvalidUpgrade, match="folding"):
        RequestParser().feed(head("GET / HTTP/1.1", "X-Folded: a", " b: c"))


def test_other_http_major_versions_get_505() -> None:
    with pytest.raises(InvalidUpgrade) as info:
        RequestParser().feed(head("GET / HTTP/2.0"))
    assert info.value.status == 505


# -- ResponseParser ------------------------------------------------------------------------------


def test_response_parser_reads_the_head_and_leaves_the_rest() -> None:
    data = head("HTTP/1.1 101 Switching Protocols", "Upgrade: websocket")
    expected = Response(101, "Switching Protocols", Headers({"Upgrade": "websocket"}))
    parser = ResponseParser()
    assert [parser.feed(data[i : i + 1]) for i in range(len(data))][-2:] == [None, expected]
    parser = ResponseParser()
    assert parser.feed(data + b"\x81\x00") == expected
    assert parser.leftover == b"\x81\x00"


def test_response_parser_accepts_an_empty_reason() -> None:
    for line in ("HTTP/1.1 204", "HTTP/1.1 204 "):
        response = ResponseParser().feed(head(line))
        assert response is not None and (response.status, response.reason) == (204, "")


@pytest.mark.parametrize(
    "data",
    [
        head("HTTP/1.1 1O1 Switching"),
        head("HTTP/2 101 Switching"),
        head("ICY 200 OK"),
        head("HTTP/1.1 101 OK", "Bad Header: x"),
        head("HTTP/1.1 101 OK", "X: \u00ff"),
    ],
)
def test_malformed_responses_raise_invalid_handshake_response(data: bytes) -> None:
    with pytest.raises(InvalidHandshakeResponse):
        ResponseParser().feed(data)


def test_response_parser_limits() -> None:
    with pytest.raises(InvalidHandshakeResponse) as info:
        ResponseParser(max_head_size=64).feed(b"HTTP/1.1 101 OK\r\nX: " + b"a" * 64)
    assert info.value.status == 431


# -- build_response ------------------------------------------------------------------------------


def parse_response(data: bytes) -> tuple[Response, bytes]:
    parser = ResponseParser()
    response = parser.feed(data)
    assert response is not None
    return response, parser.leftover


def test_build_response_frames_the_body_with_content_length() -> None:
    data = build_response(200, {"X-A": "1"}, b'{"status": "ok"}', content_type="application/json")
    response, body = parse_response(data)
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert response.headers["Content-Length"] == str(len(body))
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["X-A"] == "1"
    assert "Connection" not in response.headers
    assert body == b'{"status": "ok"}'


def test_errors_close_the_connection_unless_told_otherwise() -> None:
    response, body = parse_response(build_response(404, body=b"nope"))
    assert (response.status, response.reason, body) == (404, "Not Found", b"nope")
    assert response.headers["Connection"] == "close"
    response, _ = parse_response(build_response(503, {"Connection": "keep-alive"}))
    assert response.headers.get_all("Connection") == ["keep-alive"]


def test_build_response_without_body() -> None:
    response, body = parse_response(build_response(204))
    assert "Content-Length" not in response.headers and body == b""
    response, body = parse_response(build_response(200))
    assert response.headers["Content-Length"] == "0" and body == b""


@pytest.mark.parametrize(
    ("status", "headers", "body"),
    [
        (101, {}, b""),
        (99, {}, b""),
        (600, {}, b""),
        (200, {"Content-Length": "3"}, b"abc"),
        (200, {"transfer-encoding": "chunked"}, b"abc"),
        (204, {}, b"body"),
    ],
)
def test_build_response_refuses_what_it_cannot_frame(
    status: int, headers: dict[str, str], body: bytes
) -> None:
    with pytest.raises(ValueError):
        build_response(status, headers, body)


def test_reason_phrase() -> None:
    assert reason_phrase(426) == "Upgrade Required"
    assert reason_phrase(431) == "Request Header Fields Too Large"
    assert reason_phrase(299) == "Unknown"


# -- properties ----------------------------------------------------------------------------------

header_names = st.from_regex(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,20}", fullmatch=True)
header_values = st.text(
    alphabet=st.sampled_from("\t !\"#$%&'()*+,-./0123456789:;<=>?@AZaz[\\]^_`{|}~"), max_size=60
)


@given(st.lists(st.tuples(header_names, header_values), max_size=30))
def test_header_fields_round_trip_through_serialize_and_parse(
    fields: list[tuple[str, str]],
) -> None:
    data = serialize_head("GET / HTTP/1.1", fields)
    request = RequestParser().feed(data)
    assert request is not None
    assert request.headers.items() == [(name, value.strip(" \t")) for name, value in fields]
    response, _ = parse_response(serialize_head("HTTP/1.1 200 OK", fields))
    assert response.headers == request.headers


@given(st.data())
def test_any_split_of_a_request_gives_the_same_request(data: st.DataObject) -> None:
    cuts = sorted(data.draw(st.sets(st.integers(1, len(SIMPLE) - 1), max_size=8)))
    pieces = [SIMPLE[a:b] for a, b in zip([0, *cuts], [*cuts, len(SIMPLE)], strict=True)]
    parser = RequestParser()
    results = [parser.feed(piece) for piece in pieces]
    assert results[-1] == RequestParser().feed(SIMPLE)
    assert all(result is None for result in results[:-1])


# Fragments that steer random input into the interesting corners of the grammar.
_fragments = st.sampled_from(
    [
        *(b"GET / HTTP/1.1", b"HTTP/1.1 101 OK", b"Host", b"Upgrade: websocket", b"?a=b"),
        *(b"\r\n", b"\r", b"\n", b":", b" ", b"\t", b"/", b"#", b"\xff", b"\x00", b"a", b"1", b","),
    ]
)
_noise = st.one_of(st.binary(max_size=300), st.lists(_fragments, max_size=40).map(b"".join))


@given(_noise, st.integers(1, 50))
def test_random_bytes_give_a_request_none_or_a_handshake_error(data: bytes, chunk: int) -> None:
    parser = RequestParser(max_head_size=256, max_headers=8)
    try:
        for i in range(0, len(data), chunk):
            if parser.feed(data[i : i + chunk]) is not None:
                break
    except HandshakeError as exc:
        assert exc.status in (400, 431, 505)
    else:
        if parser.request is not None:
            assert parser.head + parser.leftover == data[: len(parser.head) + len(parser.leftover)]


@given(_noise, st.integers(1, 50))
def test_random_bytes_give_a_response_none_or_a_handshake_error(data: bytes, chunk: int) -> None:
    parser = ResponseParser(max_head_size=256, max_headers=8)
    try:
        for i in range(0, len(data), chunk):
            if parser.feed(data[i : i + chunk]) is not None:
                break
    except InvalidHandshakeResponse:
        pass


_LINE_CHARS = st.sampled_from(["a", "Z", "-", ":", " ", "\t", "\r", "\x01", "\x7f", "(", "é", "~"])


@given(lines=st.lists(st.text(_LINE_CHARS, max_size=8), min_size=1, max_size=5))
def test_the_one_match_fast_path_reads_heads_as_the_line_by_line_checks(
    lines: list[str],
) -> None:
    """A head the single header-block match accepts gives what the per-line checks give."""
    raw = ("GET / HTTP/1.1\r\n" + "\r\n".join(lines) + "\r\n\r\n").encode("utf-8")

    def parse() -> object:
        try:
            request = RequestParser().feed(raw)
        except HandshakeError as error:
            return ("error", error.message, error.status)
        assert request is not None
        return request.headers.items()

    fast = parse()
    saved = http._HEADER_BLOCK
    http._HEADER_BLOCK = re.compile(r"(?!)")  # never matches: every line checked on its own
    try:
        assert parse() == fast
    finally:
        http._HEADER_BLOCK = saved


def test_header_lookups_ignore_case_and_keep_spelling() -> None:
    headers = (
        RequestParser()
        .feed(b"GET / HTTP/1.1\r\nHOST: a\r\nx-Thing: 1\r\nX-THING:2\r\n\r\n")
        .headers
    )  # type: ignore[union-attr]
    assert headers.get("host") == "a" and headers.get_all("X-Thing") == ["1", "2"]
    assert list(headers) == ["HOST", "x-Thing", "X-THING"]
