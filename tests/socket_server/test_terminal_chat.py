"""``personae chat``: one message per line of standard input, replies streamed to
standard output; in this process on the services, or against a running server."""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from agents.fake_llm import FakeStreamingChatModel
from personas import Actor
from runtime.auth import mint_token
from runtime.cli_chat import chat_here
from tests.personas.factory import definition
from tests.socket_server.conftest import SECRET

ADMIN = Actor("admin", is_admin=True)
REPLY = "Photosynthesis turns light into sugar, you see."


async def test_chat_reads_lines_and_streams_replies(
    services_factory: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    model = FakeStreamingChatModel(reply=REPLY)
    async with services_factory(model) as services:
        await services.personas.create(definition("tutor"), ADMIN)
        lines = "Hello, I am Uma.\n\n/traits\nWhat is a leaf?\n/memories\n/nonsense\n/quit\nignored\n"
        monkeypatch.setattr(sys, "stdin", io.StringIO(lines))
        args = argparse.Namespace(persona="tutor", session=None, user="uma")
        assert await chat_here(services, args) == 0
        out = capsys.readouterr().out
        assert out.splitlines().count(f"Tutor: {REPLY}") == 2
        assert "consistency: not enough replies yet" in out
        # after the second reply, the first exchange is remembered (turns run in order)
        memories = out.split(f"\nTutor: {REPLY}\n")[1]
        assert "  uma: Hello, I am Uma." in memories.splitlines()
        assert "unknown command /nonsense" in out
        sessions = await services.memory.transcripts.list_sessions("uma")
        assert len(sessions) == 1
        stored = (await services.memory.transcripts.history(sessions[0].id)).items
        assert [m.text for m in stored] == ["Hello, I am Uma.", REPLY, "What is a leaf?", REPLY]
        assert "ignored" not in [m.text for m in stored]


async def test_chat_against_a_running_server_through_stdin(
    spawn: Any, store: Any, tmp_path: Path
) -> None:
    await store.create(definition("tutor"), ADMIN)
    _, url = await spawn("chat-node", FAKE_TOKENS="6")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERSONAE_")}
    env |= {"PERSONAE_HOME": str(tmp_path / "cli-home"), "PERSONAE_LOG_LEVEL": "WARNING"}
    token = mint_token(SECRET, "uma")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "runtime.cli", "chat", "tutor", "--url", url, "--token", token,
        "--user", "Uma",
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )
    async with asyncio.timeout(120):
        out, err = await proc.communicate(b"Hello there\nAnd again\n/memories\n/traits\n")
    text = out.decode()
    assert proc.returncode == 0, err.decode()
    replies = [ln for ln in text.splitlines() if ln.startswith("Tutor: Thank you for telling")]
    assert len(replies) == 2
    assert "  Uma: Hello there" in text.splitlines()  # remembered, and shown by /memories
    assert "consistency: not enough replies yet" in text
    assert err.decode().strip() == ""


async def test_chat_with_a_bad_server_or_session_says_so(spawn: Any, store: Any, tmp_path: Path) -> None:
    await store.create(definition("tutor"), ADMIN)
    _, url = await spawn("chat-node-2")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERSONAE_")}
    env |= {"PERSONAE_HOME": str(tmp_path / "cli-home"), "PERSONAE_LOG_LEVEL": "WARNING"}
    token = mint_token(SECRET, "uma")
    for extra in (["--session", str(uuid.uuid4())], []):
        args = ["chat", "tutor", "--url", url, "--token", token if extra else "bad", *extra]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "runtime.cli", *args,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        )
        async with asyncio.timeout(120):
            _, raw = await proc.communicate(b"hi\n")
        err = raw.decode()
        assert proc.returncode == 2, err
        assert len(err.strip().splitlines()) == 1, err
        assert "Traceback" not in err
        assert ("session_not_found" if extra else "cannot connect") in err
