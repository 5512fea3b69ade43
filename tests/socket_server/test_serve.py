"""``personae serve`` as a user runs it: a second server beside a running one says so
and stops at once, and Ctrl-C (SIGINT to the terminal's whole process group) stops the
server quietly, its embedded Redis last."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.socket_server.conftest import free_port

REPO = Path(__file__).resolve().parents[2]


def _env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERSONAE_")}
    return env | {"PYTHONPATH": str(REPO), "PERSONAE_LOG_LEVEL": "INFO", **settings}


async def _serve(env: dict[str, str], timeout_s: float = 60) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "runtime.cli",
        "serve",
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    async with asyncio.timeout(timeout_s):
        out, err = await proc.communicate()
    assert b"ready on" not in out, "it must not serve"
    return int(proc.returncode or 0), err.decode()


async def test_a_second_server_says_one_is_already_running(
    spawn: Any, tmp_path: Path, database_url: str, redis_url: str
) -> None:
    _, url = await spawn("first")  # serves with PERSONAE_HOME tmp_path / "first"
    port = url.rsplit(":", 1)[1]
    common = {"PERSONAE_DATABASE_URL": database_url, "PERSONAE_REDIS_URL": redis_url}

    status, err = await _serve(
        _env(**common, PERSONAE_HOME=str(tmp_path / "first"), PERSONAE_PORT=str(free_port()))
    )
    assert status == 1, err
    assert f"personae: a server is already running on {url}/ (pid " in err, err
    assert "qdrant" not in err and "Traceback" not in err

    status, err = await _serve(
        _env(**common, PERSONAE_HOME=str(tmp_path / "second"), PERSONAE_PORT=port)
    )
    assert status == 1, err
    assert f"personae: {url}/ is already in use: a server is already running there" in err
    assert "Traceback" not in err


@pytest.fixture
def short_home() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="pe-"))  # sockets under it need a short path
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slow  # the real embedder
async def test_ctrl_c_stops_the_server_quietly(
    database_url: str, model_cache: Path, short_home: Path, cache_namespace: str
) -> None:
    env = _env(
        PERSONAE_DATABASE_URL=database_url,  # Redis embedded: the one Ctrl-C could reach
        PERSONAE_HOME=str(short_home),
        PERSONAE_PORT=str(free_port()),
        PERSONAE_EMBEDDING_CACHE_DIR=str(model_cache),
        PERSONAE_REDIS_PREFIX=cache_namespace,
        HF_HUB_OFFLINE="1",
    )
    log = short_home / "serve.out"
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: ASYNC220 - the server beside the test
            [sys.executable, "-m", "runtime.cli", "serve"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a terminal gives it
        )
    try:
        async with asyncio.timeout(180):
            while b"ready on" not in log.read_bytes():
                assert proc.poll() is None, log.read_text()[-3000:]
                await asyncio.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in its terminal does
        async with asyncio.timeout(60):
            status = await asyncio.to_thread(proc.wait)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    said = log.read_text()
    assert status == 0, said[-3000:]
    assert "shutting down" in said
    warned = [
        line
        for line in said.splitlines()
        if (" WARNING " in line or " ERROR " in line) and "PERSONAE_AUTH_SECRET" not in line
    ]
    assert warned == [], said[-3000:]
    assert "it/s]" not in said, "no progress bar in a log"
    redis_log = (short_home / "redis.log").read_text()
    assert "Received SIGINT" not in redis_log, "the embedded Redis is the server's to stop"
    assert "Received SIGTERM" in redis_log


async def test_serving_beyond_loopback_without_a_secret_is_refused_in_one_line(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    """As the container image would (``PERSONAE_HOST=0.0.0.0``, no secret): one line,
    exit status 2, nothing served, unless the deployment says so explicitly."""
    from runtime.infra.server_lock import check_exposure, is_loopback
    from runtime.settings import load_settings

    common = {"PERSONAE_DATABASE_URL": database_url, "PERSONAE_REDIS_URL": redis_url}
    status, err = await _serve(
        _env(**common, PERSONAE_HOME=str(tmp_path / "h"), PERSONAE_HOST="0.0.0.0"), timeout_s=30
    )
    assert status == 2, err
    lines = [line for line in err.splitlines() if line.startswith("personae: ")]
    assert len(lines) == 1 and "PERSONAE_AUTH_SECRET" in lines[0], err
    assert "Traceback" not in err
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "10.0.0.5", "example.com", ""):
        assert not is_loopback(host), host
    check_exposure(load_settings(host="0.0.0.0", auth_secret="s" * 40))
    check_exposure(load_settings(host="0.0.0.0", allow_open_without_secret=True))
