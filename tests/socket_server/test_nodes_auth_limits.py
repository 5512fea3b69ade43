"""Auth, per-user rate limits, several tabs, and two server processes sharing Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import jwt
import pytest
import socketio

from personas import Actor
from socket_server.keys import SIO
from tests.personas.factory import definition
from tests.socket_server.conftest import SECRET, Server

ADMIN = Actor("admin", is_admin=True)


async def _refused(server: Server, auth: dict[str, Any]) -> Any:
    sio = socketio.AsyncClient(reconnection=False)
    errors: list[Any] = []

    async def on_error(data: Any) -> None:
        errors.append(data)

    sio.on("connect_error", on_error, namespace="/chat")
    with pytest.raises(socketio.exceptions.ConnectionError):
        await sio.connect(
            server.url, namespaces=["/chat"], auth=auth, transports=["websocket"], wait_timeout=5
        )
    await sio.disconnect()
    return errors[0]


@pytest.mark.parametrize(
    "auth",
    [
        {},
        {"token": "not-a-jwt"},
        {"token": jwt.encode({"sub": "eve", "exp": 9999999999}, "wrong" * 8, algorithm="HS256")},
        {"token": jwt.encode({"sub": "eve", "exp": 9999999999}, None, algorithm="none")},
        {"token": jwt.encode({"sub": "eve", "exp": 1}, SECRET, algorithm="HS256")},
        {
            "token": jwt.encode(
                {"sub": "eve", "role": "god", "exp": 9999999999}, SECRET, algorithm="HS256"
            )
        },
    ],
    ids=["missing", "garbage", "forged", "alg-none", "expired", "bad-role"],
)
async def test_connect_without_a_valid_token_is_refused(server: Server, auth: Any) -> None:
    error = await _refused(server, auth)
    assert error["data"]["code"] == "unauthorized" and error["message"]


async def test_users_only_see_their_own_sessions(server: Server, connect: Any) -> None:
    await server.services.personas.create(definition("tutor"), ADMIN)
    alice = await connect(server, user="alice")
    bob = await connect(server, user="bob")
    session = (await alice.call("session.start", {"personas": ["tutor"]}))["session"]
    sent = await alice.call(
        "message.send", {"session_id": session["id"], "text": "mine", "client_msg_id": "a1"}
    )
    assert sent["ok"], sent  # the server now knows the session's owner without a read
    for event, data in [
        ("session.start", {"session_id": session["id"]}),
        ("session.history", {"session_id": session["id"]}),
        ("message.send", {"session_id": session["id"], "text": "hi", "client_msg_id": "x"}),
        ("typing", {"session_id": session["id"], "is_typing": True}),
    ]:
        ack = await bob.call(event, data)
        assert ack["error"]["code"] == "forbidden", (event, ack)
    # an admin may look
    admin = await connect(server, token=server.token("root", "admin"))
    assert (await admin.call("session.history", {"session_id": session["id"]}))["ok"]


async def test_rate_limit_per_minute_with_retry_after(start_server: Any, connect: Any) -> None:
    server = await start_server(rate_limit_per_minute=3, max_concurrent_turns=10)
    await server.services.personas.create(definition("tutor"), ADMIN)
    client = await connect(server)
    sid = (await client.call("session.start", {"personas": ["tutor"]}))["session"]["id"]
    acks = []
    for i in range(4):
        acks.append(
            await client.call(
                "message.send", {"session_id": sid, "text": f"m{i}", "client_msg_id": f"c{i}"}
            )
        )
        await client.wait_for("message.done", lambda d, n=i: d["message"]["text"] and True)
    assert [a["ok"] for a in acks] == [True, True, True, False], acks
    error = acks[3]["error"]
    assert error["code"] == "rate_limited" and 0 < error["retry_after"] <= 60
    # over the limit, a resend of an accepted message is still answered with it
    resend = await client.call(
        "message.send", {"session_id": sid, "text": "m0", "client_msg_id": "c0"}
    )
    assert resend["ok"] and resend["duplicate"], resend
    assert resend["message"]["id"] == acks[0]["message"]["id"]
    history = await client.call("session.history", {"session_id": sid})
    assert [m["text"] for m in history["messages"] if m["role"] == "user"] == ["m0", "m1", "m2"]


async def test_concurrent_turns_are_limited_per_user(start_server: Any, connect: Any) -> None:
    from agents.fake_llm import FakeStreamingChatModel

    slow = FakeStreamingChatModel(reply="one two three four five six", token_delay_s=0.2)
    server = await start_server(model=slow, max_concurrent_turns=1)
    await server.services.personas.create(definition("tutor"), ADMIN)
    client = await connect(server)
    sid = (await client.call("session.start", {"personas": ["tutor"]}))["session"]["id"]
    first = await client.call(
        "message.send", {"session_id": sid, "text": "a", "client_msg_id": "1"}
    )
    second = await client.call(
        "message.send", {"session_id": sid, "text": "b", "client_msg_id": "2"}
    )
    assert first["ok"]
    assert second["error"]["code"] == "rate_limited" and "at once" in second["error"]["message"]
    await client.wait_for("persona.traits_updated")  # the first turn ends and frees its slot
    third = await client.call(
        "message.send", {"session_id": sid, "text": "c", "client_msg_id": "3"}
    )
    assert third["ok"], third
    history = await client.call("session.history", {"session_id": sid})
    assert [m["text"] for m in history["messages"] if m["role"] == "user"] == ["a", "c"]


async def test_two_tabs_see_the_same_conversation(server: Server, connect: Any) -> None:
    await server.services.personas.create(definition("tutor"), ADMIN)
    tab1 = await connect(server, name="Alice")
    tab2 = await connect(server, name="Alice")
    sid = (await tab1.call("session.start", {"personas": ["tutor"]}))["session"]["id"]
    assert (await tab2.call("session.start", {"session_id": sid}))["ok"]
    await tab1.call("typing", {"session_id": sid, "is_typing": True})
    typing = await tab2.wait_for("typing")
    assert typing == {"session_id": sid, "user": "Alice", "is_typing": True}
    assert not tab1.of("typing"), "typing is not echoed to the sender"
    await tab1.call("message.send", {"session_id": sid, "text": "hello", "client_msg_id": "a"})
    done1, done2 = await tab1.wait_for("message.done"), await tab2.wait_for("message.done")
    assert done1 == done2
    assert len(tab2.of("message.token")) == len(tab1.of("message.token")) > 0


async def test_a_message_on_one_node_reaches_a_client_on_the_other(
    spawn: Any, server: Server
) -> None:
    await server.services.personas.create(definition("tutor"), ADMIN)
    (_, url1), (_, url2) = await spawn("node1"), await spawn("node2")
    token = server.token("alice")
    received: list[tuple[str, Any]] = []
    done = asyncio.Event()
    a, b = socketio.AsyncClient(reconnection=False), socketio.AsyncClient(reconnection=False)

    async def on_b(event: str, data: Any) -> None:
        received.append((event, data))
        if event == "message.done":
            done.set()

    b.on("*", on_b, namespace="/chat")
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
        joined = await b.call("session.start", {"session_id": sid}, namespace="/chat")
        assert joined["ok"]
        ack = await a.call(
            "message.send",
            {"session_id": sid, "text": "across nodes", "client_msg_id": "n1"},
            namespace="/chat",
        )
        assert ack["ok"]
        await asyncio.wait_for(done.wait(), 30)
        kinds = [e for e, _ in received]
        assert "message.token" in kinds and kinds[-1] == "message.done"
        history = await b.call("session.history", {"session_id": sid}, namespace="/chat")
        assert [m["role"] for m in history["messages"]] == ["user", "persona"]
    finally:
        await a.disconnect()
        await b.disconnect()


async def test_a_lone_node_publishes_nothing_until_another_node_announces_itself(
    start_server: Any, connect: Any
) -> None:
    one = await start_server()
    await one.services.personas.create(definition("tutor"), ADMIN)
    sio = one.app[SIO]
    manager = sio.manager
    # a room with no client on this node is published, as python-socketio does; Redis
    # answers that only this node listens, so the next emits are not
    for _ in range(3):
        await sio.emit("ping", {}, room="session:elsewhere", namespace="/chat")
    assert (manager.published, manager.skipped) == (1, 2)

    manager.solo_recheck_s = 3600.0  # from here only the announcement can end solo mode
    two = await start_server()
    async with asyncio.timeout(10):
        while manager._solo:
            await asyncio.sleep(0.02)
    await sio.emit("ping", {}, room="session:elsewhere", namespace="/chat")
    assert manager.published == 2
    alice = await connect(one, name="Alice")
    sid = (await alice.call("session.start", {"personas": ["tutor"]}))["session"]["id"]
    tab = await connect(two, name="Alice")
    assert (await tab.call("session.start", {"session_id": sid}))["ok"]
    await alice.call("message.send", {"session_id": sid, "text": "now two", "client_msg_id": "2"})
    done = await tab.wait_for("message.done")
    assert done["message"]["role"] == "persona"
    assert tab.of("message.token"), "tokens emitted on node one reach a tab on node two"


async def test_emits_stay_on_their_node_until_another_node_has_a_client_in_the_room(
    start_server: Any, connect: Any
) -> None:
    one, two = await start_server(), await start_server()
    await one.services.personas.create(definition("tutor"), ADMIN)
    manager = one.app[SIO].manager
    async with asyncio.timeout(10):
        while manager._solo:  # node two announced itself at start-up
            await asyncio.sleep(0.02)
    alice = await connect(one, name="Alice")
    sid = (await alice.call("session.start", {"personas": ["tutor"]}))["session"]["id"]
    before = manager.local_only
    await alice.call("message.send", {"session_id": sid, "text": "hi", "client_msg_id": "1"})
    await alice.wait_for("message.done")
    assert manager.local_only > before, "nobody on node two is in the room: nothing to publish"

    tab = await connect(two, name="Alice")
    assert (await tab.call("session.start", {"session_id": sid}))["ok"]
    published = manager.local_only
    await alice.call("message.send", {"session_id": sid, "text": "again", "client_msg_id": "2"})
    done = await tab.wait_for("message.done")
    assert done["message"]["role"] == "persona"
    assert tab.of("message.token"), "the tab on node two gets the stream"
    assert manager.local_only == published, "with a client on node two, every emit is published"
