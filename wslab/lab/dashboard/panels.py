"""The dashboard's widgets: one column per hub (header, live figure, dependency health) and a frame panel.

ipywidgets only (imported when a panel is built, never at ``import wslab``). The figure is a
PNG drawn by the :class:`~.render.Renderer` process and shown in an ``ipywidgets.Image``:
ipympl is not a dependency, and drawing in the kernel would take time from the hub being
watched. Each redraw goes through the dashboard's :class:`~.throttle.Throttle`.
"""

from __future__ import annotations

import html
from typing import Any

from .frames import FrameStream
from .sampler import HubSeries

__all__ = ["FramePanel", "HubPanel", "figure_spec", "header_html"]

PANELS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("connections", (("connections", "open"),)),
    ("messages / s at the hub", (("in_per_s", "in"), ("out_per_s", "out"))),
    ("delivery latency at receivers (ms)", (("latency_p50_ms", "p50"), ("latency_p99_ms", "p99"))),
    ("heartbeat RTT (ms)", (("rtt_p50_ms", "p50"), ("rtt_p99_ms", "p99"))),
    ("outgoing queue (messages)", (("queue_max", "max"), ("queue_total", "total"))),
)


def figure_spec(view: HubSeries, title: str,
                cursor: dict[str, Any] | None = None) -> dict[str, Any]:
    """Plain data the renderer draws: five line panels and one bar panel.

    Without ``cursor`` every line carries all its points. With one (a dict the caller keeps
    per figure, empty at first and after the renderer lost its copy), a line carries only the
    points appended since the last spec made with it, marked ``"append"``: a redraw then
    costs the hub's loop (and the pipe) a few new samples, not the whole history.
    """
    panels: list[dict[str, Any]] = []
    for panel_title, lines in PANELS:
        if panel_title.startswith("heartbeat") and "rtt_p50_ms" not in view.series \
                and "rtt_mean_ms" in view.series:
            lines = (("rtt_mean_ms", "mean"),)  # a remote hub's /metrics has no quantiles
        names = tuple(name for name, _ in lines)
        if cursor is not None and cursor.get(panel_title, (names,))[0] != names:
            cursor.pop(panel_title)  # other lines: the renderer builds them from scratch
        sent: dict[str, int] = cursor.setdefault(panel_title, (names, {}))[1] \
            if cursor is not None else {}
        entries = []
        for name, label in lines:
            entry: dict[str, Any] = {"label": label, "t": [], "v": []}
            if name in view.series:
                series = view.series[name]
                entry["maxlen"] = series.maxlen
                if cursor is None:
                    entry["t"], entry["v"] = series.points()
                else:
                    entry["t"], entry["v"], whole = series.since(sent.get(name, 0))
                    entry["append"] = not whole
                    sent[name] = series.appended
            elif cursor is not None:
                entry["append"] = True  # nothing yet, nothing to add
            entries.append(entry)
        panels.append({"title": panel_title, "lines": entries})
    latest = view.latest
    bars: dict[str, float] = {}
    if latest is not None:
        bars = {f"close {k}": v for k, v in latest.close_codes.items() if v}
        bars.update({k: v for k, v in latest.rejections.items() if v})
    panels.append({"title": "close codes and rejections", "bars": bars})
    return {"title": title, "panels": panels, "rows": 2, "size": (9.6, 4.8), "dpi": 64}


def _fmt(value: float | None, unit: str = "", digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}{unit}"


def _health(name: str, up: bool | None) -> str:
    if up is None:
        return f"{name} ?"
    colour, word = ("#2e7d32", "ok") if up else ("#c62828", "down")
    return f"<span style='color:{colour}'>● {name} {word}</span>"


def header_html(view: HubSeries) -> str:
    """The text line above a hub's figure (the browser test reads the connection count here)."""
    v = view.values()
    label = html.escape(str(v["hub"]))
    if v["error"]:
        return (f"<div class='wslab-dash-header'><b>{label}</b> "
                f"<span style='color:#c62828'>unreachable: {html.escape(v['error'])}</span></div>")
    conns = _fmt(v["connections"])
    parts = [
        f"<span class='wslab-dash-connections'>connections: {conns}</span>",
        f"in {_fmt(v['in_per_s'])}/s, out {_fmt(v['out_per_s'])}/s",
        f"latency p50 {_fmt(v['latency_p50_ms'], ' ms', 1)} p99 {_fmt(v['latency_p99_ms'], ' ms', 1)}",
        f"queue max {_fmt(v['queue_max'])}",
        _health("store", v["store_up"]),
        _health("broker", v["broker_up"]),
    ]
    if v["retry_queue"]:
        parts.append(f"retry queue {_fmt(v['retry_queue'])}")
    return f"<div class='wslab-dash-header'><b>{label}</b> · " + " · ".join(parts) + "</div>"


class HubPanel:
    """One hub's column: a header line and the figure."""

    def __init__(self, view: HubSeries) -> None:
        import ipywidgets as widgets

        self.view = view
        self.header = widgets.HTML(value=header_html(view))
        self.header.add_class("wslab-dash-header-widget")
        self.image = widgets.Image(format="png", layout=widgets.Layout(width="100%",
                                                                      max_width="960px"))
        self.image.add_class("wslab-dash-plot")
        self.notes = widgets.HTML(value="")
        self.box = widgets.VBox([self.header, self.image, self.notes],
                                layout=widgets.Layout(flex="1 1 0", min_width="420px"))
        self.images = 0

    def update_header(self, notes: str = "") -> None:
        text = header_html(self.view)
        if text != self.header.value:  # an unchanged value is not sent to the front end
            self.header.value = text
        if notes != self.notes.value:
            self.notes.value = notes

    def show_png(self, png: bytes) -> None:
        self.image.value = png
        self.images += 1


class FramePanel:
    """The watched connection's newest frames (both directions) and its state timeline."""

    def __init__(self, stream: FrameStream, rows: int = 8) -> None:
        import ipywidgets as widgets

        self.stream = stream
        self.rows = rows
        self.html = widgets.HTML(value=self.render())
        self.html.add_class("wslab-dash-frames")
        self.draws = 0

    def render(self) -> str:
        timeline = " → ".join(f"{html.escape(state)} <small>({t:.2f}s, {html.escape(cause)})"
                              "</small>" for t, state, cause in self.stream.states) or "—"
        rows = []
        for f in self.stream.frame_rows(self.rows):
            text = f.get("text")
            rows.append(
                "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in (
                    f.get("t"), f.get("direction"), f.get("opcode"),
                    "fin" if f.get("fin") else "", "masked" if f.get("masked") else "",
                    f.get("length", ""), "" if text is None else text)) + "</tr>")
        cell = ("style='white-space:nowrap;overflow:hidden;text-overflow:ellipsis;"
                "max-width:640px;padding:0 6px'")
        rows = [r.replace("<td>", f"<td {cell}>") for r in rows]
        table = ("<table style='font-family:monospace;font-size:11px;table-layout:fixed'>"
                 "<tr><th>t</th><th>way</th>"
                 "<th>opcode</th><th></th><th></th><th>bytes</th><th>payload</th></tr>"
                 + "".join(rows) + "</table>")
        return (f"<div><b>watched connection</b> — state: {timeline}<br>"
                f"{self.stream.seen_frames} frames seen, newest {self.rows} shown{table}</div>")

    def redraw(self) -> None:
        self.html.value = self.render()
        self.draws += 1
