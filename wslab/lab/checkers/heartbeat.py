"""Checker for the exercise of chapter 3 (``03_heartbeat.ipynb``): tune a heartbeat.

The exercise: choose ``ping_interval`` and ``pong_timeout`` so that

- a dead peer is noticed within :data:`DETECT_WITHIN` seconds of its last pong, whenever it dies;
- a healthy peer gets at most :data:`MAX_PINGS_PER_MINUTE` pings per minute;
- a healthy peer on a slow link — its pongs take up to :data:`SLOWEST_RTT` seconds, and jitter
  may add :data:`JITTER_MARGIN` seconds more to any one of them — is never declared dead. A
  timeout a hair above the slowest round trip seen is a timeout the next congested minute
  breaks: the margin is part of the requirement.

:func:`check_heartbeat_exercise` does not trust a formula: it runs wslab's own
:class:`~wslab.infrastructure.heartbeat.HeartbeatTimer` on simulated time against peers of each
kind (fast, slow, dying at many different moments) and reports the first requirement the settings
break, with a hint that explains the mechanism rather than the numbers to pick.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

from wslab.foundation.errors import ConfigError
from wslab.infrastructure.heartbeat import HeartbeatAction, HeartbeatTimer

from .verdicts import exercise, hint, success

__all__ = [
    "DETECT_WITHIN",
    "JITTER_MARGIN",
    "MAX_PINGS_PER_MINUTE",
    "SLOWEST_RTT",
    "HeartbeatRun",
    "check_heartbeat_exercise",
    "simulate_heartbeat",
]

#: A dead peer must be noticed within this many seconds of its last pong.
DETECT_WITHIN = 45.0
#: A healthy peer may receive at most this many pings per minute.
MAX_PINGS_PER_MINUTE = 2
#: The slowest round trip of a healthy peer, in seconds (a phone on a congested network).
SLOWEST_RTT = 3.0
#: Jitter on top of the slowest round trip, in seconds: a pong may take SLOWEST_RTT + this.
JITTER_MARGIN = 1.0

_SIMULATED = 600.0  # seconds of simulated time per healthy run
_STEPS = 10_000  # a bound on the simulation's loop, whatever the settings


@dataclass
class HeartbeatRun:
    """What happened to one simulated peer: when pings went out, pongs came back, and the verdict."""

    pings: list[float] = field(default_factory=list)
    pongs: list[float] = field(default_factory=list)
    dead_at: float | None = None

    @property
    def last_pong(self) -> float:
        """The time of the last pong (0.0, the start, if there was none)."""
        return self.pongs[-1] if self.pongs else 0.0


def simulate_heartbeat(
    ping_interval: float,
    pong_timeout: float,
    *,
    rtt: float,
    dies_at: float = math.inf,
    duration: float = _SIMULATED,
) -> HeartbeatRun:
    """Drive a :class:`HeartbeatTimer` on simulated time against one peer; return what happened.

    The peer answers every ping that reaches it alive — half a round trip after it was sent,
    before ``dies_at`` — and the pong arrives ``rtt`` seconds after the ping was sent. A pong
    arriving exactly at the deadline is too late, as for the timer itself. The run ends at the
    verdict DEAD or after ``duration`` seconds.
    """
    timer = HeartbeatTimer(ping_interval, pong_timeout, started_at=0.0)
    run = HeartbeatRun()
    now = 0.0
    pong_at: float | None = None
    for _ in range(_STEPS):
        if now > duration:
            break
        action = timer.due(now)
        if action is HeartbeatAction.DEAD:
            run.dead_at = now
            break
        if action is HeartbeatAction.PING:
            timer.ping_sent(now)
            run.pings.append(now)
            pong_at = now + rtt if now + rtt / 2 < dies_at else None
        check_at = now + timer.next_check(now)
        if pong_at is not None and pong_at < check_at:
            now, pong_at = pong_at, None
            timer.pong_received(now)
            run.pongs.append(now)
        else:
            now = check_at
    return run


def _seconds(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise hint(f"{name} must be a number of seconds, got {value!r}.")
    if not math.isfinite(value) or value <= 0:
        raise hint(f"{name} must be a positive, finite number of seconds, got {value!r}.")
    return float(value)


@exercise('03.heartbeat', 'Set `ping_interval` and `pong_timeout` to numbers of seconds.')
def check_heartbeat_exercise(ping_interval: object, pong_timeout: object) -> None:
    """Check heartbeat settings against the three requirements of the exercise.

    Prints a success line with what the settings achieve, or raises :class:`AssertionError`
    with a hint about the first requirement they break.
    """
    interval = _seconds(ping_interval, "ping_interval")
    timeout = _seconds(pong_timeout, "pong_timeout")
    try:
        HeartbeatTimer(interval, timeout)
    except ConfigError as error:  # pragma: no cover - _seconds already refuses these
        raise hint(error.message) from error

    # 1. A healthy peer on a slow link must never be declared dead.
    #    Its slowest pongs come with jitter on top: a timeout must leave that margin.
    slowest = SLOWEST_RTT + JITTER_MARGIN
    slow = simulate_heartbeat(interval, timeout, rtt=slowest)
    if slow.dead_at is not None:
        raise hint(
            f"a healthy peer whose pongs take {SLOWEST_RTT:g} s, plus up to {JITTER_MARGIN:g} s "
            f"of jitter, was declared dead after {slow.dead_at:g} s. After a ping, how long "
            "does the hub wait for the pong, and does that leave room for the jitter on top of "
            "the slowest healthy round trip?"
        )

    # 2. Pings to a healthy peer: the fastest peer gets the most (the next ping is due
    #    ping_interval after the last pong, so a quick pong brings the next ping sooner).
    fast = simulate_heartbeat(interval, timeout, rtt=0.0)
    spacing = min((b - a for a, b in itertools.pairwise(fast.pings)), default=_SIMULATED)
    per_minute = 60.0 / spacing
    if per_minute > MAX_PINGS_PER_MINUTE + 1e-9:
        raise hint(
            f"a healthy peer gets {per_minute:.4g} pings per minute; at most "
            f"{MAX_PINGS_PER_MINUTE} are allowed. Which setting decides how often pings go out?"
        )

    # 3. A dead peer must be noticed within DETECT_WITHIN of its last pong, whenever it dies:
    #    right after a pong, mid-interval, or just before the next ping.
    worst = 0.0
    first_pong = fast.pongs[0] if fast.pongs else interval
    for fraction in (0.001, 0.25, 0.5, 0.75, 0.999):
        dies_at = first_pong + fraction * interval
        run = simulate_heartbeat(interval, timeout, rtt=0.0, dies_at=dies_at)
        if run.dead_at is None:  # pragma: no cover - a dead peer is always found eventually
            raise hint("a peer that died was never declared dead.")
        worst = max(worst, run.dead_at - run.last_pong)
    if worst > DETECT_WITHIN + 1e-9:
        raise hint(
            f"a peer that died just after answering a pong went unnoticed for {worst:g} s "
            f"after that pong; the limit is {DETECT_WITHIN:g} s. Count what must pass before "
            "the hub can be sure: the wait for the next ping, then the wait for its pong."
        )
    success(
        f"a dead peer is found at most {worst:g} s after its last pong (limit "
        f"{DETECT_WITHIN:g} s), a healthy one gets {per_minute:.3g} pings a minute (limit "
        f"{MAX_PINGS_PER_MINUTE}), and a {SLOWEST_RTT:g} s round trip with {JITTER_MARGIN:g} s "
        "of jitter is never mistaken for a dead peer."
    )
