"""How many WebSocket handshakes per second does wslab's server complete, next to websockets?

In one run and on the same machine: a bare ``websockets`` server and wslab's own server
(``wslab.infrastructure.engines.wslab.serve``, a handler that just waits for the close) each take
``--count`` sequential connect + close-handshake cycles from a websockets client on loopback.
Prints handshakes/s for both and wslab's as a ratio to websockets'. ``--profile`` runs the
wslab side under cProfile and prints the top functions by cumulative time.

    python benchmarks/bench_handshake.py [--count N] [--profile]

A measurement, not a test: the numbers depend on the machine, so nothing here asserts on them.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import time
from typing import Any

import websockets
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import serve as ws_serve

from wslab.infrastructure.engines.wslab import serve as wslab_serve


async def cycles(port: int, count: int) -> float:
    """Handshakes per second for ``count`` sequential connect/close cycles to ``port``."""
    start = time.perf_counter()
    for _ in range(count):
        async with ws_connect(f"ws://127.0.0.1:{port}/ws", compression=None):
            pass
    return count / (time.perf_counter() - start)


async def bare_websockets(count: int) -> float:
    async def handler(ws: Any) -> None:
        await ws.wait_closed()

    async with ws_serve(handler, "127.0.0.1", 0, compression=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        await cycles(port, min(count, 50))  # warm-up
        return await cycles(port, count)


async def wslab(count: int, profiler: cProfile.Profile | None) -> float:
    async def handler(connection: Any) -> None:
        async for _ in connection:
            pass

    server = await wslab_serve(handler, "127.0.0.1", 0)
    try:
        await cycles(server.port, min(count, 50))
        if profiler is not None:
            profiler.enable()
        try:
            return await cycles(server.port, count)
        finally:
            if profiler is not None:
                profiler.disable()
    finally:
        await server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500, help="handshakes per server")
    parser.add_argument("--profile", action="store_true", help="cProfile the wslab side")
    args = parser.parse_args()
    profiler = cProfile.Profile() if args.profile else None
    theirs = asyncio.run(bare_websockets(args.count))
    ours = asyncio.run(wslab(args.count, profiler))
    print(f"websockets {websockets.__version__}: {theirs:8.0f} handshakes/s")
    print(f"wslab                 : {ours:8.0f} handshakes/s")
    print(f"ratio wslab/websockets: {ours / theirs:8.2f}")
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()
