"""The LLM writer of session summaries, on a scripted fake model: its JSON answer becomes
the summary; the transcript it is shown is bounded and dated; an answer that does not
parse, is empty or is about someone else gives the local summary instead."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest
from langchain_core.messages import BaseMessage

from agents.fake_llm import FakeStreamingChatModel
from agents.summarizer import MAX_CHARS, MAX_LINES, LlmSummarizer, parse_summary, transcript_text
from memory.record.summaries import SessionLine
from memory.summaries import LocalSummarizer, Transcript

DAY = dt.datetime(2026, 12, 7, 10, 0, tzinfo=dt.UTC)


def said(seq: int, role: str, text: str) -> SessionLine:
    return SessionLine(
        id=uuid.uuid4(),
        seq=seq,
        role=role,
        speaker="Ada" if role == "user" else "Albert Einstein",
        text=text,
        status="complete",
        reply_to=None,
        created_at=DAY + dt.timedelta(minutes=seq),
    )


SESSION = Transcript(
    session_id=uuid.uuid4(),
    user_name="Ada",
    lines=(
        said(1, "user", "My dog is called Pixel, and I moved to Berlin last month."),
        said(2, "persona", "Berlin! I lived there for years. Is Pixel a dachshund?"),
        said(3, "user", "No, a beagle. What did you work on in Berlin?"),
        said(4, "persona", "The general theory of relativity, among other things."),
    ),
    messages=4,
    first_at=DAY + dt.timedelta(minutes=1),
    last_at=DAY + dt.timedelta(minutes=4),
)
# an answer as a capable model gave it for this session (kept as recorded)
RECORDED = json.dumps(
    {
        "summary": (
            "On 7 December 2026 Ada said that her dog, a beagle, is called Pixel and that "
            "she moved to Berlin last month. She asked Albert Einstein about his years in "
            "Berlin, and he spoke about the general theory of relativity."
        )
    }
)


async def test_a_recorded_answer_becomes_the_summary() -> None:
    seen: list[Sequence[BaseMessage]] = []

    def answer(messages: Sequence[BaseMessage]) -> str:
        seen.append(messages)
        return "```json\n" + RECORDED + "\n```"

    model = FakeStreamingChatModel(reply=answer)
    summary = await LlmSummarizer(lambda: model).summarize(SESSION)
    assert summary is not None and summary.origin == "llm"
    assert summary.text == json.loads(RECORDED)["summary"]
    prompt = str(seen[0][-1].content)
    assert "The user is Ada." in prompt and "7 December 2026" in prompt
    assert "[2026-12-07] Ada (the user): My dog is called Pixel" in prompt
    assert "[2026-12-07] Albert Einstein: Berlin! I lived there" in prompt
    system = str(seen[0][0].content)
    assert "JSON" in system and "third person" in system and "persona's own claims" in system


async def test_bad_answers_give_the_local_summary() -> None:
    local = LocalSummarizer().summarize_now(SESSION)
    assert local is not None
    for bad in (
        "I cannot help with that.",
        "{not json}",
        json.dumps({"summary": ""}),
        json.dumps({"summary": 42}),
        json.dumps(["Ada has a dog called Pixel."]),
        json.dumps({"summary": "Bob talked about his cat Felix at great length."}),
        json.dumps({"summary": "Ada " + "talked " * 400}),
    ):
        model = FakeStreamingChatModel(reply=bad)
        assert await LlmSummarizer(lambda m=model: m).summarize(SESSION) == local, bad
        assert parse_summary(bad, SESSION) is None, bad


def test_the_transcript_shown_is_bounded_newest_kept() -> None:
    long = Transcript(
        session_id=uuid.uuid4(),
        user_name="Ada",
        lines=tuple(said(i, "user", f"line {i} " + "word " * 60) for i in range(1, 101)),
        messages=100,
        first_at=DAY,
        last_at=DAY + dt.timedelta(minutes=100),
    )
    text = transcript_text(long)
    shown = text.splitlines()
    assert len(text) <= MAX_CHARS and len(shown) <= MAX_LINES
    assert shown[-1].split(": ", 1)[1].startswith("line 100 ")
    numbers = [int(s.split(": ", 1)[1].split()[1]) for s in shown]
    assert numbers == sorted(numbers)  # oldest first
    assert len(transcript_text(SESSION).splitlines()) == 4


def test_a_summary_shows_in_a_capable_models_prompt_without_a_speaker() -> None:
    from agents.prompt import Recollection, _memories_text

    summary = Recollection(
        "Conversation with Ada on 7 December 2026 (4 messages). Ada said: I live in Lyon.",
        "",
        DAY,
        kind="summary",
        role="system",
    )
    line = Recollection("My dog is called Pixel.", "Ada", DAY)
    text = _memories_text([summary, line], DAY + dt.timedelta(days=2))
    assert "- (2 days ago, summary) Conversation with Ada on 7 December 2026" in text
    assert "- (2 days ago, Ada) My dog is called Pixel." in text


def test_the_model_writes_summaries_only_when_a_capable_one_is_named(
    no_personae_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runtime.services import session_summarizer
    from runtime.settings import load_settings

    def writer(**settings: object) -> object:
        return session_summarizer(load_settings(home=tmp_path, **settings))

    assert isinstance(writer(), LocalSummarizer)
    # the embedded 135M model invents: the extractive summary even when it is named
    assert isinstance(writer(memory_llm="local"), LocalSummarizer)
    assert isinstance(writer(memory_llm="openai:gpt-4o-mini"), LlmSummarizer)
    assert load_settings(home=tmp_path).summary_quiet_s == 900.0
    monkeypatch.setenv("PERSONAE_SUMMARY_QUIET_S", "60")
    assert load_settings(home=tmp_path).summary_quiet_s == 60.0
