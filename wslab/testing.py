"""Tools that make tests and notebook experiments short and deterministic.

- :class:`FakeClock` — a clock that moves only when told, for the state machine, the heartbeat
  timer, the rate limiter, the event log and the token verifier (all take a ``clock``).
- :func:`protocol_pair` — a connected client and server :class:`~wslab.foundation.Protocol`
  with no sockets: :meth:`ProtocolPair.client_to_server` carries bytes across and returns the
  events, so a whole conversation fits in a few lines.
- :func:`fixed_mask` — a masking-key factory that returns the same key, for stable bytes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from wslab.foundation.protocol import Event, Protocol, Role

__all__ = ["FakeClock", "ProtocolPair", "fixed_mask", "protocol_pair"]


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
    options: dict[str, object] = {"clock": clock, "max_message_size": max_message_size}
    client = Protocol(
        Role.CLIENT,
        mask_key_factory=fixed_mask(mask_key) if mask_key else os.urandom,
        **options,  # type: ignore[arg-type]
    )
    server = Protocol(Role.SERVER, **options)  # type: ignore[arg-type]
    client.open()
    server.open()
    return ProtocolPair(client, server)
