"""Session summaries in PostgreSQL (``session_summaries``): one row per summarised
session, with the summary, how far it goes and who wrote it, and the lease of the
worker writing it.

The work is derived from the transcript, not queued: a session is due when it holds a
user message and messages newer than its summary, and its last message is older than the
quiet time, or its row is due now (``due_at``: the session ended, or a statement of it
was superseded). :meth:`SummaryStore.claim` takes due sessions under a lease (a crashed
worker's claim is taken again once it is older than the lease); :meth:`SummaryStore.write`
overwrites the summary, so writing twice is harmless. Imported lines are not in
``messages`` (``personae memory import`` writes the vector index only), so they are never
summarised."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

SummaryOrigin = Literal["llm", "local"]

_LEASE = "make_interval(secs => %(lease)s)"
CLAIM_SQL = (
    "WITH due AS ("
    " SELECT s.id, coalesce(ss.due_at, s.updated_at) AS since FROM sessions s"
    " LEFT JOIN session_summaries ss ON ss.session_id = s.id"
    # something to do: never summarised, newer messages, or asked again
    " WHERE (ss.session_id IS NULL OR s.last_seq > ss.through_seq OR ss.due_at IS NOT NULL)"
    f" AND (ss.claimed_at IS NULL OR ss.claimed_at < now() - {_LEASE})"
    # and now: ended (or asked again), or quiet since its last message
    " AND (ss.due_at <= now() OR (SELECT m.created_at FROM messages m"
    "   WHERE m.session_id = s.id ORDER BY m.seq DESC LIMIT 1)"
    "   < now() - make_interval(secs => %(quiet)s))"
    " AND EXISTS (SELECT 1 FROM messages m WHERE m.session_id = s.id AND m.role = 'user')"
    " ORDER BY since LIMIT %(limit)s"
    "), claimed AS ("
    " INSERT INTO session_summaries (session_id, claimed_at, attempts)"
    " SELECT id, now(), 1 FROM due"
    " ON CONFLICT (session_id) DO UPDATE SET claimed_at = now(),"
    " attempts = session_summaries.attempts + 1"
    " WHERE session_summaries.claimed_at IS NULL"
    f" OR session_summaries.claimed_at < now() - {_LEASE}"
    " RETURNING session_id, attempts, claimed_at"
    ") SELECT c.session_id, c.attempts, c.claimed_at, s.user_id, s.persona_ids"
    " FROM claimed c JOIN sessions s ON s.id = c.session_id"
)
# the newest lines, with the session's message count and first message time
LINES_SQL = (
    "SELECT id, seq, role, speaker, text, status, reply_to, created_at,"
    " count(*) OVER () AS messages, min(created_at) OVER () AS first_at"
    " FROM messages WHERE session_id = %s ORDER BY seq DESC LIMIT %s"
)
WRITE_SQL = (
    "UPDATE session_summaries SET summary = %(summary)s, through_seq = %(through)s,"
    " through_at = %(at)s, messages = %(messages)s, origin = %(origin)s, claimed_at = NULL,"
    # due again while this was written (ended, or superseded): stays due
    " due_at = CASE WHEN due_at > %(read_at)s THEN due_at END, updated_at = now()"
    # a slower worker whose lease was taken over never writes an older summary
    " WHERE session_id = %(session)s AND through_seq <= %(through)s"
)
# the session's end: due now, when it holds something its summary does not
END_SQL = (
    "INSERT INTO session_summaries (session_id, due_at)"
    " SELECT s.id, now() FROM sessions s WHERE s.id = %s"
    " AND EXISTS (SELECT 1 FROM messages m WHERE m.session_id = s.id AND m.role = 'user')"
    " ON CONFLICT (session_id) DO UPDATE SET due_at = now(), updated_at = now()"
    " WHERE session_summaries.through_seq"
    " < (SELECT last_seq FROM sessions WHERE id = EXCLUDED.session_id)"
)
# the summaries of the sessions these messages were said in, to be written again
REQUEUE_SQL = (
    "UPDATE session_summaries SET due_at = now(), updated_at = now()"
    " WHERE session_id IN (SELECT session_id FROM messages WHERE id = ANY(%s))"
)
GET_SQL = (
    "SELECT session_id, summary, through_seq, through_at, messages, origin, due_at,"
    " claimed_at, attempts, created_at, updated_at FROM session_summaries WHERE session_id = %s"
)


@dataclass(frozen=True, slots=True)
class ClaimedSession:
    """A session claimed to be summarised: its user, its personas, which attempt this is
    and when it was claimed (the database's clock)."""

    session_id: uuid.UUID
    user_id: str
    persona_ids: tuple[uuid.UUID, ...]
    attempts: int
    claimed_at: dt.datetime


@dataclass(frozen=True, slots=True)
class SessionLine:
    """A message as a summary reads it."""

    id: uuid.UUID
    seq: int
    role: str
    speaker: str
    text: str
    status: str
    reply_to: uuid.UUID | None
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class SessionLines:
    """The newest lines of a session, oldest first, with the session's message count and
    the time of its first message."""

    lines: tuple[SessionLine, ...]
    messages: int
    first_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class StoredSummary:
    session_id: uuid.UUID
    summary: str
    through_seq: int
    through_at: dt.datetime | None
    messages: int
    origin: SummaryOrigin | None
    due_at: dt.datetime | None
    claimed_at: dt.datetime | None
    attempts: int
    created_at: dt.datetime
    updated_at: dt.datetime


class SummaryStore:
    """``session_summaries``."""

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self._pool = pool

    async def claim(
        self, limit: int, *, quiet_s: float, lease_s: float = 300.0
    ) -> list[ClaimedSession]:
        """Claim up to ``limit`` sessions due for a summary, those waiting longest first;
        a claim older than ``lease_s`` (a crashed worker's) is taken again."""
        async with self._pool.connection() as conn:
            cur = await conn.cursor(row_factory=dict_row).execute(
                CLAIM_SQL, {"lease": lease_s, "quiet": quiet_s, "limit": limit}
            )
            rows = await cur.fetchall()
        return [
            ClaimedSession(
                session_id=r["session_id"],
                user_id=r["user_id"],
                persona_ids=tuple(r["persona_ids"] or ()),
                attempts=r["attempts"],
                claimed_at=r["claimed_at"],
            )
            for r in rows
        ]

    async def lines(self, session_id: uuid.UUID, limit: int) -> SessionLines:
        """The last ``limit`` messages of the session, oldest first."""
        async with self._pool.connection() as conn:
            cur = await conn.cursor(row_factory=dict_row).execute(LINES_SQL, (session_id, limit))
            rows = await cur.fetchall()
        if not rows:
            return SessionLines((), 0, None)
        return SessionLines(
            tuple(
                SessionLine(
                    id=r["id"],
                    seq=r["seq"],
                    role=r["role"],
                    speaker=r["speaker"],
                    text=r["text"],
                    status=r["status"],
                    reply_to=r["reply_to"],
                    created_at=r["created_at"],
                )
                for r in reversed(rows)
            ),
            int(rows[0]["messages"]),
            rows[0]["first_at"],
        )

    async def write(
        self,
        session_id: uuid.UUID,
        *,
        summary: str,
        through_seq: int,
        through_at: dt.datetime | None,
        messages: int,
        origin: SummaryOrigin | None,
        read_at: dt.datetime,
    ) -> bool:
        """Store the session's summary (empty: nothing to say) and release the claim; a
        due time set after ``read_at`` stays. Whether it was written (not when a newer
        summary is already there)."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                WRITE_SQL,
                {
                    "summary": summary,
                    "through": through_seq,
                    "at": through_at,
                    "messages": messages,
                    "origin": origin,
                    "read_at": read_at,
                    "session": session_id,
                },
            )
            return bool(cur.rowcount > 0)

    async def end(self, session_id: uuid.UUID) -> None:
        """The session ended (its chat closed, its last connection left): due at once when
        it holds a user message its summary does not cover. One statement."""
        async with self._pool.connection() as conn:
            await conn.execute(END_SQL, (session_id,))

    async def requeue(self, message_ids: Sequence[uuid.UUID]) -> int:
        """Make the summaries of the sessions these messages belong to due now (their
        statements were superseded); returns how many."""
        if not message_ids:
            return 0
        async with self._pool.connection() as conn:
            cur = await conn.execute(REQUEUE_SQL, (list(message_ids),))
            return int(cur.rowcount)

    async def get(self, session_id: uuid.UUID) -> StoredSummary | None:
        async with self._pool.connection() as conn:
            cur = await conn.cursor(row_factory=dict_row).execute(GET_SQL, (session_id,))
            row = await cur.fetchone()
        return None if row is None else StoredSummary(**row)


__all__ = [
    "ClaimedSession",
    "SessionLine",
    "SessionLines",
    "StoredSummary",
    "SummaryOrigin",
    "SummaryStore",
]
