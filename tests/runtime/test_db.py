"""The pool's idle-connection check on a process with many descriptors open."""

from __future__ import annotations

import os
import resource
import select
from collections.abc import Iterator

import psycopg
import pytest

from runtime.infra.db import _check_idle_connection

DESCRIPTORS = 1_100


@pytest.fixture
def many_descriptors() -> Iterator[None]:
    """Descriptors open until the next one is past ``select.select``'s 1,024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = DESCRIPTORS + 200
    if soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            pytest.skip(f"this process may open only {hard} descriptors")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    opened: list[int] = []
    try:
        while not opened or opened[-1] < DESCRIPTORS:
            opened.append(os.open(os.devnull, os.O_RDONLY))
        yield
    finally:
        for fd in opened:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_live_and_dead_connections_are_told_apart_past_descriptor_1024(
    database_url: str, many_descriptors: None
) -> None:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        assert conn.pgconn.socket > 1024
        await _check_idle_connection(conn)  # live and idle: handed out
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as admin:
            await admin.execute("SELECT pg_terminate_backend(%s)", (conn.pgconn.backend_pid,))
        poller = select.poll()
        poller.register(conn.pgconn.socket, select.POLLIN)
        assert poller.poll(10_000), "the server did not close the connection"
        with pytest.raises(psycopg.OperationalError):
            await _check_idle_connection(conn)
