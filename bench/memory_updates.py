"""Knowledge updates: facts told, changed and asked back through the chat service.

    python bench/memory_updates.py [SCRIPT.yaml] [--fake-llm] [--out report.json]

The script (``bench/memory_updates.yaml`` by default; ``bench/memory_updates_heldout.yaml``
was written apart from it, ``bench/memory_updates_heldout2.yaml`` after the answer check
was tuned on both) names a user, a persona and facts, each with
what the user says (``tell``), a question (``ask``) and a word naming the value
(``key``); some have an ``update`` (a later statement and its new key). It is played
through :class:`runtime.usecases.chat.ChatService` (the turn path the server runs: the
message stored and queued, the turn graph, memories written, background consolidation
running as in the server) on the embedded model by default. Each session ends when the
next one starts (as a client leaving it does), and after each step the ended sessions are
summarised as the server's summary worker does (``memory.summaries``):

1. every fact is told, in one session;
2. every question is asked once, each in a new session (so the store also holds the
   questions and the replies to them, right or wrong, as in use);
3. every update is told, each in a new session (superseding facts: the summaries of the
   sessions they were told in are written again without them);
4. every question is asked again in a new session, and measured.

Before each question of step 4 the store is searched as the turn will search it:

- (a) the current value is in the top 3 (every fact);
- (b) the current value ranks above the stale one (the changed facts: the first memory
  naming the current value comes before the first naming the old one, and is there);

and its reply is read:

- (c) the reply names the current value, in a sentence that is not the persona's own
  ("my ...") and not an acknowledgement ("I will remember ..."; how many replies named
  it only so is reported beside it);
- (d) the reply names the stale value of a changed fact as current (a sentence naming
  it without saying it is past: "used to", "before", "no longer", "not" ...).

``--fake-llm`` replies with a fixed wrong guess instead of the model (for the store's
figures (a) and (b) alone; (c) and (d) then say nothing). Consolidation's CPU per user
message and the time the queue took to empty are reported. ``--throughput N`` instead
queues N user messages at once (as an import of a long history would) and times the
consolidator draining them.

PostgreSQL and Redis: a fresh database on PERSONAE_TEST_DATABASE_URL and Redis on
PERSONAE_TEST_REDIS_URL (both required); other data in a temporary folder."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from agents.fake_llm import FakeStreamingChatModel
from memory.summaries import Summarized
from memory.types import MemoryFilter
from personas import Actor
from personas.definitions import load_path, shipped_library
from runtime.infra.auth import Principal
from runtime.infra.metrics import Metrics
from runtime.infra.migrate import migrate_url
from runtime.infra.ratelimit import Limits, RateLimiter
from runtime.services import Overrides, Services, consolidating, open_services
from runtime.settings import load_settings
from runtime.usecases.chat import ChatService
from runtime.usecases.replies import ask

SCRIPT = Path(__file__).with_name("memory_updates.yaml")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_ACK = re.compile(
    r"\b(?:i will remember|i'll remember|i will keep|noted|thank you for telling)\b", re.IGNORECASE
)
_PAST = re.compile(
    r"\b(?:used to|before|previous(?:ly)?|former(?:ly)?|no longer|not|n't|anymore|any more|"
    r"old|was|were|moved from|left|broke up|renamed|changed|instead of|from)\b",
    re.IGNORECASE,
)


@dataclass
class Asked:
    ask: str
    current: str
    stale: str | None
    top3: list[str]
    current_rank: int | None
    stale_rank: int | None
    reply: str
    names_current: bool
    stale_as_current: bool
    status: str = ""
    """The stored reply's status (``complete``, or ``incomplete`` when the model's
    stream broke or timed out) and cut, if any."""


def _has(text: str, key: str) -> bool:
    return key.lower() in text.lower()


_OWN = re.compile(r"\b(?:my|mine|me|i have|i've got|i am|i'm)\b", re.IGNORECASE)
_SUGGESTS = re.compile(
    r"\b(?:suggest|recommend|might|may enjoy|could try|perhaps)\b", re.IGNORECASE
)


def _word(text: str, key: str) -> bool:
    """The value as a word (a plural allowed): "Kiwi" in "Kiwi.", not in "kiwisol"."""
    return re.search(rf"\b{re.escape(key.lower())}(?:s|es)?\b", text.lower()) is not None


def names_value(reply: str, key: str) -> bool:
    """The reply tells the value as a reader would take it: a sentence names it that is
    not an acknowledgement, not the persona speaking of its own ("my favourite book is
    Middlemarch", "what makes me happy is a bowl of sushi": the speaker's "my", "me",
    "I am" before the value) and not a suggestion ("you might enjoy autumn")."""
    for sentence in _SENTENCE.split(reply):
        if not _word(sentence, key) or _ACK.search(sentence) or _SUGGESTS.search(sentence):
            continue
        at = re.search(rf"\b{re.escape(key.lower())}", sentence.lower())
        if at is not None and _OWN.search(sentence[: at.start()]):
            continue
        return True
    return False


def stale_as_current(reply: str, stale: str) -> bool:
    """A sentence names the old value without marking it as past."""
    return any(
        _has(sentence, stale) and not _PAST.search(sentence) for sentence in _SENTENCE.split(reply)
    )


def _rank(texts: list[str], key: str, unless: str | None = None) -> int | None:
    """The first of ``texts`` naming ``key`` (and not also ``unless``: "I broke up with
    Marco and I'm dating Lena now" names the old value in telling the new one)."""
    return next(
        (
            i
            for i, t in enumerate(texts)
            if _has(t, key) and (unless is None or not _has(t, unless))
        ),
        None,
    )


def only_acknowledged(reply: str, key: str) -> bool:
    """The reply names the value only inside an acknowledgement ("I will remember that:
    your dog is called Pixel"), which (c) does not count."""
    return _has(reply, key) and not names_value(reply, key) and bool(_ACK.search(reply))


async def quiet(services: Services, timeout_s: float = 120.0) -> None:
    """Wait until consolidation has emptied the queue."""
    end = time.monotonic() + timeout_s
    while await services.facts.pending() and time.monotonic() < end:
        await asyncio.sleep(0.1)


async def play(services: Services, script: dict[str, Any]) -> dict[str, Any]:
    settings = services.settings
    limiter = RateLimiter(
        services.redis,
        Limits(messages_per_minute=100_000, concurrent_turns=100, sessions_per_minute=100_000),
        namespace=settings.redis_prefix,
    )
    chat = ChatService(services, limiter, Metrics.create())
    user = script["user"]
    who = Principal(user, "admin")
    slug = script["persona"]
    definition = next(d for d in load_path(shipped_library()) if d.slug == slug)
    await services.personas.upsert(definition, Actor(name="bench", is_admin=True))
    persona = await services.personas.get(slug)
    facts = script["facts"]

    async def said(session: uuid.UUID, text: str) -> tuple[str, str]:
        answer = await ask(chat, who, session_id=session, text=text)
        if not answer.replies:
            return "", "none"
        message = answer.replies[0].message
        return message.text, " ".join(filter(None, [message.status, message.cut]))

    async def say(session: uuid.UUID, text: str) -> str:
        return (await said(session, text))[0]

    opened: list[uuid.UUID] = []

    async def new_session() -> uuid.UUID:
        # the one before has ended (as a client leaving it does): its summary is due
        if opened:
            await chat.end_session(opened[-1])
        session, _ = await chat.start_session(who, [slug])
        opened.append(session.id)
        return session.id

    summaries = Summarized(0, 0, 0, 0, 0.0)

    async def summarise() -> None:
        """The ended sessions summarised, as the server's worker does once the facts
        of their messages are in (a summary leaves out superseded statements; a
        supersession makes its session's summary due again)."""
        nonlocal summaries
        await chat.end_session(opened[-1])
        await quiet(services)
        summaries = summaries + await services.summarizer.drain()

    turns = 0
    started = time.perf_counter()
    told = await new_session()
    for fact in facts:
        await say(told, fact["tell"])
        turns += 1
    await summarise()
    for fact in facts:
        await say(await new_session(), fact["ask"])
        turns += 1
    await summarise()
    for fact in facts:
        if "update" in fact:
            await say(await new_session(), fact["update"]["tell"])
            turns += 1
    t_quiet = time.perf_counter()  # each turn is over, its memories written
    await quiet(services)
    queue_s = time.perf_counter() - t_quiet
    await summarise()

    asked: list[Asked] = []
    for fact in facts:
        update = fact.get("update")
        current = update["key"] if update else fact["key"]
        stale = (update.get("stale") or fact["key"]) if update else None
        found = await services.memory.search(
            persona_id=str(persona.id), user_id=user, text=fact["ask"], k=20
        )
        texts = [m.record.text for m in found]
        reply, status = await said(await new_session(), fact["ask"])
        turns += 1
        asked.append(
            Asked(
                ask=fact["ask"],
                current=current,
                stale=stale,
                top3=texts[:3],
                current_rank=_rank(texts, current),
                stale_rank=None if stale is None else _rank(texts, stale, unless=current),
                reply=reply,
                names_current=names_value(reply, current),
                stale_as_current=stale is not None and stale_as_current(reply, stale),
                status=status,
            )
        )
    await chat.drain(settings.shutdown_grace_s)
    kept = await services.memory.list(
        MemoryFilter(persona_id=str(persona.id), user_id=user, kinds=frozenset({"summary"})),
        limit=100,
    )
    changed = [a for a in asked if a.stale is not None]
    stale_keys = [a.stale for a in changed if a.stale is not None]
    totals = services.consolidator.totals
    return {
        "script": script.get("name", ""),
        "facts": len(asked),
        "changed": len(changed),
        "turns": turns,
        "duration_s": round(time.perf_counter() - started, 1),
        "a_current_in_top3": f"{sum(_has(' | '.join(a.top3), a.current) for a in asked)}/{len(asked)}",
        "b_current_above_stale": (
            f"{sum(a.current_rank is not None and (a.stale_rank is None or a.current_rank < a.stale_rank) for a in changed)}/{len(changed)}"
        ),
        "c_reply_names_current": f"{sum(a.names_current for a in asked)}/{len(asked)}",
        "c_named_only_in_an_acknowledgement": sum(
            only_acknowledged(a.reply, a.current) for a in asked
        ),
        "d_reply_stale_as_current": sum(a.stale_as_current for a in changed),
        "consolidation": {
            "messages": totals.messages,
            "facts": totals.facts,
            "superseded": totals.superseded,
            "process_cpu_ms_per_message_in_batches": round(
                totals.cpu_ms / max(totals.messages, 1), 2
            ),
            "queue_empty_after_turns_s": round(queue_s, 2),
        },
        "summaries": {
            "sessions": summaries.sessions,
            "written": summaries.written,
            "process_cpu_ms_per_session": round(summaries.cpu_ms / max(summaries.sessions, 1), 2),
            # the summary memories as they stand at the end, and those naming a stale value
            "naming_a_stale_value": sum(
                any(_word(r.text, key) for key in stale_keys) for r in kept.records
            ),
            "texts": [r.text for r in kept.records],
        },
        "asked": [asdict(a) for a in asked],
    }


async def throughput(services: Services, script: dict[str, Any], n: int) -> dict[str, Any]:
    """``n`` user messages stored (and so queued) as fast as the store takes them -- the
    script's statements, updates and questions in turn, made distinct -- then the time and
    CPU the consolidator takes to drain the queue (facts embedded by the real embedder)."""
    slug = script["persona"]
    definition = next(d for d in load_path(shipped_library()) if d.slug == slug)
    await services.personas.upsert(definition, Actor(name="bench", is_admin=True))
    persona = await services.personas.get(slug)
    lines = [f["tell"] for f in script["facts"]]
    lines += [f["update"]["tell"] for f in script["facts"] if "update" in f]
    lines += [f["ask"] for f in script["facts"]]
    transcripts = services.memory.transcripts
    session = await transcripts.create_session("throughput", [persona.id])
    for i in range(n):
        await transcripts.store_user_message(
            session.id,
            user_id="throughput",
            speaker="Tess",
            text=f"{lines[i % len(lines)]} ({i})",
            client_msg_id=f"t{i}",
        )
    queued = await services.facts.pending()
    cpu0, t0 = time.process_time(), time.perf_counter()
    done = await services.consolidator.drain()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {
        "messages": n,
        "queued": queued,
        "consolidated": done.messages,
        "facts": done.facts,
        "superseded": done.superseded,
        "wall_s": round(wall, 2),
        "cpu_ms_per_message": round(cpu * 1000 / max(done.messages, 1), 2),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    base = os.environ.get("PERSONAE_TEST_DATABASE_URL")
    redis = os.environ.get("PERSONAE_TEST_REDIS_URL")
    if base is None or redis is None:
        raise SystemExit("set PERSONAE_TEST_DATABASE_URL and PERSONAE_TEST_REDIS_URL")
    script = yaml.safe_load(Path(args.script).read_text())
    script.setdefault("name", Path(args.script).name)
    name = f"personae_updates_{uuid.uuid4().hex[:8]}"
    async with await psycopg.AsyncConnection.connect(base, autocommit=True) as conn:
        await conn.execute(f'CREATE DATABASE "{name}"')
    url = urlunsplit(urlsplit(base)._replace(path="/" + name))
    try:
        await migrate_url(url)
        with tempfile.TemporaryDirectory(prefix="personae-updates-") as home:
            settings = load_settings(
                database_url=url,
                redis_url=redis,
                home=Path(home),
                redis_prefix=name,
                llm_judges=False,
                embedding_cache_dir=args.model_cache,
                memory_consolidation_idle_s=0.2,
            )
            overrides = Overrides(trait_scorer=False)
            if args.fake_llm:
                model = FakeStreamingChatModel(reply="I think it is Luna, if I remember well.")
                overrides = Overrides(chat_model=lambda: model, trait_scorer=False)
            if args.throughput:
                async with open_services(settings, overrides=overrides) as services:
                    return {"throughput": await throughput(services, script, args.throughput)}
            async with (
                open_services(settings, overrides=overrides) as services,
                consolidating(services),
            ):
                report = await play(services, script)
                report["llm"] = "fake" if args.fake_llm else settings.llm
                return report
    finally:
        async with await psycopg.AsyncConnection.connect(base, autocommit=True) as conn:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("script", nargs="?", default=str(SCRIPT))
    parser.add_argument("--fake-llm", action="store_true", help="store figures only (a, b)")
    parser.add_argument(
        "--throughput",
        type=int,
        default=0,
        metavar="N",
        help="instead: queue N user messages at once and time their consolidation",
    )
    parser.add_argument("--out", help="write the report with every reply to this JSON file")
    parser.add_argument(
        "--model-cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "personae-bench-models",
        help="where the embedder's ONNX export is kept between runs",
    )
    args = parser.parse_args()
    report = asyncio.run(run(args))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))
    summary = {k: v for k, v in report.items() if k != "asked"}
    print(json.dumps(summary, indent=2))
    for a in report.get("asked", []):
        flag = "ok " if a["names_current"] else "-- "
        print(f"{flag}{a['ask']!r} -> {a['reply'][:140]!r} ({a['status']})")
        print(f"     top3: {a['top3']}")


if __name__ == "__main__":
    main()
