"""Counters, gauges and histograms: a name, a help text, label names and their series.

Each metric maps label sets to series (:mod:`wslab.infrastructure.metrics_series`) and bounds
how many it keeps: a label set beyond ``max_series`` is folded into the overflow series whose
label values are all :data:`OVERFLOW_LABEL_VALUE`. A metric also turns its current values into a
prometheus_client metric family for the exposition. Metrics are declared through the registry,
:class:`wslab.infrastructure.metrics.Metrics`.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

from wslab.foundation.errors import ConfigError
from wslab.infrastructure.metrics_series import CounterChild, GaugeChild, HistogramChild, Timer

if TYPE_CHECKING:
    from wslab.infrastructure.metrics import Metrics

__all__ = ["OVERFLOW_LABEL_VALUE", "Counter", "Gauge", "Histogram", "time_it"]


#: The label value of the series that collects label sets beyond ``max_series``. Chosen so it
#: cannot be mistaken for a real room or user called "other".
OVERFLOW_LABEL_VALUE = "__other__"


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
