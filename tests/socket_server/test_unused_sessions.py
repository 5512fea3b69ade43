"""A session started and left before anything was said in it leaves nothing behind: the
web page's "Start a new session", a lost connection (after a grace time in which a
reloaded page takes it back), and the terminal chat."""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from agents.fake_llm import FakeStreamingChatModel
from memory import SessionNotFound
from personas import Actor
from runtime.cli.chat import chat_here
from socket_server.keys import CHAT, SIO
from socket_server.namespace import ChatNamespace
from tests.personas.factory import definition
from tests.socket_server.conftest import Server
from tests.socket_server.test_browser import Tab, _open_session, _serve, tab  # noqa: F401

ADMIN = Actor("admin", is_admin=True)


async def _exists(server: Server, session_id: str) -> bool:
    try:
        await server.services.memory.transcripts.get_session(uuid.UUID(session_id))
    except SessionNotFound:
        return False
    return True


def _namespace(server: Server) -> ChatNamespace:
    handler: ChatNamespace = server.app[SIO].namespace_handlers["/chat"]
    return handler


def _discards(server: Server, monkeypatch: pytest.MonkeyPatch) -> asyncio.Queue[uuid.UUID]:
    """The sessions the server decides about, as it decides (deleted or kept)."""
    decided: asyncio.Queue[uuid.UUID] = asyncio.Queue()
    chat = server.app[CHAT]
    original = chat.discard_if_unused

    async def discard(principal: Any, session_id: uuid.UUID) -> bool:
        try:
            return await original(principal, session_id)
        finally:
            decided.put_nowait(session_id)

    monkeypatch.setattr(chat, "discard_if_unused", discard)
    return decided


async def test_a_session_left_unused_is_deleted_and_a_used_one_kept(
    server: Server, connect: Any
) -> None:
    await server.services.personas.create(definition("tutor"), ADMIN)
    client = await connect(server)
    tried = (await client.call("session.start", {"personas": ["tutor"]}))["session"]["id"]
    # the page's "Start a new session": it leaves the open one, then starts another
    assert (await client.call("session.leave", {"session_id": tried}))["ok"]
    assert not await _exists(server, tried)

    used = (await client.call("session.start", {"personas": ["tutor"]}))["session"]["id"]
    sent = await client.call(
        "message.send", {"session_id": used, "text": "Hello", "client_msg_id": "c1"}
    )
    assert sent["ok"]
    await client.wait_for("message.done")
    assert (await client.call("session.leave", {"session_id": used}))["ok"]
    assert await _exists(server, used), "a session something was said in stays"

    # leaving a session this connection did not start deletes nothing
    other = await connect(server)
    empty = (await other.call("session.start", {"personas": ["tutor"]}))["session"]["id"]
    assert (await client.call("session.start", {"session_id": empty}))["ok"]
    assert (await client.call("session.leave", {"session_id": empty}))["ok"]
    assert await _exists(server, empty)


async def test_a_lost_connections_unused_session_goes_unless_taken_back(
    server: Server, connect: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    await server.services.personas.create(definition("tutor"), ADMIN)
    decided = _discards(server, monkeypatch)
    namespace = _namespace(server)

    # a reloaded page takes its session back within the grace time: it stays
    namespace.unused_grace_s = 30.0
    page = await connect(server)
    kept = (await page.call("session.start", {"personas": ["tutor"]}))["session"]["id"]
    await page.sio.disconnect()
    reloaded = await connect(server)
    assert (await reloaded.call("session.start", {"session_id": kept}))["ok"]
    assert await _exists(server, kept)

    # a tab closed for good: its unused session goes once the grace time is over
    namespace.unused_grace_s = 0.0
    await reloaded.sio.disconnect()  # the session it took back goes with it
    closed = await connect(server)
    gone = (await closed.call("session.start", {"personas": ["tutor"]}))["session"]["id"]
    await closed.sio.disconnect()
    async with asyncio.timeout(15):
        seen = {await decided.get(), await decided.get()}
    assert seen == {uuid.UUID(kept), uuid.UUID(gone)}
    assert not await _exists(server, kept) and not await _exists(server, gone)


async def test_a_terminal_chat_left_without_a_word_leaves_no_session(
    services_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with services_factory(FakeStreamingChatModel()) as services:
        await services.personas.create(definition("tutor"), ADMIN)
        transcripts = services.memory.transcripts
        for typed in ("", "/memories\n/quit\n"):
            monkeypatch.setattr(sys, "stdin", io.StringIO(typed))
            args = argparse.Namespace(persona="tutor", session=None, user="uma")
            assert await chat_here(services, args) == 0
            assert await transcripts.list_sessions("uma") == [], typed

        # going on with a session the user named keeps it, said in or not
        session = await transcripts.create_session(
            "uma", [(await services.personas.get("tutor")).id]
        )
        monkeypatch.setattr(sys, "stdin", io.StringIO("/quit\n"))
        args = argparse.Namespace(persona="tutor", session=session.id, user="uma")
        assert await chat_here(services, args) == 0
        assert [s.id for s in await transcripts.list_sessions("uma")] == [session.id]


async def test_the_pages_start_a_new_session_leaves_no_empty_one_behind(
    start_server: Callable[..., Awaitable[Server]],
    tab: Tab,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, persona = await _serve(start_server)
    decided = _discards(server, monkeypatch)
    first = await _open_session(tab, server, persona)
    await tab.by("start-button").click()  # "Start a new session", nothing said
    await tab.page.wait_for_function(f"!location.hash.includes('{first}')")
    async with asyncio.timeout(15):
        assert await decided.get() == first
    assert not await _exists(server, str(first))
    second = uuid.UUID((await tab.page.evaluate("location.hash")).split("=", 1)[1])
    assert await _exists(server, str(second)), "the session now open stays"
    assert not tab.problems, tab.problems
