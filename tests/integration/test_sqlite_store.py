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
        assert store.schema_version == len(MIGRATIONS) == 2
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert user_version(path) == 2
    # Opening an up-to-date file again changes nothing.
    async with SQLiteStore(path) as store:
        assert await store.latest_seq("lobby") == 1
    assert user_version(path) == 2


async def test_an_old_schema_is_migrated_and_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    async with SQLiteStore(path) as old:
        saved = await old.save(draft(content="from v1"))
    async with StoreV2(path) as new:
        assert user_version(path) == len(MIGRATIONS) + 1
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
    assert user_version(path) == len(MIGRATIONS)
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

    async def main(path, name, count, retention):
        async with SQLiteStore(path, busy_timeout=30, retention=retention) as store:
            print("ready", flush=True)
            sys.stdin.readline()  # start line: all writers begin together
            for i in range(count):
                d = MessageDraft(room="lobby", from_user=name, from_username=name, content=str(i))
                await store.save(d)

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
    """
)


async def write_from_two_processes_too(
    store: SQLiteStore, path: Path, per_writer: int, retention: int
) -> None:
    """Two writer processes and ``store`` each save ``per_writer`` messages at the same time."""
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _WRITER,
            str(path),
            f"proc{n}",
            str(per_writer),
            str(retention),
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


@pytest.mark.timeout(120)
async def test_several_processes_share_one_file_without_gaps(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    per_writer = 40
    store = SQLiteStore(path, busy_timeout=30)
    async with store:
        await write_from_two_processes_too(store, path, per_writer, retention=10_000)
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


_OPENER = textwrap.dedent(
    """
    import asyncio, sys
    from wslab.integration.sqlite_store import SQLiteStore

    async def main(folder, files):
        for n in range(files):
            store = SQLiteStore(f"{folder}/new-{n}.db")
            print("ready", flush=True)
            sys.stdin.readline()  # both processes open the file together
            await store.open()
            await store.close()
            print("opened", flush=True)

    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
    """
)


@pytest.mark.timeout(120)
async def test_two_processes_opening_one_new_file_together_both_open(tmp_path: Path) -> None:
    # Two hubs started at once on a fresh file (as the cross-hub benchmark and a notebook do):
    # switching a new file to WAL answered "database is locked" without waiting, one open in
    # five failed. Each of 20 new files is opened by both processes at the same moment.
    files = 20
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _OPENER,
            str(tmp_path),
            str(files),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    for _ in range(files):
        for proc in procs:
            assert proc.stdout is not None
            assert await proc.stdout.readline() == b"ready\n"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
        for proc in procs:
            assert proc.stdout is not None and proc.stderr is not None
            line = await proc.stdout.readline()
            if line != b"opened\n":
                await proc.wait()
                raise AssertionError((await proc.stderr.read()).decode()[-800:])
    assert [await proc.wait() for proc in procs] == [0, 0]


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


@pytest.mark.timeout(120)
async def test_several_processes_trimming_one_room_never_reuse_a_seq(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    per_writer, keep = 40, 7  # every save past the seventh is a trim point, in every process
    store = SQLiteStore(path, busy_timeout=30, retention=keep)
    async with store:
        await write_from_two_processes_too(store, path, per_writer, retention=keep)
        total = 3 * per_writer
        page = await store.history("lobby", limit=100, since_seq=0)
        seqs = [m.seq for m in page.messages]
        assert seqs == list(range(seqs[0], total + 1))  # no gap, the newest kept
        assert len(seqs) >= keep and seqs[0] > 1
        assert not page.complete  # the deleted ones are reported, not silently missing
        assert await store.latest_seq("lobby") == total
        assert (await store.save(draft(content="next"))).seq == total + 1


def make_v1_file(path: Path) -> dict[str, str]:
    """A file as schema version 1 left it: a counter row per room, bumped on every save.

    ``lobby`` had seqs 1-6 and retention deleted 1-3; ``dm`` holds 1-2; ``emptied`` counted to 5
    and lost its messages; returns the message ids by seq label.
    """
    ids = {f"lobby{n}": f"id-lobby-{n}" for n in (4, 5, 6)} | {"dm1": "id-dm-1", "dm2": "id-dm-2"}
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.executescript(MIGRATIONS[0])
        conn.execute("PRAGMA user_version = 1")
        conn.executemany(
            "INSERT INTO room_seq (room, seq, trimmed_through) VALUES (?, ?, ?)",
            [("lobby", 6, 3), ("dm", 2, 0), ("emptied", 5, 0)],
        )
        for label, message_id in ids.items():
            room, seq = label[:-1], int(label[-1])
            conn.execute(
                "INSERT INTO messages (message_id, room, seq, from_user, from_username, to_user,"
                " content, ts_us, origin_hub) VALUES (?, ?, ?, 'u1', 'Ada', NULL, ?, ?, '')",
                (message_id, room, seq, f"{room} {seq}", 1_700_000_000_000_000 + seq),
            )
    finally:
        conn.close()
    return ids


async def test_a_version_1_file_is_migrated_and_keeps_its_messages_seqs_and_trims(
    tmp_path: Path,
) -> None:
    path = tmp_path / "chat.db"
    ids = make_v1_file(path)
    async with SQLiteStore(path) as store:
        assert user_version(path) == 2
        page = await store.history("lobby", since_seq=0)
        assert [(m.seq, m.content) for m in page.messages] == [(n, f"lobby {n}") for n in (4, 5, 6)]
        assert not page.complete  # 1-3 were deleted by retention, and it is still known
        assert (await store.history("lobby", since_seq=3)).complete
        assert await store.latest_seq("lobby") == 6
        assert await store.latest_seq("emptied") == 5
        stored = await store.get(ids["dm2"])
        assert stored is not None and stored.seq == 2 and stored.content == "dm 2"
        assert stored.timestamp.microsecond == 2
        # New saves go on from each room's seq: none is reused, not even in the emptied room.
        assert (await store.save(draft(content="seven"))).seq == 7
        assert (await store.save(draft(room="dm"))).seq == 3
        assert (await store.save(draft(room="emptied"))).seq == 6
        # A resend of a message stored before the migration gets it back and takes no seq.
        resend = MessageDraft(
            room="lobby", from_user="u1", from_username="Ada", content="lobby 5",
            message_id=ids["lobby5"],
        )  # fmt: skip
        assert (await store.save(resend)).seq == 5
        assert (await store.save(draft(content="eight"))).seq == 8
    with sqlite3.connect(path) as conn:
        table = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'messages'").fetchone()
        assert "WITHOUT ROWID" in table[0]
        assert conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 5 + 4


async def test_a_release_still_counting_in_room_seq_fails_on_a_migrated_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "chat.db"
    old = sqlite3.connect(path, isolation_level=None)  # opened before the migration, kept open
    try:
        old.executescript(MIGRATIONS[0])
        old.execute("PRAGMA user_version = 1")
        async with SQLiteStore(path) as store:
            await store.save(draft())
        # Version 1's counter statement: it must fail, not number from a stale counter.
        with pytest.raises(sqlite3.OperationalError, match="seq"):
            old.execute(
                "INSERT INTO room_seq (room, seq) VALUES ('lobby', 1) "
                "ON CONFLICT (room) DO UPDATE SET seq = seq + 1 RETURNING seq"
            ).fetchall()
    finally:
        old.close()


async def test_two_stores_on_one_file_number_one_room_without_gaps(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    async with (
        SQLiteStore(path, retention=5, retention_batch=2) as one,
        SQLiteStore(path, retention=5, retention_batch=2) as two,
    ):
        saved = []
        for i in range(15):  # alternately, each on its own connection, trimming as it goes
            saved.append(await (one if i % 2 else two).save(draft(content=f"m{i}")))
            await asyncio.sleep(ALONE_GAP * 2)  # alone: written at once, in the loop
        saved += await asyncio.gather(  # and both at once, in batches
            *(store.save(draft(content=f"b{i}")) for i in range(10) for store in (one, two))
        )
        assert sorted(m.seq for m in saved) == list(range(1, 36))
        page = await two.history("lobby", since_seq=0)
        seqs = [m.seq for m in page.messages]
        assert seqs == list(range(seqs[0], 36)) and 5 <= len(seqs) < 5 + 2
        assert not page.complete
        assert await one.latest_seq("lobby") == 35


async def test_a_lone_save_leaves_the_write_lock_free(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    async with SQLiteStore(path) as store:
        other = sqlite3.connect(path, isolation_level=None, timeout=0)
        try:
            for content in ("new", "resent"):
                await asyncio.sleep(ALONE_GAP * 2)
                first = draft(content=content)
                await store.save(first)
                await store.save(first)  # a resend: a failed insert and a lookup
                other.execute("BEGIN IMMEDIATE")  # at once: nothing of the saves holds the lock
                other.execute("ROLLBACK")
        finally:
            other.close()


async def test_a_trim_that_finds_the_lock_taken_is_done_on_the_database_thread(
    tmp_path: Path,
) -> None:
    path = tmp_path / "chat.db"
    store = SQLiteStore(path, retention=3, retention_batch=1)
    async with store:
        for i in range(3):
            await store.save(draft(content=f"m{i}"))
        other = sqlite3.connect(path, isolation_level=None, timeout=0)
        try:
            assert store._sync is not None

            def take_the_lock_before_the_trim(sql: str) -> None:
                # Runs as the loop's connection starts a statement: the trim's BEGIN comes
                # right after the message was committed, and now finds the lock taken.
                if sql == "BEGIN IMMEDIATE" and not other.in_transaction:
                    other.execute("BEGIN IMMEDIATE")

            store._sync.set_trace_callback(take_the_lock_before_the_trim)
            await asyncio.sleep(ALONE_GAP * 2)
            saved = await store.save(draft(content="m3"))  # a trim point: delete seq 1
            store._sync.set_trace_callback(None)
            assert saved.seq == 4 and other.in_transaction  # stored, though the trim waits
            other.execute("ROLLBACK")
        finally:
            other.close()
        for _ in range(200):
            page = await store.history("lobby", since_seq=0)
            if page.messages[0].seq > 1:
                break
            await asyncio.sleep(0.01)
        assert [m.seq for m in page.messages] == [2, 3, 4]
        assert not page.complete
        assert (await store.save(draft(content="m4"))).seq == 5


async def test_trims_waiting_for_the_lock_are_one_per_room_and_the_latest_cutoff_wins(
    tmp_path: Path,
) -> None:
    path = tmp_path / "chat.db"
    store = SQLiteStore(path, retention=3, retention_batch=1, busy_timeout=10)
    async with store:
        for i in range(3):
            await store.save(draft(content=f"m{i}"))
        other = sqlite3.connect(path, isolation_level=None, timeout=0)
        try:
            assert store._sync is not None

            def take_the_lock_before_the_trim(sql: str) -> None:
                if sql == "BEGIN IMMEDIATE" and not other.in_transaction:
                    other.execute("BEGIN IMMEDIATE")

            store._sync.set_trace_callback(take_the_lock_before_the_trim)
            # Five trim points while another writer keeps the lock: one trim waits, not five.
            for i in range(3, 8):
                await asyncio.sleep(ALONE_GAP * 2)
                if other.in_transaction:
                    other.execute("ROLLBACK")  # let this save in; the trim finds it taken again
                await store.save(draft(content=f"m{i}"))
            store._sync.set_trace_callback(None)
            assert len(store._trims) == 1
            other.execute("ROLLBACK")
        finally:
            other.close()
        await asyncio.gather(*store._trims.values())
        await store.save(draft(content="m8"))  # the next trim point deletes up to its cutoff
        page = await store.history("lobby", since_seq=0)
        assert [m.seq for m in page.messages] == [7, 8, 9]
        assert not page.complete
