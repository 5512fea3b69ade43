"""A question about the user that one of their facts answers: which fact it asks for,
and on the small model a reply that does not name it is held back, asked for again, and
finally replaced by the fact said back to the user."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from agents.answers import expected_answer, said_back
from agents.decoding import CAPABLE, SMALL_LOCAL
from agents.director import Director
from agents.facts_prompt import KnownFact
from agents.fake_llm import FakeStreamingChatModel, split_tokens
from agents.guards import ReplyGuard, Speakers
from agents.prompt import PromptInput, compose
from agents.turn.graph import build_graph
from agents.types import NullEvents
from personas import Actor
from tests.agents.test_guards_own_words import guarded
from tests.agents.test_prompt_budget import NOW, persona
from tests.personas.factory import definition

ADMIN = Actor("admin", is_admin=True)
WHEN = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)


def fact(text: str, subject: str, **kw: Any) -> KnownFact:
    return KnownFact(text, WHEN, subject=subject, **kw)


FACTS = [
    fact("Ada's favourite colour is teal.", "favourite colour"),
    fact("Ada's favourite food is ramen.", "favourite food"),
    fact("Ada works as a pilot.", "job"),
    fact("Ada works at the city library.", "employer"),
    fact("Ada lives in Berlin.", "home"),
    fact("Ada's dog is called Pixel.", "dog"),
    fact("Ada is from Nairobi.", "origin"),
    fact("Ada loves jazz.", "likes:jazz"),
    fact("Ada lives in Lyon.", "home", until=WHEN),
]


def asks(question: str, facts: list[KnownFact] = FACTS) -> str | None:
    found = expected_answer(question, "Ada", facts)
    return None if found is None else found.fact


def test_the_fact_a_question_asks_for() -> None:
    assert asks("What is my job?") == asks("What do I do for a living?") == "Ada works as a pilot."
    assert (
        asks("Where do I live now?") == asks("Which city do I live in?") == "Ada lives in Berlin."
    )
    assert asks("Where do I work?") == "Ada works at the city library."
    assert asks("What's my dog's name?") == "Ada's dog is called Pixel."
    assert asks("What is my favourite food?") == "Ada's favourite food is ramen."
    assert asks("Where do I come from?") == "Ada is from Nairobi."
    assert asks("What music do I love?") == "Ada loves jazz."


def test_no_fact_is_expected_when_none_answers_or_the_line_is_not_such_a_question() -> None:
    assert asks("What is my cat's name?") is None, "no fact on cats"
    assert asks("What is my favourite sport?") is None, "a favourite, but not that one"
    city = [fact("Ada's favourite city is Kyoto.", "favourite city"), *FACTS]
    assert asks("Which city do I live in?", city) == "Ada lives in Berlin."
    assert asks("Which city is my favourite?", city) == "Ada's favourite city is Kyoto."
    assert asks("Which food do I like best?") == "Ada's favourite food is ramen."
    assert asks("Where did I live before?") is None, "the past: history answers it"
    assert asks("What is your dog called?") is None, "about the persona"
    assert asks("My dog is called Pixel.") is None, "a statement"


def test_a_fact_said_back_to_the_user() -> None:
    assert said_back("Ada works as a pilot.", "Ada") == "You said that you work as a pilot."
    assert said_back("Ada's dog is called Pixel.", "Ada") == (
        "You said that your dog is called Pixel."
    )
    assert said_back("Ada is from Nairobi.", "Ada") == "You said that you are from Nairobi."
    assert said_back("Ada studies chemistry.", "Ada") == "You said that you study chemistry."


def test_a_reply_is_shown_once_a_finished_sentence_names_the_fact() -> None:
    expected = expected_answer("What is my job?", "Ada", FACTS)
    assert expected is not None
    speakers = Speakers.of("Companion", ["Ada"])
    guard = ReplyGuard(speakers, answers=expected.named_in)
    assert guard.feed("Well, Ada, ") == "", "held back until the fact is named"
    assert guard.feed("you fly planes as a pilot") == ""
    assert guard.feed(". Safe travels!") == "Well, Ada, you fly planes as a pilot."
    shown, reply = guarded(
        "You are a pilot. Safe travels!", ReplyGuard(speakers, answers=expected.named_in)
    )
    assert shown == reply.text == "You are a pilot. Safe travels!" and not reply.unanswered
    guard = ReplyGuard(speakers, answers=expected.named_in)
    shown = "".join(
        guard.feed(t) for t in split_tokens("I'm a freelance graphic designer. Are you a pilot?")
    )
    assert shown == "" and guard.finish().unanswered, "asking it back is no answer"
    assert not expected.named_in("I can tell you that my job is indeed pilot."), "its own"
    assert expected.named_in("You told me you work as a pilot.")
    assert expected.named_in("I remember: you are a pilot.")


def test_the_small_prompt_shows_the_fact_asked_for_even_when_the_search_missed_it() -> None:
    data = PromptInput(
        persona=persona(),
        user_name="Ada",
        user_text="What is my job?",
        facts=[
            fact("Ada lives in Berlin.", "home"),
            fact("Ada works as a pilot.", "job", found=False),
        ],
        now=NOW,
    )
    small = compose(data, profile=SMALL_LOCAL)
    assert small.expected is not None and small.expected.fact == "Ada works as a pilot."
    assert str(small.messages[1].content).endswith("Ada works as a pilot.")
    assert compose(data, profile=CAPABLE).expected is None, "a capable model is trusted"


async def _ask(services: Any, model: FakeStreamingChatModel) -> tuple[Any, str]:
    agents = dataclasses.replace(
        services.agents, config=dataclasses.replace(services.agents.config, model=SMALL_LOCAL)
    )
    director = Director(agents, build_graph())
    companion = await services.personas.create(definition("companion"), ADMIN)
    await services.facts.record(
        persona_id=companion.id,
        user_id="u1",
        subject="job",
        text="Sam works as a pilot.",
        valid_from=WHEN,
    )
    transcripts = services.memory.transcripts
    session = await transcripts.create_session("u1", [companion.id])
    msg, _ = await transcripts.store_user_message(
        session.id, user_id="u1", speaker="Sam", text="What is my job?", client_msg_id="c"
    )
    tokens: list[str] = []

    class Events(NullEvents):
        async def token(self, persona: Any, reply_id: Any, delta: str) -> None:
            tokens.append(delta)

    [result] = await director.respond(session, msg, user_name="Sam", events=Events())
    assert result.status == "complete"
    stored = (await transcripts.history(session.id)).items[-1]
    return stored, "".join(tokens)


async def test_a_reply_that_does_not_name_the_fact_is_asked_for_again(
    services_factory: Any,
) -> None:
    replies = iter(["I'm a freelance graphic designer, and I love it.", "You fly as a pilot, Sam."])
    model = FakeStreamingChatModel(reply=lambda _: next(replies))
    async with services_factory(model) as services:
        stored, streamed = await _ask(services, model)
    assert model.calls == 2
    assert stored.text == streamed == "You fly as a pilot, Sam.", "nothing of the first was shown"
    second = [str(m.content) for m in model.last_messages or []]
    assert any("told you: Sam works as a pilot." in m for m in second)


async def test_when_no_try_names_it_the_fact_is_said_back(services_factory: Any) -> None:
    model = FakeStreamingChatModel(reply="I'm a freelance graphic designer.")
    async with services_factory(model) as services:
        stored, streamed = await _ask(services, model)
    assert model.calls == 3
    assert stored.text == streamed == "You said that you work as a pilot."


async def test_a_reply_naming_the_fact_is_streamed_as_it_came(services_factory: Any) -> None:
    model = FakeStreamingChatModel(reply="You are a pilot, Sam. Up in the clouds all day!")
    async with services_factory(model) as services:
        stored, streamed = await _ask(services, model)
    assert model.calls == 1
    assert stored.text == streamed == "You are a pilot, Sam. Up in the clouds all day!"


def test_nothing_is_shown_before_the_fact_even_while_a_line_could_be_a_label() -> None:
    """A line's start held for a label check, or a room reply's first words held for a
    copy check, do not release a reply that has not named the fact."""
    expected = expected_answer("Who am I dating?", "Ada", [fact("Ada is dating Lena.", "partner")])
    assert expected is not None
    for guard in (
        ReplyGuard(Speakers.of("Companion", ["Ada"]), answers=expected.named_in),
        ReplyGuard(
            Speakers.of("Companion", ["Ada"]), replies=["Time flies."], answers=expected.named_in
        ),
    ):
        text = "Dating is a complex topic.\nAda"
        shown = "".join(guard.feed(t) for t in split_tokens(text))
        assert shown == "" and guard.finish().unanswered
