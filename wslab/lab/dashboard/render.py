"""Drawing the dashboard's figures in a process of its own, so the hub's loop never waits on it.

A 2x3 matplotlib figure drawn whole costs a couple of hundred milliseconds of CPU (tick labels,
titles and legends are laid out again each time). Done in the kernel, that time would be
taken from a hub running in the same loop (and the GIL would stall a hub in a thread), which
is exactly what a dashboard must not do to the thing it watches. So a :class:`Renderer` owns
one ``spawn``-ed process: the kernel sends it plain data — only the samples that are new since
the last drawing (see :func:`~.panels.figure_spec`) — the process draws with the Agg backend
and sends back PNG bytes.

On a small machine the drawing process competes with the hub for the CPU, so its CPU is what
a dashboard costs. It keeps that small: the axes are laid out with headroom, and a panel is
laid out again (alone) only when its data leaves them; every other drawing restores the
laid-out background and draws just the lines (blitting, about 5-15 ms), and the PNG is
encoded at the fastest zlib level. It also runs at the lowest CPU priority (``nice`` 19), so on a loaded machine it draws
with the CPU the hub and its clients leave over.

Bounds: at most one drawing is in flight and at most one waits per figure (a newer request
for the same figure is merged into the waiting one). The child exits when the parent goes
away (it polls the parent's pid), when told to, and is killed by :meth:`Renderer.stop`
otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing as mp
import os
import struct
import threading
import time
import zlib
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

__all__ = ["Renderer", "encode_png", "merge_specs", "render_figure"]

Spec = dict[str, Any]

#: Room left beyond the newest sample when the axes are laid out, as a share of the time shown:
#: new samples land inside it and need only their lines drawn again, not the whole figure.
X_HEADROOM = 0.2
#: ... and at least this many seconds, so a young dashboard is not laid out on every sample.
X_MIN_HEADROOM = 10.0
#: Room above the highest value (and below the lowest, where the axis does not start at 0);
#: the top is then rounded up to a step of :data:`NICE`, so a growing quantity (a queue
#: filling up) moves the limits a few times per power of ten, not on every sample.
Y_HEADROOM = 0.1
NICE = (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0)
#: Limits this many times wider than the data needs are laid out again (a drained queue's panel
#: shrinks back instead of showing a flat line at the bottom for ever).
TOO_LOOSE = 2.5


def _watch_parent(parent_pid: int) -> None:
    while True:
        if os.getppid() != parent_pid:
            os._exit(3)
        time.sleep(0.5)


def _nan(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def _span(values: Any) -> tuple[float, float] | None:
    finite = [v for v in values if v == v]  # NaN is the only value unequal to itself
    return (min(finite), max(finite)) if finite else None


def _x_limits(lo: float, hi: float) -> tuple[float, float]:
    width = max(hi - lo, 1.0)
    return lo - 0.02 * width, hi + max(X_HEADROOM * width, X_MIN_HEADROOM)


def _nice(value: float) -> float:
    """The smallest 1, 1.5, 2, 3, 4, 5, 6 or 8 times a power of ten at or above ``value`` > 0."""
    power = 10.0 ** math.floor(math.log10(value))
    return next(step * power for step in NICE if step * power >= value * 0.999999)


def _y_limits(lo: float, hi: float, from_zero: bool) -> tuple[float, float]:
    if from_zero:
        return 0.0, (_nice(hi * (1 + Y_HEADROOM)) if hi > 0 else 1.0)
    span = hi - lo if hi > lo else (abs(hi) or 1.0)
    return lo - Y_HEADROOM * span, hi + Y_HEADROOM * span


def _needs_layout(current: tuple[float, float], data: tuple[float, float],
                  target: tuple[float, float]) -> bool:
    """True when the data left the current limits, or they are far wider than it needs."""
    lo, hi = current
    if data[0] < lo or data[1] > hi:
        return True
    return (hi - lo) > TOO_LOOSE * (target[1] - target[0])


class _Figure:
    """One figure kept between drawings: its axes, lines, the points they show, and the
    background (everything but the lines) as it was last laid out.

    Most new samples fall inside the current limits: then the background is restored and only
    the lines are drawn again (blitting), a few milliseconds instead of the whole figure's
    tick labels, titles and legends. When a panel's data leaves its limits (there is
    headroom, so that is rare) or its lines change, that panel alone is drawn again inside its
    cell; the whole figure only at the start, when the title or the bars change, or when a
    panel's labels would leave its cell.
    """

    def __init__(self, spec: Spec) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        panels = spec["panels"]
        rows = spec.get("rows", 2)
        cols = -(-len(panels) // rows)
        self.shape = _shape(spec)
        self.fig = Figure(figsize=spec.get("size", (9.6, 4.8)), dpi=spec.get("dpi", 64))
        self.canvas = FigureCanvasAgg(self.fig)
        self.axes = list(self.fig.subplots(rows, cols).flat)
        self.fig.subplots_adjust(left=0.06, right=0.99, top=0.90, bottom=0.09,
                                 wspace=0.28, hspace=0.45)
        for ax in self.axes[len(panels):]:
            ax.set_visible(False)
        self.title: str | None = None
        self.suptitle: Any = None
        # Per line panel: its labels, its line artists, their points (bounded like the series).
        self.labels: dict[int, tuple[str, ...]] = {}
        self.lines: dict[int, list[Any]] = {}
        self.points: dict[tuple[int, str], tuple[deque[float], deque[float]]] = {}
        self.bars: dict[int, dict[str, float]] = {}
        self.titles: dict[int, str] = {}
        self.background: Any = None
        self.legends: list[Any] = []
        self.limits: dict[tuple[int, str], tuple[float, float]] = {}
        #: Each panel's cell and the same pixels blank (set at the first layout), and the
        #: extent of what each panel drew at its last layout.
        self.cells: list[Any] | None = None
        self.blank: list[Any] = []
        self.extents: list[Any] = []
        self.layouts = 0
        self.panel_layouts = 0
        self.blits = 0

    def update(self, spec: Spec) -> set[int]:
        """Take in a spec's data; the panels that must be laid out again (:data:`WHOLE`: the
        figure), none when only lines moved."""
        dirty: set[int] = set() if self.background is not None else {WHOLE}
        title = spec.get("title", "")
        if title != self.title:
            self.title = title
            self.suptitle = self.fig.suptitle(title, fontsize=10)
            dirty.add(WHOLE)
        for index, (ax, panel) in enumerate(zip(self.axes, spec["panels"], strict=False)):
            if panel["title"] != self.titles.get(index):
                self.titles[index] = panel["title"]
                ax.set_title(panel["title"], fontsize=9)
                dirty.add(index)
            if "bars" in panel:
                bars = dict(panel["bars"] or {"none yet": 0})
                if bars != self.bars.get(index):
                    self.bars[index] = bars
                    ax.clear()
                    ax.set_title(panel["title"], fontsize=9)
                    names = list(bars)[-8:]
                    ax.barh(names, [bars[n] for n in names], color="#5470c6")
                    ax.tick_params(labelsize=7)
                    dirty.add(WHOLE)  # its labels' width is anyone's guess: all of it
                continue
            if self._take_lines(index, ax, panel):
                dirty.add(index)
        return dirty

    def _take_lines(self, index: int, ax: Any, panel: Spec) -> bool:
        labels = tuple(line["label"] for line in panel["lines"])
        layout = False
        if labels != self.labels.get(index):
            # New (or other) lines in this panel: build them, with their legend.
            for handle in self.lines.get(index, []):
                handle.remove()
            for key in [k for k in self.points if k[0] == index]:
                del self.points[key]
            self.labels[index] = labels
            self.lines[index] = []
            for label in labels:
                (handle,) = ax.plot([], [], lw=1.2, label=label)
                handle.set_animated(True)  # drawn over the background, not into it
                self.lines[index].append(handle)
            ax.legend(fontsize=7, loc="upper left")
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
            layout = True
        for handle, line in zip(self.lines[index], panel["lines"], strict=True):
            key = (index, line["label"])
            maxlen = int(line.get("maxlen") or max(len(line["t"]), 1))
            held = self.points.get(key)
            if held is None or not line.get("append") or held[0].maxlen != maxlen:
                held = (deque(maxlen=maxlen), deque(maxlen=maxlen))
                self.points[key] = held
            held[0].extend(line["t"])
            held[1].extend(_nan(v) for v in line["v"])
            handle.set_data(list(held[0]), list(held[1]))
        return self._limits(index, ax, panel) or layout

    def _limits(self, index: int, ax: Any, panel: Spec) -> bool:
        """Move the limits if the data asks for it (True: the figure must be laid out)."""
        ts: list[float] = []
        vs: list[float] = []
        for line in self.lines[index]:
            t, v = line.get_data()
            if len(t):
                ts += (t[0], t[-1])
                vs.extend(v)
        # A panel with nothing yet shows the first seconds, from 0 up.
        x_data = _span(ts) or (0.0, 0.0)
        from_zero = panel.get("ymin0", True)
        y_data = _span(vs) or (0.0, 0.0 if from_zero else 1.0)
        if from_zero:
            y_data = (0.0, max(y_data[1], 0.0))
        layout = False
        for axis, data, target, move in (
            ("x", x_data, _x_limits(*x_data), ax.set_xlim),
            ("y", y_data, _y_limits(*y_data, from_zero), ax.set_ylim),
        ):
            current = self.limits.get((index, axis))
            if current is None or _needs_layout(current, data, target):
                move(*target)
                self.limits[index, axis] = target
                layout = True
        return layout

    def draw(self, spec: Spec) -> bytes:
        """The figure with ``spec``'s data, as PNG bytes."""
        dirty = self.update(spec)
        if dirty:
            if WHOLE in dirty or not self._relayout(dirty):
                self._draw_whole()
                self.layouts += 1
            else:
                self.panel_layouts += 1
            self.background = self.canvas.copy_from_bbox(self.fig.bbox)
            # The legends' pixels, put back over the lines each time (as in a whole drawing,
            # the legend covers the lines; its text is not laid out again).
            self.legends = [self.canvas.copy_from_bbox(legend.get_window_extent())
                            for legend in (self.axes[i].get_legend() for i in self.lines)
                            if legend is not None]
        else:
            self.canvas.restore_region(self.background)
            self.blits += 1
        for index, handles in self.lines.items():
            ax = self.axes[index]
            for handle in handles:
                ax.draw_artist(handle)
        for region in self.legends:
            self.canvas.restore_region(region)
        return self.png()

    def _draw_whole(self) -> None:
        renderer = self.canvas.get_renderer()
        if self.cells is None:
            # Once: where each panel may draw (its cell), and those cells left blank.
            self.canvas.draw()
            self.cells = _cells(self.fig, self.axes, self.suptitle, renderer)
            shown = [a for a in (*self.axes, self.suptitle) if a is not None]
            visible = [a.get_visible() for a in shown]
            for artist in shown:
                artist.set_visible(False)
            self.canvas.draw()
            self.blank = [self.canvas.copy_from_bbox(cell) for cell in self.cells]
            for artist, was in zip(shown, visible, strict=True):
                artist.set_visible(was)
        self.canvas.draw()  # everything but the (animated) lines
        self.extents = [ax.get_tightbbox(renderer) if ax.get_visible() else None
                        for ax in self.axes]

    def _relayout(self, dirty: set[int]) -> bool:
        """Draw only the ``dirty`` panels again, each inside its cell, if that is safe: no
        other panel reaches into the cell, and the panel's new ticks and labels fit in it."""
        if self.cells is None:
            return False
        renderer = self.canvas.get_renderer()
        extents = {}
        for index in dirty:
            cell = self.cells[index]
            for other, extent in enumerate(self.extents):
                if other != index and extent is not None and _overlap(extent, cell):
                    return False
            extent = self.axes[index].get_tightbbox(renderer)
            if extent is None or not _inside(extent, cell):
                return False
            extents[index] = extent
        self.canvas.restore_region(self.background)
        for index, extent in extents.items():
            self.canvas.restore_region(self.blank[index])
            self.axes[index].draw(renderer)  # skips its (animated) lines
            self.extents[index] = extent
        return True

    def png(self) -> bytes:
        return encode_png(self.canvas.buffer_rgba())


#: In the set of panels to lay out again: the whole figure.
WHOLE = -1
#: Pixels a panel's tick labels may reach past its axes to the right (the last x label).
OVERHANG = 8.0


def _cells(fig: Any, axes: list[Any], suptitle: Any, renderer: Any) -> list[Any]:
    """Each panel's cell (display pixels): from the right edge of the panel on its left (plus
    :data:`OVERHANG`) to its own right edge (plus as much), and from half-way to the row above
    (the suptitle's bottom in the first row) to half-way to the row below."""
    from matplotlib.transforms import Bbox

    width, height = fig.canvas.get_width_height()
    rows, cols = axes[0].get_subplotspec().get_gridspec().get_geometry()
    top = float(height)
    if suptitle is not None and suptitle.get_text():
        top = suptitle.get_window_extent(renderer).y0
    cells = []
    for index, ax in enumerate(axes):
        row, col = divmod(index, cols)
        box = ax.bbox
        left = 0.0 if col == 0 else axes[index - 1].bbox.x1 + OVERHANG
        right = float(width) if col == cols - 1 else box.x1 + OVERHANG
        upper = top if row == 0 else (axes[index - cols].bbox.y0 + box.y1) / 2
        lower = 0.0 if row == rows - 1 else (box.y0 + axes[index + cols].bbox.y1) / 2
        cells.append(Bbox([[left, lower], [right, upper]]))
    return cells


def _overlap(a: Any, b: Any) -> bool:
    return a.x0 - 1 < b.x1 and b.x0 < a.x1 + 1 and a.y0 - 1 < b.y1 and b.y0 < a.y1 + 1


def _inside(inner: Any, outer: Any) -> bool:
    return (inner.x0 >= outer.x0 + 1 and inner.x1 <= outer.x1 - 1
            and inner.y0 >= outer.y0 + 1 and inner.y1 <= outer.y1 - 1)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack("!I", len(data)) + kind + data + struct.pack("!I", zlib.crc32(kind + data))


def encode_png(rgba: Any) -> bytes:
    """An RGB PNG of an RGBA pixel buffer (rows top first), at zlib's fastest level.

    Written here rather than through PIL: no per-row filter search (the rows go unfiltered: a
    chart is mostly runs of one colour, which deflate takes well as they are) halves the time
    of each image for a slightly larger file; the pixels are the same.
    """
    import numpy as np

    pixels = np.asarray(rgba)
    height, width = pixels.shape[:2]
    rows = np.empty((height, width * 3 + 1), dtype=np.uint8)
    rows[:, 0] = 0  # filter type None on every row
    rgb = rows[:, 1:].reshape(height, width, 3)
    for channel in range(3):  # one channel at a time: a third faster than a 3-of-4 copy
        rgb[:, :, channel] = pixels[:, :, channel]
    header = struct.pack("!IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(rows.tobytes(), 1)) + _chunk(b"IEND", b""))


def _shape(spec: Spec) -> tuple[Any, ...]:
    panels = spec["panels"]
    return (len(panels), spec.get("rows", 2), tuple(spec.get("size", (9.6, 4.8))),
            spec.get("dpi", 64), tuple(("bars" in p) for p in panels))


class _Figures:
    """The child's figures, one per key, reused between drawings."""

    def __init__(self) -> None:
        self.figures: dict[str, _Figure] = {}

    def draw(self, key: str, spec: Spec) -> bytes:
        figure = self.figures.get(key)
        if figure is None or figure.shape != _shape(spec):
            figure = self.figures[key] = _Figure(spec)
        try:
            return figure.draw(spec)
        except Exception:
            del self.figures[key]  # built again from the next (whole) spec
            raise


def merge_specs(older: Spec, newer: Spec) -> Spec | None:
    """One spec saying what ``older`` then ``newer`` say (``newer`` replaces ``older`` while
    both wait to be drawn), or None when they do not fit together (other panels).

    A line of ``newer`` marked ``"append"`` carries only new points: the older line's points
    go in front of them (bounded by the line's ``maxlen``), so nothing is lost in between.
    """
    old_panels, new_panels = older["panels"], newer["panels"]
    if [p["title"] for p in old_panels] != [p["title"] for p in new_panels]:
        return None
    panels = []
    for old, new in zip(old_panels, new_panels, strict=True):
        if "lines" not in new or "lines" not in old:
            panels.append(new)
            continue
        before = {line["label"]: line for line in old["lines"]}
        lines = []
        for line in new["lines"]:
            prior = before.get(line["label"])
            if line.get("append") and prior is not None:
                keep = int(line.get("maxlen") or prior.get("maxlen") or 0) or None
                line = dict(line, t=(prior["t"] + line["t"])[-keep if keep else 0:],
                            v=(prior["v"] + line["v"])[-keep if keep else 0:],
                            append=bool(prior.get("append")))
            lines.append(line)
        panels.append(dict(new, lines=lines))
    return dict(newer, panels=panels)


def render_figure(spec: Spec, key: str = "figure") -> bytes:
    """Draw one figure spec to PNG in this process (tests and the README's screenshot use it)."""
    return _Figures().draw(key, spec)


def renderer_main(conn: Any, parent_pid: int) -> None:
    """The drawing process: receive ``(key, spec)``, answer ``(key, png)``; ``None`` ends it."""
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    # Drawing takes only CPU nobody else wants: on a busy machine the hub and its clients go
    # first, and the figure is a little late rather than the hub a little slow.
    with contextlib.suppress(OSError, AttributeError):
        os.nice(19)
    import matplotlib

    matplotlib.use("Agg")
    figures = _Figures()
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        key, spec = job
        try:
            png = figures.draw(key, spec)
            figure = figures.figures[key]
            conn.send(("png", key, png, {"layouts": figure.layouts, "blits": figure.blits,
                                         "panel_layouts": figure.panel_layouts}))
        except Exception as exc:  # a bad spec is reported, the process goes on
            conn.send(("error", key, f"{type(exc).__name__}: {exc}", None))


class Renderer:
    """The kernel's side: ``submit(key, spec)``; ``on_png(key, png)`` is called on this loop."""

    def __init__(self, on_png: Callable[[str, bytes], None],
                 on_lost: Callable[[str], None] | None = None) -> None:
        self.on_png = on_png
        #: Called with a key whose drawing failed (or whose waiting points could not be kept):
        #: the next spec for it must carry every point again.
        self.on_lost = on_lost
        self.waiting: OrderedDict[str, Spec] = OrderedDict()
        self.busy = False
        self.rendered = 0
        self.errors: deque[str] = deque(maxlen=16)
        #: Per figure, how many drawings were laid out whole and how many only blitted.
        self.counts: dict[str, dict[str, int]] = {}
        self._process: Any = None
        self._conn: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe(duplex=True)
        self._process = ctx.Process(target=renderer_main, args=(child, os.getpid()),
                                    name="wslab-dash-render", daemon=True)
        self._process.start()
        child.close()
        self._conn = parent
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(parent.fileno(), self._readable)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def submit(self, key: str, spec: Spec) -> None:
        """Ask for a drawing; a request still waiting for the same key is merged into it."""
        if self._conn is None:
            self._lost(key)  # not drawn: what it carried must be sent again
            return
        older = self.waiting.pop(key, None)
        if older is not None:
            merged = merge_specs(older, spec)
            if merged is None:
                self._lost(key)
            else:
                spec = merged
        self.waiting[key] = spec
        self._next()

    def _lost(self, key: str) -> None:
        if self.on_lost is not None:
            self.on_lost(key)

    def _next(self) -> None:
        if self.busy or not self.waiting or self._conn is None:
            return
        key, spec = self.waiting.popitem(last=False)
        self.busy = True
        # Only one job is in flight, so the child is waiting in recv(): the send does not block.
        try:
            self._conn.send((key, spec))
        except (OSError, ValueError) as exc:
            self.busy = False
            self.errors.append(f"renderer gone: {exc}")
            self._lost(key)

    def _readable(self) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            kind, key, body, counts = conn.recv()
        except (EOFError, OSError) as exc:
            self.errors.append(f"renderer gone: {exc}")
            self._detach()
            return
        self.busy = False
        if kind == "png":
            self.rendered += 1
            self.counts[key] = counts
            try:
                self.on_png(key, body)
            except Exception as exc:  # a closed widget must not stop the drawing
                self.errors.append(f"{type(exc).__name__}: {exc}")
        else:
            self.errors.append(body)
            self._lost(key)
        self._next()

    def _detach(self) -> None:
        if self._conn is not None and self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._conn.fileno())

    async def stop(self) -> None:
        """End the process (asked first, then killed) and close the pipe."""
        conn, process = self._conn, self._process
        self._detach()
        self._conn = None
        if conn is not None:
            with contextlib.suppress(OSError, ValueError):
                conn.send(None)
        if process is not None and process.pid is not None:
            deadline = time.monotonic() + 3.0
            while process.is_alive() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            if process.is_alive():
                process.kill()
                while process.is_alive() and time.monotonic() < deadline + 2.0:
                    await asyncio.sleep(0.02)
            process.join(0.5)  # it has exited: this only reaps it (no executor thread left over)
            with contextlib.suppress(ValueError):
                process.close()
        if conn is not None:
            conn.close()
        self._process = None
