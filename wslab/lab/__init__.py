"""Tools for the course's notebooks: inspectors, load and fault injection, plots, checkers.

- :mod:`.inspect` — draw a frame's bytes as the RFC's bit-field diagram;
- :mod:`.load` — many clients, many messages, latency DataFrames;
- :mod:`.faults` — zombie clients, a TCP proxy that delays, throttles, stalls, partitions and
  resets (and a tap that shows what it relays), frozen processes;
- :mod:`.history` — a recorder and :func:`check_history`, the Maelstrom-style checker;
- :mod:`.plots` — latency histograms and CDFs, event timelines;
- :mod:`.dashboard` — :func:`open_dashboard`, the live control room;
- :mod:`.conformance` — the strict conformance runner (Autobahn's case categories);
- the ``check_...`` functions — each chapter's exercise checkers (a hint, never the answer).

Nothing is imported before it is used, so ``import wslab.lab`` pulls in neither ipywidgets nor
pandas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._exports import lazy_exports

if TYPE_CHECKING:
    from .checkers.frames import check_frame_exercise as check_frame_exercise
    from .checkers.frames import check_header_size_exercise as check_header_size_exercise
    from .checkers.heartbeat import check_heartbeat_exercise as check_heartbeat_exercise
    from .checkers.messaging import check_delivery_exercise as check_delivery_exercise
    from .checkers.messaging import check_gap_request_exercise as check_gap_request_exercise
    from .checkers.scaling import check_broker_targets_exercise as check_broker_targets_exercise
    from .checkers.scaling import check_hub_count_exercise as check_hub_count_exercise
    from .checkers.security import check_rate_limit_exercise as check_rate_limit_exercise
    from .checkers.state import check_state_exercise as check_state_exercise
    from .dashboard import Dashboard as Dashboard
    from .dashboard import open_dashboard as open_dashboard
    from .faults import FrozenProcess as FrozenProcess
    from .faults import LinkShape as LinkShape
    from .faults import Tap as Tap
    from .faults import TcpProxy as TcpProxy
    from .faults import ZombieClient as ZombieClient
    from .history import HistoryRecorder as HistoryRecorder
    from .history import HistoryVerdict as HistoryVerdict
    from .history import check_history as check_history
    from .inspect import describe_frame as describe_frame
    from .inspect import frame_diagram as frame_diagram
    from .inspect import frame_html as frame_html
    from .inspect import show_frame as show_frame
    from .inspect import split_frames as split_frames
    from .loadgen import LoadError as LoadError
    from .loadgen import LoadResult as LoadResult
    from .loadgen import LoadRun as LoadRun
    from .loadgen import run_load as run_load
    from .loadgen import start_load as start_load
    from .loadgen import sweep as sweep

# Imported on first use (see ._exports): ``import wslab.lab`` stays light.
_EXPORTS: dict[str, str] = {
    "check_frame_exercise": ".checkers.frames",
    "check_header_size_exercise": ".checkers.frames",
    "check_heartbeat_exercise": ".checkers.heartbeat",
    "check_delivery_exercise": ".checkers.messaging",
    "check_gap_request_exercise": ".checkers.messaging",
    "check_broker_targets_exercise": ".checkers.scaling",
    "check_hub_count_exercise": ".checkers.scaling",
    "check_rate_limit_exercise": ".checkers.security",
    "check_state_exercise": ".checkers.state",
    "FrozenProcess": ".faults",
    "LinkShape": ".faults",
    "Tap": ".faults",
    "TcpProxy": ".faults",
    "ZombieClient": ".faults",
    "HistoryRecorder": ".history",
    "HistoryVerdict": ".history",
    "check_history": ".history",
    "describe_frame": ".inspect",
    "frame_diagram": ".inspect",
    "frame_html": ".inspect",
    "show_frame": ".inspect",
    "split_frames": ".inspect",
    "LoadError": ".loadgen",
    "LoadResult": ".loadgen",
    "LoadRun": ".loadgen",
    "run_load": ".loadgen",
    "start_load": ".loadgen",
    "sweep": ".loadgen",
    "Dashboard": ".dashboard",
    "open_dashboard": ".dashboard",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
