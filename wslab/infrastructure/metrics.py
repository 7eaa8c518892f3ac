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

import bisect
import enum
import itertools
import logging
import math
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

from wslab.foundation.errors import ConfigError

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

logger = logging.getLogger("wslab.metrics")

#: The ``Content-Type`` to serve :meth:`Metrics.prometheus_text` with.
CONTENT_TYPE: str = CONTENT_TYPE_LATEST

#: Latency buckets in seconds, 100 µs to 10 s: WebSocket round trips on localhost sit at the
#: bottom, a slow store or a congested network at the top.
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

#: The label value of the series that collects label sets beyond ``max_series``. Chosen so it
#: cannot be mistaken for a real room or user called "other".
OVERFLOW_LABEL_VALUE = "__other__"

_QUANTILES = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))
_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


# -- series (children): what the hot path touches ------------------------------------------------


class CounterChild:
    """One series of a counter: a value that only goes up (or one read from a function)."""

    __slots__ = ("_fn", "value")

    def __init__(self) -> None:
        self.value: float = 0
        self._fn: Callable[[], float] | None = None

    def inc(self, n: float = 1) -> None:
        """Add ``n`` (>= 0)."""
        if n < 0:
            raise ConfigError(f"a counter can only increase, got inc({n})")
        self.value += n

    def set_function(self, fn: Callable[[], float]) -> None:
        """Read the value from ``fn()`` (plus what ``inc`` added) whenever it is read.

        For totals that live elsewhere as plain ints (bytes and frames counted by each
        connection): the hot path keeps incrementing its own ints and pays nothing for the
        metric. ``fn`` must never go down. If it raises, the reading is NaN and the error is
        logged on ``wslab.metrics``.
        """
        self._fn = fn

    def get(self) -> float:
        """The current value."""
        fn = self._fn
        if fn is None:
            return self.value
        try:
            return self.value + float(fn())
        except Exception:
            logger.exception("counter function %r failed", fn)
            return math.nan

    def _reset(self) -> None:
        # A total read from a function cannot be zeroed at its source: start from its current
        # reading instead, so the series counts up from 0 again.
        fn = self._fn
        self.value = 0
        if fn is not None:
            self.value = -self.get()


class GaugeChild:
    """One series of a gauge: a value that goes up and down, or is read from a function."""

    __slots__ = ("_fn", "value")

    def __init__(self) -> None:
        self.value: float = 0
        self._fn: Callable[[], float] | None = None

    def set(self, value: float) -> None:
        """Set the value (and stop reading it from a function, if one was set)."""
        self._fn = None
        self.value = value

    def inc(self, n: float = 1) -> None:
        """Add ``n``."""
        self.value += n

    def dec(self, n: float = 1) -> None:
        """Subtract ``n``."""
        self.value -= n

    def set_function(self, fn: Callable[[], float]) -> None:
        """Read the value from ``fn()`` whenever the gauge is read (e.g. a queue's length).

        If ``fn`` raises, the reading is NaN and the error is logged on ``wslab.metrics``.
        """
        self._fn = fn

    def get(self) -> float:
        """The current value."""
        fn = self._fn
        if fn is None:
            return self.value
        try:
            return float(fn())
        except Exception:
            logger.exception("gauge function %r failed", fn)
            return math.nan

    def _reset(self) -> None:
        self.value = 0


class HistogramChild:
    """One series of a histogram: buckets, count, sum, min, max and a window of recent samples."""

    __slots__ = ("_bounds", "_counts", "_window", "count", "max", "min", "sum")

    def __init__(self, bounds: tuple[float, ...], window: int) -> None:
        self._bounds = bounds  # finite upper bounds, ascending; +Inf is implicit
        self._counts = [0] * (len(bounds) + 1)  # per bucket, not cumulative; last is +Inf
        self._window: deque[float] = deque(maxlen=window)
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf

    def observe(self, value: float) -> None:
        """Record one sample (a duration in seconds for latency histograms)."""
        # bisect_left finds the first bound >= value: Prometheus buckets include their bound.
        self._counts[bisect.bisect_left(self._bounds, value)] += 1
        self._window.append(value)
        self.count += 1
        self.sum += value
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value

    def time(self, clock: Callable[[], float] = time.perf_counter) -> Timer:
        """A context manager that observes how long its block took."""
        return Timer(self, clock=clock)

    def quantile(self, q: float) -> float | None:
        """The nearest-rank ``q``-quantile (0 < q <= 1) of the window, or None if it is empty."""
        return _nearest_rank(sorted(self._window), q)

    def buckets(self) -> list[tuple[float, int]]:
        """Cumulative ``(le, count)`` pairs, ending with ``(inf, count)``."""
        pairs: list[tuple[float, int]] = []
        running = 0
        for bound, n in zip((*self._bounds, math.inf), tuple(self._counts), strict=True):
            running += n
            pairs.append((bound, running))
        return pairs

    def summary(self) -> dict[str, Any]:
        """Plain data: count, sum, min, max, p50, p90, p99, window and cumulative buckets.

        ``min``/``max``/quantiles are None while nothing has been observed.
        """
        ordered = sorted(tuple(self._window))
        data: dict[str, Any] = {
            "count": self.count,
            "sum": self.sum,
            "min": self.min if self.count else None,
            "max": self.max if self.count else None,
        }
        for key, q in _QUANTILES:
            data[key] = _nearest_rank(ordered, q)
        data["window"] = len(ordered)
        data["buckets"] = {floatToGoString(le): n for le, n in self.buckets()}
        return data

    def _reset(self) -> None:
        self._counts = [0] * (len(self._bounds) + 1)
        self._window.clear()
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf


def _exposed_names(name: str, kind: str) -> tuple[str, frozenset[str]]:
    """The Prometheus family name and sample names a metric of ``kind`` called ``name`` gets."""
    if kind == "counter":
        family = name[: -len("_total")] if name.endswith("_total") else name
        return family, frozenset({family + "_total", family + "_created"})
    if kind == "histogram":
        return name, frozenset(
            {name + "_bucket", name + "_count", name + "_sum", name + "_created"}
        )
    return name, frozenset({name})


def _nearest_rank(ordered: Sequence[float], q: float) -> float | None:
    if not 0 < q <= 1:
        raise ConfigError(f"a quantile must be in (0, 1], got {q}")
    if not ordered:
        return None
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


# -- metrics: a name, a help text, label names and their series ----------------------------------

ChildT = TypeVar("ChildT", CounterChild, GaugeChild, HistogramChild)


class _Metric(Generic[ChildT]):
    """What counters, gauges and histograms share: label handling and the cardinality bound."""

    type: ClassVar[str]

    def __init__(
        self,
        registry: Metrics,
        name: str,
        help: str,
        labelnames: tuple[str, ...],
        max_series: int,
    ) -> None:
        self.name = name
        self.help = help
        self.labelnames = labelnames
        self._registry = registry
        self._max_series = max_series
        self._children: dict[tuple[str, ...], ChildT] = {}
        self._overflow_key = (OVERFLOW_LABEL_VALUE,) * len(labelnames)
        #: How many times a new label set was folded into the overflow series.
        self.overflowed = 0
        # An unlabelled metric has exactly one series, created now so it is exposed as 0.
        self._default: ChildT | None = None
        if not labelnames:
            self._default = self._children[()] = self._new_child()

    def _new_child(self) -> ChildT:
        raise NotImplementedError

    def labels(self, *values: object, **labels: object) -> ChildT:
        """The series for these label values (positional, in ``labelnames`` order, or by name).

        Values are turned into strings (an Enum by its name). Hold on to the returned child on a
        hot path to skip this lookup.
        """
        names = self.labelnames
        if labels:
            if values or len(labels) != len(names):
                raise ConfigError(f"metric {self.name!r} takes labels {names}, got {labels}")
            try:
                values = tuple(labels[n] for n in names)
            except KeyError:
                raise ConfigError(
                    f"metric {self.name!r} takes labels {names}, got {tuple(labels)}"
                ) from None
        elif len(values) != len(names):
            raise ConfigError(f"metric {self.name!r} takes labels {names}, got {values}")
        key = tuple(v.name if isinstance(v, enum.Enum) else str(v) for v in values)
        child = self._children.get(key)
        if child is None:
            child = self._add_series(key)
        return child

    def _add_series(self, key: tuple[str, ...]) -> ChildT:
        real = len(self._children) - (self._overflow_key in self._children)
        if real >= self._max_series:
            self.overflowed += 1
            self._registry._label_overflow(self.name)
            key = self._overflow_key
            child = self._children.get(key)
            if child is not None:
                return child
        child = self._children[key] = self._new_child()
        return child

    def _child(self, labels: dict[str, object]) -> ChildT:
        if labels or self._default is None:
            return self.labels(**labels)
        return self._default

    def series(self) -> list[tuple[dict[str, str], ChildT]]:
        """Every series as ``(labels dict, child)``, in creation order."""
        return [
            (dict(zip(self.labelnames, k, strict=True)), c)
            for k, c in tuple(self._children.items())
        ]

    def reset(self) -> None:
        """Zero every series; the series themselves stay.

        They stay because callers hold children on hot paths (``labels()`` once, ``inc()``
        many times): a forgotten child would keep counting where nobody reads it.
        """
        for child in tuple(self._children.values()):
            child._reset()
        self.overflowed = 0

    def _family(self, full_name: str) -> Metric:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} labels={self.labelnames}>"


class Counter(_Metric[CounterChild]):
    """A value that only goes up: frames, messages, bytes, errors. Exposed as ``<name>_total``."""

    type = "counter"

    def _new_child(self) -> CounterChild:
        return CounterChild()

    def inc(self, n: float = 1, **labels: object) -> None:
        """Add ``n`` (>= 0) to the series for ``labels``."""
        self._child(labels).inc(n)

    def set_function(self, fn: Callable[[], float], **labels: object) -> None:
        """Read the series for ``labels`` from ``fn()`` (a total that never goes down)."""
        self._child(labels).set_function(fn)

    def value(self, **labels: object) -> float:
        """The current value of the series for ``labels``."""
        return self._child(labels).get()

    def _family(self, full_name: str) -> Metric:
        family = CounterMetricFamily(full_name, self.help, labels=self.labelnames)
        for key, child in tuple(self._children.items()):
            family.add_metric(key, child.get())
        return family


class Gauge(_Metric[GaugeChild]):
    """A value that goes up and down: open connections, queue depth, rooms."""

    type = "gauge"

    def _new_child(self) -> GaugeChild:
        return GaugeChild()

    def set(self, value: float, **labels: object) -> None:
        """Set the series for ``labels`` to ``value``."""
        self._child(labels).set(value)

    def inc(self, n: float = 1, **labels: object) -> None:
        """Add ``n`` to the series for ``labels``."""
        self._child(labels).inc(n)

    def dec(self, n: float = 1, **labels: object) -> None:
        """Subtract ``n`` from the series for ``labels``."""
        self._child(labels).dec(n)

    def set_function(self, fn: Callable[[], float], **labels: object) -> None:
        """Read the series for ``labels`` from ``fn()`` whenever it is read."""
        self._child(labels).set_function(fn)

    def value(self, **labels: object) -> float:
        """The current value of the series for ``labels``."""
        return self._child(labels).get()

    def _family(self, full_name: str) -> Metric:
        family = GaugeMetricFamily(full_name, self.help, labels=self.labelnames)
        for key, child in tuple(self._children.items()):
            family.add_metric(key, child.get())
        return family


class Histogram(_Metric[HistogramChild]):
    """A distribution of samples, usually durations in seconds: buckets plus recent quantiles."""

    type = "histogram"

    def __init__(
        self,
        registry: Metrics,
        name: str,
        help: str,
        labelnames: tuple[str, ...],
        max_series: int,
        buckets: tuple[float, ...],
        window: int,
    ) -> None:
        self.bounds = buckets
        self.window = window
        super().__init__(registry, name, help, labelnames, max_series)

    def _new_child(self) -> HistogramChild:
        return HistogramChild(self.bounds, self.window)

    def observe(self, value: float, **labels: object) -> None:
        """Record one sample in the series for ``labels``."""
        self._child(labels).observe(value)

    def time(self, clock: Callable[[], float] = time.perf_counter, **labels: object) -> Timer:
        """A context manager that observes how long its block took."""
        return Timer(self._child(labels), clock=clock)

    def summary(self, **labels: object) -> dict[str, Any]:
        """count/sum/min/max/p50/p90/p99/window/buckets of the series for ``labels``."""
        return self._child(labels).summary()

    def _family(self, full_name: str) -> Metric:
        family = HistogramMetricFamily(full_name, self.help, labels=self.labelnames)
        for key, child in tuple(self._children.items()):
            buckets = [(floatToGoString(le), n) for le, n in child.buckets()]
            family.add_metric(key, buckets, child.sum)
        return family


# -- timing --------------------------------------------------------------------------------------


class Timer:
    """Observe the duration of a ``with`` block (also when it raises) into a histogram series.

    The default clock is :func:`time.perf_counter`, the finest clock Python has for short
    intervals; pass a fake clock to drive it in tests. ``elapsed`` holds the last duration.
    """

    __slots__ = ("_clock", "_start", "_target", "elapsed")

    def __init__(
        self, target: HistogramChild, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self._target = target
        self._clock = clock
        self._start = 0.0
        self.elapsed: float | None = None

    def __enter__(self) -> Timer:
        self._start = self._clock()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.elapsed = self._clock() - self._start
        self._target.observe(self.elapsed)


def time_it(
    histogram: Histogram | HistogramChild,
    clock: Callable[[], float] = time.perf_counter,
    **labels: object,
) -> Timer:
    """A :class:`Timer` observing into ``histogram`` (the series for ``labels``)."""
    if isinstance(histogram, Histogram):
        return histogram.time(clock, **labels)
    if labels:
        raise ConfigError("labels cannot be given with a histogram series (child)")
    return Timer(histogram, clock=clock)


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
