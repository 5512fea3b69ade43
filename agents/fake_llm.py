"""A canned streaming chat model: for tests and for load benchmarks that must not measure
an LLM. It streams a configured reply token by token, honours ``stop`` sequences and
``max_tokens`` like a real model, and can be told to fail the ways real models fail."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import PrivateAttr

from agents.errors import LLMStreamBroken, LLMUnavailable

__all__ = ["FakeStreamingChatModel", "cut_at_stop", "split_tokens"]

ReplyFn = Callable[[Sequence[BaseMessage]], str]

_TOKEN = re.compile(r"\s*\S+|\s+$")


def split_tokens(text: str) -> list[str]:
    """Split text into word tokens that keep their leading whitespace, so that joining
    them gives the text back."""
    return _TOKEN.findall(text)


def cut_at_stop(text: str, stop: Sequence[str] | None) -> str:
    """The text before the earliest occurrence of any stop sequence."""
    end = len(text)
    for sequence in stop or ():
        if sequence:
            found = text.find(sequence)
            if 0 <= found < end:
                end = found
    return text[:end]


class FakeStreamingChatModel(BaseChatModel):
    """Streams ``reply`` (a text, or a function of the prompt messages) word by word.

    Use it wherever a test or benchmark needs the shape of an LLM reply without a model:
    ``token_count`` pads (with numbered words) or trims the reply to exactly that many tokens,
    ``token_delay_s`` paces them, ``fail_before_first_token`` raises ``LLMUnavailable``
    and ``break_after_tokens=N`` raises ``LLMStreamBroken`` after N tokens. The last
    prompt, stop sequences and call kwargs are kept for assertions. Like a provider, its
    last chunk reports ``usage_metadata`` counted with its own tokenizer,
    :func:`split_tokens` (off with ``report_usage=False``).
    """

    reply: str | ReplyFn = "Hello from the fake model."
    token_count: int | None = None
    token_delay_s: float = 0.0
    first_token_delay_s: float = 0.0
    fail_before_first_token: bool = False
    break_after_tokens: int | None = None
    provider: str = "fake"
    report_usage: bool = True

    _calls: int = PrivateAttr(default=0)
    _last_messages: list[BaseMessage] | None = PrivateAttr(default=None)
    _last_stop: list[str] | None = PrivateAttr(default=None)
    _last_kwargs: dict[str, Any] = PrivateAttr(default_factory=dict)

    @property
    def _llm_type(self) -> str:
        return "personae-fake"

    @property
    def calls(self) -> int:
        """How many generations were started (streamed or not)."""
        return self._calls

    @property
    def last_messages(self) -> list[BaseMessage] | None:
        """The prompt of the latest call."""
        return self._last_messages

    @property
    def last_stop(self) -> list[str] | None:
        """The stop sequences of the latest call."""
        return self._last_stop

    @property
    def last_kwargs(self) -> dict[str, Any]:
        """Per-call options (``max_tokens``, ``temperature``...) of the latest call."""
        return self._last_kwargs

    def _plan(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> tuple[list[str], str]:
        """The tokens to stream, and why the reply ends there (``"length"`` when
        ``max_tokens`` cut it, as a real model reports)."""
        self._calls += 1
        self._last_messages = list(messages)
        self._last_stop = list(stop) if stop is not None else None
        self._last_kwargs = dict(kwargs)
        text = self.reply(messages) if callable(self.reply) else self.reply
        tokens = split_tokens(text)
        if self.token_count is not None:
            if not tokens:
                tokens = [" token"]
            # padded with numbered words, not the reply again: a real reply that loops
            # is cut by the reply guard, and a fake one must not look like one
            padded = (
                tokens[i] if i < len(tokens) else f"w{i + 1}" for i in range(self.token_count)
            )
            tokens = [t if i == 0 or t[:1].isspace() else " " + t for i, t in enumerate(padded)]
        tokens = split_tokens(cut_at_stop("".join(tokens), stop))
        max_tokens = kwargs.get("max_tokens")
        if max_tokens is not None and len(tokens) > int(max_tokens):
            return tokens[: int(max_tokens)], "length"
        return tokens, "stop"

    def _failure(self, sent: list[str]) -> Exception | None:
        if self.fail_before_first_token:
            return LLMUnavailable(self.provider, "configured to fail before the first token")
        if self.break_after_tokens is not None and len(sent) >= self.break_after_tokens:
            return LLMStreamBroken(
                self.provider,
                f"configured to break after {self.break_after_tokens} tokens",
                "".join(sent),
            )
        return None

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        tokens, reason = self._plan(messages, stop, kwargs)
        await asyncio.sleep(self.first_token_delay_s)
        sent: list[str] = []
        for index, token in enumerate(tokens):
            failure = self._failure(sent)
            if failure is not None:
                raise failure
            if index:
                await asyncio.sleep(self.token_delay_s)
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=token))
            if run_manager is not None:
                await run_manager.on_llm_new_token(token, chunk=chunk)
            sent.append(token)
            yield chunk
        failure = self._failure(sent)
        if failure is not None:
            raise failure
        end = AIMessageChunk(
            content="",
            response_metadata={"finish_reason": reason},
            usage_metadata=self._usage(messages, sent) if self.report_usage else None,
        )
        yield ChatGenerationChunk(message=end)

    @staticmethod
    def _usage(messages: Sequence[BaseMessage], sent: Sequence[str]) -> UsageMetadata:
        """Tokens as :func:`split_tokens` counts them: every prompt message's, the reply's."""
        read = sum(len(split_tokens(str(m.content))) for m in messages)
        return UsageMetadata(
            input_tokens=read, output_tokens=len(sent), total_tokens=read + len(sent)
        )

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        parts = [chunk.text async for chunk in self._astream(messages, stop, run_manager, **kwargs)]
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content="".join(parts)))])

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        tokens, _ = self._plan(messages, stop, kwargs)
        sent: list[str] = []
        for token in tokens:
            failure = self._failure(sent)
            if failure is not None:
                raise failure
            sent.append(token)
        failure = self._failure(sent)
        if failure is not None:
            raise failure
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content="".join(sent)))])
