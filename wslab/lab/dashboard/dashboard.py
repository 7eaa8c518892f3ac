"""The control room: :func:`open_dashboard` and the :class:`Dashboard` it returns.

One dashboard watches one hub or several side by side (a :class:`~wslab.hub.Hub` in this
loop, a :class:`~wslab.hub.ThreadedHub`, or a hub elsewhere by its ``http://`` URL). For each
hub it owns a :class:`~wslab.lab.faults.TcpProxy` in front of it, a load generator whose
clients connect through that proxy, fault switches, and a column of widgets. One sampler task
reads every hub; one renderer process draws the figures; the throttle allows two redraws a
second by default (at most four: ``max_per_second``), none when nothing changed — a figure
changing faster than that is not read any better, and each drawing takes CPU from the hub.

Every control is a plain method, so a cell (and nbval, headless) does what a click does::

    dash = await open_dashboard(hub)
    dash.set_clients(20); dash.set_rate(200)
    dash.faults.latency(0.05)
    dash.snapshot()["latency_p50_ms"]
    await dash.stop()

A second dashboard on the same hub replaces the first (the first is stopped), and a dashboard
stops by itself when every hub it watches in this process has stopped. Stopped, it leaves no
task, thread or process behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from typing import Any

from wslab.foundation.errors import ConfigError

from ..faults import TcpProxy
from .faults import FaultSwitches
from .frames import FrameWatch
from .load import LoadControl
from .render import Renderer
from .sampler import HubSeries, Sampler
from .sources import HubSource, Source, source_for
from .throttle import Throttle

__all__ = ["Dashboard", "FaultGroup", "open_dashboard"]

#: The dashboards open in this process (a new one on the same hub stops the old one).
_OPEN: list[Dashboard] = []


class HubView:
    """Everything the dashboard keeps for one watched hub."""

    def __init__(self, source: Source, *, history: int, rate_window: float, t0: float,
                 max_clients: int, token_factory: Any, workers: int | None,
                 max_per_second: float, ready: asyncio.Event) -> None:
        self.source = source
        self.series = HubSeries(source, maxlen=history, rate_window=rate_window, t0=t0)
        self.proxy = TcpProxy.for_url(source.ws_url, max_connections=max_clients + 16)
        factory = token_factory if token_factory is not None else _token_factory(source)
        self.load = LoadControl(lambda: self.proxy.url_for(source.ws_url), token_factory=factory,
                                on_tick=self.series.add_load_tick, max_clients=max_clients,
                                workers=workers, ready=ready)
        self.token_factory = factory
        self.faults = FaultSwitches([self.proxy], source, self.load)
        self.throttle = Throttle(max_per_second)
        self.watch: FrameWatch | None = None
        self.frame_throttle = Throttle(max_per_second)
        #: What the renderer has of this hub's series (see :func:`~.panels.figure_spec`).
        self.cursor: dict[str, Any] = {}
        self.panel: Any = None
        self.frame_panel: Any = None
        self.key = _key(source)


def _token_factory(source: Source) -> Any:
    if isinstance(source, HubSource):
        return source.hub.token if source.hub.config.auth_required else None
    return getattr(source, "token_factory", None)


def _key(source: Source) -> object:
    if isinstance(source, HubSource):
        return ("hub", id(source.hub))
    return ("url", source.ws_url)


class FaultGroup:
    """The fault switches of every watched hub at once (``dash.faults``); one hub's are
    ``dash.views[i].faults``."""

    def __init__(self, switches: list[FaultSwitches], on_change: Any = None) -> None:
        self.switches = switches
        self.on_change = on_change  # the control widgets follow a switch thrown from a cell

    @property
    def state(self) -> dict[str, Any]:
        return self.switches[0].state

    def _each(self, name: str, *args: Any) -> Any:
        results = [getattr(s, name)(*args) for s in self.switches]
        if self.on_change is not None:
            self.on_change()
        if results and isinstance(results[0], asyncio.Future):
            return asyncio.gather(*results)
        return results[0] if len(results) == 1 else results

    def latency(self, delay: float, jitter: float | None = None) -> None:
        self._each("latency", delay, jitter)

    def jitter(self, jitter: float) -> None:
        self._each("jitter", jitter)

    def bandwidth(self, bytes_per_second: float | None) -> None:
        self._each("bandwidth", bytes_per_second)

    def blackhole(self, on: bool = True) -> None:
        self._each("blackhole", on)

    def cut(self) -> None:
        self._each("cut")

    def freeze_client(self, on: bool = True) -> Any:
        return self._each("freeze_client", on)

    def thaw_client(self) -> Any:
        return self._each("thaw_client")

    def stop_broker(self) -> Any:
        return self._each("stop_broker")

    def start_broker(self) -> Any:
        return self._each("start_broker")

    def stop_store(self) -> Any:
        return self._each("stop_store")

    def start_store(self) -> Any:
        return self._each("start_store")


class Dashboard:
    """A live dashboard on one or more hubs. Build it with :func:`open_dashboard`."""

    def __init__(self, targets: Iterable[Any], *, interval: float = 0.5,
                 max_per_second: float = 2.0, history: int = 600, frames: bool = False,
                 max_clients: int = 200, token_factory: Any = None, workers: int | None = None,
                 rate_window: float = 1.0) -> None:
        sources = [source_for(t) for t in targets]
        if not sources:
            raise ConfigError("open_dashboard needs at least one hub")
        self.t0 = time.time()
        self.ready = asyncio.Event()  # set when started (or stopped): the load may begin
        self.views = [HubView(s, history=history, rate_window=rate_window, t0=self.t0,
                              max_clients=max_clients, token_factory=token_factory,
                              workers=workers, max_per_second=max_per_second,
                              ready=self.ready)
                      for s in sources]
        self.faults = FaultGroup([v.faults for v in self.views], on_change=self._sync_controls)
        self.frames = frames
        self.max_clients = max_clients
        self.sampler = Sampler([v.series for v in self.views], interval=interval,
                               on_tick=self._ticked)
        self.renderer = Renderer(self._png, on_lost=self._lost)
        self.widget: Any = None
        self.controls: Any = None
        self.stopped = False
        self.started = False
        self._stopping: asyncio.Task[None] | None = None
        self._start_task: asyncio.Task[Dashboard] | None = None
        self._build_widgets()

    # -- life ---------------------------------------------------------------------------------------

    def _build_widgets(self) -> None:
        import ipywidgets as w

        from .controls import Controls
        from .panels import HubPanel

        for view in self.views:
            view.panel = HubPanel(view.series)
        self.controls = Controls(self, self.max_clients)
        self.frame_box = w.VBox([])
        self.status = w.HTML(value="<i>starting…</i>")
        columns = w.HBox([v.panel.box for v in self.views],
                         layout=w.Layout(width="100%", flex_flow="row wrap"))
        self.widget = w.VBox([self.status, columns, self.frame_box, self.controls.box])
        self.widget.add_class("wslab-dashboard")

    async def start(self, replacing: list[Dashboard] | None = None) -> Dashboard:
        """Stop the dashboards this one replaces, then start sampling, drawing and the proxies."""
        for old in replacing or []:
            await old.stop()
        try:
            for view in self.views:
                await view.proxy.start()
            self.renderer.start()
            if self.frames:
                await self.watch_frames()
            self.sampler.start()
        except BaseException:
            await self.stop()
            raise
        self.started = True
        self.ready.set()
        self.status.value = ""
        return self

    def __await__(self) -> Any:
        if self._start_task is None:
            raise ConfigError("this dashboard was not opened with open_dashboard")
        return self._start_task.__await__()

    async def watch_frames(self, hub: int = 0) -> Any:
        """Open the frame panel: a client of the dashboard's own, decoded frame by frame."""
        from .panels import FramePanel

        view = self.views[hub]
        if view.watch is None:
            token = view.token_factory("dashboard-watch") if view.token_factory else None
            view.watch = await FrameWatch(view.source.ws_url, token).start()
            view.faults.proxies.append(view.watch.proxy)  # the network faults reach it too
            view.frame_panel = FramePanel(view.watch.stream)
            self.frame_box.children = (*self.frame_box.children, view.frame_panel.html)
        return view.watch.stream

    async def stop(self) -> None:
        """Stop everything this dashboard started: load workers, proxies, renderer, tasks."""
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop())
        await asyncio.shield(self._stopping)

    def stop_soon(self) -> asyncio.Task[None]:
        """Stop from a callback (a button, the hub stopping) without awaiting."""
        self.stop_task = asyncio.ensure_future(self.stop())
        return self.stop_task

    async def _stop(self) -> None:
        with contextlib.suppress(ValueError):
            _OPEN.remove(self)
        self.ready.set()  # a load change waiting for the start goes on, and sees the stop
        await self.sampler.stop()
        for view in self.views:
            with contextlib.suppress(Exception):
                view.faults.thaw_client()  # a stopped worker could not exit
            await view.load.stop()
            with contextlib.suppress(Exception):
                await view.faults.clear()
            if view.watch is not None:
                await view.watch.stop()
            await view.proxy.stop()
        await self.renderer.stop()
        self.stopped = True
        if self.status is not None:
            self.status.value = "<i>dashboard stopped</i>"

    async def wait_stopped(self) -> None:
        while not self.stopped:
            await asyncio.sleep(0.05)

    # -- each tick ----------------------------------------------------------------------------------

    def _ticked(self) -> None:
        local = [v for v in self.views if v.source.local]
        if local and not any(v.source.running for v in local):
            self.stop_soon()  # the hubs it watched are gone: so is the dashboard
            return
        self.redraw()

    def redraw(self) -> None:
        """Redraw what changed, as the throttle allows (called on every tick)."""
        from .panels import figure_spec

        for index, view in enumerate(self.views):
            notes = "; ".join(list(view.load.errors)[-2:])
            view.panel.update_header(notes)
            version = view.series.version
            if view.throttle.ready(version):
                view.throttle.drawn(version)
                self.renderer.submit(str(index), figure_spec(view.series, view.source.label,
                                                             view.cursor))
            if view.watch is not None:
                view.watch.poll()
                if view.frame_throttle.ready(view.watch.stream.version):
                    view.frame_throttle.drawn(view.watch.stream.version)
                    view.frame_panel.redraw()

    def _png(self, key: str, png: bytes) -> None:
        self.views[int(key)].panel.show_png(png)

    def _lost(self, key: str) -> None:
        self.views[int(key)].cursor.clear()  # the next redraw sends every point again

    # -- controls as plain methods --------------------------------------------------------------------

    def _sync_controls(self) -> None:
        if self.controls is not None:
            self.controls.sync()

    def set_load(self, **settings: Any) -> None:
        """Change the load on every watched hub: ``clients``, ``rate``, ``payload_size``, ``pattern``."""
        for view in self.views:
            view.load.set(**settings)
        if self.controls is not None:
            self.controls.sync()

    def set_clients(self, clients: int) -> None:
        self.set_load(clients=clients)

    def set_rate(self, rate: float) -> None:
        self.set_load(rate=rate)

    def set_payload_size(self, size: int) -> None:
        self.set_load(payload_size=size)

    def set_pattern(self, pattern: str) -> None:
        self.set_load(pattern=pattern)

    @property
    def load_settings(self) -> dict[str, Any]:
        return dict(self.views[0].load.settings)

    async def settled(self) -> None:
        """Wait until every load change has been applied."""
        for view in self.views:
            await view.load.settled()

    # -- reading --------------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The current values: the first hub's flat, plus ``hubs`` (one row each), the load
        settings, the fault switches and the redraw counts."""
        rows = [v.series.values() for v in self.views]
        first = dict(rows[0])
        first.update({
            "hubs": rows,
            "load": self.load_settings,
            "faults": dict(self.faults.state),
            "redraws": {v.source.label: v.throttle.counts() for v in self.views},
            "images": sum(v.panel.images for v in self.views if v.panel is not None),
            "samples": self.sampler.ticks,
        })
        return first

    def to_dataframe(self) -> Any:
        """One row per hub of the current values (pandas)."""
        import pandas as pd

        return pd.DataFrame([v.series.values() for v in self.views]).set_index("hub")

    def series(self, name: str, hub: int = 0) -> Any:
        """One series as a pandas Series indexed by seconds since the dashboard opened."""
        import pandas as pd

        t, v = self.views[hub].series.series[name].points()
        return pd.Series(v, index=pd.Index(t, name="t"), name=name, dtype="float64")

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def __repr__(self) -> str:
        state = "stopped" if self.stopped else "running" if self.started else "starting"
        return f"<Dashboard {state} on {', '.join(v.source.label for v in self.views)}>"


def open_dashboard(hub_or_hubs: Any, *, display: bool = True, **options: Any) -> Dashboard:
    """Open a live dashboard on a hub (or a list of hubs, side by side) and show it.

    ``hub_or_hubs``: a :class:`~wslab.hub.Hub` in this loop, a ``ThreadedHub``, an ``http://``
    URL of a hub elsewhere (its ``/metrics``), or a list of them. Options: ``interval``
    (sampling, s), ``max_per_second`` (redraws, 2 by default, ≤ 4), ``history`` (samples kept per series),
    ``frames`` (open the frame panel), ``max_clients``, ``token_factory``, ``workers``.

    Must be called with an event loop running (a notebook cell, or async code). Returns at
    once; ``await`` the dashboard to wait until it runs. A dashboard already open on one of
    these hubs is stopped first.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        raise ConfigError("open_dashboard needs a running event loop: call it in a notebook "
                          "cell or in async code") from None
    targets = list(hub_or_hubs) if isinstance(hub_or_hubs, (list, tuple)) else [hub_or_hubs]
    dash = Dashboard(targets, **options)
    keys = {v.key for v in dash.views}
    replacing = [d for d in _OPEN if keys & {v.key for v in d.views}]
    for old in replacing:
        _OPEN.remove(old)
    _OPEN.append(dash)
    dash._start_task = asyncio.ensure_future(dash.start(replacing))
    if display:
        with contextlib.suppress(ImportError):
            from IPython import get_ipython

            if get_ipython() is not None:
                from IPython.display import display as show

                show(dash.widget)
    return dash
