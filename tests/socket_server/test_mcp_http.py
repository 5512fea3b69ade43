"""The MCP server over streamable HTTP at ``/mcp``, driven by the official SDK's own
client against a real server (fake model and embedder): every tool, the card resource,
a reply's text in progress notifications, refusal without a valid token and bad
arguments. Both protocol eras: the single-request protocol the SDK's client prefers
(``auto``) and the initialize handshake of today's desktop clients (``legacy``)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import httpx2
import jsonschema
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult

from agents.fake_llm import FakeStreamingChatModel
from memory import MemoryFilter
from personas import Actor
from personas.card_store import CardStore
from personas.cards import parse_card
from tests.personas.factory import definition
from tests.personas.test_cards import v2
from tests.runtime.mcp_fake import TOOLS
from tests.socket_server.conftest import Server

ADMIN = Actor("admin", is_admin=True)
REPLY = "Light is a wave and a particle, my friend."


@asynccontextmanager
async def mcp(server: Server, token: str | None, mode: str = "auto") -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=60)) as http,
        Client(streamable_http_client(server.url + "/mcp", http_client=http), mode=mode) as client,
    ):
        yield client


def ok(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    data = result.structured_content
    assert isinstance(data, dict)
    assert json.loads(result.content[0].text) == data  # type: ignore[union-attr]
    return data


def the_error(exc: BaseException) -> MCPError:
    """The protocol error the client raised, out of the task groups it went through."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    assert isinstance(exc, MCPError), repr(exc)
    return exc


def failure(result: CallToolResult) -> str:
    assert result.is_error, result.structured_content
    text = result.content[0].text  # type: ignore[union-attr]
    assert "\n" not in text and "Traceback" not in text, text
    return str(text)


@pytest.fixture
async def mserver(start_server: Callable[..., Awaitable[Server]]) -> Server:
    server = await start_server(model=FakeStreamingChatModel(reply=REPLY))
    await server.services.personas.create(definition("tutor"), ADMIN)
    await server.services.personas.create(definition("retired", active=False), ADMIN)
    return server


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_every_tool_answers_through_the_use_cases(
    mserver: Server, connect: Any, mode: str
) -> None:
    async with mcp(mserver, mserver.token("alice"), mode) as client:
        listed = (await client.list_tools()).tools
        assert [t.name for t in listed] == TOOLS
        schemas = {t.name: t.output_schema for t in listed}

        async def call(name: str, args: dict[str, Any], **kw: Any) -> dict[str, Any]:
            data = ok(await client.call_tool(name, args, **kw))
            jsonschema.validate(data, schemas[name])  # answers are what tools/list says
            return data

        personas = await call("list_personas", {})
        assert [p["slug"] for p in personas["personas"]] == ["tutor"]  # active ones only
        assert personas["total"] == 1 and "system_prompt" not in personas["personas"][0]
        found = await call("search_personas", {"query": "photosynthesis tutor"})
        assert [p["slug"] for p in found["personas"]] == ["tutor"]

        # a statement remembered twice (case and spacing aside) is one memory
        first = await call("remember", {"persona": "tutor", "statement": "My cat is called Miso."})
        again = await call(
            "remember", {"persona": "tutor", "statement": " my cat  is called miso. "}
        )
        memory_id = first["memory"]["id"]
        assert again["memory"]["id"] == memory_id
        assert first["user"] == "alice" and first["memory"]["speaker"] == "alice"
        tutor = await mserver.services.personas.get("tutor")
        stored = await mserver.services.memory.list(
            MemoryFilter(persona_id=str(tutor.id), user_id="alice")
        )
        assert [r.id for r in stored.records] == [uuid.UUID(memory_id)]
        listed_memories = await call("list_memories", {"persona": "tutor"})
        assert [m["id"] for m in listed_memories["memories"]] == [memory_id]
        recalled = await call("search_memories", {"persona": "tutor", "query": "my cat", "k": 3})
        assert recalled["memories"][0]["text"] == "my cat  is called miso."

        # a conversation: the reply streams in progress notifications, an open page of
        # the session sees it too, and the remembered statement reached the prompt
        opened = await call("start_session", {"persona": "tutor", "title": "light"})
        assert opened["persona"]["slug"] == "tutor" and opened["greeting"] is None
        session_id = opened["session_id"]
        page = await connect(mserver, user="alice")
        assert (await page.call("session.start", {"session_id": session_id}))["ok"]
        progress: list[tuple[float, str | None]] = []

        async def heard(value: float, total: float | None, message: str | None) -> None:
            progress.append((value, message))

        answer = await call(
            "chat",
            {"session_id": session_id, "message": "What is my cat called?"},
            progress_callback=heard,
        )
        [reply] = answer["replies"]
        assert reply["text"] == REPLY and reply["persona"] == "tutor"
        assert reply["status"] == "complete" and answer["errors"] == []
        assert progress, "no progress notification while the reply was written"
        assert all(m is not None and REPLY.startswith(m) for _, m in progress), progress
        assert [v for v, _ in progress] == sorted({v for v, _ in progress})
        assert progress[-1][1] == REPLY
        done = await page.wait_for("message.done", lambda d: d["message"]["role"] == "persona")
        assert done["message"]["text"] == REPLY
        prompt = "\n".join(str(m.content) for m in mserver.model.last_messages or [])
        assert "alice) my cat  is called miso." in prompt  # recalled, with who said it
        history = await mserver.services.memory.transcripts.history(uuid.UUID(session_id))
        assert [m.text for m in history.items] == ["What is my cat called?", REPLY]
        # the exchange is remembered by the time the call returns
        said = await call(
            "search_memories", {"persona": "tutor", "query": "What is my cat called?"}
        )
        found = [m["text"] for m in said["memories"]]
        # a question is kept but is no evidence about the user: searches leave it out
        assert REPLY in found and "What is my cat called?" not in found
        in_session = await call("list_memories", {"persona": "tutor", "session_id": session_id})
        assert {m["text"] for m in in_session["memories"]} == {"What is my cat called?", REPLY}

        # forgetting removes what the inspector's delete removes
        gone = await call("forget", {"persona": "tutor", "memory_id": memory_id})
        assert gone == {"persona": "tutor", "user": "alice", "memory_id": memory_id}
        stored = await mserver.services.memory.list(
            MemoryFilter(persona_id=str(tutor.id), user_id="alice", session_id=None)
        )
        assert uuid.UUID(memory_id) not in [r.id for r in stored.records]
        recalled = await call("search_memories", {"persona": "tutor", "query": "my cat"})
        assert memory_id not in [m["id"] for m in recalled["memories"]]
        again_gone = await client.call_tool("forget", {"persona": "tutor", "memory_id": memory_id})
        assert failure(again_gone) == f"memory '{memory_id}' not found"


async def test_a_persona_card_is_a_resource(mserver: Server) -> None:
    card_def, card = parse_card(json.dumps(v2()), source="mira.json")
    mira = await mserver.services.personas.create(card_def, ADMIN)
    await CardStore(mserver.services.pool).save(mira.id, card)
    uri = "personae://personas/captain-mira-vell/card"
    async with mcp(mserver, mserver.token("alice")) as client:
        listed = await client.list_resources()
        assert {r.uri for r in listed.resources} == {uri, "personae://personas/tutor/card"}
        [template] = (await client.list_resource_templates()).resource_templates
        assert template.uri_template == "personae://personas/{persona}/card"
        [content] = (await client.read_resource(uri)).contents
        assert content.mime_type == "application/json"
        doc = json.loads(content.text)  # type: ignore[union-attr]
        assert doc["spec"] == "chara_card_v2" and doc["data"]["name"] == "Captain Mira Vell"
        assert doc["data"]["first_mes"] == "Welcome aboard, {{user}}. Mind the rigging."
        assert doc["data"]["scenario"].startswith("{{user}} has just signed on")
        # a user is not shown what only instructs the model, as persona views never do
        assert doc["data"]["system_prompt"] == ""
        assert doc["data"]["post_history_instructions"] == ""
        assert "personae" not in doc["data"]["extensions"] and doc["data"]["extensions"]["fav"]
        by_id = await client.read_resource(f"personae://personas/{mira.id}/card")
        assert json.loads(by_id.contents[0].text)["data"]["name"] == "Captain Mira Vell"  # type: ignore[union-attr]
        opened = ok(await client.call_tool("start_session", {"persona": "captain-mira-vell"}))
        assert opened["greeting"] in {
            "Welcome aboard, alice. Mind the rigging.",
            "You're late, navigator.",
        }
        for bad, said in (
            ("personae://personas/nobody/card", "persona 'nobody' not found"),
            ("personae://personas/tutor", "no such resource"),
            ("file:///etc/passwd", "no such resource"),
        ):
            with pytest.raises(MCPError) as refused:
                await client.read_resource(bad)
            assert said in refused.value.message
    async with mcp(mserver, mserver.token("ed", "editor"), "legacy") as client:
        doc = json.loads((await client.read_resource(uri)).contents[0].text)  # type: ignore[union-attr]
        assert doc["data"]["system_prompt"].endswith("Stay in the age of sail and steam.")
        assert doc["data"]["extensions"]["personae"]["slug"] == "captain-mira-vell"


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_missing_or_bad_token_is_refused(mserver: Server, mode: str) -> None:
    for token in (None, "not-a-token", mserver.token("alice") + "x"):
        with pytest.raises((MCPError, ExceptionGroup)) as refused:
            async with mcp(mserver, token, mode) as client:
                await client.list_tools()
        assert the_error(refused.value).message in {
            "authentication required: pass a bearer token",
            "invalid token",
        }
    async with aiohttp.ClientSession() as http:
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
        async with http.post(mserver.url + "/mcp", json=body) as response:
            assert response.status == 401
            assert response.headers["WWW-Authenticate"] == 'Bearer realm="personae"'
            error = (await response.json())["error"]
            assert error["message"] == "authentication required: pass a bearer token"


async def test_a_user_sees_only_their_own_memories(mserver: Server) -> None:
    async with mcp(mserver, mserver.token("bob")) as bob:
        ok(await bob.call_tool("remember", {"persona": "tutor", "statement": "I live in Oslo."}))
        bobs = ok(await bob.call_tool("start_session", {"persona": "tutor"}))["session_id"]
    async with mcp(mserver, mserver.token("alice"), "legacy") as alice:
        mine = ok(await alice.call_tool("search_memories", {"persona": "tutor", "query": "Oslo"}))
        assert mine["user"] == "alice" and mine["memories"] == []
        for tool, args in (
            ("search_memories", {"persona": "tutor", "query": "Oslo", "user": "bob"}),
            ("list_memories", {"persona": "tutor", "user": "bob"}),
            ("remember", {"persona": "tutor", "statement": "I am Bob.", "user": "bob"}),
        ):
            refused = failure(await alice.call_tool(tool, args))
            assert refused == "forbidden: only an admin may inspect another user's memories"
        taken = failure(await alice.call_tool("chat", {"session_id": bobs, "message": "hi"}))
        assert taken == f"forbidden: session '{bobs}' is not yours"
    async with mcp(mserver, mserver.token("root", "admin")) as admin:
        theirs = ok(await admin.call_tool("list_memories", {"persona": "tutor", "user": "bob"}))
        assert [m["text"] for m in theirs["memories"]] == ["I live in Oslo."]


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_facts_are_listed_corrected_and_deleted_through_the_use_case(
    mserver: Server, mode: str
) -> None:
    tutor = await mserver.services.personas.get("tutor")
    facts = mserver.services.facts

    async def record(user: str, subject: str, text: str, year: int) -> str:
        done = await facts.record(
            persona_id=tutor.id,
            user_id=user,
            subject=subject,
            text=text,
            valid_from=dt.datetime(year, 3, 1, tzinfo=dt.UTC),
        )
        assert done.fact is not None
        return str(done.fact.id)

    lyon = await record("alice", "home", "Alice lives in Lyon.", 2024)
    berlin = await record("alice", "home", "Alice lives in Berlin.", 2026)
    rex = await record("bob", "dog", "Bob's dog is called Rex.", 2025)
    async with mcp(mserver, mserver.token("alice"), mode) as client:
        schemas = {t.name: t.output_schema for t in (await client.list_tools()).tools}

        async def call(name: str, args: dict[str, Any]) -> dict[str, Any]:
            data = ok(await client.call_tool(name, args))
            jsonschema.validate(data, schemas[name])
            return data

        def when(text: str | None) -> dt.datetime | None:
            return dt.datetime.fromisoformat(text) if text is not None else None

        now = await call("list_facts", {"persona": "tutor"})
        assert now["persona"] == "tutor" and now["user"] == "alice"
        (current,) = now["facts"]
        assert when(current.pop("valid_from")) == dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
        assert current == {
            "id": berlin,
            "subject": "home",
            "text": "Alice lives in Berlin.",
            "current": True,
            "valid_until": None,
            "superseded_by": None,
            "source_ids": [],
            "origin": "said",
        }
        history = (await call("list_facts", {"persona": "tutor", "history": True}))["facts"]
        assert [f["id"] for f in history] == [berlin, lyon]
        assert history[1]["superseded_by"] == berlin and not history[1]["current"]
        assert when(history[1]["valid_until"]) == dt.datetime(2026, 3, 1, tzinfo=dt.UTC)

        # a correction is the current fact now; the one corrected is history
        fixed = await call(
            "correct_fact",
            {"persona": "tutor", "fact_id": berlin, "text": " Alice lives in  Munich. "},
        )
        munich = fixed["fact"]
        assert fixed["persona"] == "tutor" and fixed["user"] == "alice"
        assert munich["text"] == "Alice lives in Munich." and munich["origin"] == "corrected"
        assert munich["current"] and munich["subject"] == "home"
        history = (await call("list_facts", {"persona": "tutor", "history": True}))["facts"]
        assert [(f["id"], f["current"]) for f in history] == [
            (munich["id"], True),
            (berlin, False),
            (lyon, False),
        ]
        assert history[1]["superseded_by"] == munich["id"]
        found = await call(
            "search_memories", {"persona": "tutor", "query": "where does Alice live", "k": 5}
        )
        assert "Alice lives in Munich." in [m["text"] for m in found["memories"]]
        again = failure(
            await client.call_tool(
                "correct_fact",
                {"persona": "tutor", "fact_id": berlin, "text": "Alice lives in Rome."},
            )
        )
        assert again == "fact_superseded: only a current fact can be corrected"

        # deleted: gone with its history entry, and what it superseded stays history
        gone = await call("delete_fact", {"persona": "tutor", "fact_id": munich["id"]})
        assert gone == {"persona": "tutor", "user": "alice", "fact_id": munich["id"]}
        assert (await call("list_facts", {"persona": "tutor"}))["facts"] == []
        history = (await call("list_facts", {"persona": "tutor", "history": True}))["facts"]
        assert [(f["id"], f["current"]) for f in history] == [(berlin, False), (lyon, False)]
        found = await call(
            "search_memories", {"persona": "tutor", "query": "where does Alice live", "k": 5}
        )
        assert "Alice lives in Munich." not in [m["text"] for m in found["memories"]]

        # another user's facts: refused, or not found by id
        for tool, args in (
            ("list_facts", {"persona": "tutor", "user": "bob"}),
            ("delete_fact", {"persona": "tutor", "fact_id": rex, "user": "bob"}),
            ("correct_fact", {"persona": "tutor", "fact_id": rex, "text": "x", "user": "bob"}),
        ):
            refused = failure(await client.call_tool(tool, args))
            assert refused == "forbidden: only an admin may see another user's facts"
        for tool, args in (
            ("delete_fact", {"persona": "tutor", "fact_id": rex}),
            ("correct_fact", {"persona": "tutor", "fact_id": rex, "text": "Alice has a dog."}),
        ):
            missing = failure(await client.call_tool(tool, args))
            assert missing == f"fact_not_found: no fact {rex} of this user and persona"
    async with mcp(mserver, mserver.token("root", "admin"), mode) as admin:
        theirs = ok(await admin.call_tool("list_facts", {"persona": "tutor", "user": "bob"}))
        assert theirs["user"] == "bob"
        assert [f["text"] for f in theirs["facts"]] == ["Bob's dog is called Rex."]


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_bad_arguments_are_tool_errors_that_name_them(mserver: Server, mode: str) -> None:
    nobody = str(uuid.uuid4())
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("search_memories", {"persona": "tutor"}, "invalid arguments: query: Field required"),
        (
            "search_memories",
            {"persona": "tutor", "query": "x", "k": "many"},
            "invalid arguments: k: Input should be a valid integer",
        ),
        (
            "search_memories",
            {"persona": "tutor", "query": "x", "k": 500},
            "invalid arguments: k: Input should be less than or equal to 50",
        ),
        (
            "remember",
            {"persona": "tutor", "statement": "hi", "colour": "red"},
            "invalid arguments: colour: Extra inputs are not permitted",
        ),
        (
            "remember",
            {"persona": "tutor", "statement": "a\x00b"},
            "invalid arguments: statement: Value error, must not contain NUL characters",
        ),
        (
            "remember",
            {"persona": "tutor", "statement": "   "},
            "invalid_payload: statement: must not be blank",
        ),
        ("remember", {"persona": "nobody", "statement": "hi"}, "persona 'nobody' not found"),
        (
            "start_session",
            {"persona": "retired"},
            "persona_not_found: persona 'retired' is not active",
        ),
        (
            "chat",
            {"session_id": "tomorrow", "message": "hi"},
            "invalid arguments: session_id: Input should be a valid UUID, invalid character",
        ),
        ("chat", {"session_id": nobody, "message": "hi"}, f"session '{nobody}' not found"),
        ("forget", {"persona": "tutor", "memory_id": nobody}, f"memory '{nobody}' not found"),
        ("list_facts", {"persona": "nobody"}, "persona 'nobody' not found"),
        (
            "list_facts",
            {"persona": "tutor", "history": "sometimes"},
            "invalid arguments: history: Input should be a valid boolean",
        ),
        (
            "correct_fact",
            {"persona": "tutor", "fact_id": "home", "text": "x"},
            "invalid arguments: fact_id: Input should be a valid UUID",
        ),
        (
            "correct_fact",
            {"persona": "tutor", "fact_id": nobody},
            "invalid arguments: text: Field required",
        ),
        (
            "correct_fact",
            {"persona": "tutor", "fact_id": nobody, "text": "x" * 501},
            "invalid arguments: text: String should have at most 500 characters",
        ),
        (
            "correct_fact",
            {"persona": "tutor", "fact_id": nobody, "text": "   "},
            "invalid_payload: text: must not be blank",
        ),
        (
            "delete_fact",
            {"persona": "tutor", "fact_id": nobody},
            f"fact_not_found: no fact {nobody} of this user and persona",
        ),
    ]
    async with mcp(mserver, mserver.token("alice"), mode) as client:
        for tool, args, said in cases:
            assert failure(await client.call_tool(tool, args)).startswith(said), (tool, args)
        with pytest.raises(MCPError) as unknown:
            await client.call_tool("teleport", {})
        assert unknown.value.message == "unknown tool 'teleport'; see tools/list"
        # the server is still fine
        ok(await client.call_tool("list_personas", {"limit": 1}))


async def test_a_failed_reply_is_a_tool_error(
    start_server: Callable[..., Awaitable[Server]],
) -> None:
    server = await start_server(model=FakeStreamingChatModel(fail_before_first_token=True))
    await server.services.personas.create(definition("tutor"), ADMIN)
    async with mcp(server, server.token("alice")) as client:
        session_id = ok(await client.call_tool("start_session", {"persona": "tutor"}))["session_id"]
        said = failure(await client.call_tool("chat", {"session_id": session_id, "message": "hi"}))
    assert said.startswith("llm_unavailable: ")
    history = await server.services.memory.transcripts.history(uuid.UUID(session_id))
    assert [m.text for m in history.items] == ["hi"]  # the message is kept


async def test_without_a_secret_every_local_client_is_the_admin(
    start_server: Callable[..., Awaitable[Server]],
) -> None:
    server = await start_server(auth_secret=None, model=FakeStreamingChatModel(reply=REPLY))
    await server.services.personas.create(definition("tutor"), ADMIN)
    async with mcp(server, None) as client:
        kept = ok(
            await client.call_tool("remember", {"persona": "tutor", "statement": "I like tea."})
        )
        assert kept["user"] == "local" and kept["memory"]["speaker"] == "You"
        theirs = ok(
            await client.call_tool("list_memories", {"persona": "tutor", "user": "someone"})
        )
        assert theirs["user"] == "someone" and theirs["memories"] == []
    # but a web page cannot drive it for the browser's user: a foreign Origin is refused
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    async with (
        aiohttp.ClientSession() as http,
        http.post(server.url + "/mcp", json=body, headers={"Origin": "http://evil.example"}) as r,
    ):
        assert r.status == 403
    async with aiohttp.ClientSession() as http:
        for method in ("GET", "DELETE", "PUT"):  # stateless: no stream to get, no session
            async with http.request(method, server.url + "/mcp") as r:
                assert r.status == 405 and r.headers["Allow"] == "POST"


async def test_the_documented_client_example_works(mserver: Server) -> None:
    """docs/ecosystem.md's Python example, run as written against a real server."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "ecosystem.md").read_text()
    [example] = [b for b in doc.split("```python\n")[1:] if "async def ask_einstein" in b]
    namespace: dict[str, Any] = {}
    exec(compile(example.split("```")[0], "docs/ecosystem.md", "exec"), namespace)  # noqa: S102
    await mserver.services.personas.create(definition("albert-einstein"), ADMIN)
    assert await namespace["ask_einstein"](mserver.token("uma"), mserver.url + "/mcp") == REPLY


async def test_a_statement_counts_against_the_message_rate(
    start_server: Callable[..., Awaitable[Server]],
) -> None:
    server = await start_server(rate_limit_per_minute=2)
    await server.services.personas.create(definition("tutor"), ADMIN)
    async with mcp(server, server.token("alice")) as client:
        for n in range(2):
            ok(await client.call_tool("remember", {"persona": "tutor", "statement": f"Fact {n}."}))
        refused = failure(
            await client.call_tool("remember", {"persona": "tutor", "statement": "One more."})
        )
        assert refused.startswith("rate limited: more than 2 messages a minute; retry after")
        session_id = ok(await client.call_tool("start_session", {"persona": "tutor"}))["session_id"]
        said = failure(await client.call_tool("chat", {"session_id": session_id, "message": "hi"}))
        assert said.startswith("rate limited: more than 2 messages a minute")
