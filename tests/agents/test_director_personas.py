"""The director reads each persona once per turn and hands it to the turn; in an
autonomous round, a speaker is read again before it speaks, so what changed since the
round began (an edit, a deletion) is what its turn sees."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from agents.fake_llm import FakeStreamingChatModel
from agents.types import NullEvents
from memory.record.transcripts import Message
from personas import Actor, Persona
from tests.personas.factory import definition

ADMIN = Actor("admin", is_admin=True)


async def test_a_turn_reads_its_persona_once_and_reports_what_that_cost(
    services_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with services_factory(FakeStreamingChatModel(reply="Space is a stage.")) as services:
        persona = await services.personas.create(definition("einstein"), ADMIN)
        transcripts = services.memory.transcripts
        session = await transcripts.create_session("u1", [persona.id])
        msg, _ = await transcripts.store_user_message(
            session.id, user_id="u1", speaker="Sam", text="What is space?", client_msg_id="c1"
        )
        reads: list[Any] = []
        get = services.personas.get

        async def counted(key: Any) -> Persona:
            reads.append(key)
            return await get(key)

        monkeypatch.setattr(services.personas, "get", counted)
        [result] = await services.director.respond(
            session, msg, user_name="Sam", events=NullEvents()
        )
        turn_reads = list(reads)  # before closing, when the tracker folds (and reads)
        stored = (await transcripts.history(session.id)).items[-1]

    assert result.status == "complete"
    assert turn_reads == [persona.id], "the director's read, and no other"
    timings = result.timings
    assert {"load_persona_ms", "retrieve_ms", "compose_ms", "first_token_ms", "turn_ms"} <= (
        timings.keys()
    )
    assert "load_persona_ms" in stored.timings


class _Rounds(NullEvents):
    """Runs ``between`` once, when the first reply of the round is done."""

    def __init__(self, between: Any) -> None:
        self.between = between
        self.failures: list[tuple[str | None, str]] = []

    async def done(self, persona: Persona, message: Message, timings: Mapping[str, float]) -> None:
        if self.between is not None:
            between, self.between = self.between, None
            await between()

    async def failed(self, persona: Persona | None, code: str, message: str) -> None:
        self.failures.append((persona.slug if persona else None, code))


async def _round(services: Any, events: _Rounds) -> tuple[list[Any], Persona, Persona]:
    ada = await services.personas.create(
        definition("ada", name="Ada", system_prompt="You are Ada."), ADMIN
    )
    blaise = await services.personas.create(
        definition("blaise", name="Blaise", system_prompt="You are Blaise."), ADMIN
    )
    transcripts = services.memory.transcripts
    session = await transcripts.create_session("u1", [ada.id, blaise.id], policy="autonomous")
    await transcripts.store_user_message(
        session.id, user_id="u1", speaker="Uma", text="Discuss chance.", client_msg_id="c1"
    )
    results = await services.director.autonomous(
        session, user_name="Uma", rounds=2, events=events, interrupt=asyncio.Event()
    )
    return results, ada, blaise


async def test_a_speaker_edited_during_a_round_speaks_as_it_is_now(services_factory: Any) -> None:
    model = FakeStreamingChatModel(reply="Chance is a wager.")
    async with services_factory(model) as services:

        async def edit_blaise() -> None:
            current = await services.personas.get("blaise")
            changed = definition("blaise", name="Blaise", system_prompt="You are Pascal now.")
            await services.personas.update(current.id, changed, ADMIN)

        events = _Rounds(edit_blaise)
        results, _, _ = await _round(services, events)

    assert [r.persona.slug for r in results] == ["ada", "blaise"]
    assert "You are Pascal now." in str((model.last_messages or [])[0].content)


async def test_a_speaker_deleted_during_a_round_fails_its_turn_and_ends_the_round(
    services_factory: Any,
) -> None:
    async with services_factory(FakeStreamingChatModel(reply="Chance is a wager.")) as services:

        async def delete_blaise() -> None:
            await services.personas.delete("blaise", ADMIN)

        events = _Rounds(delete_blaise)
        results, _, blaise = await _round(services, events)

    assert [(r.status, r.error_code) for r in results] == [
        ("complete", None),
        ("failed", "persona_not_found"),
    ]
    assert events.failures == [(None, "persona_not_found")]
    assert str(blaise.id) in (results[1].error or "")
