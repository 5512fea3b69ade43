"""Each persona speaks for itself: a reply never presents what the user told about
themselves as the persona's own, and in a room a later persona does not say an earlier
one's reply again; an empty reply is asked for again with other sampling. On scripted
fake streams, by the guard alone and through whole turns."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import BaseMessage

from agents.fake_llm import FakeStreamingChatModel, split_tokens
from agents.guards import ReplyGuard, Speakers, UserFacts, second_person
from agents.types import NullEvents
from personas import Actor
from tests.personas.factory import definition

ADMIN = Actor("admin", is_admin=True)
SPEAKERS = Speakers.of("Companion", ["Sam"])
DOG = UserFacts.of("What is my dog's name?", ["My dog is a beagle called Pixel."])
TIME = (
    "Time is the order in which things happen, and clocks only count it for us. "
    "It runs slower near heavy stars, as my old friend Einstein showed."
)


def guarded(text: str, guard: ReplyGuard) -> tuple[str, Any]:
    shown = ""
    for token in split_tokens(text):
        shown += guard.feed(token)
        if guard.stopped:
            break
    reply = guard.finish()
    return shown + reply.tail, reply


def test_a_first_person_claim_of_the_users_fact_is_cut_before_it_is_shown() -> None:
    for claim in ("My dog's name is Luna.", "My dog is called Pixel, a beagle."):
        shown, reply = guarded(claim + " He loves walks.", ReplyGuard(SPEAKERS, DOG))
        assert shown == "" and reply.text == ""
        assert reply.claimed and reply.claim == claim


def test_what_came_before_a_claim_is_kept_and_the_claim_is_not() -> None:
    shown, reply = guarded(
        "What a lovely question, Sam. I call my beagle Pixel. Yes.", ReplyGuard(SPEAKERS, DOG)
    )
    assert shown == reply.text == "What a lovely question, Sam."
    assert reply.claimed


def test_an_answer_in_the_second_person_is_left_whole() -> None:
    for answer in (
        "Your dog is called Pixel.",
        "I remember: your beagle is called Pixel!",
        "I think Pixel is a fine name for a dog like yours.",
    ):
        shown, reply = guarded(answer, ReplyGuard(SPEAKERS, DOG))
        assert shown == reply.text == answer and not reply.claimed


def test_without_facts_about_the_user_nothing_is_held_back() -> None:
    guard = ReplyGuard(SPEAKERS, UserFacts.of("What is time?"))
    assert guard.feed("I ") + guard.feed("think ") == "I think "


def test_a_claim_said_back_in_the_second_person() -> None:
    assert second_person("My dog's name is Pixel.") == "Your dog's name is Pixel."
    assert second_person("I am a nurse in Lyon.") == "You are a nurse in Lyon."


def test_a_room_reply_copying_another_is_found_before_anything_is_shown() -> None:
    shown, reply = guarded(TIME, ReplyGuard(SPEAKERS, replies=[TIME]))
    assert shown == "" and reply.copied
    own = "A river, I would say: we step into it once, and it is never the same water twice."
    shown, reply = guarded(own, ReplyGuard(SPEAKERS, replies=[TIME]))
    assert shown == reply.text == own and not reply.copied


# --- through whole turns ---------------------------------------------------------------


async def test_a_reply_claiming_the_users_fact_is_asked_for_again(services_factory: Any) -> None:
    replies = iter(["My dog's name is Luna. She is lovely.", "Your dog is called Pixel."])
    model = FakeStreamingChatModel(reply=lambda _: next(replies))
    tokens: list[str] = []

    class Events(NullEvents):
        async def token(self, persona: Any, reply_id: Any, delta: str) -> None:
            tokens.append(delta)

    async with services_factory(model) as services:
        persona = await services.personas.create(definition("companion"), ADMIN)
        transcripts = services.memory.transcripts
        session = await transcripts.create_session("u1", [persona.id])
        msg, _ = await transcripts.store_user_message(
            session.id,
            user_id="u1",
            speaker="Sam",
            text="What is my dog's name?",
            client_msg_id="c",
        )
        [result] = await services.director.respond(session, msg, user_name="Sam", events=Events())
        stored = (await transcripts.history(session.id)).items[-1]
    assert model.calls == 2
    assert result.status == "complete"
    assert stored.text == "Your dog is called Pixel." == "".join(tokens)
    second = [str(m.content) for m in model.last_messages or []]
    assert any("Sam's own life" in m for m in second), "told whose fact it is"


async def _room(services: Any, model: FakeStreamingChatModel) -> list[Any]:
    ada = await services.personas.create(
        definition("ada", name="Ada", system_prompt="You are Ada."), ADMIN
    )
    blaise = await services.personas.create(
        definition("blaise", name="Blaise", system_prompt="You are Blaise."), ADMIN
    )
    transcripts = services.memory.transcripts
    session = await transcripts.create_session("u1", [ada.id, blaise.id], policy="all")
    msg, _ = await transcripts.store_user_message(
        session.id, user_id="u1", speaker="Uma", text="What is time?", client_msg_id="c1"
    )
    await services.director.respond(session, msg, user_name="Uma", events=NullEvents())
    return [m for m in (await transcripts.history(session.id)).items if m.role == "persona"]


def _speaker(messages: Any) -> str:
    return "Ada" if "You are Ada" in str(messages[0].content) else "Blaise"


async def test_a_room_reply_copying_the_one_before_is_asked_for_again(
    services_factory: Any,
) -> None:
    own = "A river, I would say: we step into it once, and it is never the same water twice."
    blaise = iter([TIME, own])
    seen: list[list[BaseMessage]] = []

    def reply(messages: Any) -> str:
        if _speaker(messages) == "Ada":
            return TIME
        seen.append(list(messages))
        return next(blaise)

    model = FakeStreamingChatModel(reply=reply)
    async with services_factory(model) as services:
        stored = await _room(services, model)
    assert [(m.speaker, m.text, m.cut) for m in stored] == [
        ("Ada", TIME, None),
        ("Blaise", own, None),
    ]
    # Blaise saw Ada's reply after the question, as Ada's line
    last = [str(m.content) for m in seen[0][-2:]]
    assert last == ["Uma: What is time?", f"Ada: {TIME}"]


async def test_a_room_reply_that_copies_every_time_is_marked(services_factory: Any) -> None:
    model = FakeStreamingChatModel(reply=lambda _: TIME)
    async with services_factory(model) as services:
        stored = await _room(services, model)
    assert [(m.speaker, m.cut) for m in stored] == [("Ada", None), ("Blaise", "repetition")]
    assert model.calls == 1 + 3, "the copy asked for twice more, then kept and marked"


async def test_an_empty_reply_is_asked_for_again_with_other_sampling(
    services_factory: Any,
) -> None:
    calls: list[dict[str, Any]] = []
    blaise = iter(["", "Time is a river we cannot step out of."])

    def reply(messages: Any) -> str:
        if _speaker(messages) == "Ada":
            return "Time is what clocks count."
        calls.append(dict(model.last_kwargs))
        return next(blaise)

    model = FakeStreamingChatModel(reply=reply)
    async with services_factory(model) as services:
        stored = await _room(services, model)
    assert [(m.speaker, m.status, m.text) for m in stored] == [
        ("Ada", "complete", "Time is what clocks count."),
        ("Blaise", "complete", "Time is a river we cannot step out of."),
    ]
    first, second = calls
    assert second["temperature"] > first["temperature"] and "seed" in second


def test_a_line_quoting_another_speaker_ends_the_reply_there() -> None:
    speakers = Speakers.of("Socratic Tutor", ["Albert Einstein", "Sam"])
    shown, reply = guarded(
        'No worries.\nAlbert Einstein said: "Time is relative."', ReplyGuard(speakers)
    )
    assert (shown, reply.text, reply.cut) == ("No worries.\n", "No worries.", "speaker")
    said = "Albert Einstein said that time is relative."
    shown, reply = guarded(said, ReplyGuard(speakers))
    assert (shown, reply.cut) == (said, None), "a name in a sentence is no label"


def test_a_room_reply_that_starts_copying_later_is_cut_where_the_copy_begins() -> None:
    own = "That is the essence of what my friend said about clocks and trains. "
    shown, reply = guarded(own + TIME, ReplyGuard(SPEAKERS, replies=[TIME]))
    assert (reply.text, reply.cut) == (own.strip(), "repetition")
    assert not reply.copied and shown.startswith(own.strip())


def test_a_claim_in_a_sentence_already_partly_shown_is_still_caught() -> None:
    facts = UserFacts.of("", ["I am learning Japanese in the evenings."])
    text = "Konbanwa is a word people use, and it means I am learning Japanese."
    guard = ReplyGuard(SPEAKERS, facts)
    shown = "".join(guard.feed(t) for t in split_tokens(text))
    reply = guard.finish()
    assert shown.startswith("Konbanwa is a word") and reply.claimed and reply.text == ""
    assert second_person(reply.claim) == (
        "Konbanwa is a word people use, and it means you are learning Japanese."
    )


async def test_a_claim_found_late_is_stored_said_back_to_the_user(services_factory: Any) -> None:
    model = FakeStreamingChatModel(
        reply="Konbanwa is a word people use, and it means I am learning Japanese."
    )
    async with services_factory(model) as services:
        persona = await services.personas.create(definition("companion"), ADMIN)
        transcripts = services.memory.transcripts
        session = await transcripts.create_session("u1", [persona.id])
        msg, _ = await transcripts.store_user_message(
            session.id,
            user_id="u1",
            speaker="Sam",
            text="I am learning Japanese in the evenings.",
            client_msg_id="c",
        )
        [result] = await services.director.respond(
            session, msg, user_name="Sam", events=NullEvents()
        )
        stored = (await transcripts.history(session.id)).items[-1]
    assert model.calls == 1 and result.status == "complete"
    assert stored.text == "Konbanwa is a word people use, and it means you are learning Japanese."


async def test_a_reply_running_out_in_a_claim_is_stored_without_it_and_marked(
    services_factory: Any,
) -> None:
    model = FakeStreamingChatModel(
        reply="Konbanwa is a lovely word. It is used in the evening. "
        "I have been learning Japanese for many years now."
    )
    async with services_factory(model) as services:
        persona = await services.personas.create(
            definition("companion", style={"max_tokens": 16}), ADMIN
        )
        transcripts = services.memory.transcripts
        session = await transcripts.create_session("u1", [persona.id])
        msg, _ = await transcripts.store_user_message(
            session.id,
            user_id="u1",
            speaker="Sam",
            text="I am learning Japanese in the evenings.",
            client_msg_id="c",
        )
        await services.director.respond(session, msg, user_name="Sam", events=NullEvents())
        stored = (await transcripts.history(session.id)).items[-1]
    assert model.last_kwargs["max_tokens"] == 16
    assert (stored.text, stored.cut) == (
        "Konbanwa is a lovely word. It is used in the evening.",
        "length",
    )


def test_a_told_word_away_from_the_first_person_is_no_claim() -> None:
    """ "my friend" in a sentence about light claims nothing the user said about light."""
    facts = UserFacts.of("Tell me about light.", ["I study light and waves at night."])
    answer = "Light is a wave and a particle, my friend."
    shown, reply = guarded(answer, ReplyGuard(SPEAKERS, facts))
    assert shown == reply.text == answer and not reply.claimed
    assert facts.claim("I study light too.") == "I study light too."
