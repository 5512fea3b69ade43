"""The chat protocol over real Socket.IO clients against a real server."""

from __future__ import annotations

import uuid
from typing import Any

from personas import Actor
from tests.personas.factory import definition
from tests.socket_server.conftest import Server

ADMIN = Actor("admin", is_admin=True)


async def _persona(server: Server, slug: str = "tutor", **kw: Any) -> Any:
    return await server.services.personas.create(definition(slug, **kw), ADMIN)


async def test_chat_streams_tokens_then_done_and_persists(server: Server, connect: Any) -> None:
    persona = await _persona(server)
    client = await connect(server, name="Alice")
    started = await client.call("session.start", {"personas": ["tutor"]})
    assert started["ok"], started
    session_id = started["session"]["id"]
    assert started["session"]["personas"][0]["id"] == str(persona.id)
    assert started["history"] == []

    ack = await client.call(
        "message.send", {"session_id": session_id, "text": "Hi, I am Alice.", "client_msg_id": "c1"}
    )
    assert ack["ok"] and not ack["duplicate"] and ack["message"]["role"] == "user"
    done = await client.wait_for("message.done")
    tokens = client.of("message.token")
    # the first token at once, the rest of this fast model's burst coalesced into one
    assert len(tokens) == 2
    assert "".join(t["delta"] for t in tokens).strip() == done["message"]["text"]
    assert done["message"]["persona_id"] == str(persona.id)
    assert done["message"]["reply_to"] == ack["message"]["id"]
    assert "first_token_ms" in done["message"]["timings"]
    assert client.of("message.started")[0]["message_id"] == done["message"]["id"]

    history = await client.call("session.history", {"session_id": session_id})
    assert [m["role"] for m in history["messages"]] == ["user", "persona"]

    await client.wait_for("persona.traits_updated")
    memories = await client.call("memory.list", {"persona": "tutor"})
    assert memories["ok"]
    assert {m["speaker"]["name"] for m in memories["memories"]} == {"Alice", persona.name}


async def test_bad_payloads_get_clear_errors_and_the_connection_stays(
    server: Server, connect: Any
) -> None:
    await _persona(server)
    client = await connect(server)
    cases = [
        ("session.start", {"personas": "tutor"}, "invalid_payload"),
        ("session.start", {"personas": ["nobody"]}, "persona_not_found"),
        ("session.start", ["not", "an", "object"], "invalid_payload"),
        (
            "message.send",
            {"session_id": "x", "text": "hi", "client_msg_id": "c"},
            "invalid_payload",
        ),
        (
            "message.send",
            {"session_id": str(uuid.uuid4()), "text": "hi", "client_msg_id": "c"},
            "session_not_found",
        ),
        ("nonsense.event", {}, "unknown_event"),
        ("memory.list", {"persona": "tutor", "extra": 1}, "invalid_payload"),
    ]
    for event, data, code in cases:
        ack = await client.call(event, data)
        assert ack == {"ok": False, "error": ack["error"]}, ack
        assert ack["error"]["code"] == code, (event, ack)
        assert "Traceback" not in ack["error"]["message"]
    started = await client.call("session.start", {"personas": ["tutor"]})
    long = "x" * (server.settings.max_message_chars + 1)
    ack = await client.call(
        "message.send",
        {"session_id": started["session"]["id"], "text": long, "client_msg_id": "big"},
    )
    assert ack["error"]["code"] == "text_too_long"
    assert client.sio.connected


async def test_duplicate_client_msg_id_is_stored_and_answered_once(
    server: Server, connect: Any
) -> None:
    await _persona(server)
    client = await connect(server)
    session_id = (await client.call("session.start", {"personas": ["tutor"]}))["session"]["id"]
    send = {"session_id": session_id, "text": "Once only", "client_msg_id": "same"}
    first = await client.call("message.send", send)
    await client.wait_for("message.done")
    second = await client.call("message.send", send)
    assert (
        second["ok"] and second["duplicate"] and second["message"]["id"] == first["message"]["id"]
    )
    history = await client.call("session.history", {"session_id": session_id})
    assert [m["role"] for m in history["messages"]] == ["user", "persona"]
    assert server.model.calls == 1


async def test_legacy_chat_message_alias(server: Server, connect: Any) -> None:
    persona = await _persona(server)
    client = await connect(server)
    ack = await client.call("chat_message", {"message": "Hello?", "personaId": "tutor"})
    assert ack["ok"]
    response = await client.wait_for("ai_response")
    assert response["personaId"] == "tutor" and response["message"]
    assert response["sessionId"] == ack["sessionId"]
    assert "honesty" in response["traits"]
    # the same session is reused for the persona on this connection, by id too
    again = await client.call("chat_message", {"message": "Again", "personaId": str(persona.id)})
    assert again["sessionId"] == ack["sessionId"]
