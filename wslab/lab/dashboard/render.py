"""Drawing the dashboard's figures in a process of its own, so the hub's loop never waits on it.

A 2x3 matplotlib figure costs tens of milliseconds to draw and encode as PNG. Done in the
kernel, that time would be taken from a hub running in the same loop (and the GIL would
stall a hub in a thread), which is exactly what a dashboard must not do to the thing it
watches. So a :class:`Renderer` owns one ``spawn``-ed process: the kernel sends it plain data
(the series' points), the process draws with the Agg backend and sends back PNG bytes.

The process runs at the lowest CPU priority (``nice`` 19), so on a loaded machine it draws
with the CPU the hub and its clients leave over.

Bounds: at most one drawing is in flight and at most one waits per figure (a newer request
for the same figure replaces the waiting one). The child exits when the parent goes away
(it polls the parent's pid), when told to, and is killed by :meth:`Renderer.stop` otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import multiprocessing as mp
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

__all__ = ["Renderer", "render_figure"]

Spec = dict[str, Any]


def _watch_parent(parent_pid: int) -> None:
    while True:
        if os.getppid() != parent_pid:
            os._exit(3)
        time.sleep(0.5)


class _Figures:
    """The child's figures, one per key, reused between drawings (lines are updated in place)."""

    def __init__(self) -> None:
        self.figures: dict[str, Any] = {}

    def draw(self, key: str, spec: Spec) -> bytes:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        panels = spec["panels"]
        shape = (len(panels), tuple(p["title"] for p in panels))
        entry = self.figures.get(key)
        if entry is None or entry["shape"] != shape:
            rows = spec.get("rows", 2)
            cols = -(-len(panels) // rows)
            fig = Figure(figsize=spec.get("size", (9.6, 4.8)), dpi=spec.get("dpi", 64))
            FigureCanvasAgg(fig)
            axes = list(fig.subplots(rows, cols).flat)
            fig.subplots_adjust(left=0.06, right=0.99, top=0.90, bottom=0.09,
                                wspace=0.28, hspace=0.45)
            entry = {"fig": fig, "axes": axes, "lines": {}, "shape": shape}
            self.figures[key] = entry
        fig, axes, lines = entry["fig"], entry["axes"], entry["lines"]
        fig.suptitle(spec.get("title", ""), fontsize=10)
        for index, (ax, panel) in enumerate(zip(axes, panels, strict=False)):
            if "bars" in panel:
                ax.clear()
                bars = panel["bars"] or {"none yet": 0}
                names = list(bars)[-8:]
                ax.barh(names, [bars[n] for n in names], color="#5470c6")
                ax.tick_params(labelsize=7)
            else:
                for line in panel["lines"]:
                    handle = lines.get((index, line["label"]))
                    xs = line["t"]
                    ys = [float("nan") if v is None else v for v in line["v"]]
                    if handle is None:
                        (handle,) = ax.plot(xs, ys, lw=1.2, label=line["label"])
                        lines[(index, line["label"])] = handle
                        ax.legend(fontsize=7, loc="upper left")
                        ax.tick_params(labelsize=7)
                        ax.grid(alpha=0.3)
                    else:
                        handle.set_data(xs, ys)
                # set_ylim below turns y autoscaling off: turn it on again before each relim.
                ax.set_autoscaley_on(True)
                ax.relim()
                ax.autoscale_view()
                if panel.get("ymin0", True):
                    top = ax.get_ylim()[1]
                    ax.set_ylim(0, top if top > 0 else 1)
            ax.set_title(panel["title"], fontsize=9)
        for ax in axes[len(panels):]:
            ax.set_visible(False)
        out = io.BytesIO()
        fig.canvas.print_png(out, pil_kwargs={"compress_level": 1})
        return out.getvalue()


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
            conn.send(("png", key, figures.draw(key, spec)))
        except Exception as exc:  # a bad spec is reported, the process goes on
            conn.send(("error", key, f"{type(exc).__name__}: {exc}"))


class Renderer:
    """The kernel's side: ``submit(key, spec)``; ``on_png(key, png)`` is called on this loop."""

    def __init__(self, on_png: Callable[[str, bytes], None]) -> None:
        self.on_png = on_png
        self.waiting: OrderedDict[str, Spec] = OrderedDict()
        self.busy = False
        self.rendered = 0
        self.errors: deque[str] = deque(maxlen=16)
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
        """Ask for a drawing; a request still waiting for the same key is replaced."""
        if self._conn is None:
            return
        self.waiting.pop(key, None)
        self.waiting[key] = spec
        self._next()

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

    def _readable(self) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            kind, key, body = conn.recv()
        except (EOFError, OSError) as exc:
            self.errors.append(f"renderer gone: {exc}")
            self._detach()
            return
        self.busy = False
        if kind == "png":
            self.rendered += 1
            try:
                self.on_png(key, body)
            except Exception as exc:  # a closed widget must not stop the drawing
                self.errors.append(f"{type(exc).__name__}: {exc}")
        else:
            self.errors.append(body)
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
