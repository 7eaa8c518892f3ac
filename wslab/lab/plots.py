"""Plots for the course, drawn from real measurements (DataFrames from the hub and the lab).

Each function takes data, draws on a matplotlib ``Axes`` (a new figure if none is given) and
returns the ``Axes``, so notebooks can combine and annotate them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

__all__ = [
    "plot_arrivals",
    "plot_event_timeline",
    "plot_latency",
    "plot_latency_cdf",
    "plot_latency_vs_load",
]


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
    frames: dict[str, pd.DataFrame],
    *,
    column: str = "latency_ms",
    ax: Axes | None = None,
    log: bool = False,
    percentiles: tuple[float, ...] = (),
    title: str | None = None,
) -> Axes:
    """Cumulative distributions of several latency measurements, one line each (for comparisons).

    ``log`` puts the latency axis on a log scale, so that one outlier does not squash the rest;
    ``percentiles`` (e.g. ``(0.5, 0.99)``) draws a dotted guide at each of those fractions.
    """
    ax = _axes(ax)
    for label, df in frames.items():
        values = df[column].dropna().sort_values().to_numpy()
        if len(values) == 0:
            continue
        fraction = [(i + 1) / len(values) for i in range(len(values))]
        ax.step(values, fraction, where="post", label=label)
    for q in percentiles:
        ax.axhline(q, color="grey", linestyle=":", linewidth=1)
        ax.annotate(f"p{q * 100:g}", (1.0, q), xycoords=("axes fraction", "data"),
                    ha="right", va="bottom", fontsize=8, color="grey")  # fmt: skip
    if log:
        ax.set_xscale("log")
    if title:
        ax.set_title(title)
    ax.set_xlabel(column.replace("_", " ") + (" (log scale)" if log else ""))
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


def plot_arrivals(
    runs: dict[str, Any], *, bin_s: float = 0.1, ax: Axes | None = None, title: str | None = None
) -> Axes:
    """Reconnections per ``bin_s`` seconds after a restart, one line per run.

    ``runs`` maps a label to anything with ``arrivals`` (seconds after the restart, e.g. a
    :class:`~wslab.lab.checkers.reliability.ReconnectRun`) or to a list of those seconds.
    """
    import numpy as np

    ax = _axes(ax, (8, 3.2))
    series = {k: sorted(getattr(v, "arrivals", v)) for k, v in runs.items()}
    start = min((v[0] for v in series.values() if v), default=0.0)
    end = max((v[-1] for v in series.values() if v), default=1.0)
    edges = np.arange(np.floor(min(start, 0.0) / bin_s) * bin_s, end + 2 * bin_s, bin_s)
    for label, arrivals in series.items():
        counts, _ = np.histogram(arrivals, bins=edges)
        # The legend's peak slides its window over the arrivals (the bars' edges may split one).
        peak = max((int(np.searchsorted(arrivals, t + bin_s, "right")) - i
                    for i, t in enumerate(arrivals)), default=0)  # fmt: skip
        ax.step(edges[:-1], counts, where="post", label=f"{label} (peak {peak} in {bin_s * 1000:g} ms)")
    ax.set_xlabel("seconds after the hub listened again")
    ax.set_ylabel(f"reconnections per {bin_s * 1000:g} ms")
    ax.set_title(title or "the reconnect storm")
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


def plot_latency_vs_load(
    table: pd.DataFrame,
    *,
    x: str = "offered",
    columns: tuple[str, ...] = ("p50_ms", "p99_ms"),
    ax: Axes | None = None,
    xlabel: str = "offered load (messages per second)",
    title: str | None = None,
    limit_ms: float | None = None,
) -> Axes:
    """Latency percentiles against a load (or a count), on a log latency axis; one line each.

    ``limit_ms`` draws the target a chapter sets (e.g. p99 under 100 ms) as a dashed line.
    """
    ax = _axes(ax)
    for column in columns:
        ax.plot(table[x], table[column], marker="o", label=column.replace("_ms", ""))
    if limit_ms is not None:
        ax.axhline(limit_ms, color="#c44e52", linestyle="--", label=f"target {limit_ms:g} ms")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("latency (ms, log scale)")
    ax.set_title(title or "latency against load")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return ax
