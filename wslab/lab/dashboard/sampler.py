"""The sampler: each tick, read every source and append what it says to bounded series.

One :class:`Sampler` per dashboard runs one task on the dashboard's loop. Each tick it reads
each watched hub's :class:`~.sources.Reading`, turns totals into per-second rates (over a
sliding window of about one second, so a 0.5 s tick does not halve a rate), and folds in the
load generator's streamed per-second snapshots — delivery latency p50/p99 measured at the
receiving clients from each message's scheduled send time, never estimated by the hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from .series import SeriesBook
from .sources import Reading, Source

__all__ = ["HubSeries", "Sampler"]

#: How many load snapshots may wait for the next tick (the oldest is dropped at the limit).
MAX_PENDING_TICKS = 256


class HubSeries:
    """What one watched hub has shown so far: bounded series plus the latest reading."""

    def __init__(self, source: Source, *, maxlen: int, rate_window: float, t0: float) -> None:
        self.source = source
        self.series = SeriesBook(maxlen=maxlen)
        self.rate_window = rate_window
        self.t0 = t0
        self.latest: Reading | None = None
        self.readings: deque[Reading] = deque(maxlen=64)
        self.load_ticks: deque[dict[str, Any]] = deque(maxlen=MAX_PENDING_TICKS)
        self.load: dict[str, Any] = {}
        self.reads = 0
        self.errors = 0
        self._rtt_mean_ms: float | None = None

    def add_load_tick(self, snapshot: dict[str, Any]) -> None:
        """A load worker's per-second snapshot (``LoadRun.on_tick``); folded in at the next tick."""
        self.load_ticks.append(snapshot)

    def record(self, reading: Reading) -> None:
        """Append one reading's values (and any waiting load snapshots) to the series."""
        self.reads += 1
        t = reading.time - self.t0
        s = self.series
        if reading.error is not None:
            self.errors += 1
            self.latest = reading
            s.append("connections", t, None)
            return
        previous = self._base(reading.time)
        self.readings.append(reading)
        self.latest = reading
        s.append("connections", t, reading.connections)
        if previous is not None:
            span = reading.time - previous.time
            s.append("in_per_s", t, max(0.0, reading.messages_in - previous.messages_in) / span)
            s.append("out_per_s", t, max(0.0, reading.messages_out - previous.messages_out) / span)
            pings = reading.rtt_count - previous.rtt_count
            if pings > 0:
                self._rtt_mean_ms = (reading.rtt_sum - previous.rtt_sum) / pings * 1000
        if reading.rtt_p50 is not None:
            s.append("rtt_p50_ms", t, reading.rtt_p50 * 1000)
            s.append("rtt_p99_ms", t, (reading.rtt_p99 or reading.rtt_p50) * 1000)
        elif self._rtt_mean_ms is not None:
            s.append("rtt_mean_ms", t, self._rtt_mean_ms)
        if reading.queue_max is not None:
            s.append("queue_max", t, reading.queue_max)
            s.append("queue_total", t, reading.queue_total or 0.0)
        self._fold_load(t)

    def _base(self, now: float) -> Reading | None:
        # The newest reading at least rate_window old (else the oldest kept): rates over ~1 s.
        base = None
        for old in self.readings:
            if now - old.time >= self.rate_window * 0.999:
                base = old
            else:
                break
        if base is None and self.readings:
            base = self.readings[0]
        if base is not None and now - base.time <= 0:
            return None
        return base

    def _fold_load(self, t: float) -> None:
        if not self.load_ticks:
            return
        ticks = list(self.load_ticks)
        self.load_ticks.clear()
        delivered = sum(int(k.get("delivered", 0)) for k in ticks)
        sent = sum(int(k.get("sent", 0)) for k in ticks)
        with_lat = [k for k in ticks if k.get("p50_ms") is not None]
        self.series.append("sent_per_s", t, float(sent))
        self.series.append("delivered_per_s", t, float(delivered))
        if with_lat:
            # Several workers: p50 weighted by what each delivered, p99 the worst one's (a bound).
            weight = sum(max(1, int(k.get("delivered", 0))) for k in with_lat)
            p50 = sum(k["p50_ms"] * max(1, int(k.get("delivered", 0))) for k in with_lat) / weight
            p99 = max(k["p99_ms"] for k in with_lat)
            self.series.append("latency_p50_ms", t, p50)
            self.series.append("latency_p99_ms", t, p99)
        self.load = {"sent_per_s": sent, "delivered_per_s": delivered,
                     "latency_p50_ms": self.series["latency_p50_ms"].last
                     if "latency_p50_ms" in self.series else None,
                     "latency_p99_ms": self.series["latency_p99_ms"].last
                     if "latency_p99_ms" in self.series else None}

    @property
    def version(self) -> int:
        return self.series.version

    def values(self) -> dict[str, Any]:
        """The current values, flat (for :meth:`Dashboard.snapshot`)."""
        r = self.latest
        row: dict[str, Any] = {"hub": self.source.label}
        for name in ("connections", "in_per_s", "out_per_s", "rtt_p50_ms", "rtt_p99_ms",
                     "rtt_mean_ms", "queue_max", "queue_total", "latency_p50_ms",
                     "latency_p99_ms", "sent_per_s", "delivered_per_s"):
            row[name] = self.series[name].last if name in self.series else None
        row["store_up"] = r.store_up if r else None
        row["broker_up"] = r.broker_up if r else None
        row["retry_queue"] = r.retry_queue if r else None
        row["close_codes"] = dict(r.close_codes) if r else {}
        row["rejections"] = dict(r.rejections) if r else {}
        row["error"] = r.error if r else None
        return row


class Sampler:
    """Reads every hub each ``interval`` seconds on one task; calls ``on_tick`` after each tick."""

    def __init__(self, views: list[HubSeries], *, interval: float = 0.5,
                 on_tick: Callable[[], Any] | None = None, read_timeout: float = 2.0) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be > 0 seconds, got {interval!r}")
        self.views = views
        self.interval = interval
        self.on_tick = on_tick
        self.read_timeout = read_timeout
        self.ticks = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="wslab-dash-sampler")

    async def tick(self) -> None:
        """Read every source once (concurrently, each with a timeout) and record the readings."""
        async def one(view: HubSeries) -> None:
            try:
                reading = await asyncio.wait_for(view.source.read(), self.read_timeout)
            except Exception as exc:  # a hub that stops mid-read is shown, not raised
                reading = Reading(time=time.time(), error=f"{type(exc).__name__}: {exc}")
            view.record(reading)

        await asyncio.gather(*(one(v) for v in self.views))
        self.ticks += 1
        if self.on_tick is not None:
            self.on_tick()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            await self.tick()
            # Fixed cadence: a slow read does not push every later tick back.
            next_at = max(next_at + self.interval, loop.time())
            await asyncio.sleep(next_at - loop.time())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
