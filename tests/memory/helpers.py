"""Shared helpers of the memory tests."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from memory import (
    EdgeMemoryIndex,
    FakeEmbedder,
    MemoryQuery,
    MemoryRecord,
    ScoringWeights,
    ServerMemoryIndex,
    VectorIndex,
)
from memory.vector.remote import IndexHost, RemoteIndex

DIM = 64
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
BACKENDS = ("edge", "server", "shared")


class SharedEdge(RemoteIndex):
    """Qdrant Edge served by an :class:`IndexHost` and reached over its Unix socket, as
    the worker processes of ``personae serve --workers`` reach it."""

    def __init__(self, path: Path, weights: ScoringWeights | None = None) -> None:
        self.host = IndexHost(
            lambda dim: EdgeMemoryIndex(path / "qdrant", dim=dim, weights=weights),
            path / "index.sock",
        )
        super().__init__(path / "index.sock", dim=DIM)

    async def __aenter__(self) -> Self:
        await self.host.__aenter__()
        self._path = self.host.path
        try:
            return await super().__aenter__()
        except BaseException:
            await self.host.__aexit__(None, None, None)
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await super().__aexit__(exc_type, exc, tb)
        finally:
            await self.host.__aexit__(exc_type, exc, tb)


def open_index(backend: str, path: Path, weights: ScoringWeights | None = None) -> VectorIndex:
    if backend == "edge":
        return EdgeMemoryIndex(path / "qdrant", dim=DIM, weights=weights)
    if backend == "shared":
        return SharedEdge(path, weights)
    return ServerMemoryIndex(":memory:", dim=DIM, weights=weights)


def record(text: str, *, hours_ago: float = 1.0, **fields: Any) -> MemoryRecord:
    """A record of persona 'einstein' and user 'ann' in session 's1' unless told
    otherwise, made ``hours_ago`` before :data:`NOW`."""
    values: dict[str, Any] = {
        "persona_id": "einstein",
        "user_id": "ann",
        "session_id": "s1",
        "speaker_name": "Ann",
        "speaker_role": "user",
        "created_at": NOW - timedelta(hours=hours_ago),
    }
    values.update(fields)
    return MemoryRecord.new(text=text, **values)


async def remember(
    index: VectorIndex, embedder: FakeEmbedder, records: Iterable[MemoryRecord]
) -> list[MemoryRecord]:
    batch = list(records)
    await index.upsert(batch, await embedder.embed([r.text for r in batch]))
    return batch


async def query(
    embedder: FakeEmbedder, text: str, *, user_id: str | None = "ann", **fields: object
) -> MemoryQuery:
    """A query of persona 'einstein' for user 'ann' (unless told otherwise), k=5, at
    :data:`NOW`."""
    values: dict[str, object] = {"persona_id": "einstein", "k": 5, "now": NOW}
    values.update(fields)
    return MemoryQuery(user_id=user_id, text=text, vector=await embedder.embed_one(text), **values)  # type: ignore[arg-type]
