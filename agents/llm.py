"""Which chat model a persona talks through: the embedded local model, or any provider
``langchain.chat_models.init_chat_model`` knows (``openai:gpt-4o-mini``,
``anthropic:...``, ``ollama:...``, OpenAI-compatible servers through ``base_url``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from langchain_core.language_models import BaseChatModel

from agents.decoding import CAPABLE, LOCAL_GGUF, SMALL_LOCAL, ModelProfile
from agents.errors import LLMUnavailable
from agents.local_llm import LocalChatModel

__all__ = [
    "GGUF",
    "LOCAL",
    "ChatModelFactory",
    "LLMSpec",
    "is_local",
    "make_chat_model",
    "profile_for",
]

LOCAL = "local"
GGUF = "gguf:"
"""``gguf:/path/to/model.gguf``: any local GGUF file, run in-process like the default."""
# a GGUF file under this size holds a small model (SmolLM2-135M is ~140 MB, 360M ~370 MB)
_SMALL_GGUF_BYTES = 1 << 30
_GGUF_CONTEXT = 4096


def is_local(model: str) -> bool:
    """Whether ``model`` runs in-process (the embedded model or a GGUF file)."""
    return model == LOCAL or model.startswith(GGUF)


def gguf_path(model: str) -> Path:
    """The file a ``gguf:`` model id names; ``LLMUnavailable`` when it is not there."""
    path = Path(model[len(GGUF) :]).expanduser()
    if not path.is_file():
        raise LLMUnavailable(model, f"no GGUF file at {path}")
    return path


def profile_for(model: str) -> ModelProfile:
    """How prompts and decoding fit ``model``: the embedded model and small GGUF files
    get the small-model profile; larger GGUF files the full card with llama.cpp's
    penalties; providers the full card and the persona's own settings."""
    if model == LOCAL:
        return SMALL_LOCAL
    if model.startswith(GGUF):
        try:
            size = gguf_path(model).stat().st_size
        except (LLMUnavailable, OSError):
            return SMALL_LOCAL
        return SMALL_LOCAL if size < _SMALL_GGUF_BYTES else LOCAL_GGUF
    return CAPABLE


@dataclass(frozen=True, slots=True)
class LLMSpec:
    """What model to use and how long to wait for it.

    ``model`` is ``"local"``, ``"gguf:/path/to/model.gguf"`` or an ``init_chat_model``
    id. ``timeout_s`` bounds one
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
    if spec.model.startswith(GGUF):
        path = gguf_path(spec.model)
        small = path.stat().st_size < _SMALL_GGUF_BYTES
        return LocalChatModel(
            model_path=str(path),
            timeout_s=spec.timeout_s,
            n_ctx=2048 if small else _GGUF_CONTEXT,
        )
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
