"""The REST API over real HTTP against a real server (auth secret set, fake LLM and
embedder): auth, personas, sessions, feedback, memories, readiness, metrics. The OpenAPI
document and every route's answers against it: test_openapi.py."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import math
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from agents.types import NullEvents
from memory.errors import IndexUnavailable, SessionNotFound
from personas import Actor, PersonaExists
from runtime.infra.auth import Principal, mint_token
from runtime.infra.catalog import embedding_text
from runtime.infra.ratelimit import RateLimited
from runtime.usecases.chat import ChatError
from socket_server import errors, ops
from socket_server.keys import CHAT
from tests.personas.factory import definition
from tests.socket_server.conftest import SECRET, Server

ADMIN = Actor("admin", is_admin=True)
T = Any


@dataclass
class Reply:
    status: int
    body: Any
    headers: Any


@dataclass
class Api:
    """Calls the server's REST API as a given user (``None``: without a token)."""

    server: Server
    http: aiohttp.ClientSession

    async def __call__(
        self,
        method: str,
        path: str,
        *,
        user: str | None = "alice",
        role: str = "user",
        token: str | None = None,
        json_body: Any = None,
        data: bytes | str | io.BytesIO | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        sent = dict(headers or {})
        if token is None and user is not None:
            token = self.server.token(user, role)
        if token is not None:
            sent.setdefault("Authorization", f"Bearer {token}")
        async with self.http.request(
            method, self.server.url + path, json=json_body, data=data, headers=sent
        ) as response:
            raw = await response.read()
            body = json.loads(raw) if raw and response.content_type == "application/json" else raw
            return Reply(response.status, body, response.headers)

    async def admin(self, method: str, path: str, **kw: Any) -> Reply:
        return await self(method, path, user="root", role="admin", **kw)


@pytest.fixture
async def api(server: Server) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as http:
        yield Api(server, http)


def error_code(reply: Reply) -> str:
    assert set(reply.body) == {"error"}, reply.body
    assert {"code", "message"} <= set(reply.body["error"]), reply.body
    for leak in ("Traceback", "SELECT", "psycopg", SECRET):
        assert leak not in reply.body["error"]["message"], reply.body
    return str(reply.body["error"]["code"])


async def eventually(probe: Callable[[], Awaitable[T]], timeout: float = 15.0) -> T:
    """Poll ``probe`` until it returns something truthy, within ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while True:
            result = await probe()
            if result:
                return result
            await asyncio.sleep(0.02)


async def chat_turn(server: Server, user: str, text: str) -> uuid.UUID:
    """A session of ``user`` with the tutor and one answered message, remembered."""
    chat = server.app[CHAT]
    who = Principal(user, "user")
    session, _ = await chat.start_session(who, ["tutor"])
    await chat.send(
        who,
        user_name=user.title(),
        session_id=session.id,
        text=text,
        client_msg_id="c1",
        events=NullEvents(),
    )

    async def answered() -> bool:
        page = await chat.history(who, session.id, before=None, limit=10)
        return [m.role for m in page.items] == ["user", "persona"]

    async def remembered() -> bool:
        return len((await chat.list_memories(who, "tutor")).records) >= 2

    await eventually(answered)
    await eventually(remembered)
    return session.id


# ---- auth ----------------------------------------------------------------------------------


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_api_needs_a_valid_bearer_token(server: Server, api: Api) -> None:
    exp = int(time.time()) + 3600
    claims = {"sub": "eve", "role": "admin", "exp": exp}
    alg_none = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    bad_tokens = {
        "forged": mint_token("f" * 40, "eve", "admin"),
        "expired": mint_token(SECRET, "alice", ttl_s=-60),
        "alg none": alg_none,
        "garbage": "not.a.jwt",
    }
    reply = await api("GET", "/api/personas", user=None)
    assert reply.status == 401 and error_code(reply) == "unauthorized"
    assert reply.headers["WWW-Authenticate"].startswith("Bearer")
    for name, token in bad_tokens.items():
        reply = await api("GET", "/api/personas", token=token)
        assert (reply.status, error_code(reply)) == (401, "unauthorized"), name
    basic = await api("GET", "/api/sessions", user=None, headers={"Authorization": "Basic YTpi"})
    assert basic.status == 401
    assert (await api("GET", "/api/personas")).status == 200
    for path in ("/healthz", "/readyz", "/api/openapi.json"):
        assert (await api("GET", path, user=None)).status == 200, path
    # metrics describe everyone's use: an admin's token, when a secret is set
    assert (await api("GET", "/metrics", user=None)).status == 401
    assert (await api("GET", "/metrics", user="alice")).status == 403
    assert (await api("GET", "/metrics", user="root", role="admin")).status == 200


async def test_without_a_secret_everyone_is_the_local_admin(start_server: Any) -> None:
    server = await start_server(auth_secret="")
    async with aiohttp.ClientSession() as http:
        api = Api(server, http)
        created = await api(
            "POST",
            "/api/personas",
            user=None,
            json_body=definition("open-door").model_dump(mode="json"),
        )
        assert created.status == 201, created.body
        versions = await api("GET", "/api/personas/open-door/versions", user=None)
        assert versions.body["versions"][0]["created_by"] == "local"


# ---- personas ------------------------------------------------------------------------------


async def test_admin_creates_patches_restores_and_deletes_a_persona(api: Api) -> None:
    body = definition("tutor").model_dump(mode="json")
    created = await api.admin("POST", "/api/personas", json_body=body)
    assert created.status == 201, created.body
    persona = created.body
    assert created.headers["Location"] == f"/api/personas/{persona['id']}"
    assert (persona["slug"], persona["version"]) == ("tutor", 1)
    assert "system_prompt" not in persona
    again = await api.admin("POST", "/api/personas", json_body=body)
    assert (again.status, error_code(again)) == (409, "conflict")

    by_id = await api("GET", f"/api/personas/{persona['id']}")
    assert by_id.status == 200 and by_id.body == persona

    patch = {
        "traits": [
            {"name": "patience", "action": "decrease", "intensity": 0.4},
            {"name": "humility", "action": "set", "intensity": 0.7},
        ],
        "modes": {"mentor": True},
        "style": {"temperature": 0.9},
    }
    patched = await api.admin("PATCH", "/api/personas/tutor/settings", json_body=patch)
    assert patched.status == 200, patched.body
    traits = {t["name"]: t["value"] for t in patched.body["traits"]}
    assert patched.body["version"] == 2
    assert math.isclose(traits["patience"], 0.5) and math.isclose(traits["humility"], 0.7)
    assert {"mode": "mentor", "enabled": True} in patched.body["modes"]
    assert patched.body["style"]["temperature"] == 0.9
    missing = await api.admin(
        "PATCH",
        "/api/personas/tutor/settings",
        json_body={"traits": [{"name": "zeal", "action": "increase", "intensity": 0.1}]},
    )
    assert (missing.status, error_code(missing)) == (400, "invalid_payload")

    versions = await api.admin("GET", "/api/personas/tutor/versions")
    assert [v["version"] for v in versions.body["versions"]] == [1, 2]
    assert versions.body["versions"][1]["created_by"] == "root"
    assert versions.body["versions"][0]["snapshot"]["system_prompt"] == body["system_prompt"]
    as_user = await api("GET", "/api/personas/tutor/versions")
    assert as_user.status == 200 and "snapshot" not in as_user.body["versions"][0]

    restored = await api.admin("POST", "/api/personas/tutor/versions/1/restore")
    assert restored.status == 200, restored.body
    assert restored.body["version"] == 3
    assert {t["name"]: t["value"] for t in restored.body["traits"]}["patience"] == 0.9
    nope = await api.admin("POST", "/api/personas/tutor/versions/99/restore")
    assert (nope.status, error_code(nope)) == (404, "version_not_found")
    bad = await api.admin("POST", "/api/personas/tutor/versions/first/restore")
    assert (bad.status, error_code(bad)) == (400, "invalid_payload")

    deleted = await api.admin("DELETE", "/api/personas/tutor")
    assert deleted.status == 204
    gone = await api("GET", "/api/personas/tutor")
    assert (gone.status, error_code(gone)) == (404, "persona_not_found")
    listed = await api("GET", "/api/personas")
    assert listed.body["total"] == 0


async def test_users_cannot_change_personas_protected_or_not(server: Server, api: Api) -> None:
    await server.services.personas.create(definition("guarded", protected=True), ADMIN)
    await server.services.personas.create(definition("open"), ADMIN)
    patch = {"style": {"temperature": 1.5}}
    for slug in ("guarded", "open"):
        new = definition(f"{slug}-2", protected=slug == "guarded").model_dump(mode="json")
        attempts = [
            await api("POST", "/api/personas", json_body=new),
            await api("PATCH", f"/api/personas/{slug}/settings", json_body=patch),
            await api("POST", f"/api/personas/{slug}/versions/1/restore"),
            await api("DELETE", f"/api/personas/{slug}"),
        ]
        for reply in attempts:
            assert (reply.status, error_code(reply)) == (403, "forbidden"), reply.body
        now = await api("GET", f"/api/personas/{slug}")
        assert now.status == 200 and now.body["version"] == 1
        assert now.body["style"]["temperature"] == 0.6
    # an admin may still change a protected persona
    ok = await api.admin("PATCH", "/api/personas/guarded/settings", json_body=patch)
    assert ok.status == 200 and ok.body["protected"]


async def test_list_filters_pages_and_searches(server: Server, api: Api) -> None:
    store = server.services.personas
    await store.create(definition("tutor"), ADMIN)
    await store.create(
        definition(
            "sailor",
            description="An old ship captain who tells sea stories.",
            domains=["sea"],
            beliefs=[],
            persona_type="fictional",
        ),
        ADMIN,
    )
    await store.create(
        definition(
            "gardener",
            description="Grows tomatoes and talks about photosynthesis.",
            domains=["biology", "garden"],
            active=False,
        ),
        ADMIN,
    )

    page = await api("GET", "/api/personas?limit=2")
    assert page.body["total"] == 3 and _slugs(page) == ["gardener", "sailor"]
    rest_page = await api("GET", "/api/personas?limit=2&offset=2")
    assert [p["slug"] for p in rest_page.body["items"]] == ["tutor"]
    assert _slugs(await api("GET", "/api/personas?domain=Biology")) == ["gardener", "tutor"]
    assert _slugs(await api("GET", "/api/personas?type=fictional")) == ["sailor"]
    assert _slugs(await api("GET", "/api/personas?active=false")) == ["gardener"]

    found = await api("GET", "/api/personas?q=photosynthesis")
    assert set(_slugs(found)) == {"tutor", "gardener"}
    assert all(p["rank"] > 0 for p in found.body["items"])
    assert _slugs(await api("GET", "/api/personas?q=photosynthesis&active=true")) == ["tutor"]
    assert _slugs(await api("GET", "/api/personas?q=captain%20stories")) == ["sailor"]
    assert (await api("GET", "/api/personas?q=zeppelin")).body["total"] == 0

    for bad in (
        "limit=0",
        "limit=201",
        "offset=-1",
        "active=perhaps",
        "type=alien",
        "color=blue",
        "limit=1&limit=2",
        "q=",
        "limit=ten",
    ):
        reply = await api("GET", f"/api/personas?{bad}")
        assert (reply.status, error_code(reply)) == (400, "invalid_payload"), bad


def _slugs(reply: Reply) -> list[str]:
    assert reply.status == 200, reply.body
    return [p["slug"] for p in reply.body["items"]]


async def test_embed_is_the_personas_vector_at_the_embedders_dimension(
    server: Server, api: Api
) -> None:
    tutor = await server.services.personas.create(definition("tutor"), ADMIN)
    await server.services.personas.create(
        definition("sailor", description="An old ship captain.", beliefs=[]), ADMIN
    )
    embedder = server.services.memory.embedder
    reply = await api("GET", "/api/personas/tutor/embed")
    assert reply.status == 200, reply.body
    assert reply.body["persona_id"] == str(tutor.id)
    assert reply.body["dim"] == embedder.dim == len(reply.body["vector"]) == 64
    expected = await embedder.embed_one(embedding_text(tutor))
    assert reply.body["vector"] == pytest.approx([float(x) for x in expected], abs=1e-6)
    assert "Questions teach better" in embedding_text(tutor)
    other = await api("GET", "/api/personas/sailor/embed")
    assert other.body["vector"] != reply.body["vector"]
    missing = await api("GET", "/api/personas/nobody/embed")
    assert (missing.status, error_code(missing)) == (404, "persona_not_found")


# ---- sessions, feedback, memories, traits --------------------------------------------------


async def test_a_users_sessions_messages_and_feedback_are_theirs(server: Server, api: Api) -> None:
    await server.services.personas.create(definition("tutor"), ADMIN)
    session_id = await chat_turn(server, "alice", "Hi, I am Alice and I love astronomy.")
    bob_session = await chat_turn(server, "bob", "Hello, Bob here.")

    mine = await api("GET", "/api/sessions")
    assert [s["id"] for s in mine.body["sessions"]] == [str(session_id)]
    assert mine.body["sessions"][0]["personas"][0]["slug"] == "tutor"
    assert (await api("GET", "/api/sessions?user=bob")).status == 403
    theirs = await api.admin("GET", "/api/sessions?user=bob")
    assert [s["id"] for s in theirs.body["sessions"]] == [str(bob_session)]

    path = f"/api/sessions/{session_id}/messages"
    messages = await api("GET", path)
    assert messages.status == 200, messages.body
    assert [m["role"] for m in messages.body["messages"]] == ["user", "persona"]
    assert messages.body["before"] is None
    first = await api("GET", path + "?limit=1")
    assert [m["role"] for m in first.body["messages"]] == ["persona"]
    older = await api("GET", path + f"?limit=1&before={first.body['before']}")
    assert [m["role"] for m in older.body["messages"]] == ["user"]
    stolen = await api("GET", path, user="bob")
    assert (stolen.status, error_code(stolen)) == (403, "forbidden")
    assert (await api.admin("GET", path)).status == 200
    unknown = await api("GET", f"/api/sessions/{uuid.uuid4()}/messages")
    assert (unknown.status, error_code(unknown)) == (404, "session_not_found")
    for bad in ("/api/sessions/not-a-uuid/messages", path + "?before=0", path + "?limit=500"):
        assert (await api("GET", bad)).status == 400, bad

    reply_id = messages.body["messages"][1]["id"]
    feedback = f"/api/messages/{reply_id}/feedback"
    liked = await api("POST", feedback, json_body={"rating": 1})
    assert liked.status == 200, liked.body
    assert liked.body["feedback"]["rating"] == 1
    changed = await api("POST", feedback, json_body={"rating": -1, "comment": "too vague"})
    assert changed.body["feedback"] == {
        **changed.body["feedback"],
        "rating": -1,
        "comment": "too vague",
    }
    async with server.services.pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT user_id, rating, comment FROM feedback WHERE message_id = %s", (reply_id,)
            )
        ).fetchall()
    assert rows == [("alice", -1, "too vague")]
    denied = await api("POST", feedback, user="bob", json_body={"rating": 1})
    assert (denied.status, error_code(denied)) == (403, "forbidden")
    nowhere = await api("POST", f"/api/messages/{uuid.uuid4()}/feedback", json_body={"rating": 0})
    assert (nowhere.status, error_code(nowhere)) == (404, "message_not_found")
    bad_bodies: list[dict[str, Any]] = [
        {"rating": 2},
        {"rating": "1"},
        {"rating": True},
        {"rating": 0.5},
        {},
        {"rating": 1, "comment": "x" * 2001},
        {"rating": 1, "stars": 5},
    ]
    for bad_body in bad_bodies:
        reply = await api("POST", feedback, json_body=bad_body)
        assert (reply.status, error_code(reply)) == (400, "invalid_payload"), bad_body


async def test_memories_are_listed_searched_pinned_and_deleted_per_user(
    server: Server, api: Api
) -> None:
    await server.services.personas.create(definition("tutor"), ADMIN)
    session_id = await chat_turn(server, "alice", "Hi, I am Alice and I love astronomy.")
    await chat_turn(server, "bob", "Hello, Bob here, I collect stamps.")
    path = "/api/personas/tutor/memories"

    listed = await api("GET", path)
    assert listed.status == 200, listed.body
    memories = listed.body["memories"]
    assert {m["user_id"] for m in memories} == {"alice"}
    assert {m["speaker"]["name"] for m in memories} >= {"Alice"}
    bobs = await api("GET", path, user="bob")
    assert {m["user_id"] for m in bobs.body["memories"]} == {"bob"}
    peek = await api("GET", path + "?user=alice", user="bob")
    assert (peek.status, error_code(peek)) == (403, "forbidden")
    audit = await api.admin("GET", path + "?user=alice")
    assert {m["id"] for m in audit.body["memories"]} == {m["id"] for m in memories}
    in_session = await api("GET", path + f"?session_id={session_id}&kind=turn&limit=1")
    assert len(in_session.body["memories"]) == 1 and in_session.body["next_cursor"]
    after = await api("GET", path + f"?limit=1&cursor={in_session.body['next_cursor']}")
    assert after.body["memories"][0]["id"] != in_session.body["memories"][0]["id"]

    found = await api("GET", path + "?q=astronomy&k=1")
    assert found.status == 200, found.body
    [best] = found.body["results"]
    assert "astronomy" in best["text"] and best["user_id"] == "alice"
    assert set(best["score"]) == {
        "total",
        "relevance",
        "keyword",
        "relevance_z",
        "keyword_z",
        "speaker",
        "recency",
        "importance",
        "pinned",
    }
    stamps = await api("GET", path + "?q=stamps")
    assert all(r["user_id"] == "alice" for r in stamps.body["results"])

    target = best["id"]
    stolen_pin = await api("POST", f"{path}/{target}/pin", user="bob", json_body={"pinned": True})
    assert (stolen_pin.status, error_code(stolen_pin)) == (404, "memory_not_found")
    pinned = await api("POST", f"{path}/{target}/pin", json_body={"pinned": True})
    assert pinned.status == 200 and pinned.body["memory"]["pinned"] is True
    again = await api("GET", path)
    assert {m["id"]: m["pinned"] for m in again.body["memories"]}[target] is True

    assert (await api("DELETE", f"{path}/{target}", user="bob")).status == 404
    assert (await api("DELETE", f"{path}/{target}")).status == 204
    assert target not in {m["id"] for m in (await api("GET", path)).body["memories"]}
    twice = await api("DELETE", f"{path}/{target}")
    assert (twice.status, error_code(twice)) == (404, "memory_not_found")

    for bad in (
        "?k=3",
        "?q=x&cursor=abc",
        "?q=x&limit=5",
        "?kind=dream",
        "?cursor=garbage",
        "?session_id=42",
    ):
        reply = await api("GET", path + bad)
        assert (reply.status, error_code(reply)) == (400, "invalid_payload"), bad
    assert (await api("DELETE", f"{path}/not-a-uuid")).status == 400
    assert (await api("GET", "/api/personas/nobody/memories")).status == 404


async def test_traits_show_configuration_observations_and_drift(server: Server, api: Api) -> None:
    await server.services.personas.create(definition("tutor"), ADMIN)
    session_id = await chat_turn(server, "alice", "Explain photosynthesis to me, please.")
    reply = await api("GET", "/api/personas/tutor/traits")
    assert reply.status == 200, reply.body
    assert reply.body["persona"]["slug"] == "tutor"
    assert {"openness", "patience", "honesty"} <= {t["name"] for t in reply.body["traits"]}
    assert {"score", "drifting", "traits"} <= set(reply.body["drift"])
    mine = await api("GET", f"/api/personas/tutor/traits?session_id={session_id}")
    assert mine.status == 200
    theirs = await api("GET", f"/api/personas/tutor/traits?session_id={session_id}", user="bob")
    assert (theirs.status, error_code(theirs)) == (403, "forbidden")


# ---- malformed requests and errors ---------------------------------------------------------


async def test_malformed_requests_get_400_not_500(server: Server, api: Api) -> None:
    await server.services.personas.create(definition("tutor"), ADMIN)
    good = definition("fresh").model_dump(mode="json")
    json_type = {"Content-Type": "application/json"}
    pin = f"/api/personas/tutor/memories/{uuid.uuid4()}/pin"
    nan = json.dumps(good).replace("0.6", "NaN")
    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/api/personas", {"data": "{not json", "headers": json_type}),
        (
            "POST",
            "/api/personas",
            {"data": json.dumps(good), "headers": {"Content-Type": "text/plain"}},
        ),
        ("POST", "/api/personas", {"data": json.dumps(good)}),
        ("POST", "/api/personas", {"data": "", "headers": json_type}),
        ("POST", "/api/personas", {"json_body": [good]}),
        ("POST", "/api/personas", {"json_body": "a string"}),
        ("POST", "/api/personas", {"data": b'{"slug": "\xff\xfe"}', "headers": json_type}),
        ("POST", "/api/personas", {"data": nan, "headers": json_type}),
        ("POST", "/api/personas", {"json_body": {**good, "surprise": 1}}),
        ("POST", "/api/personas", {"json_body": {**good, "slug": "Not A Slug"}}),
        ("POST", "/api/personas", {"json_body": {k: v for k, v in good.items() if k != "name"}}),
        ("POST", "/api/personas", {"json_body": {**good, "traits": "many"}}),
        (
            "PATCH",
            "/api/personas/tutor/settings",
            {
                "json_body": {
                    "traits": [{"name": "patience", "action": "multiply", "intensity": 0.1}]
                }
            },
        ),
        (
            "PATCH",
            "/api/personas/tutor/settings",
            {"json_body": {"traits": [{"name": "patience", "intensity": 2}]}},
        ),
        (
            "PATCH",
            "/api/personas/tutor/settings",
            {"json_body": {"style": {"default_mode": "ghost"}}},
        ),
        ("POST", pin, {"json_body": {"pinned": "yes"}}),
        ("POST", pin, {"data": "null", "headers": json_type}),
        (
            "POST",
            f"/api/messages/{uuid.uuid4()}/feedback",
            {"data": "rating=1", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
        ),
    ]
    for method, path, kw in cases:
        reply = await api.admin(method, path, **kw)
        assert (reply.status, error_code(reply)) == (400, "invalid_payload"), (path, kw, reply.body)

    huge = json.dumps({**good, "description": "x" * (2 * 1024 * 1024)}).encode()
    too_big = await api.admin("POST", "/api/personas", data=io.BytesIO(huge), headers=json_type)
    assert (too_big.status, error_code(too_big)) == (413, "body_too_large")
    nowhere = await api("GET", "/api/nothing/here")
    assert (nowhere.status, error_code(nowhere)) == (404, "not_found")
    wrong = await api.admin("PUT", "/api/personas")
    assert (wrong.status, error_code(wrong)) == (405, "method_not_allowed")
    assert "POST" in wrong.headers["Allow"]
    assert (await api("GET", "/api/personas/tutor")).status == 200


async def test_unexpected_failures_are_500_without_details(
    server: Server, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(key: Any) -> Any:
        raise RuntimeError("SELECT password FROM users -- psycopg exploded")

    monkeypatch.setattr(server.services.personas, "get", broken)
    reply = await api("GET", "/api/personas/tutor")
    assert (reply.status, error_code(reply)) == (500, "internal")
    assert re.fullmatch(r"internal error \(incident [0-9a-f]{12}\)", reply.body["error"]["message"])


async def test_error_codes_map_to_http_statuses() -> None:
    request = make_mocked_request("POST", "/api/anything", app=web.Application())
    limited = errors.error_response(RateLimited("more than 30 messages a minute", 2.2), request)
    assert limited.status == 429 and limited.headers["Retry-After"] == "3"
    assert limited.text is not None
    assert json.loads(limited.text)["error"]["code"] == "rate_limited"
    cases: list[tuple[BaseException, int]] = [
        (ChatError("text_too_long", "text: longer than 8000 characters"), 413),
        (ChatError("shutting_down", "the server is shutting down"), 503),
        (ChatError("forbidden", "session 'x' is not yours"), 403),
        (IndexUnavailable("qdrant", "connection refused"), 503),
        (SessionNotFound("x"), 404),
        (PersonaExists("tutor"), 409),
    ]
    for exc, status in cases:
        assert errors.error_response(exc, request).status == status, exc


# ---- readiness, metrics -----------------------------------------------------------


async def test_readyz_checks_each_backend(
    server: Server, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    ready = await api("GET", "/readyz", user=None)
    assert ready.status == 200, ready.body
    assert ready.body["status"] == "ready"
    healthy = {name for name, check in ready.body["checks"].items() if check["ok"]}
    assert healthy >= {"postgres", "redis", "qdrant"}

    async def hangs() -> bool:
        await asyncio.Event().wait()
        return True

    monkeypatch.setattr(ops, "READY_TIMEOUT_S", 0.1)
    monkeypatch.setattr(server.services.redis, "ping", hangs)
    down = await api("GET", "/readyz", user=None)
    assert down.status == 503 and down.body["status"] == "unavailable"
    assert not down.body["checks"]["redis"]["ok"]
    assert down.body["checks"]["postgres"]["ok"] and down.body["checks"]["qdrant"]["ok"]


async def test_metrics_count_turns(server: Server, api: Api) -> None:
    await server.services.personas.create(definition("tutor"), ADMIN)
    await chat_turn(server, "alice", "Hi there.")

    async def counted() -> bool:
        reply = await api("GET", "/metrics", user="root", role="admin")
        return 'personae_turns_total{status="complete"} 1.0' in reply.body.decode()

    await eventually(counted)


async def test_operations_fail_as_the_api_does(
    server: Server, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any) -> bytes:
        raise OSError("the metrics directory is gone")

    monkeypatch.setattr(ops, "exposition", broken)
    reply = await api("GET", "/metrics", user="root", role="admin")
    assert (reply.status, error_code(reply)) == (500, "internal")
