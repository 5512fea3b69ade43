"""One session's turns run one at a time across every process and node: a PostgreSQL
advisory lock per session, held for the turn on a connection of a small pool of its own.

Inside a process an ``asyncio.Lock`` per session queues the turns first, so at most one
turn per session and process waits on PostgreSQL, and a process's lock connections
bound how many sessions run turns at once in it. The lock goes with its connection: a
process that dies mid-turn lets the next turn run."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

log = logging.getLogger(__name__)
_LOCK = "SELECT pg_advisory_lock(%s)"
_UNLOCK = "SELECT pg_advisory_unlock(%s)"


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
                    key = lock_key(session_id)
                    async with asyncio.timeout(self._wait_s):
                        await conn.execute(_LOCK, (key,))
                    try:
                        yield
                    finally:
                        try:
                            await conn.execute(_UNLOCK, (key,))
                        except psycopg.Error as exc:
                            # closing the connection releases the lock too
                            log.warning("session %s: unlock failed (%s); closing", session_id, exc)
                            await conn.close()
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._local[session_id]
