"""A load generator: real WebSocket clients in worker processes, open or closed loop.

- :mod:`.spec` — the validated run (:class:`LoadSpec`) and each client's plan;
- :mod:`.worker` — one worker process (``websockets`` clients, records, per-second snapshots);
- :mod:`.pool` — the worker processes of a run: spawned, read from, always reaped;
- :mod:`.coordinator` — :func:`run_load` / :func:`start_load`: readiness, stream, gather;
- :mod:`.progress` — a long run's progress bar (tqdm, an ipywidgets bar, or text);
- :mod:`.results` — :class:`LoadResult` DataFrames; :mod:`.sweeps` — latency against load.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._exports import lazy_exports

if TYPE_CHECKING:
    from .coordinator import LoadRun as LoadRun
    from .coordinator import default_workers as default_workers
    from .coordinator import run_load as run_load
    from .coordinator import start_load as start_load
    from .results import LoadResult as LoadResult
    from .spec import PATTERNS as PATTERNS
    from .spec import LoadError as LoadError
    from .spec import LoadSpec as LoadSpec
    from .sweeps import SweepFrame as SweepFrame
    from .sweeps import sweep as sweep

# Imported on first use: a worker process imports .worker only, without pandas.
_EXPORTS: dict[str, str] = {
    "LoadRun": ".coordinator",
    "default_workers": ".coordinator",
    "run_load": ".coordinator",
    "start_load": ".coordinator",
    "LoadResult": ".results",
    "PATTERNS": ".spec",
    "LoadError": ".spec",
    "LoadSpec": ".spec",
    "SweepFrame": ".sweeps",
    "sweep": ".sweeps",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
