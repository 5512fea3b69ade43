"""Views of the OpenAI-compatible API (``/v1``): models, chat completions and the
chunks of a streamed one, in OpenAI's shapes."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, RootModel

from personas import Persona
from runtime.views.base import View
from runtime.views.errors import OpenAIErrorBody

MODEL_PREFIX = "persona/"
FinishReason = Literal["stop", "length"]


class ModelView(View):
    """A persona as an OpenAI model, ``persona/<slug>``."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: Literal["personae"] = "personae"
    name: str
    description: str

    @classmethod
    def of(cls, p: Persona) -> ModelView:
        return cls(
            id=MODEL_PREFIX + p.slug,
            created=int(p.created_at.timestamp()),
            name=p.name,
            description=p.description,
        )


class ModelList(View):
    object: Literal["list"] = "list"
    data: list[ModelView]


class Usage(View):
    """Token counts, estimated (about four characters a token)."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(View):
    role: Literal["assistant"] = "assistant"
    content: str
    refusal: None = None


class Choice(View):
    index: int = 0
    message: AssistantMessage
    logprobs: None = None
    finish_reason: FinishReason


class ChatCompletion(View):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage


class Delta(View):
    """What a chunk adds: the role (first chunk), text, or nothing (the last one)."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=False)

    role: Literal["assistant"] | None = Field(default=None, exclude_if=lambda v: v is None)
    content: str | None = Field(default=None, exclude_if=lambda v: v is None)


class ChunkChoice(View):
    index: int = 0
    delta: Delta
    logprobs: None = None
    finish_reason: FinishReason | None = None


class ChatCompletionChunk(View):
    """One server-sent event of a streamed completion."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]


class UsageChunk(ChatCompletionChunk):
    """The last event before ``[DONE]`` when ``stream_options.include_usage`` is set:
    no choices, the usage."""

    usage: Usage


class StreamEvent(RootModel[UsageChunk | ChatCompletionChunk | OpenAIErrorBody]):
    """One ``data:`` event of a stream: a chunk, the usage, or the error that ended it
    (a failure after the first token; the stream then ends without ``[DONE]``)."""
