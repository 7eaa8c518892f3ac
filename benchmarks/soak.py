"""Soak: a hub process under steady chat load and periodic faults, sampled over time.

A ``wslab serve`` process (SQLite in a temp folder) serves ``--clients`` recording chatters,
half of them through a :class:`~wslab.lab.faults.TcpProxy`. Every ``--fault-every`` seconds
one fault, in turn: latency on the proxy, a cut (every proxied connection reset), a partition
(then healed and cut), and hostile clients (endless empty continuations, 2-byte fragments,
ping floods, as in ``tests/application/test_hostile.py``). Every ``--sample`` seconds the hub
process's RSS and open file descriptors (from ``/proc``), its open connections and the tasks
alive in its event loop (``/metrics``) and the chatters' ack latency are sampled. At the end the store is read back and the whole
record judged by the history checker (no acknowledged message lost or duplicated, order kept).

    python benchmarks/soak.py [--minutes 10] [--clients 6] [--csv soak.csv] [--plot soak.png]

Writes the samples as CSV and a five-panel plot.
A measurement, not a test (``tests/application/test_soak.py`` runs a short one with bounds).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import re
import statistics
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.application.hubproc import Chatter, HubProcess, record_final_history  # noqa: E402
from wslab.foundation.codes import Opcode  # noqa: E402
from wslab.foundation.frames import Frame, encode_frame  # noqa: E402
from wslab.infrastructure.engines.wslab import connect  # noqa: E402
from wslab.lab.faults import TcpProxy  # noqa: E402
from wslab.lab.history import HistoryRecorder, check_history  # noqa: E402

ROOMS = ["lobby", "ops"]
FAULTS = ("latency", "cut", "partition", "hostile")
_GAUGE = re.compile(r"^wslab_(open_connections|asyncio_tasks)(?:\{[^}]*\})? ([0-9.e+]+)$", re.M)


@dataclass
class Sample:
    """One row of the CSV."""

    t: float
    rss_mb: float
    fds: int
    open_connections: int
    tasks: int
    acks: int
    p50_ms: float
    p99_ms: float
    fault: str


@dataclass
class SoakResult:
    samples: list[Sample] = field(default_factory=list)
    valid: bool = False
    verdict: str = ""
    acks: int = 0
    sends: int = 0
    reconnects: int = 0
    hostile_closes: dict[int, int] = field(default_factory=dict)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def gauges(url: str) -> dict[str, int]:
    """``open_connections`` and ``asyncio_tasks`` from the hub's ``/metrics`` (-1: unreadable)."""
    found = {"open_connections": -1, "asyncio_tasks": -1}
    try:
        with urllib.request.urlopen(url + "/metrics", timeout=5) as reply:
            text = reply.read().decode()
    except OSError:
        return found
    for name, value in _GAUGE.findall(text):
        found[name] = int(float(value))
    return found


def flood(kind: int) -> bytes:
    """One write of a hostile client (sent over and over)."""
    key = os.urandom(4)
    if kind == 0:
        return encode_frame(Frame(Opcode.CONT, b"", False), key) * 2000
    if kind == 1:
        return encode_frame(Frame(Opcode.CONT, b"ab", False), key) * 2000
    return encode_frame(Frame(Opcode.PING, b"p"), key) * 2000


async def hostile(url: str, kind: int, stop: asyncio.Event, closes: dict[int, int]) -> None:
    """A hostile guest flooding until ``stop``; reconnects when the hub closes it."""
    while not stop.is_set():
        try:
            connection = await connect(url)
        except Exception:
            await asyncio.sleep(0.2)
            continue
        transport = connection.transport  # type: ignore[attr-defined]
        if kind in (0, 1):
            transport.write(encode_frame(Frame(Opcode.BINARY, b"x", False), os.urandom(4)))
        data = flood(kind)
        while not stop.is_set() and not connection.closed:
            if transport.get_write_buffer_size() < 256 << 10:
                transport.write(data)
            await asyncio.sleep(0.01)
        code = connection.close_code or 1006
        closes[code] = closes.get(code, 0) + 1
        connection.abort()
        await asyncio.sleep(0.2)


async def inject(fault: str, proxy: TcpProxy, url: str, seconds: float,
                 closes: dict[int, int], hostiles: int) -> None:  # fmt: skip
    """Run one fault for about ``seconds``."""
    if fault == "latency":
        proxy.set_latency(0.05, 0.02)
        await asyncio.sleep(seconds)
        proxy.clear()
    elif fault == "cut":
        proxy.cut()
        await asyncio.sleep(seconds)
    elif fault == "partition":
        proxy.partition()
        await asyncio.sleep(min(seconds, 3.0))
        proxy.heal()
        proxy.cut()
        await asyncio.sleep(max(0.0, seconds - 3.0))
    else:
        stop = asyncio.Event()
        tasks = [asyncio.ensure_future(hostile(url, n % 3, stop, closes)) for n in range(hostiles)]
        await asyncio.sleep(seconds)
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)


def window(chatters: list[Chatter], since: float) -> list[float]:
    return [lat for c in chatters for (when, lat) in c.latencies if when >= since]


def pct(values: list[float], q: int) -> float:
    if len(values) < 2:
        return float("nan")
    return statistics.quantiles(values, n=100)[q - 1] * 1000


async def soak(seconds: float, *, clients: int = 6, pause: float = 0.1, fault_every: float = 30.0,
               fault_seconds: float = 8.0, sample_every: float = 5.0, hostiles: int = 3,
               echo: bool = True) -> SoakResult:  # fmt: skip
    """Run the soak for ``seconds``; returns the samples and the history verdict."""
    result = SoakResult()
    recorder = HistoryRecorder()
    env = {"WSLAB_PING_INTERVAL": "2", "WSLAB_PONG_TIMEOUT": "2", "WSLAB_LOG_LEVEL": "WARNING"}
    with tempfile.TemporaryDirectory() as folder:
        hub = await HubProcess(f"sqlite:///{folder}/chat.db", env=env).start()
        proxy = await TcpProxy("127.0.0.1", hub.port).start()
        via_proxy = proxy.url_for(hub.ws_url)
        chatters = [
            Chatter(f"c{i}", ROOMS, recorder,
                    (lambda: via_proxy) if i % 2 else (lambda: hub.ws_url), pause=pause).start()
            for i in range(clients)
        ]  # fmt: skip
        loop = asyncio.get_running_loop()
        started = loop.time()
        current = {"fault": ""}

        async def faults() -> None:
            for n in range(10**9):
                await asyncio.sleep(fault_every)
                fault = FAULTS[n % len(FAULTS)]
                current["fault"] = fault
                await inject(fault, proxy, hub.ws_url, fault_seconds, result.hostile_closes,
                             hostiles)  # fmt: skip
                current["fault"] = ""

        async def sampler() -> None:
            last = loop.time()
            while True:
                await asyncio.sleep(sample_every)
                now = loop.time()
                lat = window(chatters, last)
                seen = gauges(hub.url)
                sample = Sample(
                    t=round(now - started, 1), rss_mb=round(rss_mb(hub.pid), 1),
                    fds=open_fds(hub.pid), open_connections=seen["open_connections"],
                    tasks=seen["asyncio_tasks"], acks=len(lat), p50_ms=round(pct(lat, 50), 2), p99_ms=round(pct(lat, 99), 2),
                    fault=current["fault"],
                )  # fmt: skip
                result.samples.append(sample)
                last = now
                if echo:
                    print(" ".join(f"{k}={v}" for k, v in asdict(sample).items()), flush=True)

        background = [asyncio.ensure_future(faults()), asyncio.ensure_future(sampler())]
        try:
            await asyncio.sleep(seconds)
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            proxy.clear()
        # Settle: faults off, every chatter connected again; one last sample of the quiet hub.
        await asyncio.sleep(max(3.0, sample_every))
        lat = window(chatters, loop.time() - 3.0)
        seen = gauges(hub.url)
        result.samples.append(Sample(
            t=round(loop.time() - started, 1), rss_mb=round(rss_mb(hub.pid), 1),
            fds=open_fds(hub.pid), open_connections=seen["open_connections"],
            tasks=seen["asyncio_tasks"], acks=len(lat),
            p50_ms=round(pct(lat, 50), 2), p99_ms=round(pct(lat, 99), 2), fault="end",
        ))  # fmt: skip
        for chatter in chatters:
            chatter.quiet()
        deadline = loop.time() + 60
        while any(c.degraded for c in chatters) and loop.time() < deadline:
            await asyncio.sleep(0.1)
        for chatter in chatters:
            await chatter.stop()
        await record_final_history(hub.ws_url, ROOMS, recorder)
        await proxy.stop()
        await hub.stop()
    verdict = check_history(recorder)
    frames = recorder.frames()
    result.valid = verdict.valid
    result.verdict = repr(verdict) if not verdict.valid else str(verdict.counts)
    result.acks, result.sends = len(frames["acks"]), len(frames["sends"])
    result.reconnects = sum(c.incarnation - 1 for c in chatters)
    return result


def write_csv(samples: list[Sample], path: Path) -> None:
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(asdict(samples[0])))
        writer.writeheader()
        writer.writerows(asdict(s) for s in samples)


def plot(samples: list[Sample], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s.t / 60 for s in samples]
    fig, axes = plt.subplots(5, 1, figsize=(9, 11), sharex=True)
    panels: list[tuple[str, list[Any]]] = [
        ("RSS (MB)", [s.rss_mb for s in samples]),
        ("open fds", [s.fds for s in samples]),
        ("open connections", [s.open_connections for s in samples]),
        ("event-loop tasks", [s.tasks for s in samples]),
        ("ack p99 (ms)", [s.p99_ms for s in samples]),  # p50 added below
    ]
    for ax, (label, values) in zip(axes, panels, strict=True):
        ax.plot(t, values, marker=".", linewidth=1, label="p99" if label.startswith("ack") else None)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        for s in samples:  # shade the samples taken while a fault was on
            if s.fault and s.fault != "end":
                ax.axvspan(s.t / 60 - 0.04, s.t / 60 + 0.04, color="tab:red", alpha=0.12)
    axes[-1].plot(t, [s.p50_ms for s in samples], marker=".", linewidth=1, label="p50")
    axes[-1].set_ylabel("ack latency (ms)")
    axes[-1].legend(loc="upper right")
    axes[-1].set_xlabel("minutes (red: a fault was on)")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def read_csv(path: Path) -> list[Sample]:
    with path.open() as source:
        return [Sample(t=float(r["t"]), rss_mb=float(r["rss_mb"]), fds=int(r["fds"]),
                       open_connections=int(r["open_connections"]),
                       tasks=int(r.get("tasks", -1)), acks=int(r["acks"]),
                       p50_ms=float(r["p50_ms"]), p99_ms=float(r["p99_ms"]), fault=r["fault"])
                for r in csv.DictReader(source)]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replot", metavar="TITLE", help="only redraw --plot from --csv")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--pause", type=float, default=0.1, help="seconds between a client's messages")
    parser.add_argument("--fault-every", type=float, default=30.0)
    parser.add_argument("--hostiles", type=int, default=3, help="one of each flood kind at 3")
    parser.add_argument("--csv", type=Path, default=Path("soak.csv"))
    parser.add_argument("--plot", type=Path, default=Path("soak.png"))
    args = parser.parse_args()
    if args.replot:
        plot(read_csv(args.csv), args.plot, args.replot)
        return
    began = time.time()
    result = asyncio.run(soak(args.minutes * 60, clients=args.clients, pause=args.pause,
                              fault_every=args.fault_every, hostiles=args.hostiles))  # fmt: skip
    write_csv(result.samples, args.csv)
    first, last = result.samples[0], result.samples[-1]
    title = (f"soak {args.minutes:g} min, {args.clients} clients, faults every "
             f"{args.fault_every:g} s: {result.acks} acks, history "
             f"{'valid' if result.valid else 'INVALID'}")  # fmt: skip
    plot(result.samples, args.plot, title)
    print(f"{title}\n  took {time.time() - began:.0f} s; sends {result.sends}, reconnects "
          f"{result.reconnects}, hostile closes {result.hostile_closes}\n"
          f"  RSS {first.rss_mb} -> {last.rss_mb} MB (max {max(s.rss_mb for s in result.samples)}), "
          f"fds {first.fds} -> {last.fds} (max {max(s.fds for s in result.samples)}), "
          f"tasks {first.tasks} -> {last.tasks} (max {max(s.tasks for s in result.samples)})\n"
          f"  verdict {result.verdict}\n  wrote {args.csv} and {args.plot}")  # fmt: skip


if __name__ == "__main__":
    main()
