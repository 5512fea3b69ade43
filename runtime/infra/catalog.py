"""Semantic persona search: every live persona embedded (name, role, description,
domains, beliefs) in the vector store, under a scope of its own, and ranked by meaning
and text together.

The catalog is brought up to date before each search: it compares each live persona's
version with the version it last embedded, so writes by any process (REST, CLI, import,
evolution) are picked up, and soft-deleted personas leave it."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass

from memory import Embedder, MemoryRecord, VectorIndex
from memory.types import MemoryQuery
from personas import Persona, PersonaNotFound, PersonaStore

log = logging.getLogger(__name__)

CATALOG_SCOPE = "personae-catalog"
"""The vector store scope of persona embeddings (persona scopes are UUIDs)."""
CATALOG_USER = "catalog"
TEXT_WEIGHT = 0.25
"""How much a full-text match (PostgreSQL, by its rank relative to the best) adds to
the cosine similarity of the query and the persona."""
_BATCH = 64


def embedding_text(p: Persona) -> str:
    """What a persona's embedding is made of: who it is, what it knows and believes."""
    parts = [p.name, p.role, p.description]
    if p.domains:
        parts.append("Domains: " + ", ".join(p.domains))
    parts.extend(b.text for b in p.beliefs)
    return "\n".join(part for part in parts if part)


@dataclass(frozen=True, slots=True)
class CatalogHit:
    persona: Persona
    score: float
    meaning: float
    text: float


class PersonaCatalog:
    def __init__(
        self,
        personas: PersonaStore,
        index: VectorIndex,
        embedder: Embedder,
    ) -> None:
        self._personas = personas
        self._index = index
        self._embedder = embedder
        self._known: dict[uuid.UUID, int] = {}
        self._syncing = asyncio.Lock()

    async def sync(self) -> int:
        """Embed the personas that changed since this process last looked; returns how
        many were (re)embedded."""
        async with self._syncing:
            live = await self._personas.live_versions()
            gone = [pid for pid in self._known if pid not in live]
            if gone:
                await self._index.delete(gone, persona_id=CATALOG_SCOPE)
                for pid in gone:
                    self._known.pop(pid, None)
            stale = [pid for pid, version in live.items() if self._known.get(pid) != version]
            for start in range(0, len(stale), _BATCH):
                found: list[Persona] = []
                for pid in stale[start : start + _BATCH]:
                    try:
                        found.append(await self._personas.get(pid))
                    except PersonaNotFound:
                        continue
                if not found:
                    continue
                vectors = await self._embedder.embed([embedding_text(p) for p in found])
                records = [_record(p) for p in found]
                await self._index.upsert(records, vectors)
                for p in found:
                    self._known[p.id] = p.version
            if stale:
                log.info("persona catalog: %d persona(s) embedded", len(stale))
            return len(stale)

    async def search(self, query: str, *, limit: int = 10) -> list[CatalogHit]:
        """Live personas ranked by meaning (cosine similarity) plus a full-text bonus."""
        await self.sync()
        vector = await self._embedder.embed_one(query)
        scored = await self._index.search(
            MemoryQuery(
                persona_id=CATALOG_SCOPE,
                user_id=None,
                text=query,
                vector=vector,
                k=max(limit * 3, 20),
            )
        )
        text_hits = await self._personas.search(query, limit=50)
        best = max((h.rank for h in text_hits), default=0.0)
        text_rank = {h.persona.id: h.rank / best for h in text_hits} if best > 0 else {}
        meaning = {m.record.id: m.score.relevance for m in scored}
        hits: list[CatalogHit] = []
        stale: list[uuid.UUID] = []
        for persona_id in dict.fromkeys([*meaning, *text_rank]):
            try:
                persona = await self._personas.get(persona_id)
            except PersonaNotFound:  # deleted before this process embedded anything
                stale.append(persona_id)
                continue
            m, t = meaning.get(persona_id, 0.0), text_rank.get(persona_id, 0.0)
            hits.append(CatalogHit(persona, m + TEXT_WEIGHT * t, m, t))
        if stale:
            await self._index.delete(stale, persona_id=CATALOG_SCOPE)
        hits.sort(key=lambda h: (-h.score, h.persona.name))
        return hits[:limit]


def _record(p: Persona) -> MemoryRecord:
    return MemoryRecord(
        id=p.id,
        persona_id=CATALOG_SCOPE,
        user_id=CATALOG_USER,
        session_id=None,
        speaker_name=p.name,
        speaker_role="system",
        text=embedding_text(p),
        kind="fact",
        importance=0.5,
        created_at=p.created_at,
        metadata={"slug": p.slug, "version": p.version},
    )
