"""LLM-backed raters, used only when a capable model is configured (never the embedded
135M model): a memory importance rater and a trait judge with structured output. Both
fall back to the deterministic signals when the model fails, so a turn never waits on
them longer than their timeout and never fails because of them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import BaseModel, Field

from agents.traits import TraitObservation
from memory.types import MemoryKind, SpeakerRole
from memory.vector.importance import heuristic_importance

log = logging.getLogger(__name__)

_IMPORTANCE_PROMPT = (
    "Rate how important it is for a conversational persona to remember this line about "
    "the person it talks with, from 0 (small talk) to 10 (a core fact: name, family, "
    "health, plans, strong preferences). Answer with the number only."
)
_JUDGE_PROMPT = (
    "You judge how a persona's reply expresses personality traits. For each trait listed, "
    "give a score from 0 (absent) to 1 (strongly expressed) in this reply alone."
)


class _TraitScores(BaseModel):
    scores: dict[str, float] = Field(description="trait name -> 0..1", max_length=32)


class LLMImportance:
    """An :class:`memory.types.ImportanceRater` asking the configured model."""

    def __init__(self, model: Callable[[], BaseChatModel], *, timeout_s: float = 10.0) -> None:
        self._model = model
        self._timeout = timeout_s

    async def rate(
        self, text: str, *, kind: MemoryKind = "turn", speaker_role: SpeakerRole = "user"
    ) -> float:
        fallback = heuristic_importance(text, kind=kind, speaker_role=speaker_role)
        try:
            async with asyncio.timeout(self._timeout):
                reply = await self._model().ainvoke(
                    [SystemMessage(content=_IMPORTANCE_PROMPT), HumanMessage(content=text[:2000])],
                    temperature=0,
                    max_tokens=4,
                )
            value = float(str(reply.content).strip().split()[0]) / 10
        except Exception as exc:  # noqa: BLE001  (a rating is optional: fall back)
            log.warning(
                "llm importance rating failed (%s); using the heuristic", type(exc).__name__
            )
            return fallback
        return min(1.0, max(0.0, value))


class LLMTraitJudge:
    """Scores the persona's configured traits in a reply with structured output."""

    def __init__(
        self,
        model: Callable[[], BaseChatModel],
        *,
        timeout_s: float = 15.0,
        confidence: float = 0.7,
    ) -> None:
        self._model = model
        self._timeout = timeout_s
        self._confidence = confidence

    async def judge(self, reply: str, traits: Sequence[str]) -> list[TraitObservation]:
        """Observations for ``traits`` in ``reply``; empty when the model fails."""
        if not traits or not reply.strip():
            return []
        wanted = list(dict.fromkeys(traits))[:24]
        try:
            structured = self._model().with_structured_output(_TraitScores)
            async with asyncio.timeout(self._timeout):
                result = await structured.ainvoke(
                    [
                        SystemMessage(content=_JUDGE_PROMPT),
                        HumanMessage(
                            content=f"Traits: {', '.join(wanted)}\n\nReply:\n{reply[:4000]}"
                        ),
                    ]
                )
        except Exception as exc:  # noqa: BLE001  (a judgement is optional)
            log.warning("llm trait judge failed (%s); skipping", type(exc).__name__)
            return []
        if not isinstance(result, _TraitScores):
            return []
        return [
            TraitObservation(name, min(1.0, max(0.0, float(value))), "llm_judge", self._confidence)
            for name, value in result.scores.items()
            if name in wanted and isinstance(value, int | float)
        ]
