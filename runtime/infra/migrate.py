"""Apply ``migrations/NNNN_name.sql`` in order, one transaction each, under an advisory
lock so that several processes starting at once migrate exactly once."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources

import psycopg
from psycopg import sql

from runtime.errors import MigrationError

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# any constant shared by every Personae process: pg_advisory_lock(bigint)
_LOCK_KEY = 0x5045_5253_4F4E_4145 & 0x7FFF_FFFF_FFFF_FFFF

LOCK_SQL = "SELECT pg_advisory_lock(%s)"
UNLOCK_SQL = "SELECT pg_advisory_unlock(%s)"
CREATE_TABLE_SQL = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version integer PRIMARY KEY, name text NOT NULL,"
    " applied_at timestamptz NOT NULL DEFAULT now())"
)
APPLIED_SQL = "SELECT version FROM schema_migrations"
RECORD_SQL = "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)"


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def shipped_migrations() -> tuple[Migration, ...]:
    """The migrations that ship with this install, in version order."""
    found: list[Migration] = []
    for entry in resources.files("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), entry.name, entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError("migrations", "two files share a version number")
    return tuple(found)


async def migrate(
    conn: psycopg.AsyncConnection[object],
    migrations: tuple[Migration, ...] | None = None,
) -> list[str]:
    """Apply every pending migration on ``conn`` (autocommit); return the names applied."""
    todo = shipped_migrations() if migrations is None else migrations
    applied: list[str] = []
    if not conn.autocommit:
        await conn.set_autocommit(True)
    await conn.execute(LOCK_SQL, (_LOCK_KEY,))
    try:
        await conn.execute(CREATE_TABLE_SQL)
        cur = await conn.execute(APPLIED_SQL)
        done = {row[0] for row in await cur.fetchall()}  # type: ignore[index]
        for m in todo:
            if m.version in done:
                continue
            try:
                async with conn.transaction():
                    await conn.execute(sql.SQL(m.sql))
                    await conn.execute(RECORD_SQL, (m.version, m.name))
            except psycopg.Error as exc:
                raise MigrationError(m.name, str(exc).strip()) from None
            log.info("applied migration %s", m.name)
            applied.append(m.name)
    finally:
        await conn.execute(UNLOCK_SQL, (_LOCK_KEY,))
    return applied


async def migrate_url(url: str) -> list[str]:
    """Open one connection to ``url`` and migrate it."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        return await migrate(conn)
