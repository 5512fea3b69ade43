"""What one turn costs PostgreSQL: a message sent over Socket.IO to a server with the
session lock pool, answered, remembered and its traits observed, in at most four
transactions. Every transaction the server's connections begin is counted here, on the
client side: a statement run outside a transaction block (the pools are autocommit) and
each outermost ``transaction()`` block."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import pytest
from psycopg.pq import TransactionStatus

from personas import Actor
from socket_server.keys import CHAT
from tests.personas.factory import definition
from tests.socket_server.conftest import Server

ADMIN = Actor("admin", is_admin=True)
MOST = 4


class Transactions:
    """The first statement of every transaction begun while ``on``."""

    def __init__(self) -> None:
        self.on = False
        self.begun: list[str] = []

    def note(self, conn: psycopg.AsyncConnection[Any], what: str) -> None:
        idle = conn.info.transaction_status == TransactionStatus.IDLE
        if self.on and idle and conn.autocommit:
            self.begun.append(" ".join(what.split())[:120])


@pytest.fixture
def transactions(monkeypatch: pytest.MonkeyPatch) -> Transactions:
    seen = Transactions()
    execute = psycopg.AsyncCursor.execute
    transaction = psycopg.AsyncConnection.transaction

    async def counted_execute(self: Any, query: Any, *args: Any, **kw: Any) -> Any:
        seen.note(self.connection, query if isinstance(query, str) else repr(query))
        return await execute(self, query, *args, **kw)

    @asynccontextmanager
    async def counted_transaction(self: Any, *args: Any, **kw: Any) -> AsyncIterator[Any]:
        seen.note(self, "BEGIN (a transaction block)")
        async with transaction(self, *args, **kw) as tx:
            yield tx

    monkeypatch.setattr(psycopg.AsyncCursor, "execute", counted_execute)
    monkeypatch.setattr(psycopg.AsyncConnection, "transaction", counted_transaction)
    return seen


async def test_a_turn_takes_at_most_four_transactions(
    server: Server, connect: Any, transactions: Transactions
) -> None:
    await server.services.personas.create(definition("tutor"), ADMIN)
    tab = await connect(server, name="Alice")
    sid = (await tab.call("session.start", {"personas": ["tutor"]}))["session"]["id"]

    async def turn(text: str) -> None:
        sent = await tab.call(
            "message.send", {"session_id": sid, "text": text, "client_msg_id": uuid.uuid4().hex}
        )
        assert sent["ok"], sent
        mid = sent["message"]["id"]
        await tab.wait_for("message.done", lambda d: d["message"]["reply_to"] == mid)
        # the work after the reply (memories, traits) ends with the turn's task
        assert await server.app[CHAT].wait_for_turn(uuid.UUID(mid), 15)

    transactions.on = True
    # the session's first turn (its trait profile is read, then kept), and a later one
    for text in ("Hello, I am Alice and I like climbing.", "What do I like doing?"):
        transactions.begun.clear()
        await turn(text)
        await asyncio.sleep(0)
        assert len(transactions.begun) <= MOST, "\n".join(transactions.begun)
    transactions.on = False
