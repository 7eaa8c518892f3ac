"""A hub in an operating-system process of its own: ``wslab serve``, killable with ``SIGKILL``.

The course's reliability and scaling chapters need hubs the kernel does not host: a hub that can
die mid-sentence (``kill -9``: no close frame, no goodbye, nothing flushed but what the store
already holds) and come back on the same port, and several hubs that really use several cores.
:class:`HubProcess` runs ``python -m wslab.cli serve`` with the options given, waits for its
banner, and knows its URLs; :meth:`HubProcess.kill` is the crash, :meth:`HubProcess.start`
after it the restart on the same port, :meth:`HubProcess.stop` the graceful end (SIGTERM: 1001
to every client). Every process is killed when its ``with`` block ends, at interpreter exit, and
(Linux) when its parent dies, so a notebook never leaves a hub behind.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Mapping, Sequence

from wslab.foundation.errors import ConfigError, OperationTimeout

__all__ = ["HubProcess", "free_port"]

_URL = re.compile(r"\bon (http://[\d.]+:\d+)")
_LIVE: weakref.WeakSet[HubProcess] = weakref.WeakSet()
#: Lines of the hub's output kept for :meth:`HubProcess.output` (the oldest are dropped).
MAX_LINES = 200


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    # A hub whose kernel died would hold its port for ever; Linux can kill it with its parent.
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@atexit.register
def _kill_all() -> None:
    for hub in list(_LIVE):
        hub.kill()


class HubProcess:
    """One ``wslab serve`` process; its port stays the same across :meth:`kill` and :meth:`start`.

    ``database`` and ``broker`` are passed as ``--db`` / ``--broker``; ``secret`` as ``--secret``
    (``None``: ``--no-auth``); ``env`` adds ``WSLAB_*`` settings (e.g. ``WSLAB_PING_INTERVAL``).
    """

    def __init__(
        self,
        *,
        database: str,
        broker: str | None = None,
        secret: str | None = None,
        port: int | None = None,
        env: Mapping[str, str] | None = None,
        extra_args: Sequence[str] = (),
        startup_timeout: float = 20.0,
    ) -> None:
        if startup_timeout <= 0:
            raise ConfigError("startup_timeout must be positive")
        self.database = database
        self.broker = broker
        self.secret = secret
        self.port = port if port is not None else free_port()
        self.env = dict(env or {})
        self.extra_args = list(extra_args)
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[str] | None = None
        self.lines: deque[str] = deque(maxlen=MAX_LINES)
        #: ``time.monotonic()`` when the current process was spawned and when it was listening.
        self.spawned_at: float | None = None
        self.ready_at: float | None = None
        self.starts = 0

    # -- addresses ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def output(self) -> str:
        """The last lines the hub printed (its banner, its shutdown line)."""
        return "\n".join(self.lines)

    # -- life -----------------------------------------------------------------------------------

    def command(self) -> list[str]:
        """The command line of the hub."""
        cmd = [sys.executable, "-m", "wslab.cli", "serve", "--port", str(self.port)]
        cmd += ["--db", self.database]
        if self.broker:
            cmd += ["--broker", self.broker]
        cmd += ["--secret", self.secret] if self.secret else ["--no-auth"]
        return cmd + self.extra_args

    async def start(self) -> HubProcess:
        """Spawn the hub and wait until it listens (its banner names the URL)."""
        if self.running:
            raise ConfigError("this hub process is already running")
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        self.spawned_at = time.monotonic()
        self.process = subprocess.Popen(
            self.command(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            preexec_fn=_die_with_parent,  # only a prctl call
        )
        _LIVE.add(self)
        self.starts += 1
        loop = asyncio.get_running_loop()
        stdout = self.process.stdout
        assert stdout is not None
        deadline = time.monotonic() + self.startup_timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                raise OperationTimeout(f"wslab serve did not start within {self.startup_timeout:g} s")
            line = await asyncio.wait_for(loop.run_in_executor(None, stdout.readline), remaining)
            if not line:
                code = self.process.wait()
                raise ConfigError(f"wslab serve exited with {code}:\n{self.output()}")
            self.lines.append(line.rstrip())
            if _URL.search(line):
                break
        self.ready_at = time.monotonic()
        # Keep draining the output so that the hub never blocks on a full pipe (a thread of
        # its own: the loop's executor must stay free for the clients' address lookups).
        threading.Thread(target=self._drain, args=(self.process,), daemon=True).start()
        return self

    def _drain(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        with contextlib.suppress(ValueError, OSError):
            for line in process.stdout:
                self.lines.append(line.rstrip())

    def kill(self) -> None:
        """``kill -9``: the hub stops at once, its sockets closed by the kernel, no close frame."""
        process = self.process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait()
        _LIVE.discard(self)

    async def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM: the hub closes every connection with 1001 and exits; its exit code."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.terminate()
            loop = asyncio.get_running_loop()
            try:
                await asyncio.wait_for(loop.run_in_executor(None, process.wait), timeout)
            except asyncio.TimeoutError:
                self.kill()
        _LIVE.discard(self)
        return process.returncode

    async def __aenter__(self) -> HubProcess:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.kill()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "not running"
        return f"<HubProcess {self.url} {state}, started {self.starts}x>"


