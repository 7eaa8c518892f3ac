"""Tests of ``OutgoingQueue``: the bounded queue both engines keep while the socket is slow."""

from __future__ import annotations

from wslab.infrastructure.outgoing import OutgoingQueue


def test_the_queue_counts_items_and_bytes_in_order() -> None:
    queue: OutgoingQueue[bytes] = OutgoingQueue(max_items=2, max_bytes=10)
    assert not queue and queue.fits(10) and not queue.fits(11)
    queue.append(b"abcd", 4)
    queue.append(b"ef", 2)
    assert (len(queue), queue.nbytes) == (2, 6)
    assert not queue.fits(1)  # the count bound: two items already
    assert queue.fits_bytes(4) and not queue.fits_bytes(5)  # the byte bound alone
    assert queue.popleft() == b"abcd" and queue.nbytes == 2
    assert queue.fits(8) and not queue.fits(9)


def test_items_may_stand_for_a_size_of_their_own() -> None:
    queue: OutgoingQueue[tuple[bytes, bool]] = OutgoingQueue(max_items=8, max_bytes=100)
    queue.append((b"hi", True), 2)
    queue.append((b"\x00" * 50, False), 50)
    assert queue.nbytes == 52
    queue.clear()
    assert (len(queue), queue.nbytes, bool(queue)) == (0, 0, False)
