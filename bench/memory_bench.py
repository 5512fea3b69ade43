"""Memory layer benchmark: Edge upserts, retrieval latency, embedding throughput.

    python bench/memory_bench.py [--sizes 1000,10000,100000] [--personas 20] [--queries 200]

For each size N, one persona holds N memories (spread over ``--users`` users) and every
other persona holds N/10 (at least 500), all in one embedded Qdrant Edge shard. Stored
vectors come from a pool of distinct synthetic sentences embedded with the real MiniLM,
each reused with small Gaussian noise (then re-normalised) and a varying text suffix.
Queries are new sentences embedded one at a time with MiniLM, scoped to one user.
Prints markdown tables.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from memory import (
    BatchedEmbedder,
    EdgeMemoryIndex,
    MemoryQuery,
    MemoryRecord,
    heuristic_importance,
    make_embedder,
)

NAMES = [
    "Anna",
    "Bruno",
    "Chiara",
    "Dmitri",
    "Elif",
    "Farid",
    "Greta",
    "Hiro",
    "Ines",
    "Jonas",
    "Kemal",
    "Lena",
    "Mateo",
    "Nadia",
    "Oskar",
    "Priya",
    "Quentin",
    "Rosa",
    "Sven",
    "Tomoko",
]
TOPICS = [
    "violin lessons",
    "sailing on the lake",
    "quantum physics",
    "sourdough baking",
    "the stock market",
    "a trip to Kyoto",
    "marathon training",
    "chess openings",
    "gardening tomatoes",
    "learning Portuguese",
    "a broken bicycle",
    "jazz records",
    "the thesis deadline",
    "a new puppy",
    "climbing in the Alps",
    "tax returns",
    "a sister's wedding",
    "night shifts at the hospital",
    "the football match",
    "painting watercolours",
    "a job interview",
    "moving to Berlin",
    "birdwatching",
    "fixing the kitchen sink",
    "a vegan recipe",
]
TEMPLATES = [
    "I told you about {topic} with {name} on day {n}.",
    "{name} and I argued about {topic} for {n} minutes.",
    "Remember that {name} hates {topic}, it came up {n} times.",
    "My favourite thing this week was {topic}; {name} joined at {n} pm.",
    "We spent {n} euros on {topic} and {name} was annoyed.",
    "Honestly {topic} is stressful, {name} says to relax for {n} days.",
    "{name} recommended a book about {topic}, page {n} is great.",
]
QUESTIONS = [
    "What did {name} think about {topic}?",
    "Tell me again about {topic}.",
    "How much did we spend on {topic}?",
    "Did I mention {name} recently?",
    "What do you remember about {topic} and {name}?",
    "Any news on {topic}?",
]


def pool_sentences(count: int, rng: random.Random) -> list[str]:
    seen: set[str] = set()
    while len(seen) < count:
        seen.add(
            rng.choice(TEMPLATES).format(
                topic=rng.choice(TOPICS), name=rng.choice(NAMES), n=rng.randint(1, 500)
            )
        )
    return sorted(seen)


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return pick(0.50), pick(0.95), pick(0.99)


async def timed(samples: list[float], call: Callable[[], Awaitable[object]]) -> None:
    start = time.perf_counter()
    await call()
    samples.append(time.perf_counter() - start)


@dataclass(frozen=True, slots=True)
class SizeResult:
    size: int
    total: int
    upsert_per_s: float
    optimize_s: float | None
    retrieval: tuple[float, float, float]
    embed: tuple[float, float, float]
    search: tuple[float, float, float]
    wide: tuple[float, float, float]


async def run_size(
    size: int,
    args: argparse.Namespace,
    embedder: BatchedEmbedder,
    pool_texts: list[str],
    pool_vectors: np.ndarray,
    rng: random.Random,
) -> SizeResult:
    nprng = np.random.default_rng(size)
    now = datetime.now(UTC)
    others = max(size // 10, 500)
    plan = [("persona-00", size)] + [(f"persona-{p:02d}", others) for p in range(1, args.personas)]
    total = sum(n for _, n in plan)
    with tempfile.TemporaryDirectory(prefix="memory-bench-") as folder:
        async with EdgeMemoryIndex(
            Path(folder) / "qdrant", dim=embedder.dim, offload_reads=False
        ) as index:
            upsert_s = 0.0
            for persona, count in plan:
                for start in range(0, count, args.batch):
                    n = min(args.batch, count - start)
                    picks = nprng.integers(0, len(pool_texts), n)
                    vectors = pool_vectors[picks] + nprng.normal(0, 0.01, (n, embedder.dim)).astype(
                        np.float32
                    )
                    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                    records = []
                    for j, pick in enumerate(picks):
                        text = f"{pool_texts[pick]} (note {start + j})"
                        records.append(
                            MemoryRecord.new(
                                persona_id=persona,
                                user_id=f"user-{(start + j) % args.users:03d}",
                                session_id=f"s-{(start + j) // 40}",
                                text=text,
                                speaker_name="User",
                                speaker_role="user",
                                importance=heuristic_importance(text),
                                created_at=now
                                - timedelta(minutes=float(nprng.integers(0, 60 * 24 * 90))),
                            )
                        )
                    began = time.perf_counter()
                    await index.upsert(records, vectors)
                    upsert_s += time.perf_counter() - began
            optimize_s = None
            if args.optimize:
                began = time.perf_counter()
                await index.optimize()
                optimize_s = time.perf_counter() - began

            # each query once (a numbered suffix), so the embedder's cache never answers
            questions = [
                rng.choice(QUESTIONS).format(topic=rng.choice(TOPICS), name=rng.choice(NAMES))
                + f" ({size}.{i})"
                for i in range(args.queries)
            ]
            users = [f"user-{rng.randrange(args.users):03d}" for _ in questions]
            # warm-up (page cache, first-call allocations)
            for q, u in zip(questions[:10], users[:10], strict=True):
                vec = await embedder.embed_one(f"warm-up: {q}")
                await index.search(
                    MemoryQuery(persona_id="persona-00", user_id=u, text=q, vector=vec)
                )

            retrieval: list[float] = []
            embed_only: list[float] = []
            search_only: list[float] = []
            persona_wide: list[float] = []
            vectors_q = []
            for q, u in zip(questions, users, strict=True):

                async def full(q: str = q, u: str = u) -> None:
                    began = time.perf_counter()
                    vec = await embedder.embed_one(q)
                    embed_only.append(time.perf_counter() - began)
                    vectors_q.append(vec)
                    await index.search(
                        MemoryQuery(persona_id="persona-00", user_id=u, text=q, vector=vec)
                    )

                await timed(retrieval, full)
            for q, u, vec in zip(questions, users, vectors_q, strict=True):
                query = MemoryQuery(persona_id="persona-00", user_id=u, text=q, vector=vec)
                await timed(search_only, partial(index.search, query))
                wide = MemoryQuery(persona_id="persona-00", user_id=None, text=q, vector=vec)
                await timed(persona_wide, partial(index.search, wide))
    return SizeResult(
        size=size,
        total=total,
        upsert_per_s=total / upsert_s,
        optimize_s=optimize_s,
        retrieval=percentiles(retrieval),
        embed=percentiles(embed_only),
        search=percentiles(search_only),
        wide=percentiles(persona_wide),
    )


async def embedding_throughput(
    embedder: BatchedEmbedder, texts: list[str]
) -> tuple[float, float, int]:
    began = time.perf_counter()
    for text in texts:
        await embedder.embed_one(text)
    sequential = len(texts) / (time.perf_counter() - began)

    queue = list(texts)
    calls_before = embedder.stats.calls

    async def caller() -> None:
        while queue:
            await embedder.embed_one(queue.pop())

    began = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(50)))
    concurrent = len(texts) / (time.perf_counter() - began)
    return sequential, concurrent, embedder.stats.calls - calls_before


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--personas", type=int, default=20)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--users", type=int, default=50, help="users of the measured persona")
    parser.add_argument(
        "--pool", type=int, default=2000, help="distinct sentences embedded with MiniLM"
    )
    parser.add_argument("--batch", type=int, default=1000, help="records per upsert call")
    parser.add_argument("--optimize", action="store_true", help="run optimize() before querying")
    parser.add_argument("--threads", type=int, default=1, help="embedder threads")
    parser.add_argument("--embedding-backend", choices=("auto", "onnx", "torch"), default="auto")
    parser.add_argument("--embedding-precision", choices=("int8", "fp32"), default="int8")
    parser.add_argument(
        "--model-cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "personae-bench-models",
        help="where the ONNX export is kept between runs",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rng = random.Random(42)

    async with make_embedder(
        backend=args.embedding_backend,
        cache_dir=args.model_cache,
        threads=args.threads,
        precision=args.embedding_precision,
    ) as embedder:
        pool_texts = pool_sentences(args.pool, rng)
        began = time.perf_counter()
        pool_vectors = await embedder.embed(pool_texts)
        pool_rate = len(pool_texts) / (time.perf_counter() - began)
        throughput_texts = [f"{t} (again)" for t in pool_texts[:400]]
        sequential, concurrent, calls = await embedding_throughput(embedder, throughput_texts)
        rows = [
            await run_size(size, args, embedder, pool_texts, pool_vectors, rng) for size in sizes
        ]

    print(
        f"\n## Memory benchmark ({os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, "
        f"embedder {embedder.label}, {args.threads} thread(s))\n"
    )
    print(f"Command: `python bench/memory_bench.py {' '.join(sys.argv[1:])}`".rstrip() + "\n")
    print(
        f"Stored vectors: {args.pool} distinct synthetic sentences embedded with all-MiniLM-L6-v2 "
        f"({pool_rate:.0f} sentences/s in one call), reused with N(0, 0.01) noise and re-normalised; "
        f"queries: new sentences embedded one at a time. Other personas hold N/10 (min 500) each; "
        f"the measured persona's memories are spread over {args.users} users. "
        f"HNSW optimize: {'yes' if args.optimize else 'no (as written, like a live process)'}.\n"
    )
    print(
        "| memories of persona | points in shard | upserts/s | retrieval p50 / p95 / p99 ms "
        "(embed + search + rescore) | of which embed p50 / p95 / p99 ms "
        "| search only p50 / p95 / p99 ms (one user) "
        "| search only, persona-wide p50 / p95 / p99 ms |"
    )
    print("|---:|---:|---:|---|---|---|---|")
    for row in rows:
        r, e, s, w = row.retrieval, row.embed, row.search, row.wide
        print(
            f"| {row.size:,} | {row.total:,} | {row.upsert_per_s:,.0f} "
            f"| {r[0]:.1f} / {r[1]:.1f} / {r[2]:.1f} | {e[0]:.1f} / {e[1]:.1f} / {e[2]:.1f} "
            f"| {s[0]:.2f} / {s[1]:.2f} / {s[2]:.2f} "
            f"| {w[0]:.2f} / {w[1]:.2f} / {w[2]:.2f} |"
        )
        if row.optimize_s is not None:
            print(f"\noptimize() at {row.total:,} points: {row.optimize_s:.1f} s")
    print("\n| embedding (all-MiniLM-L6-v2) | texts/s |\n|---|---:|")
    print(f"| one at a time (sequential awaits) | {sequential:.0f} |")
    print(
        f"| 50 concurrent callers, micro-batched ({calls} encode calls for {len(throughput_texts)} texts) "
        f"| {concurrent:.0f} |"
    )
    print(f"| speed-up | {concurrent / sequential:.1f}x |")


if __name__ == "__main__":
    asyncio.run(main())
