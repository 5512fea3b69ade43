"""The OpenAI-compatible API, driven by the official ``openai`` client against a real
server (fake model and embedder)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import openai
import pytest

from agents.fake_llm import FakeStreamingChatModel
from memory import MemoryFilter
from personas import Actor
from runtime.infra.auth import mint_token
from tests.personas.factory import definition
from tests.socket_server.conftest import Server

ADMIN = Actor("admin", is_admin=True)
REPLY = "Light is a wave and a particle, my friend."


def _client(server: Server, token: str, **kw: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=server.url + "/v1", api_key=token, max_retries=0, timeout=30, **kw
    )


async def _messages(server: Server, session_id: uuid.UUID) -> list[Any]:
    return list((await server.services.memory.transcripts.history(session_id)).items)


@pytest.fixture
async def oserver(start_server: Callable[..., Awaitable[Server]]) -> Server:
    server = await start_server(model=FakeStreamingChatModel(reply=REPLY))
    await server.services.personas.create(definition("tutor"), ADMIN)
    await server.services.personas.create(definition("retired", active=False), ADMIN)
    return server


async def test_models_lists_active_personas(oserver: Server) -> None:
    async with _client(oserver, oserver.token("alice")) as client:
        models = [m.id async for m in client.models.list()]
        assert models == ["persona/tutor"]
        one = await client.models.retrieve("persona/tutor")
        assert one.id == "persona/tutor" and one.owned_by == "personae"
        with pytest.raises(openai.NotFoundError) as missing:
            await client.models.retrieve("persona/retired")
        assert missing.value.code == "model_not_found"


async def test_completion_answers_as_the_persona_and_stores_each_message_once(
    oserver: Server,
) -> None:
    async with _client(oserver, oserver.token("alice")) as client:
        first = await client.chat.completions.with_raw_response.create(
            model="persona/tutor",
            messages=[
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": "What is light?"},
            ],
        )
        session_id = uuid.UUID(first.headers["x-personae-session"])
        reply = first.parse()
        assert reply.choices[0].message.content == REPLY
        assert reply.choices[0].finish_reason == "stop"
        assert reply.model == "persona/tutor"
        assert reply.usage is not None and reply.usage.completion_tokens > 0

        # the client resends the whole history with one new message
        history: list[Any] = [
            {"role": "user", "content": "What is light?"},
            {"role": "assistant", "content": REPLY},
            {"role": "user", "content": [{"type": "text", "text": "And sound?"}]},
        ]
        second = await client.chat.completions.create(model="persona/tutor", messages=history)
        assert second.choices[0].message.content == REPLY
        # the very same request again (a client's retry) stores nothing new
        again = await client.chat.completions.create(model="persona/tutor", messages=history)
        assert again.choices[0].message.content == REPLY
        assert again.id == second.id

    stored = await _messages(oserver, session_id)
    assert [(m.role, m.text) for m in stored] == [
        ("user", "What is light?"),
        ("persona", REPLY),
        ("user", "And sound?"),
        ("persona", REPLY),
    ]
    session = await oserver.services.memory.transcripts.get_session(session_id)
    assert session.user_id == "alice"
    # the turn saw the stored transcript: the earlier exchange was in the prompt
    prompt = [str(m.content) for m in oserver.model.last_messages or []]
    assert "What is light?" in prompt and prompt[-1] == "And sound?"


async def test_streaming_sends_chunks_ending_with_done(oserver: Server) -> None:
    async with _client(oserver, oserver.token("alice")) as client:
        stream = await client.chat.completions.create(
            model="persona/tutor",
            messages=[{"role": "user", "content": "Tell me about light."}],
            stream=True,
            stream_options={"include_usage": True},
        )
        deltas: list[str] = []
        finish: list[str | None] = []
        usage = None
        async for chunk in stream:
            assert chunk.object == "chat.completion.chunk"
            if chunk.usage is not None:
                usage = chunk.usage
            for choice in chunk.choices:
                deltas.append(choice.delta.content or "")
                finish.append(choice.finish_reason)
    assert "".join(deltas) == REPLY
    assert len([d for d in deltas if d]) > 1  # streamed as the model went, not in one piece
    assert finish[-1] == "stop" and finish.count("stop") == 1
    assert usage is not None and usage.total_tokens > 0


async def test_a_named_session_is_kept_apart_and_owned(oserver: Server) -> None:
    async with _client(
        oserver, oserver.token("alice"), default_headers={"X-Personae-Session": "physics"}
    ) as alice:
        raw = await alice.chat.completions.with_raw_response.create(
            model="persona/tutor", messages=[{"role": "user", "content": "Hello"}]
        )
        named = uuid.UUID(raw.headers["x-personae-session"])
    async with _client(oserver, oserver.token("alice")) as alice:
        raw = await alice.chat.completions.with_raw_response.create(
            model="persona/tutor", messages=[{"role": "user", "content": "Hello"}]
        )
        derived = uuid.UUID(raw.headers["x-personae-session"])
    assert named != derived
    async with _client(
        oserver, oserver.token("bob"), default_headers={"X-Personae-Session": str(named)}
    ) as bob:
        with pytest.raises(openai.PermissionDeniedError) as refused:
            await bob.chat.completions.create(
                model="persona/tutor", messages=[{"role": "user", "content": "Let me in"}]
            )
    assert refused.value.code == "forbidden"
    assert [m.text for m in await _messages(oserver, named)] == ["Hello", REPLY]


async def test_errors_come_in_openai_shape(oserver: Server) -> None:
    async with _client(oserver, oserver.token("alice")) as client:
        with pytest.raises(openai.NotFoundError) as unknown:
            await client.chat.completions.create(
                model="persona/nobody", messages=[{"role": "user", "content": "Hi"}]
            )
        assert unknown.value.code == "model_not_found"
        assert unknown.value.type == "invalid_request_error"
        assert "persona/nobody" in unknown.value.message
        with pytest.raises(openai.NotFoundError):
            await client.chat.completions.create(
                model="persona/nobody",
                messages=[{"role": "user", "content": "Hi"}],
                stream=True,
            )
        with pytest.raises(openai.BadRequestError) as last:
            await client.chat.completions.create(
                model="persona/tutor", messages=[{"role": "assistant", "content": "Hi"}]
            )
        assert "last message" in last.value.message
        with pytest.raises(openai.BadRequestError) as too_long:
            await client.chat.completions.create(
                model="persona/tutor",
                messages=[
                    {"role": "user", "content": "x" * (oserver.settings.max_message_chars + 1)}
                ],
            )
        assert too_long.value.code == "text_too_long"
    forged = mint_token("f" * 40, "alice")  # signed with another secret
    for token in ("not-a-jwt", forged):
        async with _client(oserver, token) as bad:
            with pytest.raises(openai.AuthenticationError) as refused:
                await bad.chat.completions.create(
                    model="persona/tutor", messages=[{"role": "user", "content": "Hi"}]
                )
            assert refused.value.code == "unauthorized"
            with pytest.raises(openai.AuthenticationError):
                await bad.models.list()


async def test_a_failing_model_is_an_error_before_the_stream_starts(
    start_server: Callable[..., Awaitable[Server]],
) -> None:
    server = await start_server(model=FakeStreamingChatModel(fail_before_first_token=True))
    await server.services.personas.create(definition("tutor"), ADMIN)
    async with _client(server, server.token("alice")) as client:
        for stream in (False, True):
            with pytest.raises(openai.InternalServerError) as failed:
                await client.chat.completions.create(
                    model="persona/tutor",
                    messages=[{"role": "user", "content": f"Hi {stream}"}],
                    stream=stream,
                )
            assert failed.value.code == "llm_unavailable"


async def test_without_a_secret_the_request_names_the_user(
    start_server: Callable[..., Awaitable[Server]],
) -> None:
    server = await start_server(model=FakeStreamingChatModel(reply=REPLY), auth_secret=None)
    await server.services.personas.create(definition("tutor"), ADMIN)
    async with _client(server, "anything") as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="persona/tutor", messages=[{"role": "user", "content": "Hi"}], user="uma"
        )
    session = await server.services.memory.transcripts.get_session(
        uuid.UUID(raw.headers["x-personae-session"])
    )
    assert session.user_id == "uma"


async def test_a_retry_while_the_reply_runs_waits_for_it_and_stores_nothing_twice(
    start_server: Callable[..., Awaitable[Server]],
) -> None:
    model = FakeStreamingChatModel(reply=REPLY, token_delay_s=0.05)
    server = await start_server(model=model)
    await server.services.personas.create(definition("tutor"), ADMIN)
    key = {"Idempotency-Key": "retry-1"}
    messages: list[Any] = [{"role": "user", "content": "What is light?"}]
    async with _client(server, server.token("alice"), default_headers=key) as client:
        first = await client.chat.completions.create(
            model="persona/tutor", messages=messages, stream=True
        )
        parts: list[str] = []
        async for chunk in first:
            parts.extend(c.delta.content or "" for c in chunk.choices)
            if "".join(parts).strip():
                break  # the reply is on its way: the client retries now
        again = await client.chat.completions.create(model="persona/tutor", messages=messages)
        await first.close()
    assert again.choices[0].message.content == REPLY
    assert model.calls == 1
    sessions = await server.services.memory.transcripts.list_sessions("alice")
    stored = (await server.services.memory.transcripts.history(sessions[0].id)).items
    assert [m.role for m in stored] == ["user", "persona"]


async def test_unknown_paths_and_methods_answer_in_openai_shape(oserver: Server) -> None:
    async with aiohttp.ClientSession() as http:
        bearer = {"Authorization": f"Bearer {oserver.token('alice')}"}
        for method, path, headers, status, code in (
            ("GET", "/v1/nothing/here", bearer, 404, "not_found"),
            ("POST", "/v1/models", bearer, 405, "method_not_allowed"),
            ("GET", "/v1/nothing/here", {}, 401, "unauthorized"),
        ):
            async with http.request(method, oserver.url + path, headers=headers) as response:
                body = await response.json()
                assert response.status == status, (path, body)
                assert body["error"]["code"] == code, body
                assert set(body["error"]) == {"message", "type", "param", "code"}, body
                if status == 405:
                    assert "GET" in response.headers["Allow"]


async def test_parallel_resends_of_an_unanswered_message_answer_it_once(
    start_server: Callable[..., Awaitable[Server]],
) -> None:
    """A message stored but never answered (its server was killed mid-turn), then sent
    again by eight parallel requests: one turn runs, under the session's lock and the
    caller's limits; the others report its reply or are refused with 429."""
    model = FakeStreamingChatModel(reply=REPLY, token_delay_s=0.01)
    server = await start_server(model=model, max_concurrent_turns=3)
    await server.services.personas.create(definition("tutor"), ADMIN)
    async with _client(server, server.token("alice")) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="persona/tutor", messages=[{"role": "user", "content": "Hello"}]
        )
    session_id = uuid.UUID(raw.headers["x-personae-session"])
    transcripts = server.services.memory.transcripts
    crashed, _ = await transcripts.store_user_message(
        session_id, user_id="alice", speaker="alice", text="What is light?", client_msg_id="v1k:k1"
    )
    tutor = await server.services.personas.get("tutor")

    async def memories() -> int:
        where = MemoryFilter(persona_id=str(tutor.id), session_id=str(session_id))
        return len((await server.services.memory.list(where, limit=100)).records)

    memories_before = await memories()
    headers = {"Idempotency-Key": "k1", "X-Personae-Session": str(session_id)}
    async with _client(server, server.token("alice"), default_headers=headers) as client:

        async def resend() -> str:
            try:
                done = await client.chat.completions.create(
                    model="persona/tutor", messages=[{"role": "user", "content": "What is light?"}]
                )
            except openai.RateLimitError:
                return "429"
            return done.choices[0].message.content or ""

        answers = await asyncio.gather(*(resend() for _ in range(8)))
    assert REPLY in answers and set(answers) <= {REPLY, "429"}
    assert model.calls == 2, "the first message's turn and one for the resent one"
    stored = await _messages(server, session_id)
    assert [m.reply_to for m in stored if m.role == "persona"].count(crashed.id) == 1
    assert await memories() - memories_before == 2, "the exchange remembered once"


async def test_another_users_session_id_cannot_be_computed_and_taken_first(
    oserver: Server,
) -> None:
    """Bob computes the id Dave's default session had (a digest of public values) and
    takes it; Dave's own calls are not refused: his id is keyed with the secret."""
    tutor = await oserver.services.personas.get("tutor")
    for name in ("", "physics"):
        guessed = uuid.uuid5(
            uuid.UUID("4b0e2f6e-9d1c-4f63-8d55-2a7c1e9b3f40"), f"dave\x1f{tutor.id}\x1f{name}"
        )
        async with _client(
            oserver, oserver.token("bob"), default_headers={"X-Personae-Session": str(guessed)}
        ) as bob:
            await bob.chat.completions.create(
                model="persona/tutor", messages=[{"role": "user", "content": "Squat"}]
            )
        headers = {"X-Personae-Session": name} if name else {}
        async with _client(oserver, oserver.token("dave"), default_headers=headers) as dave:
            raw = await dave.chat.completions.with_raw_response.create(
                model="persona/tutor", messages=[{"role": "user", "content": "Mine"}]
            )
        session = await oserver.services.memory.transcripts.get_session(
            uuid.UUID(raw.headers["x-personae-session"])
        )
        assert session.user_id == "dave" and session.id != guessed


async def test_v1_sessions_count_against_the_sessions_per_minute(
    start_server: Callable[..., Awaitable[Server]],
) -> None:
    server = await start_server(model=FakeStreamingChatModel(reply=REPLY), sessions_per_minute=3)
    await server.services.personas.create(definition("tutor"), ADMIN)
    refused = 0
    async with _client(server, server.token("erin")) as client:
        for i in range(6):
            try:
                await client.with_options(
                    default_headers={"X-Personae-Session": f"topic {i}"}
                ).chat.completions.create(
                    model="persona/tutor", messages=[{"role": "user", "content": "Hi"}]
                )
            except openai.RateLimitError as exc:
                assert exc.code == "rate_limited"
                refused += 1
    assert refused == 3
    assert len(await server.services.memory.transcripts.list_sessions("erin")) == 3
