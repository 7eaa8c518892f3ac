"""Load for ``bench_scale.py``: a process of ``websockets`` clients, told what to do on stdin.

Two roles:

- **receivers** (default): open ``--count`` connections (``--concurrency`` handshakes at a time),
  each with its own JWT, wait for ``--greet`` messages on each (the hub's ``system:connected`` and
  ``presence:snapshot``; the baseline's greeting), print ``{"ready": n, "seconds": s}``. With
  ``--expect M`` they then count ``M`` chat messages on every connection, timing each from the
  send time it carries, write the latencies to ``--latencies`` (raw doubles) and print
  ``{"done": deliveries}``. They close when stdin closes.
- **sender** (``--send M --rate R``): one connection; on a line on stdin, sends ``M`` chat
  messages to the lobby at ``R`` a second, each carrying its send time, and prints
  ``{"sent": M}``.

Everything a client does is what any client would: real WebSocket connections over loopback.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import json
import sys
import time

import jwt
from websockets.asyncio.client import ClientConnection, connect


def token(secret: str, user: str) -> str:
    """A token both servers accept: HS256, ``sub``, ``username``, an hour to live."""
    now = int(time.time())
    claims = {"sub": user, "username": user, "iat": now, "exp": now + 3600}
    return jwt.encode(claims, secret, algorithm="HS256")


async def open_one(url: str, secret: str, user: str, greet: int) -> ClientConnection:
    ws = await connect(
        url,
        additional_headers={"Authorization": f"Bearer {token(secret, user)}"},
        compression=None,
        max_queue=None,
        open_timeout=60,
        ping_interval=None,
    )
    for _ in range(greet):
        await ws.recv()
    return ws


async def receivers(args: argparse.Namespace) -> None:
    gate = asyncio.Semaphore(args.concurrency)

    async def opened(i: int) -> ClientConnection:
        async with gate:
            return await open_one(args.url, args.secret, f"{args.prefix}{i}", args.greet)

    started = time.perf_counter()
    conns = await asyncio.gather(*(opened(i) for i in range(args.first, args.first + args.count)))
    print(json.dumps({"ready": len(conns), "seconds": time.perf_counter() - started}), flush=True)
    latencies = array.array("d")

    async def count(ws: ClientConnection) -> None:
        got = 0
        while got < args.expect:
            raw = await ws.recv()
            now = time.time()
            if '"chat:message"' not in raw:
                continue  # acks, presence
            content = json.loads(raw)["content"]
            latencies.append(now - float(content.split(" ", 2)[1]))
            got += 1

    if args.expect:
        await asyncio.gather(*(count(ws) for ws in conns))
        with open(args.latencies, "wb") as out:
            latencies.tofile(out)
        print(json.dumps({"done": len(latencies)}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True)


async def sender(args: argparse.Namespace) -> None:
    ws = await open_one(args.url, args.secret, f"{args.prefix}sender", args.greet)
    print(json.dumps({"ready": 1}), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)
    pad = "x" * max(0, args.size - 40)
    interval = 1.0 / args.rate
    start = time.perf_counter()

    async def drain() -> None:
        async for _ in ws:  # acks and our own messages: read them so nothing backs up
            pass

    reader = asyncio.ensure_future(drain())
    for i in range(args.send):
        delay = start + i * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        content = f"{i} {time.time():.6f} {pad}"
        await ws.send(json.dumps({"type": "chat:message", "room": "lobby", "content": content}))
    print(json.dumps({"sent": args.send}), flush=True)
    await loop.run_in_executor(None, sys.stdin.read)
    reader.cancel()
    await ws.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--prefix", default="u")
    parser.add_argument("--greet", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--expect", type=int, default=0)
    parser.add_argument("--latencies", default="")
    parser.add_argument("--send", type=int, default=0)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--size", type=int, default=100)
    args = parser.parse_args()
    asyncio.run(sender(args) if args.send else receivers(args))


if __name__ == "__main__":
    main()
