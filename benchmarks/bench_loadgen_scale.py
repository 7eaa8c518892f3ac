"""How long 10,000 load clients take to connect to one hub, against 1,000 as the baseline.

A hub runs in this process's event loop, as in a notebook (``Hub.start``, SQLite in a temp
folder, no authentication, per-IP limits lifted since every client shares 127.0.0.1). The load
generator connects ``N`` clients from its worker processes (direct messages only, so there are
no rooms and no presence fan-out: the cost measured is the connection itself), then sends for
``--seconds`` at ``--rate`` messages/s so the run is shown to carry traffic once connected.

Reported per count: the connect time (spawning the workers until every client is connected and
greeted), milliseconds and hub memory (RSS growth) per connection, worker memory per
connection, CPU per connection in the hub's process and in the workers (until the first second
of sending), and what was sent/acked/delivered. The last line is the per-connection connect time
at the largest count as a ratio of the smallest (1.0: connecting scales linearly).

The open-files limit is raised to its hard limit first (each connection is a socket in the hub
and one in a worker). ::

    python benchmarks/bench_loadgen_scale.py [--counts 1000,10000] [--workers K] [--rate R]

A measurement, not a test: nothing here asserts on the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import tempfile
import time

from wslab.hub import Hub
from wslab.lab.loadgen import default_workers, start_load


def raise_open_files(wanted: int) -> int:
    """Raise the soft open-files limit to ``wanted`` (at most the hard limit); the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used, from /proc (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int | str = "self") -> int:
    """Resident memory of a process in KiB, from /proc (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


async def measure(clients: int, workers: int | None, rate: float, seconds: float,
                  connect_timeout: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        hub = await Hub.start(
            port=0, database=f"sqlite:///{folder}/chat.db", auth_required=False,
            max_connections=clients + 100, max_connections_per_ip=clients + 100,
            connections_per_ip_per_minute=10 * clients + 1000,
            rate_messages_per_second=1000, rate_burst=1000,
        )  # fmt: skip
        try:
            hub_before = rss_kib()
            cpu_before = time.process_time()
            sampled: dict[str, int] = {}

            def on_tick(snapshot: dict[str, object]) -> None:
                # The first second of sending: every client is connected, nothing has ended.
                if not sampled:
                    sampled["hub"] = rss_kib()
                    sampled["workers"] = sum(rss_kib(pid) for pid in run.pids)
                    sampled["hub_cpu"] = time.process_time() - cpu_before
                    sampled["worker_cpu"] = sum(cpu_seconds(pid) for pid in run.pids)

            began = time.monotonic()
            run = start_load(hub, clients=clients, rate=rate, duration=seconds,
                             pattern="direct", senders=min(clients, 100), workers=workers,
                             connect_timeout=connect_timeout, on_tick=on_tick, progress=False)
            result = await run
            total = time.monotonic() - began
        finally:
            await hub.stop()
    summary = result.summary()
    return {
        "clients": clients,
        "workers": result.spec["workers"],
        "connect_s": result.connect_seconds,
        "ms_per_conn": 1000 * result.connect_seconds / clients,
        "conn_per_s": clients / result.connect_seconds if result.connect_seconds else 0.0,
        "hub_kib_per_conn": (sampled.get("hub", 0) - hub_before) / clients,
        "worker_kib_per_conn": sampled.get("workers", 0) / clients,
        # CPU until the first second of sending: connecting, greeting, and one second of load.
        "hub_cpu_ms_per_conn": 1000 * sampled.get("hub_cpu", 0) / clients,
        "worker_cpu_ms_per_conn": 1000 * sampled.get("worker_cpu", 0) / clients,
        "sent": summary["sent"],
        "acked": summary["acked"],
        "delivered": summary["delivered"],
        "p50_ms": summary["p50_ms"],
        "p99_ms": summary["p99_ms"],
        "run_s": total,
        "retries": result.connect_retries,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="1000,10000",
                        help="comma-separated client counts, smallest first (default 1000,10000)")
    parser.add_argument("--workers", type=int, default=None,
                        help="worker processes (default: cpu_count - 1)")
    parser.add_argument("--rate", type=float, default=100.0, help="messages/s once connected")
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds of sending")
    parser.add_argument("--connect-timeout", type=float, default=60.0,
                        help="seconds one client may take to connect (the machine may be busy)")
    args = parser.parse_args()
    counts = sorted(int(c) for c in args.counts.split(","))
    limit = raise_open_files(2 * max(counts) + 1024)
    print(f"cpus {os.cpu_count()}, open-files limit {limit}, "
          f"workers {args.workers or default_workers(max(counts))}")
    rows = []
    for n in counts:
        row = await measure(n, args.workers, args.rate, args.seconds, args.connect_timeout)
        rows.append(row)
        print(f"{n:>6} clients: connect {row['connect_s']:7.2f} s  "
              f"{row['ms_per_conn']:6.3f} ms/conn  {row['conn_per_s']:7.0f} conn/s  "
              f"hub {row['hub_kib_per_conn']:6.1f} KiB/conn  "
              f"workers {row['worker_kib_per_conn']:6.1f} KiB/conn  "
              f"cpu hub {row['hub_cpu_ms_per_conn']:.2f} / workers "
              f"{row['worker_cpu_ms_per_conn']:.2f} ms/conn  "
              f"sent {row['sent']} acked {row['acked']} delivered {row['delivered']}  "
              f"p50 {row['p50_ms']:.1f} ms p99 {row['p99_ms']:.1f} ms  "
              f"retries {row['retries']}  (run {row['run_s']:.1f} s)", flush=True)
    if len(rows) > 1:
        ratio = rows[-1]["ms_per_conn"] / rows[0]["ms_per_conn"]
        print(f"per-connection connect time at {counts[-1]} / at {counts[0]}: {ratio:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
