"""A client in a child process that can be frozen (``SIGSTOP``), thawed and killed.

:class:`FrozenProcess` is a closed laptop lid, a paused VM, a stop-the-world pause: the kernel
keeps the child's sockets open while the program runs no code. It keeps at most ``max_lines``
lines of the child's standard output (the oldest are dropped and counted); the child is killed by
:meth:`FrozenProcess.kill`, by leaving its ``with`` block, when it is garbage collected, and at
interpreter exit, and the bundled client also dies with its parent (Linux).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import weakref
from collections import deque
from collections.abc import Mapping, Sequence
from typing import IO, Any

from wslab.foundation.errors import ConfigError, OperationTimeout

__all__ = ["CHAT_CLIENT_SCRIPT", "FrozenProcess"]


# -- a client in a process that can be frozen ---------------------------------------------------------

#: The client :meth:`FrozenProcess.chat_client` runs: connect with ``ChatClient`` (no reconnect)
#: on the given engine, print a ``ready`` line, wait until the hub closes the connection, print a
#: ``closed`` line. Arguments: URL, token ("" for none), engine, the parent's pid.
CHAT_CLIENT_SCRIPT = r"""
import asyncio, json, os, signal, sys

def die_with_parent(parent):
    # A frozen child of a dead parent would stay stopped for ever, holding its socket.
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except Exception:
            pass
    if os.getppid() != parent:
        os._exit(1)

async def main(url, token, engine):
    from wslab.client import ChatClient, Disconnected
    client = ChatClient(url, token=token or None, engine=engine, reconnect=False)
    await client.connect()
    info = client.connection_info
    print(json.dumps({"event": "ready", "connection_id": info.connection_id,
                      "user_id": info.user_id, "pid": os.getpid()}), flush=True)
    gone = await client.next_event(Disconnected, timeout=None)
    print(json.dumps({"event": "closed", "code": gone.code, "reason": gone.reason}), flush=True)
    await client.close()

die_with_parent(int(sys.argv[4]))
asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
"""


class _Output:
    """The child's standard output, line by line, in a bounded buffer filled by a reader thread.

    Kept apart from :class:`FrozenProcess` so that the thread holds no reference to it: a
    forgotten process can then be garbage collected (and killed) while its child still runs.
    """

    def __init__(self, max_lines: int) -> None:
        self.lines: deque[str] = deque(maxlen=max_lines)
        self.dropped = 0
        self.eof = False
        self.cond = threading.Condition()

    def pump(self, stdout: IO[bytes], max_line: int) -> None:
        """Reader thread: move lines into the buffer until the pipe closes."""
        try:
            for raw in iter(lambda: stdout.readline(max_line), b""):
                with self.cond:
                    if len(self.lines) == self.lines.maxlen:
                        self.dropped += 1  # the oldest unread line makes room
                    self.lines.append(raw.decode("utf-8", "replace").rstrip("\r\n"))
                    self.cond.notify_all()
        except (OSError, ValueError):  # the pipe was closed under us
            pass
        finally:
            with self.cond:
                self.eof = True
                self.cond.notify_all()

    def take(self, timeout: float) -> str | None:
        """The oldest unread line; None at the end; OperationTimeout if none comes in time."""
        with self.cond:
            if not self.cond.wait_for(lambda: self.lines or self.eof, timeout):
                raise OperationTimeout(f"the child printed nothing within {timeout}s")
            return self.lines.popleft() if self.lines else None


_live_processes: weakref.WeakSet[FrozenProcess] = weakref.WeakSet()


@atexit.register
def _kill_live_processes() -> None:
    for process in list(_live_processes):
        process.kill()


class FrozenProcess:
    """A program in a child process that can be frozen (``SIGSTOP``), thawed and killed.

    ::

        with FrozenProcess.chat_client(hub.ws_url, token=hub.token("fred")) as fred:
            ready = await fred.start()         # {"event": "ready", "connection_id": ...}
            fred.freeze()                      # the kernel keeps its socket; it answers nothing
            ...
            fred.thaw()

    The child prints one JSON object per line on its standard output; :meth:`start` waits for
    the first (its "ready" line) and :meth:`read_json` reads the next ones. Its standard error
    goes to an anonymous temporary file (:meth:`stderr_tail` shows the end of it). POSIX only.
    """

    def __init__(
        self,
        args: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        max_lines: int = 100,
        max_line: int = 64 * 1024,
    ) -> None:
        if not hasattr(signal, "SIGSTOP"):
            raise ConfigError("freezing a process needs SIGSTOP/SIGCONT (POSIX)")
        if max_lines < 1 or max_line < 1:
            raise ConfigError("max_lines and max_line must be at least 1")
        self.args = list(args)
        self.env = dict(env) if env is not None else None
        self.max_line = max_line
        self.frozen = False
        self._output = _Output(max_lines)
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._reader: threading.Thread | None = None

    @classmethod
    def chat_client(
        cls, url: str, *, token: str | None = None, engine: str = "wslab", **options: Any
    ) -> FrozenProcess:
        """A child running a ``ChatClient`` connected to ``url`` (see :data:`CHAT_CLIENT_SCRIPT`)."""
        args = [
            sys.executable,
            "-c",
            CHAT_CLIENT_SCRIPT,
            url,
            token or "",
            engine,
            str(os.getpid()),
        ]
        return cls(args, **options)

    # -- life --------------------------------------------------------------------------------------

    async def start(self, timeout: float = 20.0) -> dict[str, Any]:
        """Start the child and return its first line of output, parsed as JSON.

        Raises :class:`~wslab.foundation.errors.OperationTimeout` (and kills the child) if no
        line comes within ``timeout`` seconds, :class:`RuntimeError` with the end of its
        standard error if it exits first.
        """
        if self._process is not None:
            raise ConfigError("this process was already started")
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the child
        # Started from the loop's own thread, on purpose: the bundled client's "die with the
        # parent" is tied to the thread that forks it.
        self._process = subprocess.Popen(
            self.args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=self.env,
            close_fds=True,
        )
        _live_processes.add(self)
        assert self._process.stdout is not None
        self._reader = threading.Thread(
            target=self._output.pump,
            args=(self._process.stdout, self.max_line),
            name=f"frozen-{self._process.pid}",
            daemon=True,
        )
        self._reader.start()
        try:
            return await self.read_json(timeout)
        except OperationTimeout as error:
            detail = self.stderr_tail()
            self.kill()
            raise OperationTimeout(f"{error.message}; its stderr: {detail or '(empty)'}") from None
        except BaseException:
            self.kill()
            raise

    async def read_line(self, timeout: float = 10.0) -> str:
        """The next line the child printed; :class:`EOFError` once it has exited and all were read."""

        if self._process is None:
            raise ConfigError("the process is not started")
        line = await asyncio.to_thread(self._output.take, timeout)
        if line is None:
            raise EOFError(f"the child exited (code {self.returncode}); {self.stderr_tail()}")
        return line

    async def read_json(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next line the child printed, parsed as a JSON object."""
        line = await self.read_line(timeout)
        try:
            value = json.loads(line)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            raise ValueError(f"the child printed {line[:200]!r}, not a JSON object")
        return value

    def freeze(self) -> None:
        """Stop the child (``SIGSTOP``): it runs no code; its sockets stay open in the kernel."""
        self._signal(signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        """Let a frozen child run again (``SIGCONT``)."""
        self._signal(signal.SIGCONT)
        self.frozen = False

    def _signal(self, signum: int) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            raise ProcessLookupError("the process is not running")
        process.send_signal(signum)

    def kill(self) -> None:
        """Kill the child (``SIGKILL`` works on a frozen one too) and release everything. Idempotent."""
        process = self._process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        if process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(5.0)
        self.frozen = False
        if self._reader is not None:
            self._reader.join(1.0)  # the pipe closed with the child: the reader ends
        if (
            process is not None
            and process.stdout is not None
            and not (self._reader is not None and self._reader.is_alive())
        ):
            process.stdout.close()
        if self._stderr is not None and not self._stderr.closed:
            self._stderr.close()
        _live_processes.discard(self)

    async def wait(self, timeout: float = 10.0) -> int:
        """Wait for the child to exit by itself; its exit code. OperationTimeout if it does not."""
        process = self._process
        if process is None:
            raise ConfigError("the process is not started")
        try:
            return await asyncio.to_thread(process.wait, timeout)
        except subprocess.TimeoutExpired:
            raise OperationTimeout(f"the child did not exit within {timeout}s") from None

    # -- looking at it -----------------------------------------------------------------------------

    @property
    def dropped_lines(self) -> int:
        """Lines of standard output dropped because ``max_lines`` were waiting unread."""
        return self._output.dropped

    @property
    def pid(self) -> int | None:
        """The child's process id (None before :meth:`start`)."""
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        """True while the child exists (frozen or not)."""
        return self._process is not None and self._process.poll() is None

    @property
    def returncode(self) -> int | None:
        """The exit status once it has exited (negative: killed by that signal)."""
        return self._process.poll() if self._process is not None else None

    def stderr_tail(self, limit: int = 2000) -> str:
        """The last ``limit`` characters the child wrote to its standard error."""
        stream = self._stderr
        if stream is None or stream.closed:
            return ""
        stream.flush()
        size = stream.seek(0, os.SEEK_END)
        stream.seek(max(0, size - limit))
        return stream.read().decode("utf-8", "replace")

    def __enter__(self) -> FrozenProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()

    async def __aenter__(self) -> FrozenProcess:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.kill()

    def __del__(self) -> None:
        # The last line of defence: a frozen child must never outlive its owner.
        with contextlib.suppress(Exception):
            self.kill()

    def __repr__(self) -> str:
        if self._process is None:
            state = "not started"
        elif self.running:
            state = "frozen" if self.frozen else "running"
        else:
            state = f"exited {self.returncode}"
        return f"<FrozenProcess pid={self.pid} {state}>"
