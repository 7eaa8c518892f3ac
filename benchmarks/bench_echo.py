"""Echo round trips: wslab's own engine against the hub's engine on ``websockets``, and picows.

Each server runs in its own process and echoes every message back; this process is the client:
one connection per server, one message in flight at a time (send, wait for the echo, send the
next), 64 B text and 64 KiB binary messages. The servers are

- ``wslab`` — the hub's default engine (``engine="wslab"``) running
  :func:`wslab.infrastructure.echo.echo_handler`;
- ``websockets`` — the same handler on the hub's ``engine="websockets"`` (the baseline);
- ``bare-ws`` — a bare ``websockets`` library echo server (what the adapter costs);
- ``picows`` — picows (a Cython WebSocket library for asyncio), the ceiling, if installed
  (``pip install "wslab[bench]"``).

Compression is off everywhere (picows has none). Rounds alternate between the servers (the
order rotates each round, so a noisy neighbour hurts all alike); each round is ``--count`` round
trips on one server. It reports, per server and size, the median over rounds of the time per
round trip and of the **server's CPU per round trip** (from ``/proc/PID/schedstat``, which the
client's cost does not dilute), and the ratios of wslab's engine to each (above 1.0: wslab's
engine is faster)::

    python benchmarks/bench_echo.py [--quick] [--rounds R] [--count N] [--client websockets|picows]

A measurement, not a test: the numbers depend on the machine, so nothing asserts on them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field

KIB = 1024
SIZES = {"64 B": 64, "64 KiB": 64 * KIB}
SERVERS = ("wslab", "websockets", "bare-ws", "picows")
BASELINE = "websockets"
TARGET = 1.0  # wslab's engine against the hub's websockets engine, round trips per second
HAVE_PICOWS = importlib.util.find_spec("picows") is not None


# -- the servers, each run in its own process by ``--serve NAME`` ---------------------------------


async def _serve_hub_engine(engine: str) -> tuple[int, object]:
    from wslab.infrastructure.connection import ConnectionLimits
    from wslab.infrastructure.echo import echo_handler
    from wslab.infrastructure.engines import serve

    limits = ConnectionLimits(max_message_size=1 << 20, compression=None)
    server = await serve(echo_handler, "127.0.0.1", 0, engine=engine, limits=limits)
    return server.port, server


async def _serve_bare_websockets() -> tuple[int, object]:
    from websockets.asyncio.server import serve

    async def echo(ws: object) -> None:
        async for message in ws:  # type: ignore[attr-defined]
            await ws.send(message)  # type: ignore[attr-defined]

    server = await serve(echo, "127.0.0.1", 0, compression=None, max_size=1 << 20)
    return server.sockets[0].getsockname()[1], server


async def _serve_picows() -> tuple[int, object]:
    from picows import WSListener, WSMsgType, ws_create_server

    class Echo(WSListener):  # type: ignore[misc]
        def on_ws_frame(self, transport: object, frame: object) -> None:
            if frame.msg_type == WSMsgType.CLOSE:  # type: ignore[attr-defined]
                transport.send_close(frame.get_close_code())  # type: ignore[attr-defined]
                transport.disconnect()  # type: ignore[attr-defined]
            elif frame.msg_type in (WSMsgType.TEXT, WSMsgType.BINARY):  # type: ignore[attr-defined]
                transport.send(frame.msg_type, frame.get_payload_as_bytes())  # type: ignore[attr-defined]

    server = await ws_create_server(lambda _request: Echo(), "127.0.0.1", 0)
    return server.sockets[0].getsockname()[1], server


async def serve_forever(name: str) -> None:
    """Start server ``name``, print its port, and run until SIGTERM (no helper thread: a thread
    blocked on stdin would show in the profiles)."""
    if name in ("wslab", "websockets"):
        port, _server = await _serve_hub_engine(name)
    elif name == "bare-ws":
        port, _server = await _serve_bare_websockets()
    else:
        port, _server = await _serve_picows()
    print(port, flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()


# -- the client -----------------------------------------------------------------------------------


def server_cpu_ns(pid: int) -> int:
    """CPU time the process's main thread has run, in ns (schedstat; stat's ticks as a fallback)."""
    try:
        with open(f"/proc/{pid}/schedstat", encoding="ascii") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * 10**9 // os.sysconf("SC_CLK_TCK")


class Client:
    """One connection that sends a message and waits for its echo: ``await round_trip()``."""

    async def open(self, url: str) -> None: ...
    async def round_trip(self, payload: bytes | str) -> None: ...
    async def close(self) -> None: ...


class WebsocketsClient(Client):
    """The ``websockets`` library's asyncio client (what the issue's measurements use)."""

    async def open(self, url: str) -> None:
        from websockets.asyncio.client import connect

        self.ws = await connect(url, compression=None, max_size=1 << 20)

    async def round_trip(self, payload: bytes | str) -> None:
        await self.ws.send(payload)
        await self.ws.recv()

    async def close(self) -> None:
        await self.ws.close()


class PicowsClient(Client):
    """picows' client, the cheapest there is, so the servers' differences show more."""

    async def open(self, url: str) -> None:
        from picows import WSCloseCode, WSListener, WSMsgType, ws_connect

        client = self

        class Listener(WSListener):  # type: ignore[misc]
            def on_ws_frame(self, transport: object, frame: object) -> None:
                if frame.msg_type in (WSMsgType.TEXT, WSMsgType.BINARY) and frame.fin:  # type: ignore[attr-defined]
                    waiter = client.waiter
                    if waiter is not None and not waiter.done():
                        waiter.set_result(None)

        self.msg_type = WSMsgType
        self.normal_closure = WSCloseCode.OK
        self.waiter: asyncio.Future[None] | None = None
        self.transport, _ = await ws_connect(Listener, url)

    async def round_trip(self, payload: bytes | str) -> None:
        self.waiter = asyncio.get_running_loop().create_future()
        if isinstance(payload, str):
            self.transport.send(self.msg_type.TEXT, payload.encode())
        else:
            self.transport.send(self.msg_type.BINARY, payload)
        await self.waiter

    async def close(self) -> None:
        self.transport.send_close(self.normal_closure)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.transport.wait_disconnected(), 2)


@dataclass
class Samples:
    """Per-round figures of one server at one size, in µs per round trip."""

    rtt: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


def payload_of(size: int) -> bytes | str:
    # Chat-sized messages are text; large ones binary, as a file transfer would be.
    return "x" * size if size < KIB else os.urandom(size)


async def measure(
    servers: dict[str, tuple[int, int]], rounds: int, counts: dict[str, int], client_kind: str
) -> dict[tuple[str, str], Samples]:
    """Alternate rounds between the servers; return the samples per (server, size)."""
    make = PicowsClient if client_kind == "picows" else WebsocketsClient
    clients: dict[str, Client] = {}
    for name, (port, _pid) in servers.items():
        clients[name] = make()
        await clients[name].open(f"ws://127.0.0.1:{port}/")
    results = {(n, s): Samples() for n in servers for s in SIZES}
    names = list(servers)
    try:
        for label, size in SIZES.items():
            payload = payload_of(size)
            for name in names:  # warm up each connection (allocator, caches)
                for _ in range(max(10, counts[label] // 10)):
                    await clients[name].round_trip(payload)
            for r in range(rounds):
                order = names[r % len(names) :] + names[: r % len(names)]
                for name in order:
                    pid = servers[name][1]
                    client = clients[name]
                    count = counts[label]
                    cpu0, t0 = server_cpu_ns(pid), time.perf_counter()
                    for _ in range(count):
                        await client.round_trip(payload)
                    elapsed, cpu = time.perf_counter() - t0, server_cpu_ns(pid) - cpu0
                    results[name, label].rtt.append(elapsed / count * 1e6)
                    results[name, label].cpu.append(cpu / count / 1e3)
    finally:
        for client in clients.values():
            with contextlib.suppress(Exception):
                await client.close()
    return results


def start_servers(names: list[str]) -> tuple[dict[str, tuple[int, int]], list[subprocess.Popen]]:
    """Each server in its own process; returns name -> (port, pid)."""
    procs: list[subprocess.Popen] = []
    servers: dict[str, tuple[int, int]] = {}
    for name in names:
        proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--serve", name],
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        line = proc.stdout.readline() if proc.stdout else ""
        if not line.strip().isdigit():
            raise SystemExit(f"bench_echo: the {name} server did not start")
        servers[name] = (int(line), proc.pid)
    return servers, procs


def stop_servers(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def ratio(own: float, other: float) -> float:
    """Throughput of wslab's engine over ``other``'s (times per round trip, inverted)."""
    return other / own if own > 0 else math.nan


def report(results: dict[tuple[str, str], Samples], names: list[str]) -> str:
    lines = [
        f"{'size':7} {'server':11} {'RTT us':>8} {'rt/s':>8} {'srv CPU us':>10} "
        f"{'wslab x (RTT)':>13} {'wslab x (CPU)':>13}",
        "-" * 76,
    ]
    verdicts = []
    for label in SIZES:
        own = results["wslab", label]
        own_rtt, own_cpu = statistics.median(own.rtt), statistics.median(own.cpu)
        for name in names:
            s = results[name, label]
            rtt, cpu = statistics.median(s.rtt), statistics.median(s.cpu)
            lines.append(
                f"{label:7} {name:11} {rtt:8.1f} {1e6 / rtt:8.0f} {cpu:10.1f} "
                f"{ratio(own_rtt, rtt):13.2f} {ratio(own_cpu, cpu):13.2f}"
            )
        base = statistics.median(results[BASELINE, label].rtt)
        got = ratio(own_rtt, base)
        verdicts.append(
            f"{label}: wslab / websockets engine = {got:.2f}x round trips/s "
            f"(target >= {TARGET:.1f}x: {'met' if got >= TARGET else 'NOT met'})"
        )
        if "picows" in names:
            ceiling = ratio(own_rtt, statistics.median(results["picows", label].rtt))
            verdicts.append(f"{label}: wslab / picows = {ceiling:.2f}x round trips/s")
    return "\n".join([*lines, "", *verdicts])


def cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", choices=SERVERS, help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2 rounds, few trips")
    parser.add_argument("--rounds", type=int, help="rounds per server and size [default: 9]")
    parser.add_argument("--count", type=int, help="64 B round trips per round [default: 2000]")
    parser.add_argument(
        "--client", choices=("websockets", "picows"), default="websockets",
        help="the client library [default: websockets]",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(serve_forever(args.serve))
        return 0
    if args.client == "picows" and not HAVE_PICOWS:
        parser.error("--client picows needs picows: pip install 'wslab[bench]'")
    rounds = args.rounds or (2 if args.quick else 9)
    small = args.count or (50 if args.quick else 2000)
    counts = {"64 B": small, "64 KiB": max(10, small // 4)}
    names = [n for n in SERVERS if n != "picows" or HAVE_PICOWS]
    from wslab.foundation import frames

    # Without the C extension wslab unmasks in Python: 64 KiB echoes would measure that alone.
    speedups = (
        "built"
        if frames._apply_mask_c is not None
        else "NOT built (python setup.py build_ext --inplace)"
    )
    print(
        f"echo round trips, one in flight; {os.cpu_count()} CPUs ({cpu_model()}), "
        f"Python {platform.python_version()}; C speedups: {speedups}; client: {args.client}; "
        f"{rounds} rounds x {counts['64 B']} (64 B) / {counts['64 KiB']} (64 KiB) round trips"
        + ("" if HAVE_PICOWS else "; picows not installed (pip install 'wslab[bench]')")
    )
    servers, procs = start_servers(names)
    try:
        results = asyncio.run(measure(servers, rounds, counts, args.client))
    finally:
        stop_servers(procs)
    print(report(results, names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
