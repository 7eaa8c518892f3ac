"""Checker for the live exercise of chapter 7 (``07_reliability.ipynb``): a reconnect schedule.

The exercise: write ``reconnect_delay(attempt, rng) -> seconds``, the pause a client takes before
reconnect attempt ``attempt`` (0 for the first) after its hub vanished, so that when a hub dies
with :data:`CLIENTS` clients attached and comes back :data:`OUTAGE` seconds later,

- every client is back within :data:`BACK_WITHIN` seconds of the restart, and
- no :data:`WINDOW` seconds see more than :data:`PEAK_SHARE` of the clients arrive at once
  (a herd arriving together is what knocks a hub that just restarted over again).

:func:`check_reconnect_exercise` does not trust a formula: it runs a real ``wslab serve``
process, attaches real :class:`~wslab.client.ChatClient` objects whose backoff is the student's
function, kills the hub with ``SIGKILL``, restarts it on the same port and measures when each
client is back. The verdict carries the arrival times, so the notebook can plot the storm.
"""

from __future__ import annotations

import asyncio
import math
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from wslab.client import ChatClient, Reconnected

from .verdicts import exercise, hint, success

__all__ = [
    "BACK_WITHIN",
    "CLIENTS",
    "OUTAGE",
    "PEAK_SHARE",
    "WINDOW",
    "ReconnectRun",
    "check_reconnect_exercise",
    "peak_in_window",
    "reconnect_storm",
]

#: Clients attached to the hub when it dies.
CLIENTS = 60
#: Seconds between the kill and the restart.
OUTAGE = 1.0
#: Every client must be back within this many seconds of the restart.
BACK_WITHIN = 4.0
#: The arrivals of any WINDOW seconds may be at most this share of the clients.
PEAK_SHARE = 0.3
WINDOW = 0.1

ReconnectDelay = Callable[[int, random.Random], float]


@dataclass
class ReconnectRun:
    """One kill and restart, in seconds after the restarted hub listened.

    ``arrivals``: when each client knocked with the attempt that got it back in — the load the
    restarted hub's listening socket sees; ``back``: when each client had reconnected and
    recovered (its ``Reconnected`` event).
    """

    clients: int
    outage: float
    arrivals: list[float] = field(default_factory=list)
    back: list[float] = field(default_factory=list)
    attempts: list[int] = field(default_factory=list)
    missing: int = 0

    @property
    def peak(self) -> int:
        """The most clients whose successful attempt fell within one :data:`WINDOW`."""
        return peak_in_window(self.arrivals, WINDOW)

    @property
    def last(self) -> float:
        """When the last client was back (``inf`` if one never was)."""
        return math.inf if self.missing or not self.back else max(self.back)


def peak_in_window(times: list[float], window: float) -> int:
    """The largest number of ``times`` that fit in one interval ``window`` long."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(ordered):
        while t - ordered[start] > window:
            start += 1
        best = max(best, end - start + 1)
    return best


def _delays_of(reconnect_delay: ReconnectDelay) -> None:
    """Try the function on its own first: a bad value gets a hint before any hub starts."""
    rng = random.Random(7)
    for attempt in range(30):
        value = reconnect_delay(attempt, rng)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise hint(f"reconnect_delay({attempt}, rng) returned {value!r}; return seconds.")
        if not math.isfinite(value) or value < 0:
            raise hint(f"reconnect_delay({attempt}, rng) returned {value!r}; a delay is >= 0.")


async def reconnect_storm(
    reconnect_delay: ReconnectDelay,
    *,
    clients: int = CLIENTS,
    outage: float = OUTAGE,
    give_up_after: float = BACK_WITHIN + 2.0,
    seed: int = 1,
) -> ReconnectRun:
    """Kill a hub process with ``clients`` attached, restart it after ``outage``; time the return.

    Each client's backoff is ``reconnect_delay(attempt, rng)`` with a ``random.Random`` of its
    own (seeded from ``seed``). Arrival times are measured from the moment the restarted hub
    listens. Everything started here is stopped before it returns.
    """
    from wslab.lab.hubproc import HubProcess  # a process of its own, started only when checked

    class Client(ChatClient):
        knocks: list[float]

        def backoff_delay(self, attempt: int) -> float:
            delay = float(reconnect_delay(attempt, self.rng))
            self.knocks.append(time.monotonic() + delay)  # when this attempt will knock
            return delay

    run = ReconnectRun(clients=clients, outage=outage)
    with tempfile.TemporaryDirectory() as folder:
        hub = HubProcess(
            database=f"sqlite:///{Path(folder) / 'chat.db'}",
            env={"WSLAB_CONNECTIONS_PER_IP_PER_MINUTE": str(10 * clients + 100)},
        )
        await hub.start()
        attached: list[Client] = []
        try:
            for i in range(clients):
                client = Client(hub.ws_url, rng=random.Random(seed * 100_003 + i))
                client.knocks = []
                await client.connect()
                attached.append(client)
            arrivals: dict[int, tuple[float, float, int]] = {}

            async def back(i: int, client: Client) -> None:
                event = await client.next_event(Reconnected, timeout=None)
                now = time.monotonic()
                knock = max((t for t in client.knocks if t <= now), default=now)
                arrivals[i] = (knock, now, event.attempt)

            waiting = [asyncio.ensure_future(back(i, c)) for i, c in enumerate(attached)]
            hub.kill()
            await asyncio.sleep(outage)
            await hub.start()
            restarted = hub.ready_at or time.monotonic()
            _done, pending = await asyncio.wait(waiting, timeout=give_up_after)
            for task in pending:
                task.cancel()
            await asyncio.gather(*waiting, return_exceptions=True)
            run.arrivals = sorted(knock - restarted for knock, _, _ in arrivals.values())
            run.back = sorted(t - restarted for _, t, _ in arrivals.values())
            run.attempts = [a for _, _, a in arrivals.values()]
            run.missing = clients - len(arrivals)
        finally:
            await asyncio.gather(*(c.close() for c in attached), return_exceptions=True)
            await hub.stop()
    return run


@exercise(
    "07.reconnect",
    "Replace `raise NotImplementedError` in `reconnect_delay(attempt, rng)` with the seconds to "
    "wait before attempt `attempt`; `rng.uniform(a, b)` draws a random number.",
)
async def check_reconnect_exercise(reconnect_delay: ReconnectDelay) -> ReconnectRun:
    """Run the storm against a real hub process with the student's schedule; judge it.

    Returns the :class:`ReconnectRun` on success (to plot), raises a hint otherwise.
    """
    if not callable(reconnect_delay):
        raise hint("pass the function itself: check_reconnect_exercise(reconnect_delay).")
    _delays_of(reconnect_delay)
    run = await reconnect_storm(reconnect_delay)
    limit = math.floor(PEAK_SHARE * run.clients)
    if run.missing:
        raise hint(
            f"{run.missing} of {run.clients} clients were still away {BACK_WITHIN + 2:g} s after "
            "the restart. How long can your pause grow before a client gives up the hub for "
            "longer than the outage itself?"
        )
    if run.last > BACK_WITHIN:
        raise hint(
            f"the last client came back {run.last:.2f} s after the restart; the limit is "
            f"{BACK_WITHIN:g} s. Cap the pause: a client waiting long after the hub is back is "
            "an outage of its own."
        )
    if run.peak > limit:
        raise hint(
            f"{run.peak} of {run.clients} clients knocked within {WINDOW * 1000:g} ms (at most "
            f"{limit} may). Clients that died together and wait the same time come back together: "
            "what makes each client's pause its own?"
        )
    success(
        f"all {run.clients} clients were back {run.last:.2f} s after the restart (limit "
        f"{BACK_WITHIN:g} s), at most {run.peak} knocking in any {WINDOW * 1000:g} ms (limit {limit})."
    )
    return run
