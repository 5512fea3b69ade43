"""Edge data survives reopening; both backends rank the same data the same way."""

from __future__ import annotations

from pathlib import Path

import pytest

from memory import EdgeMemoryIndex, FakeEmbedder, IndexUnavailable, MemoryFilter, MemoryQuery
from tests.memory.helpers import DIM, NOW, open_index, record, remember


async def test_edge_memories_survive_close_and_reopen(
    tmp_path: Path, embedder: FakeEmbedder
) -> None:
    kept = record("my passport number is X1234567", pinned=True)
    dropped = record("forget this one")
    async with EdgeMemoryIndex(tmp_path / "qdrant", dim=DIM) as index:
        await remember(index, embedder, [kept, dropped, record("hello there", user_id="bob")])
        await index.delete([dropped.id])
        await index.set_importance(kept.id, 0.9)

    async with EdgeMemoryIndex(tmp_path / "qdrant", dim=DIM) as index:
        assert await index.count("einstein") == 2
        stored = await index.get(kept.id)
        assert stored is not None and stored.pinned and stored.importance == 0.9
        assert await index.get(dropped.id) is None
        q = MemoryQuery(
            persona_id="einstein",
            user_id="ann",
            text="passport X1234567",
            vector=await embedder.embed_one("passport X1234567"),
            now=NOW,
        )
        assert [r.record.id for r in await index.search(q)] == [kept.id]
        await remember(index, embedder, [record("after reopen")])
        page = await index.list_memories(MemoryFilter("einstein", user_id="ann"))
        assert [r.text for r in page.records] == [
            "after reopen",
            "my passport number is X1234567",
        ] or {r.text for r in page.records} == {"after reopen", "my passport number is X1234567"}


async def test_edge_refuses_a_folder_of_another_dimension(tmp_path: Path) -> None:
    async with EdgeMemoryIndex(tmp_path / "qdrant", dim=DIM):
        pass
    with pytest.raises(IndexUnavailable, match="384"):
        async with EdgeMemoryIndex(tmp_path / "qdrant", dim=384):
            pass


async def test_both_backends_rank_the_same_data_the_same_way(tmp_path: Path) -> None:
    embedder = FakeEmbedder(DIM, seed=3)
    topics = ["violin", "sailing", "physics", "Zurich", "Mileva", "patent office", "relativity"]
    records = [
        record(
            f"we talked about {topic} and {topics[(i * 3) % len(topics)]} on day {i}",
            hours_ago=5.0 * i + 1,
            importance=(i % 5) / 5,
            pinned=i == 17,
            kind="fact" if i % 4 == 0 else "turn",
            user_id="ann" if i % 6 else "bob",
        )
        for i, topic in enumerate(topics * 4)
    ]
    questions = ["tell me about violin", "Mileva in Zurich", "day 12", "sailing relativity physics"]
    rankings: dict[str, list[list[tuple[str, float]]]] = {}
    for backend in ("edge", "server"):
        async with open_index(backend, tmp_path / backend) as index:
            await remember(index, embedder, records)
            rankings[backend] = []
            for text in questions:
                q = MemoryQuery(
                    persona_id="einstein",
                    user_id="ann",
                    text=text,
                    vector=await embedder.embed_one(text),
                    k=6,
                    now=NOW,
                )
                found = await index.search(q)
                rankings[backend].append([(r.record.text, r.score.total) for r in found])

    for edge, server in zip(rankings["edge"], rankings["server"], strict=True):
        assert [t for t, _ in edge] == [t for t, _ in server]
        assert [s for _, s in edge] == pytest.approx([s for _, s in server], abs=1e-5)
    assert any(len(r) == 7 for r in rankings["edge"])  # the pinned one joined some results


async def test_edge_writes_land_in_the_order_they_were_issued(
    tmp_path: Path, embedder: FakeEmbedder
) -> None:
    """A turn's small upsert may run inline, but never ahead of a write already queued
    on the writer thread."""
    import asyncio
    import threading
    from dataclasses import replace

    import qdrant_edge as qe

    from memory.vector.edge import _apply, _point
    from memory.vector.index import to_payload

    fact = record("I live in Bern")
    (old,) = await embedder.embed([fact.text])
    release = threading.Event()

    def slow_write(shard: qe.EdgeShard) -> None:  # an import's chunk, taking its time
        release.wait(10)
        _apply(
            qe.UpdateOperation.upsert_points([_point(fact, old.tolist(), to_payload(fact))]), shard
        )

    async with EdgeMemoryIndex(tmp_path / "qdrant", dim=DIM) as index:
        queued = asyncio.create_task(index._write("upsert", slow_write))
        await asyncio.sleep(0.05)  # on the writer thread, waiting
        later = asyncio.create_task(
            remember(index, embedder, [replace(fact, text="I moved to Prague")])
        )
        await asyncio.sleep(0.05)
        release.set()
        await queued
        await later
        index._changed(None)  # read what the shard holds, not the cached record
        stored = await index.get(fact.id)
        assert stored is not None and stored.text == "I moved to Prague"
