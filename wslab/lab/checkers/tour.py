"""Checker for the tour's exercise (``00_tour.ipynb``): who waited longest, at the 99th percentile.

The exercise: write ``slowest_user(deliveries) -> receiver``, given a DataFrame of deliveries with
columns ``receiver`` and ``latency_ms``, returning the receiver whose p99 latency is highest.
The checker tries it on the tour's own measurement and on made-up tables where the mean, the
maximum and the median each point at someone else — the reasons latency is read as percentiles.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from .verdicts import exercise, hint, success

__all__ = ["check_slowest_user_exercise", "trap_tables"]


def _table(samples: dict[str, list[float]]) -> pd.DataFrame:
    rows = [(user, ms) for user, values in samples.items() for ms in values]
    return pd.DataFrame(rows, columns=["receiver", "latency_ms"])


def trap_tables() -> dict[str, pd.DataFrame]:
    """Tables where a wrong statistic picks the wrong user (name -> deliveries)."""
    steady = [30.0] * 100  # always a little slow: the highest mean and median
    spiky = [1.0] * 96 + [200.0] * 4  # usually fast, 4 % very slow: the highest p99
    lucky = [2.0] * 999 + [900.0]  # one outlier in a thousand: the highest maximum
    return {
        "mean, median and max disagree": _table({"ada": steady, "bo": spiky, "cy": lucky}),
        "order of rows does not matter": _table({"cy": lucky, "bo": spiky, "ada": steady}),
    }


@exercise(
    "00.slowest_user",
    "Replace `raise NotImplementedError` in `slowest_user(deliveries)` with pandas: group the "
    "deliveries by receiver and take a quantile of `latency_ms`.",
)
def check_slowest_user_exercise(
    slowest_user: Callable[[pd.DataFrame], object], deliveries: pd.DataFrame | None = None
) -> None:
    """Check ``slowest_user`` on trap tables and, if given, on the tour's own ``deliveries``."""
    cases = trap_tables()
    if deliveries is not None:
        cases["the tour's measurement"] = deliveries
    for name, table in cases.items():
        expected = table.groupby("receiver")["latency_ms"].quantile(0.99).idxmax()
        try:
            got = slowest_user(table.copy())
        except Exception as error:  # the student's code may fail in any way; report it
            raise hint(f"on the table '{name}' your function raised {error!r}.") from None
        if got != expected:
            raise hint(
                f"on the table '{name}' you picked {got!r}. Which statistic did you use? One "
                "slow delivery in a thousand, or a user who is always a bit slow, is not what "
                "the 99th percentile measures."
            )
    success("you read latency as a percentile: the p99 names the user the tail hurts most.")
