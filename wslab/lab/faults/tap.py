"""A read-only tap on what a :class:`~wslab.lab.faults.proxy.TcpProxy` relays: bytes, upgrade, frames.

For the security chapter: on ``ws://`` the upgrade request (and its ``Authorization: Bearer``
token) and every frame after it are there to read by anyone on the path; on ``wss://`` the same
bytes are TLS records, and the tap says it cannot read them. Frames are decoded by the
foundation's :class:`~wslab.foundation.frames.FrameParser`, so what is shown is what the RFC says.

Bounded: the first ``max_bytes`` of each direction of the newest ``max_connections`` connections
are kept; the rest is counted in ``dropped_bytes``.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from wslab.foundation import deflate
from wslab.foundation.codes import DATA_OPCODES
from wslab.foundation.errors import ConfigError, WslabError
from wslab.foundation.frames import FrameParser

if TYPE_CHECKING:
    from .proxy import TcpProxy

__all__ = ["Tap"]

#: The names of one direction :meth:`Tap.raw` accepts.
#: The most one tapped message may inflate to (the tap shows, it does not judge size limits).
_INFLATE_LIMIT = 16 * 1024 * 1024

_ONE_WAY = {"up": "up", "client->server": "up", "down": "down", "server->client": "down"}


class _Stream:
    """One direction of one tapped connection: its first ``limit`` bytes, and how many were not kept."""

    def __init__(self, limit: int) -> None:
        self.data = bytearray()
        self.limit = limit
        self.dropped = 0

    def add(self, chunk: bytes) -> None:
        room = self.limit - len(self.data)
        if room > 0:
            self.data += chunk[:room]
        self.dropped += max(0, len(chunk) - max(room, 0))


class Tap:
    """What a :class:`TcpProxy` relayed, per connection and direction, read-only and bounded.

    ::

        tap = proxy.tap()
        client = await ChatClient(proxy.url_for(hub.ws_url), token=token).connect()
        tap.upgrade_request()      # b"GET /ws HTTP/1.1 ... Authorization: Bearer eyJ..."
        tap.frames()               # a DataFrame: connection, direction, opcode, fin, masked, payload

    Keeps the first ``max_bytes`` of each direction of the newest ``max_connections``
    connections (the older ones are forgotten, ``dropped_bytes`` counts what was not kept).
    """

    def __init__(self, proxy: TcpProxy, *, max_bytes: int, max_connections: int) -> None:
        if max_bytes < 1 or max_connections < 1:
            raise ConfigError("max_bytes and max_connections must be at least 1")
        self.proxy = proxy
        self.max_bytes = max_bytes
        self.max_connections = max_connections
        self._streams: OrderedDict[int, dict[str, _Stream]] = OrderedDict()

    def _record(self, connection: int, direction: str, data: bytes) -> None:
        streams = self._streams.get(connection)
        if streams is None:
            streams = {"up": _Stream(self.max_bytes), "down": _Stream(self.max_bytes)}
            self._streams[connection] = streams
            while len(self._streams) > self.max_connections:
                self._streams.popitem(last=False)
        streams[direction].add(data)

    def close(self) -> None:
        """Stop recording (what was recorded stays readable)."""
        with contextlib.suppress(ValueError):
            self.proxy._taps.remove(self)

    @property
    def connections(self) -> list[int]:
        """The ids of the tapped connections, oldest first."""
        return list(self._streams)

    @property
    def dropped_bytes(self) -> int:
        """Bytes relayed but not kept (past ``max_bytes``)."""
        return sum(s.dropped for streams in self._streams.values() for s in streams.values())

    def raw(self, connection: int | None = None, direction: str = "up") -> bytes:
        """The bytes kept of one direction (``"up"``/``"down"``) of a connection (default: newest)."""
        name = _ONE_WAY.get(direction)
        if name is None:
            raise ConfigError(
                f"raw() shows one direction, one of {sorted(_ONE_WAY)}; got {direction!r}"
            )
        return bytes(self._pick(connection)[name].data)

    def _pick(self, connection: int | None) -> dict[str, _Stream]:
        if not self._streams:
            raise ConfigError("the tap has seen no connection yet")
        if connection is None:
            return next(reversed(self._streams.values()))
        try:
            return self._streams[connection]
        except KeyError:
            raise ConfigError(
                f"no tapped connection {connection}; have {self.connections}"
            ) from None

    @staticmethod
    def _split(data: bytes) -> tuple[bytes, bytes] | None:
        """(HTTP head, the rest) if ``data`` starts with an HTTP/1.1 request or response."""
        end = data.find(b"\r\n\r\n")
        if end < 0 or not (data.startswith(b"HTTP/1.") or data[:16].split(b" ")[0].isalpha()):
            return None
        return data[: end + 4], data[end + 4 :]

    def _deflate_params(self, connection: int) -> deflate.DeflateParams | None:
        """The permessage-deflate parameters the upgrade response agreed, or None."""
        head = self.upgrade_response(connection)
        if head is None:
            return None
        values = [
            line.split(b":", 1)[1].decode("latin-1")
            for line in head.split(b"\r\n")[1:]
            if line.lower().startswith(b"sec-websocket-extensions:")
        ]
        try:
            extensions = deflate.parse_extensions(values)
        except ValueError:
            return None
        for name, params in extensions:
            if name == deflate.EXTENSION_NAME:
                options = dict(params)
                return deflate.DeflateParams(
                    server_no_context_takeover="server_no_context_takeover" in options,
                    client_no_context_takeover="client_no_context_takeover" in options,
                    server_max_window_bits=int(options.get("server_max_window_bits") or 15),
                    client_max_window_bits=int(options.get("client_max_window_bits") or 15),
                )
        return None

    def upgrade_request(self, connection: int | None = None) -> bytes | None:
        """The HTTP upgrade request as the client sent it, or None if the bytes are not HTTP (TLS)."""
        split = self._split(self.raw(connection, "up"))
        return split[0] if split is not None else None

    def upgrade_response(self, connection: int | None = None) -> bytes | None:
        """The server's answer to the upgrade, or None if the bytes are not HTTP."""
        split = self._split(self.raw(connection, "down"))
        return split[0] if split is not None else None

    def frame_list(
        self, connection: int | None = None, *, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """The WebSocket frames that followed the upgrade, decoded, as records (at most ``limit``).

        A stream that is not HTTP (``wss://``: TLS records) yields one record with the
        ``error`` saying so; a stream that breaks the RFC yields the frames before the break and
        a record with the parser's error.
        """
        ids = self.connections if connection is None else [connection]
        records: list[dict[str, Any]] = []
        for cid in ids:
            for direction in ("up", "down"):
                data = self.raw(cid, direction)
                base = {"connection": cid, "direction": direction}
                if not data:
                    continue
                split = self._split(data)
                if split is None:
                    records.append(
                        {
                            **base,
                            "error": "not HTTP/WebSocket (encrypted or other)",
                            "payload": data[:32],
                        }
                    )
                    continue
                params = self._deflate_params(cid)
                # Inflate what the sender compressed: up is the client's stream, down the hub's.
                inflater = params.inflater(server=direction == "up") if params else None
                parser = FrameParser(require_mask=None, allowed_rsv=0b100 if params else 0)
                error: WslabError | None
                try:
                    frames = parser.feed(split[1])
                    error = parser.error
                except WslabError as failure:
                    frames, error = [], failure
                compressed_message = False
                for frame in frames:
                    if len(records) >= limit:
                        return records
                    payload = frame.payload
                    wire_length = len(payload)
                    if frame.opcode.name in ("TEXT", "BINARY"):
                        compressed_message = frame.rsv1
                    compressed = compressed_message and frame.opcode in DATA_OPCODES
                    if compressed and inflater is not None:
                        try:
                            payload = inflater.inflate(payload, fin=frame.fin, limit=_INFLATE_LIMIT)
                        except WslabError as failure:
                            records.append({**base, "error": f"cannot inflate: {failure}"})
                            break
                    records.append(
                        {
                            **base,
                            "opcode": frame.opcode.name,
                            "fin": frame.fin,
                            "masked": frame.masked,
                            "compressed": compressed,
                            "length": wire_length,
                            "payload": payload,
                            "text": payload.decode("utf-8", "replace")
                            if frame.opcode.name == "TEXT"
                            else None,
                            "error": None,
                        }
                    )
                if error is not None:
                    records.append({**base, "error": str(error)})
        return records

    def frames(self, connection: int | None = None, *, limit: int = 1000) -> Any:
        """:meth:`frame_list` as a pandas DataFrame (pandas is imported only here)."""
        import pandas as pd

        columns = [
            "connection",
            "direction",
            "opcode",
            "fin",
            "masked",
            "compressed",
            "length",
            "payload",
            "text",
            "error",
        ]
        return pd.DataFrame(self.frame_list(connection, limit=limit), columns=columns)

    def __repr__(self) -> str:
        kept = sum(len(s.data) for streams in self._streams.values() for s in streams.values())
        return f"<Tap {len(self._streams)} connections, {kept} bytes kept, {self.dropped_bytes} dropped>"
