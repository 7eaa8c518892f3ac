"""The bounded retry queue: messages the store could not save yet.

When the store is down the hub keeps the chat alive: a message is still relayed live, the sender
is told ``DEGRADED`` (not acknowledged — an ``ack`` promises durability), and the draft waits
here. A single task retries the oldest draft with capped exponential backoff; saving is
idempotent on ``message_id``, so a save that succeeded just before a connection error is never
stored twice. Once a draft is stored, ``on_saved`` sends the late ``ack``.

At ``max_size`` drafts the queue refuses new ones (the sender gets an error saying the message was
not sent at all) rather than dropping old ones: everything already accepted here is kept. One
sender holds at most ``max_per_sender`` of them, so a client that keeps sending through an
outage (it is told ``DEGRADED`` each time) cannot fill the queue that every other user's
messages wait in: past its share it is refused on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from wslab.foundation.errors import DependencyError
from wslab.integration.store import MessageDraft, Store, StoredMessage

__all__ = ["PendingMessage", "RetryQueue"]

log = logging.getLogger("wslab.retry")


@dataclass(frozen=True)
class PendingMessage:
    """A draft waiting for the store, and who to acknowledge once it is saved."""

    draft: MessageDraft
    connection_id: str | None
    ref: str | int | None


class RetryQueue:
    """Saves queued drafts in order once the store answers again."""

    def __init__(
        self,
        store: Store,
        on_saved: Callable[[PendingMessage, StoredMessage], Awaitable[None]],
        *,
        max_size: int = 1000,
        max_per_sender: int | None = None,
        backoff_initial: float = 0.2,
        backoff_max: float = 5.0,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.store = store
        self.on_saved = on_saved
        self.max_size = max_size
        #: Drafts one sender (``draft.from_user``) may have queued; None: up to ``max_size``.
        self.max_per_sender = max_size if max_per_sender is None else max_per_sender
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.on_error = on_error
        self._queue: deque[PendingMessage] = deque()
        # Queued drafts per sender, only senders with some (bounded by the queue itself).
        self._per_sender: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None
        self.saved = 0
        self.refused = 0

    def __len__(self) -> int:
        return len(self._queue)

    def offer(self, pending: PendingMessage) -> bool:
        """Queue a draft; False (and nothing queued) when the queue, or its sender's share, is full."""
        sender = pending.draft.from_user
        if len(self._queue) >= self.max_size or self.sender_full(sender):
            self.refused += 1
            return False
        self._queue.append(pending)
        self._per_sender[sender] = self._per_sender.get(sender, 0) + 1
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())
        return True

    def sender_full(self, sender: str) -> bool:
        """True when ``sender`` has its whole share of the queue waiting."""
        return self._per_sender.get(sender, 0) >= self.max_per_sender

    def _popleft(self) -> PendingMessage:
        pending = self._queue.popleft()
        sender = pending.draft.from_user
        left = self._per_sender.get(sender, 0) - 1
        if left > 0:
            self._per_sender[sender] = left
        else:
            self._per_sender.pop(sender, None)
        return pending

    async def _run(self) -> None:
        delay = self.backoff_initial
        while self._queue:
            pending = self._queue[0]
            try:
                stored = await self.store.save(pending.draft)
            except DependencyError:
                await asyncio.sleep(delay)
                delay = min(self.backoff_max, delay * 2)
                continue
            except Exception as error:  # a draft the store rejects for good: report, move on
                log.exception("retry of message %s failed permanently", pending.draft.message_id)
                self._popleft()
                if self.on_error is not None:
                    self.on_error(error)
                continue
            self._popleft()
            self.saved += 1
            delay = self.backoff_initial
            try:
                await self.on_saved(pending, stored)
            except Exception as error:
                log.exception("late ack for %s failed", pending.draft.message_id)
                if self.on_error is not None:
                    self.on_error(error)

    async def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the queue to empty; True if it did."""
        if self._task is None:
            return not self._queue
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        return not self._queue

    async def close(self) -> None:
        """Stop retrying (drafts still queued are reported by ``len``)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
