"""The hostile corpus (``hostile_corpus.py``) against a real server: every Socket.IO event
and every REST route of the OpenAPI document, fed wrong types, missing and extra fields,
huge and deeply nested values, NUL bytes, lone surrogates, injection and traversal
strings, unknown ids, another user's ids and bad tokens.

Each group runs on one server, as bob, while alice owns a session, messages and memories.
Every answer must be a clean refusal — an ack ``{ok: false, error: {code, message}}`` or a
JSON ``{error: {code, message}}`` with a 4xx — never ``internal``/5xx, never a traceback,
SQL, a server path, the secret or alice's data; afterwards alice's data is intact and the
server still serves: ``/healthz``, ``/readyz``, bob's socket and a fresh client's chat."""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import aiohttp
import pytest
import socketio
from yarl import URL

from memory import MemoryFilter
from memory.service import NewMemory
from personas import Actor
from socket_server.keys import CHAT
from tests.personas.factory import definition
from tests.socket_server import hostile_corpus as hc
from tests.socket_server.conftest import SECRET, Client, Server

ADMIN = Actor("admin", is_admin=True)
Connect = Callable[..., Awaitable[Client]]
ACK_TIMEOUT = 5.0
SETTINGS = {
    "rate_limit_per_minute": 100_000,
    "max_concurrent_turns": 1_000,
    "sessions_per_minute": 100_000,
    "shutdown_grace_s": 5.0,
}

PROTOCOL = Path(hc.REPO) / "docs" / "protocol.md"
SOCKET_GROUPS = (
    "wrong_types",
    "shapes",
    "hostile_strings",
    "huge",
    "unknown_ids",
    "other_user",
    "unknown_events",
)
REST_GROUPS = (
    "path_params",
    "query",
    "bodies",
    "raw_bodies",
    "other_user",
    "unknown_ids",
    "routing",
)


@dataclass
class Arena:
    """A server where alice chatted and remembers, and bob (the attacker) is connected."""

    server: Server
    world: hc.World
    alice: Client
    bob: Client
    http: aiohttp.ClientSession
    private: tuple[str, ...]
    """Alice's texts: none may reach bob."""

    async def bob_again(self, connect: Connect) -> Client:
        self.bob = await connect(self.server, user=hc.BOB)
        return self.bob


@pytest.fixture
async def arena(
    start_server: Callable[..., Awaitable[Server]], connect: Connect
) -> AsyncIterator[Arena]:
    server = await start_server(**SETTINGS)
    persona = await server.services.personas.create(definition("tutor"), ADMIN)
    tag = uuid.uuid4().hex[:8]
    said, remembered = f"{hc.SECRET_MARK}-message-{tag}", f"{hc.SECRET_MARK}-memory-{tag}"

    async def chat(user: str, text: str) -> tuple[Client, str, str]:
        client = await connect(server, user=user, name=user.title())
        started = await client.call("session.start", {"personas": ["tutor"]})
        assert started["ok"], started
        session = started["session"]["id"]
        sent = await client.call(
            "message.send", {"session_id": session, "text": text, "client_msg_id": uuid.uuid4().hex}
        )
        assert sent["ok"], sent
        await client.wait_for("persona.traits_updated")
        return client, session, sent["message"]["id"]

    async def remember(user: str, session: str, text: str) -> str:
        [record] = await server.services.memory.remember(
            [
                NewMemory(
                    persona_id=str(persona.id),
                    user_id=user,
                    session_id=session,
                    speaker_name=user.title(),
                    speaker_role="user",
                    text=text,
                    kind="fact",
                )
            ]
        )
        return str(record.id)

    alice, alice_session, alice_message = await chat(hc.ALICE, said)
    alice_memory = await remember(hc.ALICE, alice_session, remembered)
    bob, session, message = await chat(hc.BOB, "hello, I am bob")
    memory = await remember(hc.BOB, session, "bob likes chess")
    world = hc.World(
        persona="tutor",
        persona_id=str(persona.id),
        session=session,
        message=message,
        memory=memory,
        alice_session=alice_session,
        alice_message=alice_message,
        alice_memory=alice_memory,
    )
    async with aiohttp.ClientSession() as http:
        yield Arena(server, world, alice, bob, http, (said, remembered))


# ---- checks --------------------------------------------------------------------------------


def _ack_problems(case: hc.SocketCase, ack: Any, private: Sequence[str]) -> list[str]:
    where = case.key()[:160]
    if not isinstance(ack, dict) or not isinstance(ack.get("ok"), bool):
        return [f"{where}: ack is not {{ok, ...}}: {hc.dumps(ack)[:200]}"]
    text = hc.dumps(ack)
    problems = []
    if ack["ok"]:
        if not case.may_succeed:
            problems.append(f"{where}: accepted: {text[:200]}")
    else:
        error = ack.get("error")
        if (
            set(ack) != {"ok", "error"}
            or not isinstance(error, dict)
            or not isinstance(error.get("code"), str)
            or not isinstance(error.get("message"), str)
        ):
            problems.append(f"{where}: malformed error ack {text[:200]}")
        elif error["code"] == "internal":
            problems.append(f"{where}: internal error {error['message']!r}")
        elif case.codes is not None and error["code"] not in case.codes:
            problems.append(
                f"{where}: expected {sorted(case.codes)}, got "
                f"{error['code']}: {error['message'][:120]}"
            )
    leaked = hc.leaks(
        text, sent=hc.dumps(case.payload), secret=SECRET, private=private, error=not ack["ok"]
    )
    if leaked:
        problems.append(f"{where}: leaks {leaked}: {text[:200]}")
    return problems


def _events_problems(client: Client, arena: Arena) -> list[str]:
    """Server events bob received: none from alice's session, none with her texts, and
    no background turn failed with ``internal``."""
    problems = []
    for name, data in client.events:
        text = hc.dumps(data)
        if arena.world.alice_session in text:
            problems.append(f"bob got {name} of alice's session: {text[:200]}")
        if name in ("message.error", "ai_response") and "internal" in text:
            problems.append(f"bob's turn failed: {name} {text[:200]}")
        leaked = hc.leaks(text, sent="", secret=SECRET, private=arena.private, error=False)
        if leaked:
            problems.append(f"bob got {name} that leaks {leaked}: {text[:200]}")
    return problems


async def _alice_intact(arena: Arena) -> list[str]:
    """Alice's memory is still there, unpinned; her transcript holds no one else's words."""
    services, w = arena.server.services, arena.world
    page = await services.memory.list(
        MemoryFilter(persona_id=w.persona_id, user_id=hc.ALICE), limit=200
    )
    mine = {str(r.id): r for r in page.records}
    problems = []
    if w.alice_memory not in mine:
        problems.append("alice's memory was deleted")
    elif mine[w.alice_memory].pinned:
        problems.append("alice's memory was pinned by someone else")
    history = await arena.alice.call("session.history", {"session_id": w.alice_session})
    assert history["ok"], history
    strangers = [m for m in history["messages"] if m["role"] == "user" and m["speaker"] != "Alice"]
    if strangers:
        problems.append(f"alice's session has others' messages: {strangers[:2]}")
    return problems


async def _still_serves(arena: Arena, connect: Connect) -> list[str]:
    """Health and readiness answer, bob's socket still acks, a fresh client chats, and
    alice's next turn reaches her only."""
    problems = []
    server = arena.server
    for path in ("/healthz", "/readyz"):
        async with arena.http.get(server.url + path) as response:
            if response.status != 200:
                problems.append(f"{path} answered {response.status}: {await response.text()}")
    if not arena.bob.sio.connected:
        problems.append("bob's socket was closed")
    else:
        ack = await arena.bob.call("memory.list", {"persona": "tutor"})
        if not ack.get("ok"):
            problems.append(f"bob's socket no longer works: {ack}")
    carol = await connect(server, user="carol", name="Carol")
    started = await carol.call("session.start", {"personas": ["tutor"]})
    sent = await carol.call(
        "message.send",
        {
            "session_id": started["session"]["id"],
            "text": "Are you still there?",
            "client_msg_id": "carol-1",
        },
    )
    assert sent["ok"], sent
    done = await carol.wait_for("message.done")
    if done["message"]["text"] != server.model.reply:
        problems.append(f"a fresh client got {done['message']['text']!r}")
    before = len(arena.bob.events)
    again = await arena.alice.call(
        "message.send",
        {
            "session_id": arena.world.alice_session,
            "text": f"{arena.private[0]} again",
            "client_msg_id": uuid.uuid4().hex,
        },
    )
    assert again["ok"], again
    await arena.alice.wait_for(
        "message.done", lambda d: d["message"]["reply_to"] == again["message"]["id"]
    )
    await carol.call("memory.list", {"persona": "tutor"})  # a round trip after alice's turn
    for name, data in arena.bob.events[before:]:
        if arena.world.alice_session in hc.dumps(data):
            problems.append(f"bob received alice's {name}")
    return problems


async def _settle(arena: Arena) -> None:
    """Wait for the turns bob's accepted messages started (each within the time limit)."""
    pending = set(arena.server.app[CHAT]._tasks)
    if pending:
        await asyncio.wait(pending, timeout=30)


def _report(problems: list[str], total: int) -> None:
    assert not problems, f"{len(problems)} of {total} cases misbehaved:\n" + "\n".join(
        problems[:80]
    )


# ---- socket -----------------------------------------------------------------------------


async def _send(client: Client, case: hc.SocketCase) -> Any:
    if not case.send_payload:
        return await client.sio.call(case.event, namespace="/chat", timeout=ACK_TIMEOUT)
    data = (None,) if case.payload is None else case.payload
    return await client.sio.call(case.event, data, namespace="/chat", timeout=ACK_TIMEOUT)


@pytest.mark.parametrize("group", SOCKET_GROUPS)
async def test_socket_corpus(group: str, arena: Arena, connect: Connect) -> None:
    cases = hc.socket_corpus(arena.world)[group]
    problems: list[str] = []
    for case in cases:
        try:
            ack = await _send(arena.bob, case)
        except socketio.exceptions.TimeoutError:
            problems.append(f"{case.key()[:160]}: no ack within {ACK_TIMEOUT:g} s")
            continue
        problems += _ack_problems(case, ack, arena.private)
        if not arena.bob.sio.connected:
            problems.append(f"{case.key()[:160]}: closed the connection")
            await arena.bob_again(connect)
    await _settle(arena)
    problems += _events_problems(arena.bob, arena)
    problems += await _alice_intact(arena)
    problems += await _still_serves(arena, connect)
    _report(problems, len(cases))


async def test_socket_raw_packets(arena: Arena, connect: Connect) -> None:
    """Packets no client library makes (10,000-deep JSON, bad ids, unknown types and
    namespaces, missing attachments): the socket that sent one still works (binary ones
    excepted: the library waits for their attachments), and so does everyone else."""
    problems: list[str] = []
    for raw in hc.RAW_PACKETS + hc.RAW_BINARY_PACKETS:
        client = await connect(arena.server, user=hc.BOB)
        await client.sio.eio.send(raw)
        if raw in hc.RAW_PACKETS:
            try:
                ack = await client.call("memory.list", {"persona": "tutor"}, timeout=ACK_TIMEOUT)
            except socketio.exceptions.TimeoutError:
                problems.append(f"{raw[:60]!r}: the socket stopped answering")
                continue
            if not ack.get("ok"):
                problems.append(f"{raw[:60]!r}: then {ack}")
        await client.sio.disconnect()
    problems += await _still_serves(arena, connect)
    _report(problems, len(hc.RAW_PACKETS) + len(hc.RAW_BINARY_PACKETS))


async def test_socket_megabyte_message_closes_only_its_socket(
    arena: Arena, connect: Connect
) -> None:
    """A 1 MB message is over the advertised Engine.IO ``maxPayload`` (256 KiB): the server
    drops that socket (it cannot ack what it does not read) and nothing else."""
    client = await connect(arena.server, user=hc.BOB)
    gone = asyncio.Event()
    client.sio.on("disconnect", lambda *_: gone.set(), namespace="/chat")
    payload = {
        "session_id": arena.world.session,
        "text": "m" * hc.MEGABYTE,
        "client_msg_id": "megabyte",
    }
    try:
        ack = await client.sio.call("message.send", payload, namespace="/chat", timeout=5)
    except socketio.exceptions.SocketIOError:
        ack = None
    if ack is not None:
        assert ack["ok"] is False and ack["error"]["code"] in ("text_too_long", "invalid_payload")
    else:
        async with asyncio.timeout(10):
            await gone.wait()
    problems = await _still_serves(arena, connect)
    history = await arena.bob.call("session.history", {"session_id": arena.world.session})
    assert all(len(m["text"]) < hc.MEGABYTE for m in history["messages"])
    _report(problems, 1)


async def _refusal(
    server: Server, *, auth: Any = None, headers: dict[str, str] | None = None, query: str = ""
) -> Any:
    """What the server said when refusing a connection (``"accepted"`` if it did not)."""
    sio = socketio.AsyncClient(reconnection=False)
    said: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def on_error(data: Any = None) -> None:
        if not said.done():
            said.set_result(data)

    sio.on("connect_error", on_error, namespace="/chat")
    try:
        await sio.connect(
            server.url + query,
            namespaces=["/chat"],
            auth=auth,
            headers=headers or {},
            transports=["websocket"],
            wait_timeout=5,
        )
    except socketio.exceptions.ConnectionError:
        async with asyncio.timeout(5):
            return await said
    finally:
        if sio.connected:
            await sio.disconnect()
    return "accepted"


async def test_socket_auth(arena: Arena) -> None:
    """Missing, expired, forged, unsigned and wrongly-claimed tokens, and good tokens in
    places the server does not read them, are refused with ``unauthorized``."""
    server = arena.server
    valid = server.token(hc.BOB)
    attempts: dict[str, dict[str, Any]] = {
        f"token {name}": {"auth": {"token": token}} for name, token in hc.bad_tokens(SECRET).items()
    }
    attempts |= {
        "no auth": {},
        "empty auth": {"auth": {}},
        "token null": {"auth": {"token": None}},
        "token number": {"auth": {"token": 12345}},
        "token list": {"auth": {"token": [valid]}},
        "token object": {"auth": {"token": {"token": valid}}},
        "token empty": {"auth": {"token": ""}},
        "token in name": {"auth": {"name": valid}},
        "token under another key": {"auth": {"Authorization": f"Bearer {valid}"}},
        "token as the auth value": {"auth": valid},
        "token in the query string": {"query": f"?token={valid}"},
        "access_token in the query string": {"query": f"?access_token={valid}"},
        "token in a cookie": {"headers": {"Cookie": f"token={valid}"}},
        "token in X-Auth-Token": {"headers": {"X-Auth-Token": valid}},
        "header without scheme": {"headers": {"Authorization": valid}},
        "header Token scheme": {"headers": {"Authorization": f"Token {valid}"}},
        "header Basic": {"headers": {"Authorization": f"Basic {valid}"}},
        "header Bearer empty": {"headers": {"Authorization": "Bearer "}},
        "header forged": {
            "headers": {"Authorization": "Bearer " + hc.bad_tokens(SECRET)["forged_admin"]}
        },
    }
    problems = []
    for name, how in attempts.items():
        said = await _refusal(server, **how)
        text = hc.dumps(said)
        if not (isinstance(said, dict) and said.get("data", {}).get("code") == "unauthorized"):
            problems.append(f"{name}: {text[:200]}")
        leaked = hc.leaks(text, sent="", secret=SECRET, private=arena.private, error=True)
        if leaked:
            problems.append(f"{name}: refusal leaks {leaked}")
    problems += await _still_serves(arena, lambda *a, **k: _connect_plain(*a, **k))
    _report(problems, len(attempts))


async def _connect_plain(server: Server, user: str, name: str | None = None) -> Client:
    sio = socketio.AsyncClient(reconnection=False)
    client = Client(sio)

    async def catch_all(event: str, *args: Any) -> None:
        await client.record(event, args[0] if args else None)

    sio.on("*", catch_all, namespace="/chat")
    await sio.connect(
        server.url,
        namespaces=["/chat"],
        transports=["websocket"],
        auth={"token": server.token(user), "name": name or user},
        wait_timeout=10,
    )
    return client


# ---- REST -------------------------------------------------------------------------------


async def _document(arena: Arena) -> dict[str, Any]:
    async with arena.http.get(arena.server.url + "/api/openapi.json") as response:
        assert response.status == 200
        document: dict[str, Any] = await response.json()
    return document


async def _request(arena: Arena, case: hc.RestCase) -> tuple[int, str, bytes]:
    headers = dict(case.headers)
    if case.user is not None:
        headers["Authorization"] = f"Bearer {arena.server.token(case.user, case.role)}"
    skip: tuple[str, ...] = ()
    if case.body is not None:
        if case.content_type is None:
            skip = ("Content-Type",)
        else:
            headers["Content-Type"] = case.content_type
    async with arena.http.request(
        case.method,
        URL(arena.server.url + case.path, encoded=True),
        headers=headers,
        data=io.BytesIO(case.body) if case.body is not None else None,
        skip_auto_headers=skip,
        allow_redirects=False,
    ) as response:
        return response.status, response.content_type, await response.read()


def _response_problems(
    case: hc.RestCase, status: int, content_type: str, raw: bytes, private: Sequence[str]
) -> list[str]:
    where = case.label()
    text = raw.decode("utf-8", "replace")
    problems = []
    ok = 200 <= status < 300
    if status >= 500:
        problems.append(f"{where}: {status} {text[:200]}")
    elif ok and not case.may_succeed:
        problems.append(f"{where}: accepted with {status}: {text[:160]}")
    elif not ok and case.statuses is not None and status not in case.statuses:
        problems.append(f"{where}: expected {sorted(case.statuses)}, got {status} {text[:160]}")
    elif not ok and not 400 <= status < 500:
        problems.append(f"{where}: answered {status}")
    if not ok and case.json_errors:
        try:
            body = json.loads(raw)
            error = body["error"]
            assert set(body) == {"error"}
            assert isinstance(error["code"], str) and isinstance(error["message"], str)
            if error["code"] == "internal" and status < 500:
                problems.append(f"{where}: internal {error['message']!r}")
        except (ValueError, KeyError, TypeError, AssertionError):
            problems.append(
                f"{where}: error is not JSON {{error: {{code, message}}}}: "
                f"{content_type} {text[:160]}"
            )
    sent = unquote(case.path) + (case.body or b"").decode("utf-8", "replace")
    leaked = hc.leaks(text, sent=sent, secret=SECRET, private=private, error=not ok)
    if leaked:
        problems.append(f"{where}: leaks {leaked}: {text[:200]}")
    return problems


@pytest.mark.parametrize("group", REST_GROUPS)
async def test_rest_corpus(group: str, arena: Arena, connect: Connect) -> None:
    cases = hc.rest_corpus(await _document(arena), arena.world)[group]
    problems: list[str] = []
    for case in cases:
        status, content_type, raw = await _request(arena, case)
        problems += _response_problems(case, status, content_type, raw, arena.private)
    await _settle(arena)
    problems += await _alice_intact(arena)
    problems += await _still_serves(arena, connect)
    _report(problems, len(cases))


async def test_rest_auth(arena: Arena, connect: Connect) -> None:
    """Every route (/api and /v1) but the OpenAPI document refuses a missing token with
    401; bad tokens and good tokens in the wrong place are refused on a user route, an
    admin route and the OpenAI-compatible API."""
    document = await _document(arena)
    ops = hc.operations(document)
    valid = arena.server.token(hc.BOB)
    cases: list[hc.RestCase] = []
    unauthorized = frozenset({401})
    for op in ops:
        public = op.path == "/api/openapi.json"
        body = hc._body_base(op, arena.world)
        cases.append(
            hc.RestCase(
                "auth",
                op.method,
                hc._path(op, arena.world),
                json.dumps(body).encode() if body is not None else None,
                user=None,
                statuses=None if public else unauthorized,
                may_succeed=public,
            )
        )
    places = {
        "query token": ({}, f"?token={valid}"),
        "query access_token": ({}, f"?access_token={valid}"),
        "cookie": ({"Cookie": f"token={valid}"}, ""),
        "X-Auth-Token": ({"X-Auth-Token": valid}, ""),
        "no scheme": ({"Authorization": valid}, ""),
        "Token scheme": ({"Authorization": f"Token {valid}"}, ""),
        "Basic": ({"Authorization": f"Basic {valid}"}, ""),
        "Bearer empty": ({"Authorization": "Bearer"}, ""),
        "Bearer twice": ({"Authorization": f"Bearer {valid} {valid}"}, ""),
        "Bearer suffix": ({"Authorization": f"Bearer {valid}x"}, ""),
    }
    places |= {
        f"token {name}": ({"Authorization": f"Bearer {token}"}, "")
        for name, token in hc.bad_tokens(SECRET).items()
        if "\x00" not in token
    }
    create = json.dumps(
        hc._body_base(
            next(op for op in ops if op.method == "POST" and op.path == "/api/personas"),
            arena.world,
        )
    ).encode()
    for headers, query in places.values():
        cases.append(
            hc.RestCase(
                "auth",
                "GET",
                "/v1/models" + query,
                user=None,
                headers=headers,
                statuses=unauthorized,
            )
        )
        cases.append(
            hc.RestCase(
                "auth",
                "GET",
                "/api/sessions" + query,
                user=None,
                headers=headers,
                statuses=unauthorized,
            )
        )
        cases.append(
            hc.RestCase(
                "auth",
                "POST",
                "/api/personas" + query,
                create,
                user=None,
                headers=headers,
                statuses=unauthorized,
            )
        )
    problems: list[str] = []
    for case in cases:
        status, content_type, raw = await _request(arena, case)
        problems += _response_problems(case, status, content_type, raw, arena.private)
    problems += await _still_serves(arena, connect)
    _report(problems, len(cases))


# ---- the corpus itself ------------------------------------------------------------------


async def test_corpus_covers_every_route_and_event_with_at_least_200_payloads(
    arena: Arena,
) -> None:
    document = await _document(arena)
    routed = {
        (r.method, r.resource.canonical)
        for r in arena.server.app.router.routes()
        if r.resource is not None and r.resource.canonical.startswith("/api/")
    }
    documented = {(op.method, op.path) for op in hc.operations(document)}
    assert routed - {("HEAD", path) for _, path in routed} <= documented
    calls = PROTOCOL.read_text().split("## Calls and acknowledgements")[1].split("###")[0]
    documented_events = {
        line.split("`")[1] for line in calls.splitlines() if line.startswith("| `")
    }
    assert documented_events == set(hc.EVENTS), documented_events ^ set(hc.EVENTS)
    socket = {c.key() for cases in hc.socket_corpus(arena.world).values() for c in cases}
    rest = {c.key() for cases in hc.rest_corpus(document, arena.world).values() for c in cases}
    raw = set(hc.RAW_PACKETS + hc.RAW_BINARY_PACKETS)
    tokens = set(hc.bad_tokens(SECRET))
    total = len(socket) + len(rest) + len(raw) + len(tokens)
    print(
        f"hostile corpus: {len(socket)} socket, {len(rest)} REST, {len(raw)} raw packets, "
        f"{len(tokens)} bad tokens: {total} distinct payloads"
    )
    assert total >= 200
    assert {c.event for cases in hc.socket_corpus(arena.world).values() for c in cases} >= set(
        hc.EVENTS
    )
