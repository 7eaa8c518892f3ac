"""Chapter 0 (the tour): the user whose deliveries took longest at the 99th percentile."""

from __future__ import annotations

import pandas as pd


def slowest_user(deliveries: pd.DataFrame) -> str:
    """The receiver with the highest p99 latency (columns ``receiver`` and ``latency_ms``)."""
    p99 = deliveries.groupby("receiver")["latency_ms"].quantile(0.99)
    return str(p99.idxmax())
