"""The reply guards: a looping stream is cut and marked, a persona never writes another
speaker's line, a reply cut at its token limit ends at a sentence boundary."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from agents.decoding import SMALL_LOCAL
from agents.director import Director
from agents.fake_llm import FakeStreamingChatModel, split_tokens
from agents.guards import ReplyGuard, Speakers, ends_mid_sentence, trim_to_sentence
from agents.turn import build_graph
from agents.types import NullEvents
from personas import Actor
from tests.personas.factory import definition

ADMIN = Actor("admin", is_admin=True)
LOOP = "Einstein said that space is only a dimension of time. "


def guarded(text: str, speakers: Speakers, finish: str | None = None) -> tuple[str, Any]:
    """Stream ``text`` word by word through a guard: (what was shown, the stored reply)."""
    guard = ReplyGuard(speakers)
    shown = ""
    for token in split_tokens(text):
        shown += guard.feed(token)
        if guard.stopped:
            break
    reply = guard.finish(finish)
    return shown + reply.tail, reply


def test_a_looping_line_is_cut_after_its_first_time() -> None:
    shown, reply = guarded(LOOP * 15, Speakers.of("Albert Einstein"))
    assert reply.cut == "repetition"
    assert reply.text == LOOP.strip()
    assert shown.count("Einstein said") <= 2, "the loop stopped as it began again"


def test_a_repeated_line_and_an_eight_word_run_are_cut() -> None:
    text = "I hope you're having a wonderful day too!\n" * 4
    _, reply = guarded(text, Speakers.of("Supportive Companion"))
    assert (reply.text, reply.cut) == ("I hope you're having a wonderful day too!", "repetition")
    run = (
        "Light is fast. The speed of light in a vacuum never changes, and the speed of light "
        "in a vacuum never"
    )
    _, reply = guarded(run, Speakers.of("Albert Einstein"))
    assert (reply.text, reply.cut) == ("Light is fast.", "repetition")


def test_a_reply_that_does_not_repeat_is_left_whole() -> None:
    text = "Time is what clocks measure. Space is what rulers measure. Both bend near mass."
    shown, reply = guarded(text, Speakers.of("Albert Einstein", ["Sam"]))
    assert (reply.text, reply.cut, shown) == (text, None, text)


@pytest.mark.parametrize(
    "line",
    [
        'Socratic Tutor: "The universe has a timeless purpose."',
        "Socratic: What is a purpose?",
        "**Socratic Tutor**: Let us ask.",
        "@socratic-tutor what do you think?",
        "Sam: I think so too.",
        "User: thanks",
    ],
)
def test_another_speakers_line_ends_the_reply_there(line: str) -> None:
    speakers = Speakers.of("Albert Einstein", ["Socratic Tutor", "Sam"], ["socratic-tutor"])
    shown, reply = guarded(f"Time is relative.\n{line}\nMore words here.", speakers)
    assert (reply.text, reply.cut) == ("Time is relative.", "speaker")
    assert line.split()[0].strip("*@:") not in shown, "the other's line was never shown"


def test_a_label_after_a_sentence_within_a_line_ends_the_reply() -> None:
    speakers = Speakers.of("Albert Einstein", ["Socratic Tutor", "Sam"])
    shown, reply = guarded('Time is relative. Socratic: "Is it?" Yes.', speakers)
    assert (reply.text, reply.cut, shown) == ("Time is relative.", "speaker", "Time is relative.")


def test_the_personas_own_label_is_dropped_not_a_cut() -> None:
    speakers = Speakers.of("Socratic Tutor", ["Albert Einstein", "Sam"])
    shown, reply = guarded("Socratic: What do you think time is, Sam?", speakers)
    assert (reply.text, reply.cut) == ("What do you think time is, Sam?", None)
    assert shown == reply.text, "the label was never shown"


def test_names_inside_a_sentence_are_not_labels() -> None:
    speakers = Speakers.of("Albert Einstein", ["Socratic Tutor", "Sam"], ["socratic-tutor"])
    text = "Sam, the Socratic Tutor asks good questions.\nSamuel: not a participant."
    _, reply = guarded(text, speakers)
    assert (reply.text, reply.cut) == (text, None)


def test_a_reply_cut_at_its_token_limit_ends_at_a_sentence_and_is_marked() -> None:
    text = "Light is fast. It travels at a great speed and so P.S.\n\nI"
    _, reply = guarded(text, Speakers.of("A"), "length")
    assert (reply.text, reply.cut) == (
        "Light is fast. It travels at a great speed and so P.S.",
        "length",
    )
    _, reply = guarded("Light is fast. It travels at a great", Speakers.of("A"), "length")
    assert (reply.text, reply.cut) == ("Light is fast.", "length")
    _, reply = guarded("no boundary at all in this", Speakers.of("A"), "length")
    assert (reply.text, reply.cut) == ("no boundary at all in this", "length")


def test_sentence_helpers() -> None:
    assert trim_to_sentence("One. Two! Three? Four") == "One. Two! Three?"
    assert trim_to_sentence('He said "yes." And then') == 'He said "yes."'
    assert trim_to_sentence("Steps:\n1. Mix") == "Steps:\n1. Mix"
    assert ends_mid_sentence("and so") and not ends_mid_sentence("Done.")


# --- through a whole turn --------------------------------------------------------------


async def _turn(services: Any, model: FakeStreamingChatModel, **style: Any) -> Any:
    persona = await services.personas.create(
        definition("einstein", name="Albert Einstein", style={"max_tokens": 16, **style}), ADMIN
    )
    transcripts = services.memory.transcripts
    session = await transcripts.create_session("u1", [persona.id])
    msg, _ = await transcripts.store_user_message(
        session.id, user_id="u1", speaker="Sam", text="What is space?", client_msg_id="c1"
    )
    tokens: list[str] = []

    class Events(NullEvents):
        async def token(self, persona: Any, reply_id: Any, delta: str) -> None:
            tokens.append(delta)

    [result] = await services.director.respond(session, msg, user_name="Sam", events=Events())
    stored = (await transcripts.history(session.id)).items[-1]
    return result, stored, "".join(tokens)


async def test_a_looping_turn_is_stored_cut_and_marked(services_factory: Any) -> None:
    model = FakeStreamingChatModel(reply=LOOP * 15)
    async with services_factory(model) as services:
        result, stored, streamed = await _turn(services, model, max_tokens=512)
    assert result.status == "complete"
    assert (stored.text, stored.cut) == (LOOP.strip(), "repetition")
    assert streamed.startswith(LOOP.strip())
    assert len(streamed) < 2 * len(LOOP), "the model was stopped, not read to its end"


async def test_a_turn_at_its_token_limit_is_stored_cut_at_a_sentence(
    services_factory: Any,
) -> None:
    words = "Space is a stage. It holds every star we see and the galaxies far beyond them too."
    model = FakeStreamingChatModel(reply=words)
    async with services_factory(model) as services:
        result, stored, _ = await _turn(services, model)
    assert model.last_kwargs["max_tokens"] == 16
    assert (stored.text, stored.cut) == ("Space is a stage.", "length")
    assert result.message.cut == "length"


async def test_the_small_model_profile_sets_decoding(services_factory: Any) -> None:
    model = FakeStreamingChatModel(reply="Space is a stage.")
    async with services_factory(model) as services:
        agents = dataclasses.replace(
            services.agents, config=dataclasses.replace(services.agents.config, model=SMALL_LOCAL)
        )
        services = dataclasses.replace(services, director=Director(agents, build_graph()))
        _, stored, _ = await _turn(services, model, max_tokens=640, temperature=0.9)
    assert (stored.text, stored.cut) == ("Space is a stage.", None)
    kwargs = model.last_kwargs
    assert 64 <= kwargs["max_tokens"] <= 128, "a verbose persona, scaled to the small model"
    assert kwargs["temperature"] < 0.5 and kwargs["repeat_penalty"] > 1.0
    system = str((model.last_messages or [])[0].content)
    assert "You are talking with Sam" in system


async def test_a_reply_that_starts_with_the_users_line_is_asked_for_again(
    services_factory: Any,
) -> None:
    replies = iter(["Sam: What is space, really?", "Space is where things are."])
    model = FakeStreamingChatModel(reply=lambda _: next(replies))
    async with services_factory(model) as services:
        result, stored, streamed = await _turn(services, model, max_tokens=512)
    assert model.calls == 2
    assert result.status == "complete"
    assert (stored.text, stored.cut) == ("Space is where things are.", None)
    assert streamed == stored.text, "nothing of the first try was shown"
