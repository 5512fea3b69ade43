"""Read-only aggregates over the conversation record for a persona's quality and
analytics: how its replies were rated, and per UTC day its turns, users, sessions,
ratings, latencies (from ``messages.timings``) and drift (``persona_metrics``).

Nothing here writes: each table's writes stay in its own store (transcripts, feedback,
trait records)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from psycopg_pool import AsyncConnectionPool

RATINGS_SQL = (
    "SELECT count(*) FILTER (WHERE f.rating > 0), count(*) FILTER (WHERE f.rating = 0),"
    " count(*) FILTER (WHERE f.rating < 0)"
    " FROM feedback f JOIN messages m ON m.id = f.message_id WHERE m.persona_id = %s"
)
REASONS_SQL = (
    "SELECT f.reason, count(*) FROM feedback f JOIN messages m ON m.id = f.message_id"
    " WHERE m.persona_id = %s AND f.reason IS NOT NULL GROUP BY f.reason"
    " ORDER BY count(*) DESC, f.reason"
)
# latency percentiles to the first token and to the whole reply, each with the steps
# before the model (persona, memories, prompt) added
DAILY_TURNS_SQL = (
    "SELECT (m.created_at AT TIME ZONE 'UTC')::date AS day, count(*),"
    " count(DISTINCT s.user_id), count(DISTINCT m.session_id),"
    " percentile_cont(0.5) WITHIN GROUP (ORDER BY (m.timings->>'first_token_ms')::float"
    "   + coalesce((m.timings->>'load_persona_ms')::float, 0)"
    "   + coalesce((m.timings->>'retrieve_ms')::float, 0)"
    "   + coalesce((m.timings->>'compose_ms')::float, 0)),"
    " percentile_cont(0.95) WITHIN GROUP (ORDER BY (m.timings->>'first_token_ms')::float"
    "   + coalesce((m.timings->>'load_persona_ms')::float, 0)"
    "   + coalesce((m.timings->>'retrieve_ms')::float, 0)"
    "   + coalesce((m.timings->>'compose_ms')::float, 0)),"
    " percentile_cont(0.5) WITHIN GROUP (ORDER BY (m.timings->>'llm_ms')::float"
    "   + coalesce((m.timings->>'load_persona_ms')::float, 0)"
    "   + coalesce((m.timings->>'retrieve_ms')::float, 0)"
    "   + coalesce((m.timings->>'compose_ms')::float, 0)),"
    " percentile_cont(0.95) WITHIN GROUP (ORDER BY (m.timings->>'llm_ms')::float"
    "   + coalesce((m.timings->>'load_persona_ms')::float, 0)"
    "   + coalesce((m.timings->>'retrieve_ms')::float, 0)"
    "   + coalesce((m.timings->>'compose_ms')::float, 0))"
    " FROM messages m JOIN sessions s ON s.id = m.session_id"
    " WHERE m.persona_id = %s AND m.created_at >= %s AND m.created_at < %s"
    " GROUP BY 1"
)
DAILY_RATINGS_SQL = (
    "SELECT (f.created_at AT TIME ZONE 'UTC')::date, count(*) FILTER (WHERE f.rating > 0),"
    " count(*) FILTER (WHERE f.rating < 0)"
    " FROM feedback f JOIN messages m ON m.id = f.message_id"
    " WHERE m.persona_id = %s AND f.created_at >= %s AND f.created_at < %s GROUP BY 1"
)
DAILY_DRIFT_SQL = (
    "SELECT day, drift FROM persona_metrics WHERE persona_id = %s AND day >= %s AND day <= %s"
)


@dataclass(frozen=True, slots=True)
class Ratings:
    """How a persona's replies were rated: up, neutral, down, and the reasons given."""

    up: int
    neutral: int
    down: int
    reasons: dict[str, int]


@dataclass(frozen=True, slots=True)
class DayTurns:
    """One day's replies of a persona; latencies in ms (None: no reply timed them)."""

    turns: int
    users: int
    sessions: int
    first_token_p50: float | None
    first_token_p95: float | None
    turn_p50: float | None
    turn_p95: float | None


@dataclass(frozen=True, slots=True)
class Daily:
    """A persona's days (only those with something to count): turns, ratings up and
    down, drift."""

    turns: dict[dt.date, DayTurns]
    ratings: dict[dt.date, tuple[int, int]]
    drift: dict[dt.date, float | None]


class Analytics:
    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self._pool = pool

    async def ratings(self, persona_id: uuid.UUID) -> Ratings:
        """Every rating of the persona's replies, counted."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(RATINGS_SQL, (persona_id,))
            row = await cur.fetchone()
            cur = await conn.execute(REASONS_SQL, (persona_id,))
            reasons = {r[0]: int(r[1]) for r in await cur.fetchall()}
        up, neutral, down = (int(row[0]), int(row[1]), int(row[2])) if row else (0, 0, 0)
        return Ratings(up, neutral, down, reasons)

    async def daily(self, persona_id: uuid.UUID, since: dt.date, until: dt.date) -> Daily:
        """Per UTC day from ``since`` to ``until`` (inclusive)."""
        start = dt.datetime.combine(since, dt.time(), dt.UTC)
        end = dt.datetime.combine(until + dt.timedelta(days=1), dt.time(), dt.UTC)
        async with self._pool.connection() as conn:
            cur = await conn.execute(DAILY_TURNS_SQL, (persona_id, start, end))
            turns = {r[0]: DayTurns(*r[1:]) for r in await cur.fetchall()}
            cur = await conn.execute(DAILY_RATINGS_SQL, (persona_id, start, end))
            ratings = {r[0]: (int(r[1]), int(r[2])) for r in await cur.fetchall()}
            cur = await conn.execute(DAILY_DRIFT_SQL, (persona_id, since, until))
            drift = {r[0]: r[1] for r in await cur.fetchall()}
        return Daily(turns, ratings, drift)
