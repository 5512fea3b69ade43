"""One session's turns run one at a time across every process and node: a PostgreSQL
advisory lock per session, held for the turn on a connection of a small pool of its own;
and a user message interrupts its session's autonomous round wherever it runs (Redis).

Inside a process an ``asyncio.Lock`` per session queues the turns first, so at most one
turn per session and process waits on PostgreSQL, and a process's lock connections
bound how many sessions run turns at once in it. The lock is transaction-level
(``pg_advisory_xact_lock``), taken in a transaction that stays open for the turn and
ends with it: one transaction, not a lock and an unlock of their own. The turn's
transcript read runs inside it (``memory.record.turn_transaction``). The open
transaction holds no snapshot between statements and writes nothing, so it holds back
no vacuum. The lock goes with its connection: a process that dies mid-turn lets the
next turn run."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Self

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis
from redis.exceptions import RedisError

from memory.record.turn_transaction import holding

log = logging.getLogger(__name__)
# one round trip: the transaction begins and takes the lock (a literal key: a simple
# query may hold two statements, a query with parameters only one)
LOCK_SQL = "BEGIN; SELECT pg_advisory_xact_lock({})"
END_SQL = "COMMIT"


def lock_key(session_id: uuid.UUID) -> int:
    """The session's advisory lock key: its id's first 64 bits, signed. (A collision
    only orders two sessions' turns, never mixes them.)"""
    return int.from_bytes(session_id.bytes[:8], "big", signed=True)


@dataclass(slots=True)
class _Waiting:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class SessionOrder:
    """``async with order.turn(session_id)``: the session's turns, one at a time, here
    and on every process sharing the database. ``pool`` is None: this process only."""

    def __init__(self, pool: AsyncConnectionPool[Any] | None, *, wait_s: float = 600.0) -> None:
        self._pool = pool
        self._wait_s = wait_s
        self._local: dict[uuid.UUID, _Waiting] = {}

    def waiting(self, session_id: uuid.UUID) -> int:
        """Turns of the session in this process that hold or wait for its lock."""
        entry = self._local.get(session_id)
        return 0 if entry is None else entry.users

    @asynccontextmanager
    async def turn(self, session_id: uuid.UUID) -> AsyncIterator[None]:
        entry = self._local.setdefault(session_id, _Waiting())
        entry.users += 1
        try:
            async with entry.lock:
                if self._pool is None:
                    yield
                    return
                async with self._pool.connection(timeout=self._wait_s) as conn:
                    lock = sql.SQL(LOCK_SQL).format(sql.Literal(lock_key(session_id)))
                    try:
                        async with asyncio.timeout(self._wait_s):
                            await conn.execute(lock)
                    except BaseException:
                        await _end(conn, session_id)
                        raise
                    try:
                        with holding(conn):
                            yield
                    finally:
                        await _end(conn, session_id)
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._local[session_id]


async def _end(conn: psycopg.AsyncConnection[Any], session_id: uuid.UUID) -> None:
    """End the turn's transaction, which releases its lock; closing the connection
    releases it too, when the end fails."""
    if conn.closed or conn.info.transaction_status == TransactionStatus.IDLE:
        return
    try:
        await conn.execute(END_SQL)
    except (psycopg.Error, asyncio.CancelledError) as exc:
        log.warning("session %s: turn lock not released (%s); closing", session_id, exc)
        await conn.close()
        if isinstance(exc, asyncio.CancelledError):
            raise


class Interrupts:
    """A user message stops its session's autonomous round on whichever process runs it:
    the process that stored the message sets its own event and publishes the session id
    on Redis; every process listens and sets its own. ``redis`` None: this process only.
    While Redis is down a round on another process runs to its end (a bounded number of
    turns), and the listener reconnects by itself."""

    def __init__(self, redis: Redis | None, channel: str = "personae:interrupts") -> None:
        self._redis = redis
        self._channel = channel
        self._events: dict[uuid.UUID, asyncio.Event] = {}
        self._listener: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        if self._redis is not None:
            self._listener = asyncio.create_task(self._listen(), name="interrupt-listener")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.wait({self._listener}, timeout=5.0)
            self._listener = None

    def watch(self, session_id: uuid.UUID) -> asyncio.Event:
        """The event a round of the session stops on; :meth:`unwatch` when it is over."""
        event = self._events[session_id] = asyncio.Event()
        return event

    def unwatch(self, session_id: uuid.UUID) -> None:
        self._events.pop(session_id, None)

    async def interrupt(self, session_id: uuid.UUID) -> None:
        self._set(session_id)
        if self._redis is None:
            return
        try:
            async with asyncio.timeout(1.0):
                await self._redis.publish(self._channel, str(session_id))
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("session %s: interrupt not published (%s)", session_id, exc)

    def _set(self, session_id: uuid.UUID) -> None:
        event = self._events.get(session_id)
        if event is not None:
            event.set()

    async def _listen(self) -> None:
        assert self._redis is not None
        delay = 1.0
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                delay = 1.0
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    data = message.get("data")
                    try:
                        session_id = uuid.UUID(data.decode() if isinstance(data, bytes) else data)
                    except (TypeError, ValueError, AttributeError):
                        continue
                    self._set(session_id)
            except (RedisError, OSError) as exc:
                log.warning("interrupt listener: redis unavailable (%s); retrying", exc)
            finally:
                with contextlib.suppress(RedisError, OSError, TimeoutError):
                    async with asyncio.timeout(2.0):
                        await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
