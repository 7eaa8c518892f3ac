"""The public testing helpers: a fake clock, polling for a condition, one plain HTTP request.

The HTTP helper is checked against a small server of the test's own on 127.0.0.1 that records
the request it got and answers with fixed bytes, so both directions are pinned exactly.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from wslab.foundation.errors import OperationTimeout, PayloadTooBig
from wslab.testing import FakeClock, HttpReply, http_request, wait_until

#: How long a test waits for something before failing instead of hanging (not a timing check).
GUARD = 10.0


# -- FakeClock ---------------------------------------------------------------------------------------


def test_the_fake_clock_moves_only_forward_and_only_when_told() -> None:
    clock = FakeClock(100.0)
    assert clock() == clock() == 100.0
    assert clock.advance(0.5) == 100.5
    assert clock() == 100.5
    with pytest.raises(ValueError):
        clock.advance(-1.0)
    assert clock() == 100.5


# -- wait_until --------------------------------------------------------------------------------------


async def test_wait_until_returns_once_the_condition_holds() -> None:
    done: list[int] = []
    loop = asyncio.get_running_loop()
    loop.call_later(0.05, done.append, 1)
    await wait_until(lambda: done, "the callback", timeout=GUARD)
    assert done == [1]


async def test_wait_until_fails_naming_what_it_waited_for() -> None:
    calls = 0

    def never() -> bool:
        nonlocal calls
        calls += 1
        return False

    with pytest.raises(AssertionError, match="the impossible"):
        await wait_until(never, "the impossible", timeout=0.05)
    assert calls > 1  # it polled, rather than checking once


# -- http_request ------------------------------------------------------------------------------------


@dataclass
class FixedServer:
    """Answers every connection with ``reply`` (then closes) and keeps the requests it read."""

    reply: bytes = b""
    answer: bool = True
    requests: list[bytes] = field(default_factory=list)
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.requests.append(await reader.readuntil(b"\r\n\r\n"))
        if self.answer:
            writer.write(self.reply)
            await writer.drain()
            writer.close()
        else:
            await reader.read()  # silent until the client gives up


@pytest.fixture
async def fixed() -> AsyncIterator[FixedServer]:
    fixed = FixedServer()
    server = await asyncio.start_server(fixed.handle, "127.0.0.1", 0)
    fixed.port = server.sockets[0].getsockname()[1]
    try:
        yield fixed
    finally:
        server.close()
        await server.wait_closed()


async def test_http_request_sends_one_closing_request_and_reads_the_whole_reply(
    fixed: FixedServer,
) -> None:
    fixed.reply = (
        b"HTTP/1.1 503 Service Unavailable\r\n"
        b"Content-Type: application/json\r\n"
        b"X-Twice: first\r\n"
        b"x-twice: second\r\n"
        b"\r\n"
        b'{"status": "degraded"}'
    )
    reply = await http_request(
        f"http://127.0.0.1:{fixed.port}", "/healthz?x=1", method="POST", timeout=GUARD
    )
    assert reply == HttpReply(
        503,
        {"content-type": "application/json", "x-twice": "second"},
        b'{"status": "degraded"}',
    )
    status, headers, body = reply  # unpacks like a tuple
    assert (status, headers, body) == (reply.status, reply.headers, reply.body)
    (request,) = fixed.requests
    assert request == (
        f"POST /healthz?x=1 HTTP/1.1\r\nHost: 127.0.0.1:{fixed.port}\r\n"
        "Connection: close\r\n\r\n".encode()
    )


async def test_http_request_takes_host_and_port_from_a_websocket_url(fixed: FixedServer) -> None:
    fixed.reply = b"HTTP/1.1 200 OK\r\n\r\nok"
    reply = await http_request(f"ws://127.0.0.1:{fixed.port}/ws", timeout=GUARD)
    assert (reply.status, reply.body) == (200, b"ok")
    assert fixed.requests[0].startswith(b"GET / HTTP/1.1\r\n")


async def test_http_request_gives_up_on_a_server_that_never_answers(fixed: FixedServer) -> None:
    fixed.answer = False
    with pytest.raises(OperationTimeout):
        await http_request(f"http://127.0.0.1:{fixed.port}", "/", timeout=0.2)


async def test_http_request_refuses_a_reply_over_its_bound(fixed: FixedServer) -> None:
    fixed.reply = b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 4096
    with pytest.raises(PayloadTooBig):
        await http_request(f"http://127.0.0.1:{fixed.port}", "/", timeout=GUARD, max_size=1024)
    fixed.requests.clear()
    reply = await http_request(f"http://127.0.0.1:{fixed.port}", "/", timeout=GUARD, max_size=8192)
    assert reply.body == b"x" * 4096
