"""The transaction a turn holds: the session's turn order takes its lock inside a
transaction on a connection of its own and keeps that transaction open for the turn
(see ``runtime.infra.turn_order``). The turn's reads that need nothing committed first
(the recent transcript before the prompt) run inside it instead of in one more
transaction of their own. Writes never do: a reply must be committed before it is
announced, not when the turn ends."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import Any

from psycopg import AsyncConnection
from psycopg.pq import TransactionStatus
from psycopg_pool import AsyncConnectionPool

_HELD: ContextVar[AsyncConnection[Any] | None] = ContextVar("turn_transaction", default=None)


@contextmanager
def holding(conn: AsyncConnection[Any]) -> Iterator[None]:
    """Within this block (and the tasks it starts), reads of the turn use ``conn``,
    whose transaction is open."""
    token = _HELD.set(conn)
    try:
        yield
    finally:
        _HELD.reset(token)


@asynccontextmanager
async def read_connection(pool: AsyncConnectionPool[Any]) -> AsyncIterator[AsyncConnection[Any]]:
    """The turn's held connection while its transaction is open and sound, else one of
    ``pool``'s (outside a turn, or after a statement in the held one failed)."""
    held = _HELD.get()
    sound = held is not None and not held.closed
    if held is not None and sound and held.info.transaction_status == TransactionStatus.INTRANS:
        yield held
        return
    async with pool.connection() as conn:
        yield conn


__all__ = ["holding", "read_connection"]
