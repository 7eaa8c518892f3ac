"""Cross-hub delivery: two ``wslab serve`` processes over Redis against one hub, same total load.

Each mode starts real ``wslab serve --no-auth`` processes (admission limits raised for load,
everything else at its default: SQLite store, event log, rate limits):

- ``one hub`` (the baseline) — one hub with the in-process broker, as a single hub is deployed;
  every client is on it;
- ``two hubs`` — two hubs sharing one SQLite file (or ``--db postgresql://...``) and Redis
  (``--redis``), the clients split evenly between them; only deliveries to a receiver on the
  *other* hub than the sender are timed, so every timed message crossed Redis.

The clients are ``websockets`` clients in two worker processes (one per hub in the two-hub
mode). All join the lobby; ``--senders`` of them send chat messages at ``--rate`` each per
second for ``--seconds``, each carrying its send time (``time.monotonic``, which is one clock
for every process of the machine); every receiver notes when each arrives. Modes alternate for
``--rounds`` rounds, each on fresh hubs. It reports, per mode, the medians over rounds of the
latency p50/p99 (sender -> receiver; each round's p99 too, to show the spread), the fraction
delivered, and the hubs' CPU per delivery (from ``/proc``; Redis' own CPU not counted), and the
ratio two hubs / one hub (target: p99 <= 2x)::

    python benchmarks/bench_crosshub.py [--quick] [--clients N] [--senders S] [--rate R]
        [--seconds T] [--rounds K] [--db URL] [--redis URL]

A measurement, not a test: the numbers depend on the machine, so nothing asserts on them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing as mp
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

TARGET = 2.0  # two hubs' p99 against one hub's, at most
ROOM = "lobby"
WS_URL = re.compile(r"\(WebSocket (ws://\S+)\)")


# -- the hubs -------------------------------------------------------------------------------------


def hub_command(db: str, broker: str, prefix: str) -> list[str]:
    """``wslab serve`` for a load test: no auth, admission limits raised, the rest default."""
    return [
        sys.executable, "-m", "wslab.cli", "serve", "--no-auth", "--port", "0",
        "--db", db, "--broker", broker, "--broker-prefix", prefix,
        "--connections-per-ip-per-minute", "1000000", "--max-connections-per-ip", "100000",
        "--log-level", "WARNING",
    ]  # fmt: skip


def start_hubs(
    count: int, db: str, broker: str, prefix: str
) -> list[tuple[subprocess.Popen[str], str]]:
    """Start ``count`` hubs at once (each takes seconds to import); return each with its
    WebSocket URL, read from its banner."""
    command = hub_command(db, broker, prefix)
    # A hub's stderr goes to a file of its own: read back only if it does not start.
    with contextlib.ExitStack() as files:
        errors = [files.enter_context(tempfile.TemporaryFile("w+")) for _ in range(count)]
        procs = [
            subprocess.Popen(command, stdout=subprocess.PIPE, stderr=error, text=True)
            for error in errors
        ]
        hubs = []
        for proc, error in zip(procs, errors, strict=True):
            assert proc.stdout is not None
            for line in proc.stdout:
                match = WS_URL.search(line)
                if match:
                    hubs.append((proc, match.group(1)))
                    break
            else:
                for other in procs:
                    stop_hub(other)
                error.seek(0)
                said = error.read()[-2000:].strip() or "(nothing on stderr)"
                raise SystemExit(
                    f"bench_crosshub: a hub did not start: {' '.join(command)}\n{said}"
                )
    return hubs


def stop_hub(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def cpu_ns(pid: int) -> int:
    """CPU time of a process (all its threads), in ns, from ``/proc/PID/stat``."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 10**9 // os.sysconf("SC_CLK_TCK")


def redis_reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 1):
            return True
    except OSError:
        return False


# -- the load: one worker process per group of clients --------------------------------------------


@dataclass(frozen=True)
class Load:
    """What one worker does: ``clients`` connections, the first ``senders`` of them sending."""

    url: str
    name: str  # the worker's group ("a" / "b"): deliveries from another group are cross-hub
    clients: int
    senders: int
    rate: float
    seconds: float
    cross_only: bool  # time only messages from the other group


async def run_load(load: Load, ready: mp.Queue, start: mp.Event, results: mp.Queue) -> None:  # type: ignore[type-arg]
    from websockets.asyncio.client import connect

    conns = []
    for _ in range(load.clients):
        ws = await connect(load.url, max_size=1 << 20)
        while json.loads(await ws.recv()).get("type") != "system:connected":
            pass
        conns.append(ws)
    latencies: list[float] = []
    received = 0

    async def receive(ws: object) -> None:
        nonlocal received
        with contextlib.suppress(Exception):
            async for raw in ws:  # type: ignore[attr-defined]
                now = time.monotonic()
                message = json.loads(raw)
                if message.get("type") != "chat:message":
                    continue
                sent, _, group = message.get("content", "").partition(" ")
                if group == load.name and load.cross_only:
                    continue
                received += 1
                latencies.append(now - float(sent))

    readers = [asyncio.ensure_future(receive(ws)) for ws in conns]
    ready.put(load.name)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, start.wait)
    began = time.monotonic()

    async def send(ws: object, offset: float) -> None:
        count = int(load.seconds * load.rate)
        for i in range(count):
            delay = began + offset + i / load.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            content = f"{time.monotonic():.6f} {load.name}"
            await ws.send(json.dumps({"type": "chat:message", "room": ROOM, "content": content}))  # type: ignore[attr-defined]

    # Senders are spread over one period, so the load is steady rather than in bursts.
    await asyncio.gather(
        *(
            send(ws, i / load.rate / max(1, load.senders))
            for i, ws in enumerate(conns[: load.senders])
        )
    )
    await asyncio.sleep(3.0)  # what is still on its way
    for ws in conns:
        with contextlib.suppress(Exception):
            await ws.close()
    for reader in readers:
        reader.cancel()
    results.put((load.name, received, latencies))


def worker(load: Load, ready: mp.Queue, start: mp.Event, results: mp.Queue) -> None:  # type: ignore[type-arg]
    asyncio.run(run_load(load, ready, start, results))


# -- one round of one mode ------------------------------------------------------------------------


@dataclass
class Round:
    p50_ms: float
    p99_ms: float
    delivered: float  # fraction of the expected timed deliveries
    cpu_us: float  # hubs' CPU per delivery (all deliveries, timed or not)


def run_round(mode: str, args: argparse.Namespace, db: str) -> Round:
    prefix = f"wslab-bench-{uuid.uuid4().hex[:8]}:"
    two = mode == "two hubs"
    broker = args.redis if two else "memory://"
    hubs = start_hubs(2 if two else 1, db, broker, prefix)
    ctx = mp.get_context("spawn")
    ready, results, start = ctx.Queue(), ctx.Queue(), ctx.Event()
    half, senders = args.clients // 2, args.senders // 2
    loads = [
        Load(hubs[i % len(hubs)][1], name, half, senders, args.rate, args.seconds, two)
        for i, name in enumerate(("a", "b"))
    ]
    workers = [ctx.Process(target=worker, args=(load, ready, start, results)) for load in loads]
    try:
        for w in workers:
            w.start()
        for _ in workers:
            ready.get(timeout=120)
        time.sleep(1.0)  # presence and broker subscriptions settle
        cpu0 = sum(cpu_ns(proc.pid) for proc, _ in hubs)
        start.set()
        got = [results.get(timeout=args.seconds + 120) for _ in workers]
        cpu = sum(cpu_ns(proc.pid) for proc, _ in hubs) - cpu0
        for w in workers:
            w.join(10)
    finally:
        for w in workers:
            if w.is_alive():
                w.kill()
        for proc, _ in hubs:
            stop_hub(proc)
    latencies = sorted(x for _, _, lats in got for x in lats)
    sent_per_group = senders * int(args.seconds * args.rate)
    # Every message reaches every client (the sender too); timed: all, or the other group's.
    expected = 2 * sent_per_group * (half if two else 2 * half)
    all_deliveries = 2 * sent_per_group * 2 * half
    if not latencies:
        return Round(math.nan, math.nan, 0.0, math.nan)
    return Round(
        p50_ms=statistics.median(latencies) * 1e3,
        p99_ms=latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1e3,
        delivered=len(latencies) / expected if expected else math.nan,
        cpu_us=cpu / all_deliveries / 1e3 if all_deliveries else math.nan,
    )


def cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: tiny load, 1 round")
    parser.add_argument("--clients", type=int, help="clients in all [default: 50]")
    parser.add_argument("--senders", type=int, help="of which send [default: 10]")
    parser.add_argument("--rate", type=float, help="messages/s per sender [default: 2]")
    parser.add_argument("--seconds", type=float, help="sending time per round [default: 10]")
    parser.add_argument("--rounds", type=int, help="rounds per mode [default: 3]")
    parser.add_argument("--db", help="store URL shared by the hubs [default: a fresh SQLite file]")
    parser.add_argument(
        "--redis", default=os.environ.get("WSLAB_TEST_REDIS", "redis://127.0.0.1:6379/0")
    )
    args = parser.parse_args(argv)
    q = args.quick
    args.clients = args.clients or (6 if q else 50)
    args.senders = args.senders or (2 if q else 10)
    args.rate = args.rate or (5.0 if q else 2.0)
    args.seconds = args.seconds or (1.0 if q else 10.0)
    args.rounds = args.rounds or (1 if q else 3)
    if args.clients < 2 or args.senders < 2 or args.senders > args.clients:
        parser.error("need at least 2 clients and 2 senders, and no more senders than clients")
    print(
        f"cross-hub delivery; {os.cpu_count()} CPUs ({cpu_model()}), Python "
        f"{platform.python_version()}; {args.clients} clients in one room, {args.senders} "
        f"sending {args.rate:g}/s each for {args.seconds:g} s; {args.rounds} rounds per mode"
    )
    if not redis_reachable(args.redis):
        print(f"skipped: Redis not reachable at {args.redis} (start it or pass --redis URL)")
        return 0
    modes = ("one hub", "two hubs")
    rounds: dict[str, list[Round]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory(prefix="wslab-bench-") as tmp:
        for r in range(args.rounds):
            for mode in modes if r % 2 == 0 else modes[::-1]:
                db = args.db or f"sqlite:///{Path(tmp) / f'chat-{r}-{mode[0]}.db'}"
                rounds[mode].append(run_round(mode, args, db))
    print(
        f"{'mode':9} {'p50 ms':>8} {'p99 ms':>8} {'delivered':>9} {'hub CPU us/delivery':>20}"
        "  p99 ms of each round"
    )
    print("-" * 80)
    med: dict[str, dict[str, float]] = {}
    for mode in modes:
        med[mode] = {
            k: statistics.median(getattr(x, k) for x in rounds[mode])
            for k in ("p50_ms", "p99_ms", "delivered", "cpu_us")
        }
        m = med[mode]
        print(
            f"{mode:9} {m['p50_ms']:8.2f} {m['p99_ms']:8.2f} {m['delivered']:9.1%} "
            f"{m['cpu_us']:20.1f}  {','.join(f'{x.p99_ms:.1f}' for x in rounds[mode])}"
        )
    base, two = med["one hub"], med["two hubs"]
    p99 = two["p99_ms"] / base["p99_ms"] if base["p99_ms"] > 0 else math.nan
    p50 = two["p50_ms"] / base["p50_ms"] if base["p50_ms"] > 0 else math.nan
    print()
    print(f"two hubs / one hub: p50 {p50:.2f}x, p99 {p99:.2f}x "
          f"(target p99 <= {TARGET:.1f}x: {'met' if p99 <= TARGET else 'NOT met'})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
