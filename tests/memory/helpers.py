"""Shared helpers of the memory tests."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from memory import (
    EdgeMemoryIndex,
    FakeEmbedder,
    MemoryRecord,
    ScoringWeights,
    ServerMemoryIndex,
    VectorIndex,
)

DIM = 64
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
BACKENDS = ("edge", "server")


def open_index(backend: str, path: Path, weights: ScoringWeights | None = None) -> VectorIndex:
    if backend == "edge":
        return EdgeMemoryIndex(path / "qdrant", dim=DIM, weights=weights)
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
