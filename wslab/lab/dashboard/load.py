"""The dashboard's load: the load generator restarted with new settings when a control moves.

A load run's clients, rate, payload size and room pattern are fixed for the run (open loop:
each send is scheduled from the run's start), so a change stops the run and starts a new one
with the new settings. Changes arriving close together (a slider being dragged) are gathered
into one restart. Runs are started with ``record=False``: the workers stream their per-second
snapshots (with latency measured at the receivers) and keep no growing records.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from typing import Any

from ..loadgen import PATTERNS, LoadRun, start_load

__all__ = ["LoadControl"]

#: How long a run lasts unless changed or stopped (a dashboard session, not a benchmark).
RUN_SECONDS = 24 * 3600.0


class LoadControl:
    """Clients, rate, payload size and pattern of the running load; every change restarts it."""

    def __init__(self, url: Callable[[], str], *, token_factory: Callable[[str], str] | None,
                 on_tick: Callable[[dict[str, Any]], None], max_clients: int = 200,
                 debounce: float = 0.3, workers: int | None = None,
                 ready: asyncio.Event | None = None) -> None:
        self._url = url
        self.token_factory = token_factory
        self.on_tick = on_tick
        self.max_clients = max_clients
        self.debounce = debounce
        self.workers = workers
        #: Set once what the load connects through (the dashboard's proxy) is listening.
        self.ready = ready
        self.settings: dict[str, Any] = {"clients": 0, "rate": 20.0, "payload_size": 32,
                                         "pattern": "one_room"}
        self.run: LoadRun | None = None
        #: Runs started so far (a restart counts one more).
        self.starts = 0
        self.errors: deque[str] = deque(maxlen=16)
        self._timer: asyncio.TimerHandle | None = None
        self._restart_task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._stopped = False
        self._watcher: asyncio.Future[None] | None = None

    # -- the plain methods the widgets call ---------------------------------------------------------

    def set(self, **changes: Any) -> None:
        """Change one or more settings (validated here) and restart the run shortly."""
        for key in changes:
            if key not in self.settings:
                raise ValueError(f"unknown load setting {key!r}; have {sorted(self.settings)}")
        new = {**self.settings, **changes}
        clients, rate, size, pattern = (new["clients"], new["rate"], new["payload_size"],
                                        new["pattern"])
        if not isinstance(clients, int) or not 0 <= clients <= self.max_clients:
            raise ValueError(f"clients must be an int in 0..{self.max_clients}, got {clients!r}")
        if not isinstance(rate, (int, float)) or not rate > 0 or rate != rate:
            raise ValueError(f"rate must be a positive number of messages/s, got {rate!r}")
        if not isinstance(size, int) or not 1 <= size <= 4000:
            raise ValueError(f"payload_size must be an int in 1..4000, got {size!r}")
        if pattern not in PATTERNS:
            raise ValueError(f"pattern must be one of {PATTERNS}, got {pattern!r}")
        if new == self.settings and (self.run is not None or clients == 0):
            return
        new["rate"] = float(rate)
        self.settings = new
        self._schedule()

    def _schedule(self) -> None:
        if self._stopped:
            return
        loop = asyncio.get_running_loop()
        if self._timer is not None:
            self._timer.cancel()
        self._changed.clear()
        self._timer = loop.call_later(self.debounce, self._fire)

    def _fire(self) -> None:
        self._timer = None
        previous = self._restart_task
        self._restart_task = asyncio.ensure_future(self._restart(previous))

    async def _restart(self, previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            with contextlib.suppress(Exception):
                await previous
        if self.ready is not None:
            await self.ready.wait()  # a change made right after open_dashboard waits for it
        await self._end_run()
        s = self.settings
        if s["clients"] > 0 and not self._stopped:
            try:
                self.run = start_load(
                    self._url(), clients=s["clients"], rate=s["rate"], duration=RUN_SECONDS,
                    pattern=s["pattern"], payload_size=s["payload_size"], record=False,
                    token_factory=self.token_factory, on_tick=self.on_tick, drain=0.2,
                    workers=self.workers,
                )
                self.starts += 1
                self._watcher = asyncio.ensure_future(self._watch(self.run))
            except Exception as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
        self._changed.set()

    async def _watch(self, run: LoadRun) -> None:
        # A run that ends by itself (an unreachable hub, a worker that died) says why here.
        try:
            await run
        except Exception as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")

    async def _end_run(self) -> None:
        run, self.run = self.run, None
        watcher, self._watcher = self._watcher, None
        if run is None:
            return
        run.stop()
        if watcher is not None:
            await watcher

    async def settled(self) -> None:
        """Wait until the latest change has been applied (the new run started, or none)."""
        while self._timer is not None or (self._restart_task and not self._restart_task.done()):
            await asyncio.sleep(0.05)

    @property
    def pids(self) -> list[int]:
        return self.run.pids if self.run is not None else []

    async def stop(self) -> None:
        """End the run and every worker process; no further restarts."""
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        task = self._restart_task
        if task is not None:
            with contextlib.suppress(Exception):
                await task
        await self._end_run()
