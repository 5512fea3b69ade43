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

# a card read from JSON keeps the picture an earlier PNG of it brought
SAVE_CARD_SQL = (
    "INSERT INTO persona_cards (persona_id, spec, data, picture) VALUES (%s, %s, %s, %s)"
    " ON CONFLICT (persona_id) DO UPDATE"
    " SET spec = EXCLUDED.spec, data = EXCLUDED.data, imported_at = now(),"
    " picture = coalesce(EXCLUDED.picture, persona_cards.picture)"
)
GET_CARD_SQL = "SELECT spec, data FROM persona_cards WHERE persona_id = %s"
GET_PICTURE_SQL = "SELECT picture FROM persona_cards WHERE persona_id = %s"
_KEPT = 10_000  # personas whose card (or its absence) a process keeps


class CardStore:
    def __init__(self, pool: AsyncConnectionPool[Any], *, ttl_s: float = 30.0) -> None:
        self._pool = pool
        self._ttl_s = ttl_s
        self._kept: dict[uuid.UUID, tuple[float, Card | None]] = {}

    async def save(self, persona_id: uuid.UUID, card: Card, picture: bytes | None = None) -> None:
        """Store the persona's card, with the picture of the PNG it came in (a card
        without one keeps the picture stored before)."""
        async with self._pool.connection() as conn:
            await conn.execute(
                SAVE_CARD_SQL, (persona_id, card.spec, Jsonb(dict(card.data)), picture)
            )
        self._kept.pop(persona_id, None)

    async def picture(self, persona_id: uuid.UUID) -> bytes | None:
        """The picture of the PNG card the persona was imported from, if it was."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(GET_PICTURE_SQL, (persona_id,))
            row = await cur.fetchone()
        return None if row is None or row[0] is None else bytes(row[0])

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
