"""Per-room delivery of chat messages: in ``seq`` order, each once, gaps noticed.

The client follows the last ``seq`` it delivered in every room and direct conversation (a
:class:`RoomTrack`). A live message that follows on is delivered at once; one that jumps ahead is
held and recovery (:mod:`.recovery`) fetches what is missing; one at or below the last ``seq``,
or whose ``message_id`` was seen before, is a duplicate and counted, not delivered. While a room
recovers, live messages are held and merged afterwards.

:class:`Tracker` is that part of :class:`~wslab.client.ChatClient`: it owns the tracks and the
ids seen, and puts what it delivers in the :class:`~.inbox.Inbox`.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from wslab.foundation.wire import dm_room

from .bounds import MAX_SEEN, MAX_TRACKS, bounded_put
from .events import ChatMessage, HistoryGap
from .inbox import Inbox
from .results import ClientStats

__all__ = ["RoomTrack", "Tracker"]


@dataclass
class RoomTrack:
    """Delivery state of one room (or direct conversation): the last seq delivered and more."""

    key: str
    peer: str | None  # the other user of a direct conversation: history asks `with_user`
    last_seq: int | None = None
    held: dict[int, dict[str, Any]] = field(default_factory=dict)  # seq -> live message
    head: int | None = None  # newest seq per the last join's ack, until recovery uses it
    hold: bool = False
    again: bool = False
    task: asyncio.Task[None] | None = None
    messages: deque[ChatMessage] = field(default_factory=deque)


class Tracker:
    """Ordered, deduplicated delivery per room; part of :class:`~wslab.client.ChatClient`.

    ``joined`` is the client's set of joined rooms (their tracks are never forgotten),
    ``user_id`` says who this client is (for direct conversations and its own echoes), and
    ``own_echo`` is told the id of each of its own messages coming back live (latency).
    """

    def __init__(
        self,
        *,
        stats: ClientStats,
        inbox: Inbox,
        joined: Mapping[str, None],
        user_id: Callable[[], str | None],
        own_echo: Callable[[str], None],
        max_held: int,
        max_room_messages: int,
    ) -> None:
        self.stats = stats
        self.inbox = inbox
        self.joined = joined
        self.user_id = user_id
        self.own_echo = own_echo
        self.max_held = max_held
        self.max_room_messages = max_room_messages
        #: The rooms and direct conversations followed, by key (at most ``MAX_TRACKS``).
        self.tracks: dict[str, RoomTrack] = {}
        self._seen: OrderedDict[str, None] = OrderedDict()

    def track(self, room: str, peer: str | None = None) -> RoomTrack:
        track = self.tracks.get(room)
        if track is None:
            if len(self.tracks) >= MAX_TRACKS:
                self._forget_one()
            track = self.tracks[room] = RoomTrack(
                room, peer, messages=deque(maxlen=self.max_room_messages)
            )
        return track

    def _forget_one(self) -> None:
        """Forget the oldest conversation that is not a joined room and not recovering."""
        for key, track in self.tracks.items():
            if key not in self.joined and track.task is None and not track.hold:
                del self.tracks[key]
                return

    def track_of(self, message: Mapping[str, Any]) -> RoomTrack:
        """The track of a message: its room, or the direct conversation it belongs to."""
        to_user = message.get("to_user")
        from_user = str(message.get("from_user", ""))
        if isinstance(to_user, str) and to_user:
            me = self.user_id()
            peer = from_user if to_user == me else to_user
            return self.track(dm_room(from_user, to_user), peer)
        return self.track(str(message.get("room", "")))

    def hold(self, track: RoomTrack, seq: int, message: dict[str, Any]) -> None:
        track.held[seq] = message
        if len(track.held) > self.max_held:
            # The newest go first: the recovery that is (or will be) running fetches them again.
            del track.held[max(track.held)]

    def accept(self, track: RoomTrack, message: Mapping[str, Any], *, recovered: bool) -> None:
        """Deliver a message whose seq follows the track's (or that history vouches for)."""
        seq = message.get("seq")
        if isinstance(seq, int):
            if track.last_seq is not None and seq <= track.last_seq:
                self.stats.duplicates += 1
                return
            track.last_seq = seq
        self.deliver(track, message, recovered=recovered)

    def deliver(self, track: RoomTrack, message: Mapping[str, Any], *, recovered: bool) -> None:
        event = ChatMessage.from_wire(message, recovered=recovered)
        if event.message_id in self._seen:
            self.stats.duplicates += 1
            return
        bounded_put(self._seen, event.message_id, None, MAX_SEEN)
        if recovered:
            self.stats.recovered += 1
        track.messages.append(event)
        if not recovered and event.from_user and event.from_user == self.user_id():
            self.own_echo(event.message_id)
        self.inbox.put(event)

    def drain(self, track: RoomTrack) -> None:
        """Deliver held live messages that now follow on; keep the rest (after a gap)."""
        while track.held:
            low = min(track.held)
            if track.last_seq is not None and low <= track.last_seq:
                del track.held[low]
                self.stats.duplicates += 1
            elif track.last_seq is None or low == track.last_seq + 1:
                self.accept(track, track.held.pop(low), recovered=False)
            else:
                return

    def skip_gap(self, track: RoomTrack) -> None:
        """The missing messages are not to be had: report the gap, deliver what is held."""
        self.stats.gaps += 1
        self.inbox.put(HistoryGap(track.key, track.last_seq or 0))
        while track.held:
            low = min(track.held)
            self.accept(track, track.held.pop(low), recovered=False)

    def messages(self, room: str = "lobby", *, with_user: str | None = None) -> list[ChatMessage]:
        """The messages received in ``room`` (or the direct conversation ``with_user``), by seq.

        Kept whether or not the events were read; the last ``max_room_messages`` per room.
        """
        if with_user is not None:
            me = self.user_id() or ""
            room = dm_room(me, with_user)
        track = self.tracks.get(room)
        if track is None:
            return []
        return sorted(track.messages, key=lambda m: (m.seq is None, m.seq or 0))
