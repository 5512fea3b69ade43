"""The prompt fits the model: a short card, the memories the user told said plainly next
to the question and the last few turns for a small local model; the full card for a
capable one; never over the budget."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from agents.decoding import (
    CAPABLE,
    LOCAL_GGUF,
    SMALL_LOCAL,
    ModelProfile,
    decoding_for,
    reply_tokens,
)
from agents.prompt import Line, PromptInput, Recollection, _about, compose, estimate_tokens
from personas import Belief, Persona, StyleConfig

NOW = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)


def persona(**style: object) -> Persona:
    return Persona(
        id=uuid.uuid4(),
        slug="albert-einstein",
        name="Albert Einstein",
        description="Theoretical physicist of relativity. He also helped found quantum physics.",
        role="Theoretical physicist and explainer of relativity",
        system_prompt=(
            "You are a persona of Albert Einstein. Explain physics through thought "
            "experiments before reaching for equations. Be playful and modest."
        ),
        domains=("physics",),
        is_real=True,
        persona_type="historical",
        birth_date=None,
        avatar_url=None,
        version=3,
        active=True,
        protected=True,
        traits=(),
        beliefs=tuple(Belief(f"Belief number {i} about nature. More detail.") for i in range(5)),
        modes=(),
        style=StyleConfig(emotional_style="warm", **style),  # type: ignore[arg-type]
        created_at=NOW,
        updated_at=NOW,
    )


def memory(text: str, role: str = "user", score: float = 0.5, speaker: str = "Sam") -> Recollection:
    return Recollection(text, speaker, NOW - dt.timedelta(days=1), score=score, role=role)


MEMORIES = [
    memory("My cat is called Miso.", score=0.9),
    memory("Your cat Miso sounds lovely!", role="persona", score=0.95, speaker="Albert Einstein"),
    memory("I live in Lisbon.", score=0.4),
    memory("My sister is Priya.", score=0.3),
    memory("I play the cello.", score=0.2),
]
TRANSCRIPT = [
    Line("Sam" if i % 2 == 0 else "Albert Einstein", f"line {i} " * 30, own=i % 2 == 1)
    for i in range(12)
]


def data(**overrides: object) -> PromptInput:
    values: dict[str, object] = {
        "persona": persona(),
        "user_name": "Sam",
        "user_text": "What is my cat's name?",
        "memories": MEMORIES,
        "transcript": TRANSCRIPT,
        "now": NOW,
    }
    values.update(overrides)
    return PromptInput(**values)  # type: ignore[arg-type]


def test_a_small_model_gets_a_short_card_and_plain_memories_by_the_question() -> None:
    prompt = compose(data(), budget_tokens=1536, profile=SMALL_LOCAL)
    system, told, *middle, user = prompt.messages
    assert isinstance(system, SystemMessage) and isinstance(user, HumanMessage)
    card = str(system.content)
    assert card.startswith("You are Albert Einstein, theoretical physicist")
    assert "thought experiments" in card, "how the persona speaks"
    assert card.count("- Belief number") == 3, "two or three beliefs, not all five"
    assert "You are talking with Sam. Call them Sam." in card
    assert "Miso" not in card, "memories are not in the card (it stays a reusable prefix)"
    # what the user told before: facts about the user, after the card, the most relevant
    # last; never a turn the persona did not say
    assert isinstance(told, SystemMessage)
    assert str(told.content) == (
        "What you know about Sam, from what Sam told you: Sam lives in Lisbon. "
        "Sam's cat is called Miso."
    )
    assert "sounds lovely" not in str(told.content), "not its own old replies"
    assert str(user.content) == "What is my cat's name?"
    assert len(middle) <= 2, "the last few turns"
    assert all(isinstance(m, HumanMessage) for m in middle), "not its own replies to copy"
    assert "line 10" in str(middle[-1].content)
    assert prompt.estimated_tokens <= SMALL_LOCAL.prompt_tokens  # type: ignore[operator]
    assert prompt.card == "short" and "short card" in prompt.render()
    assert "miso" in prompt.facts.words and "cat" in prompt.facts.asked


@pytest.mark.parametrize("profile", [CAPABLE, SMALL_LOCAL, LOCAL_GGUF], ids=lambda p: p.name)
@pytest.mark.parametrize("others", [(), ("Socratic Tutor",)], ids=["alone", "room"])
def test_no_profile_puts_words_in_the_personas_mouth(profile: ModelProfile, others: Any) -> None:
    """Every assistant turn of the prompt is a line the persona said: nothing invented
    (no acknowledgement of what the user told, no summary in its voice)."""
    said = {ln.text for ln in TRANSCRIPT if ln.own}
    for memories in (MEMORIES, []):
        prompt = compose(data(memories=memories, others=others), profile=profile)
        spoken = [str(m.content) for m in prompt.messages if isinstance(m, AIMessage)]
        assert all(text in said for text in spoken), spoken
        assert not any("remember" in str(m.content).lower() for m in prompt.messages[1:])


def test_the_told_facts_keep_the_card_a_prefix_and_come_after_it() -> None:
    with_facts = compose(data(), profile=SMALL_LOCAL).messages
    without = compose(data(memories=[]), profile=SMALL_LOCAL).messages
    assert with_facts[0].content == without[0].content
    assert "Miso" in str(with_facts[1].content) and "Miso" not in str(without[1].content)


@pytest.mark.parametrize(
    ("said", "about"),
    [
        ("My cat is called Miso.", "Sam's cat is called Miso."),
        ("I live in Lisbon now.", "Sam lives in Lisbon now."),
        ("I am allergic to peanuts.", "Sam is allergic to peanuts."),
        ("I grew up in Nairobi.", "Sam grew up in Nairobi."),
        ("I keep bees on my allotment.", "Sam keeps bees on Sam's allotment."),
        ("Our wedding is in June.", "Sam's wedding is in June."),
        ("I'm learning Japanese.", "Sam is learning Japanese."),
        ("I watch films.", "Sam watches films."),
    ],
)
def test_what_the_user_told_is_said_about_them(said: str, about: str) -> None:
    assert _about(said, "Sam") == about


def test_a_later_persona_in_a_room_sees_the_earlier_replies_after_the_question() -> None:
    prompt = compose(
        data(
            others=("Socratic Tutor",),
            memories=[],
            transcript=[],
            user_text="What is time?",
            replies=[Line("Socratic Tutor", "Time is what clocks measure.", own=False)],
        ),
        profile=SMALL_LOCAL,
    )
    *_, question, earlier = prompt.messages
    assert str(question.content) == "What is time?"
    assert isinstance(earlier, HumanMessage)
    assert str(earlier.content) == 'Socratic Tutor said: "Time is what clocks measure."'
    capable = compose(
        data(
            others=("Socratic Tutor",),
            memories=[],
            transcript=[],
            user_text="What is time?",
            replies=[Line("Socratic Tutor", "Time is what clocks measure.", own=False)],
        ),
        profile=CAPABLE,
    )
    assert [str(m.content) for m in capable.messages[-2:]] == [
        "Sam: What is time?",
        "Socratic Tutor: Time is what clocks measure.",
    ]
    assert prompt.replies == ("Time is what clocks measure.",)
    assert "never repeat what the others said" in str(prompt.messages[0].content)


def test_the_small_prompt_stays_within_its_budget_dropping_oldest_lines_first() -> None:
    long = [Line("Sam", "word " * 200, own=False) for _ in range(4)]
    prompt = compose(data(transcript=long), budget_tokens=1536, profile=SMALL_LOCAL)
    assert prompt.estimated_tokens <= 640
    assert prompt.dropped_lines >= 2
    total = sum(estimate_tokens(str(m.content)) for m in prompt.messages)
    assert total <= 640
    # the question and the best memory survive
    assert str(prompt.messages[-1].content) == "What is my cat's name?"
    assert "Miso" in str(prompt.messages[1].content)


def test_a_capable_model_gets_the_full_card_with_every_belief() -> None:
    prompt = compose(data(), budget_tokens=4000, profile=CAPABLE)
    card = str(prompt.messages[0].content)
    assert all(f"Belief number {i}" in card for i in range(5))
    assert "Miso" in card and "sounds lovely" in card, "memories in the card, both speakers"
    assert str(prompt.messages[-1].content) == "What is my cat's name?"
    assert prompt.card == "full"


def test_the_persona_card_is_the_same_prefix_for_every_question() -> None:
    one = compose(data(), profile=SMALL_LOCAL).messages[0].content
    two = compose(data(user_text="Hello!", memories=[]), profile=SMALL_LOCAL).messages[0].content
    assert one == two


def test_a_room_prompt_names_the_others_and_the_guard_knows_their_labels() -> None:
    prompt = compose(
        data(others=("Socratic Tutor",), handles=("socratic-tutor",), memories=[]),
        profile=SMALL_LOCAL,
    )
    assert "group chat with Sam and Socratic Tutor" in str(prompt.messages[0].content)
    # the user's line plainly: a "Name:" label is what a small model goes on writing
    assert str(prompt.messages[-1].content) == "What is my cat's name?"
    assert {"socratic tutor", "socratic", "sam"} <= set(prompt.speakers.others)
    assert prompt.speakers.handles == ("socratic-tutor",)
    assert "albert einstein" in prompt.speakers.own


def test_reply_length_follows_the_personas_verbosity_within_the_models_range() -> None:
    terse, usual, verbose = (StyleConfig(max_tokens=n) for n in (256, 512, 768))
    small = [reply_tokens(SMALL_LOCAL, s) for s in (terse, usual, verbose)]
    assert small == sorted(small) and small[0] == 64 and small[-1] == 128
    assert reply_tokens(CAPABLE, verbose) == 768
    assert decoding_for(CAPABLE, verbose).options() == {"temperature": 0.7, "max_tokens": 768}
    hot = decoding_for(SMALL_LOCAL, StyleConfig(temperature=0.95))
    assert hot.temperature <= 0.5 and hot.repeat_penalty and hot.frequency_penalty
