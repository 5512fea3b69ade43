"""Which chat model a persona talks through: the embedded local model, or any provider
``langchain.chat_models.init_chat_model`` knows (``openai:gpt-4o-mini``,
``anthropic:...``, ``ollama:...``, OpenAI-compatible servers through ``base_url``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from langchain_core.language_models import BaseChatModel

from agents.errors import LLMUnavailable
from agents.local_llm import LocalChatModel

__all__ = ["LOCAL", "ChatModelFactory", "LLMSpec", "make_chat_model"]

LOCAL = "local"


@dataclass(frozen=True, slots=True)
class LLMSpec:
    """What model to use and how long to wait for it.

    ``model`` is ``"local"`` or an ``init_chat_model`` id. ``timeout_s`` bounds one
    request (for the local model: the wait for the first token); ``max_retries`` is
    passed to remote providers."""

    model: str = LOCAL
    base_url: str | None = None
    timeout_s: float = 60.0
    max_retries: int = 2

    def __post_init__(self) -> None:
        if not self.model.strip():
            raise ValueError("llm model must not be empty")
        if not self.timeout_s > 0:
            raise ValueError(f"llm timeout_s must be positive, got {self.timeout_s}")
        if self.max_retries < 0:
            raise ValueError(f"llm max_retries must be >= 0, got {self.max_retries}")


class ChatModelFactory(Protocol):
    """Builds the chat model for a spec; the seam tests and benchmarks replace."""

    def __call__(self, spec: LLMSpec) -> BaseChatModel: ...


def make_chat_model(spec: LLMSpec) -> BaseChatModel:
    """The chat model ``spec`` names. Raises ``LLMUnavailable`` when the provider's
    package is missing or its configuration is rejected (unknown provider, no API key)."""
    if spec.model == LOCAL:
        return LocalChatModel(timeout_s=spec.timeout_s)
    try:
        from langchain.chat_models import init_chat_model
    except ImportError as exc:
        raise LLMUnavailable(spec.model, f"langchain is not installed: {exc}") from exc
    kwargs: dict[str, Any] = {"timeout": spec.timeout_s, "max_retries": spec.max_retries}
    if spec.base_url is not None:
        kwargs["base_url"] = spec.base_url
    try:
        model = init_chat_model(spec.model, **kwargs)
    except Exception as exc:
        # Providers fail construction in their own ways: ImportError (package missing),
        # ValueError (unknown provider, pydantic validation), openai.OpenAIError (no key).
        raise LLMUnavailable(spec.model, _first_line(exc)) from exc
    if not isinstance(model, BaseChatModel):
        raise LLMUnavailable(spec.model, f"not a chat model: {type(model).__name__}")
    return model


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
