"""One connection's frames in both directions as they pass, decoded and bounded, and its state timeline.

The dashboard opens one ordinary client of its own (a :class:`~wslab.client.ChatClient`
joined to the load's rooms) through a small :class:`~wslab.lab.faults.TcpProxy`, and attaches a
:class:`FrameStream` to that proxy. The stream decodes the bytes with the foundation's
:class:`~wslab.foundation.frames.FrameParser` (inflating permessage-deflate where agreed)
while they are relayed — unlike a :class:`~wslab.lab.faults.Tap`, which keeps a connection's
first bytes for later, it keeps the *newest* ``max_frames`` frames. The state timeline is read
off the wire too: CONNECTING at the upgrade request, OPEN at ``101``, CLOSING at the first
close frame, CLOSED when the connection ends. Nothing of the hub is touched: this is what
anyone on the path could see.
"""

from __future__ import annotations

import contextlib
import struct
import time
from collections import deque
from typing import Any

from wslab.foundation import deflate
from wslab.foundation.errors import WslabError
from wslab.foundation.frames import FrameParser

from ..faults import Tap, TcpProxy

__all__ = ["FrameStream", "FrameWatch"]

#: The most bytes of an HTTP head kept while waiting for its end.
MAX_HEAD = 64 * 1024
#: Characters of a decoded text payload kept per frame.
MAX_TEXT = 160

ARROWS = {"up": "client → hub", "down": "hub → client"}


class _Direction:
    def __init__(self) -> None:
        self.head = bytearray()
        self.head_done = False
        self.waiting = bytearray()  # frames that came before the parser was ready (bounded)
        self.parser: FrameParser | None = None
        self.inflater: Any = None
        self.compressed = False
        self.failed = False


class FrameStream(Tap):
    """The newest ``max_frames`` frames of the (single) connection a proxy relays, decoded."""

    def __init__(self, proxy: TcpProxy, *, max_frames: int = 200, max_states: int = 32) -> None:
        super().__init__(proxy, max_bytes=1, max_connections=1)
        self.recent: deque[dict[str, Any]] = deque(maxlen=max_frames)
        self.states: deque[tuple[float, str, str]] = deque(maxlen=max_states)
        self.version = 0
        self.seen_frames = 0
        self._connection: int | None = None
        self._dirs: dict[str, _Direction] = {}
        self.t0 = time.time()

    # The proxy calls this with every chunk it relays (see TcpProxy.attach_tap).
    def _record(self, connection: int, direction: str, data: bytes) -> None:
        if connection != self._connection:
            self._connection = connection  # a new connection: start its timeline again
            self._dirs = {"up": _Direction(), "down": _Direction()}
            self._state("CONNECTING", "upgrade request sent")
        d = self._dirs[direction]
        if d.failed:
            return
        if not d.head_done:
            d.head += data
            end = d.head.find(b"\r\n\r\n")
            if end < 0:
                if len(d.head) > MAX_HEAD:
                    d.failed = True
                return
            head, rest = bytes(d.head[: end + 4]), bytes(d.head[end + 4 :])
            d.head_done = True
            d.head = bytearray()
            if direction == "down":
                self._opened(head)
            data = rest
        if d.parser is None:
            if len(d.waiting) < MAX_HEAD:
                d.waiting += data
            return
        self._feed(direction, d, data)

    def _opened(self, head: bytes) -> None:
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status + b" ":
            self._state("CLOSED", f"refused: {status.decode('latin-1')}")
            return
        self._state("OPEN", "101 Switching Protocols")
        params = _deflate_params(head)
        for name, d in self._dirs.items():
            d.parser = FrameParser(require_mask=None, allowed_rsv=0b100 if params else 0)
            d.inflater = params.inflater(server=name == "up") if params else None
            if d.waiting:
                pending, d.waiting = bytes(d.waiting), bytearray()
                self._feed(name, d, pending)

    def _feed(self, direction: str, d: _Direction, data: bytes) -> None:
        assert d.parser is not None
        try:
            frames = d.parser.feed(data)
        except WslabError as exc:
            d.failed = True
            self._add({"direction": ARROWS[direction], "opcode": "ERROR", "text": str(exc)})
            return
        for frame in frames:
            name = frame.opcode.name
            payload = frame.payload
            if name in ("TEXT", "BINARY"):
                d.compressed = frame.rsv1
            if d.compressed and d.inflater is not None and name in ("TEXT", "BINARY", "CONT"):
                try:
                    payload = d.inflater.inflate(payload, fin=frame.fin, limit=1 << 20)
                except WslabError as exc:
                    payload = f"<cannot inflate: {exc}>".encode()
            text = None
            if name in ("TEXT", "CONT"):
                text = payload[: MAX_TEXT * 4].decode("utf-8", "replace")[:MAX_TEXT]
            elif name == "CLOSE" and len(payload) >= 2:
                code = struct.unpack("!H", payload[:2])[0]
                text = f"{code} {payload[2:].decode('utf-8', 'replace')}"
                self._state("CLOSING", f"close frame {ARROWS[direction]} ({code})")
            elif name == "CLOSE":
                self._state("CLOSING", f"close frame {ARROWS[direction]}")
            self._add({"direction": ARROWS[direction], "opcode": name, "fin": frame.fin,
                       "masked": frame.masked, "compressed": d.compressed and name in ("TEXT", "BINARY", "CONT"),
                       "length": len(frame.payload), "text": text})

    def _add(self, record: dict[str, Any]) -> None:
        record["t"] = round(time.time() - self.t0, 3)
        self.recent.append(record)
        self.seen_frames += 1
        self.version += 1

    def _state(self, state: str, cause: str) -> None:
        if self.states and self.states[-1][1] == state:
            return
        self.states.append((round(time.time() - self.t0, 3), state, cause))
        self.version += 1

    def mark_closed(self, cause: str) -> None:
        """The connection ended (the client saw it close): CLOSED closes the timeline."""
        if self.states and self.states[-1][1] != "CLOSED":
            self._state("CLOSED", cause)

    def frame_rows(self, limit: int = 20) -> list[dict[str, Any]]:
        """The newest ``limit`` frames, oldest first."""
        return list(self.recent)[-limit:]

    def to_dataframe(self) -> Any:
        import pandas as pd

        return pd.DataFrame(list(self.recent), columns=["t", "direction", "opcode", "fin",
                                                        "masked", "compressed", "length", "text"])


def _deflate_params(head: bytes) -> deflate.DeflateParams | None:
    values = [line.split(b":", 1)[1].decode("latin-1") for line in head.split(b"\r\n")[1:]
              if line.lower().startswith(b"sec-websocket-extensions:")]
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


class FrameWatch:
    """The dashboard's own watched client, its proxy and its :class:`FrameStream`."""

    def __init__(self, ws_url: str, token: str | None, *, rooms: tuple[str, ...] = ("load", "load0"),
                 max_frames: int = 200) -> None:
        self.ws_url = ws_url
        self.token = token
        self.rooms = rooms
        self.proxy = TcpProxy.for_url(ws_url, max_connections=2)
        self.stream = FrameStream(self.proxy, max_frames=max_frames)
        self.client: Any = None

    async def start(self) -> FrameWatch:
        from wslab.client import ChatClient

        await self.proxy.start()
        self.proxy.attach_tap(self.stream)
        self.client = ChatClient(self.proxy.url_for(self.ws_url), token=self.token,
                                 reconnect=False, rooms=self.rooms, max_inbox=64,
                                 username="dashboard-watch")
        await self.client.connect()
        return self

    def poll(self) -> None:
        """Called each sampler tick: close the timeline when the client's connection is gone."""
        if self.client is not None and (self.client.closed or not self.client.connected):
            self.stream.mark_closed("connection ended")

    async def stop(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                await self.client.close()
        self.stream.close()
        await self.proxy.stop()
