"""The bounded event log: levels, bounds, views, subscribers and DataFrames."""

from __future__ import annotations

import logging
import subprocess
import sys

import pandas as pd
import pytest

from wslab.foundation.errors import ConfigError, ConflictError
from wslab.infrastructure.events import (
    NULL_EVENT_LOG,
    TRAFFIC_KINDS,
    Event,
    EventKind,
    EventLog,
)
from wslab.testing import FakeClock


def frame(log: EventLog, cid: str = "c1", length: int = 5) -> bool:
    return log.record(
        EventKind.FRAME_IN, cid, opcode=1, fin=True, rsv=0, masked=True, length=length
    )


# -- recording and levels ------------------------------------------------------------------------


def test_record_keeps_kind_connection_fields_and_clock_time() -> None:
    clock = FakeClock(5.0)
    log = EventLog(level="frames", clock=clock)
    assert frame(log, "c1", length=125)
    clock.advance(0.5)
    log.record(EventKind.PONG, "c1", rtt=0.002)

    first, second = list(log)
    assert first == Event(
        5.0,
        first.wall,
        EventKind.FRAME_IN,
        "c1",
        {"opcode": 1, "fin": True, "rsv": 0, "masked": True, "length": 125},
    )
    assert first.get("length") == 125 and first.get("missing", "x") == "x"
    assert second.t == 5.5 and second.kind is EventKind.PONG and second.fields == {"rtt": 0.002}
    assert first.wall > 1_600_000_000  # a real Unix time, whatever the fake clock says


def test_event_is_frozen_and_slotted() -> None:
    event = Event(1.0, 2.0, EventKind.CUSTOM, None, {})
    with pytest.raises(AttributeError):
        event.t = 3.0  # type: ignore[misc]
    assert not hasattr(event, "__dict__")


def test_lifecycle_level_drops_traffic_but_keeps_the_rest() -> None:
    log = EventLog(level="lifecycle")
    for kind in EventKind:
        log.record(kind, "c1")
    kept = {e.kind for e in log}
    assert kept == set(EventKind) - TRAFFIC_KINDS
    assert EventKind.FRAME_IN in TRAFFIC_KINDS and EventKind.FRAME_OUT in TRAFFIC_KINDS
    assert not log.enabled_for(EventKind.FRAME_OUT)
    assert log.enabled_for(EventKind.TRANSITION)


def test_frames_level_keeps_everything_and_off_keeps_nothing() -> None:
    log = EventLog(level="frames")
    for kind in EventKind:
        assert log.enabled_for(kind)
        assert log.record(kind)
    assert len(log) == len(EventKind)

    off = EventLog(level="off")
    seen: list[Event] = []
    off.subscribe(seen.append)
    for kind in EventKind:
        assert not off.enabled_for(kind)
        assert off.record(kind, "c1", x=1) is False
    assert len(off) == 0 and off.counts() == {} and seen == []


def test_level_can_be_changed_live_and_is_validated() -> None:
    log = EventLog(level="lifecycle")
    assert not frame(log)
    log.level = "frames"
    assert frame(log)
    assert log.level == "frames"
    with pytest.raises(ConfigError):
        log.level = "verbose"  # type: ignore[assignment]
    with pytest.raises(ConfigError):
        EventLog(level="all")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        EventLog(maxlen=0)


# -- bounds --------------------------------------------------------------------------------------


def test_maxlen_is_respected_oldest_dropped_and_counted() -> None:
    clock = FakeClock(0.0)
    log = EventLog(maxlen=10, level="frames", clock=clock)
    for i in range(25):
        clock.now = float(i)
        frame(log, length=i)
    assert len(log) == 10
    assert log.dropped == 15
    assert [e.get("length") for e in log] == list(range(15, 25))
    # counts() counts every recorded event, dropped or not; retained=True only the kept ones.
    assert log.counts() == {EventKind.FRAME_IN: 25}
    assert log.counts(retained=True) == {EventKind.FRAME_IN: 10}


def test_clear_forgets_events_counts_and_dropped_but_keeps_subscribers() -> None:
    log = EventLog(maxlen=2)
    seen: list[Event] = []
    log.subscribe(seen.append)
    for _ in range(5):
        log.record(EventKind.CONNECT, "c1")
    log.clear()
    assert len(log) == 0 and log.dropped == 0 and log.counts() == {}
    log.record(EventKind.DISCONNECT, "c1")
    assert len(log) == 1 and len(seen) == 6


def test_subscriber_limit() -> None:
    log = EventLog(max_subscribers=2)
    unsubscribe = log.subscribe(lambda e: None)
    log.subscribe(lambda e: None)
    with pytest.raises(ConflictError):
        log.subscribe(lambda e: None)
    unsubscribe()
    assert log.subscribers == 1
    log.subscribe(lambda e: None)  # room again
    assert log.subscribers == 2


# -- reading -------------------------------------------------------------------------------------


def test_for_connection_is_a_live_filtered_view() -> None:
    clock = FakeClock(0.0)
    log = EventLog(level="frames", clock=clock)
    view = log.for_connection("a")
    log.record(EventKind.CONNECT, "a")
    log.record(EventKind.CONNECT, "b")
    frame(log, "a")
    log.record(EventKind.ERROR, None, message="hub-wide")
    assert view.connection_id == "a"
    assert [e.kind for e in view] == [EventKind.CONNECT, EventKind.FRAME_IN]
    assert all(e.connection_id == "a" for e in view)
    clock.advance(1)
    log.record(EventKind.CLOSE, "a", code=1000, reason="bye")
    assert len(view) == 3  # it follows later recording
    assert view.last().kind is EventKind.CLOSE  # type: ignore[union-attr]
    assert view.last(EventKind.CONNECT).t == 0.0  # type: ignore[union-attr]
    assert [e.kind for e in view.since(1.0)] == [EventKind.CLOSE]
    assert view.counts() == {EventKind.CONNECT: 1, EventKind.FRAME_IN: 1, EventKind.CLOSE: 1}
    assert [e.kind for e in view.events(EventKind.FRAME_IN)] == [EventKind.FRAME_IN]
    assert list(view.to_dataframe()["kind"]) == ["connect", "frame_in", "close"]


def test_since_is_inclusive_and_ordered() -> None:
    clock = FakeClock(0.0)
    log = EventLog(clock=clock)
    for t in (1.0, 2.0, 2.0, 3.0):
        clock.now = t
        log.record(EventKind.CUSTOM, None, at=t)
    assert [e.t for e in log.since(2.0)] == [2.0, 2.0, 3.0]
    assert log.since(3.5) == []
    assert len(log.since(0.0)) == 4


def test_events_filters_by_kind_string_or_several_kinds() -> None:
    log = EventLog()
    log.record(EventKind.PING, "c1")
    log.record(EventKind.PONG, "c1", rtt=0.01)
    log.record(EventKind.CLOSE, "c2", code=1000)
    assert [e.kind for e in log.events("pong")] == [EventKind.PONG]
    assert len(log.events({EventKind.PING, EventKind.PONG})) == 2
    assert [e.kind for e in log.events(connection_id="c2")] == [EventKind.CLOSE]
    assert log.last(EventKind.PING).connection_id == "c1"  # type: ignore[union-attr]
    assert log.last(EventKind.ERROR) is None


def test_iteration_is_a_snapshot() -> None:
    log = EventLog()
    log.record(EventKind.CONNECT, "c1")
    for _ in log:
        log.record(EventKind.DISCONNECT, "c1")  # recording while reading is fine
    assert len(log) == 2


# -- subscribers ---------------------------------------------------------------------------------


def test_subscribers_see_every_kept_event_in_order() -> None:
    log = EventLog(level="lifecycle")
    seen: list[Event] = []
    unsubscribe = log.subscribe(seen.append)
    log.record(EventKind.CONNECT, "c1")
    frame(log)  # filtered out by the level: not published either
    log.record(EventKind.AUTH, "c1", user_id="u1")
    unsubscribe()
    log.record(EventKind.DISCONNECT, "c1")
    assert [e.kind for e in seen] == [EventKind.CONNECT, EventKind.AUTH]
    assert seen[1].fields == {"user_id": "u1"}


def test_failing_subscriber_is_detached_and_reported_never_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = EventLog()
    good: list[Event] = []

    def broken(event: Event) -> None:
        raise RuntimeError("dashboard went away")

    log.subscribe(broken)
    log.subscribe(good.append)
    with caplog.at_level(logging.WARNING, logger="wslab.events"):
        assert log.record(EventKind.CONNECT, "c1") is True  # no exception reaches the caller
    assert log.subscribers == 1
    # The other subscriber saw the event first, then the ERROR about the failure.
    assert [e.kind for e in good] == [EventKind.CONNECT, EventKind.ERROR]
    error = log.last(EventKind.ERROR)
    assert error is not None
    assert error.fields["error"] == "RuntimeError"
    assert error.fields["message"] == "dashboard went away"
    assert error.fields["where"] == "event_subscriber"
    assert "dashboard went away" in caplog.text
    log.record(EventKind.DISCONNECT, "c1")  # broken is not called again
    assert [e.kind for e in good][-1] is EventKind.DISCONNECT


def test_subscribers_failing_on_each_others_error_events_terminate() -> None:
    log = EventLog()
    for _ in range(5):
        log.subscribe(lambda e: 1 / 0)
    log.record(EventKind.CUSTOM)
    assert log.subscribers == 0
    assert log.counts()[EventKind.ERROR] == 5


def test_subscriber_may_unsubscribe_itself_while_called() -> None:
    log = EventLog()
    calls: list[Event] = []

    def once(event: Event) -> None:
        calls.append(event)
        log.unsubscribe(once)

    log.subscribe(once)
    log.record(EventKind.CUSTOM)
    log.record(EventKind.CUSTOM)
    assert len(calls) == 1 and log.counts().get(EventKind.ERROR) is None
    assert log.unsubscribe(once) is False


# -- DataFrames ----------------------------------------------------------------------------------


def test_to_dataframe_columns_types_and_rows() -> None:
    clock = FakeClock(10.0)
    log = EventLog(level="frames", clock=clock)
    frame(log, "c1", length=7)
    clock.advance(0.25)
    log.record(EventKind.TRANSITION, "c1", old="CONNECTING", new="OPEN", cause="handshake")
    log.record(EventKind.PONG, "c2", rtt=0.003)

    df = log.to_dataframe()
    assert list(df.columns[:4]) == ["t", "wall", "kind", "connection_id"]
    assert set(df.columns[4:]) == {
        "opcode",
        "fin",
        "rsv",
        "masked",
        "length",
        "old",
        "new",
        "cause",
        "rtt",
    }
    assert len(df) == 3
    assert list(df["t"]) == [10.0, 10.25, 10.25]
    assert isinstance(df["wall"].dtype, pd.DatetimeTZDtype) and str(df["wall"].dt.tz) == "UTC"
    assert abs(df["wall"].iloc[0] - pd.Timestamp.now(tz="UTC")) < pd.Timedelta(days=1)
    assert list(df["kind"]) == ["frame_in", "transition", "pong"]
    assert list(df["connection_id"]) == ["c1", "c1", "c2"]
    assert df.loc[0, "length"] == 7 and pd.isna(df.loc[1, "length"])
    assert df.loc[1, "new"] == "OPEN"
    assert df.loc[2, "rtt"] == pytest.approx(0.003)


def test_to_dataframe_filters_and_empty_frames() -> None:
    log = EventLog(level="frames")
    frame(log, "c1")
    frame(log, "c2")
    log.record(EventKind.CLOSE, "c1", code=1000, reason="")
    df = log.to_dataframe(kind=EventKind.FRAME_IN, connection_id="c1")
    assert len(df) == 1 and df.loc[0, "kind"] == "frame_in"
    assert "code" not in df.columns  # only fields of the selected events
    assert len(log.to_dataframe(kind="close")) == 1

    empty = EventLog().to_dataframe()
    assert list(empty.columns) == ["t", "wall", "kind", "connection_id"]
    assert len(empty) == 0
    assert isinstance(empty["wall"].dtype, pd.DatetimeTZDtype)


def test_to_dataframe_renames_fields_that_clash_with_fixed_columns() -> None:
    log = EventLog()
    log.record(EventKind.CUSTOM, "c1", kind="note", t=1)
    df = log.to_dataframe()
    assert df.loc[0, "kind"] == "custom"
    assert df.loc[0, "field_kind"] == "note" and df.loc[0, "field_t"] == 1


def test_importing_the_event_log_does_not_import_pandas() -> None:
    # The engine imports this module; pandas must stay a cost of reading, not of recording.
    code = (
        "import sys, wslab.infrastructure.events as ev; "
        "log = ev.EventLog(level='frames'); log.record(ev.EventKind.FRAME_IN, 'c1', length=1); "
        "assert 'pandas' not in sys.modules, 'pandas imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_the_null_event_log_keeps_nothing_and_stays_off() -> None:
    assert not NULL_EVENT_LOG.enabled_for(EventKind.CONNECT)
    assert NULL_EVENT_LOG.record(EventKind.CONNECT, "c1", remote="x") is False
    assert len(NULL_EVENT_LOG) == 0 and NULL_EVENT_LOG.level == "off"
    NULL_EVENT_LOG.level = "off"  # what it already is
    with pytest.raises(ConfigError, match="records nothing"):
        NULL_EVENT_LOG.level = "frames"
    assert not NULL_EVENT_LOG.enabled_for(EventKind.FRAME_IN)
