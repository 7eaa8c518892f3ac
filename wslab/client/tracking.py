"""Per-room delivery of chat messages: in ``seq`` order, each once, gaps noticed.

The client follows the last ``seq`` it delivered in every room and direct conversation (a
:class:`RoomTrack`). A live message that follows on is delivered at once; one that jumps ahead is
held and recovery (:mod:`.recovery`) fetches what is missing; one at or below the last ``seq``,
or whose ``message_id`` was seen before, is a duplicate and counted, not delivered. While a room
recovers, live messages are held and merged afterwards.

:class:`TrackingMixin` is that part of :class:`~wslab.client.ChatClient`.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from wslab.integration.store import dm_room

from .bounds import MAX_SEEN, MAX_TRACKS, bounded_put
from .events import ChatMessage, Event, HistoryGap
from .results import ClientStats

__all__ = ["RoomTrack", "TrackingMixin"]


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


class TrackingMixin:
    """Ordered, deduplicated delivery per room; part of :class:`~wslab.client.ChatClient`."""

    stats: ClientStats
    max_inbox: int
    max_room_messages: int
    _rooms: dict[str, None]
    _tracks: dict[str, RoomTrack]
    _seen: OrderedDict[str, None]

    if TYPE_CHECKING:

        @property
        def user_id(self) -> str | None: ...

        def _emit(self, event: Event) -> None: ...

        def _own_echo(self, message_id: str) -> None: ...

    def _track(self, room: str, peer: str | None = None) -> RoomTrack:
        track = self._tracks.get(room)
        if track is None:
            if len(self._tracks) >= MAX_TRACKS:
                self._forget_a_track()
            track = self._tracks[room] = RoomTrack(
                room, peer, messages=deque(maxlen=self.max_room_messages)
            )
        return track

    def _forget_a_track(self) -> None:
        """Forget the oldest conversation that is not a joined room and not recovering."""
        for key, track in self._tracks.items():
            if key not in self._rooms and track.task is None and not track.hold:
                del self._tracks[key]
                return

    def _track_of(self, message: Mapping[str, Any]) -> RoomTrack:
        """The track of a message: its room, or the direct conversation it belongs to."""
        to_user = message.get("to_user")
        from_user = str(message.get("from_user", ""))
        if isinstance(to_user, str) and to_user:
            me = self.user_id
            peer = from_user if to_user == me else to_user
            return self._track(dm_room(from_user, to_user), peer)
        return self._track(str(message.get("room", "")))

    def _hold(self, track: RoomTrack, seq: int, message: dict[str, Any]) -> None:
        track.held[seq] = message
        if len(track.held) > self.max_inbox:
            # The newest go first: the recovery that is (or will be) running fetches them again.
            del track.held[max(track.held)]

    def _accept(self, track: RoomTrack, message: Mapping[str, Any], *, recovered: bool) -> None:
        """Deliver a message whose seq follows the track's (or that history vouches for)."""
        seq = message.get("seq")
        if isinstance(seq, int):
            if track.last_seq is not None and seq <= track.last_seq:
                self.stats.duplicates += 1
                return
            track.last_seq = seq
        self._deliver(track, message, recovered=recovered)

    def _deliver(self, track: RoomTrack, message: Mapping[str, Any], *, recovered: bool) -> None:
        event = ChatMessage.from_wire(message, recovered=recovered)
        if event.message_id in self._seen:
            self.stats.duplicates += 1
            return
        bounded_put(self._seen, event.message_id, None, MAX_SEEN)
        if recovered:
            self.stats.recovered += 1
        track.messages.append(event)
        if not recovered and event.from_user and event.from_user == self.user_id:
            self._own_echo(event.message_id)
        self._emit(event)

    def _drain(self, track: RoomTrack) -> None:
        """Deliver held live messages that now follow on; keep the rest (after a gap)."""
        while track.held:
            low = min(track.held)
            if track.last_seq is not None and low <= track.last_seq:
                del track.held[low]
                self.stats.duplicates += 1
            elif track.last_seq is None or low == track.last_seq + 1:
                self._accept(track, track.held.pop(low), recovered=False)
            else:
                return

    def _skip_gap(self, track: RoomTrack) -> None:
        """The missing messages are not to be had: report the gap, deliver what is held."""
        self.stats.gaps += 1
        self._emit(HistoryGap(track.key, track.last_seq or 0))
        while track.held:
            low = min(track.held)
            self._accept(track, track.held.pop(low), recovered=False)

    def messages(self, room: str = "lobby", *, with_user: str | None = None) -> list[ChatMessage]:
        """The messages received in ``room`` (or the direct conversation ``with_user``), by seq.

        Kept whether or not the events were read; the last ``max_room_messages`` per room.
        """
        if with_user is not None:
            me = self.user_id or ""
            room = dm_room(me, with_user)
        track = self._tracks.get(room)
        if track is None:
            return []
        return sorted(track.messages, key=lambda m: (m.seq is None, m.seq or 0))
