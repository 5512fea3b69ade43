"""What the prompt says the persona knows about the user: current facts first and dated,
the superseded ones only when the line asks about the past, and never as current."""

from __future__ import annotations

import datetime as dt

from agents.decoding import CAPABLE, SMALL_LOCAL
from agents.facts_prompt import KnownFact, asks_about_past, known_facts_text
from agents.prompt import PromptInput, compose
from tests.agents.test_prompt_budget import NOW, persona

BERLIN = KnownFact("Ada lives in Berlin.", dt.datetime(2026, 11, 3, tzinfo=dt.UTC))
DOG = KnownFact("Ada's dog is called Pixel.", dt.datetime(2026, 5, 1, tzinfo=dt.UTC))
LYON = KnownFact(
    "Ada lives in Lyon.",
    dt.datetime(2025, 1, 2, tzinfo=dt.UTC),
    until=dt.datetime(2026, 11, 3, tzinfo=dt.UTC),
)


def test_current_facts_come_first_with_their_dates_and_history_is_marked() -> None:
    text = known_facts_text("Ada", [BERLIN, DOG, LYON])
    lines = text.splitlines()
    assert lines[0] == "What you know about Ada (true now):"
    assert lines[1] == "- Ada lives in Berlin (since 3 November 2026)."
    assert lines[2] == "- Ada's dog is called Pixel (since 1 May 2026)."
    assert lines[3].startswith("No longer true about Ada")
    assert lines[4] == "- Ada lives in Lyon (from 2 January 2025 until 3 November 2026)."
    assert known_facts_text("Ada", []) == ""
    assert known_facts_text("Ada", [BERLIN, DOG, LYON], limit=1).count("\n- ") == 2


def test_questions_about_the_past_are_told_apart() -> None:
    assert asks_about_past("Where did I live before?")
    assert asks_about_past("What was my old job?")
    assert not asks_about_past("Where do I live?")
    assert not asks_about_past("What is my dog's name?")


def test_both_cards_carry_the_current_facts_in_a_system_message() -> None:
    """The full card holds them dated; the short card is followed by them in a system
    message of their own (the card stays the same prefix for every user), in plain
    sentences with the most relevant last, next to the question."""
    data = PromptInput(
        persona=persona(),
        user_name="Ada",
        user_text="Where do I live?",
        facts=[BERLIN, DOG],
        now=NOW,
    )
    system = str(compose(data, profile=CAPABLE).messages[0].content)
    assert "What you know about Ada (true now):" in system
    assert "- Ada lives in Berlin (since 3 November 2026)." in system
    assert "Lyon" not in system

    small = compose(data, profile=SMALL_LOCAL).messages
    assert "Ada lives in" not in str(small[0].content)
    assert small[1].type == "system"
    assert small[1].content == (
        "What you know about Ada, from what Ada told you: "
        "Ada's dog is called Pixel. Ada lives in Berlin."
    )
    assert [m.type for m in small[2:]] == ["human"]


def test_the_short_card_shows_history_dated_when_the_line_asks_about_the_past() -> None:
    data = PromptInput(
        persona=persona(),
        user_name="Ada",
        user_text="Where did I live before?",
        facts=[BERLIN, LYON],
        now=NOW,
    )
    about = str(compose(data, profile=SMALL_LOCAL).messages[1].content)
    assert about.startswith("What you know about Ada (true now):")
    assert "Ada lives in Lyon (from 2 January 2025 until 3 November 2026)." in about


def test_the_short_card_shows_only_the_facts_the_search_found_for_the_line() -> None:
    """The most recent facts would otherwise crowd out the memories that answer it."""
    unfound = KnownFact("Ada's cat is called Miso.", NOW, found=False)
    data = PromptInput(
        persona=persona(),
        user_name="Ada",
        user_text="Where do I live?",
        facts=[BERLIN, unfound],
        now=NOW,
    )
    prompt = compose(data, profile=SMALL_LOCAL)
    about = str(prompt.messages[1].content)
    assert about.endswith("Ada lives in Berlin.") and "Miso" not in about
    # the guard knows every current fact: a reply claiming one as its own is caught
    assert prompt.facts.claim("My cat is called Miso.") == "My cat is called Miso."
    assert prompt.facts.claim("I live in Berlin.") == "I live in Berlin."
    assert prompt.facts.claim("I am glad you asked, Ada.") is None
