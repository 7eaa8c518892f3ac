"""What a live dashboard costs the hub it watches: fan-out throughput with the dashboard on and off.

One hub runs in this process's event loop, as in a notebook. A helper process holds
``--listeners`` raw WebSocket connections in one room (they only read and count bytes, so the
hub, not the clients, is the bottleneck) and one sender that keeps ``--window`` chat messages
un-acknowledged at all times (closed loop: the hub is kept saturated without its queues
overflowing). The hub's fan-out throughput is the growth of its
``websocket_messages_total{direction="out"}`` per second.

Rounds alternate in ABBA order — off, on, on, off, ... — in the same run, so drift and
background load hurt both alike. In an "on" round a dashboard is open on the hub
(:func:`wslab.lab.open_dashboard`, display off, sampling every 0.25 s so that the figure
changes on every tick and is redrawn at the throttle's limit of 4 per second), and the
measurement starts once its first figure has come back. The report gives each round, the
median of each side and the ratio on/off (target: at least 0.95, a cost of at most 5 %).

    python benchmarks/bench_dashboard.py [--listeners 100] [--rounds 8] [--seconds 5]
                                         [--window 64] [--interval 0.25]

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


async def measure(hub: Hub, seconds: float) -> tuple[float, float]:
    """Messages fanned out per second over ``seconds``, and the process's CPU share meanwhile."""
    start, cpu, wall = out_total(hub), time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    elapsed = time.perf_counter() - wall
    return (out_total(hub) - start) / elapsed, (time.process_time() - cpu) / elapsed


async def run(listeners: int, rounds: int, seconds: float, window: int,
              interval: float) -> None:
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
    results: dict[str, list[float]] = {"off": [], "on": []}
    cpu_per_k: dict[str, list[float]] = {"off": [], "on": []}
    try:
        line = await asyncio.to_thread(helper.stdout.readline)  # type: ignore[union-attr]
        if line.strip() != "ready":
            raise SystemExit(f"the client process did not start: {line!r}")
        await asyncio.sleep(2.0)  # warm up
        order = ["off", "on", "on", "off"] * (rounds // 4 + 1)
        print(f"{listeners} listeners in one room, window {window}, {seconds:.0f} s per round; "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start")
        print(f"{'round':>5} {'dashboard':>9} {'msgs out/s':>12} {'hub CPU':>8} "
              f"{'CPU ms/1k msgs':>15} {'redraws':>8}")
        for index, mode in enumerate(order[:rounds]):
            dash = None
            if mode == "on":
                dash = open_dashboard(hub, display=False, interval=interval)
                await dash
                while dash.snapshot()["images"] < 1:
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.5)
            draws_before = dash.views[0].throttle.draws if dash else 0
            rate, cpu = await measure(hub, seconds)
            draws = (dash.views[0].throttle.draws - draws_before) if dash else 0
            if dash is not None:
                await dash.stop()
            await asyncio.sleep(0.5)
            results[mode].append(rate)
            per_k = cpu / rate * 1e6 if rate else float("nan")
            cpu_per_k[mode].append(per_k)
            print(f"{index + 1:>5} {mode:>9} {rate:>12,.0f} {cpu:>7.0%} {per_k:>15.2f} "
                  f"{draws / seconds if dash else 0:>7.1f}/s")
            if helper.poll() is not None:
                closes = {tuple(labels.values()): child.get() for labels, child
                          in hub.metrics.get("close_codes_total").series()}
                raise SystemExit(f"the client process ended; closes {closes}, "
                                 f"hub errors {list(hub.errors)[-3:]}")
    finally:
        helper.kill()
        helper.wait()
        await hub.stop()
    print(f"load average {os.getloadavg()[0]:.1f} at the end (other work on the machine "
          "moves both sides; compare the ratio, and rerun when it is high)")
    off, on = statistics.median(results["off"]), statistics.median(results["on"])
    c_off, c_on = statistics.median(cpu_per_k["off"]), statistics.median(cpu_per_k["on"])
    print(f"\nthroughput, median: off {off:,.0f} msgs/s, on {on:,.0f} msgs/s: "
          f"ratio on/off {on / off:.3f} (cost {1 - on / off:+.1%}; target: at most 5 %)")
    print(f"hub process CPU per 1,000 messages fanned out, median: off {c_off:.2f} ms, "
          f"on {c_on:.2f} ms: ratio on/off {c_on / c_off:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listeners", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--interval", type=float, default=0.25,
                        help="the dashboard's sampling interval (0.25: redrawn at its limit)")
    args = parser.parse_args()
    asyncio.run(run(args.listeners, args.rounds, args.seconds, args.window, args.interval))


if __name__ == "__main__":
    main()
