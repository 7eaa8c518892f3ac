"""The message store contract, run against both backends (real SQLite file, real PostgreSQL).

Backend-only behaviour (schema migrations, pragmas, outages) is in test_sqlite_store.py and
test_postgres_store.py.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from wslab.foundation.errors import ConfigError, ConflictError, DependencyError, ValidationError
from wslab.integration.backends import open_store, store_from_url
from wslab.integration.postgres_store import PostgresStore
from wslab.integration.sqlite_store import SQLiteStore
from wslab.integration.store import (
    MAX_HISTORY_LIMIT,
    BaseStore,
    HistoryPage,
    MessageDraft,
    Store,
    StoredMessage,
    dm_room,
    format_timestamp,
    new_message_id,
    parse_timestamp,
)

MakeStore = Callable[..., Awaitable[BaseStore]]


def draft(room: str = "lobby", content: str = "hi", **kwargs: Any) -> MessageDraft:
    kwargs.setdefault("from_user", "u1")
    kwargs.setdefault("from_username", "Ada")
    kwargs.setdefault("origin_hub", "hub-a")
    return MessageDraft(room=room, content=content, **kwargs)


def seqs(page: HistoryPage) -> list[int]:
    return [m.seq for m in page.messages]


# -- fixtures: one store configuration per backend ------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def store_config(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    """(url, options) of an empty database; every store made from it shares that database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/db/chat.db", {}
    dsn = request.getfixturevalue("postgres_dsn")
    schema = request.getfixturevalue("pg_schema")
    return dsn, {"schema": schema}


@pytest.fixture
async def make_store(store_config: tuple[str, dict[str, Any]]) -> AsyncIterator[MakeStore]:
    """Open stores on the shared database (several = several hubs); all closed afterwards."""
    url, options = store_config
    stores: list[BaseStore] = []

    async def make(**kwargs: Any) -> BaseStore:
        store = await open_store(url, **options, **kwargs)
        stores.append(store)
        return store

    yield make
    for store in stores:
        await store.close()


@pytest.fixture
async def store(make_store: MakeStore) -> BaseStore:
    return await make_store()


# -- the model ------------------------------------------------------------------------------------


def test_draft_defaults_give_a_fresh_id_and_utc_now() -> None:
    a, b = draft(), draft()
    assert a.message_id != b.message_id
    assert a.timestamp.tzinfo is not None and a.timestamp.utcoffset() == timedelta(0)


def test_message_ids_are_uuid7s_that_sort_by_creation_time() -> None:
    before = time.time_ns() // 1_000_000
    ids = [new_message_id() for _ in range(2000)]
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == len(ids)
    for text in ids[:50]:
        parsed = uuid.UUID(hex=text)
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert parsed.hex == text and len(text) == 32
        assert before <= parsed.int >> 80 <= after  # the first 48 bits: Unix milliseconds
    # Made one after the other, they sort together (the index's newest page), never backwards
    # by more than the millisecond they share.
    stamps = [int(text[:12], 16) for text in ids]
    assert stamps == sorted(stamps)
    assert draft().message_id > ids[-1][:12]


def test_draft_normalises_timestamp_to_utc_and_refuses_naive() -> None:
    plus_two = timezone(timedelta(hours=2))
    d = draft(timestamp=datetime(2024, 5, 1, 14, 0, tzinfo=plus_two))
    assert d.timestamp == datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    assert d.timestamp.tzinfo == timezone.utc
    with pytest.raises(ValidationError):
        draft(timestamp=datetime(2024, 5, 1, 12, 0))


@pytest.mark.parametrize(
    "kwargs",
    [{"room": ""}, {"from_user": ""}, {"message_id": ""}, {"content": 5}, {"to_user": ""}],
)
def test_draft_rejects_bad_fields(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        draft(**kwargs)


def test_dm_room_is_symmetric_and_injective() -> None:
    assert dm_room("bob", "alice") == dm_room("alice", "bob") == "dm:alice:bob"
    # Ids containing ":" must not make two conversations share a room.
    assert dm_room("x:y", "z") != dm_room("x", "y:z")
    assert draft(to_user="u2").storage_room == dm_room("u1", "u2")
    assert draft(room="lobby").storage_room == "lobby"


def test_wire_format_and_round_trip() -> None:
    ts = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)
    msg = StoredMessage("m1", "lobby", 3, "u1", "Ada", None, "hello", ts, "hub-a")
    wire = msg.to_wire()
    assert wire == {
        "type": "chat:message",
        "room": "lobby",
        "message_id": "m1",
        "seq": 3,
        "from_user": "u1",
        "from_username": "Ada",
        "to_user": None,
        "content": "hello",
        "timestamp": "2024-05-01T12:00:00.123Z",
    }
    assert StoredMessage.from_dict(msg.to_dict()) == msg
    assert parse_timestamp(format_timestamp(ts)) == ts.replace(microsecond=123000)
    with pytest.raises(ValidationError):
        StoredMessage.from_dict({"room": "lobby"})
    with pytest.raises(ValidationError):
        parse_timestamp("2024-05-01T12:00:00")  # no offset


def test_history_page_wire_format() -> None:
    ts = datetime(2024, 5, 1, tzinfo=timezone.utc)
    msg = StoredMessage("m1", "lobby", 1, "u1", "Ada", None, "hello", ts, "hub-a")
    page = HistoryPage("lobby", (msg,), complete=False, has_more=False, latest_seq=1)
    assert page.to_wire() == {
        "type": "chat:history",
        "room": "lobby",
        "messages": [msg.to_wire()],
        "complete": False,
    }


# -- open_store -----------------------------------------------------------------------------------


def test_store_from_url_picks_the_backend(tmp_path: Path) -> None:
    s = store_from_url(f"sqlite:///{tmp_path}/a.db")
    assert isinstance(s, SQLiteStore) and s.path == f"{tmp_path}/a.db"
    assert store_from_url("sqlite:///rel/a.db").path == "rel/a.db"  # type: ignore[attr-defined]
    assert store_from_url("sqlite:///:memory:").path == ":memory:"  # type: ignore[attr-defined]
    assert store_from_url("sqlite://").path == ":memory:"  # type: ignore[attr-defined]
    pg = store_from_url("postgres://u@h/db", schema="s1", retention=7)
    assert isinstance(pg, PostgresStore) and pg.schema == "s1" and pg.retention == 7
    assert isinstance(store_from_url("postgresql://u@h/db"), PostgresStore)
    assert isinstance(s, Store) and isinstance(pg, Store)


@pytest.mark.parametrize(
    "url",
    ["mysql://h/db", "redis://localhost", "chat.db", "", "sqlite:", "sqlite:/x.db", "sqlite:///"],
)
def test_store_from_url_rejects_unknown_urls(url: str) -> None:
    with pytest.raises(ConfigError):
        store_from_url(url)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"retention": 0},
        {"retention": "10"},
        {"retention_batch": 0},
        {"retention_overrides": {"lobby": -1}},
        {"no_such_option": 1},
        {"busy_timeout": -1},
        {"synchronous": "SOMETIMES"},
    ],
)
def test_store_from_url_rejects_bad_options(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        store_from_url("sqlite:///:memory:", **kwargs)


@pytest.mark.parametrize(
    "kwargs", [{"schema": "bad-name"}, {"pool_size": 0}, {"command_timeout": 0}]
)
def test_postgres_options_are_checked(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        store_from_url("postgresql://u@h/db", **kwargs)


async def test_open_store_creates_parent_directories(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "chat.db"
    store = await open_store(f"sqlite:///{path}")
    try:
        assert (await store.save(draft())).seq == 1
    finally:
        await store.close()
    assert path.exists()


async def test_relative_sqlite_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    async with await open_store("sqlite:///data/chat.db") as store:
        await store.save(draft())
    assert (tmp_path / "data" / "chat.db").exists()


async def test_memory_store_works_and_is_private() -> None:
    async with await open_store("sqlite:///:memory:") as a, await open_store("sqlite://") as b:
        assert (await a.save(draft())).seq == 1
        assert (await a.save(draft())).seq == 2
        assert await b.latest_seq("lobby") == 0


# -- the contract, on both backends ---------------------------------------------------------------


async def test_seq_starts_at_one_and_increments(store: BaseStore) -> None:
    d = draft(content="first")
    first = await store.save(d)
    assert (first.seq, first.room, first.message_id, first.content) == (
        1,
        "lobby",
        d.message_id,
        "first",
    )
    assert (first.from_user, first.from_username, first.to_user, first.origin_hub) == (
        "u1",
        "Ada",
        None,
        "hub-a",
    )
    assert [(await store.save(draft())).seq for _ in range(4)] == [2, 3, 4, 5]
    assert await store.latest_seq("lobby") == 5


async def test_rooms_are_sequenced_independently(store: BaseStore) -> None:
    for room in ["a", "b", "a", "a", "b", "c"]:
        await store.save(draft(room))
    assert [await store.latest_seq(r) for r in "abcd"] == [3, 2, 1, 0]
    assert seqs(await store.history("a")) == [1, 2, 3]
    assert {m.room for m in (await store.history("b")).messages} == {"b"}


async def test_timestamp_and_fields_round_trip(store: BaseStore) -> None:
    ts = datetime(2024, 5, 1, 12, 0, 0, 654321, tzinfo=timezone.utc)
    saved = await store.save(draft(content="héllo ✓ 🚀", timestamp=ts))
    [loaded] = (await store.history("lobby")).messages
    assert loaded == saved
    assert loaded.timestamp == ts and loaded.timestamp.utcoffset() == timedelta(0)
    assert loaded.content == "héllo ✓ 🚀"
    assert await store.get(saved.message_id) == saved
    assert await store.get("nope") is None


async def test_history_pages(store: BaseStore) -> None:
    for i in range(1, 11):
        await store.save(draft(content=f"m{i}"))

    latest = await store.history("lobby", limit=3)
    assert seqs(latest) == [8, 9, 10]
    assert [m.content for m in latest.messages] == ["m8", "m9", "m10"]
    assert latest.complete and latest.has_more and latest.latest_seq == 10

    older = await store.history("lobby", limit=3, before_seq=8)
    assert seqs(older) == [5, 6, 7] and older.has_more and older.complete
    oldest = await store.history("lobby", limit=5, before_seq=3)
    assert seqs(oldest) == [1, 2] and not oldest.has_more and oldest.complete

    forward = await store.history("lobby", limit=4, since_seq=2)
    assert seqs(forward) == [3, 4, 5, 6] and forward.has_more and forward.complete
    tail = await store.history("lobby", limit=4, since_seq=8)
    assert seqs(tail) == [9, 10] and not tail.has_more and tail.complete
    assert seqs(await store.history("lobby", since_seq=0)) == list(range(1, 11))
    nothing_new = await store.history("lobby", since_seq=10)
    assert nothing_new.messages == () and nothing_new.complete

    default = await store.history("lobby")
    assert seqs(default) == list(range(1, 11)) and not default.has_more

    empty = await store.history("nobody-here")
    assert empty.messages == () and empty.complete and empty.latest_seq == 0


async def test_paging_forward_collects_every_message(store: BaseStore) -> None:
    for _ in range(25):
        await store.save(draft())
    collected: list[int] = []
    cursor = 0
    while True:
        page = await store.history("lobby", limit=MAX_HISTORY_LIMIT // 10, since_seq=cursor)
        assert page.complete
        collected += seqs(page)
        if not page.has_more:
            break
        cursor = page.messages[-1].seq
    assert collected == list(range(1, 26))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"limit": 0},
        {"limit": MAX_HISTORY_LIMIT + 1},
        {"limit": True},
        {"limit": "5"},
        {"before_seq": -1},
        {"since_seq": 1.5},
        {"since_seq": 1, "before_seq": 5},
    ],
)
async def test_history_rejects_bad_arguments(store: BaseStore, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        await store.history("lobby", **kwargs)


async def test_history_limit_max_is_allowed(store: BaseStore) -> None:
    for _ in range(3):
        await store.save(draft())
    assert seqs(await store.history("lobby", limit=MAX_HISTORY_LIMIT)) == [1, 2, 3]


async def test_retention_and_the_complete_flag(make_store: MakeStore) -> None:
    store = await make_store(retention=5, retention_batch=1)
    for _ in range(12):
        await store.save(draft())
    page = await store.history("lobby", limit=100)
    assert seqs(page) == [8, 9, 10, 11, 12]
    assert not page.complete  # the newest 100 would include 1..7, which are gone

    missed = await store.history("lobby", since_seq=3)
    assert seqs(missed) == [8, 9, 10, 11, 12] and not missed.complete
    assert (await store.history("lobby", since_seq=7)).complete  # 8.. is all there
    assert (await store.history("lobby", limit=5)).complete
    assert not (await store.history("lobby", limit=6)).complete
    just_kept = await store.history("lobby", limit=1, before_seq=9)
    assert seqs(just_kept) == [8] and just_kept.complete
    gone = await store.history("lobby", limit=3, before_seq=8)
    assert gone.messages == () and not gone.complete
    assert await store.latest_seq("lobby") == 12  # trimming never rewinds the seq
    assert (await store.save(draft())).seq == 13


async def test_retention_trims_in_batches(make_store: MakeStore) -> None:
    store = await make_store(retention=10, retention_batch=5)
    for _ in range(14):
        await store.save(draft())
    assert seqs(await store.history("lobby", limit=100)) == list(range(1, 15))  # no batch yet
    await store.save(draft())  # seq 15: a batch point, keep the newest 10
    assert seqs(await store.history("lobby", limit=100)) == list(range(6, 16))
    for _ in range(4):
        await store.save(draft())
    # Between batch points a room holds up to retention + batch - 1 messages.
    assert len((await store.history("lobby", limit=100)).messages) == 14


async def test_retention_can_differ_per_room(make_store: MakeStore) -> None:
    store = await make_store(retention=3, retention_batch=1, retention_overrides={"keep": 100})
    for _ in range(6):
        await store.save(draft("keep"))
        await store.save(draft("trim"))
    assert seqs(await store.history("keep")) == [1, 2, 3, 4, 5, 6]
    assert seqs(await store.history("trim")) == [4, 5, 6]


async def test_direct_messages_have_their_own_room_and_seq(store: BaseStore) -> None:
    await store.save(draft("lobby"))
    m1 = await store.save(draft(to_user="u2", content="psst"))
    m2 = await store.save(draft(from_user="u2", from_username="Bob", to_user="u1", content="yes?"))
    await store.save(draft(from_user="u3", to_user="u1", content="other conversation"))
    assert m1.room == m2.room == dm_room("u1", "u2")
    assert (m1.seq, m2.seq) == (1, 2)
    assert (m1.to_user, m2.to_user) == ("u2", "u1")
    page = await store.direct_history("u2", "u1")
    assert [m.content for m in page.messages] == ["psst", "yes?"]
    assert page == await store.direct_history("u1", "u2")
    assert seqs(await store.direct_history("u1", "u2", since_seq=1)) == [2]
    assert await store.latest_seq("lobby") == 1


async def test_save_is_idempotent_on_message_id(store: BaseStore) -> None:
    d = draft(content="once")
    first = await store.save(d)
    again = await store.save(d)
    assert again == first
    assert await store.latest_seq("lobby") == 1
    assert (await store.save(draft())).seq == 2  # the retry consumed no seq
    with pytest.raises(ConflictError):
        await store.save(draft(content="something else", message_id=d.message_id))


async def test_concurrent_saves_of_one_message_store_it_once(make_store: MakeStore) -> None:
    hub_a, hub_b = await make_store(), await make_store()
    d = draft()
    results = await asyncio.gather(*(s.save(d) for s in [hub_a, hub_b] * 5))
    assert {r.seq for r in results} == {1} and len(set(results)) == 1
    assert (await hub_a.save(draft())).seq == 2


@pytest.mark.timeout(60)
async def test_concurrent_saves_from_two_hubs_are_gap_free(make_store: MakeStore) -> None:
    hubs = [await make_store(), await make_store()]
    per_task, tasks = 20, 10

    async def writer(n: int) -> list[int]:
        hub = hubs[n % 2]
        return [(await hub.save(draft(content=f"{n}-{i}"))).seq for i in range(per_task)]

    results = await asyncio.gather(*(writer(n) for n in range(tasks)))
    total = per_task * tasks
    assert sorted(s for r in results for s in r) == list(range(1, total + 1))
    for r in results:
        assert r == sorted(r)  # each writer sees its own messages in order
    stored: list[StoredMessage] = []
    cursor = 0
    while cursor < total:
        page = await hubs[1].history("lobby", limit=MAX_HISTORY_LIMIT, since_seq=cursor)
        stored += page.messages
        cursor = page.messages[-1].seq
    assert [m.seq for m in stored] == list(range(1, total + 1))
    assert len({m.message_id for m in stored}) == total


async def test_purge_resets_a_room(store: BaseStore) -> None:
    for room in ["a", "a", "b"]:
        await store.save(draft(room))
    await store.purge("a")
    assert await store.latest_seq("a") == 0
    assert (await store.history("a")).messages == ()
    assert (await store.save(draft("a"))).seq == 1
    assert await store.latest_seq("b") == 1


async def test_lifecycle_ping_and_closed_store(store: BaseStore) -> None:
    assert await store.ping()
    await store.open()  # idempotent
    await store.close()
    await store.close()  # idempotent
    assert not await store.ping()
    with pytest.raises(DependencyError):
        await store.save(draft())
    with pytest.raises(DependencyError):
        await store.history("lobby")


async def test_data_survives_reopening(make_store: MakeStore) -> None:
    first = await make_store()
    saved = await first.save(draft(content="durable"))
    await first.close()
    second = await make_store()
    assert (await second.history("lobby")).messages == (saved,)
    assert (await second.save(draft())).seq == 2


async def test_concurrent_opens_make_one_connection(
    store_config: tuple[str, dict[str, Any]],
) -> None:
    url, options = store_config
    store = store_from_url(url, **options)
    await asyncio.gather(store.open(), store.open(), store.open())
    try:
        assert (await store.save(draft())).seq == 1
    finally:
        await store.close()
    assert not await store.ping()
