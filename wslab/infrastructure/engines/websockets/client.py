"""The client side of the ``websockets`` engine: :func:`connect`, with wslab's errors."""

from __future__ import annotations

import asyncio
import ssl as ssl_module
import time
import urllib.parse
from collections.abc import Iterable
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as websockets_connect
from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI
from websockets.typing import Origin, Subprotocol

from wslab.foundation.errors import InvalidHandshakeResponse, InvalidUpgrade, OperationTimeout
from wslab.foundation.http import Headers
from wslab.infrastructure.connection import ConnectionLimits
from wslab.infrastructure.events import EventKind, EventLog

from .connection import WebsocketsConnection, _Hooks, address, websockets_limits

__all__ = ["connect"]


class _ClientConnection(_Hooks, ClientConnection):
    """``websockets``' client connection with our hooks."""


async def connect(
    url: str,
    *,
    headers: Iterable[tuple[str, str]] = (),
    origin: str | None = None,
    subprotocols: Iterable[str] = (),
    limits: ConnectionLimits | None = None,
    event_log: EventLog | None = None,
    ssl: ssl_module.SSLContext | bool | None = None,
    open_timeout: float = 10.0,
) -> WebsocketsConnection:
    """Open a WebSocket connection to ``url`` on websockets; same signature as wslab's ``connect``.

    Errors are wslab's: a refused handshake raises :class:`InvalidHandshakeResponse` whose
    ``status`` is the server's, a timeout :class:`OperationTimeout`.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("ws", "wss"):
        raise InvalidUpgrade(f"not a WebSocket URL: {url!r}")
    limits = limits or ConnectionLimits()
    extra: dict[str, Any] = {}
    if parts.scheme == "wss":
        extra["ssl"] = True if ssl is None else ssl
    offered = list(subprotocols)
    started = time.monotonic()
    try:
        ws = await websockets_connect(
            url,
            origin=None if origin is None else Origin(origin),
            subprotocols=[Subprotocol(name) for name in offered] or None,
            additional_headers=list(headers) or None,
            user_agent_header=None,
            proxy=None,  # 127.0.0.1 in a notebook must not go through a system proxy
            open_timeout=open_timeout,
            create_connection=_ClientConnection,
            **websockets_limits(limits, server=False),
            **extra,
        )
    except InvalidStatus as error:
        status = error.response.status_code
        raise InvalidHandshakeResponse(
            f"expected 101 Switching Protocols, got {status}", status=status
        ) from None
    except InvalidURI as error:
        raise InvalidUpgrade(str(error)) from None
    except InvalidHandshake as error:
        raise InvalidHandshakeResponse(str(error)) from error
    except (asyncio.TimeoutError, TimeoutError):
        raise OperationTimeout(f"opening handshake with {url} timed out") from None
    assert isinstance(ws, _ClientConnection)  # connect() makes it of the class we gave
    response = ws.response
    connection = WebsocketsConnection(
        ws,
        "client",
        limits,
        event_log=event_log,
        remote=address(ws.remote_address),
        path=parts.path or "/",
        headers=Headers(response.headers.raw_items()) if response is not None else None,
        subprotocol=ws.subprotocol,
    )
    connection.stats.opened_at = started
    connection._record(EventKind.CONNECT, remote=str(connection.remote), path=connection.path)
    return connection
