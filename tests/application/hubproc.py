"""Real hub processes and recording chat clients, for fault experiments judged by the history checker.

:class:`HubProcess` runs ``python -m wslab.cli serve`` as a subprocess (so ``kill -9`` is a real
crash, not a cancelled task) and reads its URL from the banner. :class:`Chatter` is one user:
it sends ``chat:message`` one at a time into its rooms, records every send, ack and delivery in
a shared :class:`~wslab.lab.history.HistoryRecorder`, and when its connection dies it connects
again (to whatever URL the test gives it now) under a new name, so each connection's deliveries
are judged on their own. :func:`record_final_history` reads every room back from the store.

Used by ``test_faults_history.py`` and by ``benchmarks/soak.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import signal
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from wslab.foundation.errors import ConnectionClosed
from wslab.infrastructure.engines.wslab import WslabConnection, connect
from wslab.lab.history import HistoryRecorder

ROOT = Path(__file__).resolve().parents[2]
_URL = re.compile(r"\b(http://127\.0\.0\.1:\d+)")
#: Limits lifted so a test's own traffic (many clients, one address) is never throttled.
LOAD_ENV = {
    "WSLAB_RATE_MESSAGES_PER_SECOND": "1000",
    "WSLAB_CONNECTIONS_PER_IP_PER_MINUTE": "100000",
    "WSLAB_MAX_CONNECTIONS_PER_IP": "1000",
}
WAIT = 20.0


class HubProcess:
    """One ``wslab serve --no-auth`` process; ``await start()``, ``kill()`` (SIGKILL), ``stop()``."""

    def __init__(self, database: str, *, broker: str = "memory://", port: int = 0,
                 env: Mapping[str, str] | None = None) -> None:  # fmt: skip
        self.database = database
        self.broker = broker
        self.port = port
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), **LOAD_ENV, **(env or {})}
        self.url = ""
        self.process: asyncio.subprocess.Process | None = None
        self._drain: asyncio.Task[None] | None = None

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/ws"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self) -> HubProcess:
        command = [sys.executable, "-m", "wslab.cli", "serve", "--no-auth", "--port",
                   str(self.port), "--db", self.database, "--broker", self.broker]  # fmt: skip
        self.process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
            env=self.env, start_new_session=True,
        )  # fmt: skip
        assert self.process.stdout is not None
        while True:
            raw = await asyncio.wait_for(self.process.stdout.readline(), WAIT)
            line = raw.decode(errors="replace")
            if not line:
                raise RuntimeError(f"wslab serve exited with {await self.process.wait()}")
            match = _URL.search(line)
            if match:
                self.url = match.group(1)
                self.port = int(self.url.rsplit(":", 1)[1])
                break
        # Keep reading its output, or a chatty hub would block on a full pipe.
        self._drain = asyncio.ensure_future(self._read_rest())
        return self

    async def _read_rest(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        while await self.process.stdout.read(65536):
            pass

    def kill(self) -> None:
        """``kill -9``: no close frames, no flush, no shutdown handlers."""
        if self.process is not None and self.process.returncode is None:
            os.kill(self.process.pid, signal.SIGKILL)

    async def stop(self) -> None:
        """SIGTERM (a clean shutdown), SIGKILL if it takes too long; idempotent."""
        if self.process is None:
            return
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 15)
            except asyncio.TimeoutError:
                self.kill()
                await self.process.wait()
        if self._drain is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._drain, 5)
        self.process = None


async def open_client(url: str) -> tuple[WslabConnection, dict[str, Any]]:
    """A connection and its ``system:connected``."""
    connection = await asyncio.wait_for(connect(url), WAIT)
    hello = json.loads(await asyncio.wait_for(connection.recv(), WAIT))
    return connection, hello


class Chatter:
    """One user sending into ``rooms`` in turn and recording what it saw, across reconnects.

    ``url()`` says where to (re)connect now. ``pause`` seconds between messages; an error reply
    (DEGRADED while the store is down: acked later, or refused) is recorded as what it is, not
    as an ack. Acks that arrive after their request timed out are still recorded.
    """

    def __init__(self, name: str, rooms: list[str], recorder: HistoryRecorder,
                 url: Callable[[], str], *, pause: float = 0.02) -> None:  # fmt: skip
        self.name = name
        self.rooms = rooms
        self.recorder = recorder
        self.url = url
        self.pause = pause
        self.incarnation = 0
        self.acked = 0
        self.errors: dict[str, int] = {}
        self.close_codes: list[int | None] = []
        self.resyncs = 0
        #: Refs answered DEGRADED (queued for a retry, to be acked late) and not acked yet.
        self.degraded: set[str] = set()
        self.latencies: list[tuple[float, float]] = []  # (when, seconds to ack)
        self._refs = itertools.count(1)
        self._pending: dict[str, tuple[asyncio.Future[dict[str, Any]], float]] = {}
        #: ref -> the client name its send was recorded under (an ack may come after a resync
        #: renamed the connection, or after a reconnect); bounded, oldest dropped first.
        self._senders: dict[str, str] = {}
        self._stop = asyncio.Event()
        self._quiet = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def client(self) -> str:
        return f"{self.name}#{self.incarnation}"

    def start(self) -> Chatter:
        self._task = asyncio.ensure_future(self._run())
        return self

    def quiet(self) -> None:
        """Send nothing more but stay connected (for late acks still to come)."""
        self._quiet.set()

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._task), WAIT)
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            try:
                connection, _ = await open_client(self.url())
            except Exception:
                await asyncio.sleep(0.2)  # the hub is down or not back yet
                continue
            self.incarnation += 1
            client = self.client
            reader = asyncio.ensure_future(self._read(connection, client))
            try:
                for room in self.rooms:
                    if room != "lobby":
                        await connection.send(json.dumps({"type": "room:join", "room": room}))
                for n in itertools.count():
                    if self._stop.is_set() or reader.done():
                        break
                    if self._quiet.is_set():
                        await asyncio.wait({reader, asyncio.ensure_future(self._stop.wait())},
                                           return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
                        break
                    room = self.rooms[n % len(self.rooms)]
                    ref = f"{self.name}-{next(self._refs)}"
                    content = f"{ref} in {room}"
                    future: asyncio.Future[dict[str, Any]] = loop.create_future()
                    self._pending[ref] = (future, loop.time())
                    self.recorder.send(client, ref, room, content)
                    self._senders[ref] = client
                    if len(self._senders) > 100_000:
                        del self._senders[next(iter(self._senders))]
                    await connection.send(
                        json.dumps({"type": "chat:message", "room": room, "content": content,
                                    "ref": ref})
                    )  # fmt: skip
                    done, _ = await asyncio.wait({future, reader}, timeout=WAIT,
                                                 return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
                    if future not in done:
                        break  # the connection died (or hangs): start over
                    # DEGRADED: the store is away and the hub queues; a client slows down.
                    degraded = future.result().get("type") == "error"
                    await asyncio.sleep(max(self.pause, 0.2) if degraded else self.pause)
            except (ConnectionClosed, OSError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(connection.close(), 2)
                connection.abort()
                reader.cancel()
                with contextlib.suppress(BaseException):
                    await reader
                self.close_codes.append(connection.close_code)
                for future, _ in self._pending.values():
                    future.cancel()
                self._pending.clear()

    async def _read(self, connection: WslabConnection, client: str) -> None:
        loop = asyncio.get_running_loop()
        inbox = _Inbox()
        with contextlib.suppress(ConnectionClosed, OSError):
            while True:
                raw = await connection.recv()
                if isinstance(raw, bytes):
                    continue
                message = json.loads(raw)
                kind = message.get("type")
                if kind == "chat:message" and message.get("seq") is not None:
                    for shown in inbox.arrived(message):
                        self._show(client, shown)
                    for room in inbox.rooms_with_gaps():
                        await connection.send(json.dumps(inbox.fill_request(room)))
                elif kind == "chat:history" and str(message.get("ref", "")).startswith("fill:"):
                    for shown in inbox.filled(message):
                        self._show(client, shown)
                elif kind == "ack" and message.get("message_id"):
                    sender = self._senders.pop(message["ref"], None)
                    if sender is None:
                        continue  # a duplicate ack of one already recorded
                    self.recorder.ack(sender, message["ref"], message["message_id"],
                                      message["seq"])  # fmt: skip
                    self.acked += 1
                    self.degraded.discard(message["ref"])
                    pending = self._pending.pop(message["ref"], None)
                    if pending is not None:
                        self.latencies.append((loop.time(), loop.time() - pending[1]))
                        if not pending[0].done():
                            pending[0].set_result(message)
                elif kind == "error":
                    name = message.get("error", {}).get("name", "?")
                    self.errors[name] = self.errors.get(name, 0) + 1
                    if name == "DEGRADED" and message.get("message_id"):
                        self.degraded.add(message.get("ref", ""))
                    # DEGRADED: the message is queued and will be acked later; go on.
                    pending = self._pending.get(message.get("ref", ""))
                    if pending is not None and not pending[0].done():
                        pending[0].set_result(message)
                elif kind == "system:resync":
                    # Live delivery had a hole (the broker was away): fetch what was missed.
                    self.resyncs += 1
                    for room in message.get("rooms", []):
                        if room in inbox.last:
                            await connection.send(json.dumps(inbox.fill_request(room)))

    def _show(self, client: str, message: dict[str, Any]) -> None:
        self.recorder.deliver(client, message["room"], message["message_id"], message["seq"],
                              message.get("content"))  # fmt: skip


class _Inbox:
    """What a chat client does with live messages: show each room's in ``seq`` order, once.

    Live delivery across hubs may arrive out of ``seq`` order (a message from another hub comes
    through the broker, a local one does not) or with holes (the broker was away). Messages
    after a hole are held; the hole is filled from ``chat:history`` with ``since_seq``.
    Bounded: at most ``MAX_HELD`` messages held per room, then the oldest hole is given up on
    (its messages count as not shown, which the checker reports).
    """

    MAX_HELD = 1000

    def __init__(self) -> None:
        self.last: dict[str, int] = {}  # room -> last seq shown
        self.held: dict[str, dict[int, dict[str, Any]]] = {}
        self.asked: dict[str, int] = {}  # room -> the since_seq of the fill in flight

    def arrived(self, message: dict[str, Any]) -> list[dict[str, Any]]:
        room, seq = message["room"], message["seq"]
        if room not in self.last:
            self.last[room] = seq - 1  # this connection's window starts here
        if seq <= self.last[room]:
            return []  # already shown (from a fill, or sent twice): a client shows it once
        held = self.held.setdefault(room, {})
        held[seq] = message
        if len(held) > self.MAX_HELD:
            self.last[room] = min(held) - 1
        return self._flush(room)

    def rooms_with_gaps(self) -> list[str]:
        return [room for room, held in self.held.items()
                if held and room not in self.asked]  # fmt: skip

    def fill_request(self, room: str) -> dict[str, Any]:
        self.asked[room] = self.last[room]
        return {"type": "chat:history", "room": room, "since_seq": self.last[room],
                "limit": 100, "ref": f"fill:{room}:{self.last[room]}"}  # fmt: skip

    def filled(self, reply: dict[str, Any]) -> list[dict[str, Any]]:
        room = reply.get("room") or reply["ref"].split(":")[1]
        self.asked.pop(room, None)
        held = self.held.setdefault(room, {})
        for message in reply.get("messages", []):
            if message.get("seq") is not None and message["seq"] > self.last.get(room, 0):
                held.setdefault(message["seq"], {**message, "room": room})
        return self._flush(room)

    def _flush(self, room: str) -> list[dict[str, Any]]:
        held = self.held[room]
        shown = []
        while self.last[room] + 1 in held:
            self.last[room] += 1
            message = held.pop(self.last[room])
            shown.append(message)
        return shown


async def record_final_history(url: str, rooms: list[str], recorder: HistoryRecorder) -> None:
    """Every stored message of each room, paged with ``since_seq``, into ``recorder``."""
    connection, _ = await open_client(url)
    try:
        for room in rooms:
            await connection.send(json.dumps({"type": "room:join", "room": room, "ref": "j"}))
            messages: list[dict[str, Any]] = []
            complete = True
            since = 0
            while True:
                ref = f"h{room}{since}"
                await connection.send(json.dumps({"type": "chat:history", "room": room,
                                                  "since_seq": since, "limit": 100, "ref": ref}))  # fmt: skip
                while True:
                    reply = json.loads(await asyncio.wait_for(connection.recv(), WAIT))
                    if reply.get("ref") == ref:
                        break
                if reply.get("type") != "chat:history":
                    raise AssertionError(f"history of {room} refused: {reply}")
                page = reply["messages"]
                complete = complete and bool(reply["complete"])
                messages += page
                if len(page) < 100:
                    break
                since = page[-1]["seq"]
            recorder.history(room, messages, complete=complete)
    finally:
        await connection.close()
