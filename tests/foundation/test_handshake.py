"""Tests for wslab.foundation.handshake: the RFC 6455 opening handshake, both roles.

The failure tables follow the numbered requirements of RFC 6455 4.1 (client) and 4.2.1/4.2.2
(server). The last section checks the module against the ``websockets`` library in both
directions.
"""

from __future__ import annotations

import base64
import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.client import ClientProtocol
from websockets.frames import Frame as WsFrame
from websockets.frames import Opcode as WsOpcode
from websockets.http11 import Request as WsRequest
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from wslab.foundation.errors import (
    ForbiddenOrigin,
    HandshakeError,
    InvalidHandshakeResponse,
    InvalidUpgrade,
    UnsupportedVersion,
)
from wslab.foundation.handshake import (
    GUID,
    Headers,
    Request,
    RequestParser,
    Response,
    ResponseParser,
    Upgrade,
    accept_key,
    build_upgrade_request,
    build_upgrade_response,
    generate_key,
    is_upgrade_request,
    reject,
    validate_upgrade_request,
    validate_upgrade_response,
)
from wslab.foundation.http import serialize_head

RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

# The example handshake of RFC 6455 section 1.2, byte for byte.
RFC_REQUEST = (
    b"GET /chat HTTP/1.1\r\n"
    b"Host: server.example.com\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Origin: http://example.com\r\n"
    b"Sec-WebSocket-Protocol: chat, superchat\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"\r\n"
)
RFC_RESPONSE = (
    b"HTTP/1.1 101 Switching Protocols\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    b"Sec-WebSocket-Protocol: chat\r\n"
    b"\r\n"
)

VALID_FIELDS: list[tuple[str, str]] = [
    ("Host", "server.example.com"),
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Key", RFC_KEY),
    ("Sec-WebSocket-Version", "13"),
]


def parse_request(data: bytes) -> Request:
    request = RequestParser().feed(data)
    assert request is not None
    return request


def parse_response(data: bytes) -> Response:
    response = ResponseParser().feed(data)
    assert response is not None
    return response


def make_request(
    fields: list[tuple[str, str]] | None = None,
    *,
    request_line: str = "GET /chat HTTP/1.1",
) -> Request:
    return parse_request(serialize_head(request_line, VALID_FIELDS if fields is None else fields))


Fields = list[tuple[str, str]]


def without(name: str, base: Fields = VALID_FIELDS) -> Fields:
    return [(k, v) for k, v in base if k.lower() != name.lower()]


def replaced(name: str, *values: str, base: Fields = VALID_FIELDS) -> Fields:
    return [*without(name, base), *((name, value) for value in values)]


# -- keys (RFC 6455 1.3, 4.1) --------------------------------------------------------------------


def test_accept_key_matches_the_rfc_example() -> None:
    assert GUID == "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
    assert accept_key(RFC_KEY) == RFC_ACCEPT


def test_generate_key_is_16_random_bytes_in_base64() -> None:
    keys = {generate_key() for _ in range(50)}
    assert len(keys) == 50  # "randomly selected" for each connection
    for key in keys:
        assert len(base64.b64decode(key, validate=True)) == 16


# -- the RFC example, end to end -----------------------------------------------------------------


def test_rfc_example_request_validates_and_gets_the_rfc_response() -> None:
    upgrade = validate_upgrade_request(parse_request(RFC_REQUEST))
    assert upgrade.key == RFC_KEY and upgrade.accept == RFC_ACCEPT
    assert upgrade.origin == "http://example.com"
    assert upgrade.subprotocols == ("chat", "superchat")
    assert (upgrade.path, upgrade.query, upgrade.host) == ("/chat", {}, "server.example.com")
    assert upgrade.extensions == ()
    assert build_upgrade_response(upgrade, subprotocol="chat") == RFC_RESPONSE


def test_rfc_example_built_by_the_client_functions() -> None:
    data, key = build_upgrade_request(
        "server.example.com",
        "/chat",
        key=RFC_KEY,
        origin="http://example.com",
        subprotocols=["chat", "superchat"],
    )
    assert key == RFC_KEY
    assert data == RFC_REQUEST
    assert validate_upgrade_response(parse_response(RFC_RESPONSE), key, ["chat", "superchat"]) == (
        "chat"
    )


def test_round_trip_between_client_and_server_with_frames_following_each_head() -> None:
    client_frame = b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"  # RFC 5.7 masked "Hello"
    server_frame = b"\x81\x05Hello"
    data, key = build_upgrade_request(
        "localhost:8765", "/ws?token=abc", subprotocols=["wslab.v1"], extra_headers={"X-Id": "7"}
    )
    server = RequestParser()
    request = server.feed(data + client_frame)
    assert request is not None and is_upgrade_request(request)
    assert server.leftover == client_frame
    upgrade = validate_upgrade_request(request)
    assert upgrade.query == {"token": ["abc"]} and upgrade.headers["x-id"] == "7"
    client = ResponseParser()
    response = client.feed(build_upgrade_response(upgrade, "wslab.v1") + server_frame)
    assert response is not None and client.leftover == server_frame
    assert validate_upgrade_response(response, key, ["wslab.v1"]) == "wslab.v1"


# -- server side: RFC 6455 4.2.1 and 4.2.2 ------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "request_line", "error", "status"),
    [
        # 1. an HTTP/1.1 or higher GET request
        (None, "POST /chat HTTP/1.1", InvalidUpgrade, 405),
        (None, "get /chat HTTP/1.1", InvalidUpgrade, 405),
        (None, "GET /chat HTTP/1.0", InvalidUpgrade, 400),
        # 2. a Host header field
        (without("Host"), None, InvalidUpgrade, 400),
        (replaced("Host", ""), None, InvalidUpgrade, 400),
        (replaced("Host", "a.example", "b.example"), None, InvalidUpgrade, 400),
        # 3. Upgrade containing "websocket"
        (without("Upgrade"), None, InvalidUpgrade, 400),
        (replaced("Upgrade", "h2c"), None, InvalidUpgrade, 400),
        (replaced("Upgrade", "websockets"), None, InvalidUpgrade, 400),
        # 4. Connection containing "Upgrade"
        (without("Connection"), None, InvalidUpgrade, 400),
        (replaced("Connection", "keep-alive"), None, InvalidUpgrade, 400),
        (replaced("Connection", "upgraded"), None, InvalidUpgrade, 400),
        # 5. Sec-WebSocket-Key: base64 of 16 bytes, once (11.3.1)
        (without("Sec-WebSocket-Key"), None, InvalidUpgrade, 400),
        (replaced("Sec-WebSocket-Key", ""), None, InvalidUpgrade, 400),
        (replaced("Sec-WebSocket-Key", "not base64!"), None, InvalidUpgrade, 400),
        (
            replaced("Sec-WebSocket-Key", base64.b64encode(b"x" * 15).decode()),
            None,
            InvalidUpgrade,
            400,
        ),
        (
            replaced("Sec-WebSocket-Key", base64.b64encode(b"x" * 17).decode()),
            None,
            InvalidUpgrade,
            400,
        ),
        (replaced("Sec-WebSocket-Key", RFC_KEY.rstrip("=")), None, InvalidUpgrade, 400),
        (replaced("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZR=="), None, InvalidUpgrade, 400),
        (replaced("Sec-WebSocket-Key", RFC_KEY, RFC_KEY), None, InvalidUpgrade, 400),
        # 7. at most one Origin
        (
            [*VALID_FIELDS, ("Origin", "http://a"), ("Origin", "http://b")],
            None,
            InvalidUpgrade,
            400,
        ),
        # 9. Sec-WebSocket-Version: 13, else 426 (4.2.2)
        (without("Sec-WebSocket-Version"), None, UnsupportedVersion, 426),
        (replaced("Sec-WebSocket-Version", "8"), None, UnsupportedVersion, 426),
        (replaced("Sec-WebSocket-Version", "13, 8"), None, UnsupportedVersion, 426),
        (replaced("Sec-WebSocket-Version", "13", "13"), None, UnsupportedVersion, 426),
        # 10. Sec-WebSocket-Protocol: a list of tokens
        ([*VALID_FIELDS, ("Sec-WebSocket-Protocol", "chat superchat")], None, InvalidUpgrade, 400),
    ],
)
def test_invalid_upgrade_requests_are_refused_with_the_right_error(
    fields: list[tuple[str, str]] | None,
    request_line: str | None,
    error: type[HandshakeError],
    status: int,
) -> None:
    request = make_request(fields, request_line=request_line or "GET /chat HTTP/1.1")
    with pytest.raises(error) as info:
        validate_upgrade_request(request)
    assert type(info.value) is error
    assert info.value.status == status


def test_405_names_the_allowed_method() -> None:
    with pytest.raises(InvalidUpgrade) as info:
        validate_upgrade_request(make_request(request_line="PUT /chat HTTP/1.1"))
    assert info.value.headers == {"Allow": "GET"}


def test_426_names_the_version_we_speak() -> None:
    with pytest.raises(UnsupportedVersion) as info:
        validate_upgrade_request(make_request(replaced("Sec-WebSocket-Version", "7")))
    assert info.value.headers == {"Sec-WebSocket-Version": "13"}


@pytest.mark.parametrize(
    "fields",
    [
        replaced("Upgrade", "WebSocket"),  # case-insensitive (4.2.1 item 3)
        replaced("Upgrade", "h2c, websocket"),
        replaced("Connection", "keep-alive, Upgrade"),  # what Firefox sends
        replaced("Connection", "keep-alive", "UPGRADE"),  # a list split over two lines
        [(name.lower(), value) for name, value in VALID_FIELDS],
        [(name.upper(), value) for name, value in VALID_FIELDS],
    ],
)
def test_valid_variants_are_accepted(fields: list[tuple[str, str]]) -> None:
    upgrade = validate_upgrade_request(make_request(fields))
    assert upgrade.accept == RFC_ACCEPT


def test_upgrade_exposes_origin_subprotocols_and_extensions_without_judging() -> None:
    fields = [
        *VALID_FIELDS,
        ("Origin", "https://evil.example"),
        ("Sec-WebSocket-Protocol", "b, a"),
        ("Sec-WebSocket-Protocol", "c"),
        ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits"),
        ("Sec-WebSocket-Extensions", "x-other"),
    ]
    upgrade = validate_upgrade_request(make_request(fields, request_line="GET /ws?a=1 HTTP/1.1"))
    assert isinstance(upgrade, Upgrade)
    assert upgrade.origin == "https://evil.example"
    assert upgrade.subprotocols == ("b", "a", "c")
    assert upgrade.extensions == ("permessage-deflate; client_max_window_bits", "x-other")
    assert (upgrade.path, upgrade.query) == ("/ws", {"a": ["1"]})
    assert validate_upgrade_request(make_request()).origin is None


def test_an_absolute_form_target_names_the_resource() -> None:
    request = make_request(request_line="GET http://server.example.com/chat?x=1 HTTP/1.1")
    assert validate_upgrade_request(request).path == "/chat"


def test_is_upgrade_request_routes_on_the_upgrade_header_only() -> None:
    assert is_upgrade_request(make_request())
    assert is_upgrade_request(
        make_request(without("Sec-WebSocket-Key"))
    )  # refused later, precisely
    assert not is_upgrade_request(
        make_request([("Host", "h")], request_line="GET /healthz HTTP/1.1")
    )
    assert not is_upgrade_request(make_request(replaced("Upgrade", "h2c")))


def test_upgrade_response_has_the_required_fields() -> None:
    upgrade = validate_upgrade_request(make_request())
    data = build_upgrade_response(upgrade, extra_headers=[("Set-Cookie", "a=b")])
    response = parse_response(data)
    assert data.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert response.headers.items() == [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", RFC_ACCEPT),
        ("Set-Cookie", "a=b"),
    ]


def test_upgrade_response_only_picks_an_offered_subprotocol() -> None:
    upgrade = validate_upgrade_request(
        make_request([*VALID_FIELDS, ("Sec-WebSocket-Protocol", "chat")])
    )
    with pytest.raises(ValueError):
        build_upgrade_response(upgrade, subprotocol="superchat")
    with pytest.raises(ValueError):
        build_upgrade_response(validate_upgrade_request(make_request()), subprotocol="chat")


@pytest.mark.parametrize(
    "name", ["Sec-WebSocket-Accept", "upgrade", "Connection", "Sec-WebSocket-Protocol"]
)
def test_upgrade_response_extra_headers_cannot_override_the_handshake(name: str) -> None:
    upgrade = validate_upgrade_request(make_request())
    with pytest.raises(ValueError):
        build_upgrade_response(upgrade, extra_headers={name: "x"})
    with pytest.raises(ValueError):
        build_upgrade_response(upgrade, extra_headers={"X-Evil": "a\r\nUpgrade: no"})


@pytest.mark.parametrize(
    ("error", "status", "header"),
    [
        (
            InvalidUpgrade(
                "a WebSocket handshake must use GET", status=405, headers={"Allow": "GET"}
            ),
            405,
            ("Allow", "GET"),
        ),
        (UnsupportedVersion("only version 13"), 426, ("Sec-WebSocket-Version", "13")),
        (ForbiddenOrigin("origin not allowed"), 403, None),
        (InvalidUpgrade("too big", status=431), 431, None),
        (InvalidUpgrade("bad key"), 400, None),
    ],
)
def test_reject_builds_a_closing_error_response(
    error: HandshakeError, status: int, header: tuple[str, str] | None
) -> None:
    parser = ResponseParser()
    response = parser.feed(reject(error))
    assert response is not None
    assert response.status == status
    assert response.headers["Connection"] == "close"
    assert response.headers["Content-Type"].startswith("text/plain")
    assert parser.leftover == (error.message + "\n").encode()
    assert response.headers["Content-Length"] == str(len(parser.leftover))
    if header is not None:
        assert response.headers.get(header[0]) == header[1]


def test_parser_errors_become_responses_too() -> None:
    with pytest.raises(InvalidUpgrade) as info:
        RequestParser(max_headers=2).feed(RFC_REQUEST)
    assert parse_response(reject(info.value)).status == 431


# -- client side: RFC 6455 4.1 -------------------------------------------------------------------


def test_upgrade_request_has_the_required_fields() -> None:
    data, key = build_upgrade_request("example.com:8080", "/chat?room=a%20b", origin="http://x")
    request = parse_request(data)
    assert data.startswith(b"GET /chat?room=a%20b HTTP/1.1\r\n")
    assert request.headers["Host"] == "example.com:8080"
    assert request.headers["Upgrade"] == "websocket"
    assert request.headers["Connection"] == "Upgrade"
    assert request.headers["Sec-WebSocket-Key"] == key
    assert request.headers["Sec-WebSocket-Version"] == "13"
    assert request.headers["Origin"] == "http://x"
    assert "Sec-WebSocket-Protocol" not in request.headers
    assert len(base64.b64decode(key)) == 16
    assert build_upgrade_request("example.com")[1] != key  # a new key for every connection


@pytest.mark.parametrize(
    "kwargs",
    [
        {"path": "chat"},
        {"path": "/chat room"},
        {"path": "/chat#frag"},
        {"path": "/caf\u00e9"},
        {"key": "short"},
        {"subprotocols": ["chat superchat"]},
        {"subprotocols": ["chat,superchat"]},
        {"host": "example.com\r\nX-Injected: 1"},
        {"extra_headers": {"Sec-WebSocket-Key": RFC_KEY}},
        {"extra_headers": {"host": "other"}},
        {"extra_headers": {"Sec-WebSocket-Extensions": "permessage-deflate"}},
    ],
)
def test_upgrade_request_refuses_bad_arguments(kwargs: dict[str, object]) -> None:
    arguments: dict[str, object] = {"host": "example.com", **kwargs}
    with pytest.raises(ValueError):
        build_upgrade_request(**arguments)  # type: ignore[arg-type]


GOOD_RESPONSE: Fields = [
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Accept", RFC_ACCEPT),
]
SWITCHING = "HTTP/1.1 101 Switching Protocols"


def response_with(fields: Fields, status_line: str = SWITCHING) -> Response:
    return parse_response(serialize_head(status_line, fields))


@pytest.mark.parametrize(
    ("status_line", "fields", "offered"),
    [
        # "If the status code received from the server is not 101, the client handles the
        # response per HTTP procedures" -- for us: the handshake failed, with that status.
        ("HTTP/1.1 200 OK", GOOD_RESPONSE, ()),
        ("HTTP/1.1 403 Forbidden", GOOD_RESPONSE, ()),
        # Upgrade must be "websocket" (case-insensitive)
        (SWITCHING, without("Upgrade", GOOD_RESPONSE), ()),
        (SWITCHING, replaced("Upgrade", "h2c", base=GOOD_RESPONSE), ()),
        (SWITCHING, replaced("Upgrade", "websocket, h2c", base=GOOD_RESPONSE), ()),
        # Connection must contain "Upgrade" (case-insensitive)
        (SWITCHING, without("Connection", GOOD_RESPONSE), ()),
        (SWITCHING, replaced("Connection", "close", base=GOOD_RESPONSE), ()),
        # Sec-WebSocket-Accept must be base64(SHA-1(key + GUID)), once
        (SWITCHING, without("Sec-WebSocket-Accept", GOOD_RESPONSE), ()),
        (
            SWITCHING,
            replaced("Sec-WebSocket-Accept", accept_key(generate_key()), base=GOOD_RESPONSE),
            (),
        ),
        (SWITCHING, replaced("Sec-WebSocket-Accept", RFC_KEY, base=GOOD_RESPONSE), ()),
        (SWITCHING, [*GOOD_RESPONSE, ("Sec-WebSocket-Accept", RFC_ACCEPT)], ()),
        # no extension that was not offered (we offer none)
        (SWITCHING, [*GOOD_RESPONSE, ("Sec-WebSocket-Extensions", "permessage-deflate")], ()),
        # no subprotocol that was not offered, and at most one
        (SWITCHING, [*GOOD_RESPONSE, ("Sec-WebSocket-Protocol", "chat")], ()),
        (SWITCHING, [*GOOD_RESPONSE, ("Sec-WebSocket-Protocol", "other")], ("chat",)),
        (SWITCHING, [*GOOD_RESPONSE, ("Sec-WebSocket-Protocol", "chat, b")], ("chat", "b")),
        (
            SWITCHING,
            [
                *GOOD_RESPONSE,
                ("Sec-WebSocket-Protocol", "chat"),
                ("Sec-WebSocket-Protocol", "chat"),
            ],
            ("chat",),
        ),
    ],
)
def test_invalid_responses_fail_the_connection(
    status_line: str, fields: Fields, offered: tuple[str, ...]
) -> None:
    response = response_with(fields, status_line)
    with pytest.raises(InvalidHandshakeResponse) as info:
        validate_upgrade_response(response, RFC_KEY, offered)
    assert info.value.status == response.status  # what the server answered, for the caller


def test_valid_response_variants() -> None:
    fields = [("upgrade", "WebSocket"), ("CONNECTION", "keep-alive, upgrade")]
    fields.append(("Sec-WebSocket-Accept", RFC_ACCEPT))
    assert validate_upgrade_response(response_with(fields), RFC_KEY) is None
    assert validate_upgrade_response(response_with(fields), RFC_KEY, ["chat"]) is None
    chosen = [*fields, ("Sec-WebSocket-Protocol", "superchat")]
    assert validate_upgrade_response(response_with(chosen), RFC_KEY, ("chat", "superchat")) == (
        "superchat"
    )


# -- properties ----------------------------------------------------------------------------------

subprotocol_names = st.from_regex(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,12}", fullmatch=True)


@given(
    key=st.binary(min_size=16, max_size=16).map(lambda raw: base64.b64encode(raw).decode()),
    offered=st.lists(subprotocol_names, max_size=5, unique=True),
    data=st.data(),
)
def test_any_client_request_is_accepted_and_any_choice_round_trips(
    key: str, offered: list[str], data: st.DataObject
) -> None:
    request_bytes, _ = build_upgrade_request("h", "/", key=key, subprotocols=offered)
    upgrade = validate_upgrade_request(parse_request(request_bytes))
    assert upgrade.subprotocols == tuple(offered)
    choice = data.draw(st.sampled_from([None, *offered]))
    response = parse_response(build_upgrade_response(upgrade, choice))
    assert validate_upgrade_response(response, key, offered) == choice


@given(
    st.lists(
        st.tuples(
            st.sampled_from([n for n, _ in VALID_FIELDS] + ["Origin", "Sec-WebSocket-Protocol"]),
            st.sampled_from(["", "13", "websocket", "Upgrade", RFC_KEY, "a, b", "h"]),
        ),
        max_size=12,
    )
)
def test_validation_of_any_parsed_request_returns_upgrade_or_handshake_error(
    fields: list[tuple[str, str]],
) -> None:
    try:
        upgrade = validate_upgrade_request(make_request(fields))
    except HandshakeError as exc:
        assert exc.status in (400, 426)
        assert parse_response(reject(exc)).status == exc.status
    else:
        assert parse_response(build_upgrade_response(upgrade)).status == 101


# -- against the websockets library (sans-I/O API) ------------------------------------------------


def websockets_client(
    uri: str = "ws://example.com:8765/chat?room=lobby", **kwargs: object
) -> ClientProtocol:
    client = ClientProtocol(parse_uri(uri), **kwargs)  # type: ignore[arg-type]
    client.send_request(client.connect())
    return client


def test_a_websockets_client_request_validates_and_accepts_our_response() -> None:
    client = websockets_client(
        origin="https://app.example", subprotocols=[Subprotocol("chat"), Subprotocol("superchat")]
    )
    parser = RequestParser()
    request = parser.feed(b"".join(client.data_to_send()))
    assert request is not None and parser.leftover == b""
    upgrade = validate_upgrade_request(request)
    assert upgrade.key == client.key
    assert (upgrade.path, upgrade.query) == ("/chat", {"room": ["lobby"]})
    assert upgrade.host == "example.com:8765"
    assert upgrade.origin == "https://app.example"
    assert upgrade.subprotocols == ("chat", "superchat")
    # Our 101 plus a first text frame in the same packet, as a server may well send.
    client.receive_data(build_upgrade_response(upgrade, "superchat") + b"\x81\x02hi")
    assert client.handshake_exc is None
    assert client.state is State.OPEN
    assert client.subprotocol == "superchat"
    frames = [event for event in client.events_received() if isinstance(event, WsFrame)]
    assert [(f.opcode, f.data) for f in frames] == [(WsOpcode.TEXT, b"hi")]


def test_a_websockets_client_refuses_a_response_with_the_wrong_accept() -> None:
    client = websockets_client()
    request = RequestParser().feed(b"".join(client.data_to_send()))
    assert request is not None
    upgrade = validate_upgrade_request(request)
    forged = dataclasses.replace(upgrade, accept=accept_key(generate_key()))
    client.receive_data(build_upgrade_response(forged))
    assert client.handshake_exc is not None
    assert client.state is not State.OPEN


def test_our_request_is_accepted_by_a_websockets_server_and_its_response_by_us() -> None:
    data, key = build_upgrade_request(
        "example.com", "/chat?x=1", origin="http://example.com", subprotocols=["chat", "superchat"]
    )
    server = ServerProtocol(subprotocols=[Subprotocol("superchat")])
    server.receive_data(data)
    [ws_request] = server.events_received()
    assert isinstance(ws_request, WsRequest)
    assert ws_request.path == "/chat?x=1"
    ws_response = server.accept(ws_request)
    assert ws_response.status_code == 101
    server.send_response(ws_response)
    parser = ResponseParser()
    response = parser.feed(b"".join(server.data_to_send()))
    assert response is not None
    assert validate_upgrade_response(response, key, ["chat", "superchat"]) == "superchat"


@pytest.mark.parametrize(
    ("fields", "valid"),
    [
        (VALID_FIELDS, True),
        (replaced("Connection", "keep-alive, Upgrade"), True),
        (replaced("Upgrade", "WebSocket"), True),
        ([*VALID_FIELDS, ("Sec-WebSocket-Protocol", "chat")], True),
        (without("Upgrade"), False),
        (without("Connection"), False),
        (replaced("Connection", "close"), False),
        (without("Sec-WebSocket-Key"), False),
        (replaced("Sec-WebSocket-Key", "not base64!"), False),
        (replaced("Sec-WebSocket-Key", base64.b64encode(b"x" * 15).decode()), False),
        (replaced("Sec-WebSocket-Key", RFC_KEY, RFC_KEY), False),
        (without("Sec-WebSocket-Version"), False),
        (replaced("Sec-WebSocket-Version", "8"), False),
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_we_accept_and_refuse_the_same_requests_as_websockets(
    fields: list[tuple[str, str]], valid: bool, method: str
) -> None:
    # Known, deliberate differences are left out: we also require Host (websockets leaves that
    # to the HTTP layer) and accept "Upgrade: h2c, websocket" (websockets wants one token).
    data = serialize_head(f"{method} /chat HTTP/1.1", fields)
    server = ServerProtocol()
    server.receive_data(data)
    [ws_request] = server.events_received()
    theirs = server.accept(ws_request).status_code == 101
    try:
        validate_upgrade_request(parse_request(data))
    except HandshakeError:
        ours = False
    else:
        ours = True
    assert ours == theirs == (valid and method == "GET")


def test_headers_type_is_shared_with_the_http_module() -> None:
    from wslab.foundation import http

    assert Headers is http.Headers and RequestParser is http.RequestParser
