"""Checkers for the course's exercises, one module per chapter.

Each ``check_*`` function takes the student's answer, prints a one-line success message when it
is right and raises :class:`~.verdicts.NotYet` (an :class:`AssertionError`) with a hint when it
is not; a stub answer (``...``, or a function raising :class:`NotImplementedError`) is answered
with "Not yet" and the exercise's hint, printed (see :mod:`.verdicts`). The final word always
belongs to the engine: an answer is only "correct" once wslab's own code accepts it.

- :mod:`.tour` — chapter 00: the user the latency tail hurts most;
- :mod:`.frames` — chapter 01: a frame by hand, header sizes, a compressed payload;
- :mod:`.state` — chapter 02: the state machine's scenarios;
- :mod:`.heartbeat` — chapter 03: ping interval and pong timeout, on simulated time;
- :mod:`.heartbeat_live` — chapter 03: the same plugged into a live hub under jitter;
- :mod:`.messaging` — chapter 04: gap requests, delivery;
- :mod:`.messaging_live` — chapter 04: a token bucket plugged into a live hub as its rate limiter;
- :mod:`.scaling` — chapter 05: hub counts, broker targets;
- :mod:`.scaling_live` — chapter 05: the hub count started live, the busiest hub stopped;
- :mod:`.security` — chapter 06: rate-limit settings;
- :mod:`.security_live` — chapter 06: the same plugged into a live hub, a person and a spammer;
- :mod:`.reliability` — chapter 07: a reconnect schedule, judged on a live hub that is killed.

:data:`CHECKERS` maps each exercise's name (``"03.heartbeat"``) to its checker.
"""

from collections.abc import Callable
from typing import Any

from . import (
    frames,
    heartbeat,
    heartbeat_live,
    messaging,
    messaging_live,
    reliability,
    scaling,
    scaling_live,
    security,
    security_live,
    state,
    tour,
)
from .frames import check_deflate_exercise as check_deflate_exercise
from .frames import check_frame_exercise as check_frame_exercise
from .frames import check_header_size_exercise as check_header_size_exercise
from .heartbeat import check_heartbeat_exercise as check_heartbeat_exercise
from .heartbeat_live import check_live_heartbeat_exercise as check_live_heartbeat_exercise
from .messaging import check_delivery_exercise as check_delivery_exercise
from .messaging import check_gap_request_exercise as check_gap_request_exercise
from .messaging_live import check_live_bucket_exercise as check_live_bucket_exercise
from .reliability import check_reconnect_exercise as check_reconnect_exercise
from .scaling import check_broker_targets_exercise as check_broker_targets_exercise
from .scaling import check_hub_count_exercise as check_hub_count_exercise
from .scaling_live import check_live_hub_count_exercise as check_live_hub_count_exercise
from .security import check_rate_limit_exercise as check_rate_limit_exercise
from .security_live import check_live_rate_limit_exercise as check_live_rate_limit_exercise
from .state import check_state_exercise as check_state_exercise
from .tour import check_slowest_user_exercise as check_slowest_user_exercise
from .verdicts import NotYet as NotYet
from .verdicts import hint as hint
from .verdicts import success as success

#: Exercise name -> its checker, gathered from the checkers' ``exercise_name``.
CHECKERS: dict[str, Callable[..., Any]] = {
    checker.exercise_name: checker
    for module in (
        tour, frames, state, heartbeat, heartbeat_live, messaging, messaging_live,
        scaling, scaling_live, security,
        security_live,
        reliability
    )
    for name in module.__all__
    if name.startswith("check_") and hasattr(checker := getattr(module, name), "exercise_name")
}
