"""Facts extracted by a language model: the consolidation queue's LLM extractor.

The model is asked, for a batch of one user's messages, for the facts each states about
the user, as JSON (``{"facts": [{"message": 0, "subject": "home", "text": "Ada lives in
Berlin", "when": "2026-03-01"}]}``). What does not parse, or names a message outside the
batch, is dropped: a model that answers badly yields no facts, never wrong ones in the
wrong place. Relative dates the model leaves ("last month") are resolved against the
message's time with ``dateparser``."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage

from memory.consolidation import ExtractedFact, Said

log = logging.getLogger(__name__)

_SYSTEM = (
    "You extract durable facts about a user from what the user said. For each numbered "
    "message, list the facts it states about the user themself (where they live, their "
    "work, family, pets and their names, partner, preferences, health, plans), each in "
    "the third person using the user's name, present tense, one short sentence. A "
    "question, a greeting or a statement about someone else is no fact. Give each fact a "
    "short subject key naming what it is about (home, job, employer, dog, cat, partner, "
    "name, likes:<thing>, favourite <thing>), the same key whenever the same thing "
    "changes, and the date it became true (YYYY-MM-DD) when the message says. Answer "
    'with JSON only: {"facts": [{"message": <number>, "subject": "...", "text": "...", '
    '"when": "YYYY-MM-DD or null"}]}'
)
_JSON = re.compile(r"\{.*\}", re.DOTALL)
_SUBJECT = re.compile(r"^[\w:' -]{1,60}$")


def _when(value: Any, said: Said) -> dt.datetime:
    if not isinstance(value, str) or not value.strip():
        return said.said_at
    import dateparser

    base = said.said_at.astimezone(dt.UTC).replace(tzinfo=None)
    parsed: dt.datetime | None = dateparser.parse(
        value,
        languages=["en"],
        settings={"RELATIVE_BASE": base, "PREFER_DATES_FROM": "past"},
    )
    if parsed is None:
        return said.said_at
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return min(parsed, said.said_at)


def parse_facts(answer: str, messages: Sequence[Said]) -> list[list[ExtractedFact]]:
    """The model's JSON answer as one list of facts per message (bad entries dropped)."""
    out: list[list[ExtractedFact]] = [[] for _ in messages]
    match = _JSON.search(answer)
    if match is None:
        return out
    try:
        data = json.loads(match.group())
    except ValueError:
        return out
    items = data.get("facts") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return out
    for item in items:
        if not isinstance(item, dict):
            continue
        index, subject, text = item.get("message"), item.get("subject"), item.get("text")
        if not (isinstance(index, int) and 0 <= index < len(messages)):
            continue
        if not (isinstance(subject, str) and _SUBJECT.match(subject.strip())):
            continue
        if not (isinstance(text, str) and 0 < len(text.strip()) <= 300):
            continue
        said = messages[index]
        body = text.strip()
        out[index].append(
            ExtractedFact(
                subject.strip().lower(),
                body if body.endswith(".") else body + ".",
                _when(item.get("when"), said),
            )
        )
    return out


class LlmExtractor:
    """Facts from a chat model's structured answer (see the module)."""

    def __init__(self, model: Callable[[], BaseChatModel]) -> None:
        self._model = model

    async def extract(self, messages: Sequence[Said]) -> list[list[ExtractedFact]]:
        if not messages:
            return []
        listing = "\n".join(
            f"{i}. ({m.said_at.date().isoformat()}, {m.user_name}) {m.text}"
            for i, m in enumerate(messages)
        )
        reply = await self._model().ainvoke(
            [SystemMessage(content=_SYSTEM), HumanMessage(content=listing)]
        )
        content = reply.content if isinstance(reply.content, str) else str(reply.content)
        return parse_facts(content, messages)


__all__ = ["LlmExtractor", "parse_facts"]
