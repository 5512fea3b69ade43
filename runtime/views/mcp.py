"""Views of what the MCP tools answer. An assistant reads them into its context, so each
carries what it needs to act (ids to pass back, who said what and when) and no more:
no system prompts, trait settings or score breakdowns."""

from __future__ import annotations

import uuid

from memory import MemoryRecord, ScoredMemory
from memory.record.facts import Fact, FactOrigin
from memory.record.transcripts import Message, MessageCut, MessageStatus, Session
from memory.types import SpeakerRole
from personas import Persona
from personas.types import PersonaType
from runtime.usecases.replies import Answer
from runtime.views.base import Timestamp, View
from runtime.views.personas import PersonaRef


class PersonaBrief(View):
    """A persona to choose: its ``slug`` names it in every other tool."""

    slug: str
    name: str
    role: str
    description: str
    domains: list[str]
    type: PersonaType

    @classmethod
    def of(cls, p: Persona) -> PersonaBrief:
        return cls(
            slug=p.slug,
            name=p.name,
            role=p.role,
            description=p.description,
            domains=list(p.domains),
            type=p.persona_type,
        )


class PersonaList(View):
    """Active personas by name, a page of ``total``."""

    personas: list[PersonaBrief]
    total: int
    offset: int


class PersonaMatch(PersonaBrief):
    score: float

    @classmethod
    def matched(cls, p: Persona, score: float) -> PersonaMatch:
        return cls(**PersonaBrief.of(p).model_dump(), score=round(score, 4))


class PersonaMatches(View):
    """Active personas ranked by how well they match the query (meaning and words)."""

    query: str
    personas: list[PersonaMatch]


class RememberedLine(View):
    """One memory: pass ``id`` to ``forget``. ``session_id`` is null for a statement
    remembered outside a conversation."""

    id: uuid.UUID
    text: str
    speaker: str
    speaker_role: SpeakerRole
    said_at: Timestamp
    session_id: str | None
    pinned: bool

    @classmethod
    def of(cls, r: MemoryRecord) -> RememberedLine:
        return cls(
            id=r.id,
            text=r.text,
            speaker=r.speaker_name,
            speaker_role=r.speaker_role,
            said_at=r.created_at,
            session_id=r.session_id,
            pinned=r.pinned,
        )


class RecalledLine(RememberedLine):
    """A search result; ``score`` ranks it (meaning, words, recency and importance)."""

    score: float

    @classmethod
    def recalled(cls, m: ScoredMemory) -> RecalledLine:
        return cls(**RememberedLine.of(m.record).model_dump(), score=round(m.score.total, 4))


class RecalledMemories(View):
    persona: str
    user: str
    query: str
    memories: list[RecalledLine]


class MemoryList(View):
    """The newest memories first; pass ``next_cursor`` back for older ones."""

    persona: str
    user: str
    memories: list[RememberedLine]
    next_cursor: str | None


class Remembered(View):
    persona: str
    user: str
    memory: RememberedLine


class Forgotten(View):
    persona: str
    user: str
    memory_id: uuid.UUID


class FactLine(View):
    """What the persona knows about the user: ``current`` while nothing superseded it
    (then ``valid_until`` is null); pass ``id`` to ``correct_fact`` or ``delete_fact``.
    ``origin`` is ``said`` (derived from the messages ``source_ids``) or ``corrected``
    (set by the user)."""

    id: uuid.UUID
    subject: str
    text: str
    current: bool
    valid_from: Timestamp
    valid_until: Timestamp | None
    superseded_by: uuid.UUID | None
    source_ids: list[uuid.UUID]
    origin: FactOrigin

    @classmethod
    def of(cls, f: Fact) -> FactLine:
        return cls(
            id=f.id,
            subject=f.subject,
            text=f.text,
            current=f.current,
            valid_from=f.valid_from,
            valid_until=f.valid_until,
            superseded_by=f.superseded_by,
            source_ids=list(f.source_ids),
            origin=f.origin,
        )


class KnownFacts(View):
    """The user's facts by subject, the most recent first (with ``history``, the
    superseded ones too)."""

    persona: str
    user: str
    facts: list[FactLine]


class FactCorrected(View):
    """The correcting fact: current, on the corrected one's subject, which it
    supersedes (that one stays as history)."""

    persona: str
    user: str
    fact: FactLine


class FactDeleted(View):
    persona: str
    user: str
    fact_id: uuid.UUID


class SessionOpened(View):
    """A new conversation: pass ``session_id`` to ``chat``. ``greeting`` is the
    persona's opening line when its character card has one."""

    session_id: uuid.UUID
    persona: PersonaRef
    greeting: str | None

    @classmethod
    def of(cls, session: Session, persona: Persona, greeting: Message | None) -> SessionOpened:
        return cls(
            session_id=session.id,
            persona=PersonaRef.of(persona),
            greeting=greeting.text if greeting is not None else None,
        )


class ReplyLine(View):
    """A persona's stored reply. ``status`` is ``incomplete`` when the model's stream
    broke (the part written is kept); ``cut`` says why a reply was ended early (its
    length, a repetition, another speaker's line), else null."""

    message_id: uuid.UUID
    persona: str
    speaker: str
    text: str
    status: MessageStatus
    cut: MessageCut | None


class TurnError(View):
    persona: str | None
    code: str
    message: str


class ChatAnswer(View):
    """The replies to a message (one per persona that answered), and what failed."""

    session_id: uuid.UUID
    message_id: uuid.UUID
    replies: list[ReplyLine]
    errors: list[TurnError]

    @classmethod
    def of(cls, answer: Answer) -> ChatAnswer:
        return cls(
            session_id=answer.message.session_id,
            message_id=answer.message.id,
            replies=[
                ReplyLine(
                    message_id=r.message.id,
                    persona=r.persona.slug,
                    speaker=r.message.speaker,
                    text=r.message.text,
                    status=r.message.status,
                    cut=r.message.cut,
                )
                for r in answer.replies
            ],
            errors=_errors(answer),
        )


def _errors(answer: Answer) -> list[TurnError]:
    return [
        TurnError(
            persona=f.persona.slug if f.persona is not None else None,
            code=f.code,
            message=f.message,
        )
        for f in answer.failures
    ]
