"""The feedback store: a rating only of a message in one's own open session, replaced
when given again; its reason tagged after; negative ratings counted since a reason last
moved a setting; ratings listed newest first."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from memory.record.feedback import FeedbackStore
from memory.record.transcripts import Transcripts
from personas import Actor, PersonaStore
from tests.personas.factory import definition


@pytest.fixture
async def reply(store: PersonaStore, db: AsyncConnectionPool[Any]) -> tuple[Any, Any, Any]:
    """A persona's reply to alice, and the question it answers."""
    persona = await store.create(definition(), Actor("t"))
    transcripts = Transcripts(db)
    session = await transcripts.create_session("alice", [persona.id])
    asked, _ = await transcripts.store_user_message(
        session.id, user_id="alice", speaker="Alice", text="Why is the sky blue?", client_msg_id="c"
    )
    answer, _ = await transcripts.append_persona_message(
        session.id, persona_id=persona.id, speaker="Tutor", text="Scattering.", reply_to=asked.id
    )
    return persona, asked, answer


async def test_a_rating_is_the_raters_and_replaced_when_given_again(
    db: AsyncConnectionPool[Any], reply: Any
) -> None:
    _, _, answer = reply
    feedback = FeedbackStore(db)
    first = await feedback.rate(answer.id, "alice", 1, "clear")
    again = await feedback.rate(answer.id, "alice", -1)
    assert first is not None and again is not None
    assert (again.rating, again.comment, again.reason) == (-1, "", None)
    assert await feedback.rate(answer.id, "bob", 1) is None, "not in one of bob's sessions"
    assert await feedback.rate(uuid.uuid4(), "alice", 1) is None
    assert [(r.user_id, r.rating) for r in await feedback.list(user_id=None)] == [("alice", -1)]


async def test_a_reason_is_tagged_and_counted_until_it_moves_a_setting(
    db: AsyncConnectionPool[Any], reply: Any
) -> None:
    persona, asked, answer = reply
    feedback = FeedbackStore(db)
    await feedback.rate(answer.id, "alice", -1)
    await feedback.rate(asked.id, "alice", -1)
    assert await feedback.tag(answer.id, "alice", "too_long") == persona.id
    assert await feedback.tag(asked.id, "alice", "too_long") is None, "not a persona's reply"
    assert await feedback.tag(answer.id, "bob", "too_long") is None, "bob rated nothing"
    assert await feedback.users_since_last_action(persona.id, "too_long") == 1
    assert await feedback.users_since_last_action(persona.id, "too_formal") == 0
    await feedback.record_action(persona.id, "too_long", 2, "verbosity 0.6 -> 0.55")
    assert await feedback.users_since_last_action(persona.id, "too_long") == 0
    listed = await feedback.list(user_id="alice", persona_id=persona.id)
    assert [(r.message_id, r.persona_slug, r.reason) for r in listed] == [
        (answer.id, "test-tutor", "too_long")
    ]
    assert await feedback.list(user_id="bob") == []
    assert await feedback.list(user_id="alice", before=listed[0].created_at) == []


async def test_a_rating_given_again_keeps_its_time_and_counts_its_user_once(
    db: AsyncConnectionPool[Any], reply: Any
) -> None:
    persona, _, answer = reply
    transcripts = Transcripts(db)
    second, _ = await transcripts.append_persona_message(
        answer.session_id, persona_id=persona.id, speaker="Tutor", text="Rayleigh.", reply_to=None
    )
    feedback = FeedbackStore(db)
    first = await feedback.rate(answer.id, "alice", -1)
    await feedback.rate(second.id, "alice", -1)
    for message in (answer, second):
        await feedback.tag(message.id, "alice", "too_long")
    assert await feedback.users_since_last_action(persona.id, "too_long") == 1, "one user"
    await feedback.record_action(persona.id, "too_long", 2, "verbosity 0.6 -> 0.55")
    again = await feedback.rate(answer.id, "alice", -1, "still long")
    assert first is not None and again is not None
    assert again.created_at == first.created_at, "rating again is not a new rating"
    assert await feedback.users_since_last_action(persona.id, "too_long") == 0
