"""Pick a WebSocket engine by name: ``"wslab"`` (the default) or ``"websockets"``.

Both engines give the layers above the same :class:`~wslab.infrastructure.connection.Connection`
and a server with the same surface, so the hub, the tests and the notebooks choose one with a
single argument (``HubConfig.engine``) and never import an engine module themselves::

    server = await serve(handler, port=0, engine="websockets")
    client = await connect(server.url, engine="wslab")

The engines themselves are two parallel packages, :mod:`.wslab` and :mod:`.websockets`, each
with a ``connection``, a ``server`` and a ``client`` module; both fulfil the contract of
:mod:`wslab.infrastructure.server` and share the outgoing queue and slow-consumer policy of
:class:`~wslab.infrastructure.connection.Connection`.
"""

from __future__ import annotations

import ssl as ssl_module
from collections.abc import Iterable

from wslab.foundation.errors import ConfigError
from wslab.infrastructure.connection import Connection, ConnectionLimits
from wslab.infrastructure.events import EventLog
from wslab.infrastructure.server import AdmissionHook, Handler, HttpHandler, Server, UpgradeHook

from .websockets import connect as connect_websockets
from .websockets import serve as serve_websockets
from .wslab import connect as connect_wslab
from .wslab import serve as serve_wslab

__all__ = ["DEFAULT_ENGINE", "ENGINES", "check_engine", "connect", "serve"]

#: The engines, in the order the docs and the tests list them.
ENGINES: tuple[str, ...] = ("wslab", "websockets")
DEFAULT_ENGINE = "wslab"


def check_engine(engine: str) -> str:
    """Return ``engine`` if it names an engine; raise :class:`ConfigError` otherwise."""
    if engine not in ENGINES:
        raise ConfigError(f"engine must be one of {', '.join(ENGINES)}; got {engine!r}")
    return engine


async def serve(
    handler: Handler,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    engine: str = DEFAULT_ENGINE,
    limits: ConnectionLimits | None = None,
    http_handler: HttpHandler | None = None,
    process_upgrade: UpgradeHook | None = None,
    admission: AdmissionHook | None = None,
    event_log: EventLog | None = None,
    ssl: ssl_module.SSLContext | None = None,
    backlog: int = 1024,
) -> Server:
    """Listen on ``host:port`` with ``engine`` and run ``handler(connection)`` per connection."""
    start = serve_websockets if check_engine(engine) == "websockets" else serve_wslab
    return await start(
        handler,
        host,
        port,
        limits=limits,
        http_handler=http_handler,
        process_upgrade=process_upgrade,
        admission=admission,
        event_log=event_log,
        ssl=ssl,
        backlog=backlog,
    )


async def connect(
    url: str,
    *,
    engine: str = DEFAULT_ENGINE,
    headers: Iterable[tuple[str, str]] = (),
    origin: str | None = None,
    subprotocols: Iterable[str] = (),
    limits: ConnectionLimits | None = None,
    event_log: EventLog | None = None,
    ssl: ssl_module.SSLContext | bool | None = None,
    open_timeout: float = 10.0,
) -> Connection:
    """Open a WebSocket connection to ``url`` (``ws://`` or ``wss://``) with ``engine``."""
    open_with = connect_websockets if check_engine(engine) == "websockets" else connect_wslab
    return await open_with(
        url,
        headers=headers,
        origin=origin,
        subprotocols=subprotocols,
        limits=limits,
        event_log=event_log,
        ssl=ssl,
        open_timeout=open_timeout,
    )
