"""Results of a conformance run: one :class:`CaseResult` per case, gathered in a :class:`Report`.

A report converts to a plain dict (JSON), a pandas DataFrame (for the notebooks) and Markdown
(for the docs). Verdicts are Autobahn's words, judged strictly: ``NON-STRICT`` (what Autobahn
tolerates but the strict expectation does not) counts as a failure, like ``FAILED``; ``OK`` and
``INFORMATIONAL`` pass, and ``UNIMPLEMENTED`` (an optional feature, permessage-deflate, that the
server declined) is no failure either: such a server is not wrong, just without the extension.
"""

from __future__ import annotations

import enum
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from .cases import CATEGORIES, SUBCATEGORIES, case_sort_key

if TYPE_CHECKING:  # pandas is heavy to import; only to_dataframe() needs it.
    import pandas as pd

__all__ = ["CaseResult", "Report", "Verdict"]


class Verdict(str, enum.Enum):
    """The outcome of one case."""

    OK = "OK"
    FAILED = "FAILED"
    #: Acceptable to Autobahn's lenient reading, not to the strict one: counted as a failure.
    NON_STRICT = "NON-STRICT"
    #: Behaviour the RFC leaves open; recorded, never a failure.
    INFORMATIONAL = "INFORMATIONAL"
    #: The server declined the extension the case is about (categories 12 and 13, as Autobahn
    #: reports them): not exercised, not a failure.
    UNIMPLEMENTED = "UNIMPLEMENTED"

    @property
    def passed(self) -> bool:
        """True for the verdicts that do not count as a failure."""
        return self in (Verdict.OK, Verdict.INFORMATIONAL, Verdict.UNIMPLEMENTED)


@dataclass(frozen=True)
class CaseResult:
    """What happened in one case, in words, plus its verdict and duration in seconds."""

    id: str
    description: str
    expectation: str
    observed: str
    verdict: Verdict
    duration: float

    @property
    def category(self) -> int:
        """The top-level category number."""
        return int(self.id.split(".")[0])

    @property
    def passed(self) -> bool:
        """True if the verdict is not a failure."""
        return self.verdict.passed

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the verdict as its string)."""
        d = asdict(self)
        d["verdict"] = self.verdict.value
        d["duration"] = round(self.duration, 4)
        return d


@dataclass
class Report:
    """The results of one run against ``url``, in case-id order."""

    url: str
    results: list[CaseResult] = field(default_factory=list)
    quick: bool = False
    duration: float = 0.0

    def __post_init__(self) -> None:
        self.results.sort(key=lambda r: case_sort_key(r.id))

    def __iter__(self) -> Iterator[CaseResult]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, case_id: str) -> CaseResult:
        for r in self.results:
            if r.id == case_id:
                return r
        raise KeyError(case_id)

    @property
    def passed(self) -> bool:
        """True if no case FAILED or was NON-STRICT."""
        return all(r.passed for r in self.results)

    def counts(self) -> dict[str, int]:
        """How many cases got each verdict (every verdict present, zeros included)."""
        c = Counter(r.verdict for r in self.results)
        return {v.value: c.get(v, 0) for v in Verdict}

    def failures(self) -> list[CaseResult]:
        """The cases that count as failures (FAILED and NON-STRICT)."""
        return [r for r in self.results if not r.passed]

    def select(self, prefix: str) -> list[CaseResult]:
        """The results whose id is ``prefix`` or starts with ``prefix + '.'``."""
        return [r for r in self.results if r.id == prefix or r.id.startswith(prefix + ".")]

    def by_category(self) -> dict[int, dict[str, int]]:
        """Verdict counts per top-level category."""
        out: dict[int, dict[str, int]] = {}
        for r in self.results:
            row = out.setdefault(r.category, {v.value: 0 for v in Verdict})
            row[r.verdict.value] += 1
        return dict(sorted(out.items()))

    # -- conversions ----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-ready."""
        return {
            "url": self.url,
            "quick": self.quick,
            "duration": round(self.duration, 3),
            "passed": self.passed,
            "counts": self.counts(),
            "results": [r.to_dict() for r in self.results],
        }

    def to_json(self, indent: int | None = 2) -> str:
        """The report as JSON text."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def to_dataframe(self) -> pd.DataFrame:
        """One row per case: id, category, subcategory, verdict, duration, texts."""
        import pandas as pd

        rows = []
        for r in self.results:
            d = r.to_dict()
            d["category"] = r.category
            d["category_name"] = CATEGORIES.get(r.category, "")
            parts = r.id.split(".")
            d["subcategory"] = ".".join(parts[:2]) if len(parts) == 3 else parts[0]
            rows.append(d)
        columns = [
            "id", "category", "category_name", "subcategory", "verdict",
            "duration", "description", "expectation", "observed",
        ]  # fmt: skip
        return pd.DataFrame(rows, columns=columns)

    def to_markdown(self, *, details: bool = True) -> str:
        """A summary table per category, the failures, and (``details``) every case."""
        mode = (
            " (quick mode: category 9 sizes and 12.x message counts reduced)" if self.quick else ""
        )
        lines = [
            "# WebSocket conformance report",
            "",
            f"Server: `{self.url}`{mode}. {len(self.results)} cases in {self.duration:.1f} s. "
            "Judged strictly: NON-STRICT counts as a failure.",
            "",
            "| category | " + " | ".join(v.value for v in Verdict) + " |",
            "|---|" + "---:|" * len(Verdict),
        ]
        for cat, row in self.by_category().items():
            name = f"{cat} {CATEGORIES.get(cat, '')}".strip()
            lines.append(f"| {name} | " + " | ".join(str(row[v.value]) for v in Verdict) + " |")
        total = self.counts()
        lines.append("| **total** | " + " | ".join(f"**{total[v.value]}**" for v in Verdict) + " |")
        failures = self.failures()
        lines += ["", f"## Failures ({len(failures)})", ""]
        if failures:
            lines += _table(failures, with_expectation=True)
        else:
            lines.append("None.")
        if details:
            lines += ["", "## All cases", ""]
            current = None
            for r in self.results:
                parts = r.id.split(".")
                sub = ".".join(parts[:2]) if len(parts) == 3 else parts[0]
                if sub != current:
                    current = sub
                    title = SUBCATEGORIES.get(sub) or CATEGORIES.get(int(parts[0]), "")
                    lines += ["", f"### {sub} {title}".rstrip(), ""]
                    lines += [
                        "| case | verdict | s | description | observed |",
                        "|---|---|---:|---|---|",
                    ]
                lines.append(
                    f"| {r.id} | {r.verdict.value} | {r.duration:.2f} | {_cell(r.description)} "
                    f"| {_cell(r.observed)} |"
                )
        return "\n".join(lines) + "\n"


def _table(results: list[CaseResult], *, with_expectation: bool) -> list[str]:
    head = "| case | verdict | description | expected | observed |"
    rows = [head, "|---|---|---|---|---|"]
    for r in results:
        exp = _cell(r.expectation) if with_expectation else ""
        rows.append(
            f"| {r.id} | {r.verdict.value} | {_cell(r.description)} | {exp} | {_cell(r.observed)} |"
        )
    return rows


def _cell(text: str) -> str:
    # Keep each result on one table row: pipes and newlines would break the Markdown table.
    return " ".join(text.split()).replace("|", "\\|")
