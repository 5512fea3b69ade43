"""Faults that can be made deterministic: Redis stopping and coming back, PostgreSQL
restarting, the model failing in each way, SIGTERM with a turn in flight, a client
leaving mid-stream. Redis and PostgreSQL here are servers of the test's own, so
stopping them touches nothing else."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
import socketio

from agents.fake_llm import FakeStreamingChatModel
from personas import Actor
from runtime.infra.embedded import EmbeddedPostgres, EmbeddedRedis
from runtime.infra.migrate import migrate_url
from tests.personas.factory import definition
from tests.socket_server.conftest import Server

ADMIN = Actor("admin", is_admin=True)


async def _chat(client: Any, sid: str, text: str, cid: str) -> tuple[Any, Any]:
    ack = await client.call("message.send", {"session_id": sid, "text": text, "client_msg_id": cid})
    assert ack["ok"], ack
    done = await client.wait_for(
        "message.done", lambda d: d["message"]["reply_to"] == ack["message"]["id"], timeout=30
    )
    return ack, done


@pytest.fixture
def own_folder() -> Any:
    path = Path(tempfile.mkdtemp(prefix="personae-fault-"))
    yield path
    subprocess.run(["rm", "-rf", str(path)], check=False)


async def test_redis_stops_and_returns(start_server: Any, connect: Any, own_folder: Path) -> None:
    redis = EmbeddedRedis(own_folder / "redis")
    await redis.__aenter__()
    try:
        server: Server = await start_server(redis_url=redis.url, persona_l1_ttl_s=0)
        await server.services.personas.create(definition("tutor"), ADMIN)
        client = await connect(server)
        sid = (await client.call("session.start", {"personas": ["tutor"]}))["session"]["id"]
        await _chat(client, sid, "before", "c1")

        await redis.stop()
        # chats keep working: persona reads fall back to PostgreSQL, limits fail open,
        # this node's clients still get every event
        _, done = await _chat(client, sid, "while redis is down", "c2")
        assert done["message"]["status"] == "complete"

        await redis.__aenter__()  # same folder, same socket: Redis is back
        _, done = await _chat(client, sid, "after", "c3")
        history = await client.call("session.history", {"session_id": sid})
        assert [m["text"] for m in history["messages"] if m["role"] == "user"] == [
            "before",
            "while redis is down",
            "after",
        ]
        assert len(history["messages"]) == 6
    finally:
        await redis.stop()


async def test_redis_down_with_fail_closed_refuses_and_keeps_nothing_half_done(
    start_server: Any, connect: Any, own_folder: Path
) -> None:
    redis = EmbeddedRedis(own_folder / "redis")
    await redis.__aenter__()
    try:
        server: Server = await start_server(redis_url=redis.url, rate_limit_fail_open=False)
        await server.services.personas.create(definition("tutor"), ADMIN)
        client = await connect(server)
        sid = (await client.call("session.start", {"personas": ["tutor"]}))["session"]["id"]
        await redis.stop()
        ack = await client.call(
            "message.send", {"session_id": sid, "text": "x", "client_msg_id": "c1"}
        )
        assert ack["error"]["code"] == "rate_limited"
        history = await client.call("session.history", {"session_id": sid})
        assert history["messages"] == [], "a refused message is not stored"
    finally:
        await redis.stop()


async def test_postgres_restart_mid_run(start_server: Any, connect: Any, own_folder: Path) -> None:
    pg = EmbeddedPostgres(own_folder / "pg")
    await pg.__aenter__()
    try:
        await migrate_url(pg.url)
        server: Server = await start_server(database_url=pg.url)
        await server.services.personas.create(definition("tutor"), ADMIN)
        client = await connect(server)
        sid = (await client.call("session.start", {"personas": ["tutor"]}))["session"]["id"]
        await _chat(client, sid, "first", "c1")

        await pg.stop()
        down = await client.call(
            "message.send", {"session_id": sid, "text": "lost?", "client_msg_id": "c2"}
        )
        assert down == {"ok": False, "error": down["error"]}
        assert down["error"]["code"] == "service_unavailable"
        assert "Traceback" not in down["error"]["message"]

        await pg.__aenter__()
        # the client retries the refused message with the same id: stored once, answered
        _, done = await _chat(client, sid, "lost?", "c2")
        assert done["message"]["text"]
        async with await psycopg.AsyncConnection.connect(pg.url) as conn:
            cur = await conn.execute(
                "SELECT role, text FROM messages WHERE session_id = %s ORDER BY seq", (sid,)
            )
            rows = await cur.fetchall()
        assert [r[0] for r in rows] == ["user", "persona", "user", "persona"]
        assert [r[1] for r in rows if r[0] == "user"] == ["first", "lost?"]
    finally:
        await pg.stop()


@pytest.mark.parametrize(
    ("model", "code", "stored"),
    [
        (
            FakeStreamingChatModel(reply="never", fail_before_first_token=True),
            "llm_unavailable",
            None,
        ),
        (
            FakeStreamingChatModel(reply="one two three four five", break_after_tokens=2),
            "llm_stream_broken",
            "incomplete",
        ),
        (FakeStreamingChatModel(reply="too slow", first_token_delay_s=5), "llm_unavailable", None),
    ],
    ids=["unavailable", "broken-stream", "timeout"],
)
async def test_llm_failures_reach_the_client_and_keep_the_user_message(
    start_server: Any, connect: Any, model: Any, code: str, stored: str | None
) -> None:
    server: Server = await start_server(model=model, llm_timeout_s=0.5)
    await server.services.personas.create(definition("tutor"), ADMIN)
    client = await connect(server)
    sid = (await client.call("session.start", {"personas": ["tutor"]}))["session"]["id"]
    ack = await client.call(
        "message.send", {"session_id": sid, "text": "hello", "client_msg_id": "c1"}
    )
    assert ack["ok"]
    error = await client.wait_for("message.error")
    assert error["code"] == code and error["session_id"] == sid
    history = (await client.call("session.history", {"session_id": sid}))["messages"]
    assert history[0]["text"] == "hello"
    if stored is None:
        assert len(history) == 1
    else:
        done = await client.wait_for("message.done")
        assert history[1]["status"] == stored == done["message"]["status"]
        assert history[1]["text"] == "one two"


async def test_client_leaving_mid_stream_still_gets_the_reply_on_return(
    start_server: Any, connect: Any
) -> None:
    slow = FakeStreamingChatModel(reply="a b c d e f g h i j", token_delay_s=0.1)
    server: Server = await start_server(model=slow)
    await server.services.personas.create(definition("tutor"), ADMIN)
    client = await connect(server)
    sid = (await client.call("session.start", {"personas": ["tutor"]}))["session"]["id"]
    await client.call("message.send", {"session_id": sid, "text": "hi", "client_msg_id": "c1"})
    await client.wait_for("message.token")
    await client.sio.disconnect()

    async def stored() -> list[Any]:
        transcripts = server.services.memory.transcripts
        return list((await transcripts.history(uuid.UUID(sid))).items)

    async with asyncio.timeout(20):
        while len(await stored()) < 2:
            await asyncio.sleep(0.05)
    back = await connect(server)
    joined = await back.call("session.start", {"session_id": sid})
    assert [m["role"] for m in joined["history"]] == ["user", "persona"]
    assert joined["history"][1]["text"] == "a b c d e f g h i j"


async def test_sigterm_finishes_the_turn_in_flight_and_refuses_new_ones(
    spawn: Any, server: Server
) -> None:
    await server.services.personas.create(definition("tutor"), ADMIN)
    proc, url = await spawn(
        "node", FAKE_TOKENS="30", FAKE_TOKEN_DELAY_S="0.05", PERSONAE_SHUTDOWN_GRACE_S="20"
    )
    client = socketio.AsyncClient(reconnection=False)
    events: list[tuple[str, Any]] = []
    first_token, done = asyncio.Event(), asyncio.Event()

    async def record(event: str, data: Any) -> None:
        events.append((event, data))
        if event == "message.token":
            first_token.set()
        if event == "message.done":
            done.set()

    client.on("*", record, namespace="/chat")
    await client.connect(
        url,
        namespaces=["/chat"],
        auth={"token": server.token("alice")},
        transports=["websocket"],
        wait_timeout=10,
    )
    sid = (await client.call("session.start", {"personas": ["tutor"]}, namespace="/chat"))[
        "session"
    ]["id"]
    await client.call(
        "message.send", {"session_id": sid, "text": "hi", "client_msg_id": "c1"}, namespace="/chat"
    )
    await asyncio.wait_for(first_token.wait(), 20)
    proc.send_signal(signal.SIGTERM)
    refused = await client.call(
        "message.send",
        {"session_id": sid, "text": "late", "client_msg_id": "c2"},
        namespace="/chat",
    )
    assert refused["error"]["code"] == "shutting_down"
    await asyncio.wait_for(done.wait(), 30)
    assert await asyncio.to_thread(proc.wait, 60) == 0
    await client.disconnect()
    transcripts = server.services.memory.transcripts
    history = (await transcripts.history(uuid.UUID(sid))).items
    assert [(m.role, m.status) for m in history] == [("user", "complete"), ("persona", "complete")]
    assert len(history[1].text.split()) == 30, "the reply was finished, not cut"
