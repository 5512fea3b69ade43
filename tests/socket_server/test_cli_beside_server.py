"""Memory commands of the CLI while a server holds the embedded Qdrant Edge store: they
reach it through the socket the server lends it on."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from agents.fake_llm import FakeStreamingChatModel
from memory import MemoryFilter
from personas import Actor
from runtime.infra.store_share import socket_path
from runtime.services import Overrides
from runtime.settings import load_settings
from socket_server.app import create_app
from socket_server.keys import SERVICES
from tests.personas.factory import definition
from tests.socket_server.conftest import free_port


@pytest.fixture
def short_home() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="pe-"))  # a socket path must be short
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slow  # the real embedder, in the server and in the CLI
async def test_memory_import_beside_a_running_server(
    db: Any, database_url: str, redis_url: str, cache_namespace: str, short_home: Path
) -> None:
    port = free_port()
    settings = load_settings(
        host="127.0.0.1",
        port=port,
        database_url=database_url,
        redis_url=redis_url,
        home=short_home,
        redis_prefix=cache_namespace,
    )
    app = create_app(
        settings,
        overrides=Overrides(chat_model=lambda: FakeStreamingChatModel(), trait_scorer=False),
    )
    runner = web.AppRunner(app, shutdown_timeout=2.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
        services = app[SERVICES]
        persona = await services.personas.create(definition("tutor"), Actor("a", is_admin=True))
        assert socket_path(settings).is_socket()
        history = short_home / "history.jsonl"
        history.write_text(
            json.dumps({"text": "My cat is called Planck.", "speaker": "Uma", "id": "m1"}) + "\n"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("PERSONAE_")}
        env |= {
            "PERSONAE_DATABASE_URL": database_url,
            "PERSONAE_REDIS_URL": redis_url,
            "PERSONAE_HOME": str(short_home),
            "PERSONAE_REDIS_PREFIX": cache_namespace,
            "HF_HUB_OFFLINE": "1",
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "runtime.cli",
            "memory",
            "import",
            str(history),
            "--persona",
            "tutor",
            "--user",
            "uma",
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        async with asyncio.timeout(240):
            out, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()[-2000:]
        assert "imported 1 memories for tutor" in out.decode()
        # the server's own store has it
        page = await services.memory.list(
            MemoryFilter(persona_id=str(persona.id), user_id="uma"), limit=10
        )
        assert [r.text for r in page.records] == ["My cat is called Planck."]
    finally:
        await runner.cleanup()
    assert not socket_path(settings).exists()


async def test_a_store_held_elsewhere_is_refused_at_once_saying_what_to_do(
    short_home: Path,
) -> None:
    from memory import EdgeMemoryIndex
    from memory.errors import IndexUnavailable
    from runtime.services import vector_index

    settings = load_settings(home=short_home)
    async with EdgeMemoryIndex(short_home / "qdrant", dim=8):
        with pytest.raises(IndexUnavailable) as held:
            vector_index(settings, 8)
    message = str(held.value)
    assert "holds the store at" in message and "PERSONAE_QDRANT_URL" in message
    assert str(socket_path(settings)) in message
    async with vector_index(settings, 8) as index:  # free again once it is closed
        assert await index.count("p") == 0
