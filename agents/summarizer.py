"""Session summaries written by a language model (``PERSONAE_MEMORY_LLM``, the model the
LLM extractor of facts uses).

The model gets the session's last lines (at most :data:`MAX_LINES` lines and
:data:`MAX_CHARS` characters, the newest kept), each dated and with its speaker, and is
asked for JSON ``{"summary": "..."}``: two to four sentences in the third person, dated,
saying what the user told about themself and what was discussed, the persona's own
claims not taken as facts. An answer that does not parse, is empty or too long, or does
not name the user is not used: the local, extractive summary is written instead
(:class:`memory.summaries.LocalSummarizer`), never a misplaced one."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Callable

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage

from memory.summaries import LocalSummarizer, Summary, Transcript, day

log = logging.getLogger(__name__)

MAX_LINES = 40
MAX_CHARS = 6000
_MAX_LINE = 600
_MAX_SUMMARY = 1200

_SYSTEM = (
    "You write the memory a persona keeps of one conversation with a user. Summarise the "
    "conversation below in two to four sentences, in the third person, naming the user "
    "and giving the date: what the user said about themself (facts, plans, preferences, "
    "changes) and what was discussed. Only what the user said is fact: do not state the "
    "persona's own claims or guesses about the user as true. Do not invent anything. "
    'Answer with JSON only: {"summary": "..."}'
)
_JSON = re.compile(r"\{.*\}", re.DOTALL)


def transcript_text(transcript: Transcript) -> str:
    """The lines the model is shown: the newest that fit, oldest first."""
    kept: list[str] = []
    size = 0
    for line in reversed(transcript.lines[-MAX_LINES:]):
        text = " ".join(line.text.split())
        if len(text) > _MAX_LINE:
            text = text[:_MAX_LINE] + "…"
        who = f"{line.speaker} (the user)" if line.role == "user" else line.speaker
        entry = f"[{line.created_at.astimezone(dt.UTC).date().isoformat()}] {who}: {text}"
        if kept and size + len(entry) + 1 > MAX_CHARS:
            break
        kept.append(entry)
        size += len(entry) + 1
    return "\n".join(reversed(kept))


def parse_summary(answer: str, transcript: Transcript) -> str | None:
    """The summary in the model's JSON answer, or None when it is unusable."""
    match = _JSON.search(answer)
    if match is None:
        return None
    try:
        data = json.loads(match.group())
    except ValueError:
        return None
    text = data.get("summary") if isinstance(data, dict) else None
    if not isinstance(text, str):
        return None
    text = " ".join(text.split())
    if not (20 <= len(text) <= _MAX_SUMMARY):
        return None
    named = transcript.user_name.casefold() in text.casefold()
    if not (named or "the user" in text.casefold()):
        return None  # about someone else: not this session's
    return text


class LlmSummarizer:
    """Summaries from a chat model's JSON answer; the local summary when it is unusable."""

    def __init__(self, model: Callable[[], BaseChatModel]) -> None:
        self._model = model
        self._local = LocalSummarizer()

    async def summarize(self, transcript: Transcript) -> Summary | None:
        span = day(transcript.first_at)
        if day(transcript.last_at) != span:
            span = f"{span} to {day(transcript.last_at)}"
        prompt = (
            f"The user is {transcript.user_name}. The conversation took place on {span}"
            f" ({transcript.messages} messages; the last ones below).\n\n"
            + transcript_text(transcript)
        )
        reply = await self._model().ainvoke(
            [SystemMessage(content=_SYSTEM), HumanMessage(content=prompt)]
        )
        content = reply.content if isinstance(reply.content, str) else str(reply.content)
        text = parse_summary(content, transcript)
        if text is None:
            log.info(
                "the model's summary of session %s was unusable: the local one instead",
                transcript.session_id,
            )
            return self._local.summarize_now(transcript)
        return Summary(text, "llm")


__all__ = ["MAX_CHARS", "MAX_LINES", "LlmSummarizer", "parse_summary", "transcript_text"]
