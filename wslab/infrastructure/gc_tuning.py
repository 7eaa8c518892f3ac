"""Cyclic garbage collector settings for a process that is a hub and nothing else (``wslab serve``).

CPython runs a young-generation collection every 700 net allocations of container objects
(dicts, lists, tasks, frames...). Accepting a connection allocates a few hundred of them, so a
hub taking connections ran a collection every two or three handshakes, and every tenth of those
also walked the middle generation; a profile of ``wslab serve`` accepting 1,500 connections spent
13 % of its CPU in the collector. Nearly everything a connection allocates either dies by
reference counting or lives as long as the connection, so those passes found next to nothing.

:func:`tune_for_serving` is called once the hub has started: it freezes what start-up created
(modules, functions, configuration: never garbage, no longer scanned by any collection) and
raises the young-generation threshold. The older generations keep their ratios, so full
collections stay as rare, relative to the live heap, as CPython makes them. Never called on
import, nor in a notebook kernel or a test process: the collector there is theirs.
"""

from __future__ import annotations

import gc

__all__ = ["YOUNG_THRESHOLD", "tune_for_serving"]

#: Net container allocations between young-generation collections (CPython's default is 700).
#: Cyclic garbage can wait this long for its collection: at most a few MiB, against
#: per-connection CPU that no longer pays a collection every few handshakes.
YOUNG_THRESHOLD = 10_000


def tune_for_serving(young: int = YOUNG_THRESHOLD) -> None:
    """Freeze the start-up heap and collect the young generation every ``young`` allocations."""
    gc.collect()
    gc.freeze()
    threshold0, threshold1, threshold2 = gc.get_threshold()
    if 0 < threshold0 < young:  # 0 means the collector is off: leave it off
        gc.set_threshold(young, threshold1, threshold2)
