"""What the chat client does with each message from the hub.

:meth:`IncomingMixin._dispatch` first resolves a pending request whose ``ref`` the message
names (or reports a late ack), then hands the message to the handler of its ``type`` (the table
``_HANDLERS`` at the end), which turns it into an event of :mod:`.events`. A ``type`` this client
does not know becomes an :class:`~.events.UnknownEvent`, not an error: a newer hub may send it.

:class:`IncomingMixin` is that part of :class:`~wslab.client.ChatClient`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any

from wslab.foundation.errors import AuthenticationError, ValidationError
from wslab.integration.store import parse_timestamp

from .errors import error_from_envelope
from .events import (
    AuthExpiring,
    Connected,
    ErrorEvent,
    Event,
    LateAck,
    PresenceJoin,
    PresenceLeave,
    SystemBroadcast,
    Typing,
    UnknownEvent,
)
from .requests import Pending
from .results import ClientStats
from .tracking import RoomTrack

__all__ = ["IncomingMixin"]

log = logging.getLogger("wslab.client")


class IncomingMixin:
    """Dispatches the hub's messages; part of :class:`~wslab.client.ChatClient`."""

    stats: ClientStats
    token_provider: Callable[[], str | Awaitable[str]] | None
    connection_info: Connected | None
    _tracks: dict[str, RoomTrack]
    _pending: dict[str, Pending]
    _abandoned: OrderedDict[str, None]

    if TYPE_CHECKING:

        async def refresh_token(self, token: str) -> dict[str, Any]: ...

        def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]: ...

        def _emit(self, event: Event) -> None: ...

        def _track_of(self, message: Mapping[str, Any]) -> RoomTrack: ...

        def _hold(self, track: RoomTrack, seq: int, message: dict[str, Any]) -> None: ...

        def _accept(
            self, track: RoomTrack, message: Mapping[str, Any], *, recovered: bool
        ) -> None: ...

        def _deliver(
            self, track: RoomTrack, message: Mapping[str, Any], *, recovered: bool
        ) -> None: ...

        def _start_recovery(self, track: RoomTrack) -> asyncio.Task[None] | None: ...

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        ref = message.get("ref")
        if ref is not None:
            entry = self._pending.get(str(ref))
            if entry is not None and (
                kind == "error" or entry.expect is None or kind in entry.expect
            ):
                if not entry.future.done():
                    if kind == "error":
                        self.stats.errors += 1
                        entry.future.set_exception(error_from_envelope(message))
                    else:
                        entry.future.set_result(message)
                return
            if kind == "ack" and str(ref) in self._abandoned:
                self._abandoned.pop(str(ref), None)
                seq = message.get("seq")
                self._emit(
                    LateAck(
                        str(ref), message.get("message_id"), seq if isinstance(seq, int) else None
                    )
                )
                return
        handler = _HANDLERS.get(kind)  # type: ignore[arg-type]
        if handler is not None:
            handler(self, message)
        elif kind == "ack":
            pass  # an ack nobody waits for any more (its request timed out long ago)
        else:
            self._emit(UnknownEvent(str(kind), message))

    def _on_error(self, message: dict[str, Any]) -> None:
        self.stats.errors += 1
        error = error_from_envelope(message)
        ref = message.get("ref")
        self._emit(ErrorEvent(int(error.code), error.code.name, error.message, ref))

    def _on_chat_message(self, message: dict[str, Any]) -> None:
        track = self._track_of(message)
        seq = message.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool):
            self._deliver(track, message, recovered=False)  # no seq (e.g. degraded): dedupe only
            return
        if track.last_seq is not None and seq <= track.last_seq:
            self.stats.duplicates += 1
            return
        if track.hold or track.task is not None:
            self._hold(track, seq, message)
            return
        if track.last_seq is None:
            track.last_seq = seq - 1  # first message of a conversation we had no baseline for
        if seq == track.last_seq + 1:
            self._accept(track, message, recovered=False)
        else:
            self._hold(track, seq, message)  # a gap: fetch what is missing first
            self._start_recovery(track)

    def _on_typing(self, message: dict[str, Any]) -> None:
        self._emit(
            Typing(
                str(message.get("room", "")),
                str(message.get("user_id", "")),
                str(message.get("username", "")),
                bool(message.get("is_typing")),
            )
        )

    def _on_presence(self, message: dict[str, Any]) -> None:
        cls = PresenceJoin if message.get("type") == "presence:join" else PresenceLeave
        user_id = str(message.get("user_id", ""))
        self._emit(
            cls(str(message.get("room", "")), user_id, str(message.get("username", user_id)))
        )

    def _on_broadcast(self, message: dict[str, Any]) -> None:
        raw_ts = message.get("timestamp")
        try:
            timestamp = parse_timestamp(raw_ts) if isinstance(raw_ts, str) else None
        except ValidationError:
            timestamp = None
        sender = message.get("from_user")
        self._emit(
            SystemBroadcast(
                str(message.get("content", "")),
                sender if isinstance(sender, str) else None,
                timestamp,
            )
        )

    def _on_auth_expiring(self, message: dict[str, Any]) -> None:
        expires_in = message.get("expires_in")
        self._emit(AuthExpiring(float(expires_in) if isinstance(expires_in, (int, float)) else 0.0))
        if self.token_provider is not None:
            self._spawn(self._refresh_from_provider(), "token refresh")

    async def _refresh_from_provider(self) -> None:
        assert self.token_provider is not None
        token = self.token_provider()
        if inspect.isawaitable(token):
            token = await token
        if not isinstance(token, str) or not token:
            raise AuthenticationError("token_provider returned no token")
        await self.refresh_token(token)

    def _on_resync(self, message: dict[str, Any]) -> None:
        rooms = message.get("rooms")
        if isinstance(rooms, list) and rooms:
            tracks = [self._tracks[r] for r in rooms if isinstance(r, str) and r in self._tracks]
        else:
            tracks = list(self._tracks.values())
        for track in tracks:
            self._start_recovery(track)

    def _on_connected(self, message: dict[str, Any]) -> None:
        # A repeated system:connected (e.g. after auth:refresh) updates what we know.
        self.connection_info = Connected.from_wire(message)
        self._emit(self.connection_info)

    def _on_history(self, message: dict[str, Any]) -> None:
        # A history page nobody asked for (its request timed out): not an event of the chat.
        log.debug("unrequested chat:history for %r ignored", message.get("room"))


_HANDLERS: dict[str, Callable[[IncomingMixin, dict[str, Any]], None]] = {
    "error": IncomingMixin._on_error,
    "chat:message": IncomingMixin._on_chat_message,
    "chat:typing": IncomingMixin._on_typing,
    "presence:join": IncomingMixin._on_presence,
    "presence:leave": IncomingMixin._on_presence,
    "system:broadcast": IncomingMixin._on_broadcast,
    "admin:broadcast": IncomingMixin._on_broadcast,
    "auth:expiring": IncomingMixin._on_auth_expiring,
    "system:resync": IncomingMixin._on_resync,
    "system:connected": IncomingMixin._on_connected,
    "chat:history": IncomingMixin._on_history,
}
