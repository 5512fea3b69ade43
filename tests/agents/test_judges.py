"""The LLM-backed raters: used with a capable model, falling back when it fails."""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableLambda

from agents.fake_llm import FakeStreamingChatModel
from agents.judges import LLMImportance, LLMTraitJudge, _TraitScores
from memory.vector.importance import heuristic_importance


async def test_importance_from_the_model_and_fallback() -> None:
    rater = LLMImportance(lambda: FakeStreamingChatModel(reply="8"))
    assert await rater.rate("My daughter Lina starts school in May.") == 0.8
    broken = LLMImportance(lambda: FakeStreamingChatModel(reply="x", fail_before_first_token=True))
    text = "My name is Uma and I live in Porto."
    assert await broken.rate(text) == heuristic_importance(text, kind="turn", speaker_role="user")
    chatty = LLMImportance(lambda: FakeStreamingChatModel(reply="very important"))
    assert await chatty.rate("ok thanks") == heuristic_importance(
        "ok thanks", kind="turn", speaker_role="user"
    )


class _Structured(FakeStreamingChatModel):
    """A model whose structured output returns fixed scores."""

    def with_structured_output(self, schema: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        return RunnableLambda(
            lambda _: _TraitScores(scores={"humour": 0.9, "warmth": 1.7, "unasked": 0.5})
        )


async def test_trait_judge_keeps_asked_traits_clamped() -> None:
    judge = LLMTraitJudge(lambda: _Structured())
    found = await judge.judge("Ha! What a delightful question.", ["humour", "warmth"])
    assert {(o.trait, o.value, o.method) for o in found} == {
        ("humour", 0.9, "llm_judge"),
        ("warmth", 1.0, "llm_judge"),
    }
    failing = LLMTraitJudge(lambda: FakeStreamingChatModel(reply="no tools here"))
    assert await failing.judge("Ha!", ["humour"]) == []
    assert await judge.judge("   ", ["humour"]) == []
