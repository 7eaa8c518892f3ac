"""The chat client's inbox: one bounded queue of events, read in order or by type.

:class:`Inbox` is the part of :class:`~wslab.client.ChatClient` that holds its events: the other
parts :meth:`~Inbox.put` them in (the oldest is dropped beyond ``max_events``, and counted), the
client hands them out (``async for``, ``next_event``, ``pending_events``). Once the client is
done (:meth:`~Inbox.finish`) reading drains what is left and then ends.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar, overload

from wslab.foundation.codes import ErrorCode
from wslab.foundation.errors import ConnectionClosed, OperationTimeout

from .events import ErrorEvent, Event

__all__ = ["Inbox"]

E = TypeVar("E", bound="Event")


class Inbox:
    """The events waiting to be read, at most ``max_events`` of them.

    ``closed_error`` makes the error :meth:`next_event` raises once the client is done (the
    client knows whether it was closed or refused for good).
    """

    def __init__(self, max_events: int, closed_error: Callable[[], ConnectionClosed]) -> None:
        self.max_events = max_events
        #: Events dropped because the inbox was full (the oldest go first).
        self.dropped = 0
        #: True once the client is done: nothing more will be put in.
        self.finished = False
        self._events: deque[Event] = deque()
        self._changed = asyncio.Event()
        self._closed_error = closed_error

    def put(self, event: Event) -> None:
        """Add ``event``; beyond ``max_events`` the oldest is dropped and counted."""
        self._events.append(event)
        while len(self._events) > self.max_events:
            self._events.popleft()
            self.dropped += 1
        self._changed.set()

    def put_error(self, code: int, message: str) -> None:
        """Add an :class:`ErrorEvent` (an unknown code is reported as INTERNAL_ERROR)."""
        code = ErrorCode(code) if code in ErrorCode._value2member_map_ else ErrorCode.INTERNAL_ERROR
        self.put(ErrorEvent(int(code), code.name, message))

    def finish(self) -> None:
        """The client is done: readers drain what is left, then stop."""
        self.finished = True
        self._changed.set()

    async def next(self) -> Event:
        """The next event in order; ``StopAsyncIteration`` once finished and drained."""
        while not self._events:
            if self.finished:
                raise StopAsyncIteration
            self._changed.clear()
            await self._changed.wait()
        return self._events.popleft()

    @overload
    async def next_event(
        self,
        type: type[E],  # reads naturally: next_event(type=ChatMessage)
        timeout: float | None = ...,
        where: Callable[[E], bool] | None = ...,
    ) -> E: ...
    @overload
    async def next_event(
        self, *, timeout: float | None = ..., where: Callable[[Event], bool] | None = ...
    ) -> Event: ...
    async def next_event(
        self,
        type: type[Event] = Event,
        timeout: float | None = 5.0,
        where: Callable[[Any], bool] | None = None,
    ) -> Event:
        """The oldest event of ``type`` (matching ``where``), removed from the inbox.

        Events of other types stay in the inbox, in order. Raises :class:`OperationTimeout` when
        none arrives within ``timeout`` seconds, ``ConnectionClosed`` once the client is done.
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            for index, event in enumerate(self._events):
                if isinstance(event, type) and (where is None or where(event)):
                    del self._events[index]
                    return event
            if self.finished:
                raise self._closed_error()
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                raise OperationTimeout(f"no {type.__name__} within {timeout}s")
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    def pending(self) -> list[Event]:
        """The events waiting (a copy; nothing is removed)."""
        return list(self._events)
