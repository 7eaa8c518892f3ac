"""What the chat client does with each message from the hub.

:meth:`Incoming.dispatch` first resolves a pending request whose ``ref`` the message
names (or reports a late ack), then hands the message to the handler of its ``type`` (the table
``_HANDLERS`` at the end), which turns it into an event of :mod:`.events`. A ``type`` this client
does not know becomes an :class:`~.events.UnknownEvent`, not an error: a newer hub may send it.

:class:`Incoming` is that part of :class:`~wslab.client.ChatClient`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from wslab.foundation.errors import ValidationError
from wslab.foundation.wire import (
    ACK,
    ADMIN_BROADCAST,
    AUTH_EXPIRING,
    CHAT_HISTORY,
    CHAT_MESSAGE,
    CHAT_TYPING,
    ERROR,
    PRESENCE_JOIN,
    PRESENCE_LEAVE,
    SYSTEM_BROADCAST,
    SYSTEM_CONNECTED,
    SYSTEM_RESYNC,
    parse_timestamp,
)

from .errors import error_from_envelope
from .events import (
    AuthExpiring,
    Connected,
    ErrorEvent,
    PresenceJoin,
    PresenceLeave,
    SystemBroadcast,
    Typing,
    UnknownEvent,
)
from .inbox import Inbox
from .recovery import Recovery
from .requests import Requests
from .results import ClientStats
from .tracking import Tracker

__all__ = ["Incoming"]

log = logging.getLogger("wslab.client")


class Incoming:
    """Dispatches the hub's messages; part of :class:`~wslab.client.ChatClient`.

    ``on_connected`` is told what each ``system:connected`` says; ``on_auth_expiring`` is called
    when the hub warns that the token expires (the client refreshes it if it can).
    """

    def __init__(
        self,
        *,
        stats: ClientStats,
        inbox: Inbox,
        requests: Requests,
        tracker: Tracker,
        recovery: Recovery,
        on_connected: Callable[[Connected], None],
        on_auth_expiring: Callable[[], None],
    ) -> None:
        self.stats = stats
        self.inbox = inbox
        self.requests = requests
        self.tracker = tracker
        self.recovery = recovery
        self.on_connected = on_connected
        self.on_auth_expiring = on_auth_expiring

    def dispatch(self, message: dict[str, Any]) -> None:
        """Resolve the request ``message`` answers, or turn it into events."""
        if self.requests.resolve(message):
            return
        kind = message.get("type")
        handler = _HANDLERS.get(kind) if isinstance(kind, str) else None
        if handler is not None:
            handler(self, message)
        elif kind == ACK:
            pass  # an ack nobody waits for any more (its request timed out long ago)
        else:
            self.inbox.put(UnknownEvent(str(kind), message))

    def _on_error(self, message: dict[str, Any]) -> None:
        self.stats.errors += 1
        error = error_from_envelope(message)
        ref = message.get("ref")
        self.inbox.put(ErrorEvent(int(error.code), error.code.name, error.message, ref))

    def _on_chat_message(self, message: dict[str, Any]) -> None:
        track = self.tracker.track_of(message)
        seq = message.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool):
            self.tracker.deliver(track, message, recovered=False)  # no seq (e.g. degraded): dedupe only
            return
        if track.last_seq is not None and seq <= track.last_seq:
            self.stats.duplicates += 1
            return
        if track.hold or track.task is not None:
            self.tracker.hold(track, seq, message)
            return
        if track.last_seq is None:
            track.last_seq = seq - 1  # first message of a conversation we had no baseline for
        if seq == track.last_seq + 1:
            self.tracker.accept(track, message, recovered=False)
        else:
            self.tracker.hold(track, seq, message)  # a gap: fetch what is missing first
            self.recovery.start(track)

    def _on_typing(self, message: dict[str, Any]) -> None:
        self.inbox.put(
            Typing(
                str(message.get("room", "")),
                str(message.get("user_id", "")),
                str(message.get("username", "")),
                bool(message.get("is_typing")),
            )
        )

    def _on_presence(self, message: dict[str, Any]) -> None:
        cls = PresenceJoin if message.get("type") == PRESENCE_JOIN else PresenceLeave
        user_id = str(message.get("user_id", ""))
        self.inbox.put(
            cls(str(message.get("room", "")), user_id, str(message.get("username", user_id)))
        )

    def _on_broadcast(self, message: dict[str, Any]) -> None:
        raw_ts = message.get("timestamp")
        try:
            timestamp = parse_timestamp(raw_ts) if isinstance(raw_ts, str) else None
        except ValidationError:
            timestamp = None
        sender = message.get("from_user")
        self.inbox.put(
            SystemBroadcast(
                str(message.get("content", "")),
                sender if isinstance(sender, str) else None,
                timestamp,
            )
        )

    def _on_auth_expiring(self, message: dict[str, Any]) -> None:
        expires_in = message.get("expires_in")
        self.inbox.put(AuthExpiring(float(expires_in) if isinstance(expires_in, (int, float)) else 0.0))
        self.on_auth_expiring()

    def _on_resync(self, message: dict[str, Any]) -> None:
        rooms = message.get("rooms")
        if isinstance(rooms, list) and rooms:
            followed = self.tracker.tracks
            tracks = [followed[r] for r in rooms if isinstance(r, str) and r in followed]
        else:
            tracks = list(self.tracker.tracks.values())
        for track in tracks:
            self.recovery.start(track)

    def _on_connected(self, message: dict[str, Any]) -> None:
        # A repeated system:connected (e.g. after auth:refresh) updates what we know.
        info = Connected.from_wire(message)
        self.on_connected(info)
        self.inbox.put(info)

    def _on_history(self, message: dict[str, Any]) -> None:
        # A history page nobody asked for (its request timed out): not an event of the chat.
        log.debug("unrequested chat:history for %r ignored", message.get("room"))


_HANDLERS: dict[str, Callable[[Incoming, dict[str, Any]], None]] = {
    ERROR: Incoming._on_error,
    CHAT_MESSAGE: Incoming._on_chat_message,
    CHAT_TYPING: Incoming._on_typing,
    PRESENCE_JOIN: Incoming._on_presence,
    PRESENCE_LEAVE: Incoming._on_presence,
    SYSTEM_BROADCAST: Incoming._on_broadcast,
    ADMIN_BROADCAST: Incoming._on_broadcast,
    AUTH_EXPIRING: Incoming._on_auth_expiring,
    SYSTEM_RESYNC: Incoming._on_resync,
    SYSTEM_CONNECTED: Incoming._on_connected,
    CHAT_HISTORY: Incoming._on_history,
}
