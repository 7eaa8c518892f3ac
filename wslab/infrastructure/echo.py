"""An RFC 6455 echo server on wslab's own engine: every data message comes back unchanged.

It answers on every path, which is what conformance runners (Autobahn's fuzzing client, and
:mod:`wslab.lab.conformance`) expect. ``wslab echo`` runs it from the command line.
"""

from __future__ import annotations

import ssl as ssl_module

from wslab.foundation.deflate import DeflateSettings
from wslab.foundation.errors import ConnectionClosed

from .connection import Connection, ConnectionLimits
from .engines.wslab import serve
from .events import EventLog
from .server import Server

__all__ = ["DEFAULT_COMPRESSION", "DEFAULT_ECHO_MAX_SIZE", "echo_handler", "serve_echo"]

DEFAULT_ECHO_MAX_SIZE = 16 << 20  # large enough for the conformance suite's 16 MiB messages
DEFAULT_COMPRESSION = DeflateSettings()


async def echo_handler(connection: Connection) -> None:
    """Send back every message, as the same type, in order, with flow control."""
    async for message in connection:
        try:
            await connection.send(message)
        except ConnectionClosed:
            # The peer closed while we were echoing (Autobahn 7.1.6): a normal end, not an error.
            return


async def serve_echo(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    max_size: int = DEFAULT_ECHO_MAX_SIZE,
    event_log: EventLog | None = None,
    ssl: ssl_module.SSLContext | None = None,
    close_timeout: float = 2.0,
    compression: DeflateSettings | None = DEFAULT_COMPRESSION,
) -> Server:
    """Start the echo server; ``max_size`` bounds each message (and frame): 1009 beyond it.

    ``compression`` is negotiated with clients that offer permessage-deflate (as browsers and
    ``websockets`` do); ``None`` answers every offer without the extension.
    """
    limits = ConnectionLimits(
        max_message_size=max_size,
        max_queue_bytes=max(4 << 20, 2 * max_size),
        close_timeout=close_timeout,
        compression=compression,
    )
    return await serve(echo_handler, host, port, limits=limits, event_log=event_log, ssl=ssl)
