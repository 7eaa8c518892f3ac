"""The chat client's background tasks: resuming after a reconnect, recovery, token refresh.

:class:`Tasks` is the part of :class:`~wslab.client.ChatClient` that starts them: it keeps each
one until it ends, so closing the client can cancel what is still running, and turns a task's
failure into an error event in the :class:`~.inbox.Inbox` instead of losing it. A dropped
connection is not such a failure: the client's supervisor handles it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterator
from typing import Any

from wslab.foundation.codes import ErrorCode
from wslab.foundation.errors import ConnectionClosed

from .inbox import Inbox

__all__ = ["Tasks"]

log = logging.getLogger("wslab.client")


class Tasks:
    """The background tasks still running; their failures go to ``inbox`` as error events.

    A task leaves the set as soon as it ends, so the set holds only what is running now.
    """

    def __init__(self, inbox: Inbox) -> None:
        self._inbox = inbox
        self._tasks: set[asyncio.Task[Any]] = set()

    def __iter__(self) -> Iterator[asyncio.Task[Any]]:
        return iter(tuple(self._tasks))  # a copy: tasks end (and leave the set) while we iterate

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run ``coro`` as a background task called ``name`` (the name is in its error event)."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._task_done(t, name))
        return task

    def _task_done(self, task: asyncio.Task[Any], name: str) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is None or isinstance(error, ConnectionClosed):
            return  # a drop is handled by the supervisor
        log.warning("background task %r failed: %r", name, error)
        self._inbox.put_error(getattr(error, "code", ErrorCode.INTERNAL_ERROR), f"{name}: {error}")
