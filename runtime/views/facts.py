"""Views of what a persona knows about a user: facts with their validity and sources."""

from __future__ import annotations

import uuid

from memory.record.facts import Fact, FactOrigin
from runtime.views.base import Timestamp, View


class FactView(View):
    id: uuid.UUID
    persona_id: uuid.UUID
    user_id: str
    subject: str
    text: str
    current: bool
    origin: FactOrigin
    """``said`` (derived from the user's messages) or ``corrected`` (set by the user)."""
    source_ids: list[uuid.UUID]
    """The messages it was derived from."""
    valid_from: Timestamp
    valid_until: Timestamp | None
    superseded_by: uuid.UUID | None
    created_at: Timestamp

    @classmethod
    def of(cls, f: Fact) -> FactView:
        return cls(
            id=f.id,
            persona_id=f.persona_id,
            user_id=f.user_id,
            subject=f.subject,
            text=f.text,
            current=f.current,
            origin=f.origin,
            source_ids=list(f.source_ids),
            valid_from=f.valid_from,
            valid_until=f.valid_until,
            superseded_by=f.superseded_by,
            created_at=f.created_at,
        )


class FactList(View):
    """A user's facts, current and superseded, by subject, the most recent first."""

    facts: list[FactView]


class FactEnvelope(View):
    fact: FactView


__all__ = ["FactEnvelope", "FactList", "FactView"]
