"""Qdrant Edge keeps recent memories as records in process (searches fetch only ids and
scores): every write through the index must show in the next search and get."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from memory import EdgeMemoryIndex, FakeEmbedder
from tests.memory.helpers import DIM, query, record, remember


async def search(index: EdgeMemoryIndex, embedder: FakeEmbedder, text: str) -> list[Any]:
    return await index.search(await query(embedder, text, k=10))


async def test_writes_show_in_the_next_search(tmp_path: Path, embedder: FakeEmbedder) -> None:
    bern, tea, chess = record("I live in Bern"), record("I like tea"), record("I play chess")
    async with EdgeMemoryIndex(tmp_path / "qdrant", dim=DIM) as index:
        await remember(index, embedder, [bern, tea, chess])
        assert {r.record.text for r in await search(index, embedder, "Bern")} == {
            "I live in Bern",
            "I like tea",
            "I play chess",
        }

        await index.set_pinned(bern.id, True)
        await index.set_importance(tea.id, 0.9)
        await index.delete([chess.id])
        found = {r.record.id: r.record for r in await search(index, embedder, "Bern")}
        assert set(found) == {bern.id, tea.id}
        assert found[bern.id].pinned and found[tea.id].importance == 0.9
        assert await index.get(chess.id) is None

        await index.forget_session("s1")
        assert await search(index, embedder, "Bern") == []
        assert await index.get(bern.id) is None


async def test_a_small_cache_still_returns_every_record(
    tmp_path: Path, embedder: FakeEmbedder
) -> None:
    lines = [record(f"I visited city number {n}", hours_ago=n) for n in range(1, 6)]
    async with EdgeMemoryIndex(tmp_path / "qdrant", dim=DIM, records_cached=2) as index:
        await remember(index, embedder, lines)
        assert len(index._records) == 2
        found = await search(index, embedder, "city")
        by_id = {r.record.id: r.record for r in found}
        assert by_id == {r.id: r for r in lines}  # the misses read from the shard
        assert len(index._records) == 2


async def test_a_read_overtaken_by_a_write_does_not_fill_the_cache(
    tmp_path: Path, embedder: FakeEmbedder
) -> None:
    """A read that fetched a record while a write to it finished may hold the old
    version: it is returned to its caller but not kept."""
    bern = record("I live in Bern")
    async with EdgeMemoryIndex(tmp_path / "qdrant", dim=DIM, records_cached=10) as index:
        await remember(index, embedder, [bern])
        index._records.clear()
        read = index._read

        async def overtaken(op: str, fn: Any) -> Any:
            found = await read(op, fn)
            index._changed([bern.id])  # the write's end, while this read was out
            return found

        index._read = overtaken  # type: ignore[method-assign]
        assert await index.get(bern.id) == bern
        assert bern.id.int not in index._records
        index._read = read  # type: ignore[method-assign]
        assert await index.get(bern.id) == bern
        assert bern.id.int in index._records
