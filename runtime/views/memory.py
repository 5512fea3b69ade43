"""Views of what personas remember of a user: memories, their pages, and search results
with the breakdown of their scores."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import RootModel

from memory import MemoryKind, MemoryRecord, ScoredMemory
from memory import MemoryPage as StoredPage
from memory.types import SpeakerRole
from runtime.views.base import Number, Timestamp, View


class SpeakerView(View):
    name: str
    role: SpeakerRole


class MemoryView(View):
    id: uuid.UUID
    persona_id: str
    user_id: str
    session_id: str | None
    speaker: SpeakerView
    text: str
    kind: MemoryKind
    importance: Number
    pinned: bool
    created_at: Timestamp
    external_id: str | None
    metadata: dict[str, Any]

    @classmethod
    def of(cls, r: MemoryRecord) -> MemoryView:
        return cls(**_memory_fields(r))


def _memory_fields(r: MemoryRecord) -> dict[str, Any]:
    return {
        "id": r.id,
        "persona_id": r.persona_id,
        "user_id": r.user_id,
        "session_id": r.session_id,
        "speaker": SpeakerView(name=r.speaker_name, role=r.speaker_role),
        "text": r.text,
        "kind": r.kind,
        "importance": r.importance,
        "pinned": r.pinned,
        "created_at": r.created_at,
        "external_id": r.external_id,
        "metadata": dict(r.metadata),
    }


class ScoreView(View):
    """How a search result's total came about (see docs/memory.md)."""

    # numbers as computed: a score that comes out as an int is sent as one
    total: Number
    relevance: Number
    keyword: Number
    relevance_z: Number
    keyword_z: Number
    speaker: Number
    recency: Number
    importance: Number
    pinned: bool


class ScoredMemoryView(MemoryView):
    score: ScoreView

    @classmethod
    def of(cls, m: ScoredMemory) -> ScoredMemoryView:  # type: ignore[override]
        s = m.score
        return cls(
            **_memory_fields(m.record),
            score=ScoreView(
                total=round(s.total, 4),
                relevance=round(s.relevance, 4),
                keyword=round(s.keyword, 4),
                relevance_z=round(s.relevance_z, 4),
                keyword_z=round(s.keyword_z, 4),
                speaker=s.speaker,
                recency=round(s.recency, 4),
                importance=round(s.importance, 4),
                pinned=s.pinned,
            ),
        )


class MemoryPage(View):
    """A newest-first page; pass ``next_cursor`` back for the next one."""

    memories: list[MemoryView]
    next_cursor: str | None

    @classmethod
    def of(cls, page: StoredPage) -> MemoryPage:
        return cls(memories=[MemoryView.of(r) for r in page.records], next_cursor=page.next_cursor)


class MemoryResults(View):
    """A search's best memories, best first."""

    results: list[ScoredMemoryView]


class MemoryListing(RootModel[MemoryPage | MemoryResults]):
    """A page of memories, or (with ``?q=``) search results."""

    model_config = {"frozen": True}


class MemoryEnvelope(View):
    memory: MemoryView
