"""Command line of the conformance runner.

    python -m wslab.lab.conformance ws://127.0.0.1:9001/ [--cases 1.*,5.*] [--quick]
        [--concurrency 8] [--timeout 3] [--markdown out.md] [--json out.json] [--verbose]
    python -m wslab.lab.conformance --list [--cases 6.4]

Exit status: 0 when every selected case passed strictly (UNIMPLEMENTED, a declined
permessage-deflate, is no failure), 1 when any FAILED or was NON-STRICT, 2 on a usage error (bad URL, a pattern that matches no case).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from wslab.foundation.errors import ConfigError

from .cases import select_cases
from .report import CaseResult

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    p = argparse.ArgumentParser(
        prog="python -m wslab.lab.conformance",
        description="Strict Autobahn-style conformance run (categories 1-7, 9, 10, and 12-13 for "
        "permessage-deflate) against a WebSocket echo server.",
    )
    p.add_argument("url", nargs="?", help="ws:// or wss:// URL of an echo server")
    p.add_argument("--cases", default=None, help="comma-separated ids or globs, e.g. '1.*,5.*,6.4'")
    p.add_argument("--exclude", default=None, help="comma-separated ids or globs to leave out")
    p.add_argument(
        "--quick",
        action="store_true",
        help="smaller category 9 sizes, fewer 12.x messages, shorter pauses",
    )
    p.add_argument("--concurrency", type=int, default=8, help="cases run in parallel (default 8)")
    p.add_argument(
        "--timeout", type=float, default=3.0, help="seconds per wait of a case (default 3)"
    )
    p.add_argument("--markdown", type=Path, default=None, help="write the report as Markdown here")
    p.add_argument("--json", type=Path, default=None, help="write the report as JSON here")
    p.add_argument("--list", action="store_true", help="list the selected cases and exit")
    p.add_argument("-v", "--verbose", action="store_true", help="print every case as it finishes")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        if args.list:
            for case in select_cases(args.cases, quick=args.quick, exclude=args.exclude):
                print(f"{case.id:10} {case.description}")
            return 0
        if not args.url:
            print("error: a ws:// URL is required (or --list)", file=sys.stderr)
            return 2
        from .runner import run_cases

        def progress(result: CaseResult) -> None:
            if args.verbose or not result.passed:
                print(f"{result.id:10} {result.verdict.value:13} {result.observed}", flush=True)

        report = asyncio.run(
            run_cases(
                args.url,
                args.cases,
                quick=args.quick,
                concurrency=args.concurrency,
                timeout=args.timeout,
                exclude=args.exclude,
                progress=progress,
            )
        )
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.markdown is not None:
        args.markdown.write_text(report.to_markdown(), encoding="utf-8")
    if args.json is not None:
        args.json.write_text(report.to_json(), encoding="utf-8")
    counts = ", ".join(f"{n} {v}" for v, n in report.counts().items() if n)
    print(f"{len(report)} cases in {report.duration:.1f} s: {counts}")
    return 0 if report.passed else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
