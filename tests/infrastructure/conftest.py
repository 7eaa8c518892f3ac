"""Fixtures for the infrastructure tests: the engine to run on, and a raw-socket WebSocket client.

``engine`` parametrizes a test over both engines, so every transport behaviour is proved on
wslab's own engine and on the ``websockets`` library alike. ``raw_client`` opens plain TCP
sockets that speak exactly the bytes a test tells them to — half a request, a bad version, an
invalid UTF-8 frame, or a completed handshake followed by never reading — which no well-behaved
client library would do.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from wslab.foundation import handshake
from wslab.foundation.codes import Opcode
from wslab.foundation.frames import Frame, FrameParser, encode_frame, parse_close_payload
from wslab.foundation.http import Response, ResponseParser
from wslab.infrastructure.engines import ENGINES


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """The name of the engine under test: ``"wslab"`` or ``"websockets"``."""
    return request.param


class RawClient:
    """A TCP socket driven byte by byte from a test (non-blocking, on the running loop)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.loop = asyncio.get_running_loop()
        self.buffer = bytearray()  # received bytes not consumed yet
        self.parser = FrameParser(require_mask=False)
        self.frames: list[Frame] = []  # parsed frames not consumed yet

    @classmethod
    async def open(cls, port: int, *, rcvbuf: int | None = None) -> RawClient:
        """Connect to 127.0.0.1:port; ``rcvbuf`` shrinks the kernel's receive buffer first."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:  # before connect(), so the window is small from the start
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        return cls(sock)

    async def send(self, data: bytes) -> None:
        await self.loop.sock_sendall(self.sock, data)

    async def recv_some(self, size: int = 1 << 16) -> bytes:
        """The next bytes from the socket (``b""`` at EOF); buffered bytes come first."""
        if self.buffer:
            data = bytes(self.buffer)
            self.buffer.clear()
            return data
        return await self.loop.sock_recv(self.sock, size)

    async def read_head(self) -> Response:
        """Read one HTTP response head; what follows it stays buffered."""
        parser = ResponseParser()
        while True:
            data = await self.recv_some()
            if not data:
                raise ConnectionError("closed before a complete response head")
            response = parser.feed(data)
            if response is not None:
                self.buffer += parser.leftover
                return response

    async def read_body(self, response: Response) -> bytes:
        """The body announced by ``Content-Length`` (after :meth:`read_head`)."""
        length = int(response.headers.get("Content-Length", "0") or 0)
        body = bytearray()
        while len(body) < length:
            data = await self.recv_some()
            if not data:
                break
            body += data
        return bytes(body)

    async def upgrade(
        self, path: str = "/", *, version: str | None = None, extensions: str | None = None
    ) -> Response:
        """Send an upgrade request (optionally with another Sec-WebSocket-Version, or offering
        ``extensions``); read the head."""
        request, key = handshake.build_upgrade_request("127.0.0.1", path, extensions=extensions)
        if version is not None:
            request = request.replace(
                b"Sec-WebSocket-Version: 13", f"Sec-WebSocket-Version: {version}".encode()
            )
        await self.send(request)
        response = await self.read_head()
        if response.status == 101:
            handshake.validate_upgrade_response(
                response, key, extensions_offered=extensions is not None
            )
        return response

    async def send_frame(
        self, opcode: Opcode, payload: bytes, *, fin: bool = True, rsv1: bool = False
    ) -> None:
        """Send one masked frame, as a client must (``rsv1``: marked as compressed)."""
        await self.send(encode_frame(Frame(opcode, payload, fin, rsv1=rsv1), os.urandom(4)))

    async def read_frame(self) -> Frame | None:
        """The next frame from the server, or None at EOF."""
        while not self.frames:
            try:
                data = await self.recv_some()
            except ConnectionResetError:
                return None
            if not data:
                return None
            self.frames = self.parser.feed(data)
        return self.frames.pop(0)

    async def read_until_close(self) -> tuple[list[Frame], tuple[int, str] | None]:
        """Every data frame up to the server's close frame, and that frame's (code, reason)."""
        frames: list[Frame] = []
        while True:
            frame = await self.read_frame()
            if frame is None:
                return frames, None
            if frame.opcode is Opcode.CLOSE:
                return frames, parse_close_payload(frame.payload)
            if not frame.is_control:
                frames.append(frame)

    async def wait_eof(self) -> bytes:
        """Read until the server closes the socket (EOF or reset); returns what came."""
        received = bytearray()
        while True:
            try:
                data = await self.recv_some()
            except ConnectionResetError:
                return bytes(received)
            if not data:
                return bytes(received)
            received += data

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
async def raw_client() -> AsyncIterator[Callable[..., Awaitable[RawClient]]]:
    """``await raw_client(port, rcvbuf=None)`` opens a :class:`RawClient`; all close after."""
    opened: list[RawClient] = []

    async def open_client(port: int, *, rcvbuf: int | None = None) -> RawClient:
        client = await RawClient.open(port, rcvbuf=rcvbuf)
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        client.close()
