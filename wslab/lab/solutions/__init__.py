"""Model answers to the course's exercises, one module per chapter, kept out of the notebooks.

A notebook's exercise cell is committed as a stub; its checker answers the stub with "Not yet".
The course's own test run sets ``WSLAB_INJECT_SOLUTIONS=1`` (see ``notebooks/conftest.py``),
and every checker then judges the answer registered here under the exercise's name instead, so
CI proves that each checker accepts a right answer. ``tests/lab/test_solutions.py`` proves the
same outside the notebooks, next to the wrong answers each checker must refuse.

A student who wants to compare after trying reads them with ``wslab.lab.solutions.show(name)``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from . import ch00, ch01, ch02, ch03, ch04, ch05, ch06, ch07

__all__ = ["SOLUTIONS", "names", "show", "solution_for"]

Arguments = tuple[tuple[Any, ...], dict[str, Any]]

#: Exercise name -> a function returning the checker's arguments for the model answer.
SOLUTIONS: dict[str, Callable[[], Arguments]] = {
    "00.slowest_user": lambda: ((ch00.slowest_user,), {}),
    "01.frame": lambda: ((ch01.my_frame(),), {}),
    "01.header_size": lambda: ((ch01.header_size,), {}),
    "01.deflate": lambda: ((ch01.compress_message,), {}),
    "02.state": lambda: ((ch02.predictions(),), {}),
    "03.heartbeat": lambda: ((ch03.PING_INTERVAL, ch03.PONG_TIMEOUT), {}),
    "03.live_heartbeat": lambda: ((ch03.LIVE_PING_INTERVAL, ch03.LIVE_PONG_TIMEOUT), {}),
    "04.gap_request": lambda: ((ch04.gap_request(),), {}),
    "04.delivery": lambda: ((ch04.deliver,), {}),
    "04.live_bucket": lambda: ((ch04.TokenBucket,), {}),
    "05.hub_count": lambda: ((ch05.hubs_needed,), {}),
    "05.live_hub_count": lambda: ((ch05.hubs_needed,), {}),
    "05.broker_targets": lambda: ((ch05.must_receive,), {}),
    "06.rate_limit": lambda: ((ch06.rate_settings(),), {}),
    "06.live_rate_limit": lambda: ((ch06.live_rate_settings(),), {}),
    "07.reconnect": lambda: ((ch07.reconnect_delay,), {}),
}


def names() -> list[str]:
    """Every exercise with a registered solution, in course order."""
    return sorted(SOLUTIONS)


def solution_for(name: str) -> Arguments:
    """The positional and keyword arguments a checker judges for exercise ``name``."""
    try:
        factory = SOLUTIONS[name]
    except KeyError:
        raise KeyError(f"no solution registered for exercise {name!r}; known: {names()}") from None
    return factory()


def show(name: str) -> None:
    """Print the source of the model answer to exercise ``name`` (after trying your own)."""
    module = {"0" + str(i): m for i, m in enumerate((ch00, ch01, ch02, ch03, ch04, ch05, ch06, ch07))}
    print(inspect.getsource(module[name.split(".")[0]]))
