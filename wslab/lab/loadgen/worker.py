"""One worker process: its share of the clients, connected with ``websockets``, sending and recording.

Runs in a ``spawn``-ed process and reports to its parent on a pipe of its own:

- ``("connected", w, n)`` as its clients connect (the parent's readiness is progress-based: a
  worker is given time as long as it keeps connecting, not one fixed deadline);
- ``("ready", w, n)`` once every client is connected, greeted and has its room joins acked;
- ``("tick", w, time_ns, snapshot)`` every second while sending;
- ``("records", w, kind, rows)`` in chunks at the end, then ``("done", w)`` or
  ``("error", w, message)``.

A feeder thread writes to the pipe, so the worker's event loop never waits on its parent; what
waits for it is bounded (the newest ticks win, a full outbox drops a tick, never a record).
The worker dies with its parent (``PR_SET_PDEATHSIG`` on Linux, and a thread that watches the
parent's pid everywhere), so a kernel restart leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue as queue_module
import random
import signal
import sys
import threading
import time
from typing import Any

from .spec import LoadSpec

#: Records per message to the parent at the end of a run.
CHUNK = 2000
#: Messages waiting for the feeder thread; past it ticks and progress are dropped.
OUTBOX_SIZE = 64
#: Latency samples a per-second snapshot carries at most (a uniform reservoir past that).
TICK_SAMPLES = 2000
#: Connections one worker opens at once when there is no ramp.
CONNECT_CONCURRENCY = 32
#: Refusals (the hub's error replies to sends) kept word for word; the rest are counted.
MAX_REFUSALS = 20
#: How often connect progress is reported, in seconds.
PROGRESS_EVERY = 0.25


def _die_with_parent(parent_pid: int) -> None:
    # A worker must never outlive the notebook kernel that started it: the kernel kills the
    # worker when it dies (Linux), and the watcher thread covers every other platform.
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:
        os._exit(3)

    def watch() -> None:
        while True:
            if os.getppid() != parent_pid:
                os._exit(3)
            time.sleep(0.5)

    threading.Thread(target=watch, name="wslab-load-parent-watch", daemon=True).start()


class _Outbox:
    """The worker's side of its pipe: a bounded queue drained by a thread that does the writing."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.queue: queue_module.Queue[Any] = queue_module.Queue(OUTBOX_SIZE)
        self.thread = threading.Thread(target=self._feed, name="wslab-load-outbox", daemon=True)
        self.thread.start()

    def _feed(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            try:
                self.conn.send(item)
            except (OSError, ValueError):  # the parent is gone: nothing left to tell
                return

    def post(self, item: tuple[Any, ...]) -> None:
        """Queue a message that must arrive (blocks while the outbox is full)."""
        self.queue.put(item)

    def offer(self, item: tuple[Any, ...]) -> None:
        """Queue a message that may be dropped when the parent is behind (ticks, progress)."""
        with contextlib.suppress(queue_module.Full):
            self.queue.put_nowait(item)

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join(30.0)
        with contextlib.suppress(OSError):
            self.conn.close()


def worker_main(spec_dict: dict[str, Any], index: int, ids: list[int], conn: Any, flag: Any,
                parent_pid: int) -> None:
    """Entry point of a worker process (``multiprocessing`` target)."""
    _die_with_parent(parent_pid)
    # Ctrl-C in a terminal reaches the whole process group; the parent decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    outbox = _Outbox(conn)
    try:
        spec = LoadSpec(**spec_dict)
        asyncio.run(_Worker(spec, index, ids, outbox, flag).run())
    except Exception as exc:  # reported to the parent, which raises LoadError with it
        message = str(exc) or type(exc).__name__
        outbox.post(("error", index, message))
    else:
        outbox.post(("done", index))
    finally:
        outbox.close()


def _transient(exc: Exception) -> bool:
    """A failure worth another attempt: the connection broke before the hub said anything."""
    from websockets.exceptions import ConnectionClosed, InvalidMessage, InvalidStatus

    if isinstance(exc, InvalidStatus):  # the hub answered: 503 full, 429 too many, 403...
        return exc.response.status_code == 503
    if isinstance(exc, ConnectionClosed):  # closed after the handshake: 4001 is a refusal
        return exc.rcvd is None
    return isinstance(exc, (InvalidMessage, ConnectionResetError, ConnectionRefusedError,
                            BrokenPipeError, EOFError))


class _Worker:
    def __init__(self, spec: LoadSpec, index: int, ids: list[int], outbox: _Outbox,
                 flag: Any) -> None:
        self.spec, self.index, self.ids, self.outbox, self.flag = spec, index, ids, outbox, flag
        self.sends: list[tuple[Any, ...]] = []
        self.acks: list[tuple[Any, ...]] = []
        self.deliveries: list[tuple[Any, ...]] = []
        self.pending: dict[str, asyncio.Future[None]] = {}
        self.connected = 0
        #: Connection attempts tried again after a transient failure (a hub too busy to answer).
        self.retries = 0
        self.refused = 0
        self.refusals: list[str] = []
        self.readers: list[asyncio.Task[None]] = []
        self.go_ns = 0
        self.sent_total = 0
        self.acks_seen = 0
        self.delivered_total = 0
        self._new_tick()

    def _new_tick(self) -> None:
        self.tick: dict[str, Any] = {"sent": 0, "acked": 0, "delivered": 0, "lat": []}
        self.tick_seen = 0

    def _stopped(self) -> bool:
        return self.flag.value < 0

    # -- connecting --------------------------------------------------------------------------------

    async def _connect(self, i: int) -> Any:
        import websockets

        spec = self.spec
        token = spec.tokens[i] if spec.tokens else None
        headers = {"Authorization": f"Bearer {token}"} if token else None
        ws = await websockets.connect(
            spec.url,
            additional_headers=headers,
            max_queue=None,
            open_timeout=None,  # the caller's wait_for bounds the whole connect, joins included
            close_timeout=1.0,  # a load client need not wait long for a backlogged hub to close
            ping_interval=None,  # the hub pings; a loaded worker must not drop a client itself
            compression="deflate" if spec.compression else None,
        )
        try:
            # The hub greets an admitted client first; a refused token closes (4001) instead.
            # Waiting for it turns a refusal into an error here rather than a silent, empty run.
            greeting = json.loads(await ws.recv())
            if greeting.get("type") != "system:connected":
                raise ConnectionError(f"the hub did not greet the client: {greeting.get('type')!r}")
            # Readiness is every join acked, not a guess at how long joins take.
            rooms = spec.rooms_of(i)
            for room in rooms:
                await ws.send(json.dumps({"type": "room:join", "room": room, "ref": f"j:{room}"}))
            waiting = {f"j:{room}" for room in rooms}
            while waiting:
                event = json.loads(await ws.recv())
                if event.get("ref") in waiting:
                    if event.get("type") != "ack":
                        error = event.get("error") or {}
                        raise ConnectionError(f"joining {event['ref'][2:]!r} was refused: "
                                              f"{error.get('message', event.get('type'))}")
                    waiting.discard(event["ref"])
        except BaseException:
            await ws.close()
            raise
        return ws

    async def _connect_one(self, i: int) -> Any:
        spec = self.spec
        deadline = time.monotonic() + spec.connect_timeout
        pause = 0.05
        while True:
            try:
                ws = await asyncio.wait_for(self._connect(i), deadline - time.monotonic())
            except asyncio.TimeoutError:
                raise ConnectionError(f"client {spec.user(i)} did not connect to {spec.url} "
                                      f"within connect_timeout={spec.connect_timeout}s") from None
            except Exception as exc:
                # A hub too busy to answer a handshake (reset, closed before its response) is
                # tried again within the client's connect_timeout; a refusal is final.
                if _transient(exc) and time.monotonic() + pause < deadline:
                    self.retries += 1
                    await asyncio.sleep(pause)
                    pause = min(1.0, pause * 2)
                    continue
                reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
                code = getattr(getattr(exc, "rcvd", None), "code", None)
                where = f" (close code {code})" if code else ""
                raise ConnectionError(f"client {spec.user(i)} could not connect to {spec.url}"
                                      f"{where}: {reason}") from None
            self.connected += 1
            # Read from the start: what arrives while the others connect (presence, the hub's
            # pings) is taken as it comes, not left to pile up until the run begins.
            self.readers.append(asyncio.create_task(self._read(i, ws)))
            return ws

    async def _connect_all(self, conns: dict[int, Any]) -> None:
        spec = self.spec
        start = time.monotonic()
        last_report = 0.0

        def report() -> None:
            nonlocal last_report
            now = time.monotonic()
            if now - last_report >= PROGRESS_EVERY:
                last_report = now
                self.outbox.offer(("connected", self.index, self.connected))

        if spec.ramp:
            # Client n of this worker is due at its place in the run-wide ramp, from the worker's
            # start: the clients of every worker together arrive at a steady pace.
            step = spec.ramp / spec.clients
            for n, i in enumerate(self.ids):
                due = start + step * (self.index + n * spec.workers)
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if self._stopped():
                    return
                conns[i] = await self._connect_one(i)
                report()
            return
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

        async def one(i: int) -> None:
            async with gate:
                if self._stopped():
                    return
                conns[i] = await self._connect_one(i)
                report()

        tasks = [asyncio.create_task(one(i)) for i in self.ids]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    # -- the run -----------------------------------------------------------------------------------

    async def run(self) -> None:
        spec = self.spec
        conns: dict[int, Any] = {}
        try:
            await self._connect_all(conns)
            if not self._stopped():
                self.outbox.post(("ready", self.index, self.connected, self.retries))
                await self._wait_go()
            if not self._stopped():
                ticker = asyncio.create_task(self._ticker())
                senders = [i for i in self.ids if i < spec.sender_count]
                await asyncio.gather(*(self._send(i, conns[i]) for i in senders))
                await self._drain()
                ticker.cancel()
                self._flush_tick()
        finally:
            for task in self.readers:
                task.cancel()
            await asyncio.gather(*(ws.close() for ws in conns.values()), return_exceptions=True)
        if self.refused:
            self.outbox.post(("refused", self.index, self.refused, self.refusals))
        for kind, rows in (("sends", self.sends), ("acks", self.acks),
                           ("deliveries", self.deliveries)):
            for k in range(0, len(rows), CHUNK):
                self.outbox.post(("records", self.index, kind, rows[k:k + CHUNK]))

    async def _wait_go(self) -> None:
        # The parent writes the common start time (time.time_ns) into the shared flag once every
        # worker is ready (a negative value is a stop): polled, so nothing blocks the loop.
        while self.flag.value == 0:
            await asyncio.sleep(0.005)
        self.go_ns = self.flag.value

    async def _send(self, i: int, ws: Any) -> None:
        spec = self.spec
        rate, count = spec.per_sender()
        start_ns = self.go_ns
        # Senders are spread over the first period so they do not all fire at the same instant.
        offset = (i / spec.sender_count) / rate
        end_ns = start_ns + int(spec.duration * 1e9) if spec.duration is not None else None
        pad = "x" * max(0, spec.payload_size - 40)
        loop = asyncio.get_running_loop()
        k = 0
        while not self._stopped() and (count is None or k < count):
            slot = start_ns + int((offset + k / rate) * 1e9)
            if end_ns is not None and slot >= end_ns:
                break
            now = time.time_ns()
            if slot > now:
                # Both modes keep to the offered rate while the hub keeps up; they differ when it
                # falls behind (below).
                await asyncio.sleep((slot - now) / 1e9)
            ref = f"{i}-{k}"
            sent = time.time_ns()
            if spec.mode == "open":
                # Open loop: latency counts from when the message was due, so time spent waiting
                # behind a slow hub is charged to it (no coordinated omission).
                scheduled = slot
            else:
                # Closed loop: the clock starts at the actual send, after the previous ack came
                # back late; the wait is hidden (coordinated omission, shown for comparison).
                scheduled = sent
                self.pending[ref] = loop.create_future()
            content = json.dumps({"s": scheduled, "u": i, "k": k, "p": pad})
            message = {"type": "chat:message", "ref": ref, "content": content, **spec.target(i, k)}
            try:
                await ws.send(json.dumps(message))
            except Exception:
                break
            if spec.record:
                self.sends.append((spec.user(i), ref, k, message.get("room"),
                                   message.get("to_user"), scheduled, sent))
            self.tick["sent"] += 1
            self.sent_total += 1
            if spec.mode == "closed":
                waiter = self.pending[ref]
                while not waiter.done() and not self._stopped():
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(asyncio.shield(waiter), 0.1)
                self.pending.pop(ref, None)
            k += 1

    async def _read(self, i: int, ws: Any) -> None:
        user = self.spec.user(i)
        record = self.spec.record
        with contextlib.suppress(Exception):
            async for raw in ws:
                now = time.time_ns()
                try:
                    event = json.loads(raw)
                except ValueError:
                    continue
                kind = event.get("type")
                if kind == "ack" and "ref" in event:
                    if record:
                        self.acks.append((user, event["ref"], event.get("message_id"),
                                          event.get("seq"), now))
                    self.acks_seen += 1
                    self.tick["acked"] += 1
                    waiter = self.pending.get(event["ref"])
                    if waiter is not None and not waiter.done():
                        waiter.set_result(None)
                elif kind == "error" and "ref" in event:
                    # The hub refused a message (rate limit, validation...): say so in the result.
                    self.refused += 1
                    if len(self.refusals) < MAX_REFUSALS:
                        error = event.get("error") or {}
                        self.refusals.append(f"{user} {event['ref']}: {error.get('name')} "
                                             f"{error.get('message', '')}".strip())
                    waiter = self.pending.get(event["ref"])
                    if waiter is not None and not waiter.done():
                        waiter.set_result(None)
                elif kind == "chat:message":
                    try:
                        body = json.loads(event.get("content", ""))
                        scheduled, sender_i, k = body["s"], body["u"], body["k"]
                    except (ValueError, KeyError, TypeError):
                        continue
                    latency = (now - scheduled) / 1e6
                    if record:
                        self.deliveries.append((self.spec.user(sender_i), user, event.get("room"),
                                                k, event.get("seq"), event.get("message_id"),
                                                scheduled, now, latency))
                    self.tick["delivered"] += 1
                    self.delivered_total += 1
                    self._sample(latency)

    def _sample(self, latency: float) -> None:
        # A bounded, uniform sample of this second's latencies (Algorithm R).
        self.tick_seen += 1
        lat = self.tick["lat"]
        if len(lat) < TICK_SAMPLES:
            lat.append(latency)
        else:
            j = random.randrange(self.tick_seen)
            if j < TICK_SAMPLES:
                lat[j] = latency

    async def _drain(self) -> None:
        # Wait for the last acks and deliveries: until every send is acked and nothing new came
        # for a moment, or nothing new came for ``drain`` seconds. Progress-based, so a busy
        # machine (this loop starved for a while) still collects what is on its way; capped at
        # five times ``drain`` so a hub that is hopelessly behind does not hold the run.
        # A worker's own sends can end long before the run's (a worker of listeners has none):
        # other workers' messages keep coming until the run's last one is due, so a quiet
        # moment before then (a stalled hub, a busy machine) is not the end.
        due = time.monotonic() + max(0.0, (self._sending_ends_ns() - time.time_ns()) / 1e9)
        while not self._stopped() and time.monotonic() < due:
            await asyncio.sleep(0.1)
        start = quiet_since = time.monotonic()
        last = self.acks_seen + self.delivered_total + self.refused
        while not self._stopped():
            await asyncio.sleep(0.1)
            now = time.monotonic()
            seen = self.acks_seen + self.delivered_total + self.refused
            if seen != last:
                last, quiet_since = seen, now
            elif self.acks_seen + self.refused >= self.sent_total and now - quiet_since >= min(0.5, self.spec.drain):
                return  # every own send acked; deliveries from other workers' senders had 0.5 s
            if now - quiet_since >= self.spec.drain or now - start >= 5 * self.spec.drain:
                return

    def _sending_ends_ns(self) -> int:
        """When the run's last message is due (``time.time_ns``); now for a run ended by stop."""
        spec = self.spec
        if spec.duration is not None:
            return self.go_ns + int(spec.duration * 1e9)
        rate, count = spec.per_sender()
        if count is None:
            return 0
        return self.go_ns + int(count / rate * 1e9)

    def _flush_tick(self) -> None:
        tick = self.tick
        self._new_tick()
        self.outbox.offer(("tick", self.index, time.time_ns(), tick))

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self._flush_tick()
