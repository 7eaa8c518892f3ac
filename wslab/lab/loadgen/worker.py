"""One worker process: its share of the clients, connected with ``websockets``, sending and recording.

Runs in a ``spawn``-ed process. It reports on a bounded queue: ``("ready", w)``, a ``("tick", w,
snapshot)`` every second, ``("records", w, kind, rows)`` in chunks at the end, then ``("done", w)``
or ``("error", w, message)``. It exits by itself when its parent dies (it polls the parent's pid),
so a kernel restart leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
from typing import Any

from .spec import LoadSpec

CHUNK = 2000


def _watch_parent(parent_pid: int) -> None:
    # A worker must never outlive the notebook kernel that started it.
    while True:
        if os.getppid() != parent_pid:
            os._exit(3)
        time.sleep(0.5)


def worker_main(spec_dict: dict[str, Any], index: int, ids: list[int], queue: Any, stop: Any,
                parent_pid: int) -> None:
    """Entry point of a worker process (``multiprocessing`` target)."""
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    spec = LoadSpec(**spec_dict)
    try:
        asyncio.run(_Worker(spec, index, ids, queue, stop).run())
    except Exception as exc:  # reported to the parent, which raises LoadError with it
        queue.put(("error", index, f"{type(exc).__name__}: {exc}"))
        return
    queue.put(("done", index))


class _Worker:
    def __init__(self, spec: LoadSpec, index: int, ids: list[int], queue: Any, stop: Any) -> None:
        self.spec, self.index, self.ids, self.queue, self.stop = spec, index, ids, queue, stop
        self.sends: list[tuple[Any, ...]] = []
        self.acks: list[tuple[Any, ...]] = []
        self.deliveries: list[tuple[Any, ...]] = []
        self.pending: dict[str, asyncio.Future[None]] = {}
        self.tick = {"sent": 0, "acked": 0, "delivered": 0, "lat": []}

    async def _connect(self, i: int) -> Any:
        import websockets

        token = self.spec.tokens[i] if self.spec.tokens else None
        headers = {"Authorization": f"Bearer {token}"} if token else None
        ws = await asyncio.wait_for(
            websockets.connect(
                self.spec.url,
                additional_headers=headers,
                max_queue=None,
                open_timeout=self.spec.connect_timeout,
                compression="deflate" if self.spec.compression else None,
            ),
            self.spec.connect_timeout,
        )
        # The hub greets an admitted client first; a refused token closes (4001) instead. Waiting
        # for the greeting turns a refusal into an error here rather than a silent, empty run.
        greeting = json.loads(await asyncio.wait_for(ws.recv(), self.spec.connect_timeout))
        if greeting.get("type") != "system:connected":
            await ws.close()
            raise ConnectionError(f"the hub did not greet the client: {greeting.get('type')!r}")
        for room in self.spec.rooms_of(i):
            await ws.send(json.dumps({"type": "room:join", "room": room}))
        return ws

    async def run(self) -> None:
        spec = self.spec
        conns: dict[int, Any] = {}
        ramp_step = spec.ramp / max(1, spec.clients)
        try:
            for n, i in enumerate(self.ids):
                if ramp_step:
                    await asyncio.sleep(ramp_step * spec.workers if n else ramp_step * self.index)
                conns[i] = await self._connect(i)
            readers = [asyncio.create_task(self._read(i, ws)) for i, ws in conns.items()]
            # Joins are acked before we send: wait until every client saw its join acks.
            await asyncio.sleep(0.2)
            self.queue.put(("ready", self.index))
            await self._wait_go()
            ticker = asyncio.create_task(self._ticker())
            senders = [i for i in self.ids if i < spec.sender_count]
            start_ns = self.go_ns
            await asyncio.gather(*(self._send(i, conns[i], start_ns) for i in senders))
            await self._drain()
            ticker.cancel()
            self._flush_tick()
            for task in readers:
                task.cancel()
        finally:
            await asyncio.gather(*(ws.close() for ws in conns.values()), return_exceptions=True)
        for kind, rows in (("sends", self.sends), ("acks", self.acks),
                           ("deliveries", self.deliveries)):
            for k in range(0, len(rows), CHUNK):
                self.queue.put(("records", self.index, kind, rows[k:k + CHUNK]))

    async def _wait_go(self) -> None:
        # The parent writes the common start time (time.time_ns) into the shared stop value's
        # sibling: we poll, so the loop never blocks on a multiprocessing primitive.
        while self.stop.value == 0:
            await asyncio.sleep(0.01)
        self.go_ns = self.stop.value

    def _stopped(self) -> bool:
        return self.stop.value < 0

    async def _send(self, i: int, ws: Any, start_ns: int) -> None:
        spec = self.spec
        rate, count = spec.per_sender()
        # Senders are spread over the first period so they do not all fire at the same instant.
        offset = (i / spec.sender_count) / rate
        end_ns = start_ns + int(spec.duration * 1e9) if spec.duration is not None else None
        pad = "x" * max(0, spec.payload_size - 40)
        k = 0
        while not self._stopped() and (count is None or k < count):
            scheduled = start_ns + int((offset + k / rate) * 1e9)
            if end_ns is not None and scheduled >= end_ns:
                break
            now = time.time_ns()
            if spec.mode == "open" and scheduled > now:
                await asyncio.sleep((scheduled - now) / 1e9)
            ref = f"{i}-{k}"
            sent = time.time_ns()
            if spec.mode == "closed":
                scheduled = sent  # closed loop: the clock starts when the previous ack came back
                self.pending[ref] = asyncio.get_running_loop().create_future()
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
            if spec.mode == "closed":
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.pending[ref], 10.0)
                self.pending.pop(ref, None)
            k += 1

    async def _read(self, i: int, ws: Any) -> None:
        user = self.spec.user(i)
        async for raw in ws:
            now = time.time_ns()
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            kind = event.get("type")
            if kind == "ack" and "ref" in event:
                if self.spec.record:
                    self.acks.append((user, event["ref"], event.get("message_id"),
                                      event.get("seq"), now))
                self.tick["acked"] += 1
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
                if self.spec.record:
                    self.deliveries.append((self.spec.user(sender_i), user, event.get("room"), k,
                                            event.get("seq"), event.get("message_id"),
                                            scheduled, now, latency))
                self.tick["delivered"] += 1
                self.tick["lat"].append(latency)

    async def _drain(self) -> None:
        # Wait for the last acks and deliveries, at most ``drain`` seconds after the last send.
        deadline = time.monotonic() + self.spec.drain
        last = -1
        while time.monotonic() < deadline and not self._stopped():
            await asyncio.sleep(0.1)
            seen = len(self.acks) + len(self.deliveries)
            if seen == last and len(self.acks) >= len(self.sends):
                break
            last = seen

    def _flush_tick(self) -> None:
        tick, self.tick = self.tick, {"sent": 0, "acked": 0, "delivered": 0, "lat": []}
        try:  # noqa: SIM105
            self.queue.put_nowait(("tick", self.index, time.time_ns(), tick))
        except Exception:
            pass

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self._flush_tick()
