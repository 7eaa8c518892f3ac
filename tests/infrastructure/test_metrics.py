"""Counters, gauges, histograms: values, quantiles, cardinality bound and Prometheus exposition."""

from __future__ import annotations

import math
import random

import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from wslab.foundation.codes import Opcode
from wslab.foundation.errors import ConfigError
from wslab.infrastructure.metrics import (
    CONTENT_TYPE,
    OVERFLOW_LABEL_VALUE,
    Metrics,
    Timer,
    time_it,
)


class StepClock:
    """A clock that returns the given readings one after another."""

    def __init__(self, *readings: float) -> None:
        self.readings = list(readings)

    def __call__(self) -> float:
        return self.readings.pop(0)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Parse exposition text into {(sample name, sorted labels): value}."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def families(text: str) -> dict[str, tuple[str, str]]:
    """Parse exposition text into {family name: (type, help)}."""
    return {f.name: (f.type, f.documentation) for f in text_string_to_metric_families(text)}


# -- counters and gauges -------------------------------------------------------------------------


def test_counter_with_and_without_labels() -> None:
    m = Metrics()
    frames = m.counter("frames", "Frames handled.", labels=("direction",))
    errors = m.counter("errors", "Errors.")
    frames.inc(direction="in")
    frames.inc(2, direction="in")
    frames.labels("out").inc(5)
    errors.inc()
    assert frames.value(direction="in") == 3
    assert frames.labels(direction="out").get() == 5
    assert errors.value() == 1
    with pytest.raises(ConfigError):
        errors.inc(-1)  # counters never go down


def test_labels_must_match_the_declaration() -> None:
    m = Metrics()
    frames = m.counter("frames", "Frames.", labels=("direction", "opcode"))
    with pytest.raises(ConfigError):
        frames.inc(direction="in")  # missing opcode
    with pytest.raises(ConfigError):
        frames.inc(direction="in", opcode="1", extra="x")
    with pytest.raises(ConfigError):
        frames.inc()  # a labelled metric has no unlabelled series
    with pytest.raises(ConfigError):
        frames.labels("in")
    with pytest.raises(ConfigError):
        m.counter("plain", "Plain.").inc(room="lobby")


def test_enum_label_values_use_their_name() -> None:
    m = Metrics()
    frames = m.counter("frames", "Frames.", labels=("opcode",))
    frames.inc(opcode=Opcode.TEXT)
    assert frames.value(opcode="TEXT") == 1


def test_gauge_set_inc_dec_and_function() -> None:
    m = Metrics()
    conns = m.gauge("connections", "Open connections.")
    conns.inc()
    conns.inc(2)
    conns.dec()
    assert conns.value() == 2
    conns.set(7.5)
    assert conns.value() == 7.5
    queue: list[int] = [1, 2, 3]
    depth = m.gauge("queue_depth", "Queued frames.", labels=("connection",))
    depth.set_function(lambda: len(queue), connection="c1")
    assert depth.value(connection="c1") == 3
    queue.append(4)
    assert samples(m.prometheus_text())[("wslab_queue_depth", (("connection", "c1"),))] == 4
    depth.set_function(lambda: 1 / 0, connection="c1")
    assert math.isnan(depth.value(connection="c1"))  # a broken function reads as NaN


def test_redeclaring_returns_the_same_metric_and_conflicts_raise() -> None:
    m = Metrics()
    a = m.counter("frames", "Frames.", labels=("direction",))
    assert m.counter("frames", "Frames.", labels=("direction",)) is a
    assert m.get("frames") is a and "frames" in m
    with pytest.raises(ConfigError):
        m.gauge("frames", "Frames.", labels=("direction",))
    with pytest.raises(ConfigError):
        m.counter("frames", "Frames.", labels=("room",))
    h = m.histogram("rtt_seconds", "RTT.", buckets=(0.1, 1.0))
    assert m.histogram("rtt_seconds", "RTT.", buckets=(0.1, 1.0, math.inf)) is h
    with pytest.raises(ConfigError):
        m.histogram("rtt_seconds", "RTT.", buckets=(0.5,))


@pytest.mark.parametrize(
    ("name", "labels"),
    [("bad-name", ()), ("9lives", ()), ("ok", ("bad-label",)), ("ok", ("__reserved",))],
)
def test_invalid_names_are_refused(name: str, labels: tuple[str, ...]) -> None:
    with pytest.raises(ConfigError):
        Metrics().counter(name, "x", labels=labels)


def test_invalid_histogram_declarations_are_refused() -> None:
    m = Metrics()
    with pytest.raises(ConfigError):
        m.histogram("h1", "x", buckets=(1.0, 0.5))
    with pytest.raises(ConfigError):
        m.histogram("h2", "x", buckets=(0.5, 0.5))
    with pytest.raises(ConfigError):
        m.histogram("h3", "x", labels=("le",))


# -- histograms ----------------------------------------------------------------------------------


def test_histogram_quantiles_are_exact_nearest_rank() -> None:
    m = Metrics()
    h = m.histogram("latency_seconds", "Latency.")
    values = [i / 1000 for i in range(1, 101)]  # 0.001 .. 0.100
    random.Random(7).shuffle(values)
    for v in values:
        h.observe(v)
    s = h.summary()
    assert s["count"] == 100
    assert s["sum"] == pytest.approx(sum(values))
    assert s["min"] == 0.001 and s["max"] == 0.1
    assert s["p50"] == 0.05 and s["p90"] == 0.09 and s["p99"] == 0.099
    assert s["window"] == 100


def test_histogram_quantiles_cover_only_the_window_but_totals_cover_everything() -> None:
    m = Metrics(window=10)
    h = m.histogram("latency_seconds", "Latency.")
    for _ in range(100):
        h.observe(5.0)  # old, slow samples
    for _ in range(10):
        h.observe(0.001)  # the recent window
    s = h.summary()
    assert s["window"] == 10
    assert s["p50"] == s["p99"] == 0.001
    assert s["count"] == 110 and s["max"] == 5.0
    assert s["sum"] == pytest.approx(500.01)


def test_empty_histogram_summary() -> None:
    s = Metrics().histogram("h", "x").summary()
    assert s["count"] == 0 and s["sum"] == 0
    assert s["min"] is s["max"] is s["p50"] is s["p99"] is None
    assert s["buckets"]["+Inf"] == 0


def test_histogram_buckets_are_cumulative_and_inclusive() -> None:
    m = Metrics()
    h = m.histogram("size", "Sizes.", buckets=(1, 10, 100))
    for v in (0.5, 1, 1.5, 10, 50, 1000):
        h.observe(v)
    assert h.summary()["buckets"] == {"1.0": 2, "10.0": 4, "100.0": 5, "+Inf": 6}


def test_timer_observes_the_block_even_when_it_raises() -> None:
    m = Metrics()
    h = m.histogram("op_seconds", "Op time.", labels=("op",))
    with time_it(h, clock=StepClock(10.0, 10.25), op="store") as timer:
        pass
    assert timer.elapsed == 0.25
    with pytest.raises(ValueError), h.time(clock=StepClock(1.0, 3.0), op="store"):
        raise ValueError("boom")
    child = h.labels(op="store")
    with Timer(child, clock=StepClock(0.0, 0.5)):
        pass
    with time_it(child, clock=StepClock(0.0, 1.0)):
        pass
    s = h.summary(op="store")
    assert s["count"] == 4 and s["sum"] == pytest.approx(3.75)
    with pytest.raises(ConfigError):
        time_it(child, op="store")


# -- cardinality bound ---------------------------------------------------------------------------


def test_label_sets_beyond_max_series_fold_into_overflow() -> None:
    m = Metrics(max_series=3)
    msgs = m.counter("messages", "Messages.", labels=("room",))
    for i in range(1000):
        msgs.inc(room=f"room-{i}")
    series = m.snapshot()["counters"]["messages"]
    assert len(series) == 4  # 3 real series + the overflow series, never more
    rooms = {s["labels"]["room"]: s["value"] for s in series}
    assert rooms == {"room-0": 1, "room-1": 1, "room-2": 1, OVERFLOW_LABEL_VALUE: 997}
    assert msgs.overflowed == 997
    # Known label sets keep their own series after the limit.
    msgs.inc(room="room-1")
    assert msgs.value(room="room-1") == 2
    # The overflow is counted in the registry's own counter, exposed like any metric.
    exposed = samples(m.prometheus_text())
    assert exposed[("wslab_metrics_label_overflow_total", (("metric", "messages"),))] == 997
    assert exposed[("wslab_messages_total", (("room", OVERFLOW_LABEL_VALUE),))] == 997


def test_histogram_cardinality_is_bounded_too() -> None:
    m = Metrics(max_series=2)
    h = m.histogram("fanout_seconds", "Fan-out.", labels=("room", "kind"))
    for i in range(50):
        h.observe(0.01, room=str(i), kind="chat")
    hist = m.snapshot()["histograms"]["fanout_seconds"]
    assert len(hist) == 3
    overflow = [s for s in hist if s["labels"]["room"] == OVERFLOW_LABEL_VALUE]
    assert overflow[0]["labels"] == {"room": OVERFLOW_LABEL_VALUE, "kind": OVERFLOW_LABEL_VALUE}
    assert overflow[0]["count"] == 48


# -- snapshot, DataFrame, reset ------------------------------------------------------------------


def test_snapshot_is_plain_data() -> None:
    m = Metrics()
    m.counter("frames", "Frames.", labels=("direction",)).inc(direction="in")
    m.gauge("connections", "Open.").set(2)
    m.histogram("rtt_seconds", "RTT.").observe(0.004)
    snap = m.snapshot()
    assert snap["namespace"] == "wslab"
    assert snap["counters"]["frames"] == [{"labels": {"direction": "in"}, "value": 1}]
    assert snap["gauges"]["connections"] == [{"labels": {}, "value": 2}]
    (rtt,) = snap["histograms"]["rtt_seconds"]
    assert rtt["count"] == 1 and rtt["p50"] == rtt["p90"] == rtt["p99"] == 0.004
    assert rtt["min"] == rtt["max"] == 0.004
    assert rtt["buckets"]["0.0025"] == 0 and rtt["buckets"]["0.005"] == 1

    def plain(x: object) -> bool:
        if isinstance(x, dict):
            return all(isinstance(k, str) and plain(v) for k, v in x.items())
        if isinstance(x, list):
            return all(plain(v) for v in x)
        return x is None or isinstance(x, (str, int, float))

    assert plain(snap)


def test_to_dataframe_has_one_row_per_series() -> None:
    m = Metrics()
    frames = m.counter("frames", "Frames.", labels=("direction",))
    frames.inc(3, direction="in")
    frames.inc(direction="out")
    m.gauge("connections", "Open.").set(2)
    h = m.histogram("rtt_seconds", "RTT.")
    for v in (0.001, 0.002, 0.003):
        h.observe(v)
    df = m.to_dataframe()
    assert list(df.columns) == [
        "metric",
        "type",
        "labels",
        "value",
        "count",
        "sum",
        "min",
        "max",
        "p50",
        "p90",
        "p99",
    ]
    rows = df.set_index(["metric", "labels"])
    assert rows.loc[("frames", 'direction="in"'), "value"] == 3
    assert rows.loc[("frames", 'direction="out"'), "type"] == "counter"
    assert rows.loc[("connections", ""), "value"] == 2
    rtt = rows.loc[("rtt_seconds", "")]
    assert rtt["type"] == "histogram" and rtt["count"] == 3 and rtt["p50"] == 0.002
    assert pd.isna(rtt["value"]) and pd.isna(rows.loc[("connections", ""), "p99"])
    assert len(df) == 4  # frames x2, connections, rtt (the empty overflow counter has no rows)


def test_reset_zeroes_values_and_keeps_declarations() -> None:
    m = Metrics()
    c = m.counter("c", "x")
    lab = m.counter("lab", "x", labels=("k",))
    h = m.histogram("h", "x")
    c.inc(5)
    held = lab.labels(k="a")  # as a hot path holds it
    held.inc()
    h.observe(1.0)
    total = [7]
    fed = m.counter("fed_total", "read from a function")
    fed.set_function(lambda: total[0])
    m.reset()
    assert c.value() == 0 and h.summary()["count"] == 0 and h.summary()["p50"] is None
    assert m.snapshot()["counters"]["lab"] == [{"labels": {"k": "a"}, "value": 0}]
    assert m.get("lab") is lab
    held.inc()  # the held child is still the exported series
    assert lab.value(k="a") == 1
    assert fed.value() == 0
    total[0] = 10
    assert fed.value() == 3


# -- Prometheus exposition -----------------------------------------------------------------------


def test_prometheus_text_parses_back_to_the_values() -> None:
    m = Metrics()
    frames = m.counter("frames", "Frames handled.", labels=("direction",))
    frames.inc(3, direction="in")
    frames.inc(direction="out")
    m.gauge("connections", "Open connections.").set(4)
    h = m.histogram("rtt_seconds", "Ping round-trip time.", buckets=(0.01, 0.1))
    for v in (0.005, 0.01, 0.05, 0.5):
        h.observe(v)

    text = m.prometheus_text()
    fams = families(text)
    assert fams["wslab_frames"] == ("counter", "Frames handled.")
    assert fams["wslab_connections"] == ("gauge", "Open connections.")
    assert fams["wslab_rtt_seconds"] == ("histogram", "Ping round-trip time.")
    values = samples(text)
    assert values[("wslab_frames_total", (("direction", "in"),))] == 3
    assert values[("wslab_frames_total", (("direction", "out"),))] == 1
    assert values[("wslab_connections", ())] == 4
    assert values[("wslab_rtt_seconds_bucket", (("le", "0.01"),))] == 2
    assert values[("wslab_rtt_seconds_bucket", (("le", "0.1"),))] == 3
    assert values[("wslab_rtt_seconds_bucket", (("le", "+Inf"),))] == 4
    assert values[("wslab_rtt_seconds_count", ())] == 4
    assert values[("wslab_rtt_seconds_sum", ())] == pytest.approx(0.565)
    # The exact line format for the exposition, HELP before TYPE.
    lines = text.splitlines()
    i = lines.index("# HELP wslab_rtt_seconds Ping round-trip time.")
    assert lines[i + 1] == "# TYPE wslab_rtt_seconds histogram"
    assert 'wslab_rtt_seconds_bucket{le="+Inf"} 4.0' in lines
    assert "text/plain" in CONTENT_TYPE


def test_prometheus_text_escapes_label_values_and_help() -> None:
    m = Metrics(namespace="lab")
    rooms = m.counter("messages", 'Messages per "room"\\ per line\n.', labels=("room",))
    awkward = 'a "quoted" \\ back\nslash'
    rooms.inc(2, room=awkward)
    text = m.prometheus_text()
    assert 'lab_messages_total{room="a \\"quoted\\" \\\\ back\\nslash"} 2.0' in text
    values = samples(text)
    assert values[("lab_messages_total", (("room", awkward),))] == 2
    assert families(text)["lab_messages"][1] == 'Messages per "room"\\ per line\n.'


def test_empty_namespace_and_unused_labelled_metric() -> None:
    m = Metrics(namespace="")
    m.counter("bare", "No prefix.")
    m.gauge("unused", "Never set.", labels=("k",))
    text = m.prometheus_text()
    values = samples(text)
    assert values[("bare_total", ())] == 0
    assert families(text)["unused"] == ("gauge", "Never set.")
    assert not any(name == "unused" for name, _ in values)


def test_registries_are_independent() -> None:
    a, b = Metrics(), Metrics()
    a.counter("frames", "x").inc()
    b.counter("frames", "x")
    assert samples(b.prometheus_text())[("wslab_frames_total", ())] == 0


# -- totals kept elsewhere, names that cannot clash, runtime collectors ------------------------


def test_a_counter_can_read_its_total_from_a_function() -> None:
    metrics = Metrics()
    total = {"in": 0}
    received = metrics.counter("received_bytes_total", "Bytes received", ["direction"])
    received.set_function(lambda: total["in"], direction="in")
    total["in"] = 1234
    assert received.value(direction="in") == 1234
    assert (
        samples(metrics.prometheus_text())[("wslab_received_bytes_total", (("direction", "in"),))]
        == 1234
    )
    assert metrics.snapshot()["counters"]["received_bytes_total"][0]["value"] == 1234


def test_a_failing_counter_function_reads_nan() -> None:
    metrics = Metrics()
    counter = metrics.counter("broken_total", "Never readable")
    counter.set_function(lambda: 1 / 0)
    assert math.isnan(counter.value())


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("counter", "connections_total"), ("gauge", "connections")),
        (("gauge", "connections"), ("counter", "connections_total")),
        (("histogram", "latency_seconds"), ("gauge", "latency_seconds_count")),
        (("counter", "frames"), ("counter", "frames_total")),
    ],
)
def test_metrics_that_would_share_an_exposed_name_are_refused(
    first: tuple[str, str], second: tuple[str, str]
) -> None:
    metrics = Metrics()
    getattr(metrics, first[0])(first[1], "the first one")
    with pytest.raises(ConfigError, match="same name"):
        getattr(metrics, second[0])(second[1], "the second one")


def test_runtime_collectors_are_on_the_registry_only() -> None:
    from prometheus_client import REGISTRY

    before = {m.name for m in REGISTRY.collect()}
    metrics = Metrics()
    metrics.add_runtime_collectors()
    metrics.add_runtime_collectors()  # harmless twice
    names = [f.name for f in text_string_to_metric_families(metrics.prometheus_text())]
    assert "process_cpu_seconds" in names and "python_info" in names
    assert len(names) == len(set(names))
    assert {m.name for m in REGISTRY.collect()} == before


def test_a_custom_collector_is_exposed() -> None:
    from prometheus_client.core import GaugeMetricFamily

    class Rooms:
        def collect(self):  # type: ignore[no-untyped-def]
            yield GaugeMetricFamily("wslab_rooms", "Rooms with members", value=3)

    metrics = Metrics()
    metrics.add_collector(Rooms())
    assert samples(metrics.prometheus_text())[("wslab_rooms", ())] == 3


def test_the_old_import_path_names_the_same_objects() -> None:
    # The series and the metric types moved out of metrics.py; importing them from
    # wslab.infrastructure.metrics keeps working.
    from wslab.infrastructure import metrics, metrics_series, metrics_types

    for name in ("DEFAULT_BUCKETS", "CounterChild", "GaugeChild", "HistogramChild", "Timer"):
        assert getattr(metrics, name) is getattr(metrics_series, name)
    for name in ("OVERFLOW_LABEL_VALUE", "Counter", "Gauge", "Histogram", "time_it"):
        assert getattr(metrics, name) is getattr(metrics_types, name)
    assert set(metrics.__all__) >= {"Counter", "Gauge", "Histogram", "Metrics", "Timer"}
