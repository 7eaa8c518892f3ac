"""Does one hostile connection hurt everyone else? Well-behaved latency with and without floods.

A hub runs as its own process (``wslab serve --no-auth``, SQLite in a temp folder). Five
well-behaved clients each send a chat message every 100 ms and time the hub's ``ack``. Three
phases of ``--seconds`` each: quiet; one hostile connection; ten. The hostile connections are
guests like the others and cycle through the cheap floods: endless empty continuation frames, a
message in 2-byte fragments, and pings (each writes as fast as its socket takes it). The whole
run is done twice, side by side: with the hub's fair-reading defaults, and with them lifted
(frame budget and fragment cap out of reach) as the baseline.

Reported per phase: well-behaved p50/p99 of the ack round trip, how many well-behaved clients the
hub closed (must be 0), and p99 as a ratio of the quiet phase (the target: within 2x).

    python benchmarks/bench_fairness.py [--seconds S]

A measurement, not a test: nothing here asserts on the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

from wslab.foundation.codes import Opcode
from wslab.foundation.frames import Frame, encode_frame
from wslab.infrastructure.connection import Connection
from wslab.infrastructure.engines.wslab import connect

URL = re.compile(r"\b(http://127\.0\.0\.1:\d+)")
LIFTED = {  # the baseline: fairness out of reach
    "WSLAB_MAX_FRAMES_PER_SECOND": "1e12",
    "WSLAB_FRAME_BURST": str(10**12),
    "WSLAB_MAX_FRAGMENTS_PER_MESSAGE": str(10**9),
}


@contextlib.contextmanager
def hub_process(extra_env: dict[str, str]) -> Iterator[str]:
    """A ``wslab serve`` process of its own; yields its ws:// URL."""
    with tempfile.TemporaryDirectory() as folder:
        # Every client here shares 127.0.0.1, so the polite ones connect before the floods
        # start: the flooders' reconnects then meet the per-IP connection rate (60/min), as a
        # real attacker's address would.
        env = {**os.environ, **extra_env, "WSLAB_RATE_MESSAGES_PER_SECOND": "50"}
        process = subprocess.Popen(
            [sys.executable, "-m", "wslab.cli", "serve", "--port", "0", "--no-auth",
             "--db", f"sqlite:///{folder}/chat.db"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
        )  # fmt: skip
        try:
            assert process.stdout is not None
            for line in process.stdout:
                match = URL.search(line)
                if match:
                    break
            else:
                raise RuntimeError("wslab serve did not start")
            yield match.group(1).replace("http://", "ws://") + "/ws"
        finally:
            process.terminate()
            process.wait(10)


def flood(kind: int) -> bytes:
    """One write of a hostile client's flood (each is sent over and over)."""
    key = os.urandom(4)
    if kind == 0:  # empty continuation frames after an opening fragment
        return encode_frame(Frame(Opcode.CONT, b"", False), key) * 4000
    if kind == 1:  # a message in 2-byte fragments
        return encode_frame(Frame(Opcode.CONT, b"ab", False), key) * 4000
    return encode_frame(Frame(Opcode.PING, b"p"), key) * 4000  # pings


async def hostile(url: str, kind: int, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            connection = await connect(url)
        except Exception:
            await asyncio.sleep(0.1)
            continue
        transport = connection.transport  # type: ignore[attr-defined]
        if kind in (0, 1):
            transport.write(encode_frame(Frame(Opcode.BINARY, b"x", False), os.urandom(4)))
        data = flood(kind)
        while not stop.is_set() and not connection.closed:
            if transport.get_write_buffer_size() < 1 << 20:
                transport.write(data)
            await asyncio.sleep(0.005)
        connection.abort()  # closed by the hub (as it should be): come back, as a flooder would


async def polite(
    connection: Connection, stop: asyncio.Event, rtts: list[float], closed: list[int]
) -> None:
    refs = itertools.count()
    try:
        while not stop.is_set():
            ref = f"r{next(refs)}"
            sent = time.perf_counter()
            await connection.send(json.dumps({"type": "chat:message", "content": "hi", "ref": ref}))
            while True:
                reply = json.loads(await connection.recv())
                if reply.get("ref") == ref:
                    break
            rtts.append(time.perf_counter() - sent)
            await asyncio.sleep(0.1)
    except Exception:
        closed.append(connection.close_code or 1006)


async def phase(
    url: str, connections: list[Connection], hostiles: int, seconds: float
) -> tuple[list[float], int]:
    stop = asyncio.Event()
    rtts: list[float] = []
    closed: list[int] = []
    floods = None
    if hostiles:
        floods = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--flood", url, "--hostiles", str(hostiles),
            "--seconds", str(seconds + 1),
        )  # fmt: skip
        await asyncio.sleep(0.5)  # the floods are on before we measure
    tasks = [asyncio.create_task(polite(c, stop, rtts, closed)) for c in connections]
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    if floods is not None:
        await floods.wait()
    return rtts, len(closed)


async def floods(url: str, hostiles: int, seconds: float) -> None:
    """The hostile side of a phase (run in its own process by :func:`phase`)."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(hostile(url, n % 3, stop)) for n in range(hostiles)]
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else float("nan")


async def run(label: str, env: dict[str, str], seconds: float) -> None:
    with hub_process(env) as url:
        # Connected once for the whole run, before any flood: every client shares 127.0.0.1,
        # and the flooders' reconnects exhaust that address's connection rate (60/min), as a
        # real attacker's address would; the polite clients must not be refused for it.
        connections = [await connect(url) for _ in range(5)]
        for connection in connections:
            json.loads(await connection.recv())  # system:connected
        quiet_p99 = None
        for hostiles in (0, 1, 10):
            alive = [c for c in connections if not c.closed]
            rtts, closed = await phase(url, alive, hostiles, seconds)
            p50, p99 = p(rtts, 50) * 1000, p(rtts, 99) * 1000
            quiet_p99 = quiet_p99 or p99
            print(
                f"{label:<10} {hostiles:>3} hostile  acks {len(rtts):>4}  p50 {p50:7.1f} ms  "
                f"p99 {p99:8.1f} ms  x quiet {p99 / quiet_p99:6.2f}  polite closed {closed}"
            )


async def main(seconds: float) -> None:
    await run("fair", {}, seconds)
    await run("baseline", LIFTED, seconds)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--flood", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--hostiles", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.flood:
        asyncio.run(floods(args.flood, args.hostiles, args.seconds))
    else:
        asyncio.run(main(args.seconds))
