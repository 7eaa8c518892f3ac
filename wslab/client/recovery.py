"""Recovery of missed chat messages from the hub's history, room by room.

After a reconnect, a ``seq`` gap or a ``system:resync``, :class:`Recovery` pages through
``chat:history`` with ``since_seq`` from the last ``seq`` delivered (``limit``
:data:`~.bounds.HISTORY_PAGE` while pages come back full), and merges the pages with the live
messages held meanwhile (:mod:`.tracking`). Where the store no longer has the missing messages
(``complete: false``) a :class:`~.events.HistoryGap` event says so. A first join asks for the
room's newest message only: its ``seq`` is the baseline later gaps are measured from.

:class:`Recovery` is that part of :class:`~wslab.client.ChatClient`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

from wslab.foundation.codes import ErrorCode
from wslab.foundation.errors import ConnectionClosed
from wslab.foundation.wire import CHAT_HISTORY

from .bounds import HISTORY_PAGE
from .events import HistoryGap
from .inbox import Inbox
from .requests import Link, Requests
from .results import ClientStats
from .tracking import RoomTrack, Tracker

__all__ = ["Page", "Recovery"]


@dataclass(frozen=True)
class Page:
    """One page of ``chat:history`` as recovery reads it: raw messages, and ``complete``."""

    messages: list[dict[str, Any]]
    complete: bool


class Recovery:
    """Fetches what a room missed and merges it in; part of :class:`~wslab.client.ChatClient`.

    It asks through ``requests``, delivers through ``tracker``, reports gaps and failures in
    ``inbox``, and runs each room's recovery as a task made by ``spawn`` (which the client
    cancels on close and whose failures it reports).
    """

    def __init__(
        self,
        *,
        tracker: Tracker,
        requests: Requests,
        link: Link,
        inbox: Inbox,
        stats: ClientStats,
        spawn: Callable[[Coroutine[Any, Any, Any], str], asyncio.Task[Any]],
    ) -> None:
        self.tracker = tracker
        self.requests = requests
        self.link = link
        self.inbox = inbox
        self.stats = stats
        self.spawn = spawn

    def start(self, track: RoomTrack) -> asyncio.Task[None] | None:
        if track.task is not None:
            track.again = True  # the running recovery goes round once more
            return track.task
        if self.link.conn is None or self.link.closing:
            return None  # the next resume recovers this room
        track.task = self.spawn(self._recover(track), f"recover {track.key}")
        return track.task

    async def _recover(self, track: RoomTrack) -> None:
        """Fetch what ``track`` is missing, merge it with held live messages, in seq order."""
        try:
            while True:
                track.again = False
                if track.last_seq is None:
                    await self._baseline(track)
                    self.tracker.drain(track)
                    if not track.held and not track.again:
                        return
                    continue
                head, track.head = track.head, None
                if head is not None and track.last_seq >= head:
                    # The join's ack says nothing was stored after what we have: no fetch.
                    self.tracker.drain(track)
                    if not track.held and not track.again:
                        return
                    continue
                before = track.last_seq
                page = await self._history_page(track, since_seq=before, limit=HISTORY_PAGE)
                if not page.complete:
                    self.stats.gaps += 1
                    self.inbox.put(HistoryGap(track.key, before))
                for message in sorted(page.messages, key=lambda m: m.get("seq") or 0):
                    # A message also held from the live stream was not missed: not "recovered".
                    seq = message.get("seq")
                    live = track.held.pop(seq, None) if isinstance(seq, int) else None
                    self.tracker.accept(track, live or message, recovered=live is None)
                self.tracker.drain(track)
                if len(page.messages) >= HISTORY_PAGE or track.again:
                    continue
                if track.held:  # still a gap the store could not fill
                    if track.last_seq == before:
                        self.tracker.skip_gap(track)
                        return
                    continue
                return
        except ConnectionClosed:
            pass  # the next resume starts over from last_seq; held messages stay held
        except asyncio.CancelledError:
            raise
        except Exception as error:
            track.again = False  # a hub that refuses history must not make us ask forever
            self.inbox.put_error(
                getattr(error, "code", ErrorCode.INTERNAL_ERROR),
                f"recovering {track.key!r} failed: {error}",
            )
            if track.held:
                self.tracker.skip_gap(track)
        finally:
            track.task = None
            track.hold = False
            # A resync or gap that came in while this run was ending: go round once more.
            if track.again and self.tracker.tracks.get(track.key) is track:
                self.start(track)

    def note_head(self, track: RoomTrack, reply: Mapping[str, Any]) -> None:
        """The join's ack names the room's newest seq: a baseline, or proof nothing was missed."""
        latest = reply.get("latest_seq")
        if not isinstance(latest, int) or isinstance(latest, bool):
            return  # an older hub, or its store is down: recovery asks history instead
        if track.last_seq is None:
            self._set_baseline(track, latest)
        track.head = latest

    async def _baseline(self, track: RoomTrack) -> None:
        """The newest seq of a room we just joined: gaps are measured from there."""
        page = await self._history_page(track, limit=1)
        seqs = [m["seq"] for m in page.messages if isinstance(m.get("seq"), int)]
        self._set_baseline(track, max(seqs) if seqs else 0)

    def _set_baseline(self, track: RoomTrack, head: int) -> None:
        if track.held:  # messages that arrived live after the join are delivered, not skipped
            head = min(head, min(track.held) - 1)
        track.last_seq = head

    async def _history_page(self, track: RoomTrack, **fields: Any) -> Page:
        message: dict[str, Any] = {"type": CHAT_HISTORY, **fields}
        if track.peer is not None:
            message["with_user"] = track.peer
        else:
            message["room"] = track.key
        reply = await self.requests.request(message, expect=(CHAT_HISTORY,))
        raw = reply.get("messages")
        messages = [m for m in raw if isinstance(m, dict)] if isinstance(raw, list) else []
        return Page(messages, reply.get("complete", True) is not False)
