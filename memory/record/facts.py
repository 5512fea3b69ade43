"""What a persona knows about a user, in PostgreSQL: facts with their validity
(``user_facts``) and the user messages waiting to be consolidated into them
(``fact_queue``, filled by the statement that stores a user message).

A fact is current while ``valid_until`` is NULL. A new fact on the same subject
supersedes the current one in the same transaction: the old one gets ``valid_until``
(the new one's ``valid_from``) and ``superseded_by``; it stays as history."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from memory.record.turn_transaction import read_connection

FactOrigin = Literal["said", "corrected"]

_FACT_COLUMNS = (
    "id, persona_id, user_id, subject, text, source_ids, origin, valid_from, valid_until,"
    " superseded_by, created_at"
)
CURRENT_FACTS_SQL = (
    f"SELECT {_FACT_COLUMNS} FROM user_facts WHERE persona_id = %s AND user_id = %s"
    " AND valid_until IS NULL ORDER BY valid_from DESC, created_at DESC LIMIT %s"
)
ALL_FACTS_SQL = (
    f"SELECT {_FACT_COLUMNS} FROM user_facts WHERE persona_id = %s AND user_id = %s"
    " ORDER BY subject, valid_from DESC, created_at DESC"
)
FACT_SQL = (
    f"SELECT {_FACT_COLUMNS} FROM user_facts WHERE id = %s AND persona_id = %s AND user_id = %s"
)
LOCK_CURRENT_SQL = (
    f"SELECT {_FACT_COLUMNS} FROM user_facts WHERE persona_id = %s AND user_id = %s"
    " AND subject = %s AND valid_until IS NULL FOR UPDATE"
)
SAME_SOURCE_SQL = (
    "SELECT 1 FROM user_facts WHERE persona_id = %s AND user_id = %s AND subject = %s"
    " AND origin = 'said' AND source_ids[1] = %s"
)
INSERT_FACT_SQL = (
    "INSERT INTO user_facts (id, persona_id, user_id, subject, text, source_ids, origin,"
    " valid_from) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
    f" RETURNING {_FACT_COLUMNS}"
)
SUPERSEDE_SQL = (
    "UPDATE user_facts SET valid_until = greatest(%s, valid_from), superseded_by = %s"
    f" WHERE id = ANY(%s) RETURNING {_FACT_COLUMNS}"
)
DELETE_FACT_SQL = (
    "DELETE FROM user_facts WHERE id = %s AND persona_id = %s AND user_id = %s RETURNING id"
)
SESSION_SUBJECTS_SQL = (
    # every fact on a subject that has one derived only from the session's messages,
    # locked, each marked whether it is one of those (forgotten with the session)
    "WITH said AS (SELECT coalesce(array_agg(id), '{}') AS ids FROM messages"
    " WHERE session_id = %(session)s), doomed AS (SELECT f.id FROM user_facts f, said"
    " WHERE f.user_id = (SELECT user_id FROM sessions WHERE id = %(session)s)"
    " AND f.origin = 'said' AND cardinality(f.source_ids) > 0 AND f.source_ids <@ said.ids)"
    f" SELECT {_FACT_COLUMNS}, id IN (SELECT id FROM doomed) AS doomed FROM user_facts"
    " WHERE (persona_id, user_id, subject) IN (SELECT persona_id, user_id, subject"
    " FROM user_facts WHERE id IN (SELECT id FROM doomed)) ORDER BY id FOR UPDATE"
)
DELETE_FACTS_SQL = "DELETE FROM user_facts WHERE id = ANY(%s)"
RELINK_SQL = (
    "UPDATE user_facts SET superseded_by = %s, valid_until = greatest(%s, valid_from) WHERE id = %s"
)
RESTORE_SQL = (
    "UPDATE user_facts SET valid_until = NULL, superseded_by = NULL"
    f" WHERE id = %s RETURNING {_FACT_COLUMNS}"
)
SOURCE_SPEAKER_SQL = (
    # who said a fact's sources and where (the latest of them), else the session's user
    "(SELECT session_id, speaker, 0 AS rank FROM messages WHERE id = ANY(%s)"
    " AND role = 'user' ORDER BY created_at DESC LIMIT 1) UNION ALL (SELECT NULL, speaker, 1"
    " FROM messages WHERE session_id = %s AND role = 'user' LIMIT 1) ORDER BY rank LIMIT 1"
)
DELETE_USER_FACTS_SQL = "DELETE FROM user_facts WHERE user_id = %s RETURNING id"
CLAIM_SQL = (
    "WITH picked AS ("
    " SELECT message_id FROM fact_queue"
    " WHERE claimed_at IS NULL OR claimed_at < now() - make_interval(secs => %s)"
    " ORDER BY enqueued_at LIMIT %s FOR UPDATE SKIP LOCKED"
    "), claimed AS ("
    " UPDATE fact_queue q SET claimed_at = now(), attempts = q.attempts + 1"
    " FROM picked WHERE q.message_id = picked.message_id RETURNING q.message_id, q.attempts"
    ") SELECT m.id, m.session_id, m.user_id, m.speaker, m.text, m.created_at,"
    " s.persona_ids, c.attempts FROM claimed c JOIN messages m ON m.id = c.message_id"
    " JOIN sessions s ON s.id = m.session_id ORDER BY m.created_at, m.seq"
)
STILL_TRUE_SQL = (
    "SELECT DISTINCT src FROM user_facts, unnest(source_ids) AS src"
    " WHERE persona_id = %s AND valid_until IS NULL AND src = ANY(%s)"
)
# a user's messages that stated facts since superseded and state no current one
STALE_SOURCES_SQL = (
    "SELECT src FROM user_facts, unnest(source_ids) AS src"
    " WHERE user_id = %(user)s AND valid_until IS NOT NULL AND src = ANY(%(ids)s)"
    " EXCEPT SELECT src FROM user_facts, unnest(source_ids) AS src"
    " WHERE user_id = %(user)s AND valid_until IS NULL AND src = ANY(%(ids)s)"
)
DONE_SQL = "DELETE FROM fact_queue WHERE message_id = ANY(%s)"
PENDING_SQL = "SELECT count(*) FROM fact_queue"


@dataclass(frozen=True, slots=True)
class Fact:
    """A statement about a user, derived from what the user said (or a correction)."""

    id: uuid.UUID
    persona_id: uuid.UUID
    user_id: str
    subject: str
    """What it is about ("dog", "home", "job", "likes:jazz"): a newer fact on the same
    subject supersedes it."""
    text: str
    source_ids: tuple[uuid.UUID, ...]
    origin: FactOrigin
    valid_from: dt.datetime
    valid_until: dt.datetime | None
    superseded_by: uuid.UUID | None
    created_at: dt.datetime

    @property
    def current(self) -> bool:
        return self.valid_until is None


@dataclass(frozen=True, slots=True)
class PendingMessage:
    """A user message waiting to be consolidated, with the personas of its session."""

    id: uuid.UUID
    session_id: uuid.UUID
    user_id: str
    speaker: str
    text: str
    created_at: dt.datetime
    persona_ids: tuple[uuid.UUID, ...]
    attempts: int


@dataclass(frozen=True, slots=True)
class Recorded:
    """What recording a fact did: the fact stored (None when it was already known) and
    the facts it superseded."""

    fact: Fact | None
    superseded: tuple[Fact, ...] = ()


@dataclass(frozen=True, slots=True)
class RestoredFact:
    """A fact made current again: who said its sources (the speaker its memory is
    stored with) and the session of the latest of them (None for a correction)."""

    fact: Fact
    speaker: str
    session_id: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class SessionFacts:
    """What forgetting a session did to the facts: those derived only from its messages
    (deleted) and those they had superseded that are current again."""

    deleted: tuple[Fact, ...] = ()
    restored: tuple[RestoredFact, ...] = ()


def _fact(row: dict[str, Any]) -> Fact:
    return Fact(
        id=row["id"],
        persona_id=row["persona_id"],
        user_id=row["user_id"],
        subject=row["subject"],
        text=row["text"],
        source_ids=tuple(row["source_ids"] or ()),
        origin=row["origin"],
        valid_from=row["valid_from"],
        valid_until=row["valid_until"],
        superseded_by=row["superseded_by"],
        created_at=row["created_at"],
    )


def _relinks(
    doomed: dict[uuid.UUID, Fact], kept: Sequence[Fact]
) -> list[tuple[uuid.UUID, Fact | None]]:
    """What becomes of the kept facts a deleted one had superseded: each (id, the kept
    fact that supersedes it now), or (id, None) for the one made current again (the most
    recent of those whose successors were all deleted, on a subject left with no current
    fact); the older ones of those are superseded by it."""
    by_id = {f.id: f for f in kept}

    def successor(fact_id: uuid.UUID | None) -> Fact | None:
        seen: set[uuid.UUID] = set()
        while fact_id is not None and fact_id in doomed and fact_id not in seen:
            seen.add(fact_id)
            fact_id = doomed[fact_id].superseded_by
        return by_id.get(fact_id) if fact_id is not None else None

    out: list[tuple[uuid.UUID, Fact | None]] = []
    orphans: dict[tuple[uuid.UUID, str, str], list[Fact]] = {}
    for fact in kept:
        if fact.superseded_by is None or fact.superseded_by not in doomed:
            continue
        after = successor(fact.superseded_by)
        if after is not None:
            out.append((fact.id, after))
        else:
            orphans.setdefault(_key(fact), []).append(fact)
    for key, left in orphans.items():
        left.sort(key=lambda f: (f.valid_from, f.created_at), reverse=True)
        current = next((f for f in kept if f.current and _key(f) == key), None)
        if current is None:
            current, left = left[0], left[1:]
            out.append((current.id, None))
        out.extend((f.id, current) for f in left)
    return out


def _key(fact: Fact) -> tuple[uuid.UUID, str, str]:
    return fact.persona_id, fact.user_id, fact.subject


class FactStore:
    """``user_facts`` and ``fact_queue``."""

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self._pool = pool

    async def record(
        self,
        *,
        persona_id: uuid.UUID,
        user_id: str,
        subject: str,
        text: str,
        valid_from: dt.datetime,
        source_ids: Sequence[uuid.UUID] = (),
        origin: FactOrigin = "said",
    ) -> Recorded:
        """Store a fact and supersede the current one(s) on its subject, in one
        transaction. A fact already current with the same text, or one from the same
        source message on this subject (a message consolidated again), stores nothing."""
        async with self._pool.connection() as conn, conn.transaction():
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(LOCK_CURRENT_SQL, (persona_id, user_id, subject))
            current = [_fact(r) for r in await cur.fetchall()]
            if any(f.text == text for f in current):
                return Recorded(None)
            if origin == "said" and source_ids:
                await cur.execute(SAME_SOURCE_SQL, (persona_id, user_id, subject, source_ids[0]))
                if await cur.fetchone() is not None:
                    return Recorded(None)
            fact_id = uuid.uuid4()
            await cur.execute(
                INSERT_FACT_SQL,
                (fact_id, persona_id, user_id, subject, text, list(source_ids), origin, valid_from),
            )
            row = await cur.fetchone()
            assert row is not None
            new = _fact(row)
            superseded: list[Fact] = []
            if current:
                await cur.execute(SUPERSEDE_SQL, (valid_from, fact_id, [f.id for f in current]))
                superseded = [_fact(r) for r in await cur.fetchall()]
            return Recorded(new, tuple(superseded))

    async def current(self, persona_id: uuid.UUID, user_id: str, *, limit: int = 50) -> list[Fact]:
        """The user's current facts, the most recently true first."""
        async with read_connection(self._pool) as conn:  # in a turn: its transaction
            cur = await conn.cursor(row_factory=dict_row).execute(
                CURRENT_FACTS_SQL, (persona_id, user_id, limit)
            )
            return [_fact(r) for r in await cur.fetchall()]

    async def history(self, persona_id: uuid.UUID, user_id: str) -> list[Fact]:
        """Every fact of the user, current and superseded, by subject, newest first."""
        async with read_connection(self._pool) as conn:  # in a turn: its transaction
            cur = await conn.cursor(row_factory=dict_row).execute(
                ALL_FACTS_SQL, (persona_id, user_id)
            )
            return [_fact(r) for r in await cur.fetchall()]

    async def get(self, fact_id: uuid.UUID, persona_id: uuid.UUID, user_id: str) -> Fact | None:
        async with self._pool.connection() as conn:
            cur = await conn.cursor(row_factory=dict_row).execute(
                FACT_SQL, (fact_id, persona_id, user_id)
            )
            row = await cur.fetchone()
        return None if row is None else _fact(row)

    async def delete(self, fact_id: uuid.UUID, persona_id: uuid.UUID, user_id: str) -> bool:
        async with self._pool.connection() as conn:
            cur = await conn.execute(DELETE_FACT_SQL, (fact_id, persona_id, user_id))
            return await cur.fetchone() is not None

    async def delete_from_session(self, session_id: uuid.UUID) -> SessionFacts:
        """Delete the facts derived only from this session's messages (call it before the
        session is deleted) and leave the rest as if the session had never been: in the
        same transaction, a fact that one of them had superseded is superseded by the
        next fact on its subject that is kept, or, when none is, the most recent such
        fact on the subject is current again."""
        async with self._pool.connection() as conn, conn.transaction():
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(SESSION_SUBJECTS_SQL, {"session": session_id})
            rows = await cur.fetchall()
            doomed = {r["id"]: _fact(r) for r in rows if r["doomed"]}
            if not doomed:
                return SessionFacts()
            kept = [_fact(r) for r in rows if not r["doomed"]]
            await cur.execute(DELETE_FACTS_SQL, (list(doomed),))
            restored: list[RestoredFact] = []
            for fact_id, successor in _relinks(doomed, kept):
                if successor is not None:
                    await cur.execute(RELINK_SQL, (successor.id, successor.valid_from, fact_id))
                    continue
                await cur.execute(RESTORE_SQL, (fact_id,))
                row = await cur.fetchone()
                assert row is not None
                fact = _fact(row)
                await cur.execute(SOURCE_SPEAKER_SQL, (list(fact.source_ids), session_id))
                said = await cur.fetchone()
                speaker = said["speaker"] if said is not None else fact.user_id
                where = said["session_id"] if said is not None and fact.origin == "said" else None
                restored.append(RestoredFact(fact, speaker, where))
        return SessionFacts(tuple(doomed.values()), tuple(restored))

    async def delete_user(self, user_id: str) -> list[uuid.UUID]:
        """Delete every fact of a user (all personas); returns their ids."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(DELETE_USER_FACTS_SQL, (user_id,))
            return [r[0] for r in await cur.fetchall()]

    async def still_true(
        self, persona_id: uuid.UUID, message_ids: Sequence[uuid.UUID]
    ) -> set[uuid.UUID]:
        """Those of ``message_ids`` that are the source of a current fact."""
        if not message_ids:
            return set()
        async with self._pool.connection() as conn:
            cur = await conn.execute(STILL_TRUE_SQL, (persona_id, list(message_ids)))
            return {r[0] for r in await cur.fetchall()}

    async def stale_sources(self, user_id: str, message_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        """Those of ``message_ids`` whose facts were all superseded (the source of a
        no longer current fact and of no current one, with any persona)."""
        if not message_ids:
            return set()
        async with self._pool.connection() as conn:
            cur = await conn.execute(STALE_SOURCES_SQL, {"user": user_id, "ids": list(message_ids)})
            return {r[0] for r in await cur.fetchall()}

    # the consolidation queue --------------------------------------------------------

    async def claim(self, limit: int, *, lease_s: float = 300.0) -> list[PendingMessage]:
        """Claim up to ``limit`` queued messages, oldest first, skipping those another
        worker holds; a claim older than ``lease_s`` (a crashed worker's) is taken again."""
        async with self._pool.connection() as conn:
            cur = await conn.cursor(row_factory=dict_row).execute(CLAIM_SQL, (lease_s, limit))
            rows = await cur.fetchall()
        return [
            PendingMessage(
                id=r["id"],
                session_id=r["session_id"],
                user_id=r["user_id"],
                speaker=r["speaker"],
                text=r["text"],
                created_at=r["created_at"],
                persona_ids=tuple(r["persona_ids"] or ()),
                attempts=r["attempts"],
            )
            for r in rows
        ]

    async def done(self, message_ids: Sequence[uuid.UUID]) -> None:
        if not message_ids:
            return
        async with self._pool.connection() as conn:
            await conn.execute(DONE_SQL, (list(message_ids),))

    async def pending(self) -> int:
        async with self._pool.connection() as conn:
            cur = await conn.execute(PENDING_SQL)
            row = await cur.fetchone()
        return int(row[0]) if row else 0


__all__ = [
    "Fact",
    "FactOrigin",
    "FactStore",
    "PendingMessage",
    "Recorded",
    "RestoredFact",
    "SessionFacts",
]
