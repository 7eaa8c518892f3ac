"""The worker processes of one run: spawned, read from, and always reaped.

Each worker has a pipe of its own, and the parent closes its copy of the writing end once the
worker has started: a worker that dies (even by ``SIGKILL``, even halfway through a message)
is then an end-of-file on its pipe, never a read that waits for ever. A thread reads every pipe
into one bounded queue that the event loop polls, so the loop never blocks on a worker, and a
busy loop pushes back on the workers (whose per-second snapshots are then dropped, not queued).

Workers are reaped when the run ends, at interpreter exit (``atexit``), and die with the kernel
when it is killed outright (the worker side watches its parent).
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing as mp
import os
import queue as queue_module
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from multiprocessing.connection import wait as wait_for_connections
from typing import Any

from .worker import worker_main

__all__ = ["WorkerPool"]

#: Messages from the workers waiting for the event loop.
QUEUE_SIZE = 256

_live: weakref.WeakSet[WorkerPool] = weakref.WeakSet()


@atexit.register
def _reap_every_pool() -> None:
    # A kernel shut down (or a script that exits) with a run still going leaves no worker behind.
    for pool in list(_live):
        pool.reap(grace=0.5)


@contextlib.contextmanager
def _main_hidden() -> Iterator[None]:
    """Start a process without telling it the parent's ``__main__``.

    ``spawn`` re-imports the parent's main script in every child, so a script that starts a
    load at its top level, without an ``if __name__ == "__main__"`` guard, would start it again
    in each worker (which then never reports). The workers run only wslab's code: with no main
    module to name, they import none (and start faster).
    """
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved: dict[str, Any] = {
        name: main.__dict__[name] for name in ("__file__", "__spec__") if name in main.__dict__
    }
    main.__spec__ = None
    main.__dict__.pop("__file__", None)
    try:
        yield
    finally:
        main.__dict__.update(saved)


class WorkerPool:
    """``workers`` processes, each running :func:`~.worker.worker_main` on its share of clients."""

    def __init__(self, spec_dict: dict[str, Any], shares: list[list[int]]) -> None:
        self._ctx = mp.get_context("spawn")
        #: 0 before the start, the common start time (``time.time_ns``) after, < 0 to stop.
        self.flag: Any = self._ctx.Value("q", 0)
        self.queue: queue_module.Queue[tuple[Any, ...]] = queue_module.Queue(QUEUE_SIZE)
        self.processes: list[Any] = []
        self._conns: dict[Any, int] = {}
        self._spec_dict = spec_dict
        self._shares = shares
        self._closing = threading.Event()
        self._reader: threading.Thread | None = None
        self._reaped = False

    def start(self) -> None:
        """Spawn every worker, then start reading their pipes."""
        _live.add(self)
        for w, ids in enumerate(self._shares):
            reader, writer = self._ctx.Pipe(duplex=False)
            p = self._ctx.Process(target=worker_main, name=f"wslab-load-{w}", daemon=True,
                                  args=(self._spec_dict, w, ids, writer, self.flag, os.getpid()))
            with _main_hidden():
                p.start()
            writer.close()  # the worker holds the only writing end: its death is our EOF
            self.processes.append(p)
            self._conns[reader] = w
        self._reader = threading.Thread(target=self._read, name="wslab-load-reader", daemon=True)
        self._reader.start()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes if p.pid is not None]

    def _put(self, item: tuple[Any, ...]) -> bool:
        while not self._closing.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue_module.Full:
                continue
        return False

    def _read(self) -> None:
        conns: dict[Any, int] = dict(self._conns)
        while conns and not self._closing.is_set():
            ready: list[Any] = wait_for_connections(list(conns), timeout=0.1)
            for conn in ready:
                w = conns[conn]
                item: tuple[Any, ...]
                try:
                    item = conn.recv()
                except (EOFError, OSError):
                    # The worker is gone (its last word, if any, came before this).
                    del conns[conn]
                    item = ("eof", w)
                except Exception as exc:  # a message that cannot be unpickled
                    del conns[conn]
                    item = ("error", w, f"unreadable message from the worker: {exc}")
                if not self._put(item):
                    return

    def exitcode(self, w: int) -> int | None:
        return self.processes[w].exitcode

    def stop(self) -> None:
        """Tell every worker to stop sending (they report what they have and exit)."""
        self.flag.value = -1

    def reap(self, grace: float = 2.0) -> None:
        """End every worker: a stop, ``grace`` seconds to exit, then ``SIGKILL``; close the pipes."""
        if self._reaped:
            return
        self._reaped = True
        self.flag.value = -1
        deadline = time.monotonic() + grace
        for p in self.processes:
            p.join(max(0.0, deadline - time.monotonic()))
        for p in self.processes:
            if p.is_alive():
                p.kill()
        for p in self.processes:
            p.join(5.0)
        self._closing.set()
        if self._reader is not None:
            self._reader.join(2.0)
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.close()
        _live.discard(self)
