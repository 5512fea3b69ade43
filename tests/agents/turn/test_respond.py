"""``respond`` alone: what it stores, reports and where it routes when the model
answers, fails, times out, breaks off or says nothing, and the guard's second try."""

from __future__ import annotations

from typing import Any

import pytest

from agents.fake_llm import FakeStreamingChatModel
from agents.turn.respond import respond
from tests.agents.turn.helpers import QUESTION, OpenTurn

REPLY = "Space is where things are. Time is when they happen there."


async def test_a_complete_reply_is_streamed_stored_reported_and_goes_on(
    open_turn: OpenTurn,
) -> None:
    async with open_turn(FakeStreamingChatModel(reply=REPLY)) as turn:
        state = await turn.prepared()
        turn.events.events.clear()
        command = await respond(state, turn.runtime())
        stored = await turn.stored()

    assert command.goto == "extract_traits"
    update: Any = command.update
    assert (update["status"], update["reply"], update["cut"]) == ("complete", REPLY, None)
    assert update["message"].id == turn.request.reply_id
    assert [(m.role, m.text, m.status) for m in stored] == [
        ("user", QUESTION, "complete"),
        ("persona", REPLY, "complete"),
    ]
    assert turn.events.streamed() == REPLY
    assert turn.events.kinds()[-1] == "done", "done once stored, after every token"
    assert {"llm_ms", "first_token_ms", "persist_ms", "turn_ms"} <= update["timings"].keys()
    # done carries the whole turn's timings: prepare's too
    assert {"retrieve_ms", "llm_ms", "turn_ms"} <= turn.events.done_timings.keys()


@pytest.mark.parametrize(
    ("model", "code", "reason"),
    [
        (FakeStreamingChatModel(reply=""), "llm_empty", "empty reply"),
        (FakeStreamingChatModel(fail_before_first_token=True), "llm_unavailable", "unavailable"),
        (FakeStreamingChatModel(reply=REPLY, break_after_tokens=0), "llm_stream_broken", "broke"),
        # the first token never comes within the turn's limit
        (
            FakeStreamingChatModel(reply=REPLY, first_token_delay_s=30),
            "llm_unavailable",
            "timed out",
        ),
    ],
    ids=["empty", "unavailable", "broken-before-a-word", "timed-out"],
)
async def test_a_reply_that_never_came_fails_the_turn_and_stores_nothing(
    open_turn: OpenTurn, model: FakeStreamingChatModel, code: str, reason: str
) -> None:
    async with open_turn(model) as turn:
        turn.configure(llm_timeout_s=0.2)
        state = await turn.prepared()
        turn.events.events.clear()
        command = await respond(state, turn.runtime())
        stored = await turn.stored()

    assert command.goto == "__end__"
    update: Any = command.update
    assert (update["status"], update["error_code"]) == ("failed", code)
    assert reason in update["error"]
    assert "llm_ms" in update["timings"]
    assert turn.events.events == [("failed", code)]
    assert [m.role for m in stored] == ["user"], "the user's line is kept, no reply stored"


async def test_a_stream_broken_midway_stores_the_partial_reply_and_ends_the_turn(
    open_turn: OpenTurn,
) -> None:
    async with open_turn(FakeStreamingChatModel(reply=REPLY, break_after_tokens=5)) as turn:
        state = await turn.prepared()
        turn.events.events.clear()
        command = await respond(state, turn.runtime())
        stored = await turn.stored()

    assert command.goto == "__end__", "a partial reply is not mined for traits"
    update: Any = command.update
    assert (update["status"], update["error_code"]) == ("incomplete", "llm_stream_broken")
    assert REPLY.startswith(update["reply"]) and update["reply"] != REPLY
    assert (stored[-1].text, stored[-1].status) == (update["reply"], "incomplete")
    assert turn.events.kinds()[-2:] == ["done", "failed"], "stored and delivered, then failed"


async def test_a_reply_the_guard_cut_to_nothing_is_asked_for_once_more(
    open_turn: OpenTurn,
) -> None:
    replies = iter(["Sam: What is space, really?", "Space is where things are."])
    model = FakeStreamingChatModel(reply=lambda _: next(replies))
    async with open_turn(model) as turn:
        state = await turn.prepared()
        turn.events.events.clear()
        command = await respond(state, turn.runtime())

    assert model.calls == 2
    assert command.goto == "extract_traits"
    update: Any = command.update
    assert update["reply"] == "Space is where things are."
    assert turn.events.streamed() == update["reply"], "nothing of the first try was shown"


async def test_replies_the_guard_cut_to_nothing_every_time_fail_the_turn_as_empty(
    open_turn: OpenTurn,
) -> None:
    model = FakeStreamingChatModel(reply="Sam: What is space, really?")
    async with open_turn(model) as turn:
        state = await turn.prepared()
        turn.events.events.clear()
        command = await respond(state, turn.runtime())
        stored = await turn.stored()

    assert model.calls == 3, "asked twice more (told to write only its own), and no more"
    assert command.goto == "__end__"
    update: Any = command.update
    assert update["error_code"] == "llm_empty"
    assert turn.events.events == [("failed", "llm_empty")]
    assert [m.role for m in stored] == ["user"]
