"""Counters, gauges and latency histograms, readable as plain data, pandas or Prometheus text.

The hub counts what it does (frames, messages, bytes, errors, rate-limit hits), tracks levels
(open connections, queue depths) and times what matters (round-trip times, fan-out latency,
store writes). The notebooks read the numbers as a :meth:`Metrics.snapshot` or a DataFrame;
``GET /metrics`` serves :meth:`Metrics.prometheus_text`.

Example::

    metrics = Metrics()
    frames = metrics.counter("frames", "Frames handled.", labels=("direction",))
    rtt = metrics.histogram("ping_rtt_seconds", "Ping round-trip time.")
    frames.inc(direction="in")
    frames_in = frames.labels(direction="in")  # hold the child on hot paths: no label lookup
    frames_in.inc()
    metrics.counter("bytes_in_total", "Bytes received.").set_function(lambda: totals.bytes_in)
    rtt.observe(0.0021)
    with metrics.time_it(rtt):
        ...
    metrics.snapshot()["histograms"]["ping_rtt_seconds"][0]["p99"]

Why values live here and prometheus_client only formats them
    The values are kept in small ``__slots__`` objects updated with plain arithmetic, because the
    hub needs two things prometheus_client's own metric classes do not give: exact p50/p90/p99
    over a recent window of samples (its ``Summary`` exposes only count and sum; its
    ``Histogram`` only buckets), and a bound on label cardinality with an overflow series.
    Keeping one copy of the data avoids double bookkeeping on every observation. The Prometheus
    text, on the other hand, has fiddly rules (escaping, ``+Inf``, float formatting, ``_total``
    and ``_bucket`` naming), so :meth:`Metrics.prometheus_text` hands the current values to
    prometheus_client as metric families through a custom collector on a private
    ``CollectorRegistry`` and lets ``generate_latest`` write the exposition. Nothing is
    registered in prometheus_client's global registry.

Where the parts live
    This module is the registry (:class:`Metrics`: declaring, reading, exposing). The series
    and :class:`Timer` are in :mod:`wslab.infrastructure.metrics_series`, the metric types
    (:class:`Counter`, :class:`Gauge`, :class:`Histogram`) and :func:`time_it` in
    :mod:`wslab.infrastructure.metrics_types`; every name is importable from here too.

Histograms
    Each series keeps cumulative Prometheus buckets (``le`` is inclusive) plus count, sum, min
    and max over its whole life, **and** a ring of the last ``window`` samples (10 000 by default;
    at the limit the oldest sample is dropped) from which p50/p90/p99 are computed exactly by the
    nearest-rank method: the q-quantile is the smallest sample with at least q of the window at
    or below it. So the quantiles describe recent behaviour, the rest all of it.

Label cardinality
    A metric keeps at most ``max_series`` distinct label sets (1000 by default). A new label set
    beyond that is folded into one overflow series whose every label value is
    :data:`OVERFLOW_LABEL_VALUE`, and the registry's own counter
    ``metrics_label_overflow{metric="<name>"}`` counts each fold. So a metric never holds more
    than ``max_series + 1`` series, whatever the input (room names, user ids...).

Naming
    A counter is exposed as ``<namespace>_<name>`` with ``_total`` (added if the name lacks it),
    so name counters ``..._total`` and put the unit before it (``received_bytes_total``);
    gauges and histograms carry their unit too (``..._seconds``, ``..._bytes``). Declaring a
    metric whose exposed family or sample names clash with another's (a gauge ``connections``
    next to a counter ``connections_total``) raises ``ConfigError``. Every help text should be
    distinct: it is all a dashboard user sees of the metric.

Totals kept elsewhere
    ``counter.set_function(fn)`` exposes a total that is counted as plain ints somewhere else
    (per-connection byte and frame counts): the hot path increments its own int and the
    metric reads the sum only when scraped.

Threads
    Updates are meant to come from the event loop's thread; they take no lock. Reading
    (snapshot, exposition) copies the series first, so it is safe from another thread.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import Metric

from wslab.foundation.errors import ConfigError
from wslab.infrastructure.metrics_series import (
    _QUANTILES,
    DEFAULT_BUCKETS,
    CounterChild,
    GaugeChild,
    HistogramChild,
    Timer,
)
from wslab.infrastructure.metrics_types import (
    OVERFLOW_LABEL_VALUE,
    Counter,
    Gauge,
    Histogram,
    _exposed_names,
    _Metric,
    time_it,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CONTENT_TYPE",
    "DEFAULT_BUCKETS",
    "OVERFLOW_LABEL_VALUE",
    "Counter",
    "CounterChild",
    "Gauge",
    "GaugeChild",
    "Histogram",
    "HistogramChild",
    "Metrics",
    "Timer",
    "time_it",
]

#: The ``Content-Type`` to serve :meth:`Metrics.prometheus_text` with.
CONTENT_TYPE: str = CONTENT_TYPE_LATEST

_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


# -- the registry --------------------------------------------------------------------------------


class _Collector:
    """Hands the registry's current values to prometheus_client as metric families."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        for metric in tuple(self._metrics._by_name.values()):
            yield metric._family(self._metrics.full_name(metric.name))


class Metrics:
    """A registry of counters, gauges and histograms under one namespace.

    :param namespace: prefix of every exposed name (``wslab_frames_total``); "" for none.
    :param max_series: most label sets per metric before folding into the overflow series.
    :param window: how many recent samples each histogram series keeps for its quantiles.

    Declaring a metric again with the same type and labels returns the existing one, so modules
    can declare what they use independently; a conflicting declaration raises ``ConfigError``.
    """

    def __init__(
        self, namespace: str = "wslab", *, max_series: int = 1000, window: int = 10_000
    ) -> None:
        if namespace and not _METRIC_NAME.match(namespace):
            raise ConfigError(f"invalid metrics namespace {namespace!r}")
        if max_series < 1:
            raise ConfigError(f"max_series must be at least 1, got {max_series}")
        if window < 1:
            raise ConfigError(f"window must be at least 1, got {window}")
        self.namespace = namespace
        self.max_series = max_series
        self.window = window
        self._by_name: dict[str, Counter | Gauge | Histogram] = {}
        self._overflow = self.counter(
            "metrics_label_overflow",
            "Times a new label set was folded into a metric's overflow series.",
            labels=("metric",),
        )
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(_Collector(self))
        self._runtime = False

    # -- declaring ------------------------------------------------------------------------------

    def counter(self, name: str, help: str, labels: Iterable[str] = ()) -> Counter:
        """Declare (or fetch) a counter."""
        labelnames = self._check(name, help, labels, Counter)
        existing = self._by_name.get(name)
        if isinstance(existing, Counter):  # _check() refused any other kind under this name
            return existing
        metric = Counter(self, name, help, labelnames, self.max_series)
        self._by_name[name] = metric
        return metric

    def gauge(self, name: str, help: str, labels: Iterable[str] = ()) -> Gauge:
        """Declare (or fetch) a gauge."""
        labelnames = self._check(name, help, labels, Gauge)
        existing = self._by_name.get(name)
        if isinstance(existing, Gauge):  # _check() refused any other kind under this name
            return existing
        metric = Gauge(self, name, help, labelnames, self.max_series)
        self._by_name[name] = metric
        return metric

    def histogram(
        self,
        name: str,
        help: str,
        labels: Iterable[str] = (),
        buckets: Iterable[float] = DEFAULT_BUCKETS,
    ) -> Histogram:
        """Declare (or fetch) a histogram; ``buckets`` are the finite upper bounds, ascending."""
        labelnames = self._check(name, help, labels, Histogram)
        if "le" in labelnames:
            raise ConfigError(f"histogram {name!r}: 'le' is reserved for bucket bounds")
        bounds = tuple(float(b) for b in buckets)
        if bounds and math.isinf(bounds[-1]):
            bounds = bounds[:-1]  # +Inf is always there; accept it written out too
        if any(not math.isfinite(b) for b in bounds) or any(
            a >= b for a, b in itertools.pairwise(bounds)
        ):
            raise ConfigError(f"histogram {name!r}: buckets must be finite and increasing")
        existing = self._by_name.get(name)
        if isinstance(existing, Histogram):  # _check() refused any other kind under this name
            if existing.bounds != bounds:
                raise ConfigError(f"histogram {name!r} is already declared with other buckets")
            return existing
        metric = Histogram(self, name, help, labelnames, self.max_series, bounds, self.window)
        self._by_name[name] = metric
        return metric

    def _check(
        self, name: str, help: str, labels: Iterable[str], cls: type[_Metric[Any]]
    ) -> tuple[str, ...]:
        if not _METRIC_NAME.match(name):
            raise ConfigError(f"invalid metric name {name!r}")
        labelnames = (labels,) if isinstance(labels, str) else tuple(labels)
        for label in labelnames:
            if not _LABEL_NAME.match(label) or label.startswith("__"):
                raise ConfigError(f"metric {name!r}: invalid label name {label!r}")
        if len(set(labelnames)) != len(labelnames):
            raise ConfigError(f"metric {name!r}: duplicate label names {labelnames}")
        existing = self._by_name.get(name)
        if existing is not None and (
            type(existing) is not cls or existing.labelnames != labelnames
        ):
            raise ConfigError(
                f"metric {name!r} is already declared as a {existing.type} "
                f"with labels {existing.labelnames}"
            )
        if existing is None:
            self._check_exposed_names(name, cls)
        return labelnames

    def _check_exposed_names(self, name: str, cls: type[_Metric[Any]]) -> None:
        """Refuse a metric whose Prometheus family or sample names another metric already has.

        A gauge ``connections`` and a counter ``connections_total`` are both the family
        ``connections`` once exposed (a counter's family drops ``_total``): scrapers then reject
        or silently merge the two. Caught here, at declaration, rather than in production.
        """
        family, samples = _exposed_names(name, cls.type)
        for other in self._by_name.values():
            other_family, other_samples = _exposed_names(other.name, other.type)
            if family == other_family or samples & other_samples:
                raise ConfigError(
                    f"metric {name!r} ({cls.type}) would be exposed under the same name as "
                    f"{other.type} {other.name!r}: rename one of them"
                )

    def add_collector(self, collector: Any) -> None:
        """Expose what ``collector`` yields (an object with ``collect()`` returning metric
        families, as prometheus_client defines it) in :meth:`prometheus_text`, after the
        registry's own metrics. Not part of :meth:`snapshot`."""
        self._registry.register(collector)

    def add_runtime_collectors(self) -> None:
        """Expose prometheus_client's process, platform and garbage-collector metrics
        (``process_cpu_seconds_total``, ``process_resident_memory_bytes``, ``python_info``,
        ``python_gc_*``), on this registry only. They carry no namespace: dashboards look for
        them under these standard names. Calling it twice is harmless."""
        if self._runtime:
            return
        self._runtime = True
        ProcessCollector(registry=self._registry)
        PlatformCollector(registry=self._registry)
        GCCollector(registry=self._registry)

    def _label_overflow(self, name: str) -> None:
        # The overflow counter is labelled by metric name, so its own cardinality is bounded by
        # the number of declared metrics.
        self._overflow.labels(name).inc()

    # -- looking up -----------------------------------------------------------------------------

    def full_name(self, name: str) -> str:
        """The exposed name of metric ``name`` (namespace prefix added)."""
        return f"{self.namespace}_{name}" if self.namespace else name

    def get(self, name: str) -> Counter | Gauge | Histogram:
        """The metric declared as ``name``; ``KeyError`` if there is none."""
        return self._by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[Counter | Gauge | Histogram]:
        return iter(tuple(self._by_name.values()))

    def __len__(self) -> int:
        return len(self._by_name)

    def reset(self) -> None:
        """Zero every metric (declarations and series stay); handy between notebook experiments.

        Counters read from a function start from their current reading again.
        """
        for metric in tuple(self._by_name.values()):
            metric.reset()

    # -- reading --------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Every metric as plain data (dicts, lists, numbers, strings).

        The result has ``"namespace"`` and three maps from metric name to a list of series,
        one dict per label set, each with ``"labels"`` (a dict) and:

        - ``"counters"`` and ``"gauges"``: ``"value"``;
        - ``"histograms"``: ``"count"``, ``"sum"``, ``"min"``, ``"max"``, ``"p50"``, ``"p90"``,
          ``"p99"``, ``"window"`` (samples behind the quantiles) and ``"buckets"``
          (``{"0.001": 2, ..., "+Inf": 5}``, cumulative).
        """
        data: dict[str, Any] = {
            "namespace": self.namespace,
            "counters": {},
            "gauges": {},
            "histograms": {},
        }
        for metric in tuple(self._by_name.values()):
            rows: list[dict[str, Any]] = []
            for labels, child in metric.series():
                if isinstance(child, HistogramChild):
                    rows.append({"labels": labels, **child.summary()})
                else:
                    rows.append({"labels": labels, "value": child.get()})
            data[metric.type + "s"][metric.name] = rows
        return data

    def to_dataframe(self) -> pd.DataFrame:
        """One row per metric and label set.

        Columns: ``metric``, ``type``, ``labels`` (``'a="x",b="y"'``, "" for none), ``value``
        (counters and gauges), ``count``, ``sum``, ``min``, ``max``, ``p50``, ``p90``, ``p99``
        (histograms); NaN where a column does not apply.
        """
        import pandas as pd  # lazily: the hot path never needs pandas

        columns = ["metric", "type", "labels", "value", "count", "sum", "min", "max"]
        columns += [key for key, _ in _QUANTILES]
        rows: list[dict[str, Any]] = []
        for kind, metrics in self.snapshot().items():
            if kind == "namespace":
                continue
            for name, series in metrics.items():
                for s in series:
                    row = {k: v for k, v in s.items() if k in columns and k != "labels"}
                    row["metric"] = name
                    row["type"] = kind[:-1]
                    row["labels"] = ",".join(f'{k}="{v}"' for k, v in s["labels"].items())
                    rows.append(row)
        frame = pd.DataFrame.from_records(rows, columns=columns)
        numeric = columns[3:]
        frame[numeric] = frame[numeric].apply(pd.to_numeric, errors="coerce")
        return frame

    def prometheus_text(self) -> str:
        """The Prometheus text exposition (version 0.0.4) of every metric; see :data:`CONTENT_TYPE`."""
        return generate_latest(self._registry).decode("utf-8")

    def __repr__(self) -> str:
        return f"<Metrics {self.namespace!r}: {len(self._by_name)} metrics>"
