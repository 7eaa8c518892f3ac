"""The parent side: spawn the worker processes, stream their snapshots, gather the results.

Everything the parent does is non-blocking for its event loop (the queue is polled), so a run
goes on in a notebook cell next to a :class:`~wslab.hub.Hub` in the same loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import os
import queue as queue_module
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from .results import LoadResult
from .spec import LoadError, LoadSpec
from .worker import worker_main

__all__ = ["LoadRun", "default_workers", "run_load", "start_load"]

QUEUE_SIZE = 256


def default_workers(clients: int) -> int:
    """Enough workers that the hub in the kernel keeps one core: ``max(1, cpu_count - 1)``."""
    return max(1, min(clients, (os.cpu_count() or 2) - 1))


def _resolve(target: Any, clients: int, token_factory: Callable[[str], str] | None,
             tokens: list[str | None] | None) -> tuple[str, list[str | None]]:
    if isinstance(target, str):
        url = target
        hub = None
    else:
        url, hub = target.ws_url, target
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
    except (OSError, TimeoutError) as exc:
        raise LoadError(f"hub unreachable at {url}: {exc or type(exc).__name__}") from None
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


class LoadRun:
    """A running load: ``await run`` gives the :class:`LoadResult`; ``run.stop()`` ends it early."""

    def __init__(self, spec: LoadSpec, on_tick: Callable[[dict[str, Any]], None] | None,
                 progress: bool) -> None:
        self.spec = spec
        self.on_tick = on_tick
        self.progress = progress
        ctx = mp.get_context("spawn")
        self._queue: Any = ctx.Queue(QUEUE_SIZE)
        self._flag: Any = ctx.Value("q", 0)
        self._processes: list[Any] = []
        self._ctx = ctx
        self._stopped = False
        # Live per-second snapshots, bounded: a dashboard reads them while the run goes on.
        self.ticks: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=QUEUE_SIZE)
        self._task = asyncio.ensure_future(self._run())

    def stop(self) -> None:
        """Stop sending now; the workers report what they recorded and exit."""
        self._stopped = True
        self._flag.value = -1

    @property
    def pids(self) -> list[int]:
        """The worker processes' ids (to freeze one with ``SIGSTOP`` in a fault experiment)."""
        return [p.pid for p in self._processes if p.pid is not None]

    @property
    def done(self) -> bool:
        """True once the run has ended (its workers are reaped)."""
        return self._task.done()

    def __await__(self) -> Any:
        return self._task.__await__()

    def _spawn(self) -> None:
        spec = self.spec
        shares = [list(range(w, spec.clients, spec.workers)) for w in range(spec.workers)]
        for w, ids in enumerate(shares):
            p = self._ctx.Process(target=worker_main, name=f"wslab-load-{w}", daemon=True,
                                  args=(spec.to_dict(), w, ids, self._queue, self._flag,
                                        os.getpid()))
            p.start()
            self._processes.append(p)

    def _reap(self) -> None:
        self._flag.value = -1
        deadline = time.monotonic() + 2.0
        for p in self._processes:
            p.join(max(0.0, deadline - time.monotonic()))
        for p in self._processes:
            if p.is_alive():
                p.kill()
                p.join(1.0)
        self._queue.close()
        self._queue.cancel_join_thread()

    async def _run(self) -> LoadResult:
        spec = self.spec
        await _check_reachable(spec.url, spec.connect_timeout)
        rows: dict[str, list[tuple[Any, ...]]] = {"sends": [], "acks": [], "deliveries": []}
        ready: set[int] = set()
        done: set[int] = set()
        bar = _progress_bar(spec) if self.progress else None
        start_ns = 0
        # Connecting may take a while with a ramp; a worker silent past this is considered hung.
        connect_deadline = time.monotonic() + spec.ramp + spec.connect_timeout * 2 + 10
        try:
            self._spawn()
            while len(done) < spec.workers:
                try:
                    item = self._queue.get_nowait()
                except queue_module.Empty:
                    self._check_alive(done)
                    if len(ready) < spec.workers and time.monotonic() > connect_deadline:
                        raise LoadError("workers did not connect in time") from None
                    await asyncio.sleep(0.02)
                    continue
                kind, w = item[0], item[1]
                if kind == "error":
                    raise LoadError(f"load worker {w} failed: {item[2]}")
                if kind == "ready":
                    ready.add(w)
                    if len(ready) == spec.workers and self._flag.value == 0:
                        # One common start, a little ahead so every worker sees it before.
                        start_ns = time.time_ns() + 50_000_000
                        self._flag.value = start_ns
                elif kind == "tick":
                    self._tick(w, item[2], item[3], bar)
                elif kind == "records":
                    rows[item[2]].extend(item[3])
                elif kind == "done":
                    done.add(w)
        finally:
            self._reap()
            if bar is not None:
                bar.close()
        return LoadResult.build(spec.to_dict(), rows, start_ns, self._stopped)

    def _check_alive(self, done: set[int]) -> None:
        for w, p in enumerate(self._processes):
            if w not in done and p.exitcode is not None and p.exitcode != 0:
                raise LoadError(f"load worker {w} died (exit code {p.exitcode})")

    def _tick(self, w: int, at_ns: int, tick: dict[str, Any], bar: Any) -> None:
        lat = sorted(tick.pop("lat"))
        snapshot = {"worker": w, "time_ns": at_ns, **tick,
                    "p50_ms": lat[len(lat) // 2] if lat else None,
                    "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else None}
        if self.ticks.full():
            self.ticks.get_nowait()  # keep the newest: the oldest snapshot is dropped
        self.ticks.put_nowait(snapshot)
        if self.on_tick is not None:
            self.on_tick(snapshot)
        if bar is not None:
            bar.update(tick["sent"])


class _Bar:
    def __init__(self, total: int) -> None:
        self.bar: Any = None
        try:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, unit="msg")
            self.kind = "tqdm"
        except ImportError:
            try:
                import ipywidgets
                from IPython import get_ipython
                from IPython.display import display

                if get_ipython() is None:
                    return
                self.bar = ipywidgets.IntProgress(min=0, max=total, description="sent")
                self.kind = "widget"
                display(self.bar)
            except ImportError:
                return

    def update(self, n: int) -> None:
        if self.bar is None:
            return
        if self.kind == "tqdm":
            self.bar.update(n)
        else:
            self.bar.value = min(self.bar.max, self.bar.value + n)

    def close(self) -> None:
        if self.bar is not None and self.kind == "tqdm":
            self.bar.close()


def _progress_bar(spec: LoadSpec) -> _Bar:
    total = spec.messages or int(spec.rate * (spec.duration or 0))
    return _Bar(max(1, total))


def start_load(target: Any, *, clients: int, rate: float = 10.0, duration: float | None = None,
               messages: int | None = None, pattern: str = "one_room", workers: int | None = None,
               token_factory: Callable[[str], str] | None = None,
               tokens: list[str | None] | None = None,
               on_tick: Callable[[dict[str, Any]], None] | None = None,
               progress: bool = False, **options: Any) -> LoadRun:
    """Start a load run against ``target`` (a :class:`~wslab.hub.Hub` or a ``ws://`` URL).

    Validates everything first (``ValueError``), then runs in the background of the current
    loop. Users are ``load0``, ``load1``...; tokens come from ``tokens``, ``token_factory``, or
    the hub's own ``hub.token`` when it requires authentication.
    """
    if not isinstance(clients, int) or clients < 1:
        raise ValueError(f"clients must be an int >= 1, got {clients!r}")
    if workers is None:
        workers = default_workers(clients)
    url, toks = _resolve(target, clients, token_factory, tokens)
    spec = LoadSpec(url=url, clients=clients, rate=rate, duration=duration, messages=messages,
                    pattern=pattern, workers=workers, tokens=toks, **options)
    return LoadRun(spec, on_tick, progress)


async def run_load(target: Any, **kwargs: Any) -> LoadResult:
    """``result = await run_load(hub, clients=100, rate=200, duration=5)``: start, then wait."""
    return await start_load(target, **kwargs)
