"""The outcome of a load run as pandas DataFrames: sends, acks, deliveries, per-second aggregates."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

SEND_COLUMNS = ["sender", "ref", "k", "room", "to_user", "scheduled", "sent"]
ACK_COLUMNS = ["sender", "ref", "message_id", "seq", "acked"]
DELIVERY_COLUMNS = ["sender", "receiver", "room", "k", "seq", "message_id", "scheduled",
                    "received", "latency"]


@dataclass
class LoadResult:
    """``.sends``, ``.acks``, ``.deliveries`` (times in ns from ``time.time_ns``, latency in ms),
    ``.per_second`` and ``.summary()``. Enough for a history checker: each send's ``ref``, each
    ack's ``message_id``/``seq`` and every delivery per receiving client."""

    spec: dict[str, Any]
    sends: pd.DataFrame
    acks: pd.DataFrame
    deliveries: pd.DataFrame
    start_ns: int
    stopped: bool = False
    errors: list[str] = field(default_factory=list)
    #: Seconds from spawning the workers until every client was connected and in its rooms.
    connect_seconds: float = 0.0
    #: Connection attempts tried again after a transient failure (a hub too busy to answer).
    connect_retries: int = 0
    #: Sends the hub answered with an error instead of an ack (``errors`` has the first few).
    refused: int = 0

    @classmethod
    def build(cls, spec: dict[str, Any], rows: dict[str, list[tuple[Any, ...]]], start_ns: int,
              stopped: bool, connect_seconds: float = 0.0) -> LoadResult:
        return cls(
            spec=spec,
            sends=pd.DataFrame(rows["sends"], columns=SEND_COLUMNS),
            acks=pd.DataFrame(rows["acks"], columns=ACK_COLUMNS),
            deliveries=pd.DataFrame(rows["deliveries"], columns=DELIVERY_COLUMNS),
            start_ns=start_ns,
            stopped=stopped,
            connect_seconds=connect_seconds,
        )

    @property
    def per_second(self) -> pd.DataFrame:
        """One row per second of the run: sent, acked, delivered, latency p50/p99 (ms)."""
        def second(ns: pd.Series) -> pd.Series:
            return ((ns - self.start_ns) // 1_000_000_000).astype("int64")

        sent = self.sends.groupby(second(self.sends["scheduled"])).size().rename("sent")
        acked = self.acks.groupby(second(self.acks["acked"])).size().rename("acked")
        d = self.deliveries
        by = d.groupby(second(d["received"]))["latency"]
        frame = pd.concat([sent, acked, by.size().rename("delivered"),
                           by.quantile(0.5).rename("p50_ms"), by.quantile(0.99).rename("p99_ms")],
                          axis=1)
        frame.index.name = "second"
        for column in ("sent", "acked", "delivered"):
            frame[column] = frame[column].fillna(0).astype("int64")
        return frame.sort_index()

    def summary(self) -> dict[str, Any]:
        """Offered and achieved rates, counts and latency percentiles in one dict."""
        lat = self.deliveries["latency"]
        span = self.spec.get("duration") or max(
            1e-9, (self.sends["scheduled"].max() - self.start_ns) / 1e9 if len(self.sends) else 0
        )
        return {
            "clients": self.spec["clients"],
            "pattern": self.spec["pattern"],
            "mode": self.spec["mode"],
            "offered_rate": self.spec["rate"],
            "sent": len(self.sends),
            "acked": len(self.acks),
            "refused": self.refused,
            "delivered": len(self.deliveries),
            "sent_rate": len(self.sends) / span if span else 0.0,
            "p50_ms": float(lat.quantile(0.5)) if len(lat) else float("nan"),
            "p99_ms": float(lat.quantile(0.99)) if len(lat) else float("nan"),
            "max_ms": float(lat.max()) if len(lat) else float("nan"),
            "stopped": self.stopped,
        }
