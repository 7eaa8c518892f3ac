"""wslab's own engine passes the conformance runner strictly: every case OK (or informational).

The runner judges with its own independent frame codec; ``wslab echo``'s server is started here
on a free port, exactly as the command line starts it (permessage-deflate on, as by default).
"""

from __future__ import annotations

import pytest

from wslab.infrastructure.echo import serve_echo
from wslab.lab.conformance import Verdict, run_cases


@pytest.mark.parametrize(
    ("patterns", "quick"),
    [
        ("1.*,2.*,3.*,4.*,5.*", True),
        ("6.*", True),
        ("7.*,9.*,10.*", True),
        # The compression cases at full size: 10 messages of up to 128 KiB per case of 12.x.
        ("12.*,13.*", False),
    ],
)
async def test_wslab_echo_passes_every_case_strictly(patterns: str, quick: bool) -> None:
    server = await serve_echo()
    try:
        report = await run_cases(f"ws://127.0.0.1:{server.port}/", patterns, quick=quick)
    finally:
        await server.close()
    failures = [(r.id, r.verdict.value, r.observed) for r in report.results if not r.passed]
    assert failures == []
    assert report.counts()[Verdict.OK.value] >= len(report.results) - 1


async def test_compression_cases_actually_compress_both_ways_on_wslab() -> None:
    server = await serve_echo()
    try:
        report = await run_cases(f"ws://127.0.0.1:{server.port}/", "12.3.9,13.3.1,13.4.1")
    finally:
        await server.close()
    assert report.passed
    # The echoes came back compressed, under the window the offer asked for.
    assert "10/10 echoes compressed" in report["12.3.9"].observed
    assert "agreed 'permessage-deflate; server_no_context_takeover" in report["13.3.1"].observed
    assert "server_max_window_bits=9" in report["13.4.1"].observed


async def test_without_compression_the_deflate_cases_are_unimplemented() -> None:
    server = await serve_echo(compression=None)
    try:
        report = await run_cases(f"ws://127.0.0.1:{server.port}/", "12.*,13.*", quick=True)
    finally:
        await server.close()
    verdicts = {r.id: r.verdict for r in report}
    # RSV1 without negotiation is a protocol error whether or not the server has the extension.
    assert verdicts.pop("12.6.5") is Verdict.OK
    assert set(verdicts.values()) == {Verdict.UNIMPLEMENTED}
    assert all("declined permessage-deflate" in r.observed for r in report if r.id != "12.6.5")
    assert report.passed  # a server without the optional extension is not wrong
