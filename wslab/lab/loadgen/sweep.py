"""Latency against offered load: run at each rate and find the knee where the hub stops keeping up."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from .coordinator import run_load

__all__ = ["sweep"]


async def sweep(target: Any, rates: Sequence[float], *, p99_ms: float = 100.0,
                delivered_ratio: float = 0.95, **kwargs: Any) -> pd.DataFrame:
    """One row per rate (the ``summary()`` of its run) plus ``kept_up`` and ``knee``.

    A rate keeps up while p99 stays under ``p99_ms`` and the hub delivers at least
    ``delivered_ratio`` of what it was offered; ``knee`` marks the first rate that does not.
    """
    if not rates or any(r <= 0 for r in rates):
        raise ValueError("rates must be a non-empty list of positive messages/s")
    rows = []
    for rate in sorted(rates):
        result = await run_load(target, rate=rate, **kwargs)
        row = result.summary()
        expected = _expected_deliveries(result)
        row["delivered_ratio"] = row["delivered"] / expected if expected else 0.0
        row["kept_up"] = bool(row["p99_ms"] <= p99_ms and row["delivered_ratio"] >= delivered_ratio)
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame["knee"] = False
    failing = frame.index[~frame["kept_up"]]
    if len(failing):
        frame.loc[failing[0], "knee"] = True
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
