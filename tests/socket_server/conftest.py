"""A real server on 127.0.0.1 (aiohttp + Socket.IO + the real services on the test
databases) with a fake embedder and a fake streaming model, and real Socket.IO clients."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import socketio
from aiohttp import web

from agents.fake_llm import FakeStreamingChatModel
from memory import FakeEmbedder
from runtime.infra.auth import mint_token
from runtime.services import Overrides
from runtime.settings import Settings, load_settings
from socket_server.app import create_app, start_site
from socket_server.keys import SERVICES

SECRET = "s" * 40


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    app: web.Application
    settings: Settings
    model: FakeStreamingChatModel

    @property
    def services(self) -> Any:
        return self.app[SERVICES]

    def token(self, user: str, role: str = "user") -> str:
        assert self.settings.auth_secret is not None
        return mint_token(self.settings.auth_secret.get_secret_value(), user, role)  # type: ignore[arg-type]


@dataclass
class Client:
    """A real socketio.AsyncClient that records every server event it receives."""

    sio: socketio.AsyncClient
    events: list[tuple[str, Any]] = field(default_factory=list)
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def call(self, event: str, data: Any = None, timeout: float = 15.0) -> Any:
        return await self.sio.call(event, data, namespace="/chat", timeout=timeout)

    async def wait_for(
        self, event: str, predicate: Callable[[Any], bool] = lambda _: True, timeout: float = 15.0
    ) -> Any:
        async with asyncio.timeout(timeout):
            async with self._arrived:
                while True:
                    for name, data in self.events:
                        if name == event and predicate(data):
                            return data
                    await self._arrived.wait()

    def of(self, event: str) -> list[Any]:
        return [d for n, d in self.events if n == event]

    async def record(self, event: str, data: Any) -> None:
        async with self._arrived:
            self.events.append((event, data))
            self._arrived.notify_all()


@pytest.fixture
async def start_server(
    db: Any, database_url: str, redis_url: str, tmp_path: Path, cache_namespace: str
) -> AsyncIterator[Callable[..., Awaitable[Server]]]:
    """Start servers: ``await start_server(model=..., **settings)``; all stop at the end."""
    runners: list[web.AppRunner] = []

    async def start(
        model: FakeStreamingChatModel | None = None, home: Path | None = None, **overrides: Any
    ) -> Server:
        port = free_port()
        model = model or FakeStreamingChatModel(reply="Hello there, I remember you well.")
        base: dict[str, Any] = {
            "database_url": database_url,
            "redis_url": redis_url,
            "auth_secret": SECRET,
            "home": home or tmp_path / f"home-{port}",
            "redis_prefix": cache_namespace,
        }
        settings = load_settings(host="127.0.0.1", port=port, **{**base, **overrides})
        app = create_app(
            settings,
            overrides=Overrides(embedder=FakeEmbedder(64, seed=5), chat_model=lambda: model),
        )
        runner = await start_site(app, settings, "127.0.0.1", port, shutdown_timeout=2.0)
        runners.append(runner)
        return Server(f"http://127.0.0.1:{port}", app, settings, model)

    yield start
    for runner in reversed(runners):
        await runner.cleanup()


@pytest.fixture
async def server(start_server: Callable[..., Awaitable[Server]]) -> Server:
    return await start_server()


@pytest.fixture
async def connect() -> AsyncIterator[Callable[..., Awaitable[Client]]]:
    """Connect real Socket.IO clients: ``await connect(server, token=..., name=...)``."""
    clients: list[Client] = []

    async def make(
        server: Server, token: str | None = None, name: str | None = None, user: str = "alice"
    ) -> Client:
        sio = socketio.AsyncClient(reconnection=False)
        client = Client(sio)

        async def catch_all(event: str, *args: Any) -> None:
            await client.record(event, args[0] if args else None)

        sio.on("*", catch_all, namespace="/chat")
        auth: dict[str, Any] = {}
        if token is None and server.settings.auth_enabled:
            token = server.token(user)
        if token is not None:
            auth["token"] = token
        if name is not None:
            auth["name"] = name
        await sio.connect(
            server.url, namespaces=["/chat"], auth=auth, transports=["websocket"], wait_timeout=10
        )
        clients.append(client)
        return client

    yield make
    for c in clients:
        if c.sio.connected:
            await c.sio.disconnect()


@pytest.fixture
async def spawn(
    db: Any, database_url: str, redis_url: str, tmp_path: Path, cache_namespace: str
) -> AsyncIterator[Callable[..., Awaitable[tuple[subprocess.Popen[bytes], str]]]]:
    """Start server processes (``tests/socket_server/serve_fake.py``) on the test databases:
    ``proc, url = await spawn(name, **env)``; each logs to a file (a pipe nobody reads
    would block it), and is killed at the end if still running."""
    procs: list[subprocess.Popen[bytes]] = []

    async def start(name: str = "node", **env_extra: str) -> tuple[subprocess.Popen[bytes], str]:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PERSONAE_")}
        env |= {
            "PERSONAE_DATABASE_URL": database_url,
            "PERSONAE_REDIS_URL": redis_url,
            "PERSONAE_HOME": str(tmp_path / name),
            "PERSONAE_PORT": str(port),
            "PERSONAE_AUTH_SECRET": SECRET,
            "PERSONAE_LOG_LEVEL": "WARNING",
            "PERSONAE_REDIS_PREFIX": cache_namespace,
            **env_extra,
        }
        log = tmp_path / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(  # noqa: ASYNC220 - a server beside the test
                [sys.executable, "-m", "tests.socket_server.serve_fake"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        procs.append(proc)
        async with asyncio.timeout(60):
            while b"ready" not in log.read_bytes():
                assert proc.poll() is None, log.read_text()[-2000:]
                await asyncio.sleep(0.1)
        return proc, f"http://127.0.0.1:{port}"

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
