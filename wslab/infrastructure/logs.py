"""Structured logs for operators: one JSON object per line, with the request's context in it.

Built on the standard :mod:`logging` module, so every handler, level and filter still works::

    configure_logging("INFO")                      # once, at start; calling again is harmless
    log = get_logger(__name__)                     # under the "wslab" logger
    with log_context(connection_id=cid, user_id=uid, correlation_id=new_correlation_id()):
        log.info("joined room", extra={"room": "lobby"})

prints::

    {"ts": "2024-05-01T12:00:00.123Z", "level": "INFO", "logger": "wslab.chat",
     "message": "joined room", "connection_id": "c1", "user_id": "u7", "correlation_id": "...",
     "room": "lobby"}

The context lives in a :class:`contextvars.ContextVar`, so each asyncio task sees its own: a task
copies its parent's context when it is created, and what it binds later stays in that task.

Exceptions go into an ``exc`` field (type, message and traceback). The log is for the operators
of the hub; what a peer sees is the safe message of a ``WslabError``, never this.

Lines a client can cause at will (a refused handshake, a refused token) go through a
:class:`ThrottledLog`: at most so many per second, and the next line that gets through says how
many were suppressed, so a flood costs the log a few lines a second, not one per attempt.

Jupyter: :func:`configure_logging` touches only the ``wslab`` logger (never the root logger the
kernel uses), writes to whatever ``sys.stderr`` is at the moment of each record (the kernel swaps
it for a cell-aware stream) and stops propagation so records are not printed twice.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import json as _json
import logging
import math
import os
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import IO, Any, cast

from wslab.foundation.errors import ConfigError

__all__ = [
    "ROOT_LOGGER",
    "JsonFormatter",
    "TextFormatter",
    "ThrottledLog",
    "bind",
    "configure_logging",
    "correlate",
    "current_context",
    "get_logger",
    "log_context",
    "log_line",
    "new_correlation_id",
    "unbind",
]

ROOT_LOGGER = "wslab"

# Keys every line has; context and extra fields may not take them.
_RESERVED = frozenset({"ts", "level", "logger", "message", "exc", "stack"})
# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "wslab_context",
}

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "wslab_log_context", default=_EMPTY
)


# -- context -------------------------------------------------------------------------------------


def _merged(fields: Mapping[str, Any]) -> Mapping[str, Any]:
    clash = _RESERVED.intersection(fields)
    if clash:
        raise ValueError(f"log context field {sorted(clash)[0]!r} is reserved")
    merged = dict(_context.get())
    for key, value in fields.items():
        if value is None:  # None removes a field, so a nested block can "unset" one
            merged.pop(key, None)
        else:
            merged[key] = value
    return MappingProxyType(merged)


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add ``fields`` (``connection_id=``, ``user_id=``, ``correlation_id=``...) to every record
    logged inside the block, in this task and the tasks it creates; restored on exit."""
    token = _context.set(_merged(fields))
    try:
        yield
    finally:
        _context.reset(token)


def bind(**fields: Any) -> contextvars.Token[Mapping[str, Any]]:
    """Add ``fields`` to the context for the rest of the current task (or thread).

    Meant for the top of a connection's task. Returns a token for ``unbind`` if the caller needs
    to undo it before the task ends.
    """
    return _context.set(_merged(fields))


def unbind(token: contextvars.Token[Mapping[str, Any]]) -> None:
    """Undo a :func:`bind` (in the same task)."""
    _context.reset(token)


def current_context() -> dict[str, Any]:
    """The fields that the current task adds to its records."""
    return dict(_context.get())


def new_correlation_id() -> str:
    """An id to follow one request through the logs of every layer (and hub).

    Unique within the process (a counter) and, with overwhelming likelihood, across processes
    and hubs (a random prefix per process, drawn again in a forked child): a fraction of a
    UUID's cost, which matters for an id made for every message handled.
    """
    return f"{_id_prefix}{next(_id_counter):x}"


def _new_id_prefix() -> None:
    global _id_prefix, _id_counter
    _id_prefix = uuid.uuid4().hex[:16] + "-"
    _id_counter = itertools.count(1)


_id_prefix = ""
_id_counter = itertools.count(1)
_new_id_prefix()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_id_prefix)


def correlate(correlation_id: str | int) -> contextvars.Token[Mapping[str, Any]]:
    """:func:`bind` for the one field set for every message handled: ``correlation_id``.

    The session loop's per-message step, kept lean (no keyword dict, no reserved-name check, no
    generator of a ``with`` block); undo with :func:`unbind` in the same task.
    """
    merged = dict(_context.get())
    merged["correlation_id"] = correlation_id
    return _context.set(MappingProxyType(merged))


# -- throttling ----------------------------------------------------------------------------------


class ThrottledLog:
    """Logs at most ``per_second`` records per one-second window through ``logger``.

    Records beyond that are dropped and counted; the next record let through carries the count
    as its ``suppressed`` field. One throttle is shared by one kind of line (refused handshakes,
    refused tokens), so a flood of one kind cannot silence the other.
    """

    __slots__ = ("_clock", "_in_window", "_logger", "_window_start", "per_second", "suppressed")

    def __init__(
        self,
        logger: logging.Logger,
        per_second: int = 10,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_second < 1:
            raise ConfigError(f"per_second must be at least 1, got {per_second}")
        self._logger = logger
        self.per_second = per_second
        self._clock = clock
        self._window_start = -math.inf
        self._in_window = 0
        #: Records dropped since the last one that was logged.
        self.suppressed = 0

    def log(self, level: int, message: str, **fields: Any) -> bool:
        """Log ``message`` with ``fields`` (as ``extra=``) unless over the rate; True if logged."""
        if not self._logger.isEnabledFor(level):
            return False
        now = self._clock()
        if now - self._window_start >= 1.0:
            self._window_start = now
            self._in_window = 0
        if self._in_window >= self.per_second:
            self.suppressed += 1
            return False
        self._in_window += 1
        if self.suppressed:
            fields["suppressed"] = self.suppressed
            self.suppressed = 0
        log_line(self._logger, level, message, fields)
        return True

    def info(self, message: str, **fields: Any) -> bool:
        """:meth:`log` at INFO."""
        return self.log(logging.INFO, message, **fields)


# -- formatting ----------------------------------------------------------------------------------


class _ContextFilter(logging.Filter):
    """Captures the context on the record when it is handled, in the task that logged it.

    A handler that formats later, in another thread (a QueueListener), would otherwise see the
    wrong task's context.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "wslab_context"):
            record.wslab_context = _context.get()
        return True


# What _record_fields skips: one set, one lookup per attribute of the record.
_NOT_FIELDS = _RECORD_ATTRS | _RESERVED


def _record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """Context fields, then ``extra=`` fields, of one record (reserved keys never overwritten)."""
    fields = dict(getattr(record, "wslab_context", None) or _context.get())
    for key, value in record.__dict__.items():
        if key not in _NOT_FIELDS:
            fields[key] = value
    return fields


class _Timestamps:
    """ISO 8601 UTC with milliseconds (``2024-05-01T12:00:00.123Z``), as ``datetime`` writes it.

    The date and time up to the second are formatted once per second: a hub logging a line per
    new connection formats the same second hundreds of times.
    """

    __slots__ = ("_second", "_text")

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def format(self, created: float) -> str:
        # datetime.fromtimestamp rounds to the microsecond (half to even), isoformat then
        # truncates to the millisecond: the same here, so lines read exactly as before.
        fraction, whole = math.modf(created)
        second, micros = int(whole), round(fraction * 1e6)
        if micros >= 1_000_000:
            second, micros = second + 1, micros - 1_000_000
        if second != self._second:
            self._text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._text}.{micros // 1000:03d}Z"


# One encoder for every line: json.dumps with options builds a new one per call.
_ENCODER = _json.JSONEncoder(default=str, ensure_ascii=False)


def _exc_field(exc_info: Any) -> dict[str, str]:
    etype, value, tb = exc_info
    name = (
        etype.__qualname__
        if etype.__module__ == "builtins"
        else (f"{etype.__module__}.{etype.__qualname__}")
    )
    return {
        "type": name,
        "message": str(value),
        "traceback": "".join(traceback.format_exception(etype, value, tb)),
    }


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts`` (ISO 8601 UTC), ``level``, ``logger``, ``message``, the
    context and ``extra=`` fields, and ``exc``/``stack`` when present.

    Values JSON cannot encode are written as ``str(value)``: a log line must never fail.
    """

    def __init__(self) -> None:
        super().__init__()
        self._timestamps = _Timestamps()

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": self._timestamps.format(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(_record_fields(record))
        if record.exc_info and record.exc_info[0] is not None:
            line["exc"] = _exc_field(record.exc_info)
        if record.stack_info:
            line["stack"] = record.stack_info
        return _ENCODER.encode(line)


class TextFormatter(logging.Formatter):
    """A readable line for humans: ``time LEVEL logger message key=value ...`` and a traceback."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        text = super().formatMessage(record)
        fields = _record_fields(record)
        if fields:
            text += " " + " ".join(f"{k}={v}" for k, v in fields.items())
        return text


# -- the fast path -------------------------------------------------------------------------------


def _sole_json_handler(logger: logging.Logger) -> _WslabHandler | None:
    """wslab's JSON handler if a record of ``logger`` would reach it and nothing else, else None.

    That is: no logger on the way up to ``wslab`` has a filter or a handler, ``wslab`` has only
    its own handler, formatting JSON, filtered only by the context filter, and does not
    propagate. A pytest capture, an application's own handler or filter: None.
    """
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters:
            return None
        if current.name == ROOT_LOGGER:
            handlers = current.handlers
            if current.propagate or len(handlers) != 1:
                return None
            handler = handlers[0]
            if (
                isinstance(handler, _WslabHandler)
                and type(handler.formatter) is JsonFormatter
                and all(type(f) is _ContextFilter for f in handler.filters)
            ):
                return handler
            return None
        if current.handlers or not current.propagate:
            return None
        current = current.parent
    return None


def log_line(logger: logging.Logger, level: int, message: str, fields: dict[str, Any]) -> None:
    """``logger.log(level, message, extra=fields)``, for lines logged once per connection.

    When the line can only go to wslab's own JSON handler (what ``wslab serve`` sets up, see
    :func:`_sole_json_handler`), it is written straight away: the same JSON, byte for byte, that
    the record would have been formatted into, without building the record and passing it
    through the logger, handler and filter machinery - a third of the cost. Anywhere else (other
    handlers, filters, text lines, a field a record reserves) it is exactly ``logger.log``.
    """
    if not logger.isEnabledFor(level):
        return
    handler = _sole_json_handler(logger)
    if handler is None or level < handler.level or not _NOT_FIELDS.isdisjoint(fields):
        logger.log(level, message, extra=fields, stacklevel=2)
        return
    formatter = cast(JsonFormatter, handler.formatter)
    line: dict[str, Any] = {
        "ts": formatter._timestamps.format(time.time()),
        "level": logging.getLevelName(level),
        "logger": logger.name,
        "message": message,
    }
    line.update(_context.get())
    line.update(fields)
    text = _ENCODER.encode(line) + handler.terminator
    handler.acquire()
    try:
        stream = handler.stream
        stream.write(text)
        stream.flush()
    except Exception:  # as StreamHandler.emit: a log line must never take the hub down
        handler.handleError(logging.makeLogRecord({"name": logger.name, "msg": message}))
    finally:
        handler.release()


# -- setup ---------------------------------------------------------------------------------------


class _WslabHandler(logging.StreamHandler):
    """The one handler :func:`configure_logging` keeps on the ``wslab`` logger."""

    #: How configure_logging() finds its handler among the logger's: by this attribute, not by
    #: class, so that one made before the module was reloaded (in a kernel) is found too.
    wslab_handler = True


class _CurrentStderrHandler(_WslabHandler):
    """Writes to ``sys.stderr`` as it is when each record is emitted (Jupyter, pytest swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, value: IO[str]) -> None:
        pass  # always the current sys.stderr


def get_logger(name: str) -> logging.Logger:
    """A logger under ``wslab`` (``get_logger("chat")`` is ``wslab.chat``; ``__name__`` of a
    wslab module is already there), so :func:`configure_logging` reaches it."""
    if name != ROOT_LOGGER and not name.startswith(ROOT_LOGGER + "."):
        name = f"{ROOT_LOGGER}.{name}"
    return logging.getLogger(name)


def configure_logging(
    level: str | int = "INFO", json: bool = True, stream: IO[str] | None = None
) -> logging.Logger:
    """Send the ``wslab`` logs to ``stream`` (default: the current ``sys.stderr``), as JSON
    lines or as text. Returns the ``wslab`` logger.

    Idempotent: wslab keeps exactly one handler of its own and updates it on each call, so
    starting a second hub in the same kernel does not print every line twice. Other handlers on
    the ``wslab`` logger are left alone. An unknown level raises ConfigError.
    """
    if isinstance(level, str):
        numeric = logging.getLevelName(level.upper())
        if not isinstance(numeric, int):
            raise ConfigError(
                f"log_level: expected DEBUG, INFO, WARNING, ERROR or CRITICAL, got {level!r}"
            )
        level = numeric
    logger = logging.getLogger(ROOT_LOGGER)
    handler = next((h for h in logger.handlers if getattr(h, "wslab_handler", False)), None)
    wants_current_stderr = stream is None
    if handler is not None and isinstance(handler, _CurrentStderrHandler) != wants_current_stderr:
        logger.removeHandler(handler)
        handler.close()
        handler = None
    if handler is None:
        handler = _CurrentStderrHandler() if stream is None else _WslabHandler(stream)
        handler.addFilter(_ContextFilter())
        logger.addHandler(handler)
    elif stream is not None and isinstance(handler, logging.StreamHandler):
        handler.setStream(stream)
    handler.setFormatter(JsonFormatter() if json else TextFormatter())
    logger.setLevel(level)
    # The kernel (or the application) may have its own root handlers: without this, every wslab
    # record would be printed by both.
    logger.propagate = False
    return logger
