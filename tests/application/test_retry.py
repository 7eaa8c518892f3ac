"""RetryQueue against a real SQLite store that goes away (closed) and comes back (reopened)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from wslab.application.retry import PendingMessage, RetryQueue
from wslab.foundation.errors import ConflictError
from wslab.integration.sqlite_store import SQLiteStore
from wslab.integration.store import MessageDraft, StoredMessage

WAIT = 5.0


def pending(
    content: str, *, message_id: str | None = None, ref: str | None = None, user: str = "u1"
) -> PendingMessage:
    kwargs = {"message_id": message_id} if message_id else {}
    draft = MessageDraft(
        room="lobby", from_user=user, from_username="Ada", content=content, **kwargs
    )
    return PendingMessage(draft, "c1", ref)


class Acks:
    """Records what the queue reports as saved."""

    def __init__(self) -> None:
        self.saved: list[tuple[PendingMessage, StoredMessage]] = []
        self.errors: list[BaseException] = []

    async def on_saved(self, item: PendingMessage, stored: StoredMessage) -> None:
        self.saved.append((item, stored))

    def on_error(self, error: BaseException) -> None:
        self.errors.append(error)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "retry.db")
    await store.open()
    yield store
    await store.close()


def make_queue(store: SQLiteStore, acks: Acks, **kwargs: object) -> RetryQueue:
    return RetryQueue(
        store,
        acks.on_saved,
        backoff_initial=0.01,
        backoff_max=0.05,
        on_error=acks.on_error,
        **kwargs,  # type: ignore[arg-type]
    )


async def test_drafts_are_saved_in_order_once_the_store_is_back(store: SQLiteStore) -> None:
    acks = Acks()
    queue = make_queue(store, acks)
    await store.close()  # the store is down
    items = [pending(f"m{i}", ref=f"r{i}") for i in range(5)]
    assert all(queue.offer(item) for item in items)
    assert len(queue) == 5
    assert await queue.drain(0.2) is False  # keeps retrying, keeps everything
    assert len(queue) == 5
    assert acks.saved == []

    await store.open()
    assert await queue.drain(WAIT) is True
    assert len(queue) == 0
    assert [item for item, _ in acks.saved] == items
    assert [stored.seq for _, stored in acks.saved] == [1, 2, 3, 4, 5]
    assert [stored.message_id for _, stored in acks.saved] == [i.draft.message_id for i in items]
    page = await store.history("lobby")
    assert [m.content for m in page.messages] == ["m0", "m1", "m2", "m3", "m4"]
    assert queue.saved == 5
    assert acks.errors == []
    await queue.close()


async def test_full_queue_refuses_new_drafts_and_keeps_old_ones(store: SQLiteStore) -> None:
    acks = Acks()
    queue = make_queue(store, acks, max_size=3)
    await store.close()
    first = [pending(f"m{i}") for i in range(3)]
    assert all(queue.offer(item) for item in first)
    assert queue.offer(pending("one too many")) is False
    assert queue.refused == 1
    assert len(queue) == 3

    await store.open()
    assert await queue.drain(WAIT)
    assert [item for item, _ in acks.saved] == first
    await queue.close()


async def test_one_sender_fills_only_its_share_and_gets_it_back_as_its_drafts_are_saved(
    store: SQLiteStore,
) -> None:
    acks = Acks()
    queue = make_queue(store, acks, max_size=10, max_per_sender=3)
    await store.close()
    flood = [pending(f"naive {i}", user="naive") for i in range(3)]
    assert all(queue.offer(item) for item in flood)
    assert queue.sender_full("naive")
    assert queue.offer(pending("naive 3", user="naive")) is False  # past its share
    others = [pending(f"polite {i}", user=f"polite{i}") for i in range(7)]
    assert all(queue.offer(item) for item in others)  # the rest of the queue is everyone's
    assert len(queue) == 10 and queue.refused == 1

    await store.open()
    assert await queue.drain(WAIT)
    assert [item for item, _ in acks.saved] == flood + others
    assert not queue.sender_full("naive")  # saved drafts give the share back
    assert queue.offer(pending("naive again", user="naive"))
    assert await queue.drain(WAIT)
    await queue.close()


async def test_a_draft_stored_before_the_failure_is_not_stored_twice(store: SQLiteStore) -> None:
    # The save reached the database but the answer was lost: the retry must not make a copy.
    acks = Acks()
    queue = make_queue(store, acks)
    item = pending("hello")
    first = await store.save(item.draft)
    assert queue.offer(item)
    assert await queue.drain(WAIT)
    assert acks.saved[0][1] == first
    assert await store.latest_seq("lobby") == 1
    await queue.close()


async def test_a_draft_rejected_for_good_is_reported_and_skipped(store: SQLiteStore) -> None:
    acks = Acks()
    queue = make_queue(store, acks)
    await store.save(pending("original", message_id="m-1").draft)
    clash = pending("different content, same id", message_id="m-1")
    after = pending("after")
    assert queue.offer(clash) and queue.offer(after)
    assert await queue.drain(WAIT)
    assert len(acks.errors) == 1 and isinstance(acks.errors[0], ConflictError)
    assert [item for item, _ in acks.saved] == [after]
    await queue.close()


async def test_a_failing_ack_is_reported_and_the_queue_goes_on(store: SQLiteStore) -> None:
    errors: list[BaseException] = []
    saved: list[str] = []

    async def on_saved(item: PendingMessage, stored: StoredMessage) -> None:
        if item.draft.content == "boom":
            raise RuntimeError("the sender is gone")
        saved.append(item.draft.content)

    queue = RetryQueue(store, on_saved, backoff_initial=0.01, on_error=errors.append)
    assert queue.offer(pending("boom")) and queue.offer(pending("fine"))
    assert await queue.drain(WAIT)
    assert saved == ["fine"]
    assert [type(e) for e in errors] == [RuntimeError]
    assert queue.saved == 2  # both are stored; only the ack of the first failed
    await queue.close()


async def test_close_stops_retrying_and_keeps_the_count(store: SQLiteStore) -> None:
    acks = Acks()
    queue = make_queue(store, acks)
    await store.close()
    assert queue.offer(pending("waiting"))
    await asyncio.sleep(0.05)
    await queue.close()
    assert len(queue) == 1
    await store.open()
    await asyncio.sleep(0.1)
    assert acks.saved == []  # closed: nothing more is attempted
    assert await store.latest_seq("lobby") == 0


async def test_drain_of_an_idle_queue(store: SQLiteStore) -> None:
    queue = make_queue(store, Acks())
    assert await queue.drain(0.01) is True
    await queue.close()  # closing a queue that never ran is fine


async def test_the_queue_restarts_after_emptying(store: SQLiteStore) -> None:
    acks = Acks()
    queue = make_queue(store, acks)
    assert queue.offer(pending("one"))
    assert await queue.drain(WAIT)
    assert queue.offer(pending("two"))
    assert await queue.drain(WAIT)
    assert [stored.seq for _, stored in acks.saved] == [1, 2]
    await queue.close()
