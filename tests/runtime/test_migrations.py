from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import psycopg
import pytest
from psycopg import sql

from runtime.errors import MigrationError
from runtime.infra.migrate import Migration, migrate, migrate_url, shipped_migrations
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


async def test_observations_stored_before_0004_are_kept_one_row_per_reply(empty_db: str) -> None:
    """0004 moves a reply's observation rows into one row per reply; the view of single
    observations gives back what was there."""
    shipped = shipped_migrations()
    before = tuple(m for m in shipped if m.version < 4)
    async with await psycopg.AsyncConnection.connect(empty_db, autocommit=True) as conn:
        await migrate(conn, before)
        pid, sid, mid = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        await conn.execute(
            "INSERT INTO personas (id, slug, name) VALUES (%s, 'obs', 'Obs')", (pid,)
        )
        await conn.execute(
            "INSERT INTO sessions (id, user_id, persona_ids) VALUES (%s, 'u', %s)", (sid, [pid])
        )
        await conn.execute(
            "INSERT INTO messages (id, session_id, role, persona_id, speaker, text)"
            " VALUES (%s, %s, 'persona', %s, 'Obs', 'hello')",
            (mid, sid, pid),
        )
        await conn.execute(
            "INSERT INTO trait_observations"
            " (persona_id, session_id, message_id, trait, value, method, confidence)"
            " VALUES (%s, %s, %s, 'humour', 0.25, 'stylometry', 0.5),"
            " (%s, %s, %s, 'humour', 0.75, 'judge', 1)",
            (pid, sid, mid, pid, None, mid),  # a session column left empty: the message's
        )
        assert await migrate(conn, shipped) == [m.name for m in shipped if m.version >= 4]
        cur = await conn.execute("SELECT count(*) FROM reply_observations")
        assert (await cur.fetchone() or (0,))[0] == 1
        cur = await conn.execute(
            "SELECT persona_id, session_id, trait, value, method, confidence"
            " FROM trait_observations WHERE message_id = %s ORDER BY value",
            (mid,),
        )
        assert await cur.fetchall() == [
            (pid, sid, "humour", 0.25, "stylometry", 0.5),
            (pid, sid, "humour", 0.75, "judge", 1.0),
        ]
        await conn.execute("DELETE FROM sessions WHERE id = %s", (sid,))
        cur = await conn.execute("SELECT count(*) FROM trait_observations")
        assert (await cur.fetchone() or (1,))[0] == 0


async def test_messages_stored_before_0009_are_numbered_within_their_session(
    empty_db: str,
) -> None:
    """0009 renumbers each session's messages 1, 2, 3... in their old order, and the
    next message of a session follows its own last number."""
    shipped = shipped_migrations()
    async with await psycopg.AsyncConnection.connect(empty_db, autocommit=True) as conn:
        await migrate(conn, tuple(m for m in shipped if m.version < 9))
        first, second = uuid.uuid4(), uuid.uuid4()
        for sid in (first, second):
            await conn.execute(
                "INSERT INTO sessions (id, user_id, persona_ids) VALUES (%s, 'u', '{}')", (sid,)
            )
        for i, sid in enumerate((first, second, first, second, first)):
            await conn.execute(
                "INSERT INTO messages (id, session_id, role, user_id, speaker, text)"
                " VALUES (%s, %s, 'user', 'u', 'U', %s)",
                (uuid.uuid4(), sid, f"m{i}"),
            )
        assert await migrate(conn, shipped) == [m.name for m in shipped if m.version >= 9]
        cur = await conn.execute(
            "SELECT session_id, seq, text FROM messages ORDER BY session_id, seq"
        )
        rows = await cur.fetchall()
        assert [(s, q, t) for s, q, t in rows if s == first] == [
            (first, 1, "m0"),
            (first, 2, "m2"),
            (first, 3, "m4"),
        ]
        assert [(s, q, t) for s, q, t in rows if s == second] == [
            (second, 1, "m1"),
            (second, 2, "m3"),
        ]
        cur = await conn.execute(
            "INSERT INTO messages (id, session_id, role, user_id, speaker, text)"
            " VALUES (%s, %s, 'user', 'u', 'U', 'next') RETURNING seq",
            (uuid.uuid4(), second),
        )
        assert (await cur.fetchone() or (0,))[0] == 3
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            await conn.execute(
                "INSERT INTO messages (id, session_id, role, user_id, speaker, text)"
                " VALUES (%s, %s, 'user', 'u', 'U', 'orphan')",
                (uuid.uuid4(), uuid.uuid4()),
            )


async def test_versions_imports_wrote_before_0013_are_marked_imported(empty_db: str) -> None:
    """0013 marks what earlier imports wrote (their updates, and the first versions the
    command line created), so that importing again still updates those personas and
    keeps the ones a user changed since."""
    shipped = shipped_migrations()
    async with await psycopg.AsyncConnection.connect(empty_db, autocommit=True) as conn:
        await migrate(conn, tuple(m for m in shipped if m.version < 13))
        pid = uuid.uuid4()
        await conn.execute("INSERT INTO personas (id, slug, name) VALUES (%s, 'pp', 'P')", (pid,))
        written = [
            (1, "created", "cli"),  # the library's import
            (2, "imported", "cli"),  # the library's next import
            (3, "template gentle-tutor applied", "cli"),  # the user's
            (4, "restored version 2", "uma"),
        ]
        for version, reason, by in written:
            await conn.execute(
                "INSERT INTO persona_versions (persona_id, version, snapshot, reason, created_by)"
                " VALUES (%s, %s, '{}', %s, %s)",
                (pid, version, reason, by),
            )
        other = uuid.uuid4()  # a persona a user created in the studio
        await conn.execute("INSERT INTO personas (id, slug, name) VALUES (%s, 'oo', 'O')", (other,))
        await conn.execute(
            "INSERT INTO persona_versions (persona_id, version, snapshot, reason, created_by)"
            " VALUES (%s, 1, '{}', 'created', 'uma')",
            (other,),
        )
        assert await migrate(conn, shipped) == [m.name for m in shipped if m.version >= 13]
        cur = await conn.execute(
            "SELECT persona_id = %s, version, imported FROM persona_versions"
            " ORDER BY persona_id = %s DESC, version",
            (pid, pid),
        )
        assert await cur.fetchall() == [
            (True, 1, True),
            (True, 2, True),
            (True, 3, False),
            (True, 4, False),
            (False, 1, False),
        ]
