"""The dashboard's fault switches: the network (a TcpProxy in front of the hub), a frozen client
process, and outages of the hub's broker and store.

Every switch is a plain method (``dash.faults.latency(0.05)``), so a cell does what a click
does. The network switches act on every proxy the dashboard owns (the load's, and the watched
connection's), so what the load feels the frame panel shows too. ``clear()`` turns every
switch off; the dashboard calls it when it stops, so a stopped dashboard leaves its hub as it
found it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from typing import Any

from wslab.foundation.errors import ConfigError

from ..faults import TcpProxy
from .load import LoadControl
from .sources import HubSource, Source

__all__ = ["FaultSwitches"]


class FaultSwitches:
    """Network faults, a frozen load worker, broker and store outages — on one watched hub."""

    def __init__(self, proxies: list[TcpProxy], source: Source, load: LoadControl) -> None:
        self.proxies = proxies
        self.source = source
        self.load = load
        self.state: dict[str, Any] = {"latency": 0.0, "jitter": 0.0, "bandwidth": None,
                                      "blackhole": False, "frozen_pid": None,
                                      "broker_down": False, "store_down": False, "cuts": 0}

    # -- the network ------------------------------------------------------------------------------

    def latency(self, delay: float, jitter: float | None = None) -> None:
        """Add ``delay`` seconds (plus up to ``jitter`` more) to every chunk, both ways."""
        jitter = self.state["jitter"] if jitter is None else jitter
        for proxy in self.proxies:
            proxy.set_latency(delay, jitter)
        self.state["latency"], self.state["jitter"] = float(delay), float(jitter)

    def jitter(self, jitter: float) -> None:
        """Up to ``jitter`` seconds more per chunk, drawn uniformly (order is kept)."""
        self.latency(self.state["latency"], jitter)

    def bandwidth(self, bytes_per_second: float | None) -> None:
        """Cap the throughput each way (None: no cap)."""
        for proxy in self.proxies:
            proxy.set_bandwidth(bytes_per_second)
        self.state["bandwidth"] = bytes_per_second

    def blackhole(self, on: bool = True) -> None:
        """Stop forwarding both ways, closing nothing (True), or heal (False)."""
        for proxy in self.proxies:
            if on:
                proxy.partition()
            else:
                proxy.heal()
        self.state["blackhole"] = bool(on)

    def cut(self) -> None:
        """Reset every relayed connection (RST); the load's clients are not reconnected."""
        for proxy in self.proxies:
            proxy.cut()
        self.state["cuts"] += 1

    # -- a client process -------------------------------------------------------------------------

    def freeze_client(self, on: bool = True) -> int | None:
        """Freeze (``SIGSTOP``) one load worker process — its clients stop reading — or thaw it."""
        if on:
            pids = self.load.pids
            if not pids:
                raise ConfigError("no load is running: set a number of clients first")
            if self.state["frozen_pid"] is None:
                os.kill(pids[0], signal.SIGSTOP)
                self.state["frozen_pid"] = pids[0]
            return self.state["frozen_pid"]
        pid, self.state["frozen_pid"] = self.state["frozen_pid"], None
        if pid is not None:
            # The run may have ended meanwhile and its worker been reaped.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        return pid

    def thaw_client(self) -> int | None:
        return self.freeze_client(False)

    # -- the hub's dependencies ---------------------------------------------------------------------

    def _local(self, what: str) -> HubSource:
        if not isinstance(self.source, HubSource):
            raise ConfigError(f"stopping the {what} needs a hub in this process; "
                              f"{self.source.label} is reached only through its /metrics")
        return self.source

    def stop_broker(self) -> asyncio.Future[Any]:
        """Simulate a broker outage (publish fails, nothing arrives from other hubs)."""
        source = self._local("broker")
        broker = source.hub.broker
        if not hasattr(broker, "simulate_outage"):
            raise ConfigError(f"{type(broker).__name__} cannot simulate an outage; put a "
                              "TcpProxy in front of its server and partition it instead")
        self.state["broker_down"] = True
        return source.call(broker.simulate_outage("stopped from the dashboard"))

    def start_broker(self) -> asyncio.Future[Any]:
        source = self._local("broker")
        self.state["broker_down"] = False
        return source.call(source.hub.broker.end_outage())

    def stop_store(self) -> asyncio.Future[Any]:
        """Close the hub's message store: saves fail, messages queue for retry, acks wait."""
        source = self._local("store")
        self.state["store_down"] = True
        return source.call(source.hub.store.close())

    def start_store(self) -> asyncio.Future[Any]:
        """Open the store again: the retry queue drains and the late acks go out."""
        source = self._local("store")
        self.state["store_down"] = False
        return source.call(source.hub.store.open())

    async def clear(self) -> None:
        """Every switch off: no shaping, healed, thawed, broker and store back."""
        self.latency(0.0, 0.0)
        self.bandwidth(None)
        self.blackhole(False)
        self.thaw_client()
        if self.source.running:
            if self.state["broker_down"]:
                await self.start_broker()
            if self.state["store_down"]:
                await self.start_store()
