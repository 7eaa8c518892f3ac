"""What storing one chat message costs: the SQLite store's save path before and after version 2.

Before (schema version 1), a save was a transaction of its own: ``BEGIN IMMEDIATE``, an upsert
that bumped the room's row in ``room_seq`` (``RETURNING seq``), the ``INSERT`` and ``COMMIT``:
four statements and four pages written to the WAL (the row, its two indexes, the counter row).
After (version 2), a save alone is one autocommit ``INSERT`` that takes the next seq from the
room's newest message (``room_seq`` is written only when retention deletes messages), into a
table kept in ``(room, seq)`` order: one statement, two pages (the row, the message_id index);
and, with fewer pages a save, a WAL checkpoint every 350 saves instead of 200.

Both run in this process, in the same event loop, on fresh files, alternating old and new (ABBA
order over ``--rounds`` rounds, so drift and background load hurt both alike). The old path is
a copy of the old statements kept here, :class:`OldStore`; the new one is the store itself.
Cases, each ``--saves`` saves into a fresh file (one room unless said), drafts made before the
clock starts:

- **lone**: each save the way the hub writes one that comes alone, ``save()`` writing it at once
  in the loop, followed by one turn of the loop (where the WAL checkpoint the store schedules
  every :data:`CHECKPOINT_EVERY` saves runs on the database thread, as in the hub);
- **lone, retention**: the same with ``retention=100`` and ``retention_batch=10``, a trim every
  tenth save;
- **lone, 20 rooms**: the same, the saves taking turns over 20 rooms (each room's newest rows
  in the middle of the table and its index, not at their ends);
- **lone, 20 rooms, 100k**: the same into a file that already holds 100,000 messages (5,000 in
  quick runs), copied from a template made once per side and synced before the run (the
  indexes no longer fit SQLite's page cache; pages come from the OS cache);
- **batch**: the saves of one loop turn, ``--batch`` per transaction, as a burst is written;
- **loop only** (the floor): the same turns of the loop and calls, with no save.

CPU is ``time.process_time()`` of this process (every thread: the checkpoints run on
aiosqlite's), per save. The table gives the median of each side, its spread (min-max), and the
ratio new / old of the medians, also net of the loop-only floor. After each run the file is
checked: each room's seqs 1..N without a gap.

    python benchmarks/bench_store_save.py [--saves 1500] [--rounds 11] [--batch 16] [--quick]

A measurement, not a test: nothing here asserts on the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import shutil
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, ClassVar

from wslab.foundation.errors import WslabError
from wslab.integration.sqlite_store import (
    CHECKPOINT_EVERY,
    MIGRATIONS,
    SQLiteStore,
    _is_busy,
    _row_to_message,
    _stored,
    _to_us,
)
from wslab.integration.store import MessageDraft, StoredMessage

ROOM = "bench"
_COLUMNS = "message_id, room, seq, from_user, from_username, to_user, content, ts_us, origin_hub"


#: The old path's checkpoint cadence (four or five pages a save then, ~1,000 pages a checkpoint).
OLD_CHECKPOINT_EVERY = 200


class OldStore(SQLiteStore):
    """The store's write path as it was at schema version 1 (a copy, for comparison only)."""

    migrations: ClassVar[tuple[str, ...]] = MIGRATIONS[:1]

    def _write_here(self, drafts: list[MessageDraft]) -> list[StoredMessage | BaseException] | None:
        """The loop's write path with the old checkpoint cadence (errors raise: none expected)."""
        assert self._sync is not None
        results: list[StoredMessage | BaseException]
        try:
            results = self._save_all(self._sync, drafts)
        except sqlite3.Error as exc:
            if _is_busy(exc) and not self._sync.in_transaction:
                return None
            raise
        self._since_checkpoint += len(drafts)
        if self._since_checkpoint >= OLD_CHECKPOINT_EVERY and self._checkpoint is None:
            self._since_checkpoint = 0
            self._checkpoint = asyncio.ensure_future(self._checkpoint_wal())
        return results

    def _save_all(
        self, conn: sqlite3.Connection, drafts: list[MessageDraft]
    ) -> list[StoredMessage | BaseException]:
        """Every save a transaction: BEGIN IMMEDIATE, the counter, the insert, COMMIT."""
        results: list[StoredMessage | BaseException] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for draft in drafts:
                try:
                    results.append(self._old_insert(conn, draft))
                    continue
                except sqlite3.IntegrityError:
                    row = conn.execute(
                        f"SELECT {_COLUMNS} FROM messages WHERE message_id = ?",
                        (draft.message_id,),
                    ).fetchone()
                    if row is None:
                        raise
                    conn.execute(
                        "UPDATE room_seq SET seq = seq - 1 WHERE room = ?", (draft.storage_room,)
                    )
                try:
                    results.append(self.existing_or_conflict(_row_to_message(tuple(row)), draft))
                except WslabError as error:
                    results.append(error)
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        return results

    def _old_insert(self, conn: sqlite3.Connection, draft: MessageDraft) -> StoredMessage:
        """Bump the room's counter, insert the row with it, trim: in the caller's transaction."""
        room = draft.storage_room
        seq = int(
            conn.execute(
                "INSERT INTO room_seq (room, seq) VALUES (?, 1) "
                "ON CONFLICT (room) DO UPDATE SET seq = seq + 1 RETURNING seq",
                (room,),
            ).fetchone()[0]
        )
        conn.execute(
            f"INSERT INTO messages ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                draft.message_id,
                room,
                seq,
                draft.from_user,
                draft.from_username,
                draft.to_user,
                draft.content,
                _to_us(draft.timestamp),
                draft.origin_hub,
            ),
        )
        cutoff = self.trim_cutoff(room, seq)
        if cutoff is not None:
            conn.execute("DELETE FROM messages WHERE room = ? AND seq <= ?", (room, cutoff))
            conn.execute(
                "UPDATE room_seq SET trimmed_through = max(trimmed_through, ?) WHERE room = ?",
                (cutoff, room),
            )
        return _stored(draft, room, seq)


def drafts(count: int, rooms: int = 1) -> list[MessageDraft]:
    """Chat messages as the hub stores them (an id, a timestamp, 64 characters of text), taking
    turns over ``rooms`` rooms."""
    return [
        MessageDraft(
            room=f"{ROOM}{i % rooms}", from_user="u1", from_username="Ada", content=f"{i:064d}"
        )
        for i in range(count)
    ]


async def lone(store: SQLiteStore | None, batch: list[MessageDraft], size: int) -> None:
    """Each save alone, written at once inside ``save()``, then one turn of the loop."""
    for draft in batch:
        if store is not None:
            store._last_save = -math.inf  # alone, whatever the clock says
            await store.save(draft)
        await asyncio.sleep(0)


async def batched(store: SQLiteStore | None, batch: list[MessageDraft], size: int) -> None:
    """``size`` saves per transaction, as a burst of one loop turn is written."""
    for start in range(0, len(batch), size):
        if store is not None:
            results = store._write_here(batch[start : start + size])
            assert results is not None and not any(isinstance(r, BaseException) for r in results)
        await asyncio.sleep(0)


Case = Callable[[SQLiteStore | None, list[MessageDraft], int], Coroutine[Any, Any, None]]
CASES: list[tuple[str, Case, dict[str, Any]]] = [
    ("lone", lone, {}),
    ("lone, retention", lone, {"retention": 100, "retention_batch": 10}),
    ("lone, 20 rooms", lone, {"rooms": 20}),
    ("lone, 20 rooms, 100k", lone, {"rooms": 20, "history": 100_000}),
    ("batch", batched, {}),
]


async def make_template(side: str, path: Path, rows: int, rooms: int) -> None:
    """A file of ``side``'s schema already holding ``rows`` messages over ``rooms`` rooms."""
    store = OldStore(path) if side == "old" else SQLiteStore(path)
    await store.open()  # the schema, by the store's own migrations
    await store.close()
    per_room = rows // rooms
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("BEGIN")
        conn.executemany(
            f"INSERT INTO messages ({_COLUMNS}) VALUES (?, ?, ?, 'u1', 'Ada', NULL, ?, 0, '')",
            (
                (uuid.uuid4().hex, f"{ROOM}{i % rooms}", i // rooms + 1, f"{i:064d}")
                for i in range(per_room * rooms)
            ),
        )
        if side == "old":  # schema 1 counted in room_seq; schema 2 reads the messages
            conn.executemany(
                "INSERT INTO room_seq (room, seq) VALUES (?, ?)",
                ((f"{ROOM}{r}", per_room) for r in range(rooms)),
            )
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def copy_synced(source: Path, target: Path) -> None:
    """Copy a template and sync it, so no run pays for another file's writeback."""
    shutil.copyfile(source, target)
    fd = os.open(target, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


async def run(
    side: str, case: Case, options: dict[str, Any], folder: Path, saves: int, size: int
) -> float:
    """CPU microseconds per save of one run of ``case`` by ``side`` on a fresh file."""
    path = folder / f"{side}-{time.monotonic_ns()}.db"
    options = dict(options)
    rooms = options.pop("rooms", 1)
    history = options.pop("history", 0)
    batch = drafts(saves, rooms)
    store: SQLiteStore | None = None
    if side != "floor":
        if history:
            copy_synced(folder / f"{side}-{history}.template", path)
        store = (OldStore if side == "old" else SQLiteStore)(path, **options)
        await store.open()
    try:
        started = time.process_time()
        await case(store, batch, size)
        took = time.process_time() - started
    finally:
        if store is not None:
            await store.close()
    if store is not None:
        with sqlite3.connect(path) as conn:
            for room in {draft.room for draft in batch}:
                seqs = [
                    r[0]
                    for r in conn.execute(
                        "SELECT seq FROM messages WHERE room = ? ORDER BY seq", (room,)
                    )
                ]
                last = history // rooms + sum(draft.room == room for draft in batch)
                assert seqs == list(range(seqs[0], last + 1)), f"{side}: seqs with a gap"
                assert "retention" in options or seqs[0] == 1, f"{side}: messages missing"
    return took / saves * 1e6


def spread(values: list[float]) -> str:
    """The range of a side's runs."""
    return f"{min(values):.1f}-{max(values):.1f}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--saves", type=int, help="saves per run (default 1500)")
    parser.add_argument("--rounds", type=int, help="rounds, each old and new (default 11)")
    parser.add_argument("--batch", type=int, default=16, help="saves per transaction (batch)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2 rounds, 200 saves")
    args = parser.parse_args()
    saves = args.saves or (200 if args.quick else 1500)
    rounds = args.rounds or (2 if args.quick else 11)
    print(
        f"SQLite {sqlite3.sqlite_version}; {saves} saves per run, {rounds} rounds, "
        f"batch {args.batch}, a checkpoint every {OLD_CHECKPOINT_EVERY} (old) and "
        f"{CHECKPOINT_EVERY} (new) saves; CPU µs per save"
    )
    header = f"{'case':<16} {'old':>8} {'new':>8} {'floor':>7} {'new/old':>8} {'net':>6}  spread"
    print(header)
    with tempfile.TemporaryDirectory(prefix="bench-store-") as folder:
        for name, case, options in CASES:
            history = options.get("history", 0) // (20 if args.quick else 1)
            if history:
                options = {**options, "history": history}
                for side in ("old", "new"):
                    template = Path(folder) / f"{side}-{history}.template"
                    await make_template(side, template, history, options["rooms"])
            times: dict[str, list[float]] = {"old": [], "new": [], "floor": []}
            for number in range(rounds):
                order = ["old", "new", "floor"] if number % 2 == 0 else ["floor", "new", "old"]
                for side in order:
                    times[side].append(
                        await run(side, case, options, Path(folder), saves, args.batch)
                    )
            old, new, floor = (statistics.median(times[s]) for s in ("old", "new", "floor"))
            net = (new - floor) / (old - floor) if old > floor else math.nan
            print(
                f"{name:<21} {old:>8.1f} {new:>8.1f} {floor:>7.1f} {new / old:>7.2f}x "
                f"{net:>5.2f}x  old {spread(times['old'])}, new {spread(times['new'])}"
            )
    print("new/old: ratio of the medians; net: the same less the loop-only floor on both sides")


if __name__ == "__main__":
    asyncio.run(main())
