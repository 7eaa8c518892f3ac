"""PostgresStore: the message store for several hubs on several machines (asyncpg).

asyncpg comes with the optional ``scale`` extra (``pip install wslab[scale]``); it is imported
when a store is opened, so the rest of wslab works without it.

How it keeps the store's promises:

- **gap-free seq across hubs**: ``save`` is one transaction that bumps a per-room counter with
  ``INSERT ... ON CONFLICT (room) DO UPDATE SET seq = room_seq.seq + 1 RETURNING seq`` and inserts
  the message. The counter row's lock serialises writers of one room (other rooms proceed in
  parallel) until commit, and a rollback takes the increment back with the message.
- **idempotent save**: the message insert is ``ON CONFLICT (message_id) DO NOTHING``. When the id
  already exists — also when a concurrent save of the same id committed first, which the insert
  waits for — the transaction is rolled back (the counter too) and the stored message returned.
- **schema**: created and versioned by wslab in ``wslab_schema_version``. Migrations run in
  order inside one transaction that first takes ``pg_advisory_xact_lock``, so hubs starting at
  the same moment queue up instead of racing on ``CREATE TABLE``. ``schema=`` puts everything in
  its own PostgreSQL schema (via ``search_path``), which is how tests stay isolated.
- **outages**: every database failure becomes a :class:`DependencyError` with a safe message.
  The pool (bounded by ``pool_size``) replaces broken connections on the next acquire, so the
  store works again as soon as PostgreSQL is back; nothing needs restarting.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from wslab.foundation.errors import ConfigError, DependencyError, WslabError
from wslab.integration.store import (
    DEFAULT_HISTORY_LIMIT,
    DEFAULT_RETENTION,
    BaseStore,
    HistoryPage,
    MessageDraft,
    StoredMessage,
)

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.pool import PoolConnectionProxy

    #: A connection of its own or one lent by the pool: both take the same queries.
    _Connection = asyncpg.Connection | PoolConnectionProxy[Any]

__all__ = ["MIGRATIONS", "PostgresStore"]

#: The schema, one script per version: MIGRATIONS[0] takes an empty schema to version 1, and so
#: on. Append new versions; never edit a released one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE room_seq (
        room            TEXT PRIMARY KEY,
        seq             BIGINT NOT NULL,
        trimmed_through BIGINT NOT NULL DEFAULT 0  -- highest seq deleted by retention
    );
    CREATE TABLE messages (
        message_id    TEXT PRIMARY KEY,
        room          TEXT NOT NULL,
        seq           BIGINT NOT NULL,
        from_user     TEXT NOT NULL,
        from_username TEXT NOT NULL,
        to_user       TEXT,
        content       TEXT NOT NULL,
        ts            TIMESTAMPTZ NOT NULL,
        origin_hub    TEXT NOT NULL,
        UNIQUE (room, seq)                          -- also the index history pages read
    );
    """,
)

_COLUMNS = "message_id, room, seq, from_user, from_username, to_user, content, ts, origin_hub"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def _lock_key(schema: str) -> int:
    """A stable signed 64-bit advisory-lock key for migrating ``schema``."""
    digest = hashlib.sha256(f"wslab.schema:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class _Row(Protocol):
    """A result row read by column name: what asyncpg's ``Record`` is here."""

    def __getitem__(self, column: str, /) -> Any: ...


def _row_to_message(row: _Row) -> StoredMessage:
    return StoredMessage(
        message_id=row["message_id"],
        room=row["room"],
        seq=int(row["seq"]),
        from_user=row["from_user"],
        from_username=row["from_username"],
        to_user=row["to_user"],
        content=row["content"],
        timestamp=row["ts"],
        origin_hub=row["origin_hub"],
    )


class _AlreadyStored(Exception):
    """Raised inside the save transaction to roll it back when the message_id exists."""


class PostgresStore(BaseStore):
    """The message store on PostgreSQL, shared by any number of hubs."""

    backend_name = "PostgreSQL"
    #: The schema migrations this class applies (a subclass may extend it).
    migrations: ClassVar[tuple[str, ...]] = MIGRATIONS

    def __init__(
        self,
        dsn: str,
        *,
        retention: int = DEFAULT_RETENTION,
        retention_overrides: Mapping[str, int] | None = None,
        retention_batch: int | None = None,
        schema: str | None = None,
        pool_size: int = 10,
        connect_timeout: float = 5.0,
        command_timeout: float = 10.0,
    ) -> None:
        """``schema``: a PostgreSQL schema to keep the tables in (created if missing).

        ``pool_size`` bounds the connections; a save waiting for a free one waits at most
        ``connect_timeout`` seconds. ``command_timeout`` bounds every statement.
        """
        super().__init__(
            retention=retention,
            retention_overrides=retention_overrides,
            retention_batch=retention_batch,
        )
        if schema is not None and not _IDENTIFIER.fullmatch(schema):
            raise ConfigError("schema must be a plain identifier (letters, digits, _)")
        if not isinstance(pool_size, int) or not 1 <= pool_size <= 100:
            raise ConfigError("pool_size must be between 1 and 100")
        for name, value in (
            ("connect_timeout", connect_timeout),
            ("command_timeout", command_timeout),
        ):
            if not isinstance(value, (int, float)) or not 0 < value <= 600:
                raise ConfigError(f"{name} must be between 0 and 600 seconds")
        self.dsn = dsn
        self.schema = schema
        self.pool_size = pool_size
        self.connect_timeout = float(connect_timeout)
        self.command_timeout = float(command_timeout)
        self._pool: asyncpg.Pool | None = None
        self._open_lock = asyncio.Lock()
        self._errors: tuple[type[BaseException], ...] = (OSError, asyncio.TimeoutError)

    def __repr__(self) -> str:
        # Never show the DSN: it may carry a password.
        return f"PostgresStore(schema={self.schema!r})"

    # -- lifecycle

    async def open(self) -> None:
        """Create the connection pool and migrate the schema."""
        async with self._open_lock:  # two concurrent open() calls must not make two pools
            if self._pool is None:
                self._pool = await self._create_pool()

    async def _create_pool(self) -> asyncpg.Pool:
        try:
            import asyncpg
        except ImportError as exc:  # pragma: no cover - depends on the installation
            raise ConfigError("PostgreSQL store needs asyncpg: pip install 'wslab[scale]'") from exc
        self._errors = (
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
            OSError,
            asyncio.TimeoutError,
        )
        settings = {"search_path": self.schema} if self.schema else {}
        try:
            pool = await asyncpg.create_pool(
                self.dsn,
                min_size=1,
                max_size=self.pool_size,
                timeout=self.connect_timeout,
                command_timeout=self.command_timeout,
                server_settings=settings,
            )
        except (ValueError, asyncpg.ClientConfigurationError) as exc:
            # Checked first: ClientConfigurationError is also an InterfaceError.
            raise ConfigError("store url: not a valid PostgreSQL DSN") from exc
        except self._errors as exc:
            raise self.unavailable(exc, "connect") from exc
        try:
            async with pool.acquire(timeout=self.connect_timeout) as conn:
                await self._migrate(conn)
        except BaseException as exc:
            await pool.close()
            if isinstance(exc, self._errors):
                raise self.unavailable(exc, "migrate") from exc
            raise
        return pool

    async def close(self) -> None:
        """Close the pool, waiting for connections in use to be released."""
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), timeout=self.command_timeout)
            except (*self._errors,) as exc:
                # The server is gone or a query hangs: drop the connections.
                pool.terminate()
                if not isinstance(exc, asyncio.TimeoutError):
                    raise self.unavailable(exc, "close") from exc

    async def _migrate(self, conn: _Connection) -> None:
        async with conn.transaction():
            # Serialises concurrent migrations of this schema across hubs; released at commit.
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _lock_key(self.schema or ""))
            if self.schema:
                exists = await conn.fetchval(
                    "SELECT 1 FROM pg_namespace WHERE nspname = $1", self.schema
                )
                if not exists:
                    await conn.execute(f'CREATE SCHEMA "{self.schema}"')
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS wslab_schema_version ("
                " version INTEGER PRIMARY KEY,"
                " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            version = await conn.fetchval(
                "SELECT coalesce(max(version), 0) FROM wslab_schema_version"
            )
            if version > len(self.migrations):
                raise DependencyError(
                    f"message store schema version {version} is newer than this wslab "
                    f"understands ({len(self.migrations)}); upgrade wslab"
                )
            for number, script in enumerate(self.migrations[version:], start=version + 1):
                await conn.execute(script)
                await conn.execute("INSERT INTO wslab_schema_version (version) VALUES ($1)", number)

    def _require_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise DependencyError(f"message store ({self.backend_name}) is not open")
        return self._pool

    # -- writing

    async def save(self, draft: MessageDraft) -> StoredMessage:
        """Store ``draft`` with its room's next seq (idempotent on ``message_id``)."""
        pool = self._require_pool()
        room = draft.storage_room
        try:
            async with pool.acquire(timeout=self.connect_timeout) as conn:
                # Fast path for a retried save: no counter lock taken at all.
                row = await conn.fetchrow(
                    f"SELECT {_COLUMNS} FROM messages WHERE message_id = $1", draft.message_id
                )
                if row is None:
                    try:
                        return await self._insert(conn, draft, room)
                    except _AlreadyStored:
                        pass
                    row = await conn.fetchrow(
                        f"SELECT {_COLUMNS} FROM messages WHERE message_id = $1",
                        draft.message_id,
                    )
                    if row is None:  # pragma: no cover - would need a concurrent purge
                        raise DependencyError("message store: message vanished during save")
        except self._errors as exc:
            raise self.unavailable(exc, "save") from exc
        return self.existing_or_conflict(_row_to_message(row), draft)

    async def _insert(
        self, conn: _Connection, draft: MessageDraft, room: str
    ) -> StoredMessage:
        async with conn.transaction():
            seq = await conn.fetchval(
                "INSERT INTO room_seq AS r (room, seq) VALUES ($1, 1) "
                "ON CONFLICT (room) DO UPDATE SET seq = r.seq + 1 RETURNING seq",
                room,
            )
            # Waits for a concurrent insert of the same id; does nothing if that one committed.
            row = await conn.fetchrow(
                f"INSERT INTO messages ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
                f"ON CONFLICT (message_id) DO NOTHING RETURNING {_COLUMNS}",
                draft.message_id,
                room,
                seq,
                draft.from_user,
                draft.from_username,
                draft.to_user,
                draft.content,
                draft.timestamp,
                draft.origin_hub,
            )
            if row is None:
                raise _AlreadyStored  # rolls back the counter increment too
            cutoff = self.trim_cutoff(room, int(seq))
            if cutoff is not None:
                await conn.execute(
                    "DELETE FROM messages WHERE room = $1 AND seq <= $2", room, cutoff
                )
                await conn.execute(
                    "UPDATE room_seq SET trimmed_through = greatest(trimmed_through, $2) "
                    "WHERE room = $1",
                    room,
                    cutoff,
                )
        return _row_to_message(row)

    async def purge(self, room: str) -> None:
        """Delete a room's messages and reset its seq (tests and teaching only)."""
        pool = self._require_pool()
        try:
            async with pool.acquire(timeout=self.connect_timeout) as conn, conn.transaction():
                await conn.execute("DELETE FROM messages WHERE room = $1", room)
                await conn.execute("DELETE FROM room_seq WHERE room = $1", room)
        except self._errors as exc:
            raise self.unavailable(exc, "purge") from exc

    # -- reading

    async def get(self, message_id: str) -> StoredMessage | None:
        """The stored message with this id, or None."""
        pool = self._require_pool()
        try:
            async with pool.acquire(timeout=self.connect_timeout) as conn:
                row = await conn.fetchrow(
                    f"SELECT {_COLUMNS} FROM messages WHERE message_id = $1", message_id
                )
        except self._errors as exc:
            raise self.unavailable(exc, "get") from exc
        return None if row is None else _row_to_message(row)

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
        sql, args = query.select(_COLUMNS, lambda n: f"${n}")
        pool = self._require_pool()
        try:
            # One snapshot for the rows and the counters, even while other hubs write.
            async with (
                pool.acquire(timeout=self.connect_timeout) as conn,
                conn.transaction(isolation="repeatable_read", readonly=True),
            ):
                rows = [_row_to_message(r) for r in await conn.fetch(sql, *args)]
                counters = await conn.fetchrow(
                    "SELECT seq, trimmed_through FROM room_seq WHERE room = $1", room
                )
        except self._errors as exc:
            raise self.unavailable(exc, "history") from exc
        latest, trimmed = (0, 0) if counters is None else (int(counters[0]), int(counters[1]))
        return self.make_page(query, rows, latest, trimmed)

    async def latest_seq(self, room: str) -> int:
        """The newest seq assigned in ``room`` (0 if none)."""
        pool = self._require_pool()
        try:
            async with pool.acquire(timeout=self.connect_timeout) as conn:
                seq = await conn.fetchval("SELECT seq FROM room_seq WHERE room = $1", room)
        except self._errors as exc:
            raise self.unavailable(exc, "latest_seq") from exc
        return 0 if seq is None else int(seq)

    async def ping(self) -> bool:
        """True if PostgreSQL answers a trivial query within ``connect_timeout``."""
        if self._pool is None:
            return False
        failures: tuple[type[BaseException], ...] = (*self._errors, WslabError)
        try:
            async with self._pool.acquire(timeout=self.connect_timeout) as conn:
                return await conn.fetchval("SELECT 1", timeout=self.connect_timeout) == 1
        except failures:
            return False
