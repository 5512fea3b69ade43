"""Ratings of messages in PostgreSQL (``feedback``) and the settings their reasons moved
(``feedback_actions``): one rating per user and message, replaced when given again (a
replaced rating keeps the time it was first given, so rating again never makes it count
again), and only in the rater's own open sessions."""

from __future__ import annotations

import builtins
import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

RATE_SQL = """
INSERT INTO feedback (message_id, user_id, rating, comment)
SELECT m.id, %(user)s, %(rating)s, %(comment)s
  FROM messages m JOIN sessions s ON s.id = m.session_id
 WHERE m.id = %(message)s AND s.user_id = %(user)s AND s.closed_at IS NULL
ON CONFLICT (message_id, user_id)
DO UPDATE SET rating = EXCLUDED.rating, comment = EXCLUDED.comment
RETURNING message_id, user_id, rating, comment, created_at
"""
TAG_SQL = (
    "UPDATE feedback f SET reason = %s FROM messages m"
    " WHERE f.message_id = %s AND f.user_id = %s AND m.id = f.message_id"
    " RETURNING m.persona_id"
)
# the users who rated a persona's replies written since ``since`` (its current version)
# negatively with a reason, first rating them after that reason last moved a setting:
# one user counts once however many replies they rate, and ratings before a move stop
# counting
USERS_SINCE_ACTION_SQL = (
    "SELECT count(DISTINCT f.user_id) FROM feedback f JOIN messages m ON m.id = f.message_id"
    " WHERE m.persona_id = %(persona)s AND f.reason = %(reason)s AND f.rating < 0"
    " AND m.created_at >= %(since)s"
    " AND f.created_at > coalesce((SELECT max(created_at) FROM feedback_actions"
    "     WHERE persona_id = %(persona)s AND reason = %(reason)s), '-infinity')"
)
RECORD_ACTION_SQL = (
    "INSERT INTO feedback_actions (persona_id, reason, version, change) VALUES (%s, %s, %s, %s)"
)
LIST_SQL = (
    "SELECT f.message_id, m.persona_id, p.slug AS persona_slug, f.user_id, f.rating,"
    " f.reason, f.comment, f.created_at"
    " FROM feedback f JOIN messages m ON m.id = f.message_id"
    " JOIN personas p ON p.id = m.persona_id"
    " WHERE (%(user)s::text IS NULL OR f.user_id = %(user)s)"
    " AND (%(persona)s::uuid IS NULL OR m.persona_id = %(persona)s)"
    " AND (%(before)s::timestamptz IS NULL OR f.created_at < %(before)s)"
    " ORDER BY f.created_at DESC, f.id DESC LIMIT %(limit)s"
)


@dataclass(frozen=True, slots=True)
class Feedback:
    """A stored rating; ``reason`` is known once it is tagged (:meth:`FeedbackStore.tag`)."""

    message_id: uuid.UUID
    user_id: str
    rating: int
    comment: str
    created_at: dt.datetime
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class FeedbackRow:
    """A rating as listed, with the persona whose reply it rates."""

    message_id: uuid.UUID
    persona_id: uuid.UUID
    persona_slug: str
    user_id: str
    rating: int
    reason: str | None
    comment: str
    created_at: dt.datetime


class FeedbackStore:
    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self._pool = pool

    async def rate(
        self, message_id: uuid.UUID, user_id: str, rating: int, comment: str = ""
    ) -> Feedback | None:
        """Record (or replace) ``user_id``'s rating of a message in one of their own
        sessions; None when there is no such message in their sessions."""
        async with self._pool.connection() as conn:
            cur = await conn.cursor(row_factory=dict_row).execute(
                RATE_SQL,
                {"user": user_id, "rating": rating, "comment": comment, "message": message_id},
            )
            row = await cur.fetchone()
        return None if row is None else Feedback(**row)

    async def tag(
        self, message_id: uuid.UUID, user_id: str, reason: str | None
    ) -> uuid.UUID | None:
        """Set (or clear) the reason of ``user_id``'s rating of a message; returns the
        persona whose reply it rates (None: no such rating, or not a persona's reply)."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(TAG_SQL, (reason, message_id, user_id))
            row = await cur.fetchone()
        return None if row is None else row[0]

    async def users_since_last_action(
        self, persona_id: uuid.UUID, reason: str, since: dt.datetime | None = None
    ) -> int:
        """How many users rated the persona's replies (those written from ``since`` on:
        pass its current version's time) negatively giving ``reason``, since that reason
        last moved one of its settings; each user counts once."""
        since = since or dt.datetime.min.replace(tzinfo=dt.UTC)
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                USERS_SINCE_ACTION_SQL, {"persona": persona_id, "reason": reason, "since": since}
            )
            counted = await cur.fetchone()
        return int(counted[0]) if counted else 0

    async def record_action(
        self, persona_id: uuid.UUID, reason: str, version: int, change: str
    ) -> None:
        """Record that ``reason`` moved a setting (``change``), making ``version``."""
        async with self._pool.connection() as conn:
            await conn.execute(RECORD_ACTION_SQL, (persona_id, reason, version, change))

    async def list(
        self,
        *,
        user_id: str | None,
        persona_id: uuid.UUID | None = None,
        limit: int = 100,
        before: dt.datetime | None = None,
    ) -> builtins.list[FeedbackRow]:
        """Ratings newest first: one user's (``user_id``) or everyone's (None)."""
        async with self._pool.connection() as conn:
            cur = await conn.cursor(row_factory=dict_row).execute(
                LIST_SQL,
                {"user": user_id, "persona": persona_id, "before": before, "limit": limit},
            )
            rows = await cur.fetchall()
        return [FeedbackRow(**r) for r in rows]
