"""The control room: a live dashboard on running hubs, with controls that act on the experiment.

- :mod:`.series` — bounded ring-buffer time series;
- :mod:`.sources` — what a hub shows: in this loop, in a thread, or through ``/metrics``;
- :mod:`.sampler` — one task that reads every source each tick and folds in the load's results;
- :mod:`.throttle` — at most two redraws a second (four if asked), none when nothing changed;
- :mod:`.render` — figures drawn in a process of their own (the hub's loop never waits);
- :mod:`.panels` — the widgets: a column per hub, and the frame panel;
- :mod:`.frames` — one connection's frames as they pass, decoded, and its state timeline;
- :mod:`.load` / :mod:`.faults` / :mod:`.controls` — the load generator, the fault switches,
  and the widgets that call them;
- :mod:`.dashboard` — :func:`open_dashboard` and :class:`Dashboard`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._exports import lazy_exports

if TYPE_CHECKING:
    from .dashboard import Dashboard as Dashboard
    from .dashboard import open_dashboard as open_dashboard
    from .frames import FrameStream as FrameStream
    from .series import Series as Series
    from .series import SeriesBook as SeriesBook
    from .sources import RemoteSource as RemoteSource
    from .sources import parse_metrics as parse_metrics
    from .throttle import Throttle as Throttle

# Imported on first use: the drawing process imports .render only (no widgets, no pandas).
_EXPORTS: dict[str, str] = {
    "Dashboard": ".dashboard",
    "open_dashboard": ".dashboard",
    "FrameStream": ".frames",
    "Series": ".series",
    "SeriesBook": ".series",
    "RemoteSource": ".sources",
    "parse_metrics": ".sources",
    "Throttle": ".throttle",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
