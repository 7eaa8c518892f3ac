"""SQLiteStore: the embedded default message store (aiosqlite, one file, nothing to install).

How it keeps the store's promises:

- **gap-free seq, also across processes**: a message's seq is one past its room's newest one,
  read and written by one ``INSERT`` (the newest seq is one step down the ``(room, seq)`` key).
  A statement that writes takes the database's write lock before it reads anything, so a save
  alone is that one statement in autocommit — a transaction of its own, as atomic as
  ``BEGIN IMMEDIATE`` … ``COMMIT`` around it and cheaper — and several saves share one
  ``BEGIN IMMEDIATE`` transaction; either way two processes sharing the file take turns on the
  lock instead of reading the same newest seq, and a save that fails leaves nothing behind (no
  counter to roll back). ``room_seq`` keeps, per room, how far retention deleted
  (``trimmed_through``) and the seq stored when it did (``seq_floor``, a lower bound of the
  next one), written only when messages are deleted: retention never deletes a room's newest
  message, so seqs are never reused after a trim. ``busy_timeout`` makes a writer wait for the
  lock rather than fail.
- **durability**: WAL journal with ``synchronous=NORMAL``. A committed message survives a crash
  of the process; a power loss or OS crash may lose the last few commits (WAL is synced at
  checkpoints, not on every commit). That is the usual trade for a chat history on one machine
  and makes each save a single ``write`` rather than an ``fsync``. The hub acks only after
  ``save`` returns, i.e. after the commit. Pass ``synchronous="FULL"`` to sync every commit.
- **one connection per store**: aiosqlite runs it on its own thread; an ``asyncio.Lock``
  serialises the store's operations on it (a connection has one transaction at a time). Readers
  in other processes are not blocked, thanks to WAL.
- **one transaction per loop turn for writes, written in the loop**: every ``save`` of one turn
  of the event loop goes into one transaction. For a file, that transaction runs on a second,
  synchronous connection in the event loop itself: with WAL and ``synchronous=NORMAL`` a commit
  is a ``write`` into the page cache (tens of microseconds), cheaper than the hop to aiosqlite's
  thread and back (a queue put, a thread wake-up, ``call_soon_threadsafe``, the GIL handed over
  twice), which cost more than the SQL itself. It never waits: its ``busy_timeout`` is 0, and a
  batch that finds the write lock taken (another process, a purge) goes to the database thread,
  which waits ``busy_timeout`` as before; later batches follow it there until it is done, so
  seqs keep the order of the saves. The WAL is checkpointed on the database thread (the
  synchronous connection never checkpoints: a checkpoint is where the ``fsync`` is). A
  ``":memory:"`` database (private to one connection), and one with ``synchronous`` FULL or
  EXTRA (a commit there is an ``fsync``, which must not stall the loop), always write on the
  thread, one hop per turn. Either way each save's result is ready when that transaction
  commits, so the ``ack`` still follows the commit. A draft that conflicts fails alone; a
  database error fails the whole batch (nothing of it stored). A save that comes **alone** (no
  other save in the last :data:`ALONE_GAP` seconds, nothing queued or on the thread) is written
  at once, inside ``save``: no future, no extra loop turn, the caller goes on without
  suspending; saves that come in a burst are batched per turn as above.
- **schema**: created and migrated by wslab, versioned with ``PRAGMA user_version``; the
  migrations run inside ``BEGIN IMMEDIATE`` so two processes opening one new file cannot race.
  Every process sharing a file must run the same schema version: an older release refuses a
  newer file, and one already running when the file is migrated fails its saves loudly (its
  counter column is gone) rather than counting wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

import aiosqlite

from wslab.foundation.errors import ConfigError, DependencyError, WslabError
from wslab.integration.store import (
    DEFAULT_HISTORY_LIMIT,
    DEFAULT_RETENTION,
    BaseStore,
    HistoryPage,
    MessageDraft,
    StoredMessage,
)

__all__ = ["MIGRATIONS", "SQLiteStore"]

log = logging.getLogger("wslab.store")

#: The schema, one script per version: MIGRATIONS[0] takes an empty file to version 1, and so on.
#: Append new versions; never edit a released one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE room_seq (
        room            TEXT PRIMARY KEY,
        seq             INTEGER NOT NULL,
        trimmed_through INTEGER NOT NULL DEFAULT 0  -- highest seq deleted by retention
    );
    CREATE TABLE messages (
        message_id    TEXT PRIMARY KEY,
        room          TEXT NOT NULL,
        seq           INTEGER NOT NULL,
        from_user     TEXT NOT NULL,
        from_username TEXT NOT NULL,
        to_user       TEXT,
        content       TEXT NOT NULL,
        ts_us         INTEGER NOT NULL,              -- microseconds since the epoch, UTC
        origin_hub    TEXT NOT NULL,
        UNIQUE (room, seq)                           -- also the index history pages read
    );
    """,
    # Version 2: fewer pages written per save. A save no longer bumps a counter: the next seq is
    # one past the room's newest message (or past room_seq's floor, written when retention
    # deletes messages); the column is renamed so that a release that still bumps it fails
    # loudly instead of counting from a stale value. And messages are stored in (room, seq)
    # order (WITHOUT ROWID), so an insert writes the row and the message_id index, not a rowid
    # table and two indexes; history pages read one range of the table.
    """
    ALTER TABLE room_seq RENAME COLUMN seq TO seq_floor;
    CREATE TABLE messages_v2 (
        message_id    TEXT NOT NULL,
        room          TEXT NOT NULL,
        seq           INTEGER NOT NULL,
        from_user     TEXT NOT NULL,
        from_username TEXT NOT NULL,
        to_user       TEXT,
        content       TEXT NOT NULL,
        ts_us         INTEGER NOT NULL,              -- microseconds since the epoch, UTC
        origin_hub    TEXT NOT NULL,
        PRIMARY KEY (room, seq)
    ) WITHOUT ROWID;
    INSERT INTO messages_v2
        SELECT message_id, room, seq, from_user, from_username, to_user, content, ts_us,
               origin_hub
        FROM messages ORDER BY room, seq;
    DROP TABLE messages;
    ALTER TABLE messages_v2 RENAME TO messages;
    CREATE UNIQUE INDEX messages_by_id ON messages (message_id);
    """,
)

_COLUMNS = "message_id, room, seq, from_user, from_username, to_user, content, ts_us, origin_hub"
#: The newest seq (0 if none) of the room in parameter ``{room}``: its newest message's (one
#: step down the ``(room, seq)`` key), or the floor kept in ``room_seq`` if that is higher
#: (it never is while retention keeps each room's newest message; the floor is what would
#: survive a delete of every message).
_LATEST = (
    "max(coalesce((SELECT seq FROM messages WHERE room = {room} ORDER BY seq DESC LIMIT 1), 0), "
    "coalesce((SELECT seq_floor FROM room_seq WHERE room = {room}), 0))"
)
#: One statement stores a draft with its room's next seq and returns that seq. Run outside a
#: transaction it is a transaction of its own that takes the write lock before it reads
#: (SQLite locks for writing when a writing statement starts), so two connections, in one
#: process or two, never read the same newest seq. A message_id already stored makes it fail
#: whole (IntegrityError): nothing written, no seq used. (``VALUES``, not ``SELECT``: an
#: ``INSERT ... SELECT`` that reads its own table first copies the row into a temporary table.)
_INSERT = (
    f"INSERT INTO messages ({_COLUMNS}) "
    f"VALUES (?1, ?2, {_LATEST.format(room='?2')} + 1, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING seq"
)
_SELECT_BY_ID = f"SELECT {_COLUMNS} FROM messages WHERE message_id = ?"
#: Retention: delete the room's messages up to the cutoff and remember it (the room, the seq
#: just stored, the cutoff), in one transaction so that a reader never sees the gap unmarked.
_TRIM = "DELETE FROM messages WHERE room = ? AND seq <= ?"
_TRIMMED = (
    "INSERT INTO room_seq (room, seq_floor, trimmed_through) VALUES (?, ?, ?) "
    "ON CONFLICT (room) DO UPDATE SET seq_floor = max(seq_floor, excluded.seq_floor), "
    "trimmed_through = max(trimmed_through, excluded.trimmed_through)"
)
_COUNTERS = (
    f"SELECT {_LATEST.format(room='?1')}, "
    "coalesce((SELECT trimmed_through FROM room_seq WHERE room = ?1), 0)"
)
_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
#: Saves written in one transaction at most (a turn with more starts another one at once).
MAX_BATCH = 256
#: A save this long (seconds) after the previous one is "alone": written at once, not batched.
ALONE_GAP = 0.001
#: Saves written by the loop's connection between two WAL checkpoints on the database thread
#: (about SQLite's own default of 1,000 pages: a lone save writes two or three, a page split
#: included; a checkpoint, two fsyncs, costs as much CPU as a few dozen saves).
CHECKPOINT_EVERY = 350


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _to_us(ts: datetime) -> int:
    delta = ts - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _from_us(us: int) -> datetime:
    seconds, micro = divmod(us, 1_000_000)
    return datetime.fromtimestamp(seconds, timezone.utc).replace(microsecond=micro)


def _params(draft: MessageDraft, room: str) -> tuple[Any, ...]:
    """The parameters of :data:`_INSERT` for ``draft`` (every save path writes it)."""
    return (
        draft.message_id,
        room,
        draft.from_user,
        draft.from_username,
        draft.to_user,
        draft.content,
        _to_us(draft.timestamp),
        draft.origin_hub,
    )


def _stored(draft: MessageDraft, room: str, seq: int) -> StoredMessage:
    """``draft`` as stored in ``room`` with ``seq``."""
    return StoredMessage(
        message_id=draft.message_id,
        room=room,
        seq=seq,
        from_user=draft.from_user,
        from_username=draft.from_username,
        to_user=draft.to_user,
        content=draft.content,
        timestamp=draft.timestamp,
        origin_hub=draft.origin_hub,
    )


def _row_to_message(row: tuple[Any, ...]) -> StoredMessage:
    return StoredMessage(
        message_id=row[0],
        room=row[1],
        seq=row[2],
        from_user=row[3],
        from_username=row[4],
        to_user=row[5],
        content=row[6],
        timestamp=_from_us(row[7]),
        origin_hub=row[8],
    )


class SQLiteStore(BaseStore):
    """The message store on one SQLite file (or ``":memory:"``, private to this store)."""

    backend_name = "SQLite"
    #: The schema migrations this class applies (a subclass may extend it).
    migrations: ClassVar[tuple[str, ...]] = MIGRATIONS

    def __init__(
        self,
        path: str | Path,
        *,
        retention: int = DEFAULT_RETENTION,
        retention_overrides: Mapping[str, int] | None = None,
        retention_batch: int | None = None,
        busy_timeout: float = 5.0,
        synchronous: str = "NORMAL",
    ) -> None:
        """``busy_timeout`` (seconds) is how long a write waits for another process's lock."""
        super().__init__(
            retention=retention,
            retention_overrides=retention_overrides,
            retention_batch=retention_batch,
        )
        if not isinstance(busy_timeout, (int, float)) or not 0 <= busy_timeout <= 600:
            raise ConfigError("busy_timeout must be between 0 and 600 seconds")
        if str(synchronous).upper() not in _SYNCHRONOUS:
            raise ConfigError(f"synchronous must be one of {', '.join(_SYNCHRONOUS)}")
        self.path = str(path)
        self.busy_timeout = float(busy_timeout)
        self.synchronous = str(synchronous).upper()
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        # The saves of the current loop turn, written together at its end (at most MAX_BATCH
        # per transaction; more start the next one).
        self._batch: list[tuple[MessageDraft, asyncio.Future[StoredMessage]]] = []
        self._writers: set[asyncio.Future[None]] = set()
        self._last_save = 0.0  # time.monotonic() of the latest save (see ALONE_GAP)
        # The loop's own connection for writes (files only; see the module docstring).
        self._sync: sqlite3.Connection | None = None
        self._since_checkpoint = 0
        self._checkpoint: asyncio.Future[None] | None = None
        # Trims retried on the database thread, at most one per room: a later cutoff covers an
        # earlier one, so a room whose trim is pending skips the next (bounded by the rooms).
        self._trims: dict[str, asyncio.Future[None]] = {}

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    # -- lifecycle

    async def open(self) -> None:
        """Open the file (creating parent directories), set the pragmas, migrate the schema."""
        async with self._lock:  # two concurrent open() calls must not make two connections
            if self._db is None:
                self._db = await self._connect()

    async def _connect(self) -> aiosqlite.Connection:
        try:
            if self.path != ":memory:":
                Path(self.path).expanduser().parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we issue BEGIN/COMMIT ourselves (sqlite3's implicit
            # transactions would start with a deferred BEGIN and could deadlock two writers).
            connecting = aiosqlite.connect(self.path, isolation_level=None)
            # aiosqlite's worker thread is not a daemon: a script that ends without stopping
            # its hub would wait for it for ever at exit. Every acknowledged message is
            # committed before its ack, so ending the thread with the process loses nothing.
            thread = getattr(connecting, "_thread", None)
            if thread is not None and not thread.is_alive():
                thread.daemon = True
            db = await connecting
        except (OSError, sqlite3.Error) as exc:
            raise self.unavailable(exc, "open") from exc
        try:
            await db.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            if self.path != ":memory:":
                await self._enter_wal(db)
            await db.execute(f"PRAGMA synchronous = {self.synchronous}")
            await db.execute("PRAGMA foreign_keys = ON")
            await self._migrate(db)
            if self.path != ":memory:" and self.synchronous in ("OFF", "NORMAL"):
                self._sync = self._connect_sync()
        except BaseException as exc:
            await db.close()
            if isinstance(exc, sqlite3.Error):
                raise self.unavailable(exc, "open") from exc
            raise
        return db

    async def _enter_wal(self, db: aiosqlite.Connection) -> None:
        """Switch the file to WAL, waiting up to ``busy_timeout`` for another process's lock.

        Switching a new file's journal mode needs the file to itself, and SQLite answers
        "database is locked" at once instead of calling the busy handler: two hubs started
        together on one new file failed to open one time in five. So it is retried here.
        """
        deadline = time.monotonic() + self.busy_timeout
        delay = 0.005
        while True:
            try:
                await db.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() >= deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(2 * delay, 0.1)

    def _connect_sync(self) -> sqlite3.Connection:
        """The loop's write connection: never waits for a lock, never checkpoints."""
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            conn.execute("PRAGMA busy_timeout = 0")
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA wal_autocheckpoint = 0")
        except BaseException:
            conn.close()
            raise
        return conn

    async def close(self) -> None:
        """Close the connection (waits for a running operation to finish)."""
        for pending in [self._checkpoint, *self._trims.values()]:
            if pending is not None:
                with contextlib.suppress(Exception):
                    await pending
        async with self._lock:
            db, self._db = self._db, None
            sync, self._sync = self._sync, None
            if sync is not None:
                sync.close()
            if db is not None:
                await db.close()

    async def _migrate(self, db: aiosqlite.Connection) -> None:
        try:
            await db.execute("BEGIN IMMEDIATE")
            async with db.execute("PRAGMA user_version") as cur:
                row = await cur.fetchone()
            version = int(row[0]) if row else 0
            if version > len(self.migrations):
                raise DependencyError(
                    f"message store schema version {version} is newer than this wslab "
                    f"understands ({len(self.migrations)}); upgrade wslab"
                )
            for number, script in enumerate(self.migrations[version:], start=version + 1):
                # executescript() would COMMIT first; run the statements one by one instead,
                # so all pending migrations and the version bump are one transaction.
                for statement in _split_sql(script):
                    await db.execute(statement)
                await db.execute(f"PRAGMA user_version = {number}")
            await db.execute("COMMIT")
        except BaseException:
            await asyncio.shield(_rollback(db))
            raise

    def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            raise DependencyError(f"message store ({self.backend_name}) is not open")
        return self._db

    # -- writing

    async def save(self, draft: MessageDraft) -> StoredMessage:
        """Store ``draft`` with its room's next seq (idempotent on ``message_id``).

        Saves made in the same turn of the event loop share one transaction (module docstring).
        """
        self._conn()  # not open: DependencyError now, as before
        if not hasattr(self._db, "_execute"):  # an aiosqlite without it: one save at a time
            async with self._lock:
                db = self._conn()
                try:
                    return await self._save(db, draft)
                except sqlite3.Error as exc:
                    raise self.unavailable(exc, "save") from exc
        now = time.monotonic()
        alone = now - self._last_save >= ALONE_GAP
        self._last_save = now
        if alone and self._sync is not None and not self._batch and not self._writers:
            # Nothing to share a transaction with: written here and now (the module docstring).
            results = self._write_here([draft])
            if results is not None:
                (result,) = results
                if isinstance(result, BaseException):
                    raise result
                return result
            # The write lock is someone else's: the batch's way (the thread waits for it).
        loop = asyncio.get_running_loop()
        future: asyncio.Future[StoredMessage] = loop.create_future()
        self._batch.append((draft, future))
        if len(self._batch) == 1:
            loop.call_soon(self._start_batch)
        return await future

    def _start_batch(self) -> None:
        batch, self._batch = self._batch[:MAX_BATCH], self._batch[MAX_BATCH:]
        if self._batch:
            asyncio.get_running_loop().call_soon(self._start_batch)
        # In the loop unless a batch is still on the thread: this one must not overtake it.
        if self._sync is not None and not self._writers:
            results = self._write_here([draft for draft, _ in batch])
            if results is not None:
                _settle(batch, results)
                return
        writer = asyncio.ensure_future(self._write_batch(batch))
        self._writers.add(writer)
        writer.add_done_callback(self._writers.discard)

    async def _write_batch(
        self, batch: list[tuple[MessageDraft, asyncio.Future[StoredMessage]]]
    ) -> None:
        drafts = [draft for draft, _ in batch]
        try:
            async with self._lock:
                db = self._conn()
                # aiosqlite's one way to run a function on its thread: the whole transaction
                # in a single hop.
                results = await db._execute(self._save_all, db._conn, drafts)
        except sqlite3.Error as exc:
            results = []
            for _ in batch:  # one error each (a traceback is per raise), chained as before
                error = self.unavailable(exc, "save")
                error.__cause__ = exc
                results.append(error)
        except BaseException as exc:  # not open any more, cancelled (store closing)...
            results = [exc] * len(batch)
        _settle(batch, results)

    def _write_here(self, drafts: list[MessageDraft]) -> list[StoredMessage | BaseException] | None:
        """Write ``drafts`` on the loop's connection; None (nothing written) if the lock is taken."""
        assert self._sync is not None
        results: list[StoredMessage | BaseException]
        try:
            results = self._save_all(self._sync, drafts)
        except sqlite3.Error as exc:
            if _is_busy(exc) and not self._sync.in_transaction:
                return None  # the write lock is someone else's: the thread waits for it
            results = []
            for _ in drafts:  # one error each (a traceback is per raise), chained as before
                error = self.unavailable(exc, "save")
                error.__cause__ = exc
                results.append(error)
        self._since_checkpoint += len(drafts)
        if self._since_checkpoint >= CHECKPOINT_EVERY and self._checkpoint is None:
            self._since_checkpoint = 0
            self._checkpoint = asyncio.ensure_future(self._checkpoint_wal())
        return results

    async def _checkpoint_wal(self) -> None:
        """Copy the WAL into the database file, on the database thread (the fsync is there)."""
        try:
            async with self._lock:
                if self._db is not None:
                    await self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as exc:
            # The next one tries again (at most one per CHECKPOINT_EVERY saves, so this line is
            # as rare); the WAL only grows meanwhile.
            log.warning("WAL checkpoint of %s failed: %s", self.path, exc)
        finally:
            self._checkpoint = None

    def _save_all(
        self, conn: sqlite3.Connection, drafts: list[MessageDraft]
    ) -> list[StoredMessage | BaseException]:
        """Store ``drafts`` in order, in one transaction (in the loop or on the database thread).

        A draft alone is one statement and no explicit transaction: :data:`_INSERT` is atomic by
        itself, and ``BEGIN``/``COMMIT`` around it cost more than the insert.
        """
        if len(drafts) == 1:
            return [self._save_alone(conn, drafts[0])]
        results: list[StoredMessage | BaseException] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for draft in drafts:
                result, cutoff = self._insert_now(conn, draft)
                if cutoff is not None:
                    assert isinstance(result, StoredMessage)
                    _trim(conn, result.room, result.seq, cutoff)
                results.append(result)
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        return results

    def _save_alone(
        self, conn: sqlite3.Connection, draft: MessageDraft
    ) -> StoredMessage | WslabError:
        """Store one draft with one autocommit statement, then trim if its seq says so."""
        result, cutoff = self._insert_now(conn, draft)
        if cutoff is not None:
            assert isinstance(result, StoredMessage)
            # The message is committed: a trim that cannot run now fails nothing, it is retried
            # on the database thread (the loop's connection never waits for the lock) or left
            # to the next batch point, which deletes everything up to its own cutoff.
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    _trim(conn, result.room, result.seq, cutoff)
                    conn.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                if conn is self._sync and _is_busy(exc):
                    self._trim_later(result.room, result.seq, cutoff)
                else:
                    log.warning("retention trim of %s failed: %s", self.path, exc)
        return result

    def _insert_now(
        self, conn: sqlite3.Connection, draft: MessageDraft
    ) -> tuple[StoredMessage | WslabError, int | None]:
        """Insert ``draft`` with its room's next seq, or find the message it resends.

        Returns the save's result and the trim cutoff its new seq calls for (None: none, or
        nothing inserted). In the caller's transaction if there is one, else its own.
        """
        room = draft.storage_room
        # Inserted first, looked up only if its message_id is taken (a resend): the common case
        # is one statement. fetchall() runs the statement to its end, which commits it when
        # there is no transaction around it (a statement left half read would keep the lock).
        try:
            seq = int(conn.execute(_INSERT, _params(draft, room)).fetchall()[0][0])
        except sqlite3.IntegrityError:
            row = conn.execute(_SELECT_BY_ID, (draft.message_id,)).fetchone()
            if row is None:
                raise
            try:
                return self.existing_or_conflict(_row_to_message(tuple(row)), draft), None
            except WslabError as error:
                return error, None
        return _stored(draft, room, seq), self.trim_cutoff(room, seq)

    def _trim_later(self, room: str, seq: int, cutoff: int) -> None:
        """Run a retention trim on the database thread, which waits for the lock."""
        if room in self._trims:
            return  # the pending one, or the next batch point, deletes up to a later cutoff
        task = asyncio.ensure_future(self._trim_on_thread(room, seq, cutoff))
        self._trims[room] = task
        task.add_done_callback(lambda _: self._trims.pop(room, None))

    async def _trim_on_thread(self, room: str, seq: int, cutoff: int) -> None:
        """Delete ``room``'s messages up to ``cutoff`` and record it, in one transaction."""
        try:
            async with self._lock:
                db = self._conn()
                try:
                    await db.execute("BEGIN IMMEDIATE")
                    await db.execute(_TRIM, (room, cutoff))
                    await db.execute(_TRIMMED, (room, seq, cutoff))
                    await db.execute("COMMIT")
                except BaseException:
                    await asyncio.shield(_rollback(db))
                    raise
        except (sqlite3.Error, DependencyError) as exc:
            # The next batch point deletes up to its own cutoff, this one's rows included.
            log.warning("retention trim of %s failed: %s", self.path, exc)

    async def _save(self, db: aiosqlite.Connection, draft: MessageDraft) -> StoredMessage:
        room = draft.storage_room
        try:
            await db.execute("BEGIN IMMEDIATE")
            # Checked inside the write lock: no other writer can insert this id meanwhile.
            existing = await self._get(db, draft.message_id)
            if existing is None:
                message = await self._insert(db, draft, room)
            await db.execute("COMMIT")
        except BaseException:
            # Also on cancellation: never leave the shared connection inside a transaction.
            await asyncio.shield(_rollback(db))
            raise
        if existing is not None:
            return self.existing_or_conflict(existing, draft)
        return message

    async def _insert(
        self, db: aiosqlite.Connection, draft: MessageDraft, room: str
    ) -> StoredMessage:
        """Insert the message with the room's next seq, trim; inside the caller's transaction."""
        async with db.execute(_INSERT, _params(draft, room)) as cur:
            row = await cur.fetchone()
        assert row is not None  # RETURNING always yields the row
        seq = int(row[0])
        cutoff = self.trim_cutoff(room, seq)
        if cutoff is not None:
            await db.execute(_TRIM, (room, cutoff))
            await db.execute(_TRIMMED, (room, seq, cutoff))
        return _stored(draft, room, seq)

    async def purge(self, room: str) -> None:
        """Delete a room's messages and reset its seq (tests and teaching only)."""
        async with self._lock:
            db = self._conn()
            try:
                try:
                    await db.execute("BEGIN IMMEDIATE")
                    await db.execute("DELETE FROM messages WHERE room = ?", (room,))
                    await db.execute("DELETE FROM room_seq WHERE room = ?", (room,))
                    await db.execute("COMMIT")
                except BaseException:
                    await asyncio.shield(_rollback(db))
                    raise
            except sqlite3.Error as exc:
                raise self.unavailable(exc, "purge") from exc

    # -- reading

    @staticmethod
    async def _get(db: aiosqlite.Connection, message_id: str) -> StoredMessage | None:
        async with db.execute(_SELECT_BY_ID, (message_id,)) as cur:
            row = await cur.fetchone()
        return None if row is None else _row_to_message(tuple(row))

    async def get(self, message_id: str) -> StoredMessage | None:
        """The stored message with this id, or None."""
        async with self._lock:
            db = self._conn()
            try:
                return await self._get(db, message_id)
            except sqlite3.Error as exc:
                raise self.unavailable(exc, "get") from exc

    async def history(
        self,
        room: str,
        *,
        limit: int = DEFAULT_HISTORY_LIMIT,
        before_seq: int | None = None,
        since_seq: int | None = None,
    ) -> HistoryPage:
        """A page of ``room``'s history, oldest first (see ``wslab.integration.store``)."""
        query = self.check_history_args(room, limit, before_seq, since_seq)
        sql, params = query.select(_COLUMNS, lambda n: "?")
        async with self._lock:
            db = self._conn()
            try:
                # One read transaction: the rows and the counters come from the same snapshot,
                # even while another process writes or trims.
                try:
                    await db.execute("BEGIN")
                    async with db.execute(sql, params) as cur:
                        rows = [_row_to_message(tuple(r)) for r in await cur.fetchall()]
                    latest, trimmed = await self._counters(db, room)
                finally:
                    # Read-only: ending it with ROLLBACK or COMMIT is the same.
                    await asyncio.shield(_rollback(db))
            except sqlite3.Error as exc:
                raise self.unavailable(exc, "history") from exc
        return self.make_page(query, rows, latest, trimmed)

    @staticmethod
    async def _counters(db: aiosqlite.Connection, room: str) -> tuple[int, int]:
        async with db.execute(_COUNTERS, (room,)) as cur:
            row = await cur.fetchone()
        return (0, 0) if row is None else (int(row[0]), int(row[1]))

    async def latest_seq(self, room: str) -> int:
        """The newest seq assigned in ``room`` (0 if none)."""
        async with self._lock:
            db = self._conn()
            try:
                return (await self._counters(db, room))[0]
            except sqlite3.Error as exc:
                raise self.unavailable(exc, "latest_seq") from exc

    async def ping(self) -> bool:
        """True if the database answers a trivial query."""
        if self._db is None:
            return False
        try:
            async with self._lock:
                db = self._conn()
                async with db.execute("SELECT 1") as cur:
                    return (await cur.fetchone()) is not None
        except (sqlite3.Error, DependencyError, ValueError):
            return False


def _trim(conn: sqlite3.Connection, room: str, seq: int, cutoff: int) -> None:
    """Retention: delete ``room``'s messages up to ``cutoff``, remember it (caller's transaction)."""
    conn.execute(_TRIM, (room, cutoff))
    conn.execute(_TRIMMED, (room, seq, cutoff))


def _settle(
    batch: list[tuple[MessageDraft, asyncio.Future[StoredMessage]]],
    results: list[StoredMessage | BaseException],
) -> None:
    """Give each save of ``batch`` its result (a stored message, or the error it raises)."""
    for (_, future), result in zip(batch, results, strict=True):
        if future.done():
            continue  # its caller gave up waiting
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)


def _is_busy(exc: sqlite3.Error) -> bool:
    """True if ``exc`` says another connection holds the lock (SQLITE_BUSY or _LOCKED)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return bool(code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED))
    return "locked" in str(exc)


async def _rollback(db: aiosqlite.Connection) -> None:
    """End the connection's transaction, if any (aiosqlite runs calls in order, so this also
    covers a BEGIN or COMMIT still queued when the caller was cancelled)."""
    try:
        await db.execute("ROLLBACK")
    except sqlite3.OperationalError as exc:
        if "no transaction is active" not in str(exc):
            raise


def _split_sql(script: str) -> list[str]:
    """Split a migration script into statements (``sqlite3.complete_statement`` knows where)."""
    statements: list[str] = []
    current = ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            if current.strip():
                statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return statements
