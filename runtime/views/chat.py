"""Views of conversations: sessions, messages and their pages, what a send or a retry
acknowledges, ratings of replies and what they moved."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import Field

from memory.record.feedback import FeedbackRow
from memory.record.transcripts import Message, MessageCut, MessageStatus, Role, Session
from personas import Persona
from runtime.usecases.feedback import Adjustment, GivenFeedback
from runtime.views.base import Timestamp, View
from runtime.views.personas import PersonaRef


class SessionView(View):
    id: uuid.UUID
    policy: str
    title: str
    personas: list[PersonaRef]
    created_at: Timestamp

    @classmethod
    def of(cls, s: Session, personas: Iterable[Persona]) -> SessionView:
        """``personas``: the session's personas still there (a deleted one is left out)."""
        return cls(
            id=s.id,
            policy=s.policy,
            title=s.title,
            personas=[PersonaRef.of(p) for p in personas],
            created_at=s.created_at,
        )


class MessageView(View):
    id: uuid.UUID
    session_id: uuid.UUID
    seq: int
    role: Role
    persona_id: uuid.UUID | None
    speaker: str
    text: str
    client_msg_id: str | None
    reply_to: uuid.UUID | None
    status: MessageStatus
    cut: MessageCut | None
    traits: dict[str, Any]
    timings: dict[str, Any]
    created_at: Timestamp

    @classmethod
    def of(cls, m: Message, timings: Mapping[str, float] | None = None) -> MessageView:
        """``timings``: the turn's step timings in ms, to send instead of the stored ones
        (``message.done`` has them all, rounded)."""
        return cls(
            id=m.id,
            session_id=m.session_id,
            seq=m.seq,
            role=m.role,
            persona_id=m.persona_id,
            speaker=m.speaker,
            text=m.text,
            client_msg_id=m.client_msg_id,
            reply_to=m.reply_to,
            status=m.status,
            cut=m.cut,
            traits=dict(m.extracted_traits),
            timings=(
                dict(m.timings) if timings is None else {k: round(v, 2) for k, v in timings.items()}
            ),
            created_at=m.created_at,
        )


class MessagePage(View):
    """Messages oldest first; ``before`` is the cursor of the page before this one."""

    messages: list[MessageView]
    before: int | None = Field(description="pass as ?before= for older messages")


class SessionList(View):
    sessions: list[SessionView]


class SessionStarted(View):
    """The ``session.start`` ack: the session and its latest messages."""

    session: SessionView
    history: list[MessageView]
    before: int | None


class MessageSent(View):
    """The ``message.send`` ack: the stored user message; ``duplicate`` when it was
    stored before (same ``client_msg_id``)."""

    message: MessageView
    duplicate: bool


class MessageRetried(View):
    message: MessageView


class LegacyReply(View):
    """The legacy ``chat_message`` ack."""

    session_id: str = Field(alias="sessionId")
    message: MessageView


class FeedbackView(View):
    message_id: uuid.UUID
    rating: Literal[-1, 0, 1]
    comment: str
    created_at: Timestamp
    reason: str | None


class AdjustmentView(View):
    """A setting feedback moved: which, from what to what, and the version it made."""

    setting: str
    old: float
    new: float
    reason: str
    version: int

    @classmethod
    def of(cls, a: Adjustment | None) -> AdjustmentView | None:
        if a is None:
            return None
        return cls(setting=a.setting, old=a.old, new=a.new, reason=a.reason, version=a.version)


class FeedbackResult(View):
    """A stored rating, and the setting its reason moved (null: none)."""

    feedback: FeedbackView
    adjusted: AdjustmentView | None

    @classmethod
    def of(cls, given: GivenFeedback) -> FeedbackResult:
        stored = given.feedback
        return cls(
            feedback=FeedbackView(
                message_id=stored.message_id,
                rating=stored.rating,  # type: ignore[arg-type]  # stored within -1..1
                comment=stored.comment,
                created_at=stored.created_at,
                reason=stored.reason,
            ),
            adjusted=AdjustmentView.of(given.adjusted),
        )


class PersonaSlug(View):
    id: uuid.UUID
    slug: str


class FeedbackEntry(View):
    message_id: uuid.UUID
    persona: PersonaSlug
    user_id: str
    rating: Literal[-1, 0, 1]
    reason: str | None
    comment: str
    created_at: Timestamp

    @classmethod
    def of(cls, r: FeedbackRow) -> FeedbackEntry:
        return cls(
            message_id=r.message_id,
            persona=PersonaSlug(id=r.persona_id, slug=r.persona_slug),
            user_id=r.user_id,
            rating=r.rating,  # type: ignore[arg-type]  # stored within -1..1
            reason=r.reason,
            comment=r.comment,
            created_at=r.created_at,
        )


class FeedbackList(View):
    """Ratings, newest first."""

    feedback: list[FeedbackEntry]


class SessionChannel(View):
    session_id: uuid.UUID
    channel: str | None = Field(description="null: no channel")
