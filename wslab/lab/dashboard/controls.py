"""The dashboard's control widgets: load (clients, rate, payload, pattern) and fault switches.

Each widget only calls a plain method of the :class:`~.dashboard.Dashboard` (``set_rate``,
``faults.latency``...), and :meth:`Controls.sync` puts the widgets back in step when a cell
calls those methods directly, so a click and a cell always do the same thing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ..loadgen import PATTERNS

if TYPE_CHECKING:
    from .dashboard import Dashboard

__all__ = ["Controls"]

BANDWIDTHS = (("no cap", 0), ("1 MB/s", 1_000_000), ("100 kB/s", 100_000), ("10 kB/s", 10_000))


class Controls:
    """The widgets bound to a dashboard's methods."""

    def __init__(self, dash: Dashboard, max_clients: int) -> None:
        import ipywidgets as w

        self.dash = dash
        self._syncing = False
        self.errors = w.HTML(value="")
        short = {"description_width": "90px"}
        self.clients = w.IntSlider(0, 0, max_clients, description="clients",
                                   continuous_update=False, style=short)
        self.rate = w.FloatLogSlider(20, base=10, min=0, max=3.7, description="msgs/s",
                                     continuous_update=False, style=short)
        self.payload = w.IntSlider(32, 8, 4000, description="payload B",
                                   continuous_update=False, style=short)
        self.pattern = w.Dropdown(options=list(PATTERNS), value="one_room",
                                  description="rooms", style=short)
        self.latency = w.FloatSlider(0, min=0, max=500, step=5, description="latency ms",
                                     continuous_update=False, style=short)
        self.jitter = w.FloatSlider(0, min=0, max=200, step=5, description="jitter ms",
                                    continuous_update=False, style=short)
        self.bandwidth = w.Dropdown(options=list(BANDWIDTHS), value=0, description="bandwidth",
                                    style=short)
        self.blackhole = w.ToggleButton(False, description="blackhole")
        self.cut = w.Button(description="cut connections")
        self.freeze = w.ToggleButton(False, description="freeze a client")
        self.broker = w.ToggleButton(False, description="broker down")
        self.store = w.ToggleButton(False, description="store down")
        self.stop = w.Button(description="stop dashboard", button_style="danger")

        self._bind(self.clients, lambda v: dash.set_clients(int(v)))
        self._bind(self.rate, lambda v: dash.set_rate(float(v)))
        self._bind(self.payload, lambda v: dash.set_payload_size(int(v)))
        self._bind(self.pattern, lambda v: dash.set_pattern(str(v)))
        self._bind(self.latency, lambda v: dash.faults.latency(v / 1000.0))
        self._bind(self.jitter, lambda v: dash.faults.jitter(v / 1000.0))
        self._bind(self.bandwidth, lambda v: dash.faults.bandwidth(v or None))
        self._bind(self.blackhole, lambda v: dash.faults.blackhole(bool(v)))
        self._bind(self.freeze, lambda v: dash.faults.freeze_client(bool(v)))
        self._bind(self.broker, lambda v: dash.faults.stop_broker() if v
                   else dash.faults.start_broker())
        self._bind(self.store, lambda v: dash.faults.stop_store() if v
                   else dash.faults.start_store())
        self.cut.on_click(lambda _: self._call(dash.faults.cut))
        self.stop.on_click(lambda _: self._call(dash.stop_soon))

        load = w.VBox([w.HTML("<b>load</b>"), self.clients, self.rate, self.payload, self.pattern])
        net = w.VBox([w.HTML("<b>network</b>"), self.latency, self.jitter, self.bandwidth,
                      w.HBox([self.blackhole, self.cut])])
        deps = w.VBox([w.HTML("<b>processes</b>"), self.freeze, self.broker, self.store, self.stop])
        self.box = w.VBox([w.HBox([load, net, deps]), self.errors])

    def _call(self, action: Callable[[], Any]) -> None:
        try:
            action()
            self.errors.value = ""
        except Exception as exc:  # shown under the controls, never a traceback in the cell
            self.errors.value = f"<span style='color:#c62828'>{type(exc).__name__}: {exc}</span>"

    def _bind(self, widget: Any, action: Callable[[Any], Any]) -> None:
        def changed(change: dict[str, Any]) -> None:
            if not self._syncing:
                self._call(lambda: action(change["new"]))

        widget.observe(changed, names="value")

    @contextlib.contextmanager
    def _quiet(self) -> Iterator[None]:
        self._syncing = True
        try:
            yield
        finally:
            self._syncing = False

    def sync(self) -> None:
        """Show the current settings (after a cell called the plain methods)."""
        settings = self.dash.load_settings
        state = self.dash.faults.state
        with self._quiet():
            self.clients.value = settings["clients"]
            self.rate.value = settings["rate"]
            self.payload.value = max(8, settings["payload_size"])
            self.pattern.value = settings["pattern"]
            self.latency.value = state["latency"] * 1000
            self.jitter.value = state["jitter"] * 1000
            self.blackhole.value = state["blackhole"]
            self.freeze.value = state["frozen_pid"] is not None
            self.broker.value = state["broker_down"]
            self.store.value = state["store_down"]
