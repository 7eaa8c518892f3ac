"""A strict WebSocket conformance runner modelled on the Autobahn testsuite (categories 1-7, 9,
10, and 12-13 for permessage-deflate).

It replays Autobahn's cases against an RFC 6455 echo server over raw sockets, with its own
small frame codec (never wslab's engine, which it judges), and holds the server to the strict
expectation of every case: NON-STRICT outcomes count as failures.

    report = await run_cases("ws://127.0.0.1:9001/", "1.*,2.*", quick=True)
    report.passed, report.counts(), report.to_dataframe(), report.to_markdown()

From a shell: ``python -m wslab.lab.conformance ws://127.0.0.1:9001/ --cases 1.*,5.* --markdown out.md``.

- :mod:`.cases` — the case table (what to send, what must happen);
- :mod:`.utf8_vectors` — the UTF-8 test vectors behind cases 6.5-6.23;
- :mod:`.payloads` — the seeded payloads of the compression cases 12.x and 13.x;
- :mod:`.wire` — the independent raw frame codec and handshake;
- :mod:`.pmd` — permessage-deflate on the runner's side: judging the answer, (de)compressing;
- :mod:`.session` — the raw-socket client: one connection playing one case;
- :mod:`.judging` — what the server did against the case's expectation;
- :mod:`.runner` — running cases (one, or a selection) into a report;
- :mod:`.report` — results as dict, JSON, DataFrame, Markdown;
- :mod:`.cli` — the command line.
"""

from __future__ import annotations

from .cases import CATEGORIES, SUBCATEGORIES, Case, all_cases, select_cases
from .cli import main
from .judging import judge
from .report import CaseResult, Report, Verdict
from .runner import run_case, run_cases
from .session import Observation, RunConfig

__all__ = [
    "CATEGORIES",
    "SUBCATEGORIES",
    "Case",
    "CaseResult",
    "Observation",
    "Report",
    "RunConfig",
    "Verdict",
    "all_cases",
    "judge",
    "main",
    "run_case",
    "run_cases",
    "select_cases",
]
