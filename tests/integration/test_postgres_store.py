"""PostgresStore specifics: schema versions and migrations, concurrent start-up, outages.

The outage is made without touching the shared server: the store talks to PostgreSQL through a
small TCP proxy run by the test on 127.0.0.1, and the test stops and restarts the proxy.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from wslab.foundation.errors import DependencyError
from wslab.integration.postgres_store import MIGRATIONS, PostgresStore
from wslab.integration.store import MessageDraft
from wslab.lab.faults import TcpProxy

asyncpg = pytest.importorskip("asyncpg")

pytestmark = pytest.mark.services


def draft(content: str = "hi") -> MessageDraft:
    return MessageDraft(room="lobby", from_user="u1", from_username="Ada", content=content)


async def versions(dsn: str, schema: str) -> list[int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(f'SELECT version FROM "{schema}".wslab_schema_version ORDER BY 1')
        return [r[0] for r in rows]
    finally:
        await conn.close()


class StoreV2(PostgresStore):
    """The store as a later release would ship it: one migration more."""

    migrations = (*MIGRATIONS, "CREATE INDEX messages_by_sender ON messages (from_user);")


class BrokenMigration(PostgresStore):
    """A release whose new migration fails half way."""

    migrations = (*MIGRATIONS, "CREATE TABLE half_done (x INT); CREATE TABLE messages (x INT);")


async def test_schema_is_created_and_versioned(postgres_dsn: str, pg_schema: str) -> None:
    async with PostgresStore(postgres_dsn, schema=pg_schema) as store:
        await store.save(draft())
    assert await versions(postgres_dsn, pg_schema) == [1]
    async with PostgresStore(postgres_dsn, schema=pg_schema) as store:
        assert await store.latest_seq("lobby") == 1
    assert await versions(postgres_dsn, pg_schema) == [1]


async def test_schema_is_created_when_missing(postgres_dsn: str, unique_name: str) -> None:
    schema = f"{unique_name}_new"
    try:
        async with PostgresStore(postgres_dsn, schema=schema) as store:
            assert (await store.save(draft())).seq == 1
        assert await versions(postgres_dsn, schema) == [1]
    finally:
        conn = await asyncpg.connect(postgres_dsn)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()


async def test_hubs_starting_together_migrate_once(postgres_dsn: str, pg_schema: str) -> None:
    stores = [PostgresStore(postgres_dsn, schema=pg_schema, pool_size=2) for _ in range(4)]
    try:
        await asyncio.gather(*(s.open() for s in stores))
        assert await versions(postgres_dsn, pg_schema) == [1]
        results = await asyncio.gather(*(s.save(draft()) for s in stores))
        assert sorted(m.seq for m in results) == [1, 2, 3, 4]
    finally:
        for s in stores:
            await s.close()


async def test_an_old_schema_is_migrated_and_keeps_its_data(
    postgres_dsn: str, pg_schema: str
) -> None:
    async with PostgresStore(postgres_dsn, schema=pg_schema) as old:
        saved = await old.save(draft("from v1"))
    async with StoreV2(postgres_dsn, schema=pg_schema) as new:
        assert await versions(postgres_dsn, pg_schema) == [1, 2]
        assert (await new.history("lobby")).messages == (saved,)
        assert (await new.save(draft())).seq == 2
    conn = await asyncpg.connect(postgres_dsn)
    try:
        index = await conn.fetchval(
            "SELECT 1 FROM pg_indexes WHERE schemaname = $1 AND indexname = 'messages_by_sender'",
            pg_schema,
        )
    finally:
        await conn.close()
    assert index == 1


async def test_a_failed_migration_changes_nothing(postgres_dsn: str, pg_schema: str) -> None:
    async with PostgresStore(postgres_dsn, schema=pg_schema) as store:
        await store.save(draft())
    with pytest.raises(DependencyError):
        await BrokenMigration(postgres_dsn, schema=pg_schema).open()
    assert await versions(postgres_dsn, pg_schema) == [1]
    conn = await asyncpg.connect(postgres_dsn)
    try:
        half = await conn.fetchval(
            "SELECT 1 FROM pg_tables WHERE schemaname = $1 AND tablename = 'half_done'", pg_schema
        )
    finally:
        await conn.close()
    assert half is None


async def test_a_newer_schema_is_refused(postgres_dsn: str, pg_schema: str) -> None:
    async with StoreV2(postgres_dsn, schema=pg_schema):
        pass
    with pytest.raises(DependencyError, match="newer"):
        await PostgresStore(postgres_dsn, schema=pg_schema).open()


# -- outages --------------------------------------------------------------------------------------


@pytest.fixture
async def proxy(postgres_dsn: str) -> AsyncIterator[TcpProxy]:
    async with TcpProxy.for_url(postgres_dsn) as proxy:
        yield proxy


@pytest.mark.timeout(60)
async def test_outage_is_a_dependency_error_and_the_store_recovers(
    postgres_dsn: str, pg_schema: str, proxy: TcpProxy
) -> None:
    dsn = proxy.url_for(postgres_dsn)
    store = PostgresStore(dsn, schema=pg_schema, connect_timeout=2, command_timeout=5)
    await store.open()
    try:
        assert (await store.save(draft("before"))).seq == 1

        await proxy.stop()
        pending = draft("during")
        with pytest.raises(DependencyError) as info:
            await store.save(pending)
        assert dsn not in str(info.value) and "postgres@" not in str(info.value)
        assert info.value.__cause__ is not None
        with pytest.raises(DependencyError):
            await store.history("lobby")
        assert await store.ping() is False

        await proxy.start()  # PostgreSQL is reachable again, on the same address
        assert await store.ping() is True
        # The hub's retry queue saves the failed message again: it gets the next seq.
        assert (await store.save(pending)).seq == 2
        assert (await store.save(pending)).seq == 2
        page = await store.history("lobby")
        assert [m.content for m in page.messages] == ["before", "during"]
    finally:
        await store.close()


async def test_unreachable_server_at_open_is_a_dependency_error(
    postgres_dsn: str, proxy: TcpProxy
) -> None:
    dsn = proxy.url_for(postgres_dsn)
    await proxy.stop()  # nothing listens on the proxy's port now
    store = PostgresStore(dsn, connect_timeout=2)
    with pytest.raises(DependencyError):
        await store.open()
    assert await store.ping() is False
