"""``prepare`` alone: it announces the turn, gathers memories and the transcript, and
composes the prompt from the persona it was handed."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from agents.fake_llm import FakeStreamingChatModel
from agents.turn import MEMORY_UNAVAILABLE
from agents.turn.prepare import prepare
from memory.errors import IndexUnavailable
from memory.service import NewMemory
from memory.types import spoken_line
from tests.agents.turn.helpers import OpenTurn


async def test_prepare_reports_started_and_composes_the_prompt_from_what_it_gathered(
    open_turn: OpenTurn,
) -> None:
    async with open_turn(FakeStreamingChatModel()) as turn:
        persona, transcripts = turn.request.persona, turn.services.memory.transcripts
        session_id = turn.request.session_id
        await turn.services.memory.remember(
            [
                NewMemory(
                    persona_id=str(persona.id),
                    user_id="u1",
                    session_id=None,
                    speaker_name="Sam",
                    speaker_role="user",
                    text="I play the violin on Sundays.",
                )
            ]
        )
        told, _ = await transcripts.store_user_message(
            session_id, user_id="u1", speaker="Sam", text="I live in Bern.", client_msg_id="c2"
        )
        await transcripts.append_persona_message(
            session_id,
            persona_id=persona.id,
            speaker=persona.name,
            text="Bern is lovely.",
            reply_to=told.id,
        )
        asked, _ = await transcripts.store_user_message(
            session_id, user_id="u1", speaker="Sam", text="Where do I live?", client_msg_id="c3"
        )
        request = dataclasses.replace(turn.request, user_message=asked)

        update = await prepare({"request": request}, turn.runtime(persona_load_ms=2.5))

    assert turn.events.events == [("started", f"einstein {request.reply_id}")]
    assert [m.record.text for m in update["memories"]] == ["I play the violin on Sundays."]
    assert update["said_before"] == (
        spoken_line("Sam", "I live in Bern."),
        spoken_line("Albert Einstein", "Bern is lovely."),
    )
    prompt = "\n".join(str(m.content) for m in update["prompt"].messages)
    for said in ("violin on Sundays", "Bern is lovely.", "Where do I live?"):
        assert said in prompt
    timings = update["timings"]
    assert timings["load_persona_ms"] == 2.5, "the load the caller measured, reported as is"
    assert {"retrieve_ms", "compose_ms"} <= timings.keys()
    assert MEMORY_UNAVAILABLE not in timings


async def test_prepare_uses_the_persona_it_is_handed_and_reads_no_persona(
    open_turn: OpenTurn, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_turn(FakeStreamingChatModel()) as turn:
        reads: list[Any] = []

        async def get(key: Any) -> Any:
            reads.append(key)
            raise AssertionError("prepare read the persona again")

        monkeypatch.setattr(turn.services.personas, "get", get)
        # a persona edited since it was read: the turn speaks as the one it was handed
        handed = dataclasses.replace(turn.request.persona, system_prompt="You are Bohr.")
        turn.request = dataclasses.replace(turn.request, persona=handed)
        update = await prepare({"request": turn.request}, turn.runtime())

    assert reads == []
    assert "You are Bohr." in str(update["prompt"].messages[0].content)


async def test_prepare_answers_without_memories_when_the_vector_store_is_down(
    open_turn: OpenTurn, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_turn(FakeStreamingChatModel()) as turn:

        async def down(*args: Any, **kwargs: Any) -> Any:
            raise IndexUnavailable("edge", "closed")

        monkeypatch.setattr(turn.services.memory.index, "search", down)
        update = await prepare({"request": turn.request}, turn.runtime())

    assert update["memories"] == []
    assert update["timings"][MEMORY_UNAVAILABLE] == 1.0
    assert "What is space?" in str(update["prompt"].messages[-1].content)
    assert turn.events.kinds() == ["started"]
