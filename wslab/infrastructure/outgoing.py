"""``OutgoingQueue``: what one connection has to send while its socket is slow, within bounds.

Both engines write straight to the socket while it keeps up; while it does not (the transport's
buffer is over its high-water mark) messages wait here. The queue is bounded twice, in count
(``max_queue``) and in bytes (``max_queue_bytes``); what happens at the bound — the
slow-consumer policy — is decided once, by :meth:`Connection._queue_outgoing
<wslab.infrastructure.connection.Connection._queue_outgoing>`, for both engines.

Each engine queues what its writer needs (encoded frames on wslab's engine, ``(payload,
is_text)`` pairs on ``websockets``) with the number of bytes it stands for, so the byte bound
means the same on both.
"""

from __future__ import annotations

from collections import deque
from typing import TypeVar

__all__ = ["OutgoingQueue"]

T = TypeVar("T")


class OutgoingQueue(deque[T]):
    """A FIFO of items waiting for the socket, with their total size kept.

    It only counts; :meth:`fits` says whether one more item stays inside both bounds, and the
    owner decides what to do when it does not. It is a ``deque`` so that the question every
    write asks first — is anything queued? — costs no more than it did on a plain one.
    """

    def __init__(self, max_items: int, max_bytes: int) -> None:
        super().__init__()
        self._sizes: deque[int] = deque()
        self.max_items = max_items
        self.max_bytes = max_bytes
        #: Bytes of everything queued (at most ``max_bytes`` but for control frames, see
        #: :meth:`fits_bytes`).
        self.nbytes = 0

    def fits(self, size: int) -> bool:
        """True if one more item of ``size`` bytes stays within both bounds."""
        return len(self) < self.max_items and self.nbytes + size <= self.max_bytes

    def fits_bytes(self, size: int) -> bool:
        """True if ``size`` more bytes stay within the byte bound (control frames: no count)."""
        return self.nbytes + size <= self.max_bytes

    # Unlike deque's, this append needs the size: no item may enter uncounted, so it differs
    # from the base class's on purpose.
    def append(self, item: T, size: int) -> None:  # type: ignore[override]
        """Queue ``item``, which stands for ``size`` bytes on the wire."""
        super().append(item)
        self._sizes.append(size)
        self.nbytes += size

    def popleft(self) -> T:
        """Take the oldest item (``IndexError`` if empty)."""
        item = super().popleft()
        self.nbytes -= self._sizes.popleft()
        return item

    def clear(self) -> None:
        """Drop everything queued (a close that cannot wait for it)."""
        super().clear()
        self._sizes.clear()
        self.nbytes = 0
