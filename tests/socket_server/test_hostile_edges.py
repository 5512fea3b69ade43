"""The hostile corpus at the edges before any event handler: foreign ``Origin`` headers
on Socket.IO and REST, display names that would break storage or forge prompt lines,
expired tokens on a live socket, malformed frames, slow and abandoned request bodies,
and what responses and logs give away."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
import socketio

from agents.types import NullEvents
from personas import Actor
from socket_server.keys import CHAT, METRICS, SIO
from tests.personas.factory import definition
from tests.socket_server import hostile_corpus as hc
from tests.socket_server.conftest import Client, Server

ADMIN = Actor("admin", is_admin=True)
Start = Callable[..., Awaitable[Server]]
Connect = Callable[..., Awaitable[Client]]


async def _socket(server: Server, **how: Any) -> socketio.AsyncClient:
    sio = socketio.AsyncClient(reconnection=False)
    await sio.connect(
        server.url, namespaces=["/chat"], transports=["websocket"], wait_timeout=5, **how
    )
    return sio


async def _refused_socket(server: Server, **how: Any) -> bool:
    sio = socketio.AsyncClient(reconnection=False)
    try:
        await sio.connect(
            server.url, namespaces=["/chat"], transports=["websocket"], wait_timeout=5, **how
        )
    except socketio.exceptions.ConnectionError:
        return True
    finally:
        await sio.disconnect()
    return False


# ---- origins ----------------------------------------------------------------------------


async def test_a_foreign_page_cannot_open_a_socket_or_change_anything(
    start_server: Start, connect: Connect
) -> None:
    """With no secret (every client is the local admin), a page of another site must not
    reach the transcripts: its WebSocket and polling handshakes and its state-changing
    REST calls are refused, and REST answers carry no CORS header for it."""
    server = await start_server(auth_secret=None)
    await server.services.personas.create(definition("tutor"), ADMIN)
    owner = await connect(server)
    session = (await owner.call("session.start", {"personas": ["tutor"]}))["session"]["id"]
    sent = await owner.call(
        "message.send", {"session_id": session, "text": "private words", "client_msg_id": "p1"}
    )
    await owner.wait_for("message.done")
    problems = []
    async with aiohttp.ClientSession() as http:
        for origin in hc.foreign_origins(server.url):
            if not await _refused_socket(server, headers={"Origin": origin}):
                problems.append(f"websocket from {origin!r} accepted")
            async with http.get(
                server.url + "/socket.io/?EIO=4&transport=polling", headers={"Origin": origin}
            ) as response:
                if response.status != 403:
                    problems.append(f"polling from {origin!r}: {response.status}")
            async with http.post(
                f"{server.url}/api/messages/{sent['message']['id']}/feedback",
                json={"rating": -1},
                headers={"Origin": origin},
            ) as response:
                if response.status != 403:
                    problems.append(f"POST from {origin!r}: {response.status}")
                elif (await response.json())["error"]["code"] != "forbidden":
                    problems.append(f"POST from {origin!r}: not a forbidden error")
            async with http.get(
                f"{server.url}/api/sessions/{session}/messages", headers={"Origin": origin}
            ) as response:
                if "Access-Control-Allow-Origin" in response.headers:
                    problems.append(f"GET from {origin!r} allowed by CORS")
        assert not problems, problems
        refused = server.app[METRICS].registry.get_sample_value("personae_origins_refused_total")
        assert refused is not None and refused >= 3 * len(hc.foreign_origins(server.url))
        # the server's own page, and programs that send no Origin, are served as before
        own = await _socket(server, headers={"Origin": server.url})
        history = await own.call(
            "session.history", {"session_id": session}, namespace="/chat", timeout=5
        )
        assert history["ok"] and history["messages"][0]["text"] == "private words"
        await own.disconnect()
        async with http.post(
            f"{server.url}/api/messages/{sent['message']['id']}/feedback",
            json={"rating": 1},
            headers={"Origin": server.url},
        ) as response:
            assert response.status == 200, await response.text()


async def test_allowed_origins_may_connect_and_call_the_api_with_cors(
    start_server: Start,
) -> None:
    server = await start_server(allowed_origins="https://app.example, http://localhost:5173/")
    token = server.token("uma")
    for origin in ("https://app.example", "http://localhost:5173", "HTTPS://APP.EXAMPLE"):
        sio = await _socket(server, headers={"Origin": origin}, auth={"token": token})
        await sio.disconnect()
    assert await _refused_socket(
        server, headers={"Origin": "https://other.example"}, auth={"token": token}
    )
    async with aiohttp.ClientSession() as http:
        async with http.options(
            server.url + "/api/sessions",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization",
            },
        ) as response:
            assert response.status == 204
            assert response.headers["Access-Control-Allow-Origin"] == "https://app.example"
            assert "authorization" in response.headers["Access-Control-Allow-Headers"].lower()
        async with http.get(
            server.url + "/api/sessions",
            headers={"Origin": "https://app.example", "Authorization": f"Bearer {token}"},
        ) as response:
            assert response.status == 200
            assert response.headers["Access-Control-Allow-Origin"] == "https://app.example"


def test_allowed_origins_must_be_origins(no_personae_env: None) -> None:
    from runtime.errors import SettingsError
    from runtime.settings import load_settings

    for bad in ("evil.example", "https://app.example/path", "javascript:alert(1)", "*"):
        with pytest.raises(SettingsError, match="PERSONAE_ALLOWED_ORIGINS"):
            load_settings(allowed_origins=bad)
    ok = load_settings(allowed_origins=" https://a.example ,http://[::1]:8080/")
    assert ok.origins == {"https://a.example", "http://[::1]:8080"}


async def test_a_rebound_name_reaches_nothing_without_a_secret(
    start_server: Start, connect: Connect
) -> None:
    """DNS rebinding: a page of ``evil.example`` whose name now points at the server is
    same-origin with it, and its ``GET`` carries no ``Origin``. With no secret, requests
    addressed to a name other than localhost, an IP address or an allowed host are
    refused, whatever their ``Origin``; the allowed names and addresses are served."""
    server = await start_server(auth_secret=None, allowed_hosts="personae.internal")
    await server.services.personas.create(definition("tutor"), ADMIN)
    owner = await connect(server)
    session = (await owner.call("session.start", {"personas": ["tutor"]}))["session"]["id"]
    await owner.call(
        "message.send", {"session_id": session, "text": "private words", "client_msg_id": "p1"}
    )
    await owner.wait_for("message.done")
    port = server.url.rsplit(":", 1)[1]
    problems = []
    async with aiohttp.ClientSession() as http:
        for host in (
            "evil.example",
            f"evil.example:{port}",
            "127.0.0.1.evil.example",
            "localhost.evil.example",
            "personae.internal.evil.example",
        ):
            headers = {"Host": host, "Origin": f"http://{host}"}
            for how in ({}, headers):
                async with http.get(
                    f"{server.url}/api/sessions/{session}/messages",
                    headers={"Host": host, **how},
                ) as response:
                    if response.status != 403:
                        problems.append(f"GET as {host!r} {how}: {response.status}")
            if not await _refused_socket(server, headers=headers):
                problems.append(f"websocket as {host!r} accepted")
        assert not problems, problems
        for host in (
            f"localhost:{port}",
            f"app.localhost:{port}",
            f"[::1]:{port}",
            f"10.1.2.3:{port}",
            f"PERSONAE.internal:{port}",
        ):
            async with http.get(
                f"{server.url}/api/sessions/{session}/messages", headers={"Host": host}
            ) as response:
                assert response.status == 200, (host, response.status)
                assert (await response.json())["messages"][0]["text"] == "private words"
        own = await _socket(
            server, headers={"Host": f"localhost:{port}", "Origin": f"http://localhost:{port}"}
        )
        await own.disconnect()
    secured = await start_server()
    async with (
        aiohttp.ClientSession() as http,
        http.get(secured.url + "/healthz", headers={"Host": "evil.example"}) as response,
    ):
        assert response.status == 200, "with a secret set, any name is served"


def test_allowed_hosts_must_be_host_names(no_personae_env: None) -> None:
    from runtime.errors import SettingsError
    from runtime.settings import load_settings

    for bad in ("https://a.example", "a.example:8000", "a.example/x", "a..example"):
        with pytest.raises(SettingsError, match="PERSONAE_ALLOWED_HOSTS"):
            load_settings(allowed_hosts=bad)
    ok = load_settings(allowed_hosts="Chat.Example, b.example", allowed_origins="https://c.example")
    assert ok.hosts == {"chat.example", "b.example", "c.example"}
    assert load_settings(allowed_hosts="*").hosts is None


async def test_responses_do_not_name_the_server_software(server: Server) -> None:
    async with aiohttp.ClientSession() as http:
        for path in ("/healthz", "/api/openapi.json", "/api/nope", "/"):
            async with http.get(server.url + path) as response:
                named = response.headers.get("Server", "")
                assert "aiohttp" not in named.lower() and "python" not in named.lower(), named


async def test_pages_cannot_be_framed_and_changes_need_an_origin_or_a_token(
    start_server: Start,
) -> None:
    """With no secret the page is the local admin's: no other site may frame it, and a
    state-changing call saying neither where it comes from nor whom it acts for (a
    body-less POST from a program or an old browser) changes nothing."""
    server = await start_server(auth_secret=None)
    await server.services.personas.create(definition("tutor"), ADMIN)
    async with aiohttp.ClientSession() as http:
        for path in ("/", "/studio", "/api/personas"):
            async with http.get(server.url + path) as response:
                assert response.headers["X-Frame-Options"] == "DENY", path
                assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        apply = f"{server.url}/api/personas/tutor/templates/debate-ready"
        for headers in (
            {},
            {"Content-Type": "text/plain"},
            {"Content-Type": "multipart/form-data"},
        ):
            # as a page's body-less or form POST: no Content-Type, or a simple one
            async with http.post(
                apply, headers=headers, skip_auto_headers=["Content-Type"]
            ) as response:
                assert response.status == 403, headers
                assert (await response.json())["error"]["code"] == "forbidden"
        assert (await server.services.personas.get("tutor")).version == 1
        async with http.post(apply, headers={"Origin": server.url}) as response:
            assert response.status == 200, "the page's own call (a browser sends Origin)"
        assert (await server.services.personas.get("tutor")).version == 2
        async with http.post(apply, headers={"Authorization": "Bearer any"}) as response:
            assert response.status == 200, "a program's call"


# ---- display names and token expiry -------------------------------------------------------


async def test_names_are_checked_alike_on_every_interface(server: Server) -> None:
    """A name that forges a prompt line is refused on /v1 (``messages[].name``) as on a
    socket, and by the chat service itself, whichever transport calls it."""
    from runtime.errors import ChatError
    from runtime.infra.auth import Principal

    await server.services.personas.create(definition("tutor"), ADMIN)
    headers = {"Authorization": f"Bearer {server.token(hc.BOB)}"}
    problems = []
    async with aiohttp.ClientSession() as http:
        for name in hc.BAD_NAMES:
            body = {
                "model": "persona/tutor",
                "messages": [{"role": "user", "content": "Hello", "name": name}],
            }
            async with http.post(
                server.url + "/v1/chat/completions",
                data=json.dumps(body),
                headers={**headers, "Content-Type": "application/json"},
            ) as response:
                said = await response.json()
                if response.status != 400 or said["error"]["code"] != "invalid_payload":
                    problems.append(f"{name[:20]!r}: {response.status} {said}")
    assert not problems, problems
    assert await server.services.memory.transcripts.list_sessions(hc.BOB) == []
    chat = server.app[CHAT]
    session, _ = await chat.start_session(Principal(hc.BOB, "user"), ["tutor"])
    for name in [*(n for n in hc.BAD_NAMES if len(n) < 61), "n" * 129]:
        with pytest.raises(ChatError) as refused:
            await chat.send(
                Principal(hc.BOB, "user"),
                user_name=name,
                session_id=session.id,
                text="Hello",
                client_msg_id=f"n-{uuid.uuid4().hex}",
                events=NullEvents(),
            )
        assert refused.value.code == "invalid_payload"
    assert (await server.services.memory.transcripts.history(session.id)).items == ()


async def test_display_names_that_break_storage_or_prompts_are_refused(
    server: Server, connect: Connect
) -> None:
    await server.services.personas.create(definition("tutor"), ADMIN)
    token = server.token(hc.BOB)
    problems = []
    for name in hc.BAD_NAMES:
        sio = socketio.AsyncClient(reconnection=False)
        said: list[Any] = []

        async def on_error(data: Any = None, said: list[Any] = said) -> None:
            said.append(data)

        sio.on("connect_error", on_error, namespace="/chat")
        try:
            await sio.connect(
                server.url,
                namespaces=["/chat"],
                transports=["websocket"],
                auth={"token": token, "name": name},
                wait_timeout=5,
            )
        except socketio.exceptions.ConnectionError:
            pass
        connected = sio.connected
        await sio.disconnect()
        if connected:
            problems.append(f"{name[:20]!r}: accepted")
        elif not said or said[0].get("data", {}).get("code") != "invalid_payload":
            problems.append(f"{name[:20]!r}: refused with {said}")
    assert not problems, problems
    # a plain name still works, and it is the one the persona hears
    bob = await connect(server, user=hc.BOB, name="  Bob Smith ")
    session = (await bob.call("session.start", {"personas": ["tutor"]}))["session"]["id"]
    sent = await bob.call(
        "message.send", {"session_id": session, "text": "hi", "client_msg_id": "n1"}
    )
    assert sent["ok"] and sent["message"]["speaker"] == "Bob Smith", sent
    await bob.wait_for("message.done")


async def test_a_socket_is_closed_when_its_token_expires(server: Server) -> None:
    from runtime.infra.auth import mint_token

    assert server.settings.auth_secret is not None
    token = mint_token(server.settings.auth_secret.get_secret_value(), hc.BOB, ttl_s=3)
    sio = socketio.AsyncClient(reconnection=False)
    gone = asyncio.Event()
    sio.on("disconnect", lambda *_: gone.set(), namespace="/chat")
    await sio.connect(
        server.url,
        namespaces=["/chat"],
        transports=["websocket"],
        auth={"token": token},
        wait_timeout=5,
    )
    async with asyncio.timeout(15):
        await gone.wait()
    assert await _refused_socket(server, auth={"token": token})


# ---- malformed frames -------------------------------------------------------------------------


async def test_a_malformed_frame_is_one_warning_line_with_its_sid_and_is_counted(
    server: Server, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    client = await connect(server, user=hc.BOB)
    eio_sid = client.sio.eio.sid
    with caplog.at_level(logging.WARNING):
        for raw in hc.MALFORMED_FRAMES:
            await client.sio.eio.send(raw)
            # frames are handled in order: once this is answered, the bad one was seen
            ack = await client.call("memory.list", {"persona": "tutor"}, timeout=5)
            assert ack["error"]["code"] == "persona_not_found", (raw[:40], ack)
    loud = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not loud, [r.getMessage()[:200] for r in loud]
    dropped = [r for r in caplog.records if "malformed socket.io frame" in r.getMessage()]
    assert len(dropped) == len(hc.MALFORMED_FRAMES), [r.getMessage() for r in caplog.records]
    assert all(f"sid={eio_sid}" in r.getMessage() and not r.exc_info for r in dropped)
    assert all("\n" not in r.getMessage() for r in dropped)
    counted = server.app[METRICS].registry.get_sample_value("personae_malformed_frames_total")
    assert counted == len(hc.MALFORMED_FRAMES)


# ---- slow and abandoned bodies ------------------------------------------------------------------


async def _raw_request(
    server: Server, head: str, body: bytes
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = server.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(head.encode() + b"\r\n" + body)
    await writer.drain()
    return reader, writer


def _post_head(path: str, length: int, token: str) -> str:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token}\r\nContent-Length: {length}\r\n"
    )


async def test_a_body_that_never_arrives_is_answered_408_and_an_abort_is_no_server_error(
    start_server: Start, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    server = await start_server(body_timeout_s=0.5)
    path = f"/api/messages/{uuid.uuid4()}/feedback"
    token = server.token(hc.BOB)
    reader, writer = await _raw_request(server, _post_head(path, 500_000, token), b"{")
    try:
        async with asyncio.timeout(15):
            status = await reader.readline()
    finally:
        writer.close()
        await writer.wait_closed()
    assert status.split()[1:2] == [b"408"], status
    # a polling POST that declares more than a message may hold is refused before reading
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            server.url + "/socket.io/?EIO=4&transport=polling&sid=x",
            data=b"4" * (hc.SOCKET_BUFFER + 1),
        ) as response,
    ):
        assert response.status == 413
    # a client that leaves mid-body is counted as such, not as an internal error
    aborted = asyncio.Event()

    class Heard(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "before it was answered" in record.getMessage():
                aborted.set()

    heard = Heard()
    logging.getLogger("socket_server.errors").addHandler(heard)
    try:
        with caplog.at_level(logging.INFO):
            _, writer = await _raw_request(server, _post_head(path, 100, token), b'{"rating":')
            writer.close()
            await writer.wait_closed()
            async with asyncio.timeout(15):
                await aborted.wait()
    finally:
        logging.getLogger("socket_server.errors").removeHandler(heard)
    registry = server.app[METRICS].registry
    assert registry.get_sample_value("personae_client_aborts_total") == 1
    assert registry.get_sample_value("personae_client_errors_total", {"code": "internal"}) is None
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# ---- limits ----------------------------------------------------------------------------------


async def test_new_sessions_are_limited_per_user(start_server: Start, connect: Connect) -> None:
    server = await start_server(sessions_per_minute=3)
    await server.services.personas.create(definition("tutor"), ADMIN)
    bob = await connect(server, user=hc.BOB)
    made = [await bob.call("session.start", {"personas": ["tutor"]}) for _ in range(3)]
    assert all(m["ok"] for m in made), made
    over = await bob.call("session.start", {"personas": ["tutor"]})
    assert over["error"]["code"] == "rate_limited" and over["error"]["retry_after"] > 0, over
    # joining one's own sessions again is not a new session; other users are not affected
    again = await bob.call("session.start", {"session_id": made[0]["session"]["id"]})
    assert again["ok"], again
    alice = await connect(server, user=hc.ALICE)
    assert (await alice.call("session.start", {"personas": ["tutor"]}))["ok"]


async def test_a_connection_follows_a_bounded_number_of_sessions(
    start_server: Start, connect: Connect
) -> None:
    server = await start_server(max_rooms_per_connection=2)
    await server.services.personas.create(definition("tutor"), ADMIN)
    bob = await connect(server, user=hc.BOB)
    sessions = [
        (await bob.call("session.start", {"personas": ["tutor"]}))["session"]["id"]
        for _ in range(3)
    ]
    sid = bob.sio.get_sid("/chat")
    rooms = set(server.app[SIO].rooms(sid, namespace="/chat")) - {sid}
    assert rooms == {f"session:{s}" for s in sessions[1:]}, rooms
    # a send into the oldest one follows it again, and its reply arrives
    sent = await bob.call(
        "message.send", {"session_id": sessions[0], "text": "back", "client_msg_id": "b1"}
    )
    done = await bob.wait_for("message.done")
    assert done["message"]["reply_to"] == sent["message"]["id"]
    rooms = set(server.app[SIO].rooms(sid, namespace="/chat")) - {sid}
    assert rooms == {f"session:{sessions[0]}", f"session:{sessions[2]}"}, rooms


async def test_memory_searches_at_once_are_bounded(
    start_server: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    from memory.service import MemoryService

    server = await start_server(max_concurrent_searches=1)
    await server.services.personas.create(definition("tutor"), ADMIN)
    entered, release = asyncio.Event(), asyncio.Event()
    search = MemoryService.search

    async def slow(self: MemoryService, *args: Any, **kwargs: Any) -> Any:
        entered.set()
        async with asyncio.timeout(15):
            await release.wait()
        return await search(self, *args, **kwargs)

    monkeypatch.setattr(MemoryService, "search", slow)
    headers = {"Authorization": f"Bearer {server.token(hc.BOB)}"}
    url = server.url + "/api/personas/tutor/memories?q=chess"
    async with aiohttp.ClientSession() as http:

        async def get() -> int:
            async with http.get(url, headers=headers) as response:
                return response.status

        first = asyncio.create_task(get())
        async with asyncio.timeout(15):
            await entered.wait()
        async with http.get(url, headers=headers) as response:
            assert response.status == 429 and "Retry-After" in response.headers
            assert (await response.json())["error"]["code"] == "rate_limited"
        release.set()
        assert await first == 200
        async with http.get(url, headers=headers) as response:
            assert response.status == 200


# ---- small leaks ------------------------------------------------------------------------------


async def test_the_persona_wide_profile_is_for_admins_only(
    server: Server, connect: Connect
) -> None:
    await server.services.personas.create(definition("tutor"), ADMIN)
    alice = await connect(server, user=hc.ALICE)
    session = (await alice.call("session.start", {"personas": ["tutor"]}))["session"]["id"]
    await alice.call(
        "message.send",
        {"session_id": session, "text": "Why? Really? Tell me!", "client_msg_id": "t1"},
    )
    await alice.wait_for("persona.traits_updated")
    bob = await connect(server, user=hc.BOB)
    seen = await bob.call("persona.traits", {"persona": "tutor"})
    assert seen["ok"] and seen["traits"], seen
    assert seen["observed"] == {} and seen["turns"] == 0, "alice's chat shows through"
    own = await alice.call("persona.traits", {"persona": "tutor", "session_id": session})
    assert own["observed"] and own["turns"] == 1
    admin = await connect(server, token=server.token("root", "admin"))
    overall = await admin.call("persona.traits", {"persona": "tutor"})
    assert overall["observed"] and overall["turns"] >= 1


def test_the_access_log_writes_paths_without_query_strings(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from aiohttp import web
    from aiohttp.test_utils import make_mocked_request

    from socket_server.edge import QuietAccessLogger

    logger = logging.getLogger("aiohttp.access")
    access = QuietAccessLogger(logger, "")
    request = make_mocked_request(
        "GET", "/api/personas/tutor/memories?q=my+secret+diagnosis&token=eyJhbGciOi.x.y"
    )
    with caplog.at_level(logging.INFO, logger="aiohttp.access"):
        access.log(request, web.Response(status=200), 0.01)
    [line] = [r.getMessage() for r in caplog.records]
    assert "/api/personas/tutor/memories" in line and " 200 " in line
    assert "secret" not in line and "eyJ" not in line and "?" not in line


async def test_a_polling_post_for_a_closing_session_is_refused_not_a_server_error(
    server: Server,
) -> None:
    async with aiohttp.ClientSession() as http:
        base = server.url + "/socket.io/?EIO=4&transport=polling"
        async with http.get(base) as response:
            opened = await response.text()
        sid = json.loads(opened[1:])["sid"]
        # the socket is closing (its close has begun) when the client's POST arrives
        server.app[SIO].eio.sockets[sid].closed = True
        async with http.post(f"{base}&sid={sid}", data=b"40/chat,{}") as response:
            assert response.status == 400, await response.text()
            assert (await response.json())["error"]["code"] == "invalid_payload"


async def test_a_call_after_the_token_expired_is_refused(
    server: Server, connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time as real_time

    import runtime.infra.auth

    bob = await connect(server, user=hc.BOB)  # a token valid for a day
    gone = asyncio.Event()
    bob.sio.on("disconnect", lambda *_: gone.set(), namespace="/chat")
    ack = await bob.call("memory.list", {"persona": "tutor"})
    assert ack["error"]["code"] == "persona_not_found"

    class Later:
        @staticmethod
        def time() -> float:
            return real_time.time() + 2 * 86_400

    monkeypatch.setattr(runtime.infra.auth, "time", Later)
    ack = await bob.call("memory.list", {"persona": "tutor"})
    assert ack["error"]["code"] == "unauthorized" and "expired" in ack["error"]["message"]
    async with asyncio.timeout(10):
        await gone.wait()


# ---- connections before any request -------------------------------------------------------


async def _healthz_over(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    try:
        await writer.drain()
        async with asyncio.timeout(5):
            return await reader.read()
    except (ConnectionResetError, BrokenPipeError):
        return b""
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def test_a_silent_connection_is_closed_after_the_idle_timeout(start_server: Start) -> None:
    server = await start_server(idle_timeout_s=0.5)
    host, port = server.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        async with asyncio.timeout(5):
            assert await reader.read() == b"", "closed by the server, having said nothing"
    finally:
        writer.close()
        await writer.wait_closed()


async def test_one_client_cannot_hold_more_than_its_connections(start_server: Start) -> None:
    server = await start_server(max_connections_per_client=4)
    host, port = server.url.removeprefix("http://").split(":")
    held = [await asyncio.open_connection(host, int(port)) for _ in range(4)]
    try:
        refused = await _healthz_over(*await asyncio.open_connection(host, int(port)))
        assert refused == b"", "the fifth connection is closed at once"
        assert server.app[METRICS].connections_refused._value.get() >= 1
    finally:
        for _, writer in held:
            writer.close()
            await writer.wait_closed()
    await asyncio.sleep(0.2)
    answered = await _healthz_over(*await asyncio.open_connection(host, int(port)))
    assert answered.startswith(b"HTTP/1.1 200"), answered[:100]


async def test_an_unknown_engine_io_packet_is_one_warning_line(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    """Engine.IO frames of no known type (``9``, a letter) on a raw WebSocket are
    dropped with one WARNING line each, no traceback; the connection goes on."""
    url = server.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
    token = server.token(hc.BOB)
    with caplog.at_level(logging.INFO):
        async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
            assert (await ws.receive_str()).startswith("0")
            await ws.send_str("40/chat," + json.dumps({"token": token}))
            assert (await ws.receive_str()).startswith("40/chat,")
            for raw in hc.UNKNOWN_EIO_PACKETS:
                await ws.send_str(raw)
                await ws.send_str('42/chat,7["memory.list",{"persona":"tutor"}]')
                async with asyncio.timeout(5):
                    answer = await ws.receive_str()
                    while answer in ("2", "3"):
                        answer = await ws.receive_str()
                assert answer.startswith("43/chat,7"), (raw, answer)
        polling = server.url + "/socket.io/?EIO=4&transport=polling"
        async with aiohttp.ClientSession() as http:
            async with http.get(polling) as opened:
                sid = json.loads((await opened.text())[1:])["sid"]
            for raw in hc.UNKNOWN_EIO_PACKETS[:5]:  # (int() reads the last as a 3: a pong)
                async with http.post(f"{polling}&sid={sid}", data=raw) as posted:
                    assert posted.status == 200, (raw, posted.status)
    loud = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not loud, [r.getMessage()[:200] for r in loud]
    dropped = [r for r in caplog.records if "engine.io packet" in r.getMessage()]
    assert len(dropped) == len(hc.UNKNOWN_EIO_PACKETS) + 5, [r.getMessage() for r in dropped]
