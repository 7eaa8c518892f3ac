"""The live exercise of chapter 5: the student's hub count, started and then put to the test.

``hubs_needed(users, capacity)`` decides how many hubs run. The checker starts that many hubs in
this process (one store, one in-process broker), each refusing connections past ``capacity``
(``max_connections``; :data:`LIVE_CAPACITY` unless the chapter passes the one its student
measured), connects :data:`LIVE_USERS` users through a
least-effort balancer (try the hubs in turn until one admits), then **stops the busiest hub**
as a deploy or a crash would. Its users reconnect to the others. The targets:

- every user is connected again after the stop (a refused user is a user left out);
- a message sent after the stop reaches every user, on every remaining hub (through the broker);
- no more hubs than that requires (each hub is a machine to pay for).

:func:`check_live_hub_count_exercise` stops everything it started before it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .scaling import _call
from .verdicts import exercise, hint, success

__all__ = ["LIVE_CAPACITY", "LIVE_USERS", "LiveHubCountRun", "check_live_hub_count_exercise",
           "live_hub_count_run"]

LIVE_USERS = 20
LIVE_CAPACITY = 6
#: More hubs than this is refused before anything starts (a typo, not a design).
MAX_LIVE_HUBS = 12


@dataclass
class LiveHubCountRun:
    """What happened to the users: placed, displaced by the stop, reconnected, reached."""

    hubs: int
    placed: int
    displaced: int
    connected_after: int
    reached_after: int


async def _admit(hubs: list[Any], user: str, start: int) -> Any:
    """Connect ``user`` to the first hub from ``start`` on that admits it, or return None."""
    from wslab.client import ChatClient

    for k in range(len(hubs)):
        hub = hubs[(start + k) % len(hubs)]
        client = ChatClient(hub.ws_url, token=hub.token(user), reconnect=False)
        try:
            return await asyncio.wait_for(client.connect(), 5.0)
        except Exception:  # refused (503 past max_connections) or gone: the next hub
            with contextlib.suppress(Exception):
                await client.close()
    return None


async def live_hub_count_run(count: int, capacity: int = LIVE_CAPACITY) -> LiveHubCountRun:
    """Start ``count`` hubs of ``capacity`` connections each, place the users, stop the busiest hub, and count who is left out."""
    from wslab.hub import Hub

    with tempfile.TemporaryDirectory() as folder:
        shared: dict[str, Any] = dict(port=0, database=f"sqlite:///{Path(folder) / 'chat.db'}",
                      broker=f"memory://hubcount-{uuid.uuid4().hex[:8]}",
                      max_connections=capacity, jwt_secret=uuid.uuid4().hex * 2,
                      connections_per_ip_per_minute=10_000)
        hubs: list[Any] = []
        clients: dict[str, Any] = {}
        try:
            for n in range(count):
                hubs.append(await Hub.start(hub_id=f"hub-{n}", **shared))
            for i in range(LIVE_USERS):
                client = await _admit(hubs, f"user{i}", i)
                if client is not None:
                    clients[f"user{i}"] = client
            placed = len(clients)
            busiest = max(hubs, key=lambda h: len(h.connections))
            hubs.remove(busiest)
            await busiest.stop()
            displaced = [u for u, c in clients.items() if not c.connected]
            for user in displaced:
                await clients.pop(user).close()
            for n, user in enumerate(displaced):
                if hubs:
                    client = await _admit(hubs, user, n)
                    if client is not None:
                        clients[user] = client
            reached = 0
            if clients:
                sender = next(iter(clients.values()))
                ack = await sender.send_message("after the stop")
                deadline = asyncio.get_running_loop().time() + 5.0
                while asyncio.get_running_loop().time() < deadline:
                    reached = sum(1 for c in clients.values()
                                  if any(m.seq == ack.seq for m in c.messages("lobby")))
                    if reached == len(clients):
                        break
                    await asyncio.sleep(0.05)
        finally:
            for client in clients.values():
                with contextlib.suppress(Exception):
                    await client.close()
            for hub in hubs:
                await hub.stop()
    return LiveHubCountRun(count, placed, len(displaced), len(clients), reached)


@exercise("05.live_hub_count", "Replace `raise NotImplementedError` in `hubs_needed` with the count.")
async def check_live_hub_count_exercise(hubs_needed: Callable[[int, int], int],
                                        capacity: int = LIVE_CAPACITY) -> LiveHubCountRun:
    """Start ``hubs_needed(LIVE_USERS, capacity)`` hubs, stop the busiest, judge the rest.

    ``capacity`` is the connections each hub admits: the chapter passes the one its student
    measured, scaled to this exercise's :data:`LIVE_USERS` users (2 to :data:`LIVE_USERS`).
    """
    if isinstance(capacity, bool) or not isinstance(capacity, int) or not 2 <= capacity <= LIVE_USERS:
        # Below 2 the right answer needs more than MAX_LIVE_HUBS hubs; above LIVE_USERS one hub
        # holds everyone and there is nothing to plan.
        raise hint(f"capacity must be a whole number of connections per hub in 2..{LIVE_USERS}, "
                   f"got {capacity!r}.")
    if not callable(hubs_needed):
        raise hint("pass the function itself (hubs_needed, no parentheses).")
    count = _call(hubs_needed, f"hubs_needed({LIVE_USERS}, {capacity})", LIVE_USERS, capacity)
    if isinstance(count, bool) or not isinstance(count, int):
        raise hint(f"hubs_needed returned {count!r}; a hub runs or it doesn't: return an int.")
    if not 1 <= count <= MAX_LIVE_HUBS:
        raise hint(f"hubs_needed returned {count}; this check runs between 1 and {MAX_LIVE_HUBS}.")
    run = await live_hub_count_run(count, capacity)
    if run.placed < LIVE_USERS:
        raise hint(
            f"{count} hubs of {capacity} connections admitted only {run.placed} of "
            f"{LIVE_USERS} users while every hub was up."
        )
    if run.connected_after < LIVE_USERS:
        raise hint(
            f"after the busiest hub stopped, {LIVE_USERS - run.connected_after} of its "
            f"{run.displaced} users found no hub with room. Count the hubs that are left."
        )
    if run.reached_after < run.connected_after:
        raise hint(f"a message after the stop reached {run.reached_after} of "
                   f"{run.connected_after} users.")
    fewest = math.ceil(LIVE_USERS / capacity) + 1
    if count > fewest:
        raise hint(f"everyone stayed connected, with {count} hubs; fewer would have done it, and "
                   "each one is a machine to pay for.")
    success(
        f"{count} hubs held {LIVE_USERS} users; after the busiest stopped, its {run.displaced} "
        f"users reconnected to the others and a message reached all {run.reached_after}."
    )
    return run
