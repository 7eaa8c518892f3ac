"""What permessage-deflate costs and saves on a hub's fan-out, next to no compression.

In one run, on one machine, wslab's own server holds ``--clients`` connections in one room and
broadcasts ``--messages`` chat-sized JSON messages to all of them, in three modes:

- ``off``            — no extension: one shared, uncompressed frame per broadcast (the baseline);
- ``takeover``       — permessage-deflate with context takeover (the default): every connection's
  window remembers its past messages, so each message is compressed once *per connection*;
- ``no-takeover``    — ``server_no_context_takeover``: every message starts from an empty window,
  so the hub compresses it once and shares the frame (``Prepared.compressed``).

The clients are raw sockets that complete the handshake and then only count the bytes they read,
so what is measured is the server's side alone. For each mode it reports the CPU time of the
``broadcast`` calls per message (compressing and writing to every socket), the bytes written per
message and per receiver, the process's resident memory per open connection after traffic (zlib
state included: it lives outside Python's allocator), and the zlib memory wslab counts for it
(``Deflater.memory`` + ``Inflater.memory``). Ratios are to ``off`` in the same run.

    python benchmarks/bench_deflate.py [--clients N] [--messages M]

A measurement, not a test: nothing here asserts on the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

from wslab.foundation import handshake
from wslab.foundation.deflate import DeflateSettings
from wslab.infrastructure.connection import Connection, ConnectionLimits
from wslab.infrastructure.engines.wslab import serve
from wslab.infrastructure.manager import ConnectionManager

MODES: dict[str, DeflateSettings | None] = {
    "off": None,
    "takeover": DeflateSettings(),
    "no-takeover": DeflateSettings(no_context_takeover=True),
}
OFFER = "permessage-deflate; client_max_window_bits"


def chat_messages(count: int) -> list[str]:
    """Chat envelopes as the hub sends them: similar keys, varied text (seeded)."""
    rng = random.Random(7)
    words = ["hello", "there", "the", "meeting", "moved", "to", "three", "o'clock", "see"]
    return [
        json.dumps(
            {
                "type": "chat:message",
                "room": "lobby",
                "seq": n + 1,
                "id": f"{rng.getrandbits(64):016x}",
                "user": {
                    "id": f"u{rng.randrange(500)}",
                    "username": f"student{rng.randrange(500)}",
                },
                "text": " ".join(rng.choice(words) for _ in range(rng.randrange(4, 30))),
                "ts": f"2026-12-03T09:{n // 60 % 60:02d}:{n % 60:02d}.{rng.randrange(1000):03d}Z",
            }
        )
        for n in range(count)
    ]


class Sink(asyncio.Protocol):
    """A client that upgrades, then reads and counts everything, never decoding a frame."""

    def __init__(self) -> None:
        self.upgraded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.head = b""
        self.received = 0

    def data_received(self, data: bytes) -> None:
        if self.upgraded.done():
            self.received += len(data)
            return
        self.head += data
        if b"\r\n\r\n" in self.head:
            head, _, rest = self.head.partition(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 101"):
                self.upgraded.set_exception(RuntimeError(head.decode(errors="replace")))
                return
            self.received += len(rest)
            self.upgraded.set_result(None)


def rss() -> int:
    """Resident memory of this process in bytes (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@dataclass
class Result:
    mode: str
    cpu_per_message: float  # seconds, the broadcast calls only
    bytes_per_message: int  # written to all receivers
    rss_per_connection: float  # bytes
    zlib_per_connection: float  # bytes, as wslab counts it


async def run_mode(mode: str, clients: int, messages: list[str]) -> Result:
    held: list[Connection] = []

    async def hold(connection: Connection) -> None:
        held.append(connection)
        await connection.wait_closed()

    limits = ConnectionLimits(compression=MODES[mode], max_queue=4096, max_queue_bytes=64 << 20)
    loop = asyncio.get_running_loop()
    gc.collect()
    before = rss()
    async with await serve(hold, limits=limits) as server:
        sinks: list[Sink] = []
        transports: list[asyncio.BaseTransport] = []
        for _ in range(clients):
            transport, sink = await loop.create_connection(Sink, "127.0.0.1", server.port)
            request, _ = handshake.build_upgrade_request(
                f"127.0.0.1:{server.port}", "/", extensions=OFFER
            )
            transport.write(request)  # type: ignore[attr-defined]
            await sink.upgraded
            sinks.append(sink)
            transports.append(transport)
        while len(held) < clients:
            await asyncio.sleep(0.01)
        manager = ConnectionManager()
        for connection in held:
            manager.add(connection)
            manager.join(connection, "room")
        cpu = 0.0
        for n, message in enumerate(messages):
            start = time.process_time()
            manager.broadcast(message, "room")
            cpu += time.process_time() - start
            if n % 10 == 9:
                await asyncio.sleep(0)  # let the sinks read, as a live hub would
        expected_min = len(messages) * clients * 2
        while sum(s.received for s in sinks) < expected_min:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        written = sum(c.stats.bytes_out for c in held)
        gc.collect()
        after = rss()
        zlib_bytes = sum(
            (c.protocol.deflater.memory if c.protocol.deflater else 0)  # type: ignore[attr-defined]
            + (c.protocol.inflater.memory if c.protocol.inflater else 0)  # type: ignore[attr-defined]
            for c in held
        )
        for transport in transports:
            transport.close()
    return Result(
        mode,
        cpu / len(messages),
        written // len(messages),
        (after - before) / clients,
        zlib_bytes / clients,
    )


def run_in_fresh_process(mode: str, clients: int, count: int) -> Result:
    """One mode in a process of its own, so its memory is not the previous mode's leftovers."""
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--clients",
            str(clients),
            "--messages",
            str(count),
            "--mode",
            mode,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return Result(**json.loads(out.splitlines()[-1]))


async def one_mode(mode: str, clients: int, count: int) -> None:
    messages = chat_messages(count)
    await run_mode(mode, min(clients, 20), messages[:20])  # warm-up: first-use allocations
    print(json.dumps(asdict(await run_mode(mode, clients, messages))))


def main(clients: int, count: int) -> None:
    messages = chat_messages(count)
    size = sum(len(m.encode()) for m in messages) / len(messages)
    print(f"{clients} receivers, {count} broadcasts of {size:.0f}-byte chat messages (average)\n")
    results = [run_in_fresh_process(mode, clients, count) for mode in MODES]
    base = results[0]
    header = (
        f"{'mode':<12} {'CPU/msg':>10} {'x off':>6} {'bytes/msg':>11} {'x off':>6} "
        f"{'RSS/conn':>10} {'zlib/conn':>10}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.mode:<12} {r.cpu_per_message * 1e6:>8.0f}us "
            f"{r.cpu_per_message / base.cpu_per_message:>6.2f} "
            f"{r.bytes_per_message:>11,} {r.bytes_per_message / base.bytes_per_message:>6.2f} "
            f"{r.rss_per_connection / 1024:>8.1f}Ki {r.zlib_per_connection / 1024:>8.1f}Ki"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--mode", choices=list(MODES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        asyncio.run(one_mode(args.mode, args.clients, args.messages))
    else:
        main(args.clients, args.messages)
