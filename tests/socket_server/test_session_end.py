"""A session ends when its terminal chat closes or its last connection leaves it: its
summary is then due at once instead of after the quiet time."""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
import uuid
from typing import Any

import pytest

from agents.fake_llm import FakeStreamingChatModel
from memory.summaries import summary_id
from personas import Actor
from runtime.cli.chat import chat_here
from tests.personas.factory import definition
from tests.socket_server.conftest import Server

ADMIN = Actor("admin", is_admin=True)


async def _due(server: Server, session_id: str) -> bool:
    row = await server.services.summaries.get(uuid.UUID(session_id))
    return row is not None and row.due_at is not None


async def test_the_last_connection_leaving_a_session_ends_it(server: Server, connect: Any) -> None:
    await server.services.personas.create(definition("tutor"), ADMIN)
    first = await connect(server)
    session = (await first.call("session.start", {"personas": ["tutor"]}))["session"]["id"]
    sent = await first.call(
        "message.send",
        {"session_id": session, "text": "My dog is called Pixel.", "client_msg_id": "c1"},
    )
    assert sent["ok"]
    await first.wait_for("message.done")
    second = await connect(server)
    assert (await second.call("session.start", {"session_id": session}))["ok"]

    assert (await first.call("session.leave", {"session_id": session}))["ok"]
    await asyncio.sleep(0.2)
    assert not await _due(server, session), "another connection still follows it"

    await second.sio.disconnect()
    async with asyncio.timeout(10):
        while not await _due(server, session):
            await asyncio.sleep(0.05)

    # due now, not after the quiet time (the server's own worker may take it first)
    persona = await server.services.personas.get("tutor")
    memory_id = summary_id(uuid.UUID(session), persona.id)
    async with asyncio.timeout(10):
        while True:
            await server.services.summarizer.run_once()
            memory = await server.services.memory.index.get(memory_id, persona_id=str(persona.id))
            if memory is not None:
                break
            await asyncio.sleep(0.05)
    assert memory.kind == "summary" and "My dog is called Pixel." in memory.text


async def test_the_terminal_chat_ends_its_session_when_it_closes(
    services_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with services_factory(FakeStreamingChatModel()) as services:
        await services.personas.create(definition("tutor"), ADMIN)
        monkeypatch.setattr(sys, "stdin", io.StringIO("I live in Lyon.\n/quit\n"))
        args = argparse.Namespace(persona="tutor", session=None, user="uma")
        assert await chat_here(services, args) == 0
        (session,) = await services.memory.transcripts.list_sessions("uma")
        row = await services.summaries.get(session.id)
        assert row is not None and row.due_at is not None
        done = await services.summarizer.run_once()
        assert done.written == 1
        row = await services.summaries.get(session.id)
        assert row is not None and row.summary.endswith("uma said: I live in Lyon.")
