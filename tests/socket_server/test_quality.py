"""Channels in a chat, quality, analytics and feedback over real HTTP: a session picks a
channel, its replies record it and whether they met the overlay, the quality view scores
it, ratings with reasons show in the feedback list (a user sees their own, an admin
all) and in the analytics per day."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from agents.prompt import PromptInput, compose
from agents.types import NullEvents
from personas import Actor
from personas.channels import BUILTIN, check_reply
from runtime.infra.auth import Principal
from socket_server.keys import CHAT
from tests.personas.factory import definition
from tests.socket_server.conftest import Server
from tests.socket_server.openapi_check import check_answer
from tests.socket_server.test_rest import Api, error_code, eventually

ADMIN = Actor("admin", is_admin=True)
STYLE = [
    {"name": "formality", "type": "style", "value": 0.7},
    {"name": "inquisitiveness", "type": "style", "value": 0.2},
]


@pytest.fixture
async def api(server: Server) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as http:
        yield Api(server, http)


async def turns(server: Server, user: str, session_id: uuid.UUID, n: int) -> list[uuid.UUID]:
    """``n`` answered messages of ``user``, one after another (a user has two turns in
    flight at most)."""
    chat = server.app[CHAT]
    who = Principal(user, "user")
    ids: list[uuid.UUID] = []
    for i in range(n):
        await chat.send(
            who,
            user_name=user,
            session_id=session_id,
            text=f"Tell me more ({i})",
            client_msg_id=f"m{i}",
            events=NullEvents(),
        )

        async def answered(want: int = len(ids) + 1) -> list[uuid.UUID]:
            page = await chat.history(who, session_id, before=None, limit=100)
            found = [m.id for m in page.items if m.role == "persona"]
            return found if len(found) == want else []

        ids = await eventually(answered)
    return ids


async def test_a_session_channel_shapes_the_prompt_and_is_checked(server: Server, api: Api) -> None:
    persona = await server.services.personas.create(definition("tutor", traits=STYLE), ADMIN)
    system = str(
        compose(PromptInput(persona, "Ann", "Hi", channel=BUILTIN["linkedin"])).messages[0].content
    )
    assert "You are writing for linkedin" in system and "120 to 300 words" in system
    assert "hashtags" in system
    assert "writing for" not in str(compose(PromptInput(persona, "Ann", "Hi")).messages[0].content)

    chat = server.app[CHAT]
    session, _ = await chat.start_session(Principal("alice", "user"), ["tutor"])
    path = f"/api/sessions/{session.id}/channel"
    unknown = await api("PUT", path, json_body={"channel": "myspace"})
    assert (unknown.status, error_code(unknown)) == (400, "invalid_payload")
    theirs = await api("PUT", path, user="bob", json_body={"channel": "linkedin"})
    assert (theirs.status, error_code(theirs)) == (403, "forbidden")
    picked = await api("PUT", path, json_body={"channel": "linkedin"})
    assert picked.status == 200 and picked.body["channel"] == "linkedin"

    await turns(server, "alice", session.id, 2)

    async def checked() -> Any:
        body = (await api("GET", "/api/personas/tutor/quality", role="editor")).body
        part = body["parts"]["channel_compliance"]
        return body if part and part["replies"] == 2 else None

    quality = await eventually(checked)
    part = quality["parts"]["channel_compliance"]
    # the fake model's one-line reply is far too short for LinkedIn, and has no hashtags
    assert part["score"] == 0 and part["channels"]["linkedin"]["failed"]["length"] == 2
    assert part["channels"]["linkedin"]["failed"]["hashtags"] == 2
    assert quality["weakest"] == "channel_compliance" and "channel" in quality["next"]

    off = await api("PUT", path, json_body={"channel": None})
    assert off.status == 200 and off.body["channel"] is None


def test_channel_checks_measure_length_and_structure() -> None:
    post = (
        "Leadership is a practice, not a title.\n\n"
        + " ".join(["Every week I learn something new from the people I work with."] * 12)
        + "\n\nWhat did you learn this week? Share it below. #leadership #growth"
    )
    linkedin = check_reply(post, BUILTIN["linkedin"])
    assert linkedin.compliant, linkedin.checks
    chat = check_reply(post, BUILTIN["chat"])
    assert chat.words == 160 and chat.checks == {"length": False, "hashtags": False}
    blog = check_reply("Short.", BUILTIN["blog"])
    assert not blog.checks["length"] and not blog.checks["paragraphs"]


async def test_quality_analytics_and_feedback(server: Server, api: Api) -> None:
    persona = await server.services.personas.create(definition("tutor", traits=STYLE), ADMIN)
    empty = (await api("GET", "/api/personas/tutor/quality", role="editor")).body
    assert empty["overall"] is None and empty["weakest"] is None
    chat = server.app[CHAT]
    alice, _ = await chat.start_session(Principal("alice", "user"), ["tutor"])
    bob, _ = await chat.start_session(Principal("bob", "user"), ["tutor"])
    alice_replies = await turns(server, "alice", alice.id, 3)
    bob_replies = await turns(server, "bob", bob.id, 1)

    for message_id, reason in zip(alice_replies, ("too_long", "too_long", None), strict=True):
        body = {"rating": -1, **({"reason": reason} if reason else {})}
        rated = await api("POST", f"/api/messages/{message_id}/feedback", json_body=body)
        assert rated.status == 200 and rated.body["feedback"]["reason"] == reason
        assert rated.body["adjusted"] is None, "below the threshold nothing moves"
    bad = await api(
        "POST",
        f"/api/messages/{alice_replies[0]}/feedback",
        json_body={"rating": -1, "reason": "Too Long!"},
    )
    assert (bad.status, error_code(bad)) == (400, "invalid_payload")
    await api(
        "POST", f"/api/messages/{bob_replies[0]}/feedback", user="bob", json_body={"rating": 1}
    )

    mine = (await api("GET", "/api/feedback")).body["feedback"]
    assert {f["user_id"] for f in mine} == {"alice"} and len(mine) == 3
    assert [f["reason"] for f in mine].count("too_long") == 2
    peek = await api("GET", "/api/feedback?user=bob")
    assert (peek.status, error_code(peek)) == (403, "forbidden")
    everyone = (await api.admin("GET", "/api/feedback?persona=tutor")).body["feedback"]
    assert {f["user_id"] for f in everyone} == {"alice", "bob"}

    async def folded() -> Any:
        body = (await api("GET", "/api/personas/tutor/quality", role="editor")).body
        return body if body["parts"]["consistency"] else None

    quality = await eventually(folded)
    sat = quality["parts"]["satisfaction"]
    assert (sat["up"], sat["down"], sat["score"]) == (1, 3, 25.0)
    assert sat["reasons"] == {"too_long": 2}
    assert 0 <= quality["parts"]["consistency"]["score"] <= 100
    assert quality["overall"] is not None and quality["weakest"] in quality["parts"]

    today = dt.datetime.now(dt.UTC).date()
    since = (today - dt.timedelta(days=2)).isoformat()
    analytics = await api("GET", f"/api/personas/tutor/analytics?from={since}", role="editor")
    assert analytics.status == 200
    days = analytics.body["days"]
    assert [d["day"] for d in days][-1] == today.isoformat() and len(days) == 3
    assert days[-1]["turns"] == 4 and days[-1]["users"] == 2 and days[-1]["sessions"] == 2
    assert (days[-1]["feedback_up"], days[-1]["feedback_down"]) == (1, 3)
    assert days[-1]["first_token_ms"]["p50"] <= days[-1]["first_token_ms"]["p95"]
    assert days[0]["turns"] == 0 and days[0]["first_token_ms"] is None
    backwards = await api(
        "GET", f"/api/personas/tutor/analytics?from={today}&to={since}", role="editor"
    )
    assert (backwards.status, error_code(backwards)) == (400, "invalid_payload")

    # both come from every user's chats and ratings: a plain user reads neither
    for path in ("/api/personas/tutor/quality", "/api/personas/tutor/analytics"):
        refused = await api("GET", path, user="newcomer")
        assert (refused.status, error_code(refused)) == (403, "forbidden"), path
        assert "drift" not in str(refused.body) and "too_long" not in str(refused.body)

    doc = (await api("GET", "/api/openapi.json", user=None)).body
    for template, reply in (
        (
            "/api/personas/{key}/quality",
            (await api("GET", "/api/personas/tutor/quality", role="editor")),
        ),
        ("/api/personas/{key}/analytics", analytics),
        ("/api/feedback", (await api("GET", "/api/feedback"))),
    ):
        problems = check_answer(doc, template, "get", reply.status, reply.body, "application/json")
        assert not problems, (template, problems)
    assert persona.id


async def test_a_single_message_picks_its_channel(server: Server, connect: Any) -> None:
    await server.services.personas.create(definition("tutor"), ADMIN)
    client = await connect(server, name="Alice")
    started = await client.call("session.start", {"personas": ["tutor"]})
    session_id = started["session"]["id"]
    sent = {
        "session_id": session_id,
        "text": "Write a post",
        "client_msg_id": "c1",
        "channel": "facebook",
    }
    assert (await client.call("message.send", sent))["ok"]
    done = await client.wait_for("message.done")
    plain = {"session_id": session_id, "text": "And now?", "client_msg_id": "c2"}
    assert (await client.call("message.send", plain))["ok"]
    await client.wait_for("message.done", lambda d: d["message"]["id"] != done["message"]["id"])
    bad = await client.call("message.send", {**plain, "client_msg_id": "c3", "channel": "X!"})
    assert not bad["ok"] and bad["error"]["code"] == "invalid_payload"

    async def recorded() -> Any:
        async with server.services.pool.connection() as conn:
            cur = await conn.execute("SELECT message_id, channel, compliant FROM reply_channels")
            return await cur.fetchall()

    rows = await eventually(recorded)
    # only the message that asked for a channel is checked against it
    assert [(str(r[0]), r[1]) for r in rows] == [(done["message"]["id"], "facebook")]
