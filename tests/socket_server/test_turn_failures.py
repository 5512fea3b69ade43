"""What a turn's failures mean: a step failing after ``message.done`` leaves the reply a
success (and the other personas answer); the vector store down means an answer without
memories, flagged, and counted memories lost; ``message.retry`` answers a stored user
message exactly once per persona."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from agents.fake_llm import FakeStreamingChatModel
from agents.tracker import TraitTracker
from memory.errors import IndexUnavailable
from personas import Actor
from socket_server.keys import METRICS
from tests.personas.factory import definition
from tests.socket_server.conftest import Server

ADMIN = Actor("admin", is_admin=True)


def _sample(server: Server, name: str, labels: dict[str, str] | None = None) -> float:
    return server.app[METRICS].registry.get_sample_value(name, labels or {}) or 0.0


async def _send(client: Any, session: str, text: str) -> dict[str, Any]:
    ack = await client.call(
        "message.send", {"session_id": session, "text": text, "client_msg_id": uuid.uuid4().hex}
    )
    assert ack["ok"], ack
    message: dict[str, Any] = ack["message"]
    return message


async def test_a_step_failing_after_the_reply_is_delivered_does_not_fail_it(
    server: Server, connect: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for slug in ("tutor", "coach"):
        await server.services.personas.create(definition(slug), ADMIN)
    record = TraitTracker.record
    calls = 0

    async def failing_once(self: TraitTracker, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("trait store broke")
        return await record(self, *args, **kwargs)

    monkeypatch.setattr(TraitTracker, "record", failing_once)
    client = await connect(server)
    started = await client.call("session.start", {"personas": ["tutor", "coach"], "policy": "all"})
    session = started["session"]["id"]
    sent = await _send(client, session, "Hello both of you")
    # the second persona still answers, and nobody hears of a failure
    await client.wait_for("persona.traits_updated")
    replies = [
        await client.wait_for(
            "message.done",
            lambda d, slug=slug: (
                d["message"]["speaker"] == slug.title() and d["message"]["reply_to"] == sent["id"]
            ),
        )
        for slug in ("tutor", "coach")
    ]
    assert all(r["message"]["status"] == "complete" for r in replies)
    history = await client.call("session.history", {"session_id": session})
    assert [m["role"] for m in history["messages"]] == ["user", "persona", "persona"]
    assert not client.of("message.error")
    assert _sample(server, "personae_turn_step_errors_total", {"step": "extract_traits"}) == 1
    assert _sample(server, "personae_turns_total", {"status": "complete"}) == 2


async def test_with_the_vector_store_down_a_turn_answers_without_memories(
    server: Server, connect: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    await server.services.personas.create(definition("tutor"), ADMIN)
    index = type(server.services.memory.index)

    async def down(*args: Any, **kwargs: Any) -> Any:
        raise IndexUnavailable("test", "connection refused")

    monkeypatch.setattr(index, "search", down)
    monkeypatch.setattr(index, "upsert", down)
    client = await connect(server)
    session = (await client.call("session.start", {"personas": ["tutor"]}))["session"]["id"]
    sent = await _send(client, session, "Do you remember my cat?")
    done = await client.wait_for("message.done")
    assert done["message"]["reply_to"] == sent["id"]
    assert done["message"]["timings"]["memory_unavailable"] == 1
    await client.wait_for("persona.traits_updated")
    assert not client.of("message.error")
    history = await client.call("session.history", {"session_id": session})
    assert [m["role"] for m in history["messages"]] == ["user", "persona"]
    assert history["messages"][1]["timings"]["memory_unavailable"] == 1
    assert _sample(server, "personae_memories_lost_total") == 2


async def test_retry_answers_an_unanswered_message_once_per_persona(
    start_server: Any, connect: Any
) -> None:
    model = FakeStreamingChatModel(reply="Now I can answer.", fail_before_first_token=True)
    server: Server = await start_server(model=model)
    await server.services.personas.create(definition("tutor"), ADMIN)
    client = await connect(server)
    session = (await client.call("session.start", {"personas": ["tutor"]}))["session"]["id"]
    sent = await _send(client, session, "Are you there?")
    error = await client.wait_for("message.error")
    assert error["code"] == "llm_unavailable"
    model.fail_before_first_token = False
    retry = {"session_id": session, "message_id": sent["id"]}
    ack = await client.call("message.retry", retry)
    assert ack["ok"] and ack["message"]["id"] == sent["id"], ack
    done = await client.wait_for("message.done")
    assert done["message"]["reply_to"] == sent["id"]
    calls = model.calls
    # again: the stored reply is re-sent, the model is not asked twice
    again = await client.call("message.retry", retry)
    assert again["ok"], again
    await client.wait_for("message.done", lambda d: len(client.of("message.done")) == 2)
    assert [d["message"]["id"] for d in client.of("message.done")] == [done["message"]["id"]] * 2
    assert model.calls == calls
    history = await client.call("session.history", {"session_id": session})
    assert [m["role"] for m in history["messages"]] == ["user", "persona"]
    # only user messages of the caller's own sessions
    reply_id = done["message"]["id"]
    wrong = await client.call("message.retry", {"session_id": session, "message_id": reply_id})
    assert wrong["error"]["code"] == "message_not_found"
    other = await connect(server, user="mallory")
    stolen = await other.call("message.retry", retry)
    assert stolen["error"]["code"] == "forbidden"


async def test_rejoining_answers_unanswered_messages_when_set(
    start_server: Any, connect: Any
) -> None:
    model = FakeStreamingChatModel(reply="Here I am.", fail_before_first_token=True)
    server: Server = await start_server(model=model, answer_on_rejoin=True)
    await server.services.personas.create(definition("tutor"), ADMIN)
    tab = await connect(server)
    session = (await tab.call("session.start", {"personas": ["tutor"]}))["session"]["id"]
    sent = await _send(tab, session, "Anyone?")
    assert (await tab.wait_for("message.error"))["code"] == "llm_unavailable"
    model.fail_before_first_token = False
    back = await connect(server)
    rejoined = await back.call("session.start", {"session_id": session})
    assert rejoined["ok"], rejoined
    done = await back.wait_for("message.done")
    assert done["message"]["reply_to"] == sent["id"]
    calls = model.calls
    again = await connect(server)
    assert (await again.call("session.start", {"session_id": session}))["ok"]
    # answered now: a later rejoin starts nothing
    history = await again.call("session.history", {"session_id": session})
    assert [m["role"] for m in history["messages"]] == ["user", "persona"]
    await _send(again, session, "Thanks")
    await again.wait_for("message.done")
    assert model.calls == calls + 1
