"""Run conformance cases against a WebSocket echo server over raw sockets, and judge them.

:func:`run_case` gives each case its own connection (:mod:`.session`, the raw-socket client) and
judges what the server did (:mod:`.judging`); :func:`run_cases` selects cases and runs them,
ordinary ones concurrently and heavy ones one at a time, into a :class:`.report.Report`.
:class:`RunConfig`, :class:`Observation`, :func:`judge` and :func:`describe` are importable
from here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl as ssl_module
import time
from collections.abc import Callable, Iterable

from wslab.foundation.errors import ConfigError

from .cases import (
    Case,
    select_cases,
)
from .judging import describe, judge
from .pmd import Agreement, Compression
from .report import CaseResult, Report
from .session import Observation, RunConfig, _connect, _parse_url, _Session

__all__ = ["Observation", "RunConfig", "describe", "judge", "run_case", "run_cases"]


# -- running --------------------------------------------------------------------------------------


async def run_case(url: str, case: Case, cfg: RunConfig | None = None) -> CaseResult:
    """Run one case on a fresh connection to ``url`` and judge it."""
    cfg = cfg or RunConfig()
    target = _parse_url(url)
    timeout = max(cfg.timeout, case.min_timeout)
    started = time.perf_counter()
    obs = Observation()
    agreement: Agreement | None = None
    try:
        reader, writer, agreement = await _connect(target, cfg, case.offers)
    except (
        OSError,
        asyncio.TimeoutError,
        asyncio.IncompleteReadError,
        asyncio.LimitOverrunError,
    ) as exc:
        obs.error = f"could not open the WebSocket connection: {exc}"
    else:
        compression = Compression(agreement) if agreement is not None else None
        session = _Session(reader, writer, cfg, compression)
        obs = session.obs
        reader_task = asyncio.create_task(session.read_loop())
        try:
            if case.offers is not None and agreement is None:
                obs.unimplemented = (
                    "server declined permessage-deflate (no Sec-WebSocket-Extensions in its "
                    "answer): the case cannot run"
                )
                await session.close_unrun(timeout)
            else:
                await session.run_script(case, timeout)
                await session.finish(case, timeout)
        finally:
            if not session.eof:
                session.aborted = True
                writer.transport.abort()
            # The reader ends once the transport is gone; its own errors must surface here.
            await reader_task
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
    verdict, observed = judge(case, obs)
    return CaseResult(
        id=case.id,
        description=case.description,
        expectation=case.expectation,
        observed=observed,
        verdict=verdict,
        duration=time.perf_counter() - started,
    )


async def run_cases(
    url: str,
    patterns: str | Iterable[str] | None = None,
    quick: bool = False,
    concurrency: int = 8,
    timeout: float = 3.0,
    *,
    exclude: str | Iterable[str] | None = None,
    settle: float = 0.2,
    pause: float | None = None,
    ssl: ssl_module.SSLContext | None = None,
    progress: Callable[[CaseResult], None] | None = None,
) -> Report:
    """Run the selected cases against the echo server at ``url`` and return the :class:`Report`.

    ``patterns``: ids or globs (``"1.*,5.*"``, ``["2.5", "6.4"]``; a plain id also selects its
    sub-cases); None runs every case. ``quick`` shrinks category 9 and shortens pauses to 0.5 s.
    Ordinary cases run ``concurrency`` at a time; heavy ones (category 9) run one at a time
    afterwards, so they measure the server rather than the contention. ``progress`` is called
    with each result as it is ready.
    """
    if concurrency < 1:
        raise ConfigError("concurrency must be at least 1")
    _parse_url(url)  # a bad URL fails once, not once per case
    cases = select_cases(patterns, quick=quick, exclude=exclude)
    cfg = RunConfig(
        timeout=timeout,
        settle=settle,
        pause=pause if pause is not None else (0.5 if quick else 1.0),
        ssl=ssl,
    )
    started = time.perf_counter()
    results: list[CaseResult] = []
    gate = asyncio.Semaphore(concurrency)

    async def one(case: Case) -> None:
        async with gate:
            result = await run_case(url, case, cfg)
        results.append(result)
        if progress is not None:
            progress(result)

    light = [c for c in cases if not c.heavy]
    heavy = [c for c in cases if c.heavy]
    # TaskGroup semantics by hand (3.10 has none): gather re-raises the first error.
    await asyncio.gather(*(one(c) for c in light))
    for case in heavy:
        await one(case)
    return Report(url=url, results=results, quick=quick, duration=time.perf_counter() - started)
