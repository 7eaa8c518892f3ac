"""Tools that make tests and notebook experiments short and deterministic.

- :class:`FakeClock` — a clock that moves only when told, for the state machine, the heartbeat
  timer, the rate limiter, the event log and the token verifier (all take a ``clock``).
- :func:`protocol_pair` — a connected client and server :class:`~wslab.foundation.Protocol`
  with no sockets: :meth:`ProtocolPair.client_to_server` carries bytes across and returns the
  events, so a whole conversation fits in a few lines.
- :func:`fixed_mask` — a masking-key factory that returns the same key, for stable bytes.
- :func:`wait_until` — wait for a condition a test cannot await directly ("the hub has
  forgotten the connection"), failing after a generous bound instead of hanging.
- :func:`http_request` — one plain HTTP/1.1 request to a running hub (``/healthz``,
  ``/metrics``...) with nothing but the standard library.

Every wait here is bounded by a ``timeout``: that bound only keeps a broken test from hanging, it
is not a timing check, so keep it generous.
"""

from __future__ import annotations

import asyncio
import os
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from wslab.foundation.errors import OperationTimeout, PayloadTooBig
from wslab.foundation.protocol import Event, Protocol, Role

__all__ = [
    "FakeClock",
    "HttpReply",
    "ProtocolPair",
    "fixed_mask",
    "http_request",
    "protocol_pair",
    "wait_until",
]


class FakeClock:
    """A monotonic clock under the test's control: ``clock()`` reads it, ``advance()`` moves it."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        """Move time forward (never backward) and return the new time."""
        if seconds < 0:
            raise ValueError("a monotonic clock does not go back")
        self.now += seconds
        return self.now


def fixed_mask(key: bytes = b"\x01\x02\x03\x04") -> Callable[[int], bytes]:
    """A mask-key factory for ``Protocol(mask_key_factory=...)`` that always returns ``key``."""
    if len(key) != 4:
        raise ValueError("a masking key is 4 bytes")
    return lambda n: key


@dataclass
class ProtocolPair:
    """A client and a server protocol wired back to back, both OPEN."""

    client: Protocol
    server: Protocol

    def client_to_server(self, data: bytes) -> list[Event]:
        """Deliver bytes the client produced; also carry the server's automatic replies back."""
        events = self.server.receive_data(data)
        self._replies_to_client = self.server.data_to_send()
        return events

    def server_to_client(self, data: bytes) -> list[Event]:
        """Deliver bytes the server produced to the client."""
        return self.client.receive_data(data)

    def flush_replies(self) -> list[Event]:
        """Deliver the server's automatic replies (pongs, close echo) to the client."""
        data, self._replies_to_client = getattr(self, "_replies_to_client", b""), b""
        return self.client.receive_data(data) if data else []


def protocol_pair(
    *,
    clock: Callable[[], float] | None = None,
    mask_key: bytes | None = b"\x01\x02\x03\x04",
    max_message_size: int | None = None,
) -> ProtocolPair:
    """A connected, open client/server pair (masking key fixed unless ``mask_key`` is None)."""
    clock = clock or FakeClock()
    client = Protocol(
        Role.CLIENT,
        mask_key_factory=fixed_mask(mask_key) if mask_key else os.urandom,
        clock=clock,
        max_message_size=max_message_size,
    )
    server = Protocol(Role.SERVER, clock=clock, max_message_size=max_message_size)
    client.open()
    server.open()
    return ProtocolPair(client, server)


# -- waiting for real sockets and tasks -----------------------------------------------------------


async def wait_until(
    predicate: Callable[[], object],
    what: str = "",
    *,
    timeout: float = 10.0,
    interval: float = 0.01,
) -> None:
    """Poll ``predicate()`` every ``interval`` seconds until it is true.

    For conditions no future announces (a background task has run, a count has been reached).
    Raises :class:`AssertionError` naming ``what`` if it is still false after ``timeout``
    seconds, so a broken test fails with a reason instead of hanging.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what or predicate}")
        await asyncio.sleep(interval)


class HttpReply(NamedTuple):
    """What :func:`http_request` got back."""

    status: int
    #: Header names in lower case; of a header sent several times, the last value.
    headers: dict[str, str]
    body: bytes


async def http_request(
    url: str,
    path: str = "/",
    *,
    method: str = "GET",
    timeout: float = 10.0,
    max_size: int = 16 * 1024 * 1024,
) -> HttpReply:
    """Send one ``method path`` request to the server at ``url`` and read the whole reply.

    ``url`` gives the host and port (``http://127.0.0.1:8765``; a ``ws://`` URL works too, its
    path is ignored). The request asks for ``Connection: close`` and the reply is read to the end
    of the stream, so no framing needs to be understood. Raises
    :class:`~wslab.foundation.errors.OperationTimeout` after ``timeout`` seconds and
    :class:`~wslab.foundation.errors.PayloadTooBig` for a reply over ``max_size`` bytes (the
    bound on what is buffered).
    """
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if parts.scheme in ("https", "wss") else 80)
    try:
        data = await asyncio.wait_for(_exchange(host, port, method, path, max_size), timeout)
    except asyncio.TimeoutError:
        raise OperationTimeout(
            f"no complete reply from {host}:{port} within {timeout:g}s"
        ) from None
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return HttpReply(int(lines[0].split()[1]), headers, body)


async def _exchange(host: str, port: int, method: str, path: str, max_size: int) -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        writer.write(
            f"{method} {path} HTTP/1.1\r\nHost: {netloc}\r\nConnection: close\r\n\r\n".encode()
        )
        chunks: list[bytes] = []
        size = 0
        while chunk := await reader.read(64 * 1024):
            size += len(chunk)
            if size > max_size:
                raise PayloadTooBig(f"the reply is over {max_size} bytes")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        writer.close()
