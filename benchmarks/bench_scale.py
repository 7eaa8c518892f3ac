"""How the hub scales, side by side with a bare ``websockets`` server in the same run.

Rows (issue 10's table), each against its baseline, in alternating rounds, reported as medians
and ratios (hub / baseline: above 1.0 the hub costs more):

- **connect** — server CPU per new connection (handshake, JWT check, greeting, lobby join) at
  each N of ``--connections``, and the RSS each connection then holds while idle. Baseline: the
  bare server of ``scale_baseline.py`` (``process_request`` JWT check, greeting, one room).
- **fanout** — one sender posts ``--messages`` chat messages at ``--rate`` a second to a lobby of
  N of ``--fanout`` receivers: server CPU per delivery, deliveries per second, p50 and p99 of
  the send-to-receive time. The hub is the full one: ``wslab serve`` with authentication, router,
  rate limits (raised so the sender is not throttled), the SQLite store, the in-process broker and
  the event log at its default level. Baseline: ``websockets.broadcast`` to the room.

Every server is a process of its own, started fresh per measurement; every client is a real
``websockets`` client in other processes (``scale_clients.py``); server CPU is the scheduler's
count of the server's threads (``/proc/<pid>/task/*/schedstat``, ns), RSS is ``VmRSS`` from
``/proc/<pid>/status``.

    python benchmarks/bench_scale.py                       # the full table (~10 minutes)
    python benchmarks/bench_scale.py --connections 100,1000,10000 --rounds 3
    python benchmarks/bench_scale.py --quick               # seconds: a smoke run, tiny N

A measurement, not a test: nothing here asserts on the numbers.
"""

from __future__ import annotations

import argparse
import array
import contextlib
import json
import os
import platform
import re
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
URL = re.compile(r"(ws://127\.0\.0\.1:\d+/ws)")
TICK = os.sysconf("SC_CLK_TCK")
SERVERS = ("websockets", "wslab")
#: What a load test needs lifted on the hub (every client shares 127.0.0.1).
HUB_ENV = {
    "WSLAB_CONNECTIONS_PER_IP_PER_MINUTE": "100000000",
    "WSLAB_MAX_CONNECTIONS_PER_IP": "1000000",
    "WSLAB_MAX_CONNECTIONS": "1000000",
    "WSLAB_RATE_MESSAGES_PER_SECOND": "1000000",
    "WSLAB_RATE_BURST": "1000000",
    "WSLAB_RATE_BYTES_PER_SECOND": "1000000000",
}
#: Messages each client waits for after its upgrade: the hub's system:connected and
#: presence:snapshot (the lobby joined), the baseline's greeting.
GREET = {"websockets": 1, "wslab": 2}


# -- processes ------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """CPU time of process ``pid`` so far, all its threads, to the nanosecond.

    The scheduler's own count (``/proc/<pid>/task/*/schedstat``, user and system time together)
    rather than ``utime + stime`` of ``/proc/<pid>/stat``, which come in clock ticks (10 ms): at
    100 connections a tick is 0.1 ms per connection, a sixth of the figure. Threads that ended are
    no longer counted, so a measurement must not span a thread's end (the servers' threads live
    as long as they do). Without schedstat (a kernel built without it), the ticks.
    """
    total, found = 0, False
    for path in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        try:
            total += int(path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # the thread ended while we looked
        found = True
    if found and total:
        return total / 1e9
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_bytes(pid: int) -> int:
    """Resident memory of process ``pid``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _drain(stream: Any) -> None:
    for _ in stream:
        pass


@contextlib.contextmanager
def server(kind: str, secret: str, folder: str) -> Iterator[tuple[int, str]]:
    """A fresh server process of ``kind``; yields its pid and ws:// URL."""
    if kind == "wslab":
        command = [sys.executable, "-m", "wslab.cli", "serve", "--port", "0",
                   "--secret", secret, "--db", f"sqlite:///{folder}/chat-{secrets.token_hex(4)}.db"]  # fmt: skip
    else:
        command = [sys.executable, str(HERE / "scale_baseline.py"), "--secret", secret]
    env = {**os.environ, **HUB_ENV}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            match = URL.search(line)
            if match:
                break
        else:
            raise RuntimeError(f"{kind} server did not start")
        threading.Thread(target=_drain, args=(process.stdout,), daemon=True).start()
        time.sleep(0.3)  # let start-up work (imports, first snapshot) finish before measuring
        yield process.pid, match.group(1)
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Clients:
    """One load process (``scale_clients.py``), read line by line."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "scale_clients.py"), *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip

    def line(self, timeout: float = 600) -> dict[str, Any]:
        """The next JSON line it prints."""
        assert self.process.stdout is not None
        result: list[str] = []
        reader = threading.Thread(target=lambda: result.append(self.process.stdout.readline()))  # type: ignore[union-attr]
        reader.start()
        reader.join(timeout)
        if not result or not result[0]:
            raise RuntimeError("a load process stopped or timed out")
        return dict(json.loads(result[0]))

    def tell(self, text: str = "go\n") -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text)
        self.process.stdin.flush()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            assert self.process.stdin is not None
            self.process.stdin.close()
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _split(n: int, per_process: int) -> list[tuple[int, int]]:
    """(first, count) for each load process."""
    parts = max(1, min(4, -(-n // per_process)))
    size = -(-n // parts)
    return [(i, min(size, n - i)) for i in range(0, n, size)]


# -- rows -----------------------------------------------------------------------------------------


def connect_row(kind: str, n: int, secret: str, folder: str) -> dict[str, float]:
    """Server CPU per connection and idle RSS per connection for ``n`` connections."""
    with server(kind, secret, folder) as (pid, url):
        # A few connections first, closed again: the first one's lazy imports and caches are
        # start-up cost, not the cost of a connection.
        warm = Clients("--url", url, "--secret", secret, "--prefix", "warm", "--count", "5",
                       "--greet", str(GREET[kind]))  # fmt: skip
        warm.line()
        warm.close()
        time.sleep(0.3)
        cpu0, rss0 = cpu_seconds(pid), rss_bytes(pid)
        started = time.perf_counter()
        loads = [
            Clients(
                "--url",
                url,
                "--secret",
                secret,
                "--first",
                str(first),
                "--count",
                str(count),
                "--greet",
                str(GREET[kind]),
            )
            for first, count in _split(n, 2500)
        ]
        try:
            for load in loads:
                load.line()
            seconds = time.perf_counter() - started
            cpu = cpu_seconds(pid) - cpu0
            time.sleep(0.5)
            rss = rss_bytes(pid) - rss0
        finally:
            for load in loads:
                load.close()
    return {"cpu_ms": cpu / n * 1000, "rss_kib": rss / n / 1024, "seconds": seconds}


def fanout_row(
    kind: str, n: int, messages: int, rate: float, secret: str, folder: str
) -> dict[str, float]:
    """Per-delivery server CPU, deliveries per second and latency for one room of ``n``."""
    with server(kind, secret, folder) as (pid, url):
        files = []
        loads = []
        for first, count in _split(n, 500):
            path = f"{folder}/lat-{kind}-{first}-{secrets.token_hex(3)}.bin"
            files.append(path)
            loads.append(
                Clients(
                    "--url",
                    url,
                    "--secret",
                    secret,
                    "--first",
                    str(first),
                    "--count",
                    str(count),
                    "--greet",
                    str(GREET[kind]),
                    "--expect",
                    str(messages),
                    "--latencies",
                    path,
                )
            )
        sender = Clients("--url", url, "--secret", secret, "--send", str(messages),
                         "--rate", str(rate), "--greet", str(GREET[kind]))  # fmt: skip
        try:
            for load in (*loads, sender):
                load.line()
            time.sleep(0.5)  # the last presence work of the connections settles
            cpu0 = cpu_seconds(pid)
            started = time.perf_counter()
            sender.tell()
            for load in loads:
                load.line(timeout=120 + messages / rate * 3)
            elapsed = time.perf_counter() - started
            cpu = cpu_seconds(pid) - cpu0
        finally:
            for load in (*loads, sender):
                load.close()
        latencies = array.array("d")
        for path in files:
            with open(path, "rb") as data:
                latencies.frombytes(data.read())
    deliveries = len(latencies)
    ordered = sorted(latencies)
    return {
        "cpu_us": cpu / deliveries * 1e6,
        "per_s": deliveries / elapsed,
        "p50_ms": ordered[len(ordered) // 2] * 1000,
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
    }


def alternate(rounds: int, measure: Any) -> dict[str, dict[str, float]]:
    """Run ``measure(kind)`` for both servers, ``rounds`` times in alternating order; medians."""
    samples: dict[str, list[dict[str, float]]] = {kind: [] for kind in SERVERS}
    for r in range(rounds):
        for kind in SERVERS if r % 2 == 0 else tuple(reversed(SERVERS)):
            samples[kind].append(measure(kind))
    return {
        kind: {key: statistics.median(s[key] for s in runs) for key in runs[0]}
        for kind, runs in samples.items()
    }


# -- report ---------------------------------------------------------------------------------------


def ratio(result: dict[str, dict[str, float]], key: str) -> str:
    base = result["websockets"][key]
    return f"{result['wslab'][key] / base:.2f}x" if base else "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", default="100,1000")
    parser.add_argument("--fanout", default="100,1000")
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--rate", default="50,10", help="sends/s per --fanout size")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", default="connect,fanout")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--quick", action="store_true", help="tiny N, one round (smoke run)")
    args = parser.parse_args(argv)
    if args.quick:
        args.connections, args.fanout, args.messages, args.rate, args.rounds = "10", "5", 5, "50", 1
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # children inherit it
    rows = set(args.rows.split(","))
    secret = secrets.token_hex(32)
    results: dict[str, Any] = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": " ".join(["python", "benchmarks/bench_scale.py", *(argv or sys.argv[1:])]),
    }
    print(f"# bench_scale: {results['machine']}, {results['date']}")
    with tempfile.TemporaryDirectory() as folder:
        if "connect" in rows:
            print("\n| connections | server | CPU/conn | RSS/conn | wall | CPU ratio | RSS ratio |")
            print("|---|---|---|---|---|---|---|")
            for n in (int(x) for x in args.connections.split(",")):
                result = alternate(args.rounds, lambda k, n=n: connect_row(k, n, secret, folder))
                results[f"connect_{n}"] = result
                for kind in SERVERS:
                    r = result[kind]
                    ratios = (
                        (ratio(result, "cpu_ms"), ratio(result, "rss_kib"))
                        if kind == "wslab"
                        else ("", "")
                    )
                    print(f"| {n:,} | {kind} | {r['cpu_ms']:.2f} ms | {r['rss_kib']:.1f} KiB "
                          f"| {r['seconds']:.1f} s | {ratios[0]} | {ratios[1]} |", flush=True)  # fmt: skip
        if "fanout" in rows:
            print(
                "\n| receivers | server | CPU/delivery | delivered/s | p50 | p99 | CPU ratio | rate ratio | p99 ratio |"
            )
            print("|---|---|---|---|---|---|---|---|---|")
            rates = [float(x) for x in args.rate.split(",")]
            for i, n in enumerate(int(x) for x in args.fanout.split(",")):
                rate = rates[min(i, len(rates) - 1)]
                result = alternate(
                    args.rounds,
                    lambda k, n=n, rate=rate: fanout_row(k, n, args.messages, rate, secret, folder),
                )
                results[f"fanout_{n}"] = result
                for kind in SERVERS:
                    r = result[kind]
                    extra = (
                        f"{ratio(result, 'cpu_us')} | {ratio(result, 'per_s')} | {ratio(result, 'p99_ms')}"
                        if kind == "wslab" else " | | "
                    )  # fmt: skip
                    print(f"| {n:,} | {kind} | {r['cpu_us']:.1f} µs | {r['per_s']:,.0f} | "
                          f"{r['p50_ms']:.1f} ms | {r['p99_ms']:.1f} ms | {extra} |", flush=True)  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
