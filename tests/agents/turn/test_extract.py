"""``extract_traits`` alone, after a reply was stored and delivered: both lines become
memories, the reply's traits are observed and reported, and nothing that fails here
undoes the reply."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from agents.fake_llm import FakeStreamingChatModel
from agents.turn import TurnState
from agents.turn.extract import extract_traits
from agents.turn.respond import respond
from memory import MemoryFilter
from memory.errors import IndexUnavailable
from memory.service import stored_vectors
from memory.types import TURN_PURPOSES
from tests.agents.turn.helpers import QUESTION, OpenTurn, Turn

REPLY = "What a wonderful question! Space is where things are, and I adore it!"


async def _delivered(turn: Turn) -> TurnState:
    """The state ``extract_traits`` starts from: a complete reply, stored and reported."""
    state = await turn.prepared()
    command = await respond(state, turn.runtime())
    assert command.goto == "extract_traits"
    turn.events.events.clear()
    update: Any = command.update
    return {**state, **update}


async def test_both_lines_are_remembered_and_the_replys_traits_observed_and_reported(
    open_turn: OpenTurn,
) -> None:
    async with open_turn(FakeStreamingChatModel(reply=REPLY)) as turn:
        state = await _delivered(turn)
        update = await extract_traits(state, turn.runtime())
        persona_id = str(turn.request.persona.id)
        page = await turn.services.memory.list(MemoryFilter(persona_id=persona_id))
        stored = await turn.stored()

    assert sorted((r.speaker_name, r.text) for r in page.records) == [
        ("Albert Einstein", REPLY),
        ("Sam", QUESTION),
    ]
    assert update["memories_lost"] == []
    assert "late_errors" not in update
    traits = {o.trait for o in update["observations"]}
    assert "enthusiasm" in traits, "two exclamations in one reply"
    assert turn.events.events == [("traits", "einstein")]
    assert update["traits"].session_drift is not None
    assert "extract_ms" in update["timings"]
    assert "enthusiasm" in stored[-1].extracted_traits, "the reply's summary is stored"


async def test_memories_lost_to_a_vector_store_that_is_down_are_named_and_traits_go_on(
    open_turn: OpenTurn, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_turn(FakeStreamingChatModel(reply=REPLY)) as turn:
        state = await _delivered(turn)

        async def down(*args: Any, **kwargs: Any) -> Any:
            raise IndexUnavailable("edge", "closed")

        monkeypatch.setattr(turn.services.memory.index, "upsert", down)
        update = await extract_traits(state, turn.runtime())

    assert update["memories_lost"] == [str(turn.request.user_message.id), str(state["message"].id)]
    assert update["observations"], "the reply was still observed"
    assert turn.events.kinds() == ["traits"]


async def test_a_failure_after_the_reply_was_delivered_is_named_not_raised(
    open_turn: OpenTurn, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_turn(FakeStreamingChatModel(reply=REPLY)) as turn:
        state = await _delivered(turn)

        async def broken(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("trait records unreachable")

        monkeypatch.setattr(turn.agents.tracker, "record", broken)
        update = await extract_traits(state, turn.runtime())
        stored = await turn.stored()

    assert update == {"late_errors": ["extract_traits"]}
    assert turn.events.events == [], "no traits to report"
    assert (stored[-1].text, stored[-1].status) == (REPLY, "complete"), "the reply stands"


async def test_each_new_text_of_a_turn_is_embedded_once_and_the_memories_keep_their_speaker(
    open_turn: OpenTurn, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_turn(FakeStreamingChatModel(reply=REPLY)) as turn:
        memory = turn.services.memory
        embed = memory.embedder.embed
        sent: list[tuple[str, str]] = []

        async def counted(texts: Any, **kw: Any) -> Any:
            sent.extend((kw.get("purpose", "other"), t) for t in texts)
            return await embed(texts, **kw)

        monkeypatch.setattr(memory.embedder, "embed", counted)
        stored: list[Any] = []
        upsert = memory.index.upsert

        async def kept(records: Any, vectors: Any) -> None:
            stored.append((list(records), vectors))
            await upsert(records, vectors)

        monkeypatch.setattr(memory.index, "upsert", kept)
        state = await _delivered(turn)
        await extract_traits(state, turn.runtime())

    own = [(p, t) for p, t in sent if p in TURN_PURPOSES]
    assert own == [("query", QUESTION), ("line", REPLY)], sent
    assert {t for p, t in sent if p == "speaker"} == {"Sam:", "Albert Einstein:"}
    ((records, vectors),) = stored
    assert [r.text for r in records] == [QUESTION, REPLY]
    lines = np.stack([state["query_vector"], (await embed([REPLY]))[0]])
    speakers = await memory.speaker_vectors(["Sam", "Albert Einstein"])
    assert np.allclose(vectors, stored_vectors(lines, speakers), atol=1e-6)
