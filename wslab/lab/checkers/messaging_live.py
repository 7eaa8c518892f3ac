"""The live exercise of chapter 4: the student's token bucket paces a sender into a running hub.

A hub limits each connection with a token bucket (:data:`HUB_RATE` messages a second, bursts of
:data:`HUB_BURST`); a polite sender paces itself with a bucket of its own, a little below the
hub's, so that it is never refused. The student writes that bucket::

    class TokenBucket:
        def __init__(self, rate: float, burst: int): ...
        def try_take(self, now: float) -> bool: ...   # True: send now (a token was taken)

:func:`check_live_bucket_exercise` builds ``TokenBucket(CLIENT_RATE, CLIENT_BURST)`` and sends
:data:`MESSAGES` messages through a :class:`~wslab.lab.faults.TcpProxy` with jitter (which
bunches messages on the way), whenever ``try_take(loop.time())`` allows, with a pause of
:data:`PAUSE` s in the middle (a bucket that keeps filling past its burst while idle spends it
all at once after). The targets: **no message refused** by the hub, and all of them sent within
:data:`SLACK` times the time the client's rate needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .verdicts import _StubCalled, exercise, hint, success

__all__ = ["CLIENT_BURST", "CLIENT_RATE", "HUB_BURST", "HUB_RATE", "MESSAGES", "LiveBucketRun",
           "check_live_bucket_exercise"]

HUB_RATE = 20.0
HUB_BURST = 5
CLIENT_RATE = 16.0
CLIENT_BURST = 3
MESSAGES = 48
PAUSE = 1.0
JITTER = 0.05
SLACK = 1.5


@dataclass
class LiveBucketRun:
    """What the hub made of the paced sender."""

    sent: int
    acked: int
    refused: int
    seconds: float

    @property
    def needed(self) -> float:
        """Seconds the client's own rate needs for every message, plus the pause."""
        return (MESSAGES - CLIENT_BURST) / CLIENT_RATE + PAUSE


def _take(bucket: Any, now: float) -> bool:
    try:
        answer = bucket.try_take(now)
    except NotImplementedError as error:
        raise _StubCalled from error
    except Exception as error:
        raise hint(f"try_take({now:.3f}) raised {type(error).__name__}: {error}") from None
    if answer is Ellipsis:
        raise _StubCalled
    if not isinstance(answer, bool):
        raise hint(f"try_take returned {answer!r}; return True (send now) or False (wait).")
    return answer


async def live_bucket_run(bucket: Any) -> LiveBucketRun:
    """Pace :data:`MESSAGES` messages with ``bucket`` into a rate-limited hub behind jitter."""
    from wslab.client import ChatClient
    from wslab.foundation.errors import RateLimitedError
    from wslab.hub import Hub
    from wslab.lab.faults import TcpProxy

    loop = asyncio.get_running_loop()
    with tempfile.TemporaryDirectory() as folder:
        hub = await Hub.start(port=0, database=f"sqlite:///{Path(folder) / 'chat.db'}",
                              broker=f"memory://bucket-live-{uuid.uuid4().hex[:8]}",
                              rate_messages_per_second=HUB_RATE, rate_burst=HUB_BURST,
                              rate_flood_close_after=1000)
        proxy = await TcpProxy("127.0.0.1", hub.port).start()
        proxy.set_latency(0.01, JITTER)
        client = ChatClient(proxy.url_for(hub.ws_url), token=hub.token("pacer"), reconnect=False)
        sends: list[asyncio.Task[Any]] = []
        try:
            await client.connect()
            started = time.monotonic()
            limit = started + 2 * ((MESSAGES - CLIENT_BURST) / CLIENT_RATE + PAUSE)
            paused = False
            while len(sends) < MESSAGES and time.monotonic() < limit:
                if len(sends) == MESSAGES // 2 and not paused:
                    paused = True
                    await asyncio.sleep(PAUSE)  # idle: the bucket must not fill past its burst
                while not _take(bucket, loop.time()):
                    if time.monotonic() > limit:
                        break
                    await asyncio.sleep(0.002)
                else:
                    sends.append(asyncio.ensure_future(client.send_message(f"paced {len(sends)}")))
            seconds = time.monotonic() - started
            results = await asyncio.gather(*sends, return_exceptions=True)
        finally:
            for task in sends:
                task.cancel()
            with contextlib.suppress(Exception):
                await client.close()
            await proxy.stop()
            await hub.stop()
    refused = sum(1 for r in results if isinstance(r, RateLimitedError))
    acked = sum(1 for r in results if not isinstance(r, BaseException))
    return LiveBucketRun(len(sends), acked, refused, seconds)


@exercise("04.live_bucket", "Fill in `TokenBucket.__init__` and `TokenBucket.try_take`.")
async def check_live_bucket_exercise(bucket_class: Any) -> LiveBucketRun:
    """Pace a live sender with ``bucket_class(CLIENT_RATE, CLIENT_BURST)``; judge the hub's replies."""
    if not callable(bucket_class):
        raise hint("pass the class itself (TokenBucket, no parentheses).")
    try:
        bucket = bucket_class(CLIENT_RATE, CLIENT_BURST)
    except NotImplementedError as error:
        raise _StubCalled from error
    except Exception as error:
        raise hint(f"TokenBucket({CLIENT_RATE:g}, {CLIENT_BURST}) raised "
                   f"{type(error).__name__}: {error}") from None
    run = await live_bucket_run(bucket)
    if run.sent <= CLIENT_BURST + 1:
        raise hint(f"only {run.sent} of {MESSAGES} messages were allowed in "
                   f"{run.seconds:.1f} s: do the tokens come back as time passes?")
    if run.sent < MESSAGES:
        raise hint(f"only {run.sent} of {MESSAGES} messages were allowed in {run.seconds:.1f} s, "
                   f"where {run.needed:.1f} s would do for all: the bucket refills too slowly.")
    if run.refused:
        raise hint(
            f"the hub refused {run.refused} of {run.sent} messages (RATE_LIMITED): the sender went "
            f"faster than {CLIENT_RATE:g}/s or spent more than {CLIENT_BURST} at once — after the "
            f"{PAUSE:g} s pause too? A bucket holds at most its burst."
        )
    if run.seconds > SLACK * run.needed:
        raise hint(f"every message got through, but in {run.seconds:.1f} s where "
                   f"{run.needed:.1f} s would do: the bucket refills too slowly.")
    success(f"{run.sent} messages paced in {run.seconds:.1f} s (the rate needs {run.needed:.1f} s) "
            f"through a jittery link; the hub refused none.")
    return run
