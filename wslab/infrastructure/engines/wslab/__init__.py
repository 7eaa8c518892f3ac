"""wslab's own engine: the RFC 6455 foundation driven by asyncio, every frame observable.

- :mod:`.connection` — :class:`WslabConnection`, one connection over an asyncio transport;
- :mod:`.server` — :class:`WslabServer` and :func:`serve`;
- :mod:`.client` — :func:`connect`.

Its twin, :mod:`wslab.infrastructure.engines.websockets`, has the same three modules.
"""

from .client import connect
from .connection import WslabConnection
from .server import WslabServer, serve

__all__ = ["WslabConnection", "WslabServer", "connect", "serve"]
