"""SQLiteStore specifics: pragmas, schema versions and migrations, locks, several processes."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import sys
import textwrap
from pathlib import Path

import pytest

from wslab.foundation.errors import ConflictError, DependencyError
from wslab.integration.sqlite_store import ALONE_GAP, MIGRATIONS, SQLiteStore
from wslab.integration.store import MessageDraft


def draft(room: str = "lobby", content: str = "hi") -> MessageDraft:
    return MessageDraft(room=room, from_user="u1", from_username="Ada", content=content)


def user_version(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


class StoreV2(SQLiteStore):
    """The store as a later release would ship it: one migration more."""

    migrations = (*MIGRATIONS, "CREATE INDEX messages_by_sender ON messages (from_user);")


class BrokenMigration(SQLiteStore):
    """A release whose new migration fails half way."""

    migrations = (
        *MIGRATIONS,
        "CREATE TABLE half_done (x INTEGER);\nCREATE TABLE messages (x INTEGER);",
    )


async def test_wal_mode_and_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    async with SQLiteStore(path) as store:
        await store.save(draft())
        assert store.schema_version == len(MIGRATIONS) == 1
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert user_version(path) == 1
    # Opening an up-to-date file again changes nothing.
    async with SQLiteStore(path) as store:
        assert await store.latest_seq("lobby") == 1
    assert user_version(path) == 1


async def test_an_old_schema_is_migrated_and_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    async with SQLiteStore(path) as old:
        saved = await old.save(draft(content="from v1"))
    async with StoreV2(path) as new:
        assert user_version(path) == 2
        assert (await new.history("lobby")).messages == (saved,)
        assert (await new.save(draft())).seq == 2
    with sqlite3.connect(path) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert "messages_by_sender" in names


async def test_a_failed_migration_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    async with SQLiteStore(path) as store:
        await store.save(draft())
    with pytest.raises(DependencyError):
        await BrokenMigration(path).open()
    assert user_version(path) == 1
    with sqlite3.connect(path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "half_done" not in tables
    async with SQLiteStore(path) as store:
        assert (await store.save(draft())).seq == 2


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    async with StoreV2(path):
        pass
    with pytest.raises(DependencyError, match="newer"):
        await SQLiteStore(path).open()


async def test_a_file_that_is_not_a_database_is_a_safe_dependency_error(tmp_path: Path) -> None:
    path = tmp_path / "secret-dir" / "chat.db"
    path.parent.mkdir()
    path.write_bytes(b"this is not an SQLite database file, not at all" * 20)
    with pytest.raises(DependencyError) as info:
        await SQLiteStore(path).open()
    assert "secret-dir" not in str(info.value)
    assert isinstance(info.value.__cause__, sqlite3.DatabaseError)


async def test_a_writer_holding_the_lock_makes_save_fail_then_recover(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    async with SQLiteStore(path, busy_timeout=0.05) as store:
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            with pytest.raises(DependencyError) as info:
                await store.save(draft())
            assert isinstance(info.value.__cause__, sqlite3.OperationalError)
            other.execute("ROLLBACK")
        finally:
            other.close()
        assert (await store.save(draft())).seq == 1  # the failed attempt consumed no seq


async def test_cancelled_saves_leave_no_gap_and_no_open_transaction(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "chat.db") as store:
        for spins in range(12):
            task = asyncio.create_task(store.save(draft()))
            for _ in range(spins):
                await asyncio.sleep(0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        final = await store.save(draft())
        page = await store.history("lobby", limit=100)
        assert [m.seq for m in page.messages] == list(range(1, final.seq + 1))


_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from wslab.integration.sqlite_store import SQLiteStore
    from wslab.integration.store import MessageDraft

    async def main(path, name, count):
        async with SQLiteStore(path, busy_timeout=30) as store:
            print("ready", flush=True)
            sys.stdin.readline()  # start line: all writers begin together
            for i in range(count):
                d = MessageDraft(room="lobby", from_user=name, from_username=name, content=str(i))
                await store.save(d)

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    """
)


@pytest.mark.timeout(120)
async def test_several_processes_share_one_file_without_gaps(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    per_writer = 40
    async with SQLiteStore(path, busy_timeout=30) as store:
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                _WRITER,
                str(path),
                f"proc{n}",
                str(per_writer),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            for n in range(2)
        ]
        for proc in procs:
            assert proc.stdout is not None and proc.stdin is not None
            assert await proc.stdout.readline() == b"ready\n"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
        for i in range(per_writer):  # this process writes too, at the same time
            await store.save(draft(content=str(i)))
        assert [await p.wait() for p in procs] == [0, 0]
        total = 3 * per_writer
        page = await store.history("lobby", limit=100, since_seq=0)
        rest = await store.history("lobby", limit=100, since_seq=100)
        got = [m.seq for m in page.messages + rest.messages]
        assert got == list(range(1, total + 1))
        senders = [m.from_user for m in page.messages + rest.messages]
        assert {s: senders.count(s) for s in set(senders)} == {
            "u1": per_writer,
            "proc0": per_writer,
            "proc1": per_writer,
        }


async def test_saves_of_one_loop_turn_share_a_transaction_and_fail_alone(tmp_path: Path) -> None:
    from wslab.foundation.errors import ConflictError

    async with SQLiteStore(tmp_path / "chat.db") as store:
        first = draft(content="one")
        await store.save(first)
        reused = MessageDraft(
            room="lobby", from_user="u1", from_username="Ada", content="other",
            message_id=first.message_id,
        )  # fmt: skip
        results = await asyncio.gather(
            *(store.save(draft(content=f"m{i}")) for i in range(20)),
            store.save(reused),
            store.save(first),  # an idempotent re-save: the stored message back
            return_exceptions=True,
        )
        stored, conflict, again = results[:20], results[20], results[21]
        assert [m.seq for m in stored] == list(range(2, 22))  # in order, no gap
        assert isinstance(conflict, ConflictError)
        assert again.seq == 1
        page = await store.history("lobby", limit=100)
        assert [m.content for m in page.messages] == ["one"] + [f"m{i}" for i in range(20)]


async def test_a_save_behind_a_lock_held_elsewhere_waits_and_later_saves_keep_their_order(
    tmp_path: Path,
) -> None:
    path = tmp_path / "chat.db"
    async with SQLiteStore(path, busy_timeout=10) as store:
        assert (await store.save(draft(content="before"))).seq == 1  # written in the loop
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            first = asyncio.create_task(store.save(draft(content="first")))
            for _ in range(3):
                await asyncio.sleep(0)  # its batch went to the thread, which waits for the lock
            second = asyncio.create_task(store.save(draft(content="second")))
            await asyncio.sleep(0.05)
            assert not first.done() and not second.done()
            other.execute("ROLLBACK")
            stored = await asyncio.gather(first, second)
        finally:
            other.close()
        assert [m.seq for m in stored] == [2, 3]  # the later save did not overtake
        assert (await store.save(draft(content="after"))).seq == 4
        page = await store.history("lobby", limit=10)
        assert [m.content for m in page.messages] == ["before", "first", "second", "after"]


async def test_the_wal_written_in_the_loop_is_checkpointed_into_the_file(tmp_path: Path) -> None:
    from wslab.integration.sqlite_store import CHECKPOINT_EVERY

    path = tmp_path / "chat.db"
    async with SQLiteStore(path) as store:
        empty = path.stat().st_size
        for i in range(CHECKPOINT_EVERY):
            await store.save(draft(content=f"m{i}"))
        for _ in range(100):
            if path.stat().st_size > empty:
                break
            await asyncio.sleep(0.01)
        assert path.stat().st_size > empty  # the pages reached the database file
        assert (await store.latest_seq("lobby")) == CHECKPOINT_EVERY


async def test_a_save_alone_is_written_without_suspending_its_caller(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "chat.db") as store:
        await asyncio.sleep(ALONE_GAP * 2)
        saving = store.save(draft(content="alone"))
        with pytest.raises(StopIteration) as done:
            saving.send(None)  # runs to its end at once: committed, no turn of the loop waited
        assert done.value.value.seq == 1
        # A burst right after it shares transactions per turn, in order, as before.
        burst = await asyncio.gather(*(store.save(draft(content=f"b{i}")) for i in range(5)))
        assert [m.seq for m in burst] == [2, 3, 4, 5, 6]
        assert (await store.latest_seq("lobby")) == 6


async def test_a_resend_or_a_conflict_leaves_no_gap_in_the_seqs(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "chat.db") as store:
        first = draft(content="one")
        assert (await store.save(first)).seq == 1
        assert (await store.save(first)).seq == 1  # the stored message back
        taken = MessageDraft(
            room="other", from_user="u1", from_username="Ada", content="x",
            message_id=first.message_id,
        )  # fmt: skip
        with pytest.raises(ConflictError):
            await store.save(taken)
        assert (await store.save(draft(content="two"))).seq == 2
        assert (await store.latest_seq("other")) == 0
        assert (await store.save(draft(room="other", content="o"))).seq == 1
