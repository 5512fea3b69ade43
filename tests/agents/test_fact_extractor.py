"""The LLM extractor of facts, on a scripted fake model: its JSON answer becomes facts per
message, with relative dates resolved against the message's time; what does not parse or
names no message of the batch yields nothing, never a fact in the wrong place."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence

from langchain_core.messages import BaseMessage

from agents.fact_extractor import LlmExtractor, parse_facts
from agents.fake_llm import FakeStreamingChatModel
from memory.consolidation import Said

WHEN = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
BATCH = [
    Said("My dog is called Pixel, and I moved to Berlin last month.", "Ada", WHEN),
    Said("What is my dog's name?", "Ada", WHEN),
]
# an answer as a capable model gave it for this batch (kept as recorded)
RECORDED = json.dumps(
    {
        "facts": [
            {"message": 0, "subject": "dog", "text": "Ada's dog is called Pixel", "when": None},
            {"message": 0, "subject": "Home", "text": "Ada lives in Berlin.", "when": "last month"},
        ]
    }
)


async def test_a_recorded_answer_becomes_facts_per_message() -> None:
    seen: list[Sequence[BaseMessage]] = []

    def answer(messages: Sequence[BaseMessage]) -> str:
        seen.append(messages)
        return "Here you are:\n" + RECORDED

    model = FakeStreamingChatModel(reply=answer)
    found = await LlmExtractor(lambda: model).extract(BATCH)
    assert [[(f.subject, f.text) for f in facts] for facts in found] == [
        [("dog", "Ada's dog is called Pixel."), ("home", "Ada lives in Berlin.")],
        [],
    ]
    assert found[0][0].valid_from == WHEN
    assert found[0][1].valid_from.date() == dt.date(2026, 2, 10)
    # the batch is numbered for the model, with each message's date and speaker
    assert "0. (2026-03-10, Ada) My dog is called Pixel" in str(seen[0][-1].content)
    assert "JSON" in str(seen[0][0].content)


def test_bad_answers_yield_no_facts() -> None:
    empty: list[list[object]] = [[], []]
    for answer in (
        "I cannot help with that.",
        "{not json}",
        json.dumps({"facts": "Ada has a dog"}),
        json.dumps([{"message": 0, "subject": "dog", "text": "x"}]),
        json.dumps({"facts": [{"message": 5, "subject": "dog", "text": "Ada has a dog."}]}),
        json.dumps({"facts": [{"message": "0", "subject": "dog", "text": "Ada has a dog."}]}),
        json.dumps({"facts": [{"message": 0, "subject": "", "text": "Ada has a dog."}]}),
        json.dumps({"facts": [{"message": 0, "subject": "dog", "text": ""}]}),
    ):
        assert parse_facts(answer, BATCH) == empty, answer
