"""The chat client's inbox: one bounded queue of events, read in order or by type.

:class:`InboxMixin` is the part of :class:`~wslab.client.ChatClient` that puts events in
(``_emit``, dropping the oldest beyond ``max_inbox``) and takes them out (``async for``,
``next_event``, ``pending_events``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, TypeVar

from wslab.foundation.codes import ErrorCode
from wslab.foundation.errors import ConnectionClosed, OperationTimeout

from .events import ErrorEvent, Event

__all__ = ["InboxMixin"]

E = TypeVar("E", bound="Event")


class InboxMixin:
    """Puts events in the inbox and hands them out; part of :class:`~wslab.client.ChatClient`."""

    max_inbox: int
    dropped_events: int
    _inbox: deque[Event]
    _inbox_changed: asyncio.Event
    _finished: bool
    _connected: asyncio.Event

    if TYPE_CHECKING:

        def _not_connected(self) -> ConnectionClosed: ...

    def _emit(self, event: Event) -> None:
        self._inbox.append(event)
        while len(self._inbox) > self.max_inbox:
            self._inbox.popleft()
            self.dropped_events += 1
        self._inbox_changed.set()

    def _emit_error(self, code: int, message: str) -> None:
        code = ErrorCode(code) if code in ErrorCode._value2member_map_ else ErrorCode.INTERNAL_ERROR
        self._emit(ErrorEvent(int(code), code.name, message))

    def _finish(self) -> None:
        self._finished = True
        self._connected.clear()
        self._inbox_changed.set()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        """The next event in order; the iteration ends once the client is closed and drained."""
        while not self._inbox:
            if self._finished:
                raise StopAsyncIteration
            self._inbox_changed.clear()
            await self._inbox_changed.wait()
        return self._inbox.popleft()

    async def next_event(
        self,
        type: type[E] = Event,  # reads naturally: next_event(type=ChatMessage)
        timeout: float | None = 5.0,
        where: Callable[[E], bool] | None = None,
    ) -> E:
        """The oldest event of ``type`` (matching ``where``), removed from the inbox.

        Events of other types stay in the inbox, in order. Raises :class:`OperationTimeout` when
        none arrives within ``timeout`` seconds, ``ConnectionClosed`` once the client is done.
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            for index, event in enumerate(self._inbox):
                if isinstance(event, type) and (where is None or where(event)):
                    del self._inbox[index]
                    return event
            if self._finished:
                raise self._not_connected()
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                raise OperationTimeout(f"no {type.__name__} within {timeout}s")
            self._inbox_changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._inbox_changed.wait(), remaining)

    def pending_events(self) -> list[Event]:
        """The events waiting in the inbox (a copy; nothing is removed)."""
        return list(self._inbox)
