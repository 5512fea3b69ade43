"""The turn path without Socket.IO: the director driving N sessions at once through the
real services (PostgreSQL, Redis, Qdrant Edge) with the fake model and fake embedder.

    python bench/turn_bench.py --sessions 20 --turns 15

Needs PERSONAE_TEST_DATABASE_URL / PERSONAE_TEST_REDIS_URL (a fresh database is created
there and dropped). Prints turns/s and per-step medians."""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agents.fake_llm import FakeStreamingChatModel  # noqa: E402
from agents.types import NullEvents  # noqa: E402
from memory import FakeEmbedder  # noqa: E402
from personas import Actor, PersonaDef  # noqa: E402
from runtime.migrate import migrate_url  # noqa: E402
from runtime.services import Overrides, open_services  # noqa: E402
from runtime.settings import load_settings  # noqa: E402


async def run(args: argparse.Namespace) -> None:
    base = os.environ.get("PERSONAE_TEST_DATABASE_URL")
    redis = os.environ.get("PERSONAE_TEST_REDIS_URL")
    if base is None or redis is None:
        raise SystemExit("set PERSONAE_TEST_DATABASE_URL and PERSONAE_TEST_REDIS_URL")
    name = f"personae_turns_{uuid.uuid4().hex[:8]}"
    async with await psycopg.AsyncConnection.connect(base, autocommit=True) as conn:
        await conn.execute(f'CREATE DATABASE "{name}"')
    url = urlunsplit(urlsplit(base)._replace(path="/" + name))
    try:
        await migrate_url(url)
        home = Path(tempfile.mkdtemp(prefix="personae-turns-"))
        settings = load_settings(
            database_url=url, redis_url=redis, home=home, redis_prefix=name,
            rate_limit_per_minute=100_000,
        )
        model = FakeStreamingChatModel(
            reply="Thank you for telling me; I will remember that about you.",
            token_count=args.tokens,
        )
        overrides = Overrides(
            embedder=FakeEmbedder(64), chat_model=lambda: model, trait_scorer=False
        )
        async with open_services(settings, overrides=overrides) as services:
            persona = await services.personas.create(
                PersonaDef.model_validate(
                    {"slug": "bench-tutor", "name": "Bench Tutor", "description": "A tutor."}
                ),
                Actor("bench", is_admin=True),
            )
            transcripts = services.memory.transcripts
            sessions = [
                await transcripts.create_session(f"user{i}", [persona.id])
                for i in range(args.sessions)
            ]
            timings: list[dict[str, float]] = []

            async def worker(i: int, n: int, keep: bool) -> None:
                for j in range(n):
                    message, _ = await transcripts.store_user_message(
                        sessions[i].id, user_id=f"user{i}", speaker="User",
                        text=f"Message {j}: I like tea and chess.", client_msg_id=f"{keep}-{j}",
                    )
                    results = await services.director.respond(
                        sessions[i], message, user_name="User", events=NullEvents(), fresh=True
                    )
                    if keep:
                        timings.extend(dict(r.timings) for r in results)

            await asyncio.gather(*(worker(i, 2, False) for i in range(args.sessions)))  # warm
            started = time.perf_counter()
            await asyncio.gather(*(worker(i, args.turns, True) for i in range(args.sessions)))
            elapsed = time.perf_counter() - started
        turns = args.sessions * args.turns
        print(f"{turns} turns in {elapsed:.1f} s: {turns / elapsed:.1f} turns/s "
              f"({args.sessions} sessions at once)")
        for key in ("load_persona_ms", "retrieve_ms", "compose_ms", "first_token_ms",
                    "llm_ms", "persist_ms", "extract_ms", "turn_ms"):
            values = [t[key] for t in timings if key in t]
            if values:
                print(f"  {key:16} median {statistics.median(values):7.2f} ms")
    finally:
        async with await psycopg.AsyncConnection.connect(base, autocommit=True) as conn:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--turns", type=int, default=15)
    parser.add_argument("--tokens", type=int, default=20)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
