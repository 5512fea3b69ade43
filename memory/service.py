"""MemoryService: what the turn graph, the inspection API and the CLI call.

It owns the embedder, the vector index and the transcripts, so callers never embed or
filter by hand: recall for a turn, remember a turn's lines, and the inspection
operations (list, search with score breakdown, get, delete, pin, importance, forget a
session or a user in both stores)."""

from __future__ import annotations

import builtins
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

import numpy as np

from memory.errors import MemoryNotFound
from memory.record.facts import Fact, FactStore
from memory.record.summaries import SummaryStore
from memory.record.transcripts import Transcripts
from memory.types import (
    Embedder,
    ImportanceRater,
    JSONValue,
    Matrix,
    MemoryFilter,
    MemoryKind,
    MemoryPage,
    MemoryQuery,
    MemoryRecord,
    Purpose,
    ScoredMemory,
    SpeakerRole,
    Vector,
    spoken_line,
)
from memory.vector.importance import HeuristicImportance
from memory.vector.index import VectorIndex
from memory.vector.scoring import ScoringWeights

SPEAKER_WEIGHT = 0.4
"""How much of the speaker's vector a stored memory's vector holds (see
:func:`stored_vectors`)."""
_SPEAKERS_KEPT = 10_000


def stored_vectors(lines: Matrix, speakers: Matrix, weight: float = SPEAKER_WEIGHT) -> Matrix:
    """What a memory is stored as: its line's vector (the text alone, as a query is
    embedded) plus ``weight`` times its speaker's (``"Name:"``), normalised. It stands
    for the line embedded with its speaker (``"Name: text"``, cosine about 0.94 to it on
    LoCoMo) so that questions naming who said something find it, while each new line is
    embedded once: a turn's query vector is also its memory's."""
    mixed = np.asarray(lines, dtype=np.float32) + weight * np.asarray(speakers, dtype=np.float32)
    norms = np.linalg.norm(mixed, axis=1, keepdims=True)
    out: Matrix = (mixed / np.maximum(norms, 1e-12)).astype(np.float32)
    return out


def speaker_text(name: str) -> str:
    """What a speaker's vector embeds."""
    return f"{name}:"


@dataclass(frozen=True, slots=True)
class Recall:
    """A turn's retrieval: the query embedding (the user's line alone, which its memory
    is stored from, see :func:`stored_vectors`) and the memories found."""

    vector: Vector
    memories: list[ScoredMemory]


@dataclass(frozen=True, slots=True)
class NewMemory:
    """A line to remember; ``vector`` when its text was already embedded alone (the
    user's query, the reply for its traits): the stored vector adds the speaker's."""

    persona_id: str
    user_id: str
    session_id: str | None
    speaker_name: str
    speaker_role: SpeakerRole
    text: str
    kind: MemoryKind = "turn"
    vector: Vector | None = None
    importance: float | None = None
    created_at: datetime | None = None
    pinned: bool = False
    external_id: str | None = None
    metadata: dict[str, JSONValue] = field(default_factory=dict)
    id: uuid.UUID | None = None
    """A fixed id makes storing the same line again an overwrite (imports)."""
    context: tuple[str, ...] = ()
    """The lines said around it, ``"Speaker: text"`` (see :attr:`MemoryRecord.context`)."""

    @property
    def spoken(self) -> str:
        """The line with its speaker (:attr:`MemoryRecord.spoken`), as a neighbour's
        context shows it."""
        return spoken_line(self.speaker_name, self.text)


class MemoryService:
    def __init__(
        self,
        index: VectorIndex,
        embedder: Embedder,
        transcripts: Transcripts,
        *,
        weights: ScoringWeights | None = None,
        importance: ImportanceRater | None = None,
        facts: FactStore | None = None,
        summaries: SummaryStore | None = None,
    ) -> None:
        self.facts = facts
        """What is known about users, forgotten with them (``user_facts``)."""
        self.summaries = summaries
        """Session summaries: those that left out statements true again are rewritten."""
        self.index = index
        self.embedder = embedder
        self.transcripts = transcripts
        self.weights = weights or ScoringWeights()
        self.importance = importance or HeuristicImportance()
        self._speakers: OrderedDict[str, Vector] = OrderedDict()

    # the turn path ------------------------------------------------------------------

    async def recall(
        self, *, persona_id: str, user_id: str, text: str, k: int, session_id: str | None = None
    ) -> Recall:
        """Embed ``text`` once and find what this persona remembers of this user."""
        vector = await self.embedder.embed_one(text)
        query = MemoryQuery(
            persona_id=persona_id,
            user_id=user_id,
            text=text,
            vector=vector,
            k=k,
            session_id=session_id,
        )
        return Recall(vector, await self.index.search(query, self.weights))

    async def remember(
        self, items: Sequence[NewMemory], *, purpose: Purpose = "line"
    ) -> list[MemoryRecord]:
        """Store lines as memories, embedding (in one batch) the texts of those without a
        vector; each is stored with its speaker's vector added (:func:`stored_vectors`).
        ``purpose``: what the embedder counts the texts as (``"memory"`` for what
        background work derives, so that a turn's own texts stay apart).

        A given ``vector`` must be the embedding of the item's text alone, as those made
        here are."""
        if not items:
            return []
        missing = [i for i, m in enumerate(items) if m.vector is None]
        embedded = (
            await self.embedder.embed([items[i].text for i in missing], purpose=purpose)
            if missing
            else None
        )
        lines = np.empty((len(items), self.embedder.dim), dtype=np.float32)
        for row, item in enumerate(items):
            if item.vector is not None:
                lines[row] = item.vector
        if embedded is not None:
            lines[missing] = embedded
        vectors = stored_vectors(lines, await self.speaker_vectors([m.speaker_name for m in items]))
        records = []
        for item in items:
            importance = item.importance
            if importance is None:
                importance = await self.importance.rate(
                    item.text, kind=item.kind, speaker_role=item.speaker_role
                )
            record = MemoryRecord.new(
                persona_id=item.persona_id,
                user_id=item.user_id,
                session_id=item.session_id,
                speaker_name=item.speaker_name,
                speaker_role=item.speaker_role,
                text=item.text,
                kind=item.kind,
                importance=importance,
                created_at=item.created_at,
                pinned=item.pinned,
                external_id=item.external_id,
                metadata=item.metadata,
                context=item.context,
            )
            records.append(record if item.id is None else replace(record, id=item.id))
        await self.index.upsert(records, vectors)
        return records

    async def speaker_vectors(self, names: Sequence[str]) -> Matrix:
        """Each speaker's vector (:func:`speaker_text`), embedded once per process and
        kept; a line without a speaker adds nothing."""
        new = sorted({n for n in names if n and n not in self._speakers})
        if new:
            for name, vector in zip(
                new,
                await self.embedder.embed([speaker_text(n) for n in new], purpose="speaker"),
                strict=True,
            ):
                self._speakers[name] = vector
        out = np.zeros((len(names), self.embedder.dim), dtype=np.float32)
        for row, name in enumerate(names):
            if name:
                out[row] = self._speakers[name]
                self._speakers.move_to_end(name)
        while len(self._speakers) > _SPEAKERS_KEPT:
            self._speakers.popitem(last=False)
        return out

    # inspection -----------------------------------------------------------------------

    async def list(
        self, where: MemoryFilter, *, limit: int = 50, cursor: str | None = None
    ) -> MemoryPage:
        return await self.index.list_memories(where, limit=limit, cursor=cursor)

    async def search(
        self,
        *,
        persona_id: str,
        user_id: str | None,
        text: str,
        k: int = 10,
        session_id: str | None = None,
        kinds: frozenset[MemoryKind] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> builtins.list[ScoredMemory]:
        """Semantic + keyword search with each result's score breakdown."""
        vector = await self.embedder.embed_one(text)
        return await self.index.search(
            MemoryQuery(
                persona_id=persona_id,
                user_id=user_id,
                text=text,
                vector=vector,
                k=k,
                session_id=session_id,
                kinds=kinds,
                since=since,
                until=until,
            ),
            self.weights,
        )

    async def get(
        self, memory_id: uuid.UUID, *, persona_id: str, user_id: str | None = None
    ) -> MemoryRecord:
        record = await self.index.get(memory_id, persona_id=persona_id, user_id=user_id)
        if record is None:
            raise MemoryNotFound(memory_id)
        return record

    async def delete(
        self, memory_id: uuid.UUID, *, persona_id: str, user_id: str | None = None
    ) -> None:
        await self.get(memory_id, persona_id=persona_id, user_id=user_id)
        await self.index.delete([memory_id], persona_id=persona_id, user_id=user_id)

    async def set_pinned(
        self, memory_id: uuid.UUID, pinned: bool, *, persona_id: str, user_id: str | None = None
    ) -> MemoryRecord:
        # the index raises MemoryNotFound for a memory outside the scope
        await self.index.set_pinned(memory_id, pinned, persona_id=persona_id, user_id=user_id)
        return await self.get(memory_id, persona_id=persona_id, user_id=user_id)

    async def set_importance(
        self,
        memory_id: uuid.UUID,
        importance: float,
        *,
        persona_id: str,
        user_id: str | None = None,
    ) -> MemoryRecord:
        await self.index.set_importance(
            memory_id, importance, persona_id=persona_id, user_id=user_id
        )
        return await self.get(memory_id, persona_id=persona_id, user_id=user_id)

    # facts ----------------------------------------------------------------------------

    async def index_fact(self, fact: Fact, user_name: str, *, session_id: str | None) -> None:
        """Write a current fact to the vector index as a ``fact`` memory (id = the fact's),
        said by ``user_name``."""
        await self.remember(
            [
                NewMemory(
                    persona_id=str(fact.persona_id),
                    user_id=fact.user_id,
                    session_id=session_id,
                    speaker_name=user_name,
                    speaker_role="user",
                    text=fact.text,
                    kind="fact",
                    created_at=fact.valid_from,
                    metadata={
                        "fact_id": str(fact.id),
                        "subject": fact.subject,
                        "valid_from": fact.valid_from.isoformat(),
                        "act": "statement",
                    },
                    id=fact.id,
                )
            ],
            purpose="memory",  # background work: not one of a turn's own texts
        )

    async def mark_superseded(
        self, persona_id: uuid.UUID, message_ids: Sequence[uuid.UUID], superseded: bool
    ) -> None:
        """Set aside (or take back) the memories of these statements and of the persona's
        replies to them (their memories have the message's id): ``superseded`` in their
        metadata, which ranks them after every other candidate."""
        ids = set(message_ids) | set(await self.transcripts.reply_ids(list(message_ids)))
        for memory_id in ids:
            try:
                await self.index.set_metadata(
                    memory_id, {"superseded": superseded}, persona_id=str(persona_id)
                )
            except MemoryNotFound:
                pass  # no memory of that line (not stored, forgotten)

    async def forget_session(self, session_id: uuid.UUID) -> tuple[int, int]:
        """Forget a session in both stores, with the facts derived only from its
        messages, as if it had never been: a fact one of those had superseded is current
        again (back in the index, its statements no longer set aside) when nothing kept
        supersedes it. Returns (messages, memories) removed."""
        if self.facts is not None:
            forgotten = await self.facts.delete_from_session(session_id)
            for fact in forgotten.deleted:
                await self.index.delete([fact.id], persona_id=str(fact.persona_id))
            for again in forgotten.restored:
                where = str(again.session_id) if again.session_id is not None else None
                await self.index_fact(again.fact, again.speaker, session_id=where)
                await self.mark_superseded(again.fact.persona_id, again.fact.source_ids, False)
            if self.summaries is not None and forgotten.restored:
                # their sessions' summaries left those statements out: written again
                await self.summaries.requeue(
                    [s for again in forgotten.restored for s in again.fact.source_ids]
                )
        memories = await self.index.forget_session(str(session_id))
        messages = await self.transcripts.delete_session(session_id)
        return messages, memories

    async def forget_user(self, user_id: str) -> tuple[int, int]:
        """Forget everything of a user in both stores, facts included; returns
        (sessions, memories)."""
        if self.facts is not None:
            await self.facts.delete_user(user_id)
        memories = await self.index.forget_user(user_id)
        sessions = await self.transcripts.delete_user(user_id)
        return sessions, memories
