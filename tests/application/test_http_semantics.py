"""The hub's plain HTTP side against RFC 9110/9112, one rule per test, over real sockets.

Each request is written raw (the rules are about bytes a normal client never sends), the reply
read to the end of the stream (the hub closes after each answer). Every rule is checked on both
engines.
"""

from __future__ import annotations

import asyncio

import pytest

from wslab.hub import Hub

from .conftest import WAIT, StartHub


@pytest.fixture(params=["wslab", "websockets"])
async def hub(start_hub: StartHub, request: pytest.FixtureRequest) -> Hub:
    """One hub on each engine: the rules are the hub's, whichever engine reads the bytes."""
    return await start_hub(engine=request.param)


async def raw(hub: Hub, data: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
    try:
        writer.write(data)
        reply = await asyncio.wait_for(reader.read(1 << 20), WAIT)
        while chunk := await asyncio.wait_for(reader.read(1 << 20), WAIT):
            reply += chunk
    finally:
        writer.close()
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def request(method: str = "GET", path: str = "/healthz", *fields: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: localhost", *fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def test_head_is_get_without_the_body(hub: Hub) -> None:
    get_status, get_headers, get_body = await raw(hub, request("GET", "/config.json"))
    status, headers, body = await raw(hub, request("HEAD", "/config.json"))
    assert status == get_status == 200
    assert body == b"" and get_body
    assert headers["content-length"] == get_headers["content-length"] == str(len(get_body))
    assert headers["content-type"] == get_headers["content-type"]


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
async def test_known_methods_get_405_with_allow(hub: Hub, method: str) -> None:
    status, headers, _ = await raw(hub, request(method, "/healthz", "Content-Length: 0"))
    assert status == 405
    assert headers["allow"] == "GET, HEAD"


async def test_unknown_method_gets_501(hub: Hub) -> None:
    status, _, _ = await raw(hub, request("BREW", "/healthz"))
    assert status == 501


async def test_bare_lf_line_endings_are_rejected_at_once(hub: Hub) -> None:
    status, _, _ = await raw(hub, b"GET /healthz HTTP/1.1\nHost: localhost\n\n")
    assert status == 400


async def test_obs_fold_is_rejected(hub: Hub) -> None:
    status, _, _ = await raw(hub, request("GET", "/healthz", "X-A: 1", " folded"))
    assert status == 400


@pytest.mark.parametrize(
    "fields",
    [
        ("Content-Length: 0", "Content-Length: 5"),
        ("Content-Length: 3", "Transfer-Encoding: chunked"),
        ("Transfer-Encoding: chunked", "Transfer-Encoding: identity"),
        ("Content-Length: -1",),
    ],
)
async def test_smuggling_heads_are_refused(hub: Hub, fields: tuple[str, ...]) -> None:
    status, _, _ = await raw(hub, request("GET", "/healthz", *fields))
    assert status == 400


async def test_transfer_encoding_alone_is_not_implemented(hub: Hub) -> None:
    status, _, _ = await raw(hub, request("GET", "/healthz", "Transfer-Encoding: chunked"))
    assert status == 501


async def test_http11_needs_exactly_one_host(hub: Hub) -> None:
    assert (await raw(hub, b"GET /healthz HTTP/1.1\r\n\r\n"))[0] == 400
    assert (await raw(hub, request("GET", "/healthz", "Host: other")))[0] == 400
    assert (await raw(hub, b"GET /healthz HTTP/1.0\r\n\r\n"))[0] == 200
