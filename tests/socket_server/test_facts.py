"""What a persona knows about a user, over the real server: facts consolidated in the
background after the turns, listed with their history over REST and Socket.IO,
corrected and deleted, each user seeing only their own."""

from __future__ import annotations

import uuid
from typing import Any

from tests.personas.factory import definition
from tests.socket_server.conftest import Server
from tests.socket_server.test_rest import ADMIN, Api, api, chat_turn, error_code, eventually

__all__ = ["api"]  # the fixture, used by name


async def test_facts_are_consolidated_listed_corrected_and_deleted(
    server: Server, api: Api, connect: Any
) -> None:
    await server.services.personas.create(definition("tutor"), ADMIN)
    await chat_turn(server, "alice", "I live in Lyon.")
    path = "/api/personas/tutor/facts"

    async def facts(n: int) -> list[dict[str, Any]] | None:
        reply = await api("GET", path)
        assert reply.status == 200, reply.body
        found: list[dict[str, Any]] = reply.body["facts"]
        return found if len(found) >= n else None

    (first,) = await eventually(lambda: facts(1))
    assert first["text"] == "Alice lives in Lyon." and first["current"]
    assert first["subject"] == "home" and len(first["source_ids"]) == 1

    await chat_turn(server, "alice", "I moved to Berlin.")
    listed = await eventually(lambda: facts(2))
    current = [f for f in listed if f["current"]]
    old = next(f for f in listed if not f["current"])
    assert [f["text"] for f in current] == ["Alice lives in Berlin."]
    assert old["superseded_by"] == current[0]["id"] and old["valid_until"]

    # another user sees none of it, and may not ask for alice's
    assert (await api("GET", path, user="bob")).body == {"facts": []}
    assert error_code(await api("GET", path + "?user=alice", user="bob")) == "forbidden"

    # Socket.IO lists the same
    client = await connect(server)
    over_socket = await client.call("fact.list", {"persona": "tutor"})
    assert over_socket["ok"] and len(over_socket["facts"]) == 2

    # a correction supersedes the current fact; a superseded one cannot be corrected
    fixed = await api(
        "POST", f"{path}/{current[0]['id']}/correct", json_body={"text": "Alice lives in Munich."}
    )
    assert fixed.status == 200 and fixed.body["fact"]["origin"] == "corrected"
    again = await api("POST", f"{path}/{old['id']}/correct", json_body={"text": "x"})
    assert again.status == 409 and error_code(again) == "fact_superseded"
    found = await server.services.memory.search(
        persona_id=str((await server.services.personas.get("tutor")).id),
        user_id="alice",
        text="where does Alice live",
        k=5,
    )
    assert found[0].record.text == "Alice lives in Munich."

    # deleted over Socket.IO; unknown ids are 404
    gone = await client.call(
        "fact.delete", {"persona": "tutor", "fact_id": fixed.body["fact"]["id"]}
    )
    assert gone["ok"], gone
    left = (await api("GET", path)).body["facts"]
    assert fixed.body["fact"]["id"] not in {f["id"] for f in left}
    missing = await api("DELETE", f"{path}/{uuid.uuid4()}")
    assert missing.status == 404 and error_code(missing) == "fact_not_found"


async def test_forgetting_a_user_forgets_their_facts(server: Server, api: Api) -> None:
    await server.services.personas.create(definition("tutor"), ADMIN)
    await chat_turn(server, "alice", "My dog is called Pixel.")

    async def known() -> bool:
        return bool((await api("GET", "/api/personas/tutor/facts")).body["facts"])

    await eventually(known)
    await server.services.memory.forget_user("alice")
    assert (await api("GET", "/api/personas/tutor/facts")).body == {"facts": []}
