"""One behavioural suite for both VectorIndex backends (Edge for real, server in memory)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import numpy as np
import pytest

from memory import (
    DimensionMismatch,
    FakeEmbedder,
    IndexNotOpen,
    InvalidMemory,
    MemoryFilter,
    MemoryNotFound,
    MemoryQuery,
    ScoringWeights,
    VectorIndex,
)
from tests.memory.helpers import DIM, NOW, open_index, query, record, remember


def texts(results: list) -> list[str]:  # type: ignore[type-arg]
    return [r.record.text for r in results]


# ---- storing and reading -----------------------------------------------------------


async def test_get_returns_every_field_as_stored(
    index: VectorIndex, embedder: FakeEmbedder
) -> None:
    original = record(
        "My sister Mileva lives in Zurich",
        kind="fact",
        importance=0.8,
        pinned=True,
        external_id="msg-42",
        metadata={"source": "chat", "turn": 3, "tags": ["family"]},
    )
    await remember(index, embedder, [original])

    assert await index.get(original.id) == original
    assert (await index.get(original.id)).metadata == original.metadata  # type: ignore[union-attr]
    assert await index.get(uuid.uuid4()) is None


async def test_upsert_with_the_same_id_replaces(index: VectorIndex, embedder: FakeEmbedder) -> None:
    first = record("I live in Bern")
    await remember(index, embedder, [first])
    from dataclasses import replace

    await remember(index, embedder, [replace(first, text="I moved to Prague")])

    assert (await index.get(first.id)).text == "I moved to Prague"  # type: ignore[union-attr]
    assert await index.count("einstein") == 1


async def test_get_outside_the_scope_returns_none(
    index: VectorIndex, embedder: FakeEmbedder
) -> None:
    mine = record("my secret is 1234")
    await remember(index, embedder, [mine])

    assert await index.get(mine.id, persona_id="einstein", user_id="ann") == mine
    assert await index.get(mine.id, user_id="bob") is None
    assert await index.get(mine.id, persona_id="curie") is None


async def test_upsert_rejects_vectors_of_another_dimension(index: VectorIndex) -> None:
    with pytest.raises(DimensionMismatch):
        await index.upsert([record("hello")], np.ones((1, DIM + 1), dtype=np.float32))
    with pytest.raises(InvalidMemory):
        await index.upsert([record("a"), record("b")], np.ones((1, DIM), dtype=np.float32))


# ---- listing and counting ------------------------------------------------------------


async def test_list_pages_newest_first_without_gaps_or_repeats(
    index: VectorIndex, embedder: FakeEmbedder
) -> None:
    stored = [record(f"memory number {i}", hours_ago=i) for i in range(7)]
    # five share one timestamp and straddle pages: paging must neither skip nor repeat them
    stored += [record(f"same moment {i}", hours_ago=3.5) for i in range(5)]
    await remember(index, embedder, stored)

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await index.list_memories(MemoryFilter("einstein"), limit=3, cursor=cursor)
        seen += [r.text for r in page.records]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor

    expected = sorted(stored, key=lambda r: r.created_at, reverse=True)
    assert sorted(seen) == sorted(r.text for r in stored)
    assert len(seen) == len(set(seen)) == 12
    assert pages == 4
    stamps = [r.created_at for r in expected]
    listed = [next(r.created_at for r in stored if r.text == t) for t in seen]
    assert listed == stamps


async def test_list_filters_by_user_session_kind_time_and_pin(
    index: VectorIndex, embedder: FakeEmbedder
) -> None:
    await remember(
        index,
        embedder,
        [
            record("old turn", hours_ago=100),
            record("recent turn", hours_ago=1, session_id="s2"),
            record("a fact", kind="fact", hours_ago=2, pinned=True),
            record("bob's turn", user_id="bob", hours_ago=1),
            record("curie's turn", persona_id="curie", hours_ago=1),
        ],
    )

    async def listed(**kw: object) -> set[str]:
        page = await index.list_memories(MemoryFilter("einstein", **kw), limit=50)  # type: ignore[arg-type]
        return {r.text for r in page.records}

    assert await listed() == {"old turn", "recent turn", "a fact", "bob's turn"}
    assert await listed(user_id="ann") == {"old turn", "recent turn", "a fact"}
    assert await listed(session_id="s2") == {"recent turn"}
    assert await listed(kinds=frozenset({"fact"})) == {"a fact"}
    assert await listed(since=NOW - timedelta(hours=10)) == {"recent turn", "a fact", "bob's turn"}
    assert await listed(until=NOW - timedelta(hours=10)) == {"old turn"}
    assert await listed(pinned=True) == {"a fact"}


async def test_count_per_persona_and_user(index: VectorIndex, embedder: FakeEmbedder) -> None:
    await remember(
        index,
        embedder,
        [record("a"), record("b"), record("c", user_id="bob"), record("d", persona_id="curie")],
    )
    assert await index.count("einstein") == 3
    assert await index.count("einstein", "ann") == 2
    assert await index.count("einstein", "bob") == 1
    assert await index.count("curie") == 1
    assert await index.count("nobody") == 0


# ---- forgetting, pinning, importance ------------------------------------------------


async def test_delete_by_id_respects_the_scope(index: VectorIndex, embedder: FakeEmbedder) -> None:
    mine, theirs = record("mine"), record("theirs", user_id="bob")
    await remember(index, embedder, [mine, theirs])

    await index.delete([mine.id, theirs.id], persona_id="einstein", user_id="ann")

    assert await index.get(mine.id) is None
    assert await index.get(theirs.id) == theirs
    await index.delete([theirs.id])
    assert await index.get(theirs.id) is None


async def test_forget_session_removes_only_that_session(
    index: VectorIndex, embedder: FakeEmbedder
) -> None:
    await remember(
        index,
        embedder,
        [record("one"), record("two"), record("other session", session_id="s2")],
    )
    assert await index.forget_session("s1", persona_id="einstein") == 2
    remaining = await index.list_memories(MemoryFilter("einstein"))
    assert [r.text for r in remaining.records] == ["other session"]
    assert await index.forget_session("s1") == 0


async def test_forget_user_for_one_persona_or_all(
    index: VectorIndex, embedder: FakeEmbedder
) -> None:
    await remember(
        index,
        embedder,
        [
            record("ann with einstein"),
            record("ann with curie", persona_id="curie"),
            record("ann with tesla", persona_id="tesla"),
            record("bob with einstein", user_id="bob"),
        ],
    )
    assert await index.forget_user("ann", persona_id="einstein") == 1
    assert await index.count("curie", "ann") == 1
    assert await index.forget_user("ann") == 2
    assert await index.count("curie") == await index.count("tesla") == 0
    assert await index.count("einstein", "bob") == 1


async def test_set_pinned_and_importance(index: VectorIndex, embedder: FakeEmbedder) -> None:
    memory = record("I am allergic to peanuts", importance=0.4)
    await remember(index, embedder, [memory])

    await index.set_pinned(memory.id, True, persona_id="einstein", user_id="ann")
    await index.set_importance(memory.id, 0.95)
    stored = await index.get(memory.id)
    assert stored is not None and stored.pinned and stored.importance == 0.95

    await index.set_pinned(memory.id, False)
    assert (await index.get(memory.id)).pinned is False  # type: ignore[union-attr]
    with pytest.raises(MemoryNotFound):
        await index.set_pinned(memory.id, True, user_id="bob")
    with pytest.raises(MemoryNotFound):
        await index.set_importance(uuid.uuid4(), 0.5)
    with pytest.raises(InvalidMemory):
        await index.set_importance(memory.id, 1.5)


# ---- retrieval -----------------------------------------------------------------------


async def test_search_never_returns_another_users_or_personas_memories(
    index: VectorIndex, embedder: FakeEmbedder
) -> None:
    same_text = "my favourite colour is blue"
    await remember(
        index,
        embedder,
        [
            record(same_text),
            record(same_text, user_id="bob", pinned=True),
            record(same_text, persona_id="curie", pinned=True),
        ],
    )
    results = await index.search(await query(embedder, same_text))
    assert [(r.record.persona_id, r.record.user_id) for r in results] == [("einstein", "ann")]

    every_user = await index.search(await query(embedder, same_text, user_id=None))
    assert sorted(r.record.user_id for r in every_user) == ["ann", "bob"]
    assert {r.record.persona_id for r in every_user} == {"einstein"}


async def test_relevant_memory_ranks_first(index: VectorIndex, embedder: FakeEmbedder) -> None:
    await remember(
        index,
        embedder,
        [
            record("we talked about the weather"),
            record("my cat Felix sleeps all day"),
            record("I play violin on sundays"),
        ],
    )
    results = await index.search(await query(embedder, "how is your cat Felix"))
    assert texts(results)[0] == "my cat Felix sleeps all day"
    best = results[0].score
    assert best.relevance > results[1].score.relevance
    assert best.keyword > 0 and best.keyword_z > 0 and best.relevance_z > 0
    assert best.total == pytest.approx(
        1.0 * best.relevance_z
        + 1.0 * best.keyword_z
        + 0.5 * best.speaker
        + 0.1 * best.recency
        + 0.1 * best.importance
    )


async def test_newer_memory_wins_between_equals(index: VectorIndex, embedder: FakeEmbedder) -> None:
    await remember(
        index,
        embedder,
        [
            record("I like green tea", hours_ago=200),
            record("I like green tea", hours_ago=2, session_id="new"),
        ],
    )
    results = await index.search(await query(embedder, "green tea"))
    assert [r.record.session_id for r in results] == ["new", "s1"]
    assert results[0].score.recency > 0.95
    assert results[1].score.recency < 0.2


async def test_more_important_memory_wins_between_equals(
    index: VectorIndex, embedder: FakeEmbedder
) -> None:
    await remember(
        index,
        embedder,
        [
            record("I own a boat", importance=0.1),
            record("I own a boat", importance=0.9, session_id="key"),
        ],
    )
    results = await index.search(await query(embedder, "boat"))
    assert [r.record.session_id for r in results] == ["key", "s1"]


async def test_pinned_memory_is_always_returned(index: VectorIndex, embedder: FakeEmbedder) -> None:
    distractors = [record(f"chess opening number {i} is sharp") for i in range(12)]
    pinned = record("Ann's daughter is called Lieserl", pinned=True, hours_ago=900, importance=0.0)
    unpinned = record("Ann's son is called Hans", hours_ago=900, importance=0.0)
    await remember(index, embedder, [*distractors, pinned, unpinned])

    results = await index.search(await query(embedder, "chess opening", k=3))
    assert pinned.id in [r.record.id for r in results]
    assert unpinned.id not in [r.record.id for r in results]
    assert len(results) == 4
    assert [r.score.pinned for r in results].count(True) == 1


async def test_rare_keyword_found_even_when_meaning_points_elsewhere(
    index: VectorIndex, embedder: FakeEmbedder
) -> None:
    await remember(
        index,
        embedder,
        [record(f"we discussed the weather and the rain again, day {i}") for i in range(30)]
        + [record("the locker code is 88412")],
    )
    # the dense vector leans (weakly) towards the weather chats, as a model that reads
    # numbers poorly would; only the keyword channel knows about 88412
    vector = await embedder.embed_one("is rain likely tomorrow or later this week")
    hybrid = MemoryQuery(
        persona_id="einstein",
        user_id="ann",
        text="what was 88412 about",
        vector=vector,
        k=3,
        now=NOW,
    )
    found = await index.search(hybrid)
    assert texts(found)[0] == "the locker code is 88412"
    assert found[0].score.keyword > 0.3

    dense_only = await index.search(hybrid, ScoringWeights(keyword=0.0))
    assert "the locker code is 88412" not in texts(dense_only)


async def test_search_filters_session_kind_and_time(
    index: VectorIndex, embedder: FakeEmbedder
) -> None:
    await remember(
        index,
        embedder,
        [
            record("piano lesson today", session_id="a"),
            record("piano lesson fact", session_id="b", kind="fact"),
            record("piano lesson long ago", session_id="c", hours_ago=500),
        ],
    )
    q = await query(embedder, "piano lesson", session_id="a")
    assert texts(await index.search(q)) == ["piano lesson today"]
    q = await query(embedder, "piano lesson", kinds=frozenset({"fact"}))
    assert texts(await index.search(q)) == ["piano lesson fact"]
    q = await query(embedder, "piano lesson", until=NOW - timedelta(hours=100))
    assert texts(await index.search(q)) == ["piano lesson long ago"]


async def test_search_rejects_a_query_vector_of_another_dimension(index: VectorIndex) -> None:
    q = MemoryQuery(
        persona_id="einstein", user_id="ann", text="x", vector=np.ones(DIM * 2, dtype=np.float32)
    )
    with pytest.raises(DimensionMismatch):
        await index.search(q)


@pytest.mark.parametrize("backend", ["edge", "server", "shared"])
async def test_index_must_be_open(backend: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(IndexNotOpen):
        await open_index(backend, tmp_path).count("einstein")
