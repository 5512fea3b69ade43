"""``personae mcp``: the MCP server over stdio, started as a subprocess by the official
SDK's own client (as Claude Desktop or Cursor start it), on the test databases."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult
from psycopg_pool import AsyncConnectionPool

from memory.record.facts import FactStore
from memory.record.transcripts import Transcripts
from personas import Actor, PersonaStore
from tests.personas.factory import definition
from tests.runtime.mcp_fake import REPLY, TOOLS

ROOT = Path(__file__).resolve().parents[2]
ADMIN = Actor("admin", is_admin=True)


@asynccontextmanager
async def stdio(env: dict[str, str], *command: str) -> AsyncIterator[Client]:
    server = StdioServerParameters(command=sys.executable, args=list(command), env=env, cwd=ROOT)
    async with Client(server, mode="legacy", read_timeout_seconds=120) as client:
        yield client


def ok(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert isinstance(result.structured_content, dict)
    return result.structured_content


def failure(result: CallToolResult) -> str:
    assert result.is_error, result.structured_content
    return str(result.content[0].text)  # type: ignore[union-attr]


async def test_the_stdio_server_answers_the_sdk_client(
    cli_env: dict[str, str], store: PersonaStore, db: AsyncConnectionPool[Any]
) -> None:
    await store.create(definition("tutor"), ADMIN)
    async with stdio(cli_env, "-m", "tests.runtime.mcp_fake", "uma") as client:
        assert client.server_info is not None and client.server_info.name == "personae"
        assert [t.name for t in (await client.list_tools()).tools] == TOOLS
        listed = ok(await client.call_tool("list_personas", {}))
        assert [p["slug"] for p in listed["personas"]] == ["tutor"]
        found = ok(await client.call_tool("search_personas", {"query": "photosynthesis"}))
        assert found["personas"][0]["slug"] == "tutor"

        kept = ok(
            await client.call_tool("remember", {"persona": "tutor", "statement": "My cat is Miso."})
        )
        assert kept["user"] == "uma" and kept["memory"]["speaker"] == "uma"
        recalled = ok(
            await client.call_tool("search_memories", {"persona": "tutor", "query": "cat"})
        )
        assert [m["text"] for m in recalled["memories"]] == ["My cat is Miso."]

        session_id = ok(await client.call_tool("start_session", {"persona": "tutor"}))["session_id"]
        heard: list[str | None] = []

        async def progress(value: float, total: float | None, message: str | None) -> None:
            heard.append(message)

        answer = ok(
            await client.call_tool(
                "chat",
                {"session_id": session_id, "message": "What is my cat called?"},
                progress_callback=progress,
            )
        )
        assert [r["text"] for r in answer["replies"]] == [REPLY]
        assert heard and heard[-1] == REPLY and all(REPLY.startswith(m or "-") for m in heard)
        in_session = ok(
            await client.call_tool("list_memories", {"persona": "tutor", "session_id": session_id})
        )
        assert {m["text"] for m in in_session["memories"]} == {"What is my cat called?", REPLY}

        gone = ok(
            await client.call_tool(
                "forget", {"persona": "tutor", "memory_id": kept["memory"]["id"]}
            )
        )
        assert gone["memory_id"] == kept["memory"]["id"]
        after = ok(await client.call_tool("list_memories", {"persona": "tutor"}))
        assert "My cat is Miso." not in [m["text"] for m in after["memories"]]

        # the process owns its data: its user is an admin, who may name another user
        theirs = ok(await client.call_tool("list_memories", {"persona": "tutor", "user": "bo"}))
        assert theirs["user"] == "bo" and theirs["memories"] == []
        [content] = (await client.read_resource("personae://personas/tutor/card")).contents
        card = json.loads(content.text)  # type: ignore[union-attr]
        assert card["data"]["system_prompt"] == "You are a patient tutor."

        assert failure(
            await client.call_tool("search_memories", {"persona": "tutor", "query": ""})
        ) == ("invalid arguments: query: String should have at least 1 character")
        assert failure(await client.call_tool("chat", {"message": "hi"})) == (
            "invalid arguments: session_id: Field required"
        )
        with pytest.raises(MCPError) as unknown:
            await client.call_tool("teleport", {})
        assert unknown.value.message == "unknown tool 'teleport'; see tools/list"
    sessions = await Transcripts(db).list_sessions("uma")
    assert [str(s.id) for s in sessions] == [session_id]


async def test_the_stdio_server_lists_corrects_and_deletes_facts(
    cli_env: dict[str, str], store: PersonaStore, db: AsyncConnectionPool[Any]
) -> None:
    tutor = await store.create(definition("tutor"), ADMIN)
    facts = FactStore(db)
    for user, text, year in (
        ("uma", "Uma lives in Lyon.", 2024),
        ("bo", "Bo lives in Oslo.", 2025),
    ):
        await facts.record(
            persona_id=tutor.id,
            user_id=user,
            subject="home",
            text=text,
            valid_from=dt.datetime(year, 1, 1, tzinfo=dt.UTC),
        )
    async with stdio(cli_env, "-m", "tests.runtime.mcp_fake", "uma") as client:
        (lyon,) = ok(await client.call_tool("list_facts", {"persona": "tutor"}))["facts"]
        assert lyon["text"] == "Uma lives in Lyon." and lyon["current"]
        fixed = ok(
            await client.call_tool(
                "correct_fact",
                {"persona": "tutor", "fact_id": lyon["id"], "text": "Uma lives in Porto."},
            )
        )["fact"]
        assert fixed["origin"] == "corrected" and fixed["current"]
        listed = ok(await client.call_tool("list_facts", {"persona": "tutor", "history": True}))
        assert [(f["text"], f["current"]) for f in listed["facts"]] == [
            ("Uma lives in Porto.", True),
            ("Uma lives in Lyon.", False),
        ]
        assert listed["facts"][1]["superseded_by"] == fixed["id"]
        found = ok(
            await client.call_tool("search_memories", {"persona": "tutor", "query": "Porto"})
        )
        assert [m["text"] for m in found["memories"]] == ["Uma lives in Porto."]
        ok(await client.call_tool("delete_fact", {"persona": "tutor", "fact_id": fixed["id"]}))
        assert ok(await client.call_tool("list_facts", {"persona": "tutor"}))["facts"] == []
        # the process's user is an admin: another user's facts are theirs to see
        theirs = ok(await client.call_tool("list_facts", {"persona": "tutor", "user": "bo"}))
        assert [f["text"] for f in theirs["facts"]] == ["Bo lives in Oslo."]
        assert (
            failure(
                await client.call_tool("delete_fact", {"persona": "tutor", "fact_id": fixed["id"]})
            )
            == f"fact_not_found: no fact {fixed['id']} of this user and persona"
        )


@pytest.mark.slow  # the real embedder, in the real command
async def test_personae_mcp_serves_on_stdio(cli_env: dict[str, str], store: PersonaStore) -> None:
    await store.create(definition("tutor"), ADMIN)
    async with stdio(cli_env, "-m", "runtime.cli", "mcp", "--user", "uma") as client:
        assert [t.name for t in (await client.list_tools()).tools] == TOOLS
        for statement in ("My sister lives in Lisbon.", "I play the cello on Sundays."):
            ok(await client.call_tool("remember", {"persona": "tutor", "statement": statement}))
        found = ok(
            await client.call_tool(
                "search_memories",
                {"persona": "tutor", "query": "what instrument do I play?", "k": 1},
            )
        )
        assert [m["text"] for m in found["memories"]] == ["I play the cello on Sundays."]
        assert found["user"] == "uma"


def test_a_bad_user_name_is_refused_before_anything_runs(cli_env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "runtime.cli", "mcp", "--user", "bad user!"],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        (
            "personae mcp: argument --user: 'bad user!': 1 to 64 letters, digits and _ . @ -, "
            "starting with a letter or digit (see --help)"
        )
    ]
