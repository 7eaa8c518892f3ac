"""Where wslab's engine used to live, kept for code that imports it from here.

The engine is :mod:`wslab.infrastructure.engines.wslab` now, and the server contract (
:class:`Server`, :class:`HttpResponse`, the hooks) :mod:`wslab.infrastructure.server`;
``from wslab.infrastructure.transport import connect, serve`` keeps working.
"""

from wslab.infrastructure.engines.wslab import WslabConnection, WslabServer, connect, serve
from wslab.infrastructure.server import (
    AdmissionHook,
    Handler,
    HttpHandler,
    HttpResponse,
    Server,
    UpgradeHook,
)

__all__ = [
    "AdmissionHook",
    "Handler",
    "HttpHandler",
    "HttpResponse",
    "Server",
    "UpgradeHook",
    "WslabConnection",
    "WslabServer",
    "connect",
    "serve",
]
