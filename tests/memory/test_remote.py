"""The shared index's own behaviour: errors keep their type across the socket, a lost
host fails calls clearly, and a restarted host is reached again."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import numpy as np
import pytest

from memory import (
    DimensionMismatch,
    EdgeMemoryIndex,
    IndexUnavailable,
    InvalidMemory,
    MemoryQuery,
)
from memory.vector.remote import IndexHost, RemoteIndex
from tests.memory.helpers import DIM, SharedEdge, record, remember


async def test_errors_keep_their_type_and_fields(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    async with SharedEdge(tmp_path) as index:
        with pytest.raises(InvalidMemory) as caught:
            await index.search(
                MemoryQuery(persona_id="", user_id="ann", text="x", vector=np.ones(DIM))
            )
        assert caught.value.field
        with pytest.raises(DimensionMismatch) as mismatch:
            await index.search(
                MemoryQuery(persona_id="p", user_id="ann", text="x", vector=np.ones(DIM + 1))
            )
        assert (mismatch.value.expected, mismatch.value.got) == (DIM, DIM + 1)


async def test_a_client_with_another_dimension_is_refused(tmp_path: Path) -> None:
    async with SharedEdge(tmp_path) as index:
        with pytest.raises(DimensionMismatch):
            async with RemoteIndex(index.host.path, dim=DIM * 2):
                pass
        assert await index.count("einstein") == 0


async def test_many_calls_in_flight_on_one_connection(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    async with SharedEdge(tmp_path) as index:
        await remember(index, embedder, [record(f"fact number {i}") for i in range(40)])
        counts = await asyncio.gather(*(index.count("einstein") for _ in range(50)))
        assert counts == [40] * 50


async def test_a_lost_host_fails_calls_and_a_restarted_one_is_reached(
    tmp_path: Path,
    embedder,  # type: ignore[no-untyped-def]
) -> None:
    def opener(dim: int) -> EdgeMemoryIndex:
        return EdgeMemoryIndex(tmp_path / "qdrant", dim=dim)

    socket = tmp_path / "i.sock"
    host = IndexHost(opener, socket)
    await host.__aenter__()
    async with RemoteIndex(host.path, dim=DIM) as index:
        await remember(index, embedder, [record("the violin in the evening")])
        await host.__aexit__(None, None, None)
        with pytest.raises(IndexUnavailable):
            await index.count("einstein")
        async with IndexHost(opener, socket):
            # the data is on disk; the next call reconnects and reopens the index
            assert await index.count("einstein") == 1
            assert await index.get(uuid.uuid4()) is None
            async with RemoteIndex(socket, dim=DIM) as again:
                assert await again.count("einstein") == 1


async def test_the_socket_is_private(tmp_path: Path) -> None:
    async with SharedEdge(tmp_path) as index:
        assert index.host.path.stat().st_mode & 0o077 == 0


async def test_a_socket_another_user_owns_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replies are unpickled: a client talks only to a socket of its own user, served by
    a process of its own user."""
    import os

    async with SharedEdge(tmp_path) as index:
        path = index.host.path
        assert await index.count("einstein") == 0
        if os.getuid() == 0:  # root can give the socket away, as another user's would be
            os.chown(path, 4242, 4242)
            try:
                with pytest.raises(IndexUnavailable, match="belongs to user id 4242"):
                    async with RemoteIndex(path, dim=DIM):
                        pass
            finally:
                os.chown(path, 0, 0)
        real = os.getuid()
        monkeypatch.setattr(os, "getuid", lambda: real + 1)  # as if another user asked
        with pytest.raises(IndexUnavailable, match="not to this user"):
            async with RemoteIndex(path, dim=DIM):
                pass
