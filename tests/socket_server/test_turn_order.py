"""One session's turns run one at a time across server processes: two tabs of one
session on two processes sending at the same moment get one ordered conversation."""

from __future__ import annotations

import asyncio
import contextvars
import uuid
from typing import Any

import socketio

from memory.record.turn_transaction import read_connection
from personas import Actor
from runtime.infra.turn_order import SessionOrder, lock_key
from tests.personas.factory import definition
from tests.socket_server.conftest import Server

ADMIN = Actor("admin", is_admin=True)
SLOW = {"FAKE_TOKENS": "8", "FAKE_TOKEN_DELAY_S": "0.02"}


async def test_two_tabs_on_two_processes_sending_at_once_get_one_ordered_conversation(
    spawn: Any, server: Server
) -> None:
    await server.services.personas.create(definition("tutor"), ADMIN)
    (_, url1), (_, url2) = await spawn("node1", **SLOW), await spawn("node2", **SLOW)
    token = server.token("alice")
    seen: list[tuple[str, Any]] = []
    both_done = asyncio.Event()
    a, b = socketio.AsyncClient(reconnection=False), socketio.AsyncClient(reconnection=False)

    async def on_a(event: str, data: Any) -> None:
        seen.append((event, data))
        if sum(1 for e, _ in seen if e == "message.done") == 2:
            both_done.set()

    a.on("*", on_a, namespace="/chat")
    try:
        for client, url in ((a, url1), (b, url2)):
            await client.connect(
                url,
                namespaces=["/chat"],
                auth={"token": token},
                transports=["websocket"],
                wait_timeout=10,
            )
        started = await a.call("session.start", {"personas": ["tutor"]}, namespace="/chat")
        sid = started["session"]["id"]
        assert (await b.call("session.start", {"session_id": sid}, namespace="/chat"))["ok"]

        def send(client: socketio.AsyncClient, text: str) -> Any:
            payload = {"session_id": sid, "text": text, "client_msg_id": uuid.uuid4().hex}
            return client.call("message.send", payload, namespace="/chat")

        acks = await asyncio.gather(send(a, "from tab one"), send(b, "from tab two"))
        assert all(ack["ok"] for ack in acks), acks
        await asyncio.wait_for(both_done.wait(), 60)
        # each reply streams start to end before the next one starts
        steps = [
            (e, d["message_id"] if e == "message.started" else d["message"]["id"])
            for e, d in seen
            if e in ("message.started", "message.done")
        ]
        assert [e for e, _ in steps] == ["message.started", "message.done"] * 2, steps
        assert steps[0][1] == steps[1][1] and steps[2][1] == steps[3][1], steps
        history = await a.call("session.history", {"session_id": sid}, namespace="/chat")
        replies = [m for m in history["messages"] if m["role"] == "persona"]
        assert sorted(r["reply_to"] for r in replies) == sorted(x["message"]["id"] for x in acks)
    finally:
        await a.disconnect()
        await b.disconnect()


async def test_a_session_lock_is_held_for_the_turn_and_released_after(db: Any) -> None:
    order = SessionOrder(db)
    session = uuid.uuid4()
    async with order.turn(session):
        assert order.waiting(session) == 1
        async with db.connection() as other:
            cur = await other.execute("SELECT pg_try_advisory_lock(%s)", (lock_key(session),))
            row = await cur.fetchone()
            assert row is not None and row[0] is False, "another process would wait"
    assert order.waiting(session) == 0
    async with db.connection() as other:
        cur = await other.execute("SELECT pg_try_advisory_lock(%s)", (lock_key(session),))
        row = await cur.fetchone()
        assert row is not None and row[0] is True
        await other.execute("SELECT pg_advisory_unlock(%s)", (lock_key(session),))


async def test_a_message_on_another_process_stops_an_autonomous_round(
    start_server: Any, connect: Any
) -> None:
    from agents.fake_llm import FakeStreamingChatModel

    slow = FakeStreamingChatModel(reply="one two three four five six", token_delay_s=0.05)
    one = await start_server(model=slow)
    two = await start_server(model=slow)
    for slug in ("tutor", "coach"):
        await one.services.personas.create(definition(slug), ADMIN)
    tab = await connect(one, name="Alice")
    started = await tab.call(
        "session.start", {"personas": ["tutor", "coach"], "policy": "autonomous", "rounds": 6}
    )
    sid = started["session"]["id"]
    other = await connect(two, name="Alice")
    assert (await other.call("session.start", {"session_id": sid}))["ok"]
    first = await tab.call(
        "message.send", {"session_id": sid, "text": "Talk among yourselves", "client_msg_id": "1"}
    )
    # the round has begun on process one: a second reply starts
    await tab.wait_for("message.started", lambda _: len(tab.of("message.started")) == 2)
    second = await other.call(
        "message.send", {"session_id": sid, "text": "Stop, please", "client_msg_id": "2"}
    )
    assert second["ok"], second
    await other.wait_for(
        "message.done", lambda d: d["message"]["reply_to"] == second["message"]["id"], timeout=30
    )
    history = await other.call("session.history", {"session_id": sid})
    roles = [m["role"] for m in history["messages"]]
    autonomous = [
        m
        for m in history["messages"]
        if m["role"] == "persona"
        and m["reply_to"] not in (first["message"]["id"], second["message"]["id"])
    ]
    assert 1 <= len(autonomous) <= 2, roles  # the round stopped after its turn in flight


async def test_a_turns_reads_run_on_its_lock_connection_only_while_it_runs(db: Any) -> None:
    order = SessionOrder(db)
    held = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"

    async def locks_of_the_reading_connection() -> int:
        async with read_connection(db) as conn:
            cur = await conn.execute(held)
            row = await cur.fetchone()
            assert row is not None
            return int(row[0])

    async with order.turn(uuid.uuid4()):
        assert await locks_of_the_reading_connection() == 1, "in the lock's transaction"
        inside = contextvars.copy_context()
    # a task started in the turn that outlives it reads on a connection of the pool
    late = asyncio.create_task(locks_of_the_reading_connection(), context=inside)
    assert await late == 0
    assert await locks_of_the_reading_connection() == 0
