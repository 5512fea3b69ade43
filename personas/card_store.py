"""Imported character cards in PostgreSQL (``persona_cards``), one per persona, with a
short-lived in-process copy: a turn asks for its persona's card before every reply, and
most personas have none."""

from __future__ import annotations

import time
import uuid
from typing import Any

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from personas.cards import Card

SAVE_CARD_SQL = (
    "INSERT INTO persona_cards (persona_id, spec, data) VALUES (%s, %s, %s)"
    " ON CONFLICT (persona_id) DO UPDATE"
    " SET spec = EXCLUDED.spec, data = EXCLUDED.data, imported_at = now()"
)
GET_CARD_SQL = "SELECT spec, data FROM persona_cards WHERE persona_id = %s"
_KEPT = 10_000  # personas whose card (or its absence) a process keeps


class CardStore:
    def __init__(self, pool: AsyncConnectionPool[Any], *, ttl_s: float = 30.0) -> None:
        self._pool = pool
        self._ttl_s = ttl_s
        self._kept: dict[uuid.UUID, tuple[float, Card | None]] = {}

    async def save(self, persona_id: uuid.UUID, card: Card) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(SAVE_CARD_SQL, (persona_id, card.spec, Jsonb(dict(card.data))))
        self._kept.pop(persona_id, None)

    async def get(self, persona_id: uuid.UUID) -> Card | None:
        """The persona's card, as stored at most ``ttl_s`` ago (other processes' imports
        show within that time)."""
        now = time.monotonic()
        kept = self._kept.get(persona_id)
        if kept is not None and now - kept[0] < self._ttl_s:
            return kept[1]
        async with self._pool.connection() as conn:
            cur = await conn.execute(GET_CARD_SQL, (persona_id,))
            row = await cur.fetchone()
        card = None if row is None else Card(row[0], row[1])
        if len(self._kept) >= _KEPT:
            self._kept.clear()
        self._kept[persona_id] = (now, card)
        return card
