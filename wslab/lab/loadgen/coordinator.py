"""The parent side: spawn the worker processes, stream their snapshots, gather the results.

Everything the parent does is non-blocking for its event loop (the workers' messages are
polled), so a run goes on in a notebook cell next to a :class:`~wslab.hub.Hub` in the same loop.

Readiness is progress-based: the run starts sending once every worker says it is ready (every
client connected and in its rooms). A worker is given ``connect_timeout`` per client, and the
run fails only when a worker stops making progress, so 10,000 clients on a loaded machine take
as long as they take instead of tripping one fixed deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue as queue_module
import signal
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

from .pool import QUEUE_SIZE, WorkerPool
from .progress import Progress, make_progress
from .results import LoadResult
from .spec import LoadError, LoadSpec

__all__ = ["LoadRun", "default_workers", "run_load", "start_load"]

#: How long a freshly spawned worker may take to say anything (it imports pandas on a busy box).
SPAWN_TIMEOUT = 60.0
#: A run this long or longer (seconds, or messages at the rate) gets a progress bar by default.
LONG_RUN = 5.0


def default_workers(clients: int) -> int:
    """Enough workers that the hub in the kernel keeps one core: ``max(1, cpu_count - 1)``."""
    return max(1, min(clients, (os.cpu_count() or 2) - 1))


def _resolve(target: Any, clients: int, token_factory: Callable[[str], str] | None,
             tokens: list[str | None] | None) -> tuple[str, list[str | None]]:
    if isinstance(target, str):
        url = target
        hub = None
    elif hasattr(target, "ws_url"):
        url, hub = target.ws_url, target
    else:
        raise ValueError(f"target must be a Hub or a ws:// URL, got {type(target).__name__}")
    users = [f"load{i}" for i in range(clients)]
    if tokens is not None:
        return url, list(tokens)
    if token_factory is None and hub is not None and hub.config.auth_required:
        token_factory = hub.token
    if token_factory is None:
        return url, []
    return url, [token_factory(u) for u in users]


async def _check_reachable(url: str, timeout: float) -> None:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(parts.hostname, port), timeout)
    except (OSError, asyncio.TimeoutError) as exc:
        reason = str(exc) or f"no answer within connect_timeout={timeout}s"
        raise LoadError(f"hub unreachable at {url}: {reason}") from None
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


def _exit_reason(code: int | None) -> str:
    if code is None:
        return "exit code unknown"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


class LoadRun:
    """A running load: ``await run`` (or ``await run.wait(timeout)``) gives the :class:`LoadResult`.

    ``run.stop()`` ends it early (from a notebook cell while it runs); ``run.done`` says whether
    it ended. Its per-second snapshots stream to ``on_tick``, to ``run.ticks`` (a bounded
    ``asyncio.Queue``, the newest kept) and to ``async for snapshot in run.stream()``. Each
    snapshot is a dict: ``worker``, ``time_ns``, ``sent``, ``acked``, ``delivered``, ``p50_ms``,
    ``p99_ms`` (latency at the receivers, from that worker's last second).
    """

    def __init__(self, spec: LoadSpec, on_tick: Callable[[dict[str, Any]], None] | None,
                 progress: bool | str | None) -> None:
        self.spec = spec
        self.on_tick = on_tick
        # By default a long run shows a bar, unless someone consumes its snapshots already.
        total = spec.messages or int(spec.rate * (spec.duration or 0))
        expected = spec.duration if spec.duration is not None else total / spec.rate
        self.progress: Progress | None = make_progress(
            progress, total, auto=on_tick is None and expected >= LONG_RUN
        )
        shares = [list(range(w, spec.clients, spec.workers)) for w in range(spec.workers)]
        self._pool = WorkerPool(spec.to_dict(), shares)
        self._stopped = False
        self._connected = [0] * spec.workers
        #: Connection attempts the workers tried again (a hub too busy to answer a handshake).
        self.connect_retries = 0
        # Live per-second snapshots, bounded: a dashboard reads them while the run goes on.
        self.ticks: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=QUEUE_SIZE)
        self._tick_event = asyncio.Event()
        try:
            self._task = asyncio.ensure_future(self._run())
        except RuntimeError:
            raise LoadError("start_load needs a running event loop (a notebook cell, or "
                            "inside asyncio.run); use run_load from async code") from None
        self._task.add_done_callback(lambda _: self._tick_event.set())

    # -- the public face -----------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop sending now; the workers report what they recorded and exit."""
        self._stopped = True
        self._pool.stop()

    @property
    def pids(self) -> list[int]:
        """The worker processes' ids (to freeze one with ``SIGSTOP`` in a fault experiment)."""
        return self._pool.pids

    @property
    def done(self) -> bool:
        """True once the run has ended (its workers are reaped)."""
        return self._task.done()

    @property
    def connected(self) -> int:
        """Clients connected so far (every one of them once the run is sending)."""
        return sum(self._connected)

    async def wait(self, timeout: float | None = None) -> LoadResult:
        """The result, waiting at most ``timeout`` seconds (the run goes on if that passes)."""
        try:
            return await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except asyncio.TimeoutError:
            raise LoadError(f"the load run is still going after timeout={timeout}s "
                            "(run.stop() ends it)") from None

    async def stream(self) -> AsyncIterator[dict[str, Any]]:
        """Each per-second snapshot as it comes, until the run ends (one consumer at a time).

        A run that fails raises its :class:`LoadError` here too, after the last snapshot.
        """
        while True:
            while not self.ticks.empty():
                yield self.ticks.get_nowait()
            if self._task.done():
                if not self._task.cancelled() and self._task.exception() is not None:
                    raise self._task.exception()  # type: ignore[misc]
                return
            self._tick_event.clear()
            await self._tick_event.wait()

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self.stream()

    def __await__(self) -> Any:
        return self._task.__await__()

    # -- the run ------------------------------------------------------------------------------------

    async def _run(self) -> LoadResult:
        spec = self.spec
        outcome = "failed"
        try:
            await _check_reachable(spec.url, spec.connect_timeout)
            result = await self._drive()
            outcome = "stopped" if result.stopped else "done"
            return result
        finally:
            if self.progress is not None:
                self.progress.close(outcome)

    async def _drive(self) -> LoadResult:
        spec, pool = self.spec, self._pool
        rows: dict[str, list[tuple[Any, ...]]] = {"sends": [], "acks": [], "deliveries": []}
        ready: set[int] = set()
        done: set[int] = set()
        start_ns = 0
        connect_seconds = 0.0
        refused = 0
        errors: list[str] = []
        began = time.monotonic()
        # Progress-based readiness: each worker has until its own deadline to say something
        # new; every step forward (a batch of clients connected) moves it on.
        stall = max(10.0, 2 * spec.connect_timeout) + spec.ramp * spec.workers / spec.clients
        heard = [began + SPAWN_TIMEOUT - stall] * spec.workers
        if self._stopped:
            return LoadResult.build(spec.to_dict(), rows, 0, True)
        try:
            pool.start()
            while len(done) < spec.workers:
                try:
                    item = pool.queue.get_nowait()
                except queue_module.Empty:
                    now = time.monotonic()
                    for w in range(spec.workers):
                        if w not in ready and now > heard[w] + stall:
                            raise LoadError(self._not_connecting(w, now - heard[w])) from None
                    await asyncio.sleep(0.01)
                    continue
                kind, w = item[0], item[1]
                heard[w] = time.monotonic()
                if kind == "error":
                    raise LoadError(f"load worker {w} failed: {item[2]}")
                if kind == "eof":
                    if w not in done:
                        raise LoadError(f"load worker {w} died ({await self._exit_reason(w)})")
                elif kind == "connected":
                    self._connected[w] = item[2]
                    if self.progress is not None:
                        self.progress.connecting(self.connected, spec.clients)
                elif kind == "ready":
                    self._connected[w] = item[2]
                    self.connect_retries += item[3]
                    ready.add(w)
                    if len(ready) == spec.workers and pool.flag.value == 0:
                        connect_seconds = time.monotonic() - began
                        # One common start, a little ahead so every worker sees it before.
                        start_ns = time.time_ns() + 50_000_000
                        pool.flag.value = start_ns
                elif kind == "tick":
                    self._tick(w, item[2], item[3])
                elif kind == "refused":
                    refused += item[2]
                    errors.extend(item[3])
                elif kind == "records":
                    rows[item[2]].extend(item[3])
                elif kind == "done":
                    done.add(w)
        finally:
            # Reaping joins processes: off the loop, so a hub in the same loop keeps serving.
            await asyncio.get_running_loop().run_in_executor(None, pool.reap)
        result = LoadResult.build(spec.to_dict(), rows, start_ns, self._stopped, connect_seconds)
        result.connect_retries = self.connect_retries
        result.refused = refused
        result.errors = errors
        return result

    async def _exit_reason(self, w: int) -> str:
        for _ in range(100):  # the pipe closes a moment before the process is reaped
            code = self._pool.exitcode(w)
            if code is not None:
                return _exit_reason(code)
            await asyncio.sleep(0.02)
        return _exit_reason(None)

    def _not_connecting(self, w: int, quiet: float) -> str:
        share = len(range(w, self.spec.clients, self.spec.workers))
        return (f"load worker {w} stopped making progress: {self._connected[w]} of its {share} "
                f"clients connected, nothing new for {quiet:.0f}s "
                f"(connect_timeout={self.spec.connect_timeout}s)")

    def _tick(self, w: int, at_ns: int, tick: dict[str, Any]) -> None:
        lat = sorted(tick.pop("lat"))
        snapshot = {"worker": w, "time_ns": at_ns, **tick,
                    "p50_ms": lat[len(lat) // 2] if lat else None,
                    "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else None}
        if self.ticks.full():
            self.ticks.get_nowait()  # keep the newest: the oldest snapshot is dropped
        self.ticks.put_nowait(snapshot)
        self._tick_event.set()
        if self.on_tick is not None:
            self.on_tick(snapshot)
        if self.progress is not None:
            self.progress.update(tick["sent"])


def start_load(target: Any, *, clients: int, rate: float = 10.0, duration: float | None = None,
               messages: int | None = None, pattern: str = "one_room", workers: int | None = None,
               token_factory: Callable[[str], str] | None = None,
               tokens: list[str | None] | None = None,
               on_tick: Callable[[dict[str, Any]], None] | None = None,
               progress: bool | str | None = None, **options: Any) -> LoadRun:
    """Start a load run against ``target`` (a :class:`~wslab.hub.Hub` or a ``ws://`` URL).

    Validates everything first (``ValueError`` naming the parameter), then runs in the
    background of the current loop. Users are ``load0``, ``load1``...; tokens come from
    ``tokens``, ``token_factory``, or the hub's own ``hub.token`` when it requires
    authentication. ``progress``: None shows a bar for a run of 5 s or more with no
    ``on_tick``; True always; False never; or a kind (``"tqdm"``, ``"widget"``, ``"text"``).
    Other options are :class:`LoadSpec` fields (``mode``, ``ramp``, ``rooms``, ``senders``...).
    """
    if isinstance(clients, bool) or not isinstance(clients, int) or clients < 1:
        raise ValueError(f"clients must be an int >= 1, got {clients!r}")
    unknown = set(options) - set(LoadSpec.__dataclass_fields__) - {"url", "tokens"}
    if unknown:
        raise ValueError(f"unknown load option {sorted(unknown)[0]!r}")
    if workers is None:
        workers = default_workers(clients)
    url, toks = _resolve(target, clients, token_factory, tokens)
    spec = LoadSpec(url=url, clients=clients, rate=rate, duration=duration, messages=messages,
                    pattern=pattern, workers=workers, tokens=toks, **options)
    return LoadRun(spec, on_tick, progress)


async def run_load(target: Any, **kwargs: Any) -> LoadResult:
    """``result = await run_load(hub, clients=100, rate=200, duration=5)``: start, then wait."""
    return await start_load(target, **kwargs)
