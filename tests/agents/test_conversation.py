"""A two-persona conversation on the fake model, end to end through the director, the
graph, PostgreSQL, Redis and Qdrant Edge."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import BaseMessage

from agents.fake_llm import FakeStreamingChatModel
from memory import MemoryFilter
from memory.record.transcripts import Message
from personas import Actor, Persona
from tests.personas.factory import definition

ADMIN = Actor("admin", is_admin=True)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    async def started(self, persona: Persona, reply_id: uuid.UUID) -> None:
        self.events.append(("started", persona.slug, str(reply_id)))

    async def token(self, persona: Persona, reply_id: uuid.UUID, delta: str) -> None:
        self.events.append(("token", persona.slug, delta))

    async def done(self, persona: Persona, message: Message, timings: Mapping[str, float]) -> None:
        self.events.append(("done", persona.slug, message.text))

    async def failed(self, persona: Persona | None, code: str, message: str) -> None:
        self.events.append(("failed", persona.slug if persona else "-", code))

    async def traits(self, persona: Persona, update: Any) -> None:
        self.events.append(("traits", persona.slug, f"{update.session_drift.score:.2f}"))

    def of(self, kind: str) -> list[tuple[str, str, str]]:
        return [e for e in self.events if e[0] == kind]


def _reply(messages: Sequence[BaseMessage]) -> str:
    system = str(messages[0].content)
    who = "Ada" if "You are Ada" in system else "Blaise"
    # a misbehaving model that also writes a line for the other persona
    other = "Blaise" if who == "Ada" else "Ada"
    return f"I am {who} and I find that fascinating indeed!\n{other}: I agree with everything."


async def test_two_personas_order_attribution_memories_traits(services_factory: Any) -> None:
    model = FakeStreamingChatModel(reply=_reply)
    async with services_factory(model) as services:
        ada = await services.personas.create(
            definition(
                "ada",
                name="Ada",
                system_prompt="You are Ada, a mathematician.",
                traits=[{"name": "humour", "type": "style", "value": 0.9}],
            ),
            ADMIN,
        )
        blaise = await services.personas.create(
            definition("blaise", name="Blaise", system_prompt="You are Blaise, a philosopher."),
            ADMIN,
        )
        transcripts = services.memory.transcripts
        session = await transcripts.create_session("u1", [ada.id, blaise.id], policy="all")
        user_msg, _ = await transcripts.store_user_message(
            session.id, user_id="u1", speaker="Uma", text="What is a wager?", client_msg_id="m1"
        )
        rec = Recorder()
        results = await services.director.respond(session, user_msg, user_name="Uma", events=rec)

        # order: Ada answers first, then Blaise, each streamed before done
        assert [r.persona.slug for r in results] == ["ada", "blaise"]
        assert [e[1] for e in rec.of("done")] == ["ada", "blaise"]
        first_done = rec.events.index(rec.of("done")[0])
        assert any(e[0] == "token" and e[1] == "ada" for e in rec.events[:first_done])
        assert not rec.of("failed")
        # the next persona starts once a reply is stored: traits may come in either order
        assert sorted(e[1] for e in rec.of("traits")) == ["ada", "blaise"]

        # attribution: nobody speaks for another — the fake's extra line was cut
        for r in results:
            assert r.status == "complete"
            assert "I agree with everything" not in r.message.text
            assert r.message.speaker == r.persona.name
            assert r.message.cut == "speaker", "a reply cut at another's line says so"
        # Blaise saw Ada's reply attributed by name
        prompt_text = "\n".join(str(m.content) for m in model.last_messages or [])
        assert "Ada: I am Ada" in prompt_text

        # persisted: one user message and one reply per persona, in order
        history = (await transcripts.history(session.id)).items
        assert [(m.role, m.speaker) for m in history] == [
            ("user", "Uma"),
            ("persona", "Ada"),
            ("persona", "Blaise"),
        ]
        assert all(m.reply_to == user_msg.id for m in history[1:])

        # memories per persona with speaker attribution, scoped to the user
        for persona in (ada, blaise):
            page = await services.memory.list(MemoryFilter(persona_id=str(persona.id)))
            speakers = sorted(r.speaker_name for r in page.records)
            assert speakers == sorted(["Uma", persona.name])
            assert {r.user_id for r in page.records} == {"u1"}

        # trait observations stored per message, drift computed
        async with services.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT persona_id, count(*) FROM trait_observations GROUP BY persona_id"
            )
            counts = dict(await cur.fetchall())
        assert counts.keys() == {ada.id, blaise.id} and min(counts.values()) > 3
        stored = (await transcripts.history(session.id)).items[1]
        assert "enthusiasm" in stored.extracted_traits
        assert results[0].traits is not None and 0.0 <= results[0].traits.session_drift.score <= 1.0

        # a retried send (same client_msg_id) creates no second message nor reply
        again, stored_now = await transcripts.store_user_message(
            session.id, user_id="u1", speaker="Uma", text="What is a wager?", client_msg_id="m1"
        )
        assert stored_now is None and again.id == user_msg.id
        calls = model.calls
        await services.director.respond(session, again, user_name="Uma", events=Recorder())
        assert model.calls == calls
        assert await transcripts.count(session.id) == 3


async def test_mention_policy_and_llm_failure_keeps_user_message(services_factory: Any) -> None:
    model = FakeStreamingChatModel(reply="Hello.", fail_before_first_token=True)
    async with services_factory(model) as services:
        ada = await services.personas.create(definition("ada", name="Ada Lovelace"), ADMIN)
        blaise = await services.personas.create(definition("blaise", name="Blaise Pascal"), ADMIN)
        transcripts = services.memory.transcripts
        session = await transcripts.create_session("u1", [ada.id, blaise.id], policy="mention")
        msg, _ = await transcripts.store_user_message(
            session.id,
            user_id="u1",
            speaker="Uma",
            text="@pascal what do you think?",
            client_msg_id="m1",
        )
        rec = Recorder()
        results = await services.director.respond(session, msg, user_name="Uma", events=rec)
        assert [r.persona.slug for r in results] == ["blaise"]
        assert results[0].status == "failed" and results[0].error_code == "llm_unavailable"
        assert rec.of("failed") == [("failed", "blaise", "llm_unavailable")]
        assert [m.role for m in (await transcripts.history(session.id)).items] == ["user"]
