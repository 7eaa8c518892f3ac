"""The fixed bounds of the chat client, and the helper that keeps a mapping within one.

The bounds a user may set (``max_inbox``, ``max_pending``, ``max_room_messages``) are arguments
of :class:`~wslab.client.ChatClient`; the ones here are internal. The table in the docstring of
:mod:`wslab.client` says what happens at each limit.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from wslab.integration.store import MAX_HISTORY_LIMIT

__all__ = [
    "HISTORY_PAGE",
    "MAX_BACKOFFS",
    "MAX_LATENCIES",
    "MAX_SEEN",
    "MAX_TRACKED_REFS",
    "MAX_TRACKS",
    "bounded_put",
]


HISTORY_PAGE = MAX_HISTORY_LIMIT  # the protocol's maximum `limit`: recovery pages with it
MAX_SEEN = 10_000  # message ids remembered for deduplication
MAX_LATENCIES = 10_000
MAX_BACKOFFS = 1_000
MAX_TRACKED_REFS = 1_000  # refs/ids kept for late acks and latency matching
MAX_TRACKS = 1_000  # rooms and direct conversations whose seq the client follows


def bounded_put(store: OrderedDict[Any, Any], key: Any, value: Any, limit: int) -> None:
    """Put ``key`` last in ``store``; beyond ``limit`` entries, forget the oldest."""
    store[key] = value
    store.move_to_end(key)
    while len(store) > limit:
        store.popitem(last=False)
