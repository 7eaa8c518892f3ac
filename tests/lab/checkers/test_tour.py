"""The tour's checker: the p99 picks the user; the mean, the median and the maximum do not."""

from __future__ import annotations

import pandas as pd
import pytest

from wslab.lab.checkers.tour import check_slowest_user_exercise, trap_tables
from wslab.lab.solutions.ch00 import slowest_user


def by(statistic: str):  # type: ignore[no-untyped-def]
    return lambda d: d.groupby("receiver")["latency_ms"].agg(statistic).idxmax()


def test_the_p99_passes_also_on_a_measured_table(capsys: pytest.CaptureFixture[str]) -> None:
    measured = pd.DataFrame({"receiver": ["a", "b", "b"], "latency_ms": [1.0, 2.0, 9.0]})
    check_slowest_user_exercise(slowest_user, measured)
    assert "Correct" in capsys.readouterr().out


@pytest.mark.parametrize("statistic", ["mean", "median", "max", "min"])
def test_other_statistics_are_refused(statistic: str) -> None:
    with pytest.raises(AssertionError, match=r"Not yet: .*picked"):
        check_slowest_user_exercise(by(statistic))


def test_a_failing_function_gets_a_hint_not_a_traceback() -> None:
    with pytest.raises(AssertionError, match="raised KeyError"):
        check_slowest_user_exercise(lambda d: d["user"])


def test_the_traps_really_separate_the_statistics() -> None:
    table = next(iter(trap_tables().values()))
    picks = {s: by(s)(table) for s in ("mean", "max")}
    assert picks == {"mean": "ada", "max": "cy"} and slowest_user(table) == "bo"
