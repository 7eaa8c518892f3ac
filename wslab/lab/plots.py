"""Plots for the course, drawn from real measurements (DataFrames from the hub and the lab).

Each function takes data, draws on a matplotlib ``Axes`` (a new figure if none is given) and
returns the ``Axes``, so notebooks can combine and annotate them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

__all__ = ["plot_event_timeline", "plot_latency", "plot_latency_cdf"]


def _axes(ax: Axes | None, figsize: tuple[float, float] = (7, 3.5)) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize)
    return ax


def plot_latency(
    df: pd.DataFrame,
    *,
    column: str = "latency_ms",
    ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """A histogram of latencies with the p50/p90/p99 marked."""
    ax = _axes(ax)
    values = df[column].dropna()
    ax.hist(values, bins=min(40, max(5, len(values) // 3)), color="#4c72b0", alpha=0.85)
    for q, style in ((0.5, "-"), (0.9, "--"), (0.99, ":")):
        x = float(values.quantile(q))
        ax.axvline(x, color="#c44e52", linestyle=style, label=f"p{int(q * 100)} = {x:.2f} ms")
    ax.set_xlabel(column.replace("_", " "))
    ax.set_ylabel("messages")
    ax.set_title(title or f"{len(values)} deliveries")
    ax.legend()
    return ax


def plot_latency_cdf(
    frames: dict[str, pd.DataFrame], *, column: str = "latency_ms", ax: Axes | None = None
) -> Axes:
    """Cumulative distributions of several latency measurements, one line each (for comparisons)."""
    ax = _axes(ax)
    for label, df in frames.items():
        values = df[column].dropna().sort_values().to_numpy()
        if len(values) == 0:
            continue
        fraction = [(i + 1) / len(values) for i in range(len(values))]
        ax.plot(values, fraction, label=label)
    ax.set_xlabel(column.replace("_", " "))
    ax.set_ylabel("fraction of messages")
    ax.set_ylim(0, 1.01)
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


def plot_event_timeline(events: pd.DataFrame, *, kinds: Any = None, ax: Axes | None = None) -> Axes:
    """Events over time, one row per kind (``hub.events.to_dataframe()``)."""
    ax = _axes(ax, (8, 3))
    if kinds is not None:
        wanted = {str(k) for k in kinds}
        events = events[events["kind"].astype(str).isin(wanted)]
    if events.empty:
        ax.set_title("no events")
        return ax
    start = events["t"].min()
    names = sorted(events["kind"].astype(str).unique())
    for row, name in enumerate(names):
        times = events.loc[events["kind"].astype(str) == name, "t"] - start
        ax.scatter(times, [row] * len(times), s=12, label=name)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("seconds since the first event")
    ax.grid(axis="x", alpha=0.3)
    return ax
