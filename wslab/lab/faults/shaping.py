"""What :class:`~.proxy.TcpProxy` does to one direction of the bytes it relays.

A direction is ``"up"`` (client to server) or ``"down"`` (server to client); :data:`DIRECTIONS`
lists the spellings a ``direction`` argument accepts. :class:`LinkShape` is the shaping of one
direction, shared by every relayed connection: latency, jitter, a bandwidth cap (a token
bucket) and whether it is stalled. :class:`_Lane` applies it to one connection's direction: a
delay line holding at most the proxy's ``max_buffer`` bytes, pumped in order (jitter never
reorders), no earlier than due and no faster than the bucket allows.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wslab.foundation.errors import ConfigError

if TYPE_CHECKING:
    from .proxy import _Pair

__all__ = ["DIRECTIONS", "LinkShape"]


#: The names a ``direction`` argument accepts, and the directions each means.
DIRECTIONS: Mapping[str, tuple[str, ...]] = {
    "up": ("up",),
    "client->server": ("up",),
    "down": ("down",),
    "server->client": ("down",),
    "both": ("up", "down"),
}


def _directions(direction: str) -> tuple[str, ...]:
    try:
        return DIRECTIONS[direction]
    except (KeyError, TypeError):
        raise ConfigError(
            f"direction must be one of {sorted(DIRECTIONS)}; got {direction!r}"
        ) from None


@dataclass
class LinkShape:
    """What one direction of the proxy does to the bytes it carries (shared by every connection)."""

    #: Seconds added to every chunk.
    delay: float = 0.0
    #: Up to this many more seconds, drawn uniformly per chunk (order is still preserved).
    jitter: float = 0.0
    #: Bytes per second, or None for no cap.
    rate: float | None = None
    #: Bytes the token bucket may send at once (and the largest piece a chunk is cut into).
    burst: int = 16 * 1024
    #: True while nothing is forwarded in this direction.
    stalled: bool = False

    @property
    def shaped(self) -> bool:
        """True if chunks go through the delay line (latency, jitter or a bandwidth cap)."""
        return self.delay > 0 or self.jitter > 0 or self.rate is not None


class _Lane:
    """One direction of a relayed pair when it is shaped: a bounded delay line and its pump task.

    Chunks wait in ``queue`` with the time they are due; the pump writes them in order, no
    earlier than due and no faster than the token bucket allows, and only while the target
    takes them and the direction is not stalled.
    """

    def __init__(self, pair: _Pair, name: str) -> None:
        self.pair = pair
        self.name = name
        self.queue: deque[tuple[float, bytes]] = deque()
        self.queued = 0
        self.last_due = 0.0
        self.tokens = 0.0
        self.refilled = time.monotonic()
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        #: The source sent a FIN while chunks were still waiting: pass it on after them.
        self.eof_pending = False

    @property
    def shape(self) -> LinkShape:
        return self.pair.proxy.shapes[self.name]

    @property
    def full(self) -> bool:
        return self.queued >= self.pair.proxy.max_buffer

    def push(self, data: bytes) -> None:
        shape = self.shape
        now = time.monotonic()
        due = now + shape.delay + (random.uniform(0, shape.jitter) if shape.jitter > 0 else 0.0)
        due = max(due, self.last_due)  # jitter must not reorder: a chunk waits for the one before
        self.last_due = due
        self.queue.append((due, data))
        self.queued += len(data)
        if self.task is None or self.task.done():
            self.task = self.pair.proxy._spawn(self._pump())
        self.wake.set()

    async def _wait(self) -> None:
        self.wake.clear()
        await self.wake.wait()

    async def _pump(self) -> None:
        await self._drain()
        target = self.pair.target_of(self.name)
        if self.eof_pending and target is not None and target.transport is not None:
            self.eof_pending = False
            if not target.transport.is_closing() and target.transport.can_write_eof():
                target.transport.write_eof()

    async def _drain(self) -> None:
        while self.queue:
            target = self.pair.target_of(self.name)
            if target is None or target.transport is None or target.transport.is_closing():
                self.queue.clear()
                self.queued = 0
                return
            shape = self.shape
            if shape.stalled or target.write_paused:
                await self._wait()
                continue
            due, data = self.queue[0]
            now = time.monotonic()
            if due > now:
                # Sleep until due, but wake early if the shape changes (heal, a new delay).
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wait(), due - now)
                continue
            piece = data
            if shape.rate is not None:
                self.tokens = min(
                    float(shape.burst), self.tokens + (now - self.refilled) * shape.rate
                )
                self.refilled = now
                size = min(len(data), shape.burst)
                if self.tokens < size:
                    await asyncio.sleep((size - self.tokens) / shape.rate)
                    continue
                self.tokens -= size
                piece = data[:size]
            if len(piece) == len(data):
                self.queue.popleft()
            else:
                self.queue[0] = (due, data[len(piece) :])
            self.queued -= len(piece)
            target.transport.write(piece)
            self.pair.count(self.name, len(piece))
            if not self.full:
                self.pair.update_reading()

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()
        self.queue.clear()
        self.queued = 0
