"""The live exercise of chapter 6: rate settings plugged into a running hub, judged by a workload.

The simulated exercise (:mod:`.security`) replays traffic against the hub's limiter on a fake
clock. This one starts a real hub with the student's three rate settings and runs, at once:

- a **person** behind a :class:`~wslab.lab.faults.TcpProxy` that adds :data:`LIVE_DELAY` s plus
  up to :data:`LIVE_JITTER` s each way — so that replies typed 0.1 s apart can reach the hub
  bunched together, as they do on a mobile link — sending :data:`PERSON_BURSTS` bursts of
  :data:`PERSON_BURST` replies; every one of them must be acknowledged (never ``RATE_LIMITED``);
- a **spam script** on a raw WebSocket, sending as fast as the socket takes them (up to
  :data:`SPAM_RATE` a second) for at most :data:`SPAM_SECONDS`; it must be closed with 1008
  within :data:`~.security.CLOSE_WITHIN` s of its first message, and a **witness** in the room
  may receive at most :data:`~.security.MAX_ABUSER_ACCEPTED` of its messages.

:func:`check_live_rate_limit_exercise` reports what the witness saw; everything it started is
stopped before it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from .security import CLOSE_WITHIN, MAX_ABUSER_ACCEPTED, RateSettings, rate_settings
from .verdicts import exercise, hint, success

__all__ = [
    "LIVE_DELAY",
    "LIVE_JITTER",
    "PERSON_BURST",
    "PERSON_BURSTS",
    "SPAM_RATE",
    "SPAM_SECONDS",
    "LiveRateRun",
    "check_live_rate_limit_exercise",
    "live_rate_run",
]

LIVE_DELAY = 0.05
LIVE_JITTER = 0.3
PERSON_BURST = 8
PERSON_BURSTS = 2
PERSON_SPACING = 0.1
PERSON_PAUSE = 2.0
SPAM_RATE = 500.0
SPAM_SECONDS = 3.0
#: The largest rate the hub accepts in a live check (beyond it, nothing would ever be refused).
MAX_LIVE_RATE = 10_000


@dataclass
class LiveRateRun:
    """What happened: the person's refusals, the spammer's close and what got through."""

    person_sent: int
    person_acked: int
    person_refused: int
    spam_sent: int
    spam_close_code: int | None
    spam_closed_after: float | None
    spam_seen_by_witness: int


async def _person(url: str, token: str) -> tuple[int, int, int]:
    """Send the bursts (each reply on its own task, so that jitter can bunch them)."""
    from wslab.client import ChatClient
    from wslab.foundation.errors import RateLimitedError

    client = ChatClient(url, token=token, reconnect=False)
    await client.connect()
    acked = refused = 0

    async def reply(delay: float, text: str) -> None:
        nonlocal acked, refused
        await asyncio.sleep(delay)
        try:
            await client.send_message(text)
            acked += 1
        except RateLimitedError:
            refused += 1

    try:
        delays = [b * PERSON_PAUSE + i * PERSON_SPACING
                  for b in range(PERSON_BURSTS) for i in range(PERSON_BURST)]
        await asyncio.gather(*(reply(d, f"reply {n}") for n, d in enumerate(delays)),
                             return_exceptions=True)
    finally:
        await client.close()
    return len(delays), acked, refused


async def _spammer(url: str, token: str) -> tuple[int, int | None, float | None]:
    """Flood the lobby on a raw connection until closed or :data:`SPAM_SECONDS` have passed."""
    from wslab.infrastructure.engines import connect as ws_connect

    conn = await ws_connect(url, headers=[("Authorization", f"Bearer {token}")])

    async def drain() -> None:
        with contextlib.suppress(Exception):
            while True:
                await conn.recv()

    reader = asyncio.ensure_future(drain())
    sent = 0
    started = time.monotonic()
    closed_after = None
    try:
        while time.monotonic() - started < SPAM_SECONDS and not conn.closed:
            message = {"type": "chat:message", "room": "lobby", "content": f"spam {sent}",
                       "ref": f"s{sent}"}
            try:
                await conn.send(json.dumps(message))
            except Exception:
                break
            sent += 1
            await asyncio.sleep(1 / SPAM_RATE)
        with contextlib.suppress(Exception):
            await conn.wait_closed(timeout=0.5)
        if conn.closed:
            closed_after = time.monotonic() - started
        code = conn.close_code
    finally:
        reader.cancel()
        with contextlib.suppress(BaseException):
            await reader
        with contextlib.suppress(Exception):
            await conn.close()
    return sent, code, closed_after


async def live_rate_run(rates: RateSettings) -> LiveRateRun:
    """Run the workload against a hub with these rate settings; everything is stopped at the end."""
    from wslab.client import ChatClient
    from wslab.hub import Hub
    from wslab.lab.faults import TcpProxy

    with tempfile.TemporaryDirectory() as folder:
        hub = await Hub.start(
            port=0,
            database=f"sqlite:///{Path(folder) / 'chat.db'}",
            broker=f"memory://security-live-{uuid.uuid4().hex[:8]}",
            rate_messages_per_second=rates.rate_messages_per_second,
            rate_burst=rates.rate_burst,
            rate_flood_close_after=rates.rate_flood_close_after,
        )
        proxy = await TcpProxy("127.0.0.1", hub.port).start()
        proxy.set_latency(LIVE_DELAY, LIVE_JITTER)
        witness = None
        try:
            witness = ChatClient(hub.ws_url, token=hub.token("wendy"), reconnect=False)
            await witness.connect()
            (sent, acked, refused), (spam_sent, code, closed_after) = await asyncio.gather(
                _person(proxy.url_for(hub.ws_url), hub.token("pat")),
                _spammer(hub.ws_url, hub.token("spambot")),
            )
            await asyncio.sleep(0.3)  # the last relayed messages reach the witness
            seen = sum(1 for m in witness.messages("lobby") if m.from_user == "spambot")
        finally:
            if witness is not None:
                await witness.close()
            await proxy.stop()
            await hub.stop()
    return LiveRateRun(sent, acked, refused, spam_sent, code, closed_after, seen)


@exercise("06.live_rate_limit", "Replace each `...` in `live_settings` with a number.")
async def check_live_rate_limit_exercise(settings: object) -> LiveRateRun:
    """Plug the rate settings into a live hub; judge the person, the spammer and the witness."""
    rates = rate_settings(settings)
    if rates.rate_messages_per_second > MAX_LIVE_RATE:
        raise hint(f"{rates.rate_messages_per_second:g} messages/s per connection refuses nothing "
                   "a script can send: the spammer would never be stopped.")
    run = await live_rate_run(rates)
    if run.person_refused or run.person_acked < run.person_sent:
        raise hint(
            f"the person (bursts of {PERSON_BURST} replies {PERSON_SPACING:g} s apart, over a link "
            f"with up to {LIVE_JITTER:g} s of jitter) was refused {run.person_refused} of "
            f"{run.person_sent} times. Jitter delivers a burst all at once: which setting says "
            "how many messages may arrive together?"
        )
    if run.spam_close_code != 1008 or run.spam_closed_after is None \
            or run.spam_closed_after > CLOSE_WITHIN:
        if run.spam_closed_after is None or run.spam_closed_after >= SPAM_SECONDS:
            when = f"was never closed in the {SPAM_SECONDS:g} s it ran"
        else:
            when = f"was closed with {run.spam_close_code} after {run.spam_closed_after:.2f} s"
        raise hint(
            f"the spam script {when}; it must be closed with 1008 within {CLOSE_WITHIN:g} s. "
            "How many refusals does your hub wait for, and how fast does a script earn them?"
        )
    if run.spam_seen_by_witness > MAX_ABUSER_ACCEPTED:
        raise hint(
            f"the witness received {run.spam_seen_by_witness} spam messages before the script was "
            f"closed (at most {MAX_ABUSER_ACCEPTED}): the sustained rate and the burst both let "
            "spam through."
        )
    success(
        f"the person's {run.person_sent} replies were all acknowledged through a jittery link; "
        f"the spam script was closed with 1008 after {run.spam_closed_after:.2f} s, and the "
        f"witness saw {run.spam_seen_by_witness} of its {run.spam_sent} messages."
    )
    return run
