"""What ``/v1/chat/completions`` accepts, as OpenAI's API does: every parameter checked
by type and range (the error names it), ``persona/<slug>`` model names only, and token
counts as the persona's model counted them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import openai
import pytest

from agents.fake_llm import FakeStreamingChatModel, split_tokens
from agents.prompt import estimate_tokens
from tests.personas.factory import definition
from tests.socket_server.conftest import Server
from tests.socket_server.test_openai_api import ADMIN, REPLY, _client

HI = [{"role": "user", "content": "What is time?"}]


@pytest.fixture
async def oserver(start_server: Callable[..., Awaitable[Server]]) -> Server:
    server = await start_server(model=FakeStreamingChatModel(reply=REPLY))
    await server.services.personas.create(definition("tutor"), ADMIN)
    return server


async def _post(server: Server, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {server.token('alice')}"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(server.url + "/v1/chat/completions", json=body, headers=headers) as res,
    ):
        return res.status, await res.json()


@pytest.mark.parametrize(
    ("extra", "param", "says"),
    [
        ({"temperature": "hot"}, "temperature", "expected a number, but got a string"),
        ({"temperature": True}, "temperature", "expected a number, but got a boolean"),
        ({"temperature": 2.5}, "temperature", "less than or equal to 2"),
        ({"top_p": -0.1}, "top_p", "greater than or equal to 0"),
        ({"presence_penalty": 3}, "presence_penalty", "less than or equal to 2"),
        ({"frequency_penalty": "0"}, "frequency_penalty", "expected a number"),
        ({"max_tokens": 0}, "max_tokens", "greater than or equal to 1"),
        ({"max_completion_tokens": 1.5}, "max_completion_tokens", "expected an integer"),
        ({"seed": "42"}, "seed", "expected an integer, but got a string"),
        ({"stream": "true"}, "stream", "expected a boolean, but got a string"),
        ({"stream_options": {"include_usage": 1}}, "stream_options.include_usage", "a boolean"),
        ({"n": 2}, "n", "less than or equal to 1"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "at most 4"),
        ({"stop": 7}, "stop", "expected a string or an array, but got an integer"),
        ({"stop": ["a", 1]}, "stop[1]", "expected a string, but got an integer"),
        ({"logit_bias": {"50256": 101}}, "logit_bias.50256", "less than or equal to 100"),
        ({"logit_bias": {"word": 1}}, "logit_bias.word", "should match pattern"),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata", "at most 16"),
        ({"user": 7}, "user", "expected a string, but got an integer"),
        ({"tools": [{"type": "function"}]}, "tools[0].function", "missing"),
        ({"tool_choice": "sometimes"}, "tool_choice", "'none', 'auto' or 'required'"),
        ({"service_tier": "gold"}, "service_tier", "'auto'"),
        ({"top_logprobs": 21}, "top_logprobs", "less than or equal to 20"),
        # what a persona's reply cannot be is refused, not ignored
        ({"logprobs": True}, "logprobs", "no log probabilities"),
        ({"tool_choice": "required"}, "tool_choice", "never with a tool call"),
        ({"response_format": {"type": "json_object"}}, "response_format", "not JSON"),
        ({"modalities": ["text", "audio"]}, "modalities", "no audio"),
    ],
)
async def test_a_parameter_of_the_wrong_type_or_range_is_refused_by_name(
    oserver: Server, extra: dict[str, Any], param: str, says: str
) -> None:
    status, body = await _post(oserver, {"model": "persona/tutor", "messages": HI, **extra})
    assert status == 400, body
    error = body["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "invalid_payload"
    assert error["param"] == param, error
    assert says in error["message"] and f"'{param}'" in error["message"], error
    assert await oserver.services.memory.transcripts.totals() == (0, 0), "nothing stored"


async def test_every_parameter_of_the_right_type_is_taken(oserver: Server) -> None:
    async with _client(oserver, oserver.token("alice")) as client:
        reply = await client.chat.completions.create(
            model="persona/tutor",
            messages=HI,
            temperature=0.2,
            top_p=1,
            presence_penalty=-1.5,
            frequency_penalty=0.5,
            max_tokens=64,
            max_completion_tokens=64,
            seed=7,
            stop=["\n\n"],
            logit_bias={"50256": -100},
            logprobs=False,
            n=1,
            user="alice",
            metadata={"app": "notes"},
            store=False,
            tools=[{"type": "function", "function": {"name": "look_up", "parameters": {}}}],
            tool_choice="auto",
            parallel_tool_calls=False,
            response_format={"type": "text"},
            service_tier="auto",
            extra_body={"top_k": 40, "repetition_penalty": 1.1},  # other servers' own
        )
    assert reply.choices[0].message.content == REPLY


async def test_a_model_is_named_persona_slash_slug(oserver: Server) -> None:
    async with _client(oserver, oserver.token("alice")) as client:
        with pytest.raises(openai.NotFoundError) as bare:
            await client.chat.completions.create(model="tutor", messages=HI)
        assert bare.value.code == "model_not_found"
        assert "persona/tutor" in bare.value.message, "the name it needs is suggested"
        with pytest.raises(openai.NotFoundError):
            await client.models.retrieve("tutor")
        assert (await client.models.retrieve("persona/tutor")).id == "persona/tutor"
    assert await oserver.services.memory.transcripts.totals() == (0, 0)


async def test_usage_counts_the_prompt_the_persona_model_read(oserver: Server) -> None:
    """Token counts are the model's own (the fake model counts with its tokenizer,
    ``split_tokens``): the whole prompt the persona's turn sent it, not the request's line."""
    model = oserver.model
    async with _client(oserver, oserver.token("alice")) as client:
        reply = await client.chat.completions.create(model="persona/tutor", messages=HI)
        assert model.last_messages is not None
        read = sum(len(split_tokens(str(m.content))) for m in model.last_messages)
        assert reply.usage is not None
        assert reply.usage.prompt_tokens == read > estimate_tokens("What is time?")
        assert reply.usage.completion_tokens == len(split_tokens(REPLY))
        assert reply.usage.total_tokens == read + len(split_tokens(REPLY))

        stream = await client.chat.completions.create(
            model="persona/tutor",
            messages=[{"role": "user", "content": "And space?"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        usage = [chunk.usage async for chunk in stream if chunk.usage is not None]
        read = sum(len(split_tokens(str(m.content))) for m in model.last_messages)
        assert [(u.prompt_tokens, u.completion_tokens) for u in usage] == [
            (read, len(split_tokens(REPLY)))
        ]


async def test_usage_is_estimated_for_a_model_that_reports_none(
    start_server: Callable[..., Awaitable[Server]],
) -> None:
    server = await start_server(model=FakeStreamingChatModel(reply=REPLY, report_usage=False))
    await server.services.personas.create(definition("tutor"), ADMIN)
    async with _client(server, server.token("alice")) as client:
        reply = await client.chat.completions.create(model="persona/tutor", messages=HI)
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == estimate_tokens("What is time?")
    assert reply.usage.completion_tokens == estimate_tokens(REPLY)
