"""Trait records in PostgreSQL: each reply's observations (``reply_observations``), its
message's summary (``messages.extracted_traits``), the observed profiles of a persona per
session and overall (``trait_profiles``) and its daily counters (``persona_metrics``).

The store deals in plain data: a profile is its encoded form (``{"alpha": …, "stats":
{name: [mean, count, last, confidence]}}``) with its turn count; folding observations into
it, and what drift it shows, is the trait tracker's business (``agents.tracker``).

A reply is recorded in one statement (:meth:`TraitRecords.record`), which saves the
session profile only over the turn count it was folded from. When the row has moved on,
:meth:`TraitRecords.locked` holds the row under a lock for one transaction, for the
caller to read it, fold again and save; the overall profile is folded that way too, and
saved together with the day's ``persona_metrics``."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from memory.record.turn_transaction import read_connection

LOAD_PROFILE_SQL = (
    "SELECT stats, turns FROM trait_profiles WHERE persona_id = %s"
    " AND session_id IS NOT DISTINCT FROM %s"
)
CREATE_PROFILE_SQL = (
    "INSERT INTO trait_profiles (persona_id, session_id) VALUES (%s, %s) ON CONFLICT DO NOTHING"
)
LOCK_PROFILE_SQL = LOAD_PROFILE_SQL + " FOR UPDATE"
SAVE_PROFILE_SQL = (
    "UPDATE trait_profiles SET stats = %s, turns = %s, drift = %s, updated_at = now()"
    " WHERE persona_id = %s AND session_id IS NOT DISTINCT FROM %s"
)
COUNT_TURNS_SQL = (
    "INSERT INTO persona_metrics (persona_id, day, turns, drift)"
    " VALUES (%s, current_date, %s, %s) ON CONFLICT (persona_id, day)"
    " DO UPDATE SET turns = persona_metrics.turns + EXCLUDED.turns,"
    " drift = EXCLUDED.drift"
)

# one reply's observations, its message's summary and its session profile, atomically;
# the profile is saved only over the turn count it was folded from (else no row)
RECORD_SQL = """
WITH observed AS (
    INSERT INTO reply_observations (message_id, persona_id, session_id, observations)
    SELECT %(message)s, %(persona)s, %(session)s, %(observations)s
    WHERE jsonb_array_length(%(observations)s) > 0
), summarised AS (
    UPDATE messages SET extracted_traits = %(summary)s WHERE id = %(message)s
)
INSERT INTO trait_profiles AS p (persona_id, session_id, stats, turns, drift)
VALUES (%(persona)s, %(session)s, %(stats)s, %(turns)s, %(drift)s)
ON CONFLICT (persona_id, session_id) WHERE session_id IS NOT NULL DO UPDATE
    SET stats = EXCLUDED.stats, turns = EXCLUDED.turns, drift = EXCLUDED.drift,
        updated_at = now()
    WHERE p.turns = %(known_turns)s
RETURNING p.turns
"""


@dataclass(frozen=True, slots=True)
class StoredProfile:
    """A profile row: the encoded profile (``{}`` while nothing was folded) and the number
    of turns folded into it."""

    stats: dict[str, Any]
    turns: int


@dataclass(frozen=True, slots=True)
class LockedProfile:
    """A profile row held under a row lock until its transaction ends (see
    :meth:`TraitRecords.locked`); saves go into that transaction."""

    persona_id: uuid.UUID
    session_id: uuid.UUID | None
    stored: StoredProfile
    _conn: AsyncConnection[Any]

    async def save(self, stats: Mapping[str, Any], turns: int, drift: float) -> None:
        """Replace the profile with ``stats`` folded over ``turns`` turns."""
        await self._conn.execute(
            SAVE_PROFILE_SQL, (Jsonb(dict(stats)), turns, drift, self.persona_id, self.session_id)
        )

    async def save_overall(
        self, stats: Mapping[str, Any], turns: int, drift: float, *, replies: int
    ) -> None:
        """Save the persona's overall profile and add ``replies`` turns (with the drift
        now) to today's ``persona_metrics``, in the same transaction."""
        if self.session_id is not None:
            raise ValueError("save_overall is for the overall profile (no session)")
        await self.save(stats, turns, drift)
        await self._conn.execute(COUNT_TURNS_SQL, (self.persona_id, replies, drift))


class TraitRecords:
    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self._pool = pool

    async def record(
        self,
        *,
        persona_id: uuid.UUID,
        session_id: uuid.UUID,
        message_id: uuid.UUID,
        observations: Sequence[Mapping[str, Any]],
        summary: Mapping[str, Any],
        stats: Mapping[str, Any],
        turns: int,
        drift: float,
        known_turns: int,
    ) -> int | None:
        """Store one reply's observations (``{"trait", "value", "method",
        "confidence"}`` each; none stores no row) and its message's summary, and save its
        session profile (``stats`` over ``turns``), in one statement. The profile is saved
        only if its row still has ``known_turns`` (or is new); returns the stored turn
        count, or None when the row had moved on and the profile was not saved (the
        observations and summary are stored either way)."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                RECORD_SQL,
                {
                    "persona": persona_id,
                    "session": session_id,
                    "message": message_id,
                    "observations": Jsonb([dict(o) for o in observations]),
                    "summary": Jsonb(dict(summary)),
                    "stats": Jsonb(dict(stats)),
                    "turns": turns,
                    "drift": drift,
                    "known_turns": known_turns,
                },
            )
            row = await cur.fetchone()
        return None if row is None else int(row[0])

    async def load_profile(
        self, persona_id: uuid.UUID, session_id: uuid.UUID | None = None
    ) -> StoredProfile | None:
        """A profile as stored, overall (no session) or for one session; None if there
        is no row yet. Inside a turn, in the transaction that holds the session's turn
        lock (:mod:`memory.record.turn_transaction`)."""
        async with read_connection(self._pool) as conn:
            cur = await conn.cursor(row_factory=dict_row).execute(
                LOAD_PROFILE_SQL, (persona_id, session_id)
            )
            row = await cur.fetchone()
        return None if row is None else StoredProfile(row["stats"], row["turns"])

    @asynccontextmanager
    async def locked(
        self, persona_id: uuid.UUID, session_id: uuid.UUID | None = None
    ) -> AsyncIterator[LockedProfile]:
        """A profile row (created empty if missing) under a row lock, in one transaction
        that commits when the block ends (and rolls back if it raises): what the block
        saves is folded from what it read, whoever else writes the row."""
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute(CREATE_PROFILE_SQL, (persona_id, session_id))
            cur = await conn.cursor(row_factory=dict_row).execute(
                LOCK_PROFILE_SQL, (persona_id, session_id)
            )
            row = await cur.fetchone()
            assert row is not None
            yield LockedProfile(
                persona_id, session_id, StoredProfile(row["stats"], int(row["turns"])), conn
            )
