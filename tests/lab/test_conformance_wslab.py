"""wslab's own engine passes the conformance runner strictly: every case OK (or informational).

The runner judges with its own independent frame codec; ``wslab echo``'s server is started here
on a free port, exactly as the command line starts it.
"""

from __future__ import annotations

import pytest

from wslab.infrastructure.echo import serve_echo
from wslab.lab.conformance import Verdict, run_cases


@pytest.mark.parametrize("patterns", ["1.*,2.*,3.*,4.*,5.*", "6.*", "7.*,9.*,10.*"])
async def test_wslab_echo_passes_every_case_strictly(patterns: str) -> None:
    server = await serve_echo()
    try:
        report = await run_cases(f"ws://127.0.0.1:{server.port}/", patterns, quick=True)
    finally:
        await server.close()
    failures = [(r.id, r.verdict.value, r.observed) for r in report.results if not r.passed]
    assert failures == []
    assert report.counts()[Verdict.OK.value] >= len(report.results) - 1
