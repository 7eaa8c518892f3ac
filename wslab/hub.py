"""``Hub``: the composition root — builds the four layers from a ``HubConfig`` and runs them.

In a notebook cell (a running event loop)::

    hub = await Hub.start()                 # http://127.0.0.1:8765, SQLite, in-process broker
    hub.connections                         # who is connected (a table in Jupyter)
    hub.events.to_dataframe()               # what the engine did
    hub.metrics.to_dataframe()              # counters, gauges, latency percentiles
    await hub.stop()

``Hub.start_in_thread()`` runs a hub on its own loop in a background thread, for dashboards that
must keep updating while a cell blocks. Start-up order: store, broker, chat service, heartbeat,
server; :meth:`Hub.stop` undoes it in reverse (clients get 1001 first).

What it serves: the chat page at ``/``, the WebSocket at ``/ws``, ``/healthz``, ``/metrics``
(Prometheus) and ``/config.json`` (what the page needs to know).

``/metrics``: the series of :mod:`wslab.hub_metrics`, the chat's own metrics, and
prometheus_client's ``process_*``, ``python_info`` and ``python_gc_*``. The static files and
the method table are in :mod:`wslab.hub_http`; ``ThreadedHub`` is in :mod:`wslab.threaded_hub`.

Logs (INFO, on ``wslab.hub``): ``connection opened`` (connection_id, remote, user_id, engine),
``connection closed`` (code, reason, closed_by ``hub``/``peer``, duration_s), and, throttled to
:data:`REFUSAL_LOG_RATE` lines a second each with a ``suppressed`` count, ``handshake refused``
(reason, status) and ``token refused`` (reason, method).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import secrets
import ssl as ssl_module
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ClassVar

from wslab.application.chat import ChatService
from wslab.application.session import Authenticator, Session
from wslab.application.session_loop import SessionLoop
from wslab.application.versioning import CURRENT_VERSION, DEPRECATED_VERSIONS
from wslab.foundation.codes import CloseCode
from wslab.foundation.deflate import DeflateSettings
from wslab.foundation.errors import ConfigError, HandshakeError
from wslab.foundation.handshake import Upgrade
from wslab.foundation.http import Request
from wslab.hub_admission import AbuseGate
from wslab.hub_http import KNOWN_METHODS, static_file
from wslab.hub_metrics import HubMetrics, auth_failure_reason, close_code_label
from wslab.infrastructure.config import HubConfig
from wslab.infrastructure.connection import Connection, ConnectionLimits
from wslab.infrastructure.engines import serve
from wslab.infrastructure.events import EventKind, EventLog
from wslab.infrastructure.fairness import LoopStallWatch
from wslab.infrastructure.heartbeat import HeartbeatMonitor
from wslab.infrastructure.logs import ThrottledLog, bind, log_line
from wslab.infrastructure.manager import ConnectionManager
from wslab.infrastructure.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from wslab.infrastructure.metrics import Metrics
from wslab.infrastructure.ratelimit import AddressLimiter, ConnectionLimiter
from wslab.infrastructure.router import MessageRouter
from wslab.infrastructure.server import HttpResponse
from wslab.infrastructure.traffic import TrafficTotals
from wslab.integration.auth import (
    AuthConfig,
    OriginPolicy,
    TokenVerifier,
    generate_secret,
    issue_token,
)
from wslab.integration.backends import broker_from_url, store_from_url
from wslab.threaded_hub import ConnectionsView, ThreadedHub

__all__ = ["ConnectionsView", "Hub", "ThreadedHub"]

log = logging.getLogger("wslab.hub")

#: Lines per second for refused handshakes and refused tokens (each throttled on its own).
REFUSAL_LOG_RATE = 10


def _refusal(error: HandshakeError, reason: str) -> HandshakeError:
    """Tag a refusal with its ``reason`` label, read back when the engine refuses the upgrade."""
    error.refusal_reason = reason  # type: ignore[attr-defined]
    return error


MAX_ERRORS = 100


def _remote(connection: Connection) -> str | None:
    """``host:port`` of the connection's peer, for log lines."""
    remote = connection.remote
    return f"{remote[0]}:{remote[1]}" if remote else None


class _StartMethod:
    """``Hub.start(...)`` builds a hub and starts it; ``hub.start()`` starts that very hub.

    Both spellings are natural (``HubProcess`` and ``TcpProxy`` start their instance), and a
    plain classmethod would answer ``Hub(port=0).start()`` by starting a *second* hub, leaving
    the first one unstarted and the second one unreachable and never stopped.
    """

    def __get__(
        self, instance: Hub | None, owner: type[Hub]
    ) -> Callable[..., Coroutine[Any, Any, Hub]]:
        if instance is None:

            async def build_and_start(config: HubConfig | None = None, **overrides: Any) -> Hub:
                hub = owner(config, **overrides)
                await hub._start()
                return hub

            return build_and_start

        async def start_this(config: HubConfig | None = None, **overrides: Any) -> Hub:
            if config is not None or overrides:
                raise TypeError(
                    "hub.start() takes no settings: pass them to Hub(...) or Hub.start(...)"
                )
            await instance._start()
            return instance

        return start_this


class Hub:
    """One chat hub. Use :meth:`start` (or ``async with Hub(...)``) inside a running loop."""

    _running: ClassVar[dict[tuple[str, int], Hub]] = {}

    def __init__(self, config: HubConfig | None = None, **overrides: Any) -> None:
        if config is None:
            config = HubConfig.load(**overrides)
        elif overrides:
            config = config.replace(**overrides)
        self.generated_secret = False
        if config.auth_required and not config.jwt_secret and not config.jwt_public_key:
            config = config.replace(jwt_secret=generate_secret())
            self.generated_secret = True
        self.config = config
        self.hub_id = config.hub_id or f"hub-{secrets.token_hex(3)}"
        self.events = EventLog(maxlen=config.event_log_size, level=config.event_log_level)  # type: ignore[arg-type]
        self.metrics = Metrics()
        self.errors: deque[dict[str, Any]] = deque(maxlen=MAX_ERRORS)
        self.manager = ConnectionManager(
            max_connections=config.max_connections,
            max_groups_per_connection=config.max_rooms_per_connection,
        )
        self.store = store_from_url(config.database, retention=config.history_retention)
        self.broker = broker_from_url(config.broker, self.hub_id, prefix=config.broker_prefix)
        self.auth_config: AuthConfig | None = None
        verifier = None
        if config.auth_required:
            self.auth_config = AuthConfig(
                secret=config.jwt_secret,
                public_key=config.jwt_public_key,
                algorithms=tuple(config.jwt_algorithms),
                issuer=config.jwt_issuer,
                audience=config.jwt_audience,
                leeway=config.jwt_leeway,
                cache_size=config.token_cache_size,
            )
            verifier = TokenVerifier(self.auth_config)
        self.origins = OriginPolicy(config.allowed_origins)
        self.router = MessageRouter(
            current_version=CURRENT_VERSION, deprecated_versions=DEPRECATED_VERSIONS
        )
        self.chat = ChatService(
            hub_id=self.hub_id,
            store=self.store,
            broker=self.broker,
            manager=self.manager,
            authenticator=Authenticator(
                verifier,
                auth_timeout=config.auth_timeout,
                event_log=self.events,
                on_failure=self._auth_failed,
            ),
            event_log=self.events,
            metrics=self.metrics,
            retry_queue_size=config.retry_queue_size,
            retry_queue_per_user=config.retry_queue_per_user,
            presence_interval=config.presence_interval,
            max_rooms=config.max_rooms,
            max_rooms_per_user=config.max_rooms_per_user,
            presence_broadcast_limit=config.presence_broadcast_limit,
            routing=config.broker_routing,
            max_room_channels=config.max_broker_channels,
            max_user_channels=config.max_broker_channels,
            on_error=self._report_error,
        )
        self.chat.register(self.router)
        self.heartbeat = HeartbeatMonitor(
            config.ping_interval,
            config.pong_timeout,
            event_log=self.events,
            on_rtt=self._observe_rtt,
            on_error=self._report_error,
        )
        self.address_limiter = AddressLimiter(config.connections_per_ip_per_minute)
        #: Users and addresses refused at the upgrade after an abusive close (hub_admission).
        self.abuse = AbuseGate(config, verifier)
        #: Notices when this hub's event loop was blocked (see wslab.infrastructure.fairness).
        # Fast ticks while messages flow, slow ones once idle (an idle hub's wake-ups cost CPU).
        self.stalls = LoopStallWatch(activity=lambda: self.sessions.seen)
        self.traffic = TrafficTotals()
        self._refusal_log = ThrottledLog(log, REFUSAL_LOG_RATE)
        self._auth_log = ThrottledLog(log, REFUSAL_LOG_RATE)
        self.limits = ConnectionLimits(
            max_message_size=config.max_message_size,
            max_frame_size=config.max_frame_size,
            max_queue=config.max_queue,
            max_queue_bytes=config.max_queue_bytes,
            slow_consumer_policy=config.slow_consumer_policy,  # type: ignore[arg-type]
            write_high=config.write_buffer_high,
            write_low=config.write_buffer_low,
            close_timeout=config.close_timeout,
            max_frames_per_second=config.max_frames_per_second,
            frame_burst=config.frame_burst,
            max_fragments=config.max_fragments_per_message,
            compression=(
                DeflateSettings(
                    max_window_bits=config.compression_window_bits,
                    no_context_takeover=config.compression_no_context_takeover,
                    threshold=config.compression_threshold,
                )
                if config.compression
                else None
            ),
        )
        self.server: Any = None
        # Kept apart from the server: a stopped server has no sockets to ask, and a stopped hub
        # must still say where it was (repr in a notebook, the URL in a log line).
        self._bound_port: int | None = None
        self._started = False
        self._m = HubMetrics(
            self.metrics,
            engine=config.engine,
            manager=self.manager,
            chat=self.chat,
            broker=self.broker,
            traffic=self.traffic,
        )
        # Bound once: a bound method made per connection is one more object each idle
        # connection holds (in its close callbacks) for its whole life.
        self._on_connection_closed = self._connection_closed
        self._on_session_closed = self._log_close
        self._forgives = self.stalls.forgiven_seconds  # shared by every connection's limiter
        #: Each connection's life after the upgrade (wslab.application.session_loop).
        self.sessions = SessionLoop(
            self.chat,
            self.router,
            self.heartbeat,
            new_limiter=self._new_limiter,
            events=self.events,
            verdicts=self._m.verdicts,
            errors=self._m.errors,
            on_opened=self._session_opened,
            on_internal_error=lambda error: self._report_error(error, logged=True),
            log_fields={"hub_id": self.hub_id},
        )

    # -- start / stop ------------------------------------------------------------------------------

    #: ``await Hub.start(port=0)`` builds and starts a hub; ``await hub.start()`` starts that one.
    start = _StartMethod()

    async def _start(self) -> None:
        if self._started:
            return
        config = self.config
        key = (config.host, config.port)
        previous = Hub._running.get(key) if config.port else None
        if previous is not None:
            # Re-running a notebook cell: the old hub on this port gives way to the new one.
            log.info("stopping the hub already running on %s:%s", *key)
            await previous.stop()
        started: list[Callable[[], Awaitable[None]]] = []
        try:
            await self.store.open()
            started.append(self.store.close)
            await self.broker.start()
            started.append(self.broker.close)
            await self.chat.start()
            started.append(self.chat.stop)
            self.server = await self._listen()
            self._bound_port = self.server.port
            self.stalls.start()
            self._m.loop = asyncio.get_running_loop()
        except BaseException:
            for undo in reversed(started):
                with contextlib.suppress(Exception):
                    await undo()
            raise
        self._started = True
        Hub._running[(config.host, self.port)] = self
        self.events.record(
            EventKind.CUSTOM, None, what="hub started", hub_id=self.hub_id, url=self.url
        )

    async def _listen(self) -> Any:
        config = self.config
        try:
            server = await serve(
                self._handle,
                config.host,
                config.port,
                engine=config.engine,
                limits=self.limits,
                http_handler=self._http,
                process_upgrade=self._check_upgrade,
                admission=self._admit,
                event_log=self.events,
                ssl=self._ssl_context(),
            )
            server.on_refused = self._handshake_refused
            return server
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"port {config.port} on {config.host} is in use by another program "
                    "(not a hub of this kernel): stop it, or choose another port (0 picks a free one)"
                ) from None
            raise

    def _ssl_context(self) -> ssl_module.SSLContext | None:
        if not self.config.tls_certfile:
            return None
        context = ssl_module.create_default_context(ssl_module.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.config.tls_certfile, self.config.tls_keyfile)
        return context

    async def stop(self) -> None:
        """Close every connection with 1001, then stop the services in reverse start order."""
        if not self._started:
            return
        self._started = False
        Hub._running.pop((self.config.host, self.port), None)
        timeout = self.config.shutdown_timeout
        await self.server.close(CloseCode.GOING_AWAY, "hub shutting down", timeout=timeout)
        await self.stalls.stop()
        await self.heartbeat.close()
        await self.chat.stop()
        await self.broker.close()
        await self.store.close()
        self.events.record(EventKind.CUSTOM, None, what="hub stopped", hub_id=self.hub_id)

    async def __aenter__(self) -> Hub:
        await self._start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @classmethod
    def start_in_thread(cls, config: HubConfig | None = None, **overrides: Any) -> ThreadedHub:
        """Start a hub on its own event loop in a background thread."""
        return ThreadedHub(cls, config, overrides)

    # -- addresses ---------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True between start and stop."""
        return self._started

    @property
    def port(self) -> int:
        """The port the hub listens on (the real one when started with ``port=0``)."""
        return self._bound_port if self._bound_port is not None else self.config.port

    @property
    def host(self) -> str:
        """The address the hub listens on."""
        return self.config.host

    @property
    def url(self) -> str:
        """``http://host:port`` — the chat page."""
        scheme = "https" if self.config.tls_certfile else "http"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """``ws://host:port/ws`` — the WebSocket endpoint."""
        scheme = "wss" if self.config.tls_certfile else "ws"
        return f"{scheme}://{self.host}:{self.port}{self.config.path}"

    @property
    def connections(self) -> ConnectionsView:
        """Who is connected: state, RTT, queue depth, rooms (``.to_dataframe()``)."""
        return ConnectionsView(self)

    def token(
        self,
        user_id: str,
        *,
        username: str | None = None,
        roles: tuple[str, ...] | list[str] = (),
        ttl: float = 3600,
    ) -> str:
        """A token this hub accepts (for notebooks, tests and the page's login)."""
        if self.auth_config is None:
            raise ConfigError("this hub runs without authentication (auth_required=False)")
        return issue_token(
            self.auth_config, user_id, username=username, roles=tuple(roles), ttl=ttl
        )

    # -- health ------------------------------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        """``{"status": "ok" | "degraded", ...}``: degraded when the store or broker is down."""
        store_ok = await self.store.ping()
        broker_ok = bool(self.broker.healthy)
        status = "ok" if store_ok and broker_ok and not len(self.chat.retry) else "degraded"
        return {
            "status": status,
            "hub_id": self.hub_id,
            "store": "ok" if store_ok else "down",
            "broker": "ok" if broker_ok else "down",
            "retry_queue": len(self.chat.retry),
            "connections": len(self.manager),
            "engine": self.config.engine,
        }

    # -- the connection's life ---------------------------------------------------------------------

    async def _check_upgrade(
        self, upgrade: Upgrade, remote: tuple[str, int] | None
    ) -> dict[str, Any] | None:
        self.abuse.check(upgrade, remote)  # first: a cooling-down abuser costs the least
        if upgrade.path != self.config.path:
            raise _refusal(
                HandshakeError(
                    f"no WebSocket endpoint at {upgrade.path}; use {self.config.path}", status=404
                ),
                "path",
            )
        try:
            self.origins.check(upgrade.origin, host=upgrade.host)  # the hub's own page is welcome
        except HandshakeError as error:
            raise _refusal(error, "origin") from None
        # Counted at the server, so connections still authenticating take their place too.
        if self.server is not None and len(self.server.connections) >= self.config.max_connections:
            raise _refusal(
                HandshakeError(
                    f"the hub is full ({self.config.max_connections} connections); try again later",
                    status=503,
                ),
                "capacity",
            )
        if remote is not None and self.server is not None:
            # Counts connections the server holds (open or still authenticating): one address
            # cannot take more than its share of the hub, whatever its connection rate.
            ip = remote[0]
            if self.server.held_by(ip) >= self.config.max_connections_per_ip:
                raise _refusal(
                    HandshakeError(
                        f"too many connections from {ip} ({self.config.max_connections_per_ip})",
                        status=429,
                    ),
                    "per_ip",
                )
        return None

    def _admit(self, address: str) -> bool:
        """The per-address connection rate (the server's admission hook), counted when it says no."""
        if self.address_limiter.allow(address):
            return True
        self._m.refused["rate"].inc()
        self._refusal_log.info(
            "handshake refused", reason="rate", status=429, remote=address, path=self.config.path
        )
        return False

    def _handshake_refused(self, error: HandshakeError, remote: tuple[str, int] | None) -> None:
        """The engine refuses an upgrade with an HTTP status: count it and log it (throttled)."""
        reason = getattr(error, "refusal_reason", None)
        if reason is None:
            reason = "internal" if error.status >= 500 else "bad_request"
        self._m.refused[reason].inc()
        self._refusal_log.info(
            "handshake refused",
            reason=reason,
            status=error.status,
            detail=error.message,
            remote=f"{remote[0]}:{remote[1]}" if remote else None,
        )

    def _auth_failed(self, connection: Connection, message: str, method: str) -> None:
        """A token was refused (or expired): count it by reason and log it (throttled)."""
        reason = auth_failure_reason(message)
        self._m.auth_failures[reason].inc()
        self._auth_log.info(
            "token refused",
            connection_id=connection.id,
            remote=_remote(connection),
            reason=reason,
            detail=message,
            method=method,
        )

    async def _handle(self, connection: Connection) -> None:
        """One connection's life: authenticate, then route its messages until it closes.

        On wslab's engine this returns once the session is open: the connection is handed over
        and a task runs only while it has messages (wslab.application.session_loop).
        """
        bind(connection_id=connection.id, hub_id=self.hub_id)  # this task's log context
        self.traffic.track(connection)
        connection.add_close_callback(self._on_connection_closed)
        try:
            await self.sessions.serve(connection)
        except Exception as error:
            # Kept here (hub.errors, event) and re-raised: the server logs it with its traceback
            # and closes with 1011, so logging it here too would say it twice.
            self._report_error(error, logged=True)
            raise

    def _new_limiter(self) -> ConnectionLimiter:
        """The rate limits of one connection, from the config."""
        config = self.config
        return ConnectionLimiter(
            config.rate_messages_per_second,
            config.rate_burst,
            config.rate_bytes_per_second,
            byte_burst=max(config.rate_bytes_per_second, config.max_message_size),
            flood_close_after=config.rate_flood_close_after,
            forgive=self._forgives,  # a backlog our own stall created is not a flood
        )

    def _session_opened(self, connection: Connection, session: Session) -> None:
        """An authenticated session starts: count it, log it, log its end when it comes."""
        self._m.connections_total.inc()
        log_line(
            log,
            logging.INFO,
            "connection opened",
            {
                "connection_id": connection.id,
                "remote": _remote(connection),
                "user_id": session.user_id,
                "engine": connection.engine,
            },
        )
        connection.add_close_callback(self._on_session_closed, session.user_id)
        self.abuse.opened(connection, session.user_id, anonymous=session.identity.anonymous)

    # -- plain HTTP --------------------------------------------------------------------------------

    async def _http(self, request: Request) -> HttpResponse:
        if request.method not in ("GET", "HEAD"):
            # RFC 9110 15.5.6 / 15.6.2: a method we know but do not allow here is 405 with
            # Allow; one we do not know at all is 501.
            if request.method not in KNOWN_METHODS:
                return HttpResponse(501, b"method not implemented\n")
            return HttpResponse(405, b"method not allowed\n", headers=(("Allow", "GET, HEAD"),))
        path = request.path
        if path in ("/", "/index.html"):
            return static_file("index.html")
        if path.startswith("/static/"):
            return static_file(path[len("/static/") :])
        if path == "/healthz":
            health = await self.health()
            # A load balancer reads the status, not the body: degraded is 503 so it drains us.
            status = 200 if health["status"] == "ok" else 503
            return HttpResponse(status, json.dumps(health).encode(), "application/json")
        if path == self.config.path:
            # RFC 9110 15.5.22: the endpoint exists but speaks WebSocket only; say which.
            return HttpResponse(
                426,
                f"{path} is a WebSocket endpoint: send an Upgrade: websocket request\n".encode(),
                headers=(("Upgrade", "websocket"),),
            )
        if path == "/metrics":
            return HttpResponse(200, self.metrics.prometheus_text().encode(), METRICS_CONTENT_TYPE)
        if path == "/config.json":
            body = {
                "auth_required": self.config.auth_required,
                "ws_path": self.config.path,
                "protocol_version": CURRENT_VERSION,
            }
            return HttpResponse(200, json.dumps(body).encode(), "application/json")
        return HttpResponse(404, b"not found\n")

    # -- observability -----------------------------------------------------------------------------

    def _connection_closed(self, connection: Connection) -> None:
        """TCP is closed: fold the connection's counts into the totals, count its close codes."""
        self.traffic.fold(connection)
        sent = connection.close_sent
        if sent is not None:
            self._m.close_codes.labels("out", close_code_label(sent[0])).inc()
        self._m.close_codes.labels("in", close_code_label(connection.close_code)).inc()
        self.abuse.closed(connection)

    def _log_close(self, connection: Connection, user_id: str) -> None:
        """The INFO line for the end of an authenticated connection: who closed it, how."""
        sent = connection.close_sent
        by_hub = connection.closed_locally
        code: int | None
        if by_hub and sent is not None:
            code, reason = sent
        else:
            code, reason = connection.close_code, connection.close_reason
        log_line(
            log,
            logging.INFO,
            "connection closed",
            {
                "connection_id": connection.id,
                "remote": _remote(connection),
                "user_id": user_id,
                "code": code,
                "reason": reason,
                "closed_by": "hub" if by_hub else "peer",
                "duration_s": round(connection.clock() - connection.stats.opened_at, 3),
            },
        )

    def _observe_rtt(self, connection: Connection, rtt: float) -> None:
        self._m.rtt.observe(rtt)

    def _report_error(self, error: BaseException, *, logged: bool = False) -> None:
        """Background failures are kept (bounded) in ``hub.errors``, logged and recorded.

        ``logged``: whoever saw the failure first has logged it already (with the traceback);
        it is kept and recorded here, not logged a second time.
        """
        entry = {"time": time.time(), "error": type(error).__name__, "message": str(error)}
        self.errors.append(entry)
        if not logged:
            log.error("hub %s: %s: %s", self.hub_id, entry["error"], entry["message"])
        self.events.record(
            EventKind.ERROR, None, error=entry["error"], message=entry["message"], where="hub"
        )

    def _repr_html_(self) -> str:
        """In a notebook: the hub's address, state and its recent background errors, in red."""
        from html import escape

        state = "running" if self._started else "stopped"
        rows = "".join(
            f"<li style='color:#b00020'>{escape(e['error'])}: {escape(e['message'])}</li>"
            for e in list(self.errors)[-5:]
        )
        errors = f"<ul>{rows}</ul>" if rows else "<span>no background errors</span>"
        return (
            f"<div><b>Hub {escape(self.hub_id)}</b> — {state} — {escape(self.url)} "
            f"({len(self.manager)} connections, engine {escape(self.config.engine)})<br>{errors}</div>"
        )

    def __repr__(self) -> str:
        state = "running" if self._started else "stopped"
        return f"<Hub {self.hub_id} {state} {self.url} engine={self.config.engine}>"
