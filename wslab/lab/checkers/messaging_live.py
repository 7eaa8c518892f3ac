"""The live exercise of chapter 4: the student's token bucket *is* a running hub's rate limiter.

The hub limits each connection with a token bucket: tokens drip in at a steady rate, at most a
burst of them are kept, each message spends one, and a message that finds no token is refused
with ``RATE_LIMITED``. The student writes that bucket::

    class TokenBucket:
        def __init__(self, rate: float, burst: int): ...
        def try_take(self, now: float) -> bool: ...   # True: allow (a token was taken)

:func:`check_live_bucket_exercise` starts a hub and plugs the class into it: the hub builds each
connection's limiter with the factory ``hub.sessions.new_limiter`` (called once per connection,
when it opens), and the checker replaces that factory with one whose limiter asks
``TokenBucket(HUB_RATE, HUB_BURST).try_take(now)`` about every incoming message — ``now`` is
``time.monotonic()`` at the hub, as the hub's own bucket uses. Then a live workload, all at once:

- a **flooder** sends :data:`FLOOD_RATE` messages a second for :data:`FLOOD_SECONDS` s. The hub
  must let through its burst plus :data:`HUB_RATE` a second — ``HUB_BURST + HUB_RATE × the
  flood's length`` — within :data:`TOLERANCE`, and refuse the rest with ``RATE_LIMITED``;
- :data:`POLITE` **polite** clients send at :data:`POLITE_RATE` a second (half the limit) over
  the same seconds: the hub must refuse none of them;
- after the flood the flooder falls silent for :data:`PAUSE` s, then sends
  :data:`AFTER_PAUSE` messages at once: at most the burst (plus one for the token that drips in
  while they arrive) may get through — a bucket that saves idle time past its burst lets them
  all in.

The flood rule of the hub (close with 1008 after many refusals) is set out of reach, so that
the flooder stays connected and every refusal is counted. Everything started is stopped before
the checker answers (about five seconds).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wslab.infrastructure.ratelimit import ConnectionLimiter, Verdict

from .verdicts import _StubCalled, exercise, hint, success

__all__ = [
    "AFTER_PAUSE",
    "FLOOD_RATE",
    "FLOOD_SECONDS",
    "HUB_BURST",
    "HUB_RATE",
    "PAUSE",
    "POLITE",
    "POLITE_RATE",
    "TOLERANCE",
    "LiveBucketRun",
    "StudentLimiter",
    "check_live_bucket_exercise",
    "live_bucket_run",
]

HUB_RATE = 20.0
HUB_BURST = 5
FLOOD_RATE = 100.0
FLOOD_SECONDS = 2.0
POLITE = 2
POLITE_RATE = 10.0
PAUSE = 1.0
AFTER_PAUSE = 20
#: How far the flooder's accepted count may be from ``HUB_BURST + HUB_RATE x seconds``.
TOLERANCE = 0.15


class StudentLimiter(ConnectionLimiter):
    """A connection's limiter whose message bucket is the student's: ``try_take`` decides.

    The hub calls :meth:`check` for every incoming message; it answers ``ALLOW`` when the
    student's bucket gives a token, ``REJECT`` (a ``RATE_LIMITED`` reply, the connection kept)
    when it does not. An exception from the student's code is kept in :attr:`errors` and the
    message allowed: the hub goes on serving, and the checker reports the error.
    """

    __slots__ = ("bucket", "errors")

    def __init__(self, bucket: Any, errors: list[BaseException]) -> None:
        super().__init__(HUB_RATE, HUB_BURST)  # the parent's own buckets are not asked
        self.bucket = bucket
        self.errors = errors

    def check(self, nbytes: int = 0, now: float | None = None) -> Verdict:
        if now is None:
            now = time.monotonic()
        try:
            allowed = self.bucket.try_take(now)
        except BaseException as error:  # the student's code: report it, never crash the hub
            if len(self.errors) < 10:
                self.errors.append(error)
            allowed = True
        if allowed is True:
            self.allowed += 1
            return Verdict.ALLOW
        if allowed is not False and len(self.errors) < 10:
            self.errors.append(TypeError(f"try_take returned {allowed!r}"))
        self.rejected += 1
        return Verdict.REJECT


@dataclass
class LiveBucketRun:
    """What the hub, limited by the student's bucket, made of the workload."""

    flood_sent: int
    flood_accepted: int
    flood_seconds: float
    polite_sent: int
    polite_refused: int
    after_pause_accepted: int

    @property
    def expected(self) -> float:
        """The flooder's messages a bucket of ``HUB_RATE``/``HUB_BURST`` lets through."""
        return HUB_BURST + HUB_RATE * self.flood_seconds

    @property
    def flood_rate(self) -> float:
        """The flooder's accepted messages per second past its burst."""
        return max(0, self.flood_accepted - HUB_BURST) / self.flood_seconds


async def _flooder(url: str, token: str) -> tuple[int, int, float, int]:
    """Flood, pause, burst: (sent, accepted, the flood's length in s, accepted after the pause)."""
    from wslab.client import ChatClient
    from wslab.foundation.errors import RateLimitedError

    async with ChatClient(url, token=token, reconnect=False) as client:
        sends: list[asyncio.Future[Any]] = []
        count = int(FLOOD_RATE * FLOOD_SECONDS)
        started = time.monotonic()
        for i in range(count):
            # An open loop: each message goes at its time, whatever became of the ones before.
            await asyncio.sleep(max(0.0, started + i / FLOOD_RATE - time.monotonic()))
            sends.append(asyncio.ensure_future(client.send_message(f"flood {i}")))
        seconds = time.monotonic() - started
        flood = await asyncio.gather(*sends, return_exceptions=True)
        await asyncio.sleep(PAUSE)
        burst = await asyncio.gather(
            *(client.send_message(f"after the pause {i}") for i in range(AFTER_PAUSE)),
            return_exceptions=True,
        )
    for result in (*flood, *burst):
        if isinstance(result, BaseException) and not isinstance(result, RateLimitedError):
            raise result
    accepted = sum(1 for r in flood if not isinstance(r, BaseException))
    after = sum(1 for r in burst if not isinstance(r, BaseException))
    return count, accepted, seconds, after


async def _polite(url: str, token: str, index: int) -> tuple[int, int]:
    """Send at POLITE_RATE for FLOOD_SECONDS: (sent, refused)."""
    from wslab.client import ChatClient
    from wslab.foundation.errors import RateLimitedError

    async with ChatClient(url, token=token, reconnect=False) as client:
        count, refused = int(POLITE_RATE * FLOOD_SECONDS), 0
        started = time.monotonic()
        for i in range(count):
            await asyncio.sleep(max(0.0, started + i / POLITE_RATE - time.monotonic()))
            try:
                await client.send_message(f"polite {index}.{i}")
            except RateLimitedError:
                refused += 1
    return count, refused


async def live_bucket_run(bucket_class: Any) -> tuple[LiveBucketRun, list[BaseException]]:
    """Start a hub limited by ``bucket_class``, run the workload, stop it; the run and errors."""
    from wslab.hub import Hub

    errors: list[BaseException] = []
    with tempfile.TemporaryDirectory() as folder:
        hub = await Hub.start(port=0, database=f"sqlite:///{Path(folder) / 'chat.db'}",
                              broker=f"memory://bucket-live-{uuid.uuid4().hex[:8]}",
                              event_log_level="off",
                              rate_messages_per_second=HUB_RATE, rate_burst=HUB_BURST,
                              rate_flood_close_after=100_000)
        # The hook: the hub asks this factory for each new connection's limiter.
        hub.sessions.new_limiter = lambda: StudentLimiter(bucket_class(HUB_RATE, HUB_BURST), errors)
        try:
            polite_runs = [_polite(hub.ws_url, hub.token(f"polite{i}"), i) for i in range(POLITE)]
            flood, polite = await asyncio.gather(
                _flooder(hub.ws_url, hub.token("flooder")), asyncio.gather(*polite_runs)
            )
        finally:
            await hub.stop()
    sent, accepted, seconds, after = flood
    run = LiveBucketRun(sent, accepted, seconds, sum(p[0] for p in polite),
                        sum(p[1] for p in polite), after)
    return run, errors


def _probe(bucket_class: Any) -> None:
    """Build one bucket and ask it once, before any hub starts: a stub or a crash answers here."""
    if not callable(bucket_class):
        raise hint("pass the class itself (TokenBucket, no parentheses).")
    try:
        bucket = bucket_class(HUB_RATE, HUB_BURST)
    except NotImplementedError as error:
        raise _StubCalled from error
    except Exception as error:
        raise hint(f"TokenBucket({HUB_RATE:g}, {HUB_BURST}) raised "
                   f"{type(error).__name__}: {error}") from None
    now = time.monotonic()
    try:
        answer = bucket.try_take(now)
    except NotImplementedError as error:
        raise _StubCalled from error
    except Exception as error:
        raise hint(f"try_take({now:.3f}) raised {type(error).__name__}: {error}") from None
    if answer is Ellipsis:
        raise _StubCalled
    if not isinstance(answer, bool):
        raise hint(f"try_take returned {answer!r}; return True (allow) or False (refuse).")
    if answer is not True:
        raise hint("a new bucket refused its very first message: a bucket starts full.")


@exercise("04.live_bucket", "Fill in `TokenBucket.__init__` and `TokenBucket.try_take`.")
async def check_live_bucket_exercise(bucket_class: Any) -> LiveBucketRun:
    """Make ``bucket_class`` a live hub's limiter, flood it, and judge what it let through."""
    _probe(bucket_class)
    run, errors = await live_bucket_run(bucket_class)
    if errors:
        error = errors[0]
        raise hint(f"inside the hub, try_take raised {type(error).__name__}: {error}")
    low, high = run.expected * (1 - TOLERANCE), run.expected * (1 + TOLERANCE)
    told = (f"the hub let through {run.flood_accepted} of the flooder's {run.flood_sent} "
            f"messages in {run.flood_seconds:.1f} s, where a bucket of {HUB_RATE:g}/s and "
            f"bursts of {HUB_BURST} allows about {run.expected:.0f}")
    if run.flood_accepted > high:
        raise hint(f"{told}: does try_take ever say no, and does each message spend a token?")
    if run.flood_accepted <= HUB_BURST + 1:
        raise hint(f"{told}: do the tokens come back as time passes — and does a refused "
                   f"message cost nothing?")
    if run.flood_accepted < low:
        raise hint(f"{told}: the bucket refills too slowly — `rate` tokens a second, for the "
                   f"time since the last call — or a refused message costs a token.")
    if run.polite_refused:
        raise hint(f"the hub refused {run.polite_refused} of the {run.polite_sent} messages of "
                   f"clients sending at {POLITE_RATE:g}/s, half the limit: each connection "
                   f"has a bucket of its own — is anything shared between instances?")
    if run.after_pause_accepted > HUB_BURST + 1:
        raise hint(f"after {PAUSE:g} s of silence the hub let {run.after_pause_accepted} of "
                   f"{AFTER_PAUSE} messages through at once, where the burst is {HUB_BURST}: "
                   f"a bucket holds at most its burst — idle time is not saved up.")
    if run.after_pause_accepted < HUB_BURST - 1:
        raise hint(f"after {PAUSE:g} s of silence the hub let only {run.after_pause_accepted} "
                   f"of {AFTER_PAUSE} messages through at once: a bucket left alone fills "
                   f"up to its burst ({HUB_BURST}).")
    success(f"your bucket limited the flooder to {run.flood_accepted} of {run.flood_sent} "
            f"messages in {run.flood_seconds:.1f} s ({run.flood_rate:.1f}/s past its burst, the "
            f"limit is {HUB_RATE:g}/s), let {run.after_pause_accepted} through after a pause "
            f"(burst {HUB_BURST}), and refused none of the polite clients' {run.polite_sent}.")
    return run
