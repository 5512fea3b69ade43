"""The OpenAPI document against a real server: every route it documents (``/api`` and
``/v1``) is called, and every answer's status and body are checked against what the
document says of that status (``jsonschema``, Draft 2020-12). Documented errors are
provoked too: 401, 400, 413 and 404 for every route that documents them, 403 and 409
by hand. The walk fails when a route of the router or the document goes uncalled, or
when a documented status is never seen (but the few listed in ``NOT_PROVOKED``)."""

from __future__ import annotations

import io
import json
import re
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp

from personas import Actor
from personas.templates import TEMPLATES
from runtime.infra.auth import Principal
from socket_server.keys import CHAT
from tests.personas.factory import definition
from tests.socket_server.conftest import Server
from tests.socket_server.openapi_check import check_answer
from tests.socket_server.test_rest import Api, Reply, chat_turn, eventually
from tests.socket_server.test_studio import ESSAY, LETTER

ADMIN = Actor("admin", is_admin=True)
Op = tuple[str, str]  # (path as documented, method in lower case)

NOT_PROVOKED: dict[Op, dict[int, str]] = {
    ("/v1/chat/completions", "post"): {
        429: "rate limits: tests/socket_server/test_nodes_auth_limits.py",
        502: "a broken model stream: tests/socket_server/test_turn_failures.py",
        503: "an unavailable model: tests/socket_server/test_openai_api.py",
        504: "a model slower than its timeout",
    },
}
"""Documented statuses this walk does not provoke (besides 500, which no route can be
made to answer without breaking the server: test_rest.py provokes one), and why."""

_PARAM = re.compile(r"\{(\w+)\}")
_UNKNOWN = {
    "key": "nobody",
    "model": "persona/nobody",
    "version": "999999",
    "session_id": "00000000-0000-4000-8000-000000000000",
    "message_id": "00000000-0000-4000-8000-000000000000",
    "memory_id": "00000000-0000-4000-8000-000000000000",
}
"""Path parameters that name nothing: the route answers 404."""
_NO_BODY = object()


@dataclass(frozen=True)
class Sample:
    """A call a route answered with success, replayed to provoke its errors."""

    user: str | None
    role: str
    params: dict[str, str]
    query: str
    body: Any
    headers: dict[str, str]


@dataclass
class Walk:
    api: Api
    doc: dict[str, Any]
    seen: dict[Op, set[int]] = field(default_factory=lambda: defaultdict(set))
    samples: dict[Op, Sample] = field(default_factory=dict)

    def success(self, op: Op) -> int:
        responses = self.doc["paths"][op[0]][op[1]]["responses"]
        return min(int(s) for s in responses if s.startswith("2"))

    async def call(
        self,
        method: str,
        path: str,
        *,
        expect: int | None = None,
        user: str | None = "alice",
        role: str = "user",
        query: str = "",
        body: Any = _NO_BODY,
        data: Any = None,
        headers: dict[str, str] | None = None,
        **params: str,
    ) -> Reply:
        """Call the documented route ``method path`` and check the answer: the status is
        ``expect`` (default: the documented success) and the body is as documented."""
        op = (path, method.lower())
        assert path in self.doc["paths"] and op[1] in self.doc["paths"][path], op
        expect = expect if expect is not None else self.success(op)
        url = _PARAM.sub(lambda m: quote(params[m[1]], safe="/"), path)
        if query:
            url += "?" + query
        kw: dict[str, Any] = {"headers": dict(headers or {})}
        if body is not _NO_BODY:
            kw["json_body"] = body
        elif data is not None:
            kw["data"] = data
            kw["headers"].setdefault("Content-Type", "application/json")
        reply = await self.api(method, url, user=user, role=role, **kw)
        assert reply.status == expect, (method, url, reply.status, reply.body)
        media = reply.headers.get("Content-Type", "").split(";")[0] or "application/json"
        problems = check_answer(self.doc, path, method, reply.status, reply.body, media)
        assert not problems, (method, url, reply.status, problems, reply.body)
        self.seen[op].add(reply.status)
        if 200 <= reply.status < 300 and op not in self.samples:
            self.samples[op] = Sample(user, role, dict(params), query, body, dict(headers or {}))
        return reply

    async def replay(self, op: Op, sample: Sample, expect: int, **change: Any) -> Reply:
        fields: dict[str, Any] = {
            "user": sample.user,
            "role": sample.role,
            "query": sample.query,
            "body": sample.body,
            "headers": sample.headers,
            **sample.params,
        }
        fields.update(change)
        return await self.call(op[1].upper(), op[0], expect=expect, **fields)

    async def provoke_errors(self) -> None:
        """401, 400, 413 and 404 for every route that documents them."""
        for op, sample in self.samples.items():
            documented = self.doc["paths"][op[0]][op[1]]["responses"]
            if "401" in documented:
                await self.replay(op, sample, 401, user=None)
            if "400" in documented:
                await self.replay(op, sample, 400, **_malformed(op, sample))
            if "413" in documented:
                huge = json.dumps({"x": "y" * (1024 * 1024 + 1)}).encode()
                await self.replay(op, sample, 413, body=_NO_BODY, data=io.BytesIO(huge))
            unknown = {k: _UNKNOWN[k] for k in sample.params if k in _UNKNOWN}
            if "404" in documented and unknown:
                await self.replay(op, sample, 404, **unknown)


def _malformed(op: Op, sample: Sample) -> dict[str, Any]:
    """A change to a good call that makes it a bad request."""
    if "key" in sample.params:
        return {"key": "k" * 101}
    for name in ("session_id", "message_id", "memory_id"):
        if name in sample.params:
            return {name: "not-a-uuid"}
    if sample.body is not _NO_BODY:
        return {"body": ["not", "an", "object"]}
    return {"query": "&".join(q for q in (sample.query, "bogus=1") if q)}


def documented_ops(doc: dict[str, Any]) -> set[Op]:
    return {(path, method) for path, ops in doc["paths"].items() for method in ops}


def routed_ops(server: Server) -> set[Op]:
    return {
        (route.resource.canonical, route.method.lower())
        for route in server.app.router.routes()
        if route.resource is not None
        and route.resource.canonical.startswith(("/api/", "/v1/"))
        and route.method != "HEAD"
    }


async def test_every_route_answers_as_documented(server: Server) -> None:
    store = server.services.personas
    await store.create(definition("tutor"), ADMIN)
    await store.create(definition("doomed"), ADMIN)
    session_id = await chat_turn(server, "alice", "Hi, I am Alice and I love astronomy.")
    chat = server.app[CHAT]
    alice = Principal("alice", "user")
    reply_id = str((await chat.history(alice, session_id, before=None, limit=10)).items[-1].id)
    memory_id = str((await chat.list_memories(alice, "tutor")).records[0].id)
    sid = str(session_id)

    async with aiohttp.ClientSession() as http:
        api = Api(server, http)
        doc = (await api("GET", "/api/openapi.json", user=None)).body
        w = Walk(api, doc)
        admin = {"user": "root", "role": "admin"}
        bob = {"user": "bob"}
        await w.call("GET", "/api/openapi.json", user=None)

        # personas
        await w.call("GET", "/api/personas")
        await w.call("GET", "/api/personas", query="q=photosynthesis")
        fresh = definition("fresh").model_dump(mode="json")
        await w.call("POST", "/api/personas", body=fresh, **admin)
        await w.call("POST", "/api/personas", body=fresh, expect=409, **admin)
        await w.call("POST", "/api/personas", body=fresh, expect=403)
        await w.call("GET", "/api/personas/{key}", key="tutor")
        await w.call("GET", "/api/personas/search", query="q=biology")
        await w.call("GET", "/api/personas/{key}/embed", key="tutor")
        await w.call("GET", "/api/personas/{key}/traits", key="tutor")
        await w.call("GET", "/api/personas/{key}/traits", key="tutor", query=f"session_id={sid}")
        await w.call(
            "GET",
            "/api/personas/{key}/traits",
            key="tutor",
            query=f"session_id={sid}",
            expect=403,
            **bob,
        )
        settings = {"style": {"temperature": 0.8}}
        await w.call("PATCH", "/api/personas/{key}/settings", key="tutor", body=settings, **admin)
        await w.call(
            "PATCH", "/api/personas/{key}/settings", key="tutor", body=settings, expect=403
        )
        await w.call("GET", "/api/personas/{key}/versions", key="tutor", **admin)  # snapshots
        await w.call("GET", "/api/personas/{key}/versions", key="tutor")  # none
        await w.call("DELETE", "/api/personas/{key}", key="doomed", **admin)
        await w.call("DELETE", "/api/personas/{key}", key="tutor", expect=403)

        # the studio
        samples = {"samples": [ESSAY, LETTER], "channel": "blog"}
        made = await w.call("POST", "/api/personas/generate", body=samples, **admin)
        await w.call("POST", "/api/personas/generate", body=samples, expect=403)
        drafted = made.body["persona"]["slug"]
        await w.call("GET", "/api/personas/{key}/analyses", key=drafted)
        tutor = definition("tutor", role="Guide").model_dump(mode="json")
        await w.call("PUT", "/api/personas/{key}", key="tutor", body=tutor, **admin)
        await w.call("PUT", "/api/personas/{key}", key="tutor", body=tutor, expect=403)
        edit = {"description": "A tutor who asks before telling."}
        await w.call("PATCH", "/api/personas/{key}", key="tutor", body=edit, **admin)
        await w.call("PATCH", "/api/personas/{key}", key="tutor", body=edit, expect=403)
        version = {"key": "tutor", "version": "1"}
        await w.call("GET", "/api/personas/{key}/versions/{version}", **version, **admin)
        await w.call("GET", "/api/personas/{key}/versions/{version}", **version, expect=403)
        await w.call("GET", "/api/personas/{key}/diff", key="tutor", query="from=1", **admin)
        await w.call("GET", "/api/personas/{key}/diff", key="tutor", query="from=1", expect=403)
        restore = "/api/personas/{key}/versions/{version}/restore"
        await w.call("POST", restore, **version, **admin)
        await w.call("POST", restore, **version, expect=403)
        await w.call("GET", "/api/personas/{key}/channels", key="tutor")
        channel = {"key": "tutor", "channel": "newsletter"}
        overlay = {"min_words": 50, "max_words": 300, "tone": "warm"}
        path = "/api/personas/{key}/channels/{channel}"
        await w.call("PUT", path, **channel, body=overlay, **admin)
        await w.call("PUT", path, **channel, body=overlay, expect=403)
        await w.call("DELETE", path, **channel, expect=403)
        await w.call("DELETE", path, **channel, **admin)
        await w.call("GET", "/api/personas/templates")
        template = {"key": "tutor", "template": next(iter(TEMPLATES))}
        await w.call("POST", "/api/personas/{key}/templates/{template}", **template, **admin)
        await w.call("POST", "/api/personas/{key}/templates/{template}", **template, expect=403)
        for part in ("quality", "analytics"):
            await w.call("GET", f"/api/personas/{{key}}/{part}", key="tutor", **admin)
            await w.call("GET", f"/api/personas/{{key}}/{part}", key="tutor", expect=403)

        # sessions, feedback, memories
        await w.call("GET", "/api/sessions")
        await w.call("GET", "/api/sessions", query="user=bob", expect=403)
        messages = "/api/sessions/{session_id}/messages"
        await w.call("GET", messages, session_id=sid)
        await w.call("GET", messages, session_id=sid, expect=403, **bob)
        rating = {"rating": -1, "reason": "too_long", "comment": "shorter, please"}
        feedback = "/api/messages/{message_id}/feedback"
        await w.call("POST", feedback, message_id=reply_id, body=rating)
        await w.call("POST", feedback, message_id=reply_id, body=rating, expect=403, **bob)
        await w.call("GET", "/api/feedback")
        await w.call("GET", "/api/feedback", query="user=bob", expect=403)
        await w.call("GET", "/api/feedback", query="persona=nobody", expect=404)
        session_channel = "/api/sessions/{session_id}/channel"
        await w.call("PUT", session_channel, session_id=sid, body={"channel": "blog"})
        await w.call(
            "PUT", session_channel, session_id=sid, body={"channel": None}, expect=403, **bob
        )
        memories = "/api/personas/{key}/memories"
        await w.call("GET", memories, key="tutor")
        await w.call("GET", memories, key="tutor", query="q=astronomy")
        await w.call("GET", memories, key="tutor", query="user=bob", expect=403)
        memory = {"key": "tutor", "memory_id": memory_id}
        pin = memories + "/{memory_id}/pin"
        await w.call("POST", pin, **memory, body={"pinned": True})
        await w.call("POST", pin, **memory, query="user=bob", body={"pinned": True}, expect=403)
        await w.call("DELETE", memories + "/{memory_id}", **memory, query="user=bob", expect=403)
        await w.call("DELETE", memories + "/{memory_id}", **memory)
        facts = "/api/personas/{key}/facts"
        tutor = await store.get("tutor")

        async def consolidated() -> list[Any]:
            return await server.services.facts.current(tutor.id, "alice")

        (fact,) = await eventually(consolidated)  # "Alice loves astronomy."
        await w.call("GET", facts, key="tutor")
        await w.call("GET", facts, key="tutor", query="user=alice", expect=403, **bob)
        ref = {"key": "tutor", "fact_id": str(fact.id)}
        fix = {"text": "Alice loves birdwatching."}
        await w.call(
            "POST",
            facts + "/{fact_id}/correct",
            **ref,
            query="user=alice",
            body=fix,
            expect=403,
            **bob,
        )
        await w.call("POST", facts + "/{fact_id}/correct", **ref, body=fix)
        await w.call("POST", facts + "/{fact_id}/correct", **ref, body=fix, expect=409)
        await w.call("DELETE", facts + "/{fact_id}", **ref, query="user=alice", expect=403, **bob)
        await w.call("DELETE", facts + "/{fact_id}", **ref)
        await w.call("DELETE", facts + "/{fact_id}", **ref, expect=404)

        # the OpenAI-compatible API
        await w.call("GET", "/v1/models")
        await w.call("GET", "/v1/models/{model}", model="persona/tutor")
        ask = {"model": "persona/tutor", "messages": [{"role": "user", "content": "Hello"}]}
        await w.call("POST", "/v1/chat/completions", body=ask)
        streamed = {**ask, "stream": True, "stream_options": {"include_usage": True}}
        await w.call("POST", "/v1/chat/completions", body=streamed)
        await w.call(
            "POST", "/v1/chat/completions", body={**ask, "model": "persona/nobody"}, expect=404
        )
        theirs = {"X-Personae-Session": sid}
        await w.call("POST", "/v1/chat/completions", body=ask, headers=theirs, expect=403, **bob)

        await w.provoke_errors()

    documented = documented_ops(doc)
    assert routed_ops(server) == documented, "the router and the document differ"
    assert not documented - set(w.samples), f"never answered: {sorted(documented - set(w.samples))}"
    for op in sorted(documented):
        statuses = {int(s) for s in doc["paths"][op[0]][op[1]]["responses"]}
        unseen = statuses - w.seen[op] - {500} - set(NOT_PROVOKED.get(op, {}))
        assert not unseen, f"{op}: documented {sorted(unseen)} never answered"


async def test_the_document_is_whole(server: Server) -> None:
    async with aiohttp.ClientSession() as http:
        doc = (await Api(server, http)("GET", "/api/openapi.json", user=None)).body
    assert doc["openapi"].startswith("3.1")
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert doc["paths"]["/api/openapi.json"]["get"]["security"] == []
    assert {"/v1/models", "/v1/models/{model}", "/v1/chat/completions"} <= set(doc["paths"])
    ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            declared = {p["name"] for p in op.get("parameters", ()) if p["in"] == "path"}
            assert declared == set(_PARAM.findall(path)), (method, path)
            assert "500" in op["responses"], (method, path)
            error = op["responses"]["500"]["content"]["application/json"]["schema"]["$ref"]
            assert error.endswith("/OpenAIErrorBody" if path.startswith("/v1/") else "/ErrorBody")
    for ref in re.findall(r'"\$ref": "([^"]+)"', json.dumps(doc)):
        assert ref.removeprefix("#/components/schemas/") in doc["components"]["schemas"], ref
    body = doc["paths"]["/api/personas"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"]["$ref"].endswith("/PersonaDef")
    persona = doc["components"]["schemas"]["PersonaView"]
    assert persona["additionalProperties"] is False and "updated_at" in persona["required"]
    assert "system_prompt" not in persona["properties"]


async def test_an_answer_unlike_its_schema_is_caught(server: Server) -> None:
    """The checks above can fail: a body missing a field, or with one too many, breaks
    the schema; a status the route does not document is refused."""
    async with aiohttp.ClientSession() as http:
        doc = (await Api(server, http)("GET", "/api/openapi.json", user=None)).body
    path, media = "/api/personas/{key}/embed", "application/json"
    good = {"persona_id": str(uuid.uuid4()), "model": "m", "dim": 1, "vector": [0.5]}
    assert not check_answer(doc, path, "get", 200, good, media)
    assert check_answer(doc, path, "get", 200, {**good, "extra": 1}, media)
    assert check_answer(doc, path, "get", 200, {k: v for k, v in good.items() if k != "dim"}, media)
    assert check_answer(doc, path, "get", 200, {**good, "persona_id": "not-a-uuid"}, media)
    try:
        check_answer(doc, path, "get", 409, {"error": {"code": "x", "message": "y"}}, media)
    except AssertionError as exc:
        assert "409 not documented" in str(exc)
    else:
        raise AssertionError("an undocumented status passed")
