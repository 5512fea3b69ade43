"""The turn path without Socket.IO: the director driving N sessions at once through the
real services (PostgreSQL, Redis, Qdrant Edge), the real embedder and trait scorer and
the fake model, with the persona holding 1k / 10k / 100k memories.

    HF_HUB_OFFLINE=1 python bench/turn_bench.py --memories 1000,10000,100000 --sessions 1 --turns 100

Needs PERSONAE_TEST_DATABASE_URL / PERSONAE_TEST_REDIS_URL (a fresh database is created
there and dropped). For each size the persona's memories are topped up to that many
(spread over ``--users`` users, the benchmark's users among them; vectors from a pool of
sentences embedded with the real model, reused with a little noise), then every session
sends ``--turns`` messages, each a new sentence. Prints the pre-LLM path (the persona,
the memories and the transcript, the prompt: everything before the model is called)
percentiles, per-step medians and turns/s. ``--fake-embedder`` runs the fake embedder
without the trait scorer (the path's own cost)."""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from memory_bench import NAMES, QUESTIONS, TOPICS, pool_sentences

from agents.fake_llm import FakeStreamingChatModel
from agents.types import NullEvents
from memory import BatchedEmbedder, Embedder, FakeEmbedder, MemoryRecord, heuristic_importance
from personas import Actor, PersonaDef
from runtime.infra.migrate import migrate_url
from runtime.services import Overrides, Services, embedder_for, open_services
from runtime.settings import load_settings

STEPS = (
    "load_persona_ms",
    "retrieve_ms",
    "compose_ms",
    "first_token_ms",
    "llm_ms",
    "persist_ms",
    "extract_ms",
    "turn_ms",
)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def top_up(
    services: Services,
    persona_id: str,
    have: int,
    want: int,
    users: int,
    pool_texts: list[str],
    pool_vectors: np.ndarray,
) -> float:
    """Store memories until the persona holds ``want``; returns the seconds it took."""
    rng = np.random.default_rng(want)
    now = datetime.now(UTC)
    began = time.perf_counter()
    dim = pool_vectors.shape[1]
    for start in range(have, want, 1000):
        n = min(1000, want - start)
        picks = rng.integers(0, len(pool_texts), n)
        vectors = pool_vectors[picks] + rng.normal(0, 0.01, (n, dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        records = []
        for j, pick in enumerate(picks):
            text = f"{pool_texts[pick]} (note {start + j})"
            records.append(
                MemoryRecord.new(
                    persona_id=persona_id,
                    user_id=f"user{(start + j) % users}",
                    session_id=None,
                    text=text,
                    speaker_name="User",
                    speaker_role="user",
                    importance=heuristic_importance(text),
                    created_at=now - timedelta(minutes=float(rng.integers(0, 60 * 24 * 90))),
                )
            )
        await services.memory.index.upsert(records, vectors)
    return time.perf_counter() - began


async def run(args: argparse.Namespace) -> None:
    base = os.environ.get("PERSONAE_TEST_DATABASE_URL")
    redis = os.environ.get("PERSONAE_TEST_REDIS_URL")
    if base is None or redis is None:
        raise SystemExit("set PERSONAE_TEST_DATABASE_URL and PERSONAE_TEST_REDIS_URL")
    name = f"personae_turns_{uuid.uuid4().hex[:8]}"
    async with await psycopg.AsyncConnection.connect(base, autocommit=True) as conn:
        await conn.execute(f'CREATE DATABASE "{name}"')
    url = urlunsplit(urlsplit(base)._replace(path="/" + name))
    sizes = [int(s) for s in args.memories.split(",") if s]
    rows: list[dict[str, Any]] = []
    try:
        await migrate_url(url)
        home = Path(tempfile.mkdtemp(prefix="personae-turns-"))
        settings = load_settings(
            database_url=url,
            redis_url=redis,
            home=home,
            redis_prefix=name,
            rate_limit_per_minute=100_000,
            embedding_backend=args.embedding_backend,
            embedding_precision=args.embedding_precision,
            embedding_cache_dir=args.model_cache,
        )
        model = FakeStreamingChatModel(
            reply="Thank you for telling me; I will remember that about you.",
            token_count=args.tokens,
        )
        embedder: Embedder = FakeEmbedder(64) if args.fake_embedder else embedder_for(settings)
        overrides = Overrides(
            embedder=embedder, chat_model=lambda: model, trait_scorer=not args.fake_embedder
        )
        async with open_services(settings, overrides=overrides) as services:
            persona = await services.personas.create(
                PersonaDef.model_validate(
                    {"slug": "bench-tutor", "name": "Bench Tutor", "description": "A tutor."}
                ),
                Actor("bench", is_admin=True),
            )
            rng = random.Random(7)
            pool_texts = pool_sentences(args.pool, rng)
            pool_vectors = await embedder.embed(pool_texts)
            transcripts = services.memory.transcripts
            sessions = [
                await transcripts.create_session(f"user{i}", [persona.id])
                for i in range(args.sessions)
            ]
            have = 0

            async def worker(i: int, n: int, label: str, out: list[dict[str, float]]) -> None:
                for j in range(n):
                    text = (
                        rng.choice(QUESTIONS).format(
                            topic=rng.choice(TOPICS), name=rng.choice(NAMES)
                        )
                        + f" ({label} {i}.{j})"
                    )
                    message, _ = await transcripts.store_user_message(
                        sessions[i].id,
                        user_id=f"user{i}",
                        speaker="User",
                        text=text,
                        client_msg_id=f"{label}-{j}",
                    )
                    results = await services.director.respond(
                        sessions[i], message, user_name="User", events=NullEvents(), fresh=True
                    )
                    out.extend(dict(r.timings) for r in results)

            for size in sizes:
                seed_s = await top_up(
                    services, str(persona.id), have, size, args.users, pool_texts, pool_vectors
                )
                have = max(have, size)
                warm: list[dict[str, float]] = []
                await asyncio.gather(
                    *(worker(i, 3, f"w{size}", warm) for i in range(args.sessions))
                )
                timings: list[dict[str, float]] = []
                calls0 = getattr(embedder, "stats", None)
                calls_before = calls0.calls if calls0 is not None else 0
                texts_before = calls0.texts if calls0 is not None else 0
                started = time.perf_counter()
                await asyncio.gather(
                    *(worker(i, args.turns, f"m{size}", timings) for i in range(args.sessions))
                )
                elapsed = time.perf_counter() - started
                pre = [t["load_persona_ms"] + t["retrieve_ms"] + t["compose_ms"] for t in timings]
                row: dict[str, Any] = {
                    "size": size,
                    "seed_s": seed_s,
                    "turns": len(timings),
                    "turns_per_s": len(timings) / elapsed,
                    "pre": (pct(pre, 0.5), pct(pre, 0.95), pct(pre, 0.99)),
                    "steps": {
                        k: statistics.median(t[k] for t in timings if k in t)
                        for k in STEPS
                        if any(k in t for t in timings)
                    },
                }
                if isinstance(embedder, BatchedEmbedder):
                    calls = embedder.stats.calls - calls_before
                    row["mean_batch"] = (embedder.stats.texts - texts_before) / max(1, calls)
                rows.append(row)
        backend = embedder.label if isinstance(embedder, BatchedEmbedder) else "fake"
        load = os.getloadavg()
        print(
            f"\n## Turn path ({os.cpu_count()} CPUs, load average {load[0]:.1f} / "
            f"{load[1]:.1f} / {load[2]:.1f}; embedder: {backend}"
            f"{'' if args.fake_embedder else ', with the trait scorer'})\n"
        )
        print(f"Command: `python bench/turn_bench.py {' '.join(sys.argv[1:])}`".rstrip() + "\n")
        print(
            f"{args.sessions} session(s) at once, {args.turns} turns each per size; the "
            f"persona's memories spread over {args.users} users.\n"
        )
        print(
            "| memories of the persona | turns/s | pre-LLM path p50 / p95 / p99 ms "
            "| retrieve p50 ms | compose p50 ms | extract p50 ms | turn p50 ms "
            "| texts per encode call |"
        )
        print("|---:|---:|---|---:|---:|---:|---:|---:|")
        for r in rows:
            p, st = r["pre"], r["steps"]
            batch = f"{r['mean_batch']:.2f}" if "mean_batch" in r else "–"
            print(
                f"| {r['size']:,} | {r['turns_per_s']:.1f} | {p[0]:.2f} / {p[1]:.2f} / "
                f"{p[2]:.2f} | {st.get('retrieve_ms', 0):.2f} | {st.get('compose_ms', 0):.2f} "
                f"| {st.get('extract_ms', 0):.2f} | {st.get('turn_ms', 0):.2f} | {batch} |"
            )
    finally:
        async with await psycopg.AsyncConnection.connect(base, autocommit=True) as conn:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memories", default="1000,10000,100000")
    parser.add_argument("--sessions", type=int, default=1)
    parser.add_argument("--turns", type=int, default=100)
    parser.add_argument("--tokens", type=int, default=20)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--pool", type=int, default=2000)
    parser.add_argument("--fake-embedder", action="store_true")
    parser.add_argument("--embedding-backend", choices=("auto", "onnx", "torch"), default="auto")
    parser.add_argument("--embedding-precision", choices=("int8", "fp32"), default="int8")
    parser.add_argument(
        "--model-cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "personae-bench-models",
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
