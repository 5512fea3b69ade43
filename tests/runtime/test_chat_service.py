"""The chat service's use cases that the transports call instead of deciding for
themselves: get-or-create a session (``/v1``), the running turns of a message, replaying
a message sent again, and feedback that may move a setting."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agents.fake_llm import FakeStreamingChatModel
from agents.types import NullEvents
from personas import Actor, Persona
from runtime.errors import ChatError
from runtime.infra.auth import Principal
from runtime.infra.metrics import Metrics
from runtime.infra.ratelimit import Limits, RateLimiter
from runtime.usecases.chat import ChatService
from tests.personas.factory import definition

ALICE = Principal("alice", "user")
BOB = Principal("bob", "user")
REPLY = "Light is a wave and a particle at once."


@pytest.fixture
def model() -> FakeStreamingChatModel:
    return FakeStreamingChatModel(reply=REPLY, token_delay_s=0.02)


@pytest.fixture
async def chat(services_factory: Any, model: FakeStreamingChatModel) -> AsyncIterator[ChatService]:
    async with services_factory(model) as services:
        limiter = RateLimiter(
            services.redis,
            Limits(messages_per_minute=100, concurrent_turns=10),
            namespace=f"test-{uuid.uuid4().hex[:8]}",
        )
        yield ChatService(services, limiter, Metrics.create())


async def _tutor(chat: ChatService, slug: str = "tutor") -> Persona:
    return await chat.services.personas.create(definition(slug), Actor("t", is_admin=True))


async def test_a_session_is_opened_once_however_many_ask_at_once(chat: ChatService) -> None:
    tutor, other = await _tutor(chat), await _tutor(chat, "other-tutor")
    chosen = uuid.uuid4()
    opened = await asyncio.gather(
        *(chat.open_session(ALICE, tutor, session_id=chosen, title="v1") for _ in range(5))
    )
    assert {s.id for s in opened} == {chosen}
    assert [s.id for s in await chat.services.memory.transcripts.list_sessions("alice")] == [chosen]
    with pytest.raises(ChatError) as theirs:
        await chat.open_session(BOB, tutor, session_id=chosen)
    assert theirs.value.code == "forbidden"
    with pytest.raises(ChatError) as without:
        await chat.open_session(ALICE, other, session_id=chosen)
    assert without.value.code == "invalid_payload" and "other-tutor" in str(without.value)


async def test_a_resent_message_waits_for_its_turn_then_replays_the_stored_reply(
    chat: ChatService, model: FakeStreamingChatModel
) -> None:
    tutor = await _tutor(chat)
    session, _ = await chat.start_session(ALICE, [tutor.slug])
    sent = await chat.send(
        ALICE,
        user_name="Alice",
        session_id=session.id,
        text="What is light?",
        client_msg_id="c1",
        events=NullEvents(),
    )
    assert not await chat.wait_for_turn(sent.message.id, 0), "the turn has only begun"
    assert await chat.wait_for_turn(sent.message.id, 30)
    assert await chat.wait_for_turn(uuid.uuid4(), 0), "no turn runs for an unknown message"
    assert model.calls == 1
    replayed = await chat.answer_again(
        ALICE, session, sent.message, user_name="Alice", events=NullEvents()
    )
    assert [r.status for r in replayed] == ["complete"]
    assert model.calls == 1, "the stored reply, not a new one"
    stored = (await chat.services.memory.transcripts.history(session.id)).items
    assert [(m.role, m.text) for m in stored] == [("user", "What is light?"), ("persona", REPLY)]


async def test_feedback_is_the_raters_and_says_what_it_stored(chat: ChatService) -> None:
    tutor = await _tutor(chat)
    session, _ = await chat.start_session(ALICE, [tutor.slug])
    sent = await chat.send(
        ALICE,
        user_name="Alice",
        session_id=session.id,
        text="What is light?",
        client_msg_id="c1",
        events=NullEvents(),
    )
    assert await chat.wait_for_turn(sent.message.id, 30)
    reply = (await chat.services.memory.transcripts.history(session.id)).items[-1]
    given = await chat.feedback(ALICE, reply.id, -1, "long-winded", "too_long")
    assert (given.feedback.rating, given.feedback.comment, given.feedback.reason) == (
        -1,
        "long-winded",
        "too_long",
    )
    assert given.adjusted is None, "one rating moves nothing"
    with pytest.raises(ChatError) as theirs:
        await chat.feedback(BOB, reply.id, 1)
    assert theirs.value.code == "forbidden"
    with pytest.raises(ChatError) as nowhere:
        await chat.feedback(ALICE, uuid.uuid4(), 1)
    assert nowhere.value.code == "message_not_found"
