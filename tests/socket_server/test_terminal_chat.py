"""``personae chat``: one message per line of standard input, replies streamed to
standard output; in this process on the services, or against a running server."""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import pty
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from agents.fake_llm import FakeStreamingChatModel
from personas import Actor
from runtime.cli.chat import chat_here
from runtime.infra.auth import mint_token
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
        lines = (
            "Hello, I am Uma.\n\n/traits\nWhat is a leaf?\n/memories\n/nonsense\n/quit\nignored\n"
        )
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


async def test_chat_in_a_terminal_against_a_running_server(
    spawn: Any, store: Any, tmp_path: Path
) -> None:
    await store.create(definition("tutor"), ADMIN)
    _, url = await spawn("chat-node", FAKE_TOKENS="6")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERSONAE_")}
    env |= {"PERSONAE_HOME": str(tmp_path / "cli-home"), "PERSONAE_LOG_LEVEL": "WARNING"}
    env["TERM"] = "dumb"
    token = mint_token(SECRET, "uma")
    # a bad token or an unknown session: one line, exit 2
    for extra in (["--session", str(uuid.uuid4())], []):
        args = ["chat", "tutor", "--url", url, "--token", token if extra else "bad", *extra]
        failing = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "runtime.cli",
            *args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        async with asyncio.timeout(120):
            _, raw = await failing.communicate(b"hi\n")
        err = raw.decode()
        assert failing.returncode == 2, err
        assert len(err.strip().splitlines()) == 1, err
        assert ("session_not_found" if extra else "cannot connect") in err

    master, slave = pty.openpty()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "runtime.cli",
        "chat",
        "tutor",
        "--url",
        url,
        "--token",
        token,
        "--user",
        "Uma",
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
    )
    os.close(slave)
    seen = b""

    async def until(text: str) -> str:
        nonlocal seen
        async with asyncio.timeout(120):
            while text.encode() not in seen:
                try:
                    seen += await asyncio.to_thread(os.read, master, 4096)
                except OSError:  # the terminal closed: the process is gone
                    break
        shown, _, rest = seen.partition(text.encode())
        seen = rest
        assert text.encode() in shown + text.encode(), shown
        return shown.decode(errors="replace")

    try:
        await until("you> ")
        for line in ("Hello there", "And again", "/memories", "/traits"):
            os.write(master, line.encode() + b"\n")
            out = await until("you> ")
            if line == "And again":
                assert "Tutor: Thank you for telling me;" in out
            if line == "/memories":
                assert "Uma: Hello there" in out  # remembered by the first turn
            if line == "/traits":
                assert "consistency: not enough replies yet" in out
        os.write(master, b"/quit\n")
        async with asyncio.timeout(60):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        os.close(master)
    history = (tmp_path / "cli-home" / "chat_history").read_text()
    assert "Hello there" in history  # readline kept what was typed
