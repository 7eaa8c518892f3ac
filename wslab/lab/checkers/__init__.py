"""Checkers for the course's exercises, one module per chapter.

Each ``check_*`` function takes the student's answer, prints a one-line success message when it
is right and raises :class:`AssertionError` with a hint when it is not (see :mod:`.verdicts`).
The final word always belongs to the engine: an answer is only "correct" once wslab's own code
accepts it.

- :mod:`.frames` — chapter 01: a frame by hand, header sizes;
- :mod:`.state` — chapter 02: the state machine's scenarios;
- :mod:`.heartbeat` — chapter 03: ping interval and pong timeout;
- :mod:`.messaging` — chapter 04: gap requests, delivery;
- :mod:`.scaling` — chapter 05: hub counts, broker targets;
- :mod:`.security` — chapter 06: rate-limit settings.
"""

from .frames import check_frame_exercise as check_frame_exercise
from .frames import check_header_size_exercise as check_header_size_exercise
from .heartbeat import check_heartbeat_exercise as check_heartbeat_exercise
from .messaging import check_delivery_exercise as check_delivery_exercise
from .messaging import check_gap_request_exercise as check_gap_request_exercise
from .scaling import check_broker_targets_exercise as check_broker_targets_exercise
from .scaling import check_hub_count_exercise as check_hub_count_exercise
from .security import check_rate_limit_exercise as check_rate_limit_exercise
from .state import check_state_exercise as check_state_exercise
from .verdicts import hint as hint
from .verdicts import success as success
