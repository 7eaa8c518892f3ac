"""Load and latency experiments: many clients, many messages, real measurements.

Everything here drives real :class:`~wslab.client.ChatClient` connections over real sockets and
returns pandas DataFrames, ready to plot:

- :func:`connect_clients` — N clients for N users of a hub;
- :func:`measure_delivery` — send messages one at a time and time, for every receiver, how long
  each took to arrive (and how long the sender waited for its ``ack``);
- :func:`close_clients` — close them all.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from wslab.client import ChatClient, ChatMessage

if TYPE_CHECKING:
    import pandas as pd

    from wslab.hub import Hub

__all__ = ["close_clients", "connect_clients", "measure_delivery"]


async def connect_clients(
    hub: Hub,
    users: Sequence[str] | int,
    *,
    engine: str = "wslab",
    rooms: Sequence[str] = ("lobby",),
    **options: Any,
) -> list[ChatClient]:
    """Connect one client per user (``users`` may be a count: ``user0``, ``user1``...)."""
    names = [f"user{i}" for i in range(users)] if isinstance(users, int) else list(users)
    clients = []
    for name in names:
        token = hub.token(name) if hub.config.auth_required else None
        client = ChatClient(hub.ws_url, token=token, engine=engine, rooms=rooms, **options)
        await client.connect()
        clients.append(client)
    return clients


async def close_clients(clients: Sequence[ChatClient]) -> None:
    """Close every client (concurrently)."""
    await asyncio.gather(*(client.close() for client in clients), return_exceptions=True)


async def _arrival(client: ChatClient, content: str, timeout: float) -> float:
    await client.next_event(ChatMessage, timeout=timeout, where=lambda m: m.content == content)
    return time.perf_counter()


async def measure_delivery(
    sender: ChatClient,
    receivers: Sequence[ChatClient],
    *,
    messages: int = 50,
    room: str = "lobby",
    payload_size: int = 32,
    timeout: float = 10.0,
) -> pd.DataFrame:
    """Send ``messages`` messages from ``sender`` and time their arrival at every receiver.

    One row per (message, receiver): ``latency_ms`` from just before the send to the receiver
    seeing the message, and ``ack_ms`` from the send to the sender's ``ack`` (the message is
    stored by then). Messages go one at a time, so each measures the hub unloaded by the others.
    """
    import pandas as pd

    rows: list[dict[str, Any]] = []
    padding = "x" * max(0, payload_size - 12)
    for i in range(messages):
        content = f"m{i:06d} {time.perf_counter_ns() % 10_000:04d}{padding}"
        waiters = [asyncio.ensure_future(_arrival(r, content, timeout)) for r in receivers]
        started = time.perf_counter()
        try:
            ack = await sender.send_message(content, room=room)
            acked = time.perf_counter()
            arrivals = await asyncio.gather(*waiters)
        except BaseException:
            for waiter in waiters:
                waiter.cancel()
            raise
        for receiver, arrived in zip(receivers, arrivals, strict=True):
            rows.append(
                {
                    "message": i,
                    "seq": ack.seq,
                    "receiver": receiver.user_id,
                    "latency_ms": (arrived - started) * 1000,
                    "ack_ms": (acked - started) * 1000,
                }
            )
    return pd.DataFrame(rows)
