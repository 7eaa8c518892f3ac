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
from wslab.lab.conformance import CATEGORIES, Report, Verdict, run_cases


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
        "9, 10, 12 and 13 over raw sockets with its own frame codec, and judges **strictly**: an",
        "outcome Autobahn would call non-strict counts as a failure. Both servers are plain echo",
        "servers with permessage-deflate on by default (`wslab echo`, and",
        "`websockets.asyncio.server.serve` with an echo handler, max size 16 MiB).",
        "",
        *_ABOUT,
        "## Results",
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
        name = f"{category} {CATEGORIES.get(int(category), '')}".strip()
        lines.append(f"| {name} | {ok_a} | {ok_b} | {total} |")
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


_ABOUT = [
    "## The categories",
    "",
    "| category | what it checks |",
    "|---|---|",
    "| 1 Framing | text and binary messages of 0 to 64 KiB |",
    "| 2 Pings/Pongs | pings answered in order, oversized pings refused, unsolicited pongs |",
    "| 3 Reserved bits | RSV bits without an extension fail the connection (1002) |",
    "| 4 Opcodes | reserved opcodes fail the connection |",
    "| 5 Fragmentation | fragments, control frames between them, bad continuations |",
    "| 6 UTF-8 handling | valid and invalid UTF-8, fail-fast inside fragmented messages (1007) |",
    "| 7 Close handling | the closing handshake, close payloads and codes |",
    "| 9 Limits/Performance | messages up to 16 MiB, fragments, chops, round trips |",
    "| 10 Auto-fragmentation | a 64 KiB message in frames of 1300 bytes |",
    "| 12 Compression, different payloads | 12.1-12.5: several messages in a row of 16 B to "
    "128 KiB, chat JSON, binary records, prose, random bytes and UTF-8 verse (seeded), "
    "compressed whole or fragment by fragment; 12.6: compressed frames a strict server must "
    "refuse |",
    "| 13 Compression, different parameters | the same traffic under default offers, "
    "client/server_no_context_takeover, server_max_window_bits 9-15, client_max_window_bits "
    "with and without a value, combinations, several offers with the first unacceptable |",
    "",
    "How to run them (`--quick` shrinks category 9 and sends 4 instead of 10 messages per 12.x "
    "case; `--list` shows the cases):",
    "",
    "```",
    "wslab echo --port 9001 &                 # or any echo server",
    "python -m wslab.lab.conformance ws://127.0.0.1:9001/ --cases '12.*,13.*' --markdown out.md",
    "python benchmarks/conformance_report.py  # this page",
    "pytest tests/lab/test_conformance.py tests/lab/test_conformance_wslab.py",
    "```",
    "",
    "### permessage-deflate (categories 12 and 13)",
    "",
    "- Only these cases send `Sec-WebSocket-Extensions`; categories 1-10 offer nothing, as before.",
    "  The answer must accept an acceptable offer of the case (RFC 7692 7.1: a requested",
    "  `server_no_context_takeover` kept, `server_max_window_bits` answered with the same or a",
    "  smaller value, no `client_max_window_bits` unless offered, nothing unknown, one extension;",
    "  checked with `wslab.foundation.deflate.accept_response` and the runner's own offer rules).",
    "  An invalid answer fails the case; a server that declines makes it **UNIMPLEMENTED**, as in",
    "  Autobahn, which is no failure (permessage-deflate is optional): against",
    "  `wslab echo --no-compression` every 12.x/13.x case but 12.6.5 is UNIMPLEMENTED.",
    "- The runner deflates its messages under the agreed parameters (its window as agreed, its",
    "  context kept unless `client_no_context_takeover`; stored blocks when the agreed window is",
    "  8 bits, which zlib cannot write) and inflates the server's RSV1 messages, bounded, with",
    "  the server's agreed window and context rules: an echo must inflate to exactly what was",
    "  sent. A server that keeps context after agreeing `server_no_context_takeover`, or uses a",
    "  larger window than agreed, produces references the runner cannot inflate; with",
    "  `server_no_context_takeover` identical messages must also be identical deflate bytes.",
    "- 12.6 (not in Autobahn) must fail the connection with 1002: RSV1 on a continuation frame",
    "  (12.6.1, 12.6.2), on a ping or a pong (12.6.3, 12.6.4), RSV1 without the extension",
    "  negotiated (12.6.5). Invalid deflate data (12.6.6, 12.6.7): RFC 7692 says to fail the",
    "  connection and names no code; wslab and websockets close with 1002, and 1007 is judged OK",
    "  too. A 64 KiB frame that inflates to 64 MiB (12.6.8) must be refused with 1009.",
    "- websockets fails 12.6.1-12.6.4, 12.6.6 and 12.6.7 with the right code but without first",
    "  echoing the valid compressed message sent in the same write (NON-STRICT, as its 3.2/3.3).",
    "",
]


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
    parser.add_argument(
        "--quick", action="store_true", help="smaller category 9 sizes, fewer 12.x messages"
    )
    args = parser.parse_args(argv)
    wslab_report, websockets_report = asyncio.run(run(args.quick))
    Path(args.out).write_text(render(wslab_report, websockets_report, args.quick), encoding="utf-8")
    print(
        f"wslab: {wslab_report.counts()}\nwebsockets: {websockets_report.counts()}\nwrote {args.out}"
    )
    return 0 if wslab_report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
