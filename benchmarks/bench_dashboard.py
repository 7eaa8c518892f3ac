"""What a live dashboard costs the hub it watches: fan-out throughput with the dashboard on and off.

One hub runs in this process's event loop, as in a notebook. A helper process holds
``--listeners`` raw WebSocket connections in one room (they only read and count bytes, so the
hub, not the clients, is the bottleneck) and one sender that keeps ``--window`` chat messages
un-acknowledged at all times (closed loop: the hub is kept saturated without its queues
overflowing). The hub's fan-out throughput is the growth of its
``websocket_messages_total{direction="out"}`` per second.

Rounds alternate in ABBA order — off, on, on, off, ... — in the same run, so drift and
background load hurt both alike. In an "on" round a dashboard is open on the hub
(:func:`wslab.lab.open_dashboard`, display off, sampling every ``--interval`` s; 0.25 makes
the figure change on every tick and be redrawn at the throttle's limit, ``--max-per-second``
(the dashboard's default, 2)), and
the measurement starts once its first figure has come back.

Each round gives the rate, this process's CPU per 1,000 messages and, with a dashboard, the
drawing process's CPU (``/proc/<pid>/stat``), the wall time the dashboard's own code took in
the hub's loop (reading, recording, building what the renderer is sent, taking the PNG back)
and the images per second. The report gives the medians of each side, the ratio on/off of
the medians and the median of each "on" round against its adjacent "off" round (target: at
least 0.95, a cost of at most 5 %), and the dashboard's CPU in all — on a busy machine the
rates of one side vary more than the two sides differ, while the CPU the dashboard takes is
measured directly and bounds what it can cost.

    python benchmarks/bench_dashboard.py [--listeners 100] [--rounds 8] [--seconds 5]
                                         [--window 64] [--interval 0.25] [--max-per-second 2]

A measurement, not a test: nothing here asserts on the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from typing import Any

from wslab.hub import Hub

#: The helper process: listeners that count bytes, and a closed-loop sender. Arguments: host,
#: port, listeners, window.
CLIENTS = r"""
import asyncio, base64, json, os, struct, sys

def frame(text):
    data = text.encode()
    mask = os.urandom(4)
    n = len(data)
    head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n))
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))

async def connect(host, port):
    reader, writer = await asyncio.open_connection(host, port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write((f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    await reader.readuntil(b"\r\n\r\n")
    writer.write(frame(json.dumps({"type": "room:join", "room": "bench"})))
    return reader, writer

async def listen(reader):
    while await reader.read(1 << 16):
        pass

async def send(reader, writer, window):
    marker = b'"type":"ack"'
    body = json.dumps({"type": "chat:message", "room": "bench", "content": "x" * 64})
    message = frame(body)
    tail = b""
    writer.write(message * window)
    while True:
        chunk = await reader.read(1 << 16)
        if not chunk:
            return
        data = tail + chunk
        acks = data.count(marker)
        tail = data[-len(marker):]
        if acks:
            writer.write(message * acks)

async def main(host, port, listeners, window):
    conns = [await connect(host, port) for _ in range(listeners)]
    sender = await connect(host, port)
    await asyncio.sleep(0.5)
    print("ready", flush=True)
    await asyncio.gather(*(listen(r) for r, _ in conns), send(*sender, window))

def die_with_parent(parent):
    import threading, time
    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(3)
    threading.Thread(target=watch, daemon=True).start()

die_with_parent(int(sys.argv[5]))
asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])))
"""


def out_total(hub: Hub) -> float:
    return hub.metrics.get("websocket_messages_total").value(direction="out")


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used, from ``/proc/<pid>/stat``."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class LoopTime:
    """Wall time the dashboard's own work takes in the hub's loop: reading the hub, recording
    the reading, redrawing (building what the renderer is sent) and taking a PNG back. Each
    is synchronous code, so its wall time is time the hub's loop did not serve clients."""

    def __init__(self, dash: Any) -> None:
        self.seconds = 0.0
        view = dash.views[0]
        view.source.read = self._timed_async(view.source.read)
        view.series.record = self._timed(view.series.record)
        dash.redraw = self._timed(dash.redraw)
        dash.renderer.on_png = self._timed(dash.renderer.on_png)

    def _timed(self, fn: Any) -> Any:
        def timed(*args: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args)
            finally:
                self.seconds += time.perf_counter() - start
        return timed

    def _timed_async(self, fn: Any) -> Any:
        async def timed() -> Any:
            start = time.perf_counter()  # a local hub's read does not await: all of it is work
            try:
                return await fn()
            finally:
                self.seconds += time.perf_counter() - start
        return timed


class Round:
    """One round's figures."""

    def __init__(self, mode: str, rate: float, cpu: float, drawer: float | None,
                 loop: float | None, images: float) -> None:
        self.mode, self.rate, self.cpu, self.drawer, self.loop, self.images = (
            mode, rate, cpu, drawer, loop, images)

    @property
    def cpu_per_k(self) -> float:
        return self.cpu / self.rate * 1e6 if self.rate else float("nan")


async def measure(hub: Hub, seconds: float, dash: Any) -> Round:
    """One round: messages fanned out per second, this process's CPU share, and with a
    dashboard, its drawing process's CPU share and its work in the hub's loop."""
    timer = LoopTime(dash) if dash is not None else None
    pid = dash.renderer.pid if dash is not None else None
    images = dash.snapshot()["images"] if dash is not None else 0
    drawer = process_cpu(pid) if pid else 0.0
    start, cpu, wall = out_total(hub), time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    elapsed = time.perf_counter() - wall
    rate = (out_total(hub) - start) / elapsed
    cpu_share = (time.process_time() - cpu) / elapsed
    if dash is None or timer is None or pid is None:
        return Round("off", rate, cpu_share, None, None, 0.0)
    return Round("on", rate, cpu_share, (process_cpu(pid) - drawer) / elapsed,
                 timer.seconds / elapsed, (dash.snapshot()["images"] - images) / elapsed)


def adjacent_ratios(rounds: list[Round], value: Any) -> list[float]:
    """Each "on" round against the "off" round next to it in the ABBA order (off on | on off):
    the two were measured seconds apart, so slow drift in the machine's load cancels."""
    ratios = []
    for i, r in enumerate(rounds):
        if r.mode != "on":
            continue
        # In off,on,on,off blocks the partner is the "off" on the far side of the "on" pair's
        # edge: before the first "on" of a block, after the second.
        partner = i - 1 if i % 4 == 1 else i + 1
        if 0 <= partner < len(rounds) and rounds[partner].mode == "off":
            off = value(rounds[partner])
            if off:
                ratios.append(value(r) / off)
    return ratios


async def run(listeners: int, rounds: int, seconds: float, window: int,
              interval: float, max_per_second: float = 2.0) -> None:
    from wslab.lab import open_dashboard

    hub = await Hub.start(port=0, auth_required=False, rate_messages_per_second=1e6,
                          rate_burst=1_000_000, max_frames_per_second=1e6, frame_burst=1_000_000,
                          connections_per_ip_per_minute=100_000, max_connections_per_ip=20_000,
                          compression=False, database="sqlite:///:memory:",
                          # A helper descheduled for a moment must not be closed as a slow
                          # consumer: the queues absorb it (bounded all the same).
                          max_queue=50_000, max_queue_bytes=256 << 20,
                          ping_interval=3600)  # the raw clients do not answer pings
    helper = subprocess.Popen(
        [sys.executable, "-c", CLIENTS, hub.host, str(hub.port), str(listeners), str(window),
         str(os.getpid())],
        stdout=subprocess.PIPE, text=True,
    )
    done: list[Round] = []
    load_start = os.getloadavg()[0]
    try:
        line = await asyncio.to_thread(helper.stdout.readline)  # type: ignore[union-attr]
        if line.strip() != "ready":
            raise SystemExit(f"the client process did not start: {line!r}")
        await asyncio.sleep(2.0)  # warm up
        order = ["off", "on", "on", "off"] * (rounds // 4 + 1)
        print(f"{listeners} listeners in one room, window {window}, {seconds:.0f} s per round, "
              f"dashboard sampling every {interval} s, at most {max_per_second:g} redraws/s; "
              f"{os.cpu_count()} CPUs, load average "
              f"{load_start:.1f} at the start")
        print(f"{'round':>5} {'dashboard':>9} {'msgs out/s':>12} {'hub CPU':>8} "
              f"{'CPU ms/1k msgs':>15} {'drawer CPU':>11} {'in hub loop':>12} {'images':>7}")
        for index, mode in enumerate(order[:rounds]):
            dash = None
            if mode == "on":
                dash = open_dashboard(hub, display=False, interval=interval,
                                      max_per_second=max_per_second)
                await dash
                while dash.snapshot()["images"] < 1:
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.5)
            result = await measure(hub, seconds, dash)
            if dash is not None:
                await dash.stop()
            await asyncio.sleep(0.5)
            done.append(result)
            extra = ""
            if result.drawer is not None and result.loop is not None and dash is not None:
                counts = getattr(dash.renderer, "counts", {}).get("0", {})
                extra = (f" {result.drawer:>10.1%} {result.loop * 1000:>8.2f} ms/s "
                         f"{result.images:>5.1f}/s")
                if counts:
                    extra += (f"  (since open: {counts['layouts']} whole, "
                              f"{counts['panel_layouts']} panel layouts, {counts['blits']} blits)")
            print(f"{index + 1:>5} {mode:>9} {result.rate:>12,.0f} {result.cpu:>7.0%} "
                  f"{result.cpu_per_k:>15.2f}{extra}")
            if helper.poll() is not None:
                closes = {tuple(labels.values()): child.get() for labels, child
                          in hub.metrics.get("close_codes_total").series()}
                raise SystemExit(f"the client process ended; closes {closes}, "
                                 f"hub errors {list(hub.errors)[-3:]}")
    finally:
        helper.kill()
        helper.wait()
        await hub.stop()
    load_end = os.getloadavg()[0]
    print(f"load average {load_end:.1f} at the end (other work on the machine moves both "
          "sides; compare the ratios, and rerun when it is high)")
    report(done, load_start, load_end)


def report(done: list[Round], load_start: float, load_end: float) -> None:
    """The medians of each side and the ratios on/off."""
    off = [r for r in done if r.mode == "off"]
    on = [r for r in done if r.mode == "on"]
    median = statistics.median
    rate_off, rate_on = median(r.rate for r in off), median(r.rate for r in on)
    cpk_off, cpk_on = median(r.cpu_per_k for r in off), median(r.cpu_per_k for r in on)
    pairs = adjacent_ratios(done, lambda r: r.rate)
    cpu_pairs = adjacent_ratios(done, lambda r: r.cpu_per_k)
    drawer = median(r.drawer or 0.0 for r in on)
    loop = median(r.loop or 0.0 for r in on)
    images = median(r.images for r in on)
    print(f"\nthroughput, median: off {rate_off:,.0f} msgs/s, on {rate_on:,.0f} msgs/s: "
          f"ratio on/off {rate_on / rate_off:.3f} (cost {1 - rate_on / rate_off:+.1%}; "
          "target: at most 5 %)")
    if pairs:
        print(f"throughput, each 'on' round against its adjacent 'off' round: median ratio "
              f"{median(pairs):.3f} (of {', '.join(f'{p:.3f}' for p in pairs)})")
    print(f"hub process CPU per 1,000 messages fanned out, median: off {cpk_off:.2f} ms, "
          f"on {cpk_on:.2f} ms: ratio on/off {cpk_on / cpk_off:.3f}"
          + (f" (adjacent pairs: median {median(cpu_pairs):.3f})" if cpu_pairs else ""))
    print(f"the dashboard's own CPU, median of the 'on' rounds: drawing process "
          f"{drawer:.1%} of one CPU ({drawer / (os.cpu_count() or 1):.1%} of the machine), "
          f"{images:.1f} images/s ({drawer / images * 1000 if images else 0:.1f} ms each); "
          f"in the hub's loop {loop * 1000:.2f} ms per second ({loop:.2%} of it)")
    total = drawer + loop
    print(f"the dashboard in all: {total:.1%} of one CPU. Measured, not inferred from the noisy "
          "rates: a hub that had to give up all of it would lose at most that share of its "
          f"throughput (ratio at least {1 - total:.3f})")
    print(f"(load average {load_start:.1f} -> {load_end:.1f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listeners", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--interval", type=float, default=0.25,
                        help="the dashboard's sampling interval (0.25: redrawn at its limit)")
    parser.add_argument("--max-per-second", type=float, default=2.0,
                        help="the dashboard's redraw limit (its default 2; at most 4)")
    args = parser.parse_args()
    asyncio.run(run(args.listeners, args.rounds, args.seconds, args.window, args.interval,
                    args.max_per_second))


if __name__ == "__main__":
    main()
