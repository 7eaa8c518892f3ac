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
    "plot_closing_handshake",
    "plot_deflate_cost",
    "plot_deflate_windows",
    "plot_detection_delays",
    "plot_event_timeline",
    "plot_fanout_cost",
    "plot_flood",
    "plot_handshake_phases",
    "plot_heartbeat_cycle",
    "plot_heartbeat_lanes",
    "plot_latency",
    "plot_latency_cdf",
    "plot_latency_vs_load",
    "plot_rtt_cdf",
    "plot_slow_consumer_queues",
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


def plot_fanout_cost(table: pd.DataFrame, *, title: str | None = None) -> Any:
    """Fan-out against room size: per-delivery cost (left) and delivery p50/p99 (right).

    ``table`` has one row per room size with columns ``N``, ``per_delivery_us``, ``p50_ms`` and
    ``p99_ms``. Both x axes are logarithmic because N spans orders of magnitude.
    """
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6), dpi=80)
    left.plot(table["N"], table["per_delivery_us"], "o-", color="#4c72b0")
    left.set_xscale("log")
    left.set_xlabel("listeners in the room (N, log scale)")
    left.set_ylabel("hub time per delivery (µs)")
    left.set_title("cost of one delivery")
    left.set_ylim(bottom=0)
    left.grid(alpha=0.3, which="both")
    for column, style in (("p50_ms", "o-"), ("p99_ms", "s--")):
        right.plot(table["N"], table[column], style, label=column.replace("_ms", ""))
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("listeners in the room (N, log scale)")
    right.set_ylabel("send -> received (ms, log scale)")
    right.set_title("delivery latency")
    right.grid(alpha=0.3, which="both")
    right.legend()
    fig.suptitle(title or "fan-out against the size of the room")
    fig.tight_layout()
    return fig


def plot_slow_consumer_queues(
    closing: pd.DataFrame,
    dropping: pd.DataFrame,
    *,
    max_queue: int,
    closing_title: str = "policy close: 1013 at the bound",
    dropping_title: str = "policy drop_oldest: full, dropping",
) -> Any:
    """The slow reader's outgoing queue under two slow-consumer policies, side by side.

    ``closing`` and ``dropping`` are samples taken during a flood (columns ``t``, ``queue_depth``,
    ``state`` and, for ``dropping``, ``dropped``); ``max_queue`` is the hub's bound. On the left
    the moment the connection left OPEN is marked; on the right a second axis counts the messages
    dropped. Returns the two ``Axes``.
    """
    import matplotlib.pyplot as plt

    _, axes = plt.subplots(1, 2, figsize=(11, 3.6), sharey=True, dpi=80)
    for ax, title, data in ((axes[0], closing_title, closing), (axes[1], dropping_title, dropping)):
        ax.plot(data["t"], data["queue_depth"], ".-", label="queue depth (messages)")
        ax.axhline(max_queue, color="#c44e52", linestyle="--", label=f"max_queue = {max_queue}")
        ax.set_xlabel("seconds since the flood started")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("messages queued for the slow reader")
    ended = closing[closing["state"] != "OPEN"]
    if len(ended):
        axes[0].axvline(ended["t"].iloc[0], color="gray", linestyle=":", label="closed (1013)")
    dropped_ax = axes[1].twinx()
    dropped_ax.plot(dropping["t"], dropping["dropped"], color="#55a868", label="dropped (total)")
    dropped_ax.set_ylabel("messages dropped")
    axes[0].set_ylim(-5, 1.5 * max_queue)  # room for the legends above the bound
    axes[0].legend(loc="upper left")
    axes[1].legend(loc="upper left")
    dropped_ax.legend(loc="lower right")
    plt.tight_layout()
    return axes


def plot_deflate_cost(wire: pd.DataFrame, cost: pd.DataFrame, *, messages: int) -> Any:
    """permessage-deflate against no compression: bytes on the wire, CPU, memory (three panels).

    ``wire`` has one column per mode (``off``, ``permessage-deflate``) and the rows
    ``client bytes_out (frames)`` and ``client bytes_in (frames)`` in bytes; ``cost`` has one row
    per mode and the columns ``CPU µs per round trip``, ``of which zlib alone``,
    ``KiB per connection, measured`` and ``KiB of zlib state, predicted``. ``messages`` is how
    many chat messages were echoed. Returns the three ``Axes``.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    modes = ["off", "permessage-deflate"]
    colours = ["#8c8c8c", "#4c72b0"]

    bytes_ax = axes[0]
    for i, column in enumerate(("client bytes_out (frames)", "client bytes_in (frames)")):
        values = [float(wire.at[column, mode]) / 1024 for mode in modes]  # type: ignore[arg-type]
        bars = bytes_ax.bar([i - 0.2, i + 0.2], values, width=0.4, color=colours)
        bytes_ax.bar_label(bars, fmt="%.0f", fontsize=8)
    bytes_ax.set_xticks([0, 1], ["client → server", "server → client"])
    bytes_ax.set_ylabel("KiB on the wire (frames)")
    bytes_ax.set_title(f"{messages} chat messages, echoed")
    bytes_ax.set_ylim(0, 1.25 * bytes_ax.get_ylim()[1])  # room for the legend
    bytes_ax.legend(bytes_ax.patches[:2], modes, fontsize=8, loc="upper center", ncol=2)

    cpu_ax = axes[1]
    cpu_ax.bar(modes, cost["CPU µs per round trip"], color=colours)
    cpu_ax.bar(modes, cost["of which zlib alone"], color="none", edgecolor="black", hatch="//",
               label="of which zlib")
    cpu_ax.set_ylabel("CPU µs per round trip (both ends)")
    cpu_ax.set_title("CPU (process_time)")
    cpu_ax.legend(fontsize=8)

    memory_ax = axes[2]
    memory_ax.bar(modes, cost["KiB per connection, measured"], color=colours,
                  label="measured (tracemalloc)")
    memory_ax.bar(modes, cost["KiB of zlib state, predicted"],
                  bottom=cost.loc["off", "KiB per connection, measured"], color="none",
                  edgecolor="black", hatch="//", label="zlib state, predicted")
    memory_ax.set_ylabel("KiB per idle connection (both ends)")
    memory_ax.set_title("memory")
    memory_ax.set_ylim(0, 1.3 * memory_ax.get_ylim()[1])
    memory_ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return axes


def plot_deflate_windows(table: pd.DataFrame, *, baseline: float, frame_bytes: int,
                         message_length: int) -> Any:
    """Window size and context takeover: frame sizes of three copies, and idle memory.

    ``table`` is indexed by ``(window bits, takeover kept)`` with the columns
    ``1st copy (bytes)``, ``2nd copy``, ``3rd copy``, ``KiB per idle connection`` and
    ``zlib state, predicted (KiB)``; ``baseline`` is an uncompressed connection's KiB,
    ``frame_bytes`` the uncompressed frame's size. Returns the two ``Axes``.
    """
    import matplotlib.pyplot as plt

    fig, (copies_ax, memory_ax) = plt.subplots(1, 2, figsize=(11, 3.6))
    labels = [f"$2^{{{bits}}}$\n{'takeover' if kept else 'no takeover'}" for bits, kept in table.index]
    x = range(len(table))
    for offset, column, colour in ((-0.27, "1st copy (bytes)", "#8c8c8c"),
                                   (0, "2nd copy", "#4c72b0"), (0.27, "3rd copy", "#55a868")):
        copies_ax.bar([i + offset for i in x], table[column], width=0.27, color=colour,
                      label=column.split(" ")[0] + " copy")
    copies_ax.axhline(frame_bytes, color="black", linestyle=":", linewidth=1,
                      label="uncompressed frame")
    copies_ax.set_xticks(list(x), labels, fontsize=8)
    copies_ax.set_ylabel("frame bytes on the wire")
    copies_ax.set_title(f"the same {message_length}-byte message, three times")
    copies_ax.set_ylim(0, 1.3 * copies_ax.get_ylim()[1])  # room for the legend above the bars
    copies_ax.legend(fontsize=8, ncol=2, loc="upper center")

    memory_ax.bar(x, table["KiB per idle connection"], color=["#4c72b0", "#a1c9f4"] * 3,
                  label="measured (tracemalloc); light: no takeover")
    memory_ax.scatter(x, baseline + table["zlib state, predicted (KiB)"], color="black",
                      marker="_", s=400, label="uncompressed + zlib formula")
    memory_ax.axhline(baseline, color="#8c8c8c", linestyle="--", linewidth=1,
                      label="uncompressed connection")
    memory_ax.set_xticks(list(x), labels, fontsize=8)
    memory_ax.set_ylabel("KiB per idle connection (both ends)")
    memory_ax.set_title("what an idle connection holds")
    memory_ax.legend(fontsize=8)
    fig.tight_layout()
    return copies_ax, memory_ax


#: Colours of the connection states, shared by the state-machine figures.
STATE_COLOURS = {"CONNECTING": "#bbbbbb", "OPEN": "#55a868", "CLOSING": "#dd8452"}


def plot_handshake_phases(phases: pd.DataFrame, names: list[str], *, ax: Axes | None = None) -> Axes:
    """How long each connection spent CONNECTING and CLOSING, on a log axis, with its close code.

    ``phases`` has one row per (``who``, ``phase``) with ``ms`` (NaN: no closing handshake) and
    ``code`` (the close code the hub recorded); ``names`` orders the rows.
    """
    import pandas as pd

    from wslab.foundation import CloseCode

    ax = _axes(ax, (5.5, 3.0))
    shown = [p for p in ("CONNECTING", "CLOSING") if p in set(phases["phase"])]
    height = 0.7 / len(shown)
    for n, phase in enumerate(shown):
        rows = phases[phases["phase"] == phase].set_index("who").reindex(names)
        offset = (n - (len(shown) - 1) / 2) * height
        ax.barh([k + offset for k in range(len(names))], rows["ms"].fillna(0), height=height,
                color=STATE_COLOURS[phase], label=phase)
    for k, name in enumerate(names):
        row = phases[(phases["who"] == name) & (phases["phase"] == "CLOSING")].iloc[0]
        note = "no closing handshake" if pd.isna(row["ms"]) else f"CLOSING {row['ms']:.2f} ms"
        code = int(row["code"])
        ax.annotate(f"  {note}, then {code} {CloseCode(code).name.lower().replace('_', ' ')}",
                    (row["ms"] if row["ms"] > 0 else 0.01, k), va="center", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlim(0.01, 1000)
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlabel("milliseconds (log scale)")
    ax.set_title("the handshakes, as the hub saw them")
    ax.legend(loc="lower right", fontsize=8)
    return ax


def plot_closing_handshake(handshake: pd.DataFrame, *, client: str, server: str,
                           ax: Axes | None = None) -> Axes:
    """One closing handshake seen from both ends: each side's events on its own line, and arrows
    for the client's close frame, the server's echo and the TCP close.

    ``handshake`` has ``side`` (``client`` or ``server``), ``new`` (a state or an event such as
    ``close frame sent``) and ``ms`` since the client sent its close frame.
    """
    ax = _axes(ax, (5.5, 3.0))
    sides = {client: 1, server: 0}
    point = {}
    for side, y in sides.items():
        mine = handshake[handshake["side"] == side]
        ax.plot(mine["ms"], [y] * len(mine), color="#999999", zorder=1)
        for _, event in mine.iterrows():
            point[side, event["new"]] = (event["ms"], y)
            ax.scatter(event["ms"], y, color=STATE_COLOURS.get(event["new"], "#4c72b0"), zorder=2,
                       s=18)
    arrows = (
        ((client, "close frame sent"), (server, "close frame received"), "1. the client's close frame"),
        ((server, "close frame sent"), (client, "close frame received"), "2. the server's echo"),
        ((server, "CLOSED"), (client, "CLOSED"), "3. TCP closed by the server"),
    )
    for (start, stop, label), height in zip(arrows, (0.75, 0.5, 0.25), strict=True):
        ax.annotate("", point[stop], point[start],
                    arrowprops={"arrowstyle": "->", "color": "#4c72b0", "linestyle": "--"})
        ax.annotate(label, ((point[start][0] + point[stop][0]) / 2, height), ha="left",
                    fontsize=8, color="#4c72b0")
    ax.set_yticks(list(sides.values()), list(sides))
    ax.set_ylim(-0.5, 1.5)
    ax.set_xlabel("ms since the client sent its close frame")
    ax.set_title("the closing handshake, both ends")
    return ax


def plot_flood(sent: list[float], refused: list[float], accepted: list[float], *,
               closed_at: float, burst: float, rate: float, ax: Axes | None = None,
               title: str | None = None) -> Axes:
    """A flood against a token bucket: cumulative messages sent, refused and accepted over time.

    The times are ``time.monotonic()`` values (the clock of ``hub.events``), counted from the
    first message sent; each line holds its count until ``closed_at``, the connection's close.
    The dashed line is the bucket's bound, ``burst + rate × t``: the accepted line never
    crosses it.
    """
    ax = _axes(ax, (9, 4))
    t0 = sent[0]

    def ms(times: list[float]) -> list[float]:
        return [1000 * (t - t0) for t in times]

    def steps(times: list[float]) -> tuple[list[float], list[int]]:
        times = list(times)
        return ms([*times, closed_at]), [*range(1, len(times) + 1), len(times)]

    ax.step(*steps(sent), where="post", label="sent by the script")
    ax.step(*steps(refused), where="post", color="tab:red", label="refused (rate_limit events)")
    ax.step(*steps(accepted), where="post", color="tab:green", label="accepted (acks)")
    ends = [t0, closed_at]
    ax.plot(ms(ends), [burst + rate * (t - t0) for t in ends], "--", color="tab:green",
            alpha=0.6, label="bucket limit: burst + rate × t")
    ax.axvline(1000 * (closed_at - t0), color="black", linestyle=":", label="closed with 1008")
    ax.set_xlabel("ms since the script's first message")
    ax.set_ylabel("messages (cumulative)")
    if title:
        ax.set_title(title)
    ax.legend(loc="upper left")
    return ax


def plot_rtt_cdf(samples: dict[str, Any], *, timeout_ms: float | None = None,
                 ax: Axes | None = None, title: str | None = None) -> Axes:
    """Round trips (ms), one cumulative distribution per name, on a log axis.

    A log axis keeps a single slow round trip from squashing the rest; ``timeout_ms`` draws the
    deadline a round trip must beat (the heartbeat's ``pong_timeout``).
    """
    import numpy as np

    ax = _axes(ax)
    for name, values in samples.items():
        ordered = np.sort(np.asarray(list(values), dtype=float))
        if len(ordered) == 0:
            continue
        ax.step(ordered, np.arange(1, len(ordered) + 1) / len(ordered), where="post", label=name)
    if timeout_ms is not None:
        ax.axvline(timeout_ms, color="#c44e52", linestyle="--", linewidth=1,
                   label=f"timeout {timeout_ms:g} ms")
    ax.set_xscale("log")
    ax.set_xlabel("ping → pong (ms, log scale)")
    ax.set_ylabel("fraction of pongs")
    ax.set_ylim(0, 1.01)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    return ax


def plot_heartbeat_cycle(run: Any, *, dies_at: float, ping_interval: float, pong_timeout: float,
                         after_pong: list[float], found_after: list[float]) -> Any:
    """One simulated heartbeat (``simulate_heartbeat``) and when its verdict comes.

    Top: the pings and pongs of ``run``, the peer's death at ``dies_at`` and the ``DEAD``
    verdict, with the ``ping_interval + pong_timeout`` silence between the last pong and the
    verdict. Bottom: how long the verdict takes (``found_after``) against how long after its
    last pong the peer died (``after_pong``), both in seconds. Returns the figure.
    """
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 4.2),
                                      gridspec_kw={"height_ratios": [1, 1.3]})
    bound = ping_interval + pong_timeout
    top.axvspan(run.pings[-1], run.dead_at, color="#dd8452", alpha=0.3)  # the unanswered ping
    top.vlines(run.pings, 0.55, 1.0, color="#4c72b0", label="ping")
    top.vlines(run.pongs, 0.0, 0.45, color="#55a868", label="pong")
    top.axvline(dies_at, color="black", linestyle="--", linewidth=1)
    top.annotate("the peer dies", (dies_at, 1.02), ha="center", fontsize=8)
    top.plot(run.dead_at, 0.5, "X", color="#c44e52", markersize=10, label="DEAD: close 1011")
    top.annotate("", (run.dead_at, 0.2), (run.last_pong, 0.2),
                 arrowprops={"arrowstyle": "<->", "color": "#c44e52"})
    top.annotate(f"ping_interval + pong_timeout = {bound:g} s",
                 ((run.dead_at + run.last_pong) / 2, 0.25), ha="center", fontsize=8,
                 color="#c44e52")
    top.set_yticks([])
    top.set_xlim(0, run.dead_at + bound * 2 / 3)
    top.set_ylim(-0.05, 1.15)
    top.set_xlabel("simulated seconds (orange: the last ping, waiting in vain for its pong)")
    top.legend(loc="upper left", fontsize=8, ncol=3)

    bottom.plot(after_pong, found_after, color="#4c72b0")
    bottom.axhline(bound, color="#c44e52", linestyle="--", linewidth=1,
                   label="ping_interval + pong_timeout")
    bottom.axhline(pong_timeout, color="#dd8452", linestyle="--", linewidth=1,
                   label="pong_timeout")
    bottom.set_xlabel("the peer dies this long after its last pong (s)")
    bottom.set_ylabel("found after (s)")
    bottom.set_ylim(0, bound * 7 / 6)
    bottom.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig


def plot_heartbeat_lanes(log: pd.DataFrame, connections: dict[str, str],
                         detection: pd.DataFrame, *, ax: Axes | None = None) -> Axes:
    """Pings, pongs, faults and verdicts of several connections, one lane each.

    ``log`` is the hub's event log (``hub.events.to_dataframe()``: ``ping``, ``pong``,
    ``custom`` for an injected fault, ``heartbeat_timeout`` for a verdict); ``connections`` maps
    a name to its connection id; ``detection`` is indexed by the names declared dead, with the
    column ``"since last sign of life (s)"`` (drawn as a red band before each verdict).
    """
    ax = _axes(ax, (10, 3.4))
    mine_all = log[log["connection_id"].isin(connections.values())]
    t0 = mine_all["t"].min()
    for row, (user, cid) in enumerate(connections.items()):
        mine = log[log["connection_id"] == cid]
        for kind, color, offset in (("ping", "#4c72b0", 0.12), ("pong", "#55a868", -0.12)):
            times = mine.loc[mine["kind"] == kind, "t"] - t0
            ax.vlines(times, row + offset - 0.1, row + offset + 0.1, color=color, linewidth=1)
        if user in detection.index:
            verdict = mine.loc[mine["kind"] == "heartbeat_timeout", "t"].iloc[0] - t0
            since = float(detection.loc[user, "since last sign of life (s)"])  # type: ignore[arg-type]
            ax.barh(row, since, left=verdict - since, height=0.6, color="#c44e52", alpha=0.15)
            fault = mine.loc[mine["kind"] == "custom", "t"].min() - t0
            ax.plot(fault, row, "|", color="#dd8452", markersize=16, markeredgewidth=2)
            ax.plot(verdict, row, "X", color="#c44e52", markersize=9)
    ax.set_yticks(range(len(connections)), list(connections))
    ax.set_ylim(len(connections) - 0.5, -0.5)
    ax.set_xlabel("seconds since the first connection")
    ax.set_title("pings (blue), pongs (green), faults (orange), verdicts (red ×)")
    return ax


def plot_detection_delays(detection: pd.DataFrame, *, bound: float, slack: float,
                          ax: Axes | None = None) -> Axes:
    """How long each dead connection took to be declared dead: since its last sign of life and
    since the fault, against the bound ``ping_interval + pong_timeout`` (plus ``slack``)."""
    ax = _axes(ax)
    x = range(len(detection))
    ax.bar([i - 0.2 for i in x], detection["since last sign of life (s)"], width=0.4,
           label="since its last sign of life", color="#c44e52")
    ax.bar([i + 0.2 for i in x], detection["since the fault (s)"], width=0.4,
           label="since the fault", color="#dd8452")
    ax.axhline(bound, color="black", linestyle="--", linewidth=1,
               label="ping_interval + pong_timeout")
    ax.axhline(bound + slack, color="grey", linestyle=":", linewidth=1,
               label="+ scheduling slack")
    ax.set_xticks(list(x), [f"{u}\n({f})" for u, f in
                            zip(detection.index, detection["fault"], strict=True)])
    ax.set_ylabel("declared dead after (s)")
    ax.set_ylim(0, bound + slack + 0.4)
    ax.legend(fontsize=8, loc="upper right", ncol=2)
    return ax
