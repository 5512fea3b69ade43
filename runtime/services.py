"""The Services container and the one lifespan that opens everything in order and closes
it in reverse: embedded servers (when no URL is set), migrations, the PostgreSQL pool,
Redis, the persona cache and store."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from personas import PersonaCache, PersonaRepository, PersonaStore
from runtime.db import open_pool, open_redis
from runtime.embedded import EmbeddedPostgres, EmbeddedRedis
from runtime.migrate import migrate_url
from runtime.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Services:
    """Everything a request or a turn needs, built once per process and passed down."""

    settings: Settings
    database_url: str
    redis_url: str
    pool: AsyncConnectionPool[Any]
    redis: Redis
    personas: PersonaStore


@asynccontextmanager
async def resolved_urls(settings: Settings) -> AsyncIterator[tuple[str, str]]:
    """The database and Redis URLs to use, starting embedded servers for unset ones."""
    async with AsyncExitStack() as stack:
        database_url = settings.database_url
        if database_url is None:
            pg = await stack.enter_async_context(EmbeddedPostgres(settings.home / "pg"))
            database_url = pg.url
            log.info("using embedded PostgreSQL under %s", settings.home / "pg")
        redis_url = settings.redis_url
        if redis_url is None:
            rd = await stack.enter_async_context(EmbeddedRedis(settings.home))
            redis_url = rd.url
            log.info("using embedded Redis under %s", settings.home)
        yield database_url, redis_url


@asynccontextmanager
async def open_services(settings: Settings, *, migrate: bool = True) -> AsyncIterator[Services]:
    """Open every service for ``settings``; close them in reverse on exit."""
    settings.home.mkdir(parents=True, exist_ok=True)
    async with AsyncExitStack() as stack:
        database_url, redis_url = await stack.enter_async_context(resolved_urls(settings))
        if migrate:
            applied = await migrate_url(database_url)
            if applied:
                log.info("applied %d migration(s)", len(applied))
        pool = await stack.enter_async_context(open_pool(database_url, settings))
        redis = await stack.enter_async_context(open_redis(redis_url))
        cache = await stack.enter_async_context(
            PersonaCache(redis, ttl_s=settings.persona_cache_ttl_s, l1_ttl_s=settings.persona_l1_ttl_s)
        )
        yield Services(
            settings=settings,
            database_url=database_url,
            redis_url=redis_url,
            pool=pool,
            redis=redis,
            personas=PersonaStore(PersonaRepository(pool), cache),
        )
