"""The hub's own Prometheus metrics: what ``/metrics`` shows besides the chat's.

:class:`HubMetrics` declares every ``wslab_`` series the composition root owns (build info,
open connections, queue gauges, store and broker health, traffic totals, close codes, refused
handshakes, refused tokens, rate-limit verdicts, error replies, ping RTT) and holds the handles
the hub increments; the label folding (:func:`close_code_label`, :func:`auth_failure_reason`)
lives here with them so that no label can take unbounded values.

``/metrics`` (all ``wslab_`` unless noted): ``build_info{version,python,engine}``,
``open_connections``, ``asyncio_tasks``, ``connections_total``, ``websocket_messages_total{direction}``,
``websocket_bytes_total{direction}``, ``websocket_frames_total{direction}`` (wslab's engine
only: ``websockets`` keeps its frames to itself, and its ``out`` bytes are payloads),
``close_codes_total{direction,code}``, ``handshakes_refused_total{reason}``,
``auth_failures_total{reason}``, ``rate_limit_verdicts_total{verdict}``, ``errors_total{code}``,
``ping_rtt_seconds``, the chat's own metrics, and prometheus_client's ``process_*``,
``python_info`` and ``python_gc_*``. Traffic totals are summed from each connection's own
counters when scraped (see :mod:`wslab.infrastructure.traffic`), so the hot path pays nothing
for them.
"""

from __future__ import annotations

import asyncio
import functools
import platform
from typing import Any

from wslab import __version__
from wslab.application.chat import ChatService
from wslab.foundation.codes import CloseCode
from wslab.infrastructure.manager import ConnectionManager
from wslab.infrastructure.metrics import Metrics
from wslab.infrastructure.ratelimit import Verdict
from wslab.infrastructure.traffic import TrafficTotals

__all__ = [
    "AUTH_FAILURE_REASONS",
    "REFUSAL_REASONS",
    "HubMetrics",
    "auth_failure_reason",
    "close_code_label",
]

#: The ``reason`` label of ``wslab_handshakes_refused_total``: why an upgrade was refused.
REFUSAL_REASONS = (
    "origin", "rate", "cooldown", "capacity", "per_ip", "path", "bad_request", "internal",
)  # fmt: skip

#: The ``reason`` label of ``wslab_auth_failures_total``, from the failure's message.
AUTH_FAILURE_REASONS = (
    "missing",
    "malformed",
    "signature",
    "expired",
    "not_yet_valid",
    "claims",
    "timeout",
    "other",
)

_KNOWN_CLOSE_CODES = frozenset(int(code) for code in CloseCode)


def close_code_label(code: int | None) -> str:
    """A close code as a label value: known codes as themselves, any other as ``other``.

    Peers may send any code from 3000 to 4999: folded, they cannot blow up the series count.
    """
    if code is None:
        return "none"
    return str(code) if code in _KNOWN_CLOSE_CODES else "other"


def auth_failure_reason(message: str) -> str:
    """One of :data:`AUTH_FAILURE_REASONS` for an authentication failure's safe message."""
    text = message.lower()
    if text.startswith("no auth message within"):
        return "timeout"
    if "expired" in text:
        return "expired"
    if "not yet valid" in text:
        return "not_yet_valid"
    if "signature" in text or "algorithm" in text:
        return "signature"
    if "audience" in text or "issuer" in text or "claim" in text or "another user" in text:
        return "claims"
    if "needs a token" in text or "first message must be" in text:
        return "missing"
    if "malformed" in text or "too large" in text or "more than one" in text or "scheme" in text:
        return "malformed"
    return "other"


class HubMetrics:
    """The hub's metric declarations and the handles it counts with (one per hub)."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        engine: str,
        manager: ConnectionManager,
        chat: ChatService,
        broker: Any,
        traffic: TrafficTotals,
    ) -> None:
        self.metrics = metrics
        self.engine = engine
        self.manager = manager
        self.chat = chat
        self.broker = broker
        self.traffic = traffic
        #: The loop the hub runs in, set when it starts: its tasks are counted when scraped.
        self.loop: asyncio.AbstractEventLoop | None = None
        self._declare()

    def _declare(self) -> None:
        m = self.metrics
        m.add_runtime_collectors()
        m.gauge(
            "build_info",
            "The running wslab: version, Python and WebSocket engine (always 1)",
            ["version", "python", "engine"],
        ).set(1, version=__version__, python=platform.python_version(), engine=self.engine)
        m.gauge(
            "open_connections", "WebSocket connections authenticated and open now"
        ).set_function(lambda: len(self.manager))
        # A task that outlives its connection is a leak a soak run must see: counted when
        # scraped, from the loop's own set (the hub's tasks and anything else in its loop).
        m.gauge(
            "asyncio_tasks", "Tasks alive in the hub's event loop (the hub's and any other)"
        ).set_function(lambda: len(asyncio.all_tasks(self.loop)) if self.loop else 0)
        m.gauge("retry_queue", "Messages waiting for the store to come back").set_function(
            lambda: len(self.chat.retry)
        )
        # Read when scraped, never on the hot path: one pass over the open connections.
        m.gauge(
            "outgoing_queue_max", "Longest outgoing queue of any open connection (messages)"
        ).set_function(lambda: max((c.queue_depth for c in self.manager), default=0))
        m.gauge(
            "outgoing_queued_messages", "Messages waiting in every open connection's outgoing queue"
        ).set_function(lambda: sum(c.queue_depth for c in self.manager))
        m.gauge(
            "store_up", "1 while the hub's last use of the message store worked, 0 after a failure"
        ).set_function(lambda: 1.0 if self.chat.store_healthy else 0.0)
        m.gauge("broker_up", "1 while the broker reaches its peers, 0 while it does not").set_function(
            lambda: 1.0 if self.broker.healthy else 0.0
        )
        self.connections_total = m.counter(
            "connections_total", "WebSocket connections authenticated since start"
        )
        self._declare_traffic()
        self.close_codes = m.counter(
            "close_codes_total",
            "Connections closed, by close code sent (direction=out) or received (direction=in; "
            "1006: the connection ended without a close frame)",
            ["direction", "code"],
        )
        refused = m.counter(
            "handshakes_refused_total", "WebSocket upgrade requests refused, by reason", ["reason"]
        )
        self.refused = {reason: refused.labels(reason) for reason in REFUSAL_REASONS}
        failures = m.counter(
            "auth_failures_total",
            "Tokens refused or expired (each closes its connection with 4001), by reason",
            ["reason"],
        )
        self.auth_failures = {r: failures.labels(r) for r in AUTH_FAILURE_REASONS}
        verdicts = m.counter(
            "rate_limit_verdicts_total",
            "Rate-limit verdicts on messages from authenticated connections",
            ["verdict"],
        )
        self.verdicts = {v: verdicts.labels(v.value) for v in Verdict}
        self.errors = m.counter(
            "errors_total", "Error replies to WebSocket requests, by error name", ["code"]
        )
        self.rtt = m.histogram(
            "ping_rtt_seconds",
            "Heartbeat round-trip time",
            buckets=(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5),
        )

    def _declare_traffic(self) -> None:
        """Messages, bytes and (wslab's engine only) frames, summed from the connections' own
        counters when scraped: nothing is counted twice on the hot path."""
        m = self.metrics
        traffic = self.traffic
        engine = self.engine
        messages = m.counter(
            "websocket_messages_total", "WebSocket data messages received and sent", ["direction"]
        )
        out_bytes = "data frames written" if engine == "wslab" else "data payloads sent"
        transferred = m.counter(
            "websocket_bytes_total",
            f"Bytes read from WebSocket sockets (in) and bytes of {out_bytes} (out)",
            ["direction"],
        )
        for direction in ("in", "out"):
            messages.set_function(
                functools.partial(traffic.total, f"messages_{direction}"), direction=direction
            )
            transferred.set_function(
                functools.partial(traffic.total, f"bytes_{direction}"), direction=direction
            )
        if engine == "wslab":  # the websockets library does not show its frames
            frames = m.counter(
                "websocket_frames_total",
                "WebSocket frames (data and control) received and sent",
                ["direction"],
            )
            for direction in ("in", "out"):
                frames.set_function(
                    functools.partial(traffic.total, f"frames_{direction}"), direction=direction
                )
