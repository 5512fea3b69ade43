"""A persona imported from a character card, in a real chat: its greeting opens the
session and its lore reaches the prompt when its keys come up."""

from __future__ import annotations

import json
from typing import Any

from personas import Actor
from personas.card_store import CardStore
from personas.cards import parse_card
from tests.personas.test_cards import v2
from tests.socket_server.conftest import Server


async def test_a_card_persona_greets_and_knows_its_lore(server: Server, connect: Any) -> None:
    definition, card = parse_card(json.dumps(v2()), source="mira.json")
    persona = await server.services.personas.create(definition, Actor("a", is_admin=True))
    await CardStore(server.services.pool).save(persona.id, card)
    client = await connect(server, name="Alice")
    started = await client.call("session.start", {"personas": [definition.slug]})
    assert started["ok"], started
    greeting = started["history"]
    assert [m["role"] for m in greeting] == ["persona"]
    assert greeting[0]["text"] in {
        "Welcome aboard, alice. Mind the rigging.",
        "You're late, navigator.",
    }
    session_id = started["session"]["id"]
    ack = await client.call(
        "message.send",
        {"session_id": session_id, "text": "Tell me about the storm.", "client_msg_id": "c1"},
    )
    assert ack["ok"], ack
    await client.wait_for("message.done")
    system = str(server.model.last_messages[0].content)  # type: ignore[index]
    assert "The Maelstrom took Mira's first ship." in system
    assert "Scenario: Alice has just signed on" in system
    assert system.endswith("Never break character as Captain Mira Vell.")
    prompt = [str(m.content) for m in server.model.last_messages or []]
    assert greeting[0]["text"] in prompt  # the greeting is the persona's first line
