"""Connections: the psycopg 3 async pool (and its readiness ping) and the redis.asyncio
client."""

from __future__ import annotations

import logging
import select
import selectors
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from redis.asyncio import Redis
from redis.exceptions import RedisError

from runtime.errors import RuntimeLayerError
from runtime.settings import Settings

log = logging.getLogger(__name__)

PING_SQL = "SELECT 1"


class ServiceUnavailable(RuntimeLayerError):
    """A backing service (PostgreSQL, Redis) could not be reached at start-up."""


async def _check_idle_connection(conn: AsyncConnection[Any]) -> None:
    """Hand out only live connections, without a round trip per checkout: an idle
    connection's socket has nothing to read unless the server closed it (a restart, an
    idle timeout) or sent an error, and only then is it probed (and dropped if dead)."""
    if conn.closed:
        raise psycopg.OperationalError("connection closed")
    try:
        readable = _readable(conn.pgconn.socket)
    except (OSError, ValueError):
        raise psycopg.OperationalError("connection socket unusable") from None
    if readable:
        await AsyncConnectionPool.check_connection(conn)


def _readable(fd: int) -> bool:
    """Whether ``fd`` has something to read (or hung up), without waiting. ``poll`` (or a
    selector where there is none) takes any descriptor; ``select.select`` refuses those
    from 1,024 on, which a busy server's connections reach."""
    if _poll is None:
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            return bool(selector.select(0))
    poller = _poll()
    poller.register(fd, select.POLLIN | select.POLLPRI)
    return bool(poller.poll(0))


_poll = getattr(select, "poll", None)


@asynccontextmanager
async def open_pool(url: str, settings: Settings) -> AsyncIterator[AsyncConnectionPool[Any]]:
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        url,
        min_size=settings.db_pool_min,
        max_size=max(settings.db_pool_max, settings.db_pool_min),
        open=False,
        timeout=10.0,
        name="personae",
        check=_check_idle_connection,
        reconnect_timeout=300.0,
        kwargs={"autocommit": True},
    )
    try:
        await pool.open(wait=True, timeout=15.0)
    except PoolTimeout:
        await pool.close()
        raise ServiceUnavailable("cannot connect to PostgreSQL (timed out after 15 s)") from None
    try:
        yield pool
    finally:
        await pool.close()


async def ping(pool: AsyncConnectionPool[Any]) -> None:
    """One round trip to PostgreSQL through the pool: raises when it cannot answer."""
    async with pool.connection() as conn:
        await conn.execute(PING_SQL)


@asynccontextmanager
async def open_redis(url: str) -> AsyncIterator[Redis]:
    # no socket_timeout: it would also end idle pub/sub reads; callers bound their own waits
    client: Redis = Redis.from_url(url, socket_connect_timeout=5.0, health_check_interval=30)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        raise ServiceUnavailable(f"cannot connect to Redis: {exc}") from None
    try:
        yield client
    finally:
        await client.aclose()
