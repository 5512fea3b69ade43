"""The transaction a turn holds: the session's turn order takes its lock inside a
transaction on a connection of its own and keeps that transaction open for the turn
(see ``runtime.infra.turn_order``). The turn's reads that need nothing committed first
(the recent transcript before the prompt, the session's trait profile) run inside it
instead of in one more transaction of their own. Writes never do: a reply must be committed before it is
announced, not when the turn ends."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from psycopg.pq import TransactionStatus
from psycopg_pool import AsyncConnectionPool


@dataclass(slots=True)
class _Held:
    conn: AsyncConnection[Any]
    open: bool = True


_HELD: ContextVar[_Held | None] = ContextVar("turn_transaction", default=None)


@contextmanager
def holding(conn: AsyncConnection[Any]) -> Iterator[None]:
    """Within this block (and the tasks it starts), reads of the turn use ``conn``,
    whose transaction is open. A task that outlives the block no longer does: the
    connection goes back to its pool."""
    held = _Held(conn)
    token = _HELD.set(held)
    try:
        yield
    finally:
        held.open = False
        _HELD.reset(token)


@asynccontextmanager
async def read_connection(pool: AsyncConnectionPool[Any]) -> AsyncIterator[AsyncConnection[Any]]:
    """The turn's held connection while its transaction is open and sound, else one of
    ``pool``'s (outside a turn, or after a statement in the held one failed)."""
    held = _HELD.get()
    if held is not None and held.open and _in_transaction(held.conn):
        yield held.conn
        return
    async with pool.connection() as conn:
        yield conn


def _in_transaction(conn: AsyncConnection[Any]) -> bool:
    return not conn.closed and conn.info.transaction_status == TransactionStatus.INTRANS


__all__ = ["holding", "read_connection"]
