"""What one idle connection costs the hub, item by item: ``tracemalloc`` and RSS at N connections.

The hub runs in this process, as ``wslab serve`` builds it (authentication on, SQLite store,
in-process broker, the event log at its default level, JSON logs to ``/dev/null``), with
``tracemalloc`` tracing; ``--connections`` real ``websockets`` clients in another process
(``scale_clients.py``) connect, each with its own JWT, and wait for ``system:connected`` and the
lobby's ``presence:snapshot``. Then the memory allocated since just before they connected is
grouped by where it was allocated and divided by N:

    python benchmarks/bench_idle_memory.py --connections 1000            # top 25 by line
    python benchmarks/bench_idle_memory.py --group traceback --frames 6  # by call chain
    python benchmarks/bench_idle_memory.py --group filename

It also prints the hub's asyncio task count and the RSS delta per connection (``VmRSS``; with
tracing on it includes tracemalloc's own bookkeeping, so compare RSS with ``bench_scale.py``).
A measurement, not a test: nothing here asserts on the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import secrets
import subprocess
import sys
import tempfile
import tracemalloc
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_scale import HUB_ENV, rss_bytes  # noqa: E402


async def _line(process: asyncio.subprocess.Process) -> dict[str, object]:
    assert process.stdout is not None
    raw = await process.stdout.readline()
    if not raw:
        raise RuntimeError("the load process stopped")
    return dict(json.loads(raw))


async def _clients(url: str, secret: str, prefix: str, count: int) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(HERE / "scale_clients.py"), "--url", url, "--secret", secret,
        "--prefix", prefix, "--count", str(count), "--greet", "2",
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    await _line(process)
    return process


async def _stop(process: asyncio.subprocess.Process) -> None:
    assert process.stdin is not None
    process.stdin.close()
    await process.wait()


async def measure(args: argparse.Namespace) -> None:
    os.environ.update(HUB_ENV)
    from wslab.hub import Hub
    from wslab.infrastructure.logs import configure_logging

    secret = secrets.token_hex(32)
    folder = tempfile.mkdtemp()
    hub = Hub(jwt_secret=secret, port=0, database=f"sqlite:///{folder}/chat.db")
    sink = open(os.devnull, "w")  # noqa: SIM115 - the whole run's log sink
    configure_logging("info", json=True, stream=sink)
    await hub.__aenter__()
    try:
        # Warm-up: the first connections' lazy imports and caches are not per-connection cost.
        await _stop(await _clients(hub.ws_url, secret, "warm", 5))
        await asyncio.sleep(0.5)
        gc.collect()
        tracemalloc.start(args.frames)
        rss0 = rss_bytes(os.getpid())
        before = tracemalloc.take_snapshot()
        tasks0 = len(asyncio.all_tasks())
        load = await _clients(hub.ws_url, secret, "u", args.connections)
        await asyncio.sleep(1.0)  # the last presence work of the connections settles
        gc.collect()
        after = tracemalloc.take_snapshot()
        rss = rss_bytes(os.getpid()) - rss0
        tasks = len(asyncio.all_tasks()) - tasks0
        n = args.connections
        held = len(hub.server.connections)
        stats = after.filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)]).compare_to(
            before.filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)]), args.group
        )
        total = sum(stat.size_diff for stat in stats)
        print(f"{n} idle connections ({held} held by the server), {tasks} more asyncio tasks")
        print(f"tracemalloc: {total / n:,.0f} B per connection; RSS delta {rss / n / 1024:.1f} KiB")
        print(f"\ntop {args.top} by {args.group} (bytes per connection, blocks per connection)")
        for stat in stats[: args.top]:
            where = stat.traceback.format() if args.group == "traceback" else [str(stat.traceback)]
            print(f"{stat.size_diff / n:8.0f} B {stat.count_diff / n:6.2f}  {where[-1].strip()}")
            for line in where[:-1] if args.group == "traceback" else ():
                print(f"{'':20}{line.strip()}")
        tracemalloc.stop()
        await _stop(load)
    finally:
        await hub.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--group", choices=("lineno", "filename", "traceback"), default="lineno")
    parser.add_argument("--frames", type=int, default=1, help="traceback depth traced")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    asyncio.run(measure(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
