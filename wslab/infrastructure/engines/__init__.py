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
from typing import TypedDict, Unpack

from wslab.foundation.errors import ConfigError
from wslab.infrastructure.connection import Connection, ConnectionLimits
from wslab.infrastructure.events import EventLog
from wslab.infrastructure.server import AdmissionHook, Handler, HttpHandler, Server, UpgradeHook

from .websockets import connect as connect_websockets
from .websockets import serve as serve_websockets
from .wslab import connect as connect_wslab
from .wslab import serve as serve_wslab

__all__ = [
    "DEFAULT_ENGINE",
    "ENGINES",
    "ConnectOptions",
    "ServeOptions",
    "check_engine",
    "connect",
    "serve",
]

#: The engines, in the order the docs and the tests list them.
ENGINES: tuple[str, ...] = ("wslab", "websockets")
DEFAULT_ENGINE = "wslab"


class ServeOptions(TypedDict, total=False):
    """What both engines' ``serve`` take besides ``handler``, ``host`` and ``port``."""

    limits: ConnectionLimits | None
    http_handler: HttpHandler | None
    process_upgrade: UpgradeHook | None
    admission: AdmissionHook | None
    event_log: EventLog | None
    ssl: ssl_module.SSLContext | None
    backlog: int


class ConnectOptions(TypedDict, total=False):
    """What both engines' ``connect`` take besides the URL."""

    headers: Iterable[tuple[str, str]]
    origin: str | None
    subprotocols: Iterable[str]
    limits: ConnectionLimits | None
    event_log: EventLog | None
    ssl: ssl_module.SSLContext | bool | None
    open_timeout: float


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
    **options: Unpack[ServeOptions],
) -> Server:
    """Listen on ``host:port`` with ``engine`` and run ``handler(connection)`` per connection."""
    start = serve_websockets if check_engine(engine) == "websockets" else serve_wslab
    return await start(handler, host, port, **options)


async def connect(
    url: str, *, engine: str = DEFAULT_ENGINE, **options: Unpack[ConnectOptions]
) -> Connection:
    """Open a WebSocket connection to ``url`` (``ws://`` or ``wss://``) with ``engine``."""
    open_with = connect_websockets if check_engine(engine) == "websockets" else connect_wslab
    return await open_with(url, **options)
