"""Latency against offered load: run at each rate and find the knee where the hub stops keeping up."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any, ClassVar

import pandas as pd

from .coordinator import run_load

__all__ = ["SweepFrame", "sweep"]


class SweepFrame(pd.DataFrame):
    """A sweep's DataFrame (one row per offered rate) with ``.knee``: the first rate the hub did
    not keep up with, or None when it kept up with every one. The ``knee`` column marks its row."""

    _metadata: ClassVar[list[str]] = ["_knee"]
    _knee: float | None

    @property
    def _constructor(self) -> type[SweepFrame]:
        return SweepFrame

    @property
    def knee(self) -> float | None:
        return getattr(self, "_knee", None)


async def sweep(target: Any, rates: Sequence[float], *, p99_ms: float = 100.0,
                delivered_ratio: float = 0.95, **kwargs: Any) -> SweepFrame:
    """Run the same load at each offered rate (lowest first); one row per rate.

    Each row is the run's ``summary()`` plus ``delivered_ratio`` (deliveries over what the sends
    should have produced) and ``kept_up``: p99 latency (open loop: counted from each message's
    scheduled time) within ``p99_ms`` and at least ``delivered_ratio`` delivered. The first rate
    that does not keep up is the knee (``frame.knee``, and the ``knee`` column). Other keyword
    arguments go to :func:`run_load` (``clients``, ``duration``, ``pattern``...).
    """
    if isinstance(rates, (str, bytes)) or not isinstance(rates, Sequence) or not rates:
        raise ValueError("rates must be a non-empty list of positive messages/s")
    if any(not isinstance(r, numbers.Real) or not math.isfinite(r) or r <= 0 for r in rates):
        raise ValueError(f"rates must be positive numbers of messages/s, got {list(rates)!r}")
    if not p99_ms > 0:
        raise ValueError(f"p99_ms must be > 0, got {p99_ms!r}")
    if not 0 < delivered_ratio <= 1:
        raise ValueError(f"delivered_ratio must be in (0, 1], got {delivered_ratio!r}")
    if "rate" in kwargs:
        raise ValueError("a sweep sets the rate itself: give rates=[...], not rate")
    rows = []
    for rate in sorted(rates):
        result = await run_load(target, rate=rate, **kwargs)
        row = result.summary()
        expected = _expected_deliveries(result)
        row["delivered_ratio"] = row["delivered"] / expected if expected else 0.0
        row["kept_up"] = bool(row["p99_ms"] <= p99_ms and row["delivered_ratio"] >= delivered_ratio)
        rows.append(row)
    frame = SweepFrame(pd.DataFrame(rows))
    frame["knee"] = False
    failing = frame.index[~frame["kept_up"]]
    frame._knee = None
    if len(failing):
        frame.loc[failing[0], "knee"] = True
        frame._knee = float(frame.loc[failing[0], "offered_rate"])
    return frame


def _expected_deliveries(result: Any) -> int:
    # Each send reaches every member of its room (or one peer for a direct message).
    spec = result.spec
    sends = result.sends
    if not len(sends):
        return 0
    members: dict[str, int] = {}
    for i in range(spec["clients"]):
        if spec["pattern"] == "one_room":
            room = "load"
        elif spec["pattern"] == "direct":
            continue
        else:
            room = f"load{i % spec['rooms']}"
        members[room] = members.get(room, 0) + 1
    direct = sends["to_user"].notna()
    return int(direct.sum() * 1 + sends.loc[~direct, "room"].map(members).fillna(0).sum())
