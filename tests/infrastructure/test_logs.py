"""Structured logs: JSON lines, per-task context, exception field, idempotent setup."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from wslab.foundation.errors import ConfigError
from wslab.infrastructure.logs import (
    JsonFormatter,
    bind,
    configure_logging,
    correlate,
    current_context,
    get_logger,
    log_context,
    new_correlation_id,
    unbind,
)


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """Logs of the ``wslab`` logger into a buffer; the logger is restored afterwards."""
    root = logging.getLogger("wslab")
    saved = (list(root.handlers), root.level, root.propagate)
    buffer = io.StringIO()
    configure_logging("DEBUG", stream=buffer)
    yield buffer
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved[0]:
        root.addHandler(handler)
    root.setLevel(saved[1])
    root.propagate = saved[2]


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_each_record_is_one_json_object_per_line(stream: io.StringIO) -> None:
    log = get_logger("wslab.test")
    log.info("hello %s", "world")
    log.warning("multi\nline", extra={"room": "lobby", "count": 3, "obj": object()})
    first, second = lines(stream)
    assert first["message"] == "hello world"
    assert first["level"] == "INFO" and first["logger"] == "wslab.test"
    assert first["ts"].endswith("Z")
    ts = datetime.fromisoformat(first["ts"].replace("Z", "+00:00"))
    assert ts.utcoffset() == timezone.utc.utcoffset(None)
    assert second["message"] == "multi\nline"
    assert second["room"] == "lobby" and second["count"] == 3
    assert second["obj"].startswith("<object object")  # unencodable values become text
    assert "exc" not in second


def test_context_fields_appear_and_are_restored(stream: io.StringIO) -> None:
    log = get_logger("wslab.test")
    with log_context(connection_id="c1", user_id="u1"):
        log.info("outer")
        with log_context(correlation_id="r1", user_id=None):
            assert current_context() == {"connection_id": "c1", "correlation_id": "r1"}
            log.info("inner")
        log.info("outer again")
    log.info("outside")
    outer, inner, again, outside = lines(stream)
    assert (outer["connection_id"], outer["user_id"]) == ("c1", "u1")
    assert inner["correlation_id"] == "r1" and "user_id" not in inner
    assert again["user_id"] == "u1" and "correlation_id" not in again
    assert "connection_id" not in outside
    assert current_context() == {}


def test_reserved_fields_are_refused_and_core_keys_win(stream: io.StringIO) -> None:
    with pytest.raises(ValueError, match="reserved"), log_context(level="x"):
        pass
    get_logger("wslab.test").info("real", extra={"level": "fake"})
    (line,) = lines(stream)
    assert line["level"] == "INFO" and line["message"] == "real"


async def test_context_is_isolated_between_tasks(stream: io.StringIO) -> None:
    log = get_logger("wslab.test")

    async def connection(cid: str) -> None:
        bind(connection_id=cid)
        for step in range(3):
            log.info("step", extra={"step": step, "expected": cid})
            await asyncio.sleep(0)  # interleave the tasks

    async def scoped(cid: str) -> None:
        with log_context(connection_id=cid, correlation_id=new_correlation_id()):
            for step in range(3):
                log.info("step", extra={"step": step, "expected": cid})
                await asyncio.sleep(0)

    with log_context(user_id="parent"):
        await asyncio.gather(connection("a"), connection("b"), scoped("c"), scoped("d"))
    log.info("after")

    records = lines(stream)
    steps = [r for r in records if r["message"] == "step"]
    assert len(steps) == 12
    assert {r["expected"] for r in steps[:4]} == {"a", "b", "c", "d"}  # they did interleave
    for record in steps:
        assert record["connection_id"] == record["expected"]
        assert record["user_id"] == "parent"  # inherited from the creating context
    assert len({r["correlation_id"] for r in steps if "correlation_id" in r}) == 2
    assert "connection_id" not in records[-1]  # a task's bind() never leaks out


def test_bind_and_unbind_in_the_current_context(stream: io.StringIO) -> None:
    token = bind(user_id="u9")
    try:
        get_logger("wslab.test").info("bound")
    finally:
        unbind(token)
    assert lines(stream)[0]["user_id"] == "u9"
    assert current_context() == {}


def test_exception_goes_into_the_exc_field(stream: io.StringIO) -> None:
    log = get_logger("wslab.test")
    try:
        raise ConfigError("port: bad")
    except ConfigError:
        log.exception("could not start")
    try:
        raise KeyError("k")
    except KeyError:
        log.error("lookup", exc_info=True)
    first, second = lines(stream)
    assert first["level"] == "ERROR" and first["message"] == "could not start"
    assert first["exc"]["type"] == "wslab.foundation.errors.ConfigError"
    assert first["exc"]["message"] == "port: bad"
    assert "Traceback (most recent call last)" in first["exc"]["traceback"]
    assert "test_exception_goes_into_the_exc_field" in first["exc"]["traceback"]
    assert second["exc"]["type"] == "KeyError"


def test_configure_is_idempotent(stream: io.StringIO) -> None:
    root = logging.getLogger("wslab")
    other = io.StringIO()
    configure_logging("INFO", stream=stream)
    configure_logging("INFO", stream=other)
    ours = [h for h in root.handlers if getattr(h, "wslab_handler", False)]
    assert len(ours) == 1
    assert root.propagate is False
    get_logger("chat").info("once")
    get_logger("chat").debug("filtered by level")
    assert stream.getvalue() == ""  # the handler moved to the new stream
    assert [r["message"] for r in lines(other)] == ["once"]
    assert lines(other)[0]["logger"] == "wslab.chat"


def test_text_format_and_current_stderr(
    stream: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO", json=False)  # no stream: whatever sys.stderr is at each record
    with log_context(connection_id="c7"):
        get_logger("wslab.test").info("plain")
    err = capsys.readouterr().err
    assert err.rstrip().endswith("INFO wslab.test plain connection_id=c7")
    assert len([h for h in logging.getLogger("wslab").handlers if hasattr(h, "wslab_handler")]) == 1
    assert stream.getvalue() == ""


def test_unknown_level_is_a_config_error(stream: io.StringIO) -> None:
    with pytest.raises(ConfigError, match="LOUD"):
        configure_logging("LOUD", stream=stream)


def test_formatter_works_without_configure() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m %d", (1,), None)
    with log_context(correlation_id="r2"):
        line = json.loads(JsonFormatter().format(record))
    assert line["logger"] == "x" and line["message"] == "m 1" and line["correlation_id"] == "r2"
    assert new_correlation_id() != new_correlation_id()


def test_correlation_ids_are_unique_within_the_process() -> None:
    ids = [new_correlation_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(isinstance(i, str) and len(i) >= 16 for i in ids)


def test_a_forked_child_draws_ids_of_its_own() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report one id and leave at once
        os.write(write, new_correlation_id().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    theirs = os.read(read, 100).decode()
    os.close(read)
    mine = new_correlation_id()
    assert theirs and theirs.split("-")[0] != mine.split("-")[0]


def test_correlate_adds_the_id_to_the_lines_and_unbind_removes_it(stream: io.StringIO) -> None:
    log = get_logger("wslab.test")
    outer = bind(connection_id="c9")
    token = correlate(new_correlation_id())
    log.warning("inside")
    unbind(token)
    log.warning("outside")
    unbind(outer)
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["connection_id"] == "c9" and inside["correlation_id"]
    assert outside["connection_id"] == "c9" and "correlation_id" not in outside


def test_a_throttled_log_keeps_to_its_rate_and_says_what_it_dropped(
    stream: io.StringIO,
) -> None:
    from wslab.infrastructure.logs import ThrottledLog

    now = [0.0]
    throttle = ThrottledLog(get_logger("test.throttle"), per_second=3, clock=lambda: now[0])
    logged = [throttle.info("refused", reason="origin", n=i) for i in range(10)]
    assert logged == [True] * 3 + [False] * 7
    assert throttle.suppressed == 7
    now[0] = 1.0  # the next window
    assert throttle.info("refused", reason="origin", n=10)
    records = lines(stream)
    assert [r["n"] for r in records] == [0, 1, 2, 10]
    assert "suppressed" not in records[0]
    assert records[-1]["suppressed"] == 7 and records[-1]["reason"] == "origin"
    assert throttle.suppressed == 0


def test_a_throttled_log_below_its_level_costs_nothing(stream: io.StringIO) -> None:
    from wslab.infrastructure.logs import ThrottledLog

    logger = get_logger("test.quiet")
    logger.setLevel(logging.WARNING)
    try:
        throttle = ThrottledLog(logger, per_second=1)
        assert not throttle.info("refused")
        assert throttle.suppressed == 0  # not a suppression: nobody wanted the line
        assert lines(stream) == []
    finally:
        logger.setLevel(logging.NOTSET)


def test_a_throttle_needs_a_positive_rate() -> None:
    from wslab.infrastructure.logs import ThrottledLog

    with pytest.raises(ConfigError):
        ThrottledLog(get_logger("test.zero"), per_second=0)


@pytest.mark.parametrize(
    "created", [0.0, 1.9999996, 1_700_000_000.0004999, 1_700_000_000.9995, 1_700_000_000.9999995]
)
def test_timestamps_read_as_datetime_writes_them(created: float) -> None:
    from datetime import datetime, timezone

    from wslab.infrastructure.logs import _Timestamps

    expected = datetime.fromtimestamp(created, tz=timezone.utc).isoformat(timespec="milliseconds")
    assert _Timestamps().format(created) == expected.replace("+00:00", "Z")


def _without_ts(buffer: io.StringIO) -> list[str]:
    """Each line with its timestamp cut out (the two ways log at different instants)."""
    return [line.split('"level"', 1)[1] for line in buffer.getvalue().splitlines()]


def test_log_line_writes_what_the_record_would_have_been_formatted_into(
    stream: io.StringIO,
) -> None:
    from wslab.infrastructure.logs import log_line

    log = get_logger("wslab.hub")
    fields = {"connection_id": "c1", "remote": "127.0.0.1:9", "code": None, "odd": {1, 2}}
    with log_context(user_id="u1", connection_id="ctx"):
        log.info("connection opened", extra=fields)
        log_line(log, logging.INFO, "connection opened", fields)
        log_line(log, logging.DEBUG, "50% done é", {"n": 1})
        log.debug("50% done é", extra={"n": 1})
    slow, fast, fast2, slow2 = _without_ts(stream)
    assert fast == slow and fast2 == slow2
    first = lines(stream)[1]
    assert list(first)[:4] == ["ts", "level", "logger", "message"]
    assert first["ts"].endswith("Z") and first["connection_id"] == "c1"


def test_log_line_is_logger_log_wherever_another_handler_listens(
    stream: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    from wslab.infrastructure.logs import log_line

    log = get_logger("wslab.hub")
    extra = logging.StreamHandler(io.StringIO())
    logging.getLogger("wslab").addHandler(extra)  # an application's own handler
    try:
        log_line(log, logging.INFO, "connection opened", {"user_id": "u1"})
    finally:
        logging.getLogger("wslab").removeHandler(extra)
    assert "connection opened" in extra.stream.getvalue()
    assert lines(stream)[0]["user_id"] == "u1"
    log_line(log, logging.INFO, "skipped", {"ts": "mine"})  # a key the line reserves: skipped
    assert lines(stream)[1]["ts"] != "mine"
    with pytest.raises(KeyError):  # one a record reserves: refused, as logger.log refuses it
        log_line(log, logging.INFO, "refused", {"message": "clash"})
