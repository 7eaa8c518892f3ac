"""``MessageRouter``: from a raw text message to the handler of its ``type``, through middleware.

Every message of the chat protocol is a JSON object with a ``type``. The router:

1. parses it — invalid JSON, a non-object, a missing or non-string ``type`` give an
   ``INVALID_INPUT`` error envelope; an unknown type gives ``NOT_FOUND``; the connection stays
   open in every case (one bad message is not a reason to drop a user);
2. checks ``version`` (optional, default the current one): unknown versions are refused,
   deprecated ones still served with a ``warning`` field in the reply;
3. runs the middleware chain (auth, rate limits, logging...) and then the handler registered for
   ``(type, version)``;
4. turns what the handler returns into the reply (with the request's ``ref``), and what it raises
   into an error envelope: a ``WslabError`` keeps its code and message, anything else becomes
   ``INTERNAL_ERROR`` with a generic message (the stack trace goes to the log, never to the peer).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from wslab.foundation.codes import ErrorCode
from wslab.foundation.errors import NotFoundError, ValidationError, WslabError
from wslab.foundation.wire import error_envelope

from .connection import Connection

__all__ = ["MessageRouter", "RoutedMessage", "error_envelope"]

log = logging.getLogger("wslab.router")

Reply = dict[str, Any] | None
RouteHandler = Callable[["RoutedMessage"], Awaitable[Reply]]
Middleware = Callable[["RoutedMessage", RouteHandler], Awaitable[Reply]]


@dataclass
class RoutedMessage:
    """A parsed request on its way to a handler."""

    connection: Connection
    type: str
    body: dict[str, Any]
    version: str
    ref: str | int | None = None
    raw_size: int = 0
    #: Scratch space for middleware to hand things to the handler (e.g. the identity).
    context: dict[str, Any] = field(default_factory=dict)


#: Seconds between two logged tracebacks of the same failing message type.
LOG_INTERVAL = 60.0

#: Longest ``ref`` a client may send (it comes back in the reply).
MAX_REF_LENGTH = 128


class MessageRouter:
    """Routes JSON messages by ``type`` (and ``version``) to async handlers, via middleware."""

    def __init__(
        self,
        *,
        current_version: str = "1.0",
        deprecated_versions: Mapping[str, str] | None = None,
    ) -> None:
        self.current_version = current_version
        #: version -> the warning sent with replies to requests that use it.
        self.deprecated_versions = dict(deprecated_versions or {})
        self._routes: dict[tuple[str, str], RouteHandler] = {}
        #: The versions that have a route: kept up to date by add_route (parse checks it for
        #: every message, and building it from the routes each time showed in profiles).
        self._route_versions: set[str] = set()
        self._middleware: list[Middleware] = []
        #: message type -> (when its traceback was last logged, failures not logged since)
        self._failures: dict[str, tuple[float, int]] = {}

    @property
    def versions(self) -> set[str]:
        """Every version that has at least one route, plus the current one."""
        return self._route_versions | {self.current_version}

    @property
    def types(self) -> set[str]:
        """Every routed message type."""
        return {name for name, _ in self._routes}

    def add_route(
        self, type_: str, handler: RouteHandler, *, versions: Iterable[str] | None = None
    ) -> None:
        """Route ``type_`` to ``handler`` for ``versions`` (default: the current version)."""
        for version in versions or (self.current_version,):
            self._routes[(type_, version)] = handler
            self._route_versions.add(version)

    def route(
        self, type_: str, *, versions: Iterable[str] | None = None
    ) -> Callable[[RouteHandler], RouteHandler]:
        """Decorator form of :meth:`add_route`."""

        def register(handler: RouteHandler) -> RouteHandler:
            self.add_route(type_, handler, versions=versions)
            return handler

        return register

    def use(self, middleware: Middleware) -> None:
        """Append ``middleware`` to the chain; the first added runs outermost."""
        self._middleware.append(middleware)

    # -- dispatch ----------------------------------------------------------------------------------

    def parse(self, connection: Connection, raw: str | bytes) -> RoutedMessage:
        """Parse and check the envelope; raises ``ValidationError``/``NotFoundError``."""
        if isinstance(raw, bytes):
            raise ValidationError(
                "binary messages are not part of the chat protocol; send JSON text"
            )
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            raise ValidationError("message is not valid JSON") from None
        if not isinstance(body, dict):
            raise ValidationError("message must be a JSON object")
        ref = body.get("ref")
        if ref is not None and (not isinstance(ref, (str, int)) or isinstance(ref, bool)):
            raise ValidationError("'ref' must be a string or an integer")
        # Every reply echoes the ref: bounded, so a client cannot make the hub send back (and
        # log) kilobytes of its own choosing. Refused without the ref, which is the bad field.
        if (isinstance(ref, str) and len(ref) > MAX_REF_LENGTH) or (
            isinstance(ref, int) and not -(2**63) <= ref < 2**63
        ):
            raise ValidationError(
                f"'ref' must be at most {MAX_REF_LENGTH} characters or a 64-bit integer"
            )
        type_ = body.get("type")
        if type_ is None:
            raise _with_ref(ValidationError("message has no 'type'"), ref)
        if not isinstance(type_, str):
            raise _with_ref(ValidationError("'type' must be a string"), ref)
        version = body.get("version", self.current_version)
        if not isinstance(version, str):
            raise _with_ref(ValidationError("'version' must be a string"), ref)
        if version not in self._route_versions and version != self.current_version:
            raise _with_ref(ValidationError(f"unknown protocol version {version[:32]!r}"), ref)
        if (type_, version) not in self._routes:
            raise _with_ref(NotFoundError(f"unknown message type {type_[:64]!r}"), ref)
        return RoutedMessage(connection, type_, body, version, ref, len(raw))

    async def dispatch(self, connection: Connection, raw: str | bytes) -> Reply:
        """Handle one raw message; returns the reply (or error envelope) to send, if any."""
        try:
            request = self.parse(connection, raw)
        except WslabError as error:
            return error_envelope(error, getattr(error, "ref", None))
        return await self.handle(request)

    async def handle(self, request: RoutedMessage) -> Reply:
        """Run the middleware chain and the handler for an already parsed request."""
        handler = self._routes[(request.type, request.version)]
        call = handler
        for middleware in reversed(self._middleware):
            call = _bind(middleware, call)
        try:
            reply = await call(request)
        except WslabError as error:
            return error_envelope(error, request.ref)
        except Exception:
            self._log_failure(request.type)
            internal = WslabError("internal error", code=ErrorCode.INTERNAL_ERROR)
            return error_envelope(internal, request.ref)
        if reply is None:
            return None
        # A handler may return a shared dict (a constant "ok" reply): the ref and the warning go
        # on a copy, or one request's ref would stick to every later reply.
        reply = dict(reply)
        if request.ref is not None:
            reply.setdefault("ref", request.ref)
        warning = self.deprecated_versions.get(request.version)
        if warning:
            reply.setdefault("warning", warning)
        return reply

    def _log_failure(self, type_: str) -> None:
        """Log a handler's unexpected failure: the traceback at most once per
        ``LOG_INTERVAL`` seconds per message type, then one counted line, so that a client
        repeating a request that trips a bug cannot fill the log (keys are routed types only,
        a bounded set)."""
        now = time.monotonic()
        last, suppressed = self._failures.get(type_, (-LOG_INTERVAL, 0))
        if now - last >= LOG_INTERVAL:
            self._failures[type_] = (now, 0)
            log.exception(
                "handler for %r failed (%d similar failures not logged)", type_, suppressed
            )
        else:
            self._failures[type_] = (last, suppressed + 1)


def _bind(middleware: Middleware, call_next: RouteHandler) -> RouteHandler:
    async def run(request: RoutedMessage) -> Reply:
        return await middleware(request, call_next)

    return run


def _with_ref(error: WslabError, ref: str | int | None) -> WslabError:
    error.ref = ref  # carried to the envelope by dispatch()
    return error
