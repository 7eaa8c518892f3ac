"""The ``websockets`` library as a second engine behind the same :class:`Connection` interface.

wslab's own engine (:mod:`wslab.infrastructure.engines.wslab`) is the default; this package runs the
very same handlers, limits and policies on ``websockets`` (its asyncio implementation), so that
the test suite can prove both engines behave alike and a notebook can compare them. It follows
the shape of the wslab engine wherever the library allows:

- **incoming** — a reader task moves messages from ``websockets`` into the bounded incoming
  queue of :class:`Connection`. When that queue is full the reader stops calling ``recv()``;
  ``websockets`` then buffers at most ``max_queue`` frames (set to ``limits.max_incoming``) and
  stops reading the socket, so TCP pushes back on the peer as with the wslab engine.
- **outgoing** — while the socket keeps up, a message is written at once (as
  ``websockets.broadcast`` does); while the transport's buffer is over ``write_high`` it waits in
  the bounded outgoing queue, which a writer task flushes with ``send()`` as the socket drains.
  The slow-consumer policy (close 1013, drop_oldest, drop_new) applies to that queue exactly as
  on the wslab engine, so a peer that never reads cannot grow memory past the bound.
- **ping** — ``websockets``' own ``ping()``; its pong resolves :meth:`Connection.ping`'s future.
  Unsolicited pongs are not reported by the library, so they are neither counted nor logged.
- **close** — ``close()`` sends the close frame after what is queued; ``fail()`` sends it at
  once and closes TCP; ``abort()`` drops TCP. ``close_code``/``close_reason`` come from the close
  frame received (``protocol.close_rcvd``); ``closed_locally`` is true when this end started.
- **events** — CONNECT, DISCONNECT, CLOSE (in and out), PING, PONG, ERROR, BACKPRESSURE and
  SLOW_CONSUMER are recorded. Frames and state transitions are *not* observable on this engine
  (the library keeps them inside), so FRAME_IN/FRAME_OUT/TRANSITION events never appear,
  ``frame_counts()`` is ``None`` (the hub exposes no frame counter), and ``bytes_out`` counts
  message payloads rather than frame bytes.

HTTP on :func:`serve` goes through ``websockets``' ``process_request`` hook: plain
requests are answered by the same ``http_handler`` (given a :class:`wslab.foundation.http.Request`),
upgrade requests are checked by :mod:`wslab.foundation.handshake` and offered to
``process_upgrade`` before ``websockets`` accepts them. Differences that remain: only ``GET``
requests without a body reach the ``http_handler`` (the library refuses the others), and
``admission`` is asked once the request head has arrived rather than on TCP accept.

The modules mirror the wslab engine's: :mod:`.connection` (:class:`WebsocketsConnection` and the
``websockets`` options that carry our limits), :mod:`.server` (:class:`WebsocketsServer`,
:func:`serve`), :mod:`.client` (:func:`connect`).
"""

from .client import connect
from .connection import WebsocketsConnection
from .server import WebsocketsServer, serve

__all__ = ["WebsocketsConnection", "WebsocketsServer", "connect", "serve"]
