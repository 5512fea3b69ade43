from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import psycopg
import pytest
from psycopg import sql

from runtime.errors import MigrationError
from runtime.migrate import Migration, migrate, migrate_url, shipped_migrations
from tests.conftest import with_dbname


@pytest.fixture
async def empty_db(server_url: str) -> AsyncIterator[str]:
    name = f"personae_mig_{uuid.uuid4().hex[:8]}"
    async with await psycopg.AsyncConnection.connect(server_url, autocommit=True) as conn:
        await conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield with_dbname(server_url, name)
    async with await psycopg.AsyncConnection.connect(server_url, autocommit=True) as conn:
        await conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def test_shipped_migrations_are_ordered() -> None:
    found = shipped_migrations()
    assert found and found[0].name == "0001_init.sql"
    assert [m.version for m in found] == sorted({m.version for m in found})


async def test_migrate_from_empty_then_rerun_is_a_no_op(empty_db: str) -> None:
    applied = await migrate_url(empty_db)
    assert applied == [m.name for m in shipped_migrations()]
    assert await migrate_url(empty_db) == []
    async with await psycopg.AsyncConnection.connect(empty_db) as conn:
        cur = await conn.execute("SELECT name FROM schema_migrations ORDER BY version")
        assert [r[0] for r in await cur.fetchall()] == applied
        cur = await conn.execute("SELECT count(*) FROM traits WHERE persona_id IS NULL")
        assert (await cur.fetchone() or (0,))[0] >= 5


async def test_concurrent_migrations_apply_once(empty_db: str) -> None:
    results = await asyncio.gather(*(migrate_url(empty_db) for _ in range(4)))
    assert sorted(len(r) for r in results) == [0, 0, 0, len(shipped_migrations())]


async def test_failed_migration_rolls_back_and_names_file(empty_db: str) -> None:
    good = shipped_migrations()
    bad = Migration(9999, "9999_broken.sql", "CREATE TABLE half_done (x int); SELECT nonsense;")
    async with await psycopg.AsyncConnection.connect(empty_db, autocommit=True) as conn:
        with pytest.raises(MigrationError, match="9999_broken.sql"):
            await migrate(conn, (*good, bad))
        cur = await conn.execute("SELECT to_regclass('half_done') IS NULL")
        assert (await cur.fetchone() or (False,))[0], "the failed file left nothing behind"
        cur = await conn.execute("SELECT max(version) FROM schema_migrations")
        assert (await cur.fetchone() or (0,))[0] == good[-1].version


async def test_schema_enforces_trait_range_and_message_idempotency(database_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        pid = uuid.uuid4()
        await conn.execute(
            "INSERT INTO personas (id, slug, name) VALUES (%s, %s, 'Range Check')",
            (pid, f"range-{pid.hex[:6]}"),
        )
        with pytest.raises(psycopg.errors.CheckViolation):
            await conn.execute(
                "INSERT INTO traits (persona_id, name, value) VALUES (%s, 'wit', 1.5)", (pid,)
            )
        sid = uuid.uuid4()
        await conn.execute(
            "INSERT INTO sessions (id, user_id, persona_ids) VALUES (%s, 'u', %s)", (sid, [pid])
        )
        insert = (
            "INSERT INTO messages (id, session_id, role, user_id, speaker, text, client_msg_id)"
            " VALUES (%s, %s, 'user', 'u', 'u', 'hi', 'c-1')"
        )
        await conn.execute(insert, (uuid.uuid4(), sid))
        with pytest.raises(psycopg.errors.UniqueViolation):
            await conn.execute(insert, (uuid.uuid4(), sid))
        await conn.execute("DELETE FROM sessions WHERE id = %s", (sid,))
        await conn.execute("DELETE FROM personas WHERE id = %s", (pid,))
