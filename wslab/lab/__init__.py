"""Tools for the course's notebooks: inspectors, load and fault injection, plots, checkers.

- :mod:`.inspect` — draw a frame's bytes as the RFC's bit-field diagram;
- :mod:`.load` — many clients, many messages, latency DataFrames;
- :mod:`.faults` — zombie clients, a TCP proxy that blackholes, frozen processes;
- :mod:`.plots` — latency histograms and CDFs, event timelines;
- :mod:`.conformance` — the strict conformance runner (Autobahn's case categories);
- the ``check_...`` functions — each chapter's exercise checkers (a hint, never the answer).
"""

from .checkers import check_frame_exercise as check_frame_exercise
from .checkers import check_header_size_exercise as check_header_size_exercise
from .checkers_heartbeat import check_heartbeat_exercise as check_heartbeat_exercise
from .checkers_messaging import check_delivery_exercise as check_delivery_exercise
from .checkers_messaging import check_gap_request_exercise as check_gap_request_exercise
from .checkers_scaling import check_broker_targets_exercise as check_broker_targets_exercise
from .checkers_scaling import check_hub_count_exercise as check_hub_count_exercise
from .checkers_security import check_rate_limit_exercise as check_rate_limit_exercise
from .checkers_state import check_state_exercise as check_state_exercise
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
