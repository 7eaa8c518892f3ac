"""Where a dashboard's numbers come from: a hub in this loop, a hub in a thread, or a ``/metrics`` URL.

Each source answers :meth:`read` with one :class:`Reading` — the totals and levels an operator
would scrape from the hub: connections, messages in/out, heartbeat RTT, outgoing queue depth,
close codes, refusals by reason, store and broker health. The lab never reaches into the hub's
internals: a local hub's registered metrics (:attr:`Hub.metrics`) are read directly because
that is cheaper than formatting and parsing the same numbers, and a hub in another process is
read through its ``GET /metrics`` text, parsed with prometheus_client's parser.
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from wslab.foundation.errors import ConfigError

__all__ = [
    "HubSource",
    "Reading",
    "RemoteSource",
    "Source",
    "ThreadedHubSource",
    "source_for",
]

#: The most bytes of a ``/metrics`` answer a remote source reads (a hub's is a few tens of KB).
MAX_METRICS_BYTES = 4 * 1024 * 1024


@dataclass
class Reading:
    """One look at a hub. Totals are cumulative (the sampler turns them into rates)."""

    time: float
    connections: float = 0.0
    messages_in: float = 0.0
    messages_out: float = 0.0
    rtt_count: float = 0.0
    rtt_sum: float = 0.0
    #: Recent-window quantiles (seconds) where the source has them (a local hub), else None.
    rtt_p50: float | None = None
    rtt_p99: float | None = None
    queue_max: float | None = None
    queue_total: float | None = None
    retry_queue: float = 0.0
    store_up: bool | None = None
    broker_up: bool | None = None
    #: ``"out 1000"``, ``"in 1006"``... -> connections closed with that code (cumulative).
    close_codes: dict[str, float] = field(default_factory=dict)
    #: ``"handshake: origin"``, ``"auth: expired"``, ``"rate limit: reject"`` -> count.
    rejections: dict[str, float] = field(default_factory=dict)
    #: Why the source could not be read (then every number above is a default).
    error: str | None = None


class Source:
    """A hub the dashboard watches. ``label`` names its column; ``local`` hubs can be switched off."""

    label: str = "hub"
    local: bool = False

    async def read(self) -> Reading:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        """False once the watched hub has stopped (a remote hub is assumed to go on)."""
        return True

    @property
    def ws_url(self) -> str:
        raise NotImplementedError


def _reading_from_metrics(metrics: Any) -> Reading:
    """A reading from a :class:`~wslab.infrastructure.metrics.Metrics` registry (the hub's loop)."""
    reading = Reading(time=time.time())

    def value(name: str, **labels: str) -> float | None:
        if name not in metrics:
            return None
        return float(metrics.get(name).value(**labels))

    reading.connections = value("open_connections") or 0.0
    reading.messages_in = value("websocket_messages_total", direction="in") or 0.0
    reading.messages_out = value("websocket_messages_total", direction="out") or 0.0
    reading.queue_max = value("outgoing_queue_max")
    reading.queue_total = value("outgoing_queued_messages")
    reading.retry_queue = value("retry_queue") or 0.0
    store, broker = value("store_up"), value("broker_up")
    reading.store_up = None if store is None else store > 0
    reading.broker_up = None if broker is None else broker > 0
    if "ping_rtt_seconds" in metrics:
        rtt = metrics.get("ping_rtt_seconds").summary()
        reading.rtt_count, reading.rtt_sum = float(rtt["count"]), float(rtt["sum"])
        reading.rtt_p50, reading.rtt_p99 = rtt["p50"], rtt["p99"]
    for name, prefix, key in (
        ("close_codes_total", "", None),
        ("handshakes_refused_total", "handshake: ", "reason"),
        ("auth_failures_total", "auth: ", "reason"),
        ("rate_limit_verdicts_total", "rate limit: ", "verdict"),
    ):
        if name not in metrics:
            continue
        for labels, child in metrics.get(name).series():
            count = float(child.get())
            if key is None:
                reading.close_codes[f"{labels['direction']} {labels['code']}"] = count
            elif labels.get(key) != "allow" and count:
                reading.rejections[prefix + labels[key]] = count
    return reading


class HubSource(Source):
    """A :class:`~wslab.hub.Hub` running in the dashboard's own event loop."""

    local = True

    def __init__(self, hub: Any) -> None:
        self.hub = hub
        self.label = hub.hub_id

    async def read(self) -> Reading:
        return _reading_from_metrics(self.hub.metrics)

    @property
    def running(self) -> bool:
        return bool(self.hub.running)

    @property
    def ws_url(self) -> str:
        return str(self.hub.ws_url)

    def token(self, user: str) -> str | None:
        return self.hub.token(user) if self.hub.config.auth_required else None

    def call(self, coroutine: Any) -> asyncio.Future[Any]:
        """Run a coroutine on the hub's loop (this loop) without waiting for it."""
        return asyncio.ensure_future(coroutine)


class ThreadedHubSource(HubSource):
    """A hub started with :meth:`Hub.start_in_thread`: read on its own loop, awaited from ours."""

    def __init__(self, threaded: Any) -> None:
        super().__init__(threaded.hub)
        self.threaded = threaded

    async def read(self) -> Reading:
        async def on_hub_loop() -> Reading:
            return _reading_from_metrics(self.hub.metrics)

        return await self.call(on_hub_loop())

    @property
    def running(self) -> bool:
        return not self.threaded.loop.is_closed() and bool(self.hub.running)

    def call(self, coroutine: Any) -> asyncio.Future[Any]:
        if self.threaded.loop.is_closed():
            coroutine.close()
            raise ConfigError("the threaded hub has stopped")
        future = asyncio.run_coroutine_threadsafe(coroutine, self.threaded.loop)
        return asyncio.wrap_future(future)


class RemoteSource(Source):
    """A hub in another process or machine, read through ``GET /metrics`` (Prometheus text)."""

    def __init__(self, url: str, *, ws_url: str | None = None, timeout: float = 2.0,
                 token_factory: Any = None) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"a remote hub is an http:// URL (its /metrics); got {url!r}")
        if parts.scheme == "https":
            raise ConfigError("reading /metrics over https is not supported; use the http port")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.path = parts.path if parts.path.endswith("/metrics") else (
            parts.path.rstrip("/") + "/metrics")
        self.label = f"{self.host}:{self.port}"
        self._ws_url = ws_url or f"ws://{self.host}:{self.port}/ws"
        self.timeout = timeout
        self.token_factory = token_factory

    @property
    def ws_url(self) -> str:
        return self._ws_url

    def token(self, user: str) -> str | None:
        return self.token_factory(user) if self.token_factory is not None else None

    async def fetch(self) -> str:
        """The ``/metrics`` text (HTTP/1.0, bounded, with a timeout)."""
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), self.timeout
        )
        try:
            request = f"GET {self.path} HTTP/1.0\r\nHost: {self.host}:{self.port}\r\n\r\n"
            writer.write(request.encode("ascii"))
            body = await asyncio.wait_for(reader.read(MAX_METRICS_BYTES), self.timeout)
        finally:
            writer.close()
        head, _, text = body.partition(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0]
        if b" 200 " not in status + b" ":
            raise ConfigError(f"{self.label}{self.path} answered {status.decode('latin-1')!r}")
        return text.decode("utf-8", "replace")

    async def read(self) -> Reading:
        try:
            text = await self.fetch()
        except (OSError, TimeoutError, ConfigError) as exc:
            return Reading(time=time.time(), error=f"{type(exc).__name__}: {exc}")
        return parse_metrics(text)


def parse_metrics(text: str, namespace: str = "wslab") -> Reading:
    """A :class:`Reading` from a hub's Prometheus text exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    reading = Reading(time=time.time())
    n = namespace + "_"
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, float(sample.value)
            if name == n + "open_connections":
                reading.connections = value
            elif name == n + "websocket_messages_total":
                if labels.get("direction") == "in":
                    reading.messages_in = value
                elif labels.get("direction") == "out":
                    reading.messages_out = value
            elif name == n + "outgoing_queue_max":
                reading.queue_max = value
            elif name == n + "outgoing_queued_messages":
                reading.queue_total = value
            elif name == n + "retry_queue":
                reading.retry_queue = value
            elif name == n + "store_up":
                reading.store_up = value > 0
            elif name == n + "broker_up":
                reading.broker_up = value > 0
            elif name == n + "ping_rtt_seconds_count":
                reading.rtt_count = value
            elif name == n + "ping_rtt_seconds_sum":
                reading.rtt_sum = value
            elif name == n + "close_codes_total":
                reading.close_codes[f"{labels.get('direction')} {labels.get('code')}"] = value
            elif name == n + "handshakes_refused_total" and value:
                reading.rejections[f"handshake: {labels.get('reason')}"] = value
            elif name == n + "auth_failures_total" and value:
                reading.rejections[f"auth: {labels.get('reason')}"] = value
            elif (name == n + "rate_limit_verdicts_total" and value
                  and labels.get("verdict") != "allow"):
                reading.rejections[f"rate limit: {labels.get('verdict')}"] = value
    return reading


def source_for(target: Any, **options: Any) -> Source:
    """The source for a ``Hub``, a ``ThreadedHub``, an ``http://host:port`` URL, or a Source."""
    from wslab.hub import Hub, ThreadedHub

    if isinstance(target, Source):
        return target
    if isinstance(target, ThreadedHub):
        return ThreadedHubSource(target)
    if isinstance(target, Hub):
        if not target.running:
            raise ConfigError(f"{target!r} is not running: start it first (await Hub.start())")
        return HubSource(target)
    if isinstance(target, str):
        return RemoteSource(target, **options)
    raise ConfigError(
        "a dashboard watches a Hub, a ThreadedHub (Hub.start_in_thread) or a hub's http:// URL; "
        f"got {type(target).__name__}"
    )
