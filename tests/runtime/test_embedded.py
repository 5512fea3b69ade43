from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis.asyncio as aioredis
from psycopg.conninfo import conninfo_to_dict

from runtime.errors import EmbeddedServiceError
from runtime.infra.embedded import EmbeddedPostgres, EmbeddedRedis

REPO_ROOT = Path(__file__).resolve().parents[2]

# Started in a child process that the test then SIGKILLs, like a crashed `personae serve`.
CRASHING_OWNER = """
import asyncio, sys
from pathlib import Path
import psycopg, redis.asyncio as aioredis
from runtime.infra.embedded import EmbeddedPostgres, EmbeddedRedis

async def main() -> None:
    async with EmbeddedPostgres(Path(sys.argv[1])) as pg, EmbeddedRedis(Path(sys.argv[2])) as rd:
        async with await psycopg.AsyncConnection.connect(pg.url, autocommit=True) as conn:
            await conn.execute("CREATE TABLE before_crash (id int)")
        client = aioredis.from_url(rd.url)
        await client.set("before-crash", "kept")
        await client.aclose()
        print(pg.pid, rd.pid, flush=True)
        await asyncio.Event().wait()

asyncio.run(main())
"""


@pytest.fixture
def home() -> Iterator[Path]:
    """A folder outside pytest's basetemp. pgserver (as root) runs postgres as a `pgserver`
    user and opens every parent folder to it, but any other pytest session starting on this
    machine chmods /tmp/pytest-of-<user> back to 0700, and pg_ctl then fails with
    "could not access directory ...: Permission denied"."""
    path = Path(tempfile.mkdtemp(prefix="personae-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # an exited server nobody has reaped yet is a zombie: gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return True


async def _wait_gone(pid: int, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while _alive(pid):
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"process {pid} still running {timeout}s after stop")
        await asyncio.sleep(0.05)


async def _pg_execute(url: str, statement: str) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(statement)


async def _pg_scalar(url: str, query: str) -> object:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute(query)
        row = await cur.fetchone()
        return None if row is None else row[0]


async def test_postgres_keeps_data_across_restarts_and_leaves_no_process(home: Path) -> None:
    pgdata = home / "nested" / "pg"  # parents created too
    async with EmbeddedPostgres(pgdata) as pg:
        assert conninfo_to_dict(pg.url)["host"] == str(pgdata)
        await _pg_execute(pg.url, "CREATE TABLE notes (body text)")
        await _pg_execute(pg.url, "INSERT INTO notes VALUES ('survives')")
        first_pid = pg.pid
        await pg.stop()
        await pg.stop()  # idempotent, and __aexit__ calls it a third time
        await _wait_gone(first_pid)
        with pytest.raises(EmbeddedServiceError, match="not running"):
            _ = pg.url

    async with EmbeddedPostgres(pgdata) as pg:
        assert pg.pid != first_pid
        assert await _pg_scalar(pg.url, "SELECT body FROM notes") == "survives"
        second_pid = pg.pid
    await _wait_gone(second_pid)
    assert json.loads((pgdata / ".handle_pids.json").read_text()) == []


async def test_postgres_accepts_a_relative_data_dir(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(home)
    async with EmbeddedPostgres(Path(".personae/pg")) as pg:
        monkeypatch.chdir(REPO_ROOT)  # the URL must not depend on the working directory
        assert Path(str(conninfo_to_dict(pg.url)["host"])).is_absolute()
        assert await _pg_scalar(pg.url, "SELECT 1") == 1
        pid = pg.pid
    await _wait_gone(pid)
    assert (home / ".personae" / "pg" / "PG_VERSION").is_file()


async def test_postgres_handles_in_one_process_share_the_server(home: Path) -> None:
    async with EmbeddedPostgres(home / "pg") as outer:
        async with EmbeddedPostgres(home / "pg") as inner:
            assert inner.pid == outer.pid
        assert await _pg_scalar(outer.url, "SELECT 1") == 1
        pid = outer.pid
    await _wait_gone(pid)


async def test_redis_keeps_data_across_restarts_and_leaves_no_process(home: Path) -> None:
    async with EmbeddedRedis(home) as rd:
        assert rd.url == f"unix://{home}/redis.sock?db=0"
        client = aioredis.from_url(rd.url)
        assert await client.ping()
        await client.set("greeting", "hello")
        await client.aclose()
        first_pid = rd.pid
    await _wait_gone(first_pid)
    assert (home / "redis.db").is_file()  # SIGTERM made redis write its RDB
    assert not (home / "redis.sock").exists()

    async with EmbeddedRedis(home) as rd:
        client = aioredis.from_url(rd.url)
        assert await client.get("greeting") == b"hello"
        await client.aclose()
        second_pid = rd.pid
        await rd.stop()
        await rd.stop()
    await _wait_gone(second_pid)


async def test_redis_folder_has_one_owner_and_guests_share_it(home: Path) -> None:
    async with EmbeddedRedis(home) as rd:
        async with EmbeddedRedis(home) as guest:
            assert guest.url == rd.url
            client = aioredis.from_url(guest.url)
            await client.set("shared", "1")
            await client.aclose()
        client = aioredis.from_url(rd.url)
        assert await client.ping()  # the guest leaving did not stop the owner's server
        assert await client.get("shared") == b"1"
        await client.aclose()


async def test_redis_socket_moves_to_a_short_path_for_a_long_data_dir(home: Path) -> None:
    data_dir = home / ("deep-" * 20)
    async with EmbeddedRedis(data_dir) as rd:
        socket = rd.url.removeprefix("unix://").removesuffix("?db=0")
        assert len(socket) < 108 and not socket.startswith(str(data_dir))
        client = aioredis.from_url(rd.url)
        await client.set("k", "v")
        await client.aclose()
    assert (data_dir / "redis.db").is_file()
    assert not Path(socket).parent.exists()  # the short folder is removed on exit


async def test_restart_after_the_owner_was_sigkilled(home: Path) -> None:
    pgdata = home / "pg"
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CRASHING_OWNER,
        str(pgdata),
        str(home),
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None and child.stderr is not None
    try:
        line = await asyncio.wait_for(child.stdout.readline(), 120)
        if not line:
            pytest.fail(f"owner process failed: {(await child.stderr.read()).decode()[-2000:]}")
        pg_pid, redis_pid = map(int, line.split())
    finally:
        child.kill()  # SIGKILL: no __aexit__, no atexit
        await child.wait()

    # What the crash leaves behind: the dead owner's pid and both servers, orphaned.
    assert child.pid in json.loads((pgdata / ".handle_pids.json").read_text())
    assert _alive(pg_pid) and _alive(redis_pid)

    async with EmbeddedPostgres(pgdata) as pg, EmbeddedRedis(home) as rd:
        assert await _pg_scalar(pg.url, "SELECT count(*) FROM before_crash") == 0
        await _wait_gone(redis_pid)  # the leftover redis was shut down (with SAVE) first
        client = aioredis.from_url(rd.url)
        assert await client.get("before-crash") == b"kept"
        await client.aclose()
        new_pg_pid, new_redis_pid = pg.pid, rd.pid
        assert json.loads((pgdata / ".handle_pids.json").read_text()) == [os.getpid()]

    for pid in (pg_pid, new_pg_pid, new_redis_pid):
        await _wait_gone(pid)


async def test_as_root_postgres_opens_no_folder_above_its_data_to_others(home: Path) -> None:
    """pgserver runs PostgreSQL as a system user of its own when started as root, and
    would add read and pass-through for everyone to every folder above the data; only
    pass-through is added, so a private home stays unlistable."""
    import os
    import stat

    if os.geteuid() != 0:
        pytest.skip("pgserver changes folder modes only when run as root")
    private = home / "private"
    private.mkdir(mode=0o700)
    os.chmod(private, 0o700)
    async with EmbeddedPostgres(private / "pg") as pg:
        assert await _pg_scalar(pg.url, "SELECT 1") == 1
    assert stat.S_IMODE(private.stat().st_mode) == 0o711, oct(private.stat().st_mode)
