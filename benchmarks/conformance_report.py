"""Run the strict conformance suite against wslab's echo server and a websockets echo server.

Both servers start in this process on free ports; the full-size cases run against each, and the
results are written side by side to ``docs/conformance.md`` (or the path given)::

    python benchmarks/conformance_report.py [--out docs/conformance.md] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

import websockets
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as websockets_serve

from wslab.infrastructure.echo import DEFAULT_ECHO_MAX_SIZE, serve_echo
from wslab.lab.conformance import Report, Verdict, run_cases


async def _echo(ws: ServerConnection) -> None:
    # Echo until the peer goes; its errors (e.g. the 1009 it sends for too many fragments) are
    # what the report is about, not something to print as a traceback.
    with contextlib.suppress(websockets.ConnectionClosed):
        async for message in ws:
            await ws.send(message)


async def run(quick: bool) -> tuple[Report, Report]:
    """Run every case against both servers, one after the other."""
    wslab_server = await serve_echo()
    try:
        wslab_report = await run_cases(f"ws://127.0.0.1:{wslab_server.port}/", quick=quick)
    finally:
        await wslab_server.close()
    async with websockets_serve(_echo, "127.0.0.1", 0, max_size=DEFAULT_ECHO_MAX_SIZE) as server:
        port = server.sockets[0].getsockname()[1]
        websockets_report = await run_cases(f"ws://127.0.0.1:{port}/", quick=quick)
    return wslab_report, websockets_report


def render(wslab_report: Report, websockets_report: Report, quick: bool) -> str:
    """The Markdown page: a summary per category, then every case that differs."""
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    lines = [
        "# Conformance: wslab's engine and the websockets library, side by side",
        "",
        f"Generated {when} by `python benchmarks/conformance_report.py{' --quick' if quick else ''}` "
        f"(Python {platform.python_version()}, websockets {websockets.__version__}).",
        "",
        "The runner (`wslab.lab.conformance`) replays the Autobahn testsuite's case categories 1-7,",
        "9 and 10 over raw sockets with its own frame codec, and judges **strictly**: an outcome",
        "Autobahn would call non-strict counts as a failure. Both servers are plain echo servers",
        "(`wslab echo`, and `websockets.asyncio.server.serve` with an echo handler, max size 16 MiB).",
        "",
        "| verdict | wslab | websockets |",
        "|---|---:|---:|",
    ]
    a, b = wslab_report.counts(), websockets_report.counts()
    for verdict in Verdict:
        if a[verdict.value] or b[verdict.value]:
            lines.append(f"| {verdict.value} | {a[verdict.value]} | {b[verdict.value]} |")
    lines += [
        "",
        "## By category",
        "",
        "| category | wslab OK | websockets OK | cases |",
        "|---|---:|---:|---:|",
    ]
    cats_a, cats_b = _by_category(wslab_report), _by_category(websockets_report)
    for category in sorted(cats_a, key=lambda c: int(c)):
        ok_a, total = cats_a[category]
        ok_b, _ = cats_b.get(category, (0, 0))
        lines.append(f"| {category} | {ok_a} | {ok_b} | {total} |")
    lines += ["", "## Cases where the two differ or either fails", ""]
    lines += [
        "| case | wslab | websockets | what happened (the one that did not pass) |",
        "|---|---|---|---|",
    ]
    other = {r.id: r for r in websockets_report.results}
    for result in wslab_report.results:
        theirs = other.get(result.id)
        if theirs is None:
            continue
        if result.passed and theirs.passed:
            continue
        failing = result if not result.passed else theirs
        detail = failing.observed.replace("|", "\\|")[:160]
        lines.append(
            f"| {result.id} | {result.verdict.value} | {theirs.verdict.value} | {detail} |"
        )
    lines.append("")
    return "\n".join(lines)


def _by_category(report: Report) -> dict[str, tuple[int, int]]:
    counts: dict[str, list[int]] = {}
    for result in report.results:
        category = result.id.split(".")[0]
        entry = counts.setdefault(category, [0, 0])
        entry[0] += result.passed
        entry[1] += 1
    return {k: (v[0], v[1]) for k, v in counts.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="docs/conformance.md")
    parser.add_argument("--quick", action="store_true", help="smaller category 9 sizes")
    args = parser.parse_args(argv)
    wslab_report, websockets_report = asyncio.run(run(args.quick))
    Path(args.out).write_text(render(wslab_report, websockets_report, args.quick), encoding="utf-8")
    print(
        f"wslab: {wslab_report.counts()}\nwebsockets: {websockets_report.counts()}\nwrote {args.out}"
    )
    return 0 if wslab_report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
