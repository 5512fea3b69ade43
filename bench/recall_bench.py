"""Retrieval recall on LoCoMo-format conversations, through the code users run.

    python bench/recall_bench.py PATH [--ks 5,10,25,50] [--no-ablation] [--pad-to N]
        [--in-use N]

PATH is a file in LoCoMo's format (Maharana et al., "Evaluating Very Long-Term
Conversational Memory of LLM Agents", ACL 2024): a list of samples, each with a
``conversation`` (two speakers, ``session_<n>`` lists of turns with ``dia_id``, ``text``
and sometimes ``blip_caption``, and ``session_<n>_date_time``) and ``qa`` (questions
with ``category`` and ``evidence`` turn ids).

Each conversation is imported as its own user and session per LoCoMo session with
:func:`runtime.cli.memory.import_memories` -- the code ``personae memory import`` runs --
into a fresh embedded Qdrant Edge store under a temporary ``PERSONAE_HOME``, with the
configured embedding model (all-MiniLM-L6-v2 by default). Every question of categories
1-4 is then asked with :meth:`memory.service.MemoryService.recall`, the call a chat
turn's ``prepare`` makes (embedding, candidates and ranking; nothing is scored apart),
scoped to its conversation's user. recall@k is the share of a question's evidence turns
in the top k, averaged over questions; evidence ids are keyed per conversation.

Prints recall@k overall and per category, an ablation (each part of the ranking turned
off in turn, and dense-only / keywords-only), per-query latency (embedding included)
and import throughput. ``--pad-to N`` first fills the store with copies of the
conversations under other users until it holds N memories, to time searches in a
bigger store (recall is unaffected: searches are scoped to one user).

``--in-use N`` then asks N of each conversation's questions (spread over them) through
the chat service's turn path, each in a new session as the conversation's user, with
background consolidation running, so that the store also holds the questions, the
replies and the facts derived, as it does in use; then recall is measured again, for the
asked questions and for all, beside the clean store's. By default the replies come from a
fake model that takes up the question's words ("Let me think about that: <question>. I
believe you told me, but I am not sure."), since a reply that repeats the question
competes hardest with the evidence; ``--replies embedded`` has the embedded model (the
default chat model, with the trait scorer) write them, as a new user's server does.

PostgreSQL and Redis come from ``PERSONAE_DATABASE_URL`` / ``PERSONAE_REDIS_URL`` when
set (the benchmark writes one persona), else embedded ones in the temporary folder.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from agents.fake_llm import FakeStreamingChatModel
from memory import ScoringWeights
from memory.service import MemoryService
from personas import Actor
from personas.definitions import load_path, shipped_library
from runtime.cli.memory import CONTEXT_LINES, ImportLine, import_memories, import_threads
from runtime.infra.auth import Principal
from runtime.infra.metrics import Metrics
from runtime.infra.ratelimit import Limits, RateLimiter
from runtime.services import Overrides, Services, consolidating, open_services
from runtime.settings import load_settings
from runtime.usecases.chat import ChatService
from runtime.usecases.replies import ask

CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}
PERSONA = "albert-einstein"  # any persona: each conversation is a user of it


@dataclass(frozen=True, slots=True)
class Question:
    conversation: str
    text: str
    category: int
    evidence: frozenset[str]


@dataclass(frozen=True, slots=True)
class Conversation:
    sample_id: str
    lines: tuple[ImportLine, ...]
    questions: tuple[Question, ...]


class FormatError(Exception):
    pass


def load(path: Path) -> list[Conversation]:
    """The conversations of a LoCoMo-format file, as import lines and questions."""
    try:
        samples = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"{path}: cannot read a JSON file: {exc}") from None
    if not isinstance(samples, list):
        raise FormatError(f"{path}: expected a list of LoCoMo samples")
    return [_conversation(path, number, sample) for number, sample in enumerate(samples)]


def _conversation(path: Path, number: int, sample: Any) -> Conversation:
    try:
        sample_id = str(sample.get("sample_id") or f"sample-{number}")
        talk = sample["conversation"]
        first_speaker = talk["speaker_a"]
        lines: list[ImportLine] = []
        known: set[str] = set()
        session = 1
        while f"session_{session}" in talk:
            began = parse_session_time(talk[f"session_{session}_date_time"])
            for offset, turn in enumerate(talk[f"session_{session}"]):
                text = turn["text"]
                if turn.get("blip_caption"):
                    # the image itself is not imported; what a captioner says of it is
                    text = f"{text} (shares a photo: {turn['blip_caption']})"
                lines.append(
                    ImportLine(
                        text=text,
                        speaker=turn["speaker"],
                        role="user" if turn["speaker"] == first_speaker else "persona",
                        session=f"{sample_id}/session-{session}",
                        timestamp=began + timedelta(seconds=30 * offset),
                        id=f"{sample_id}/{turn['dia_id']}",
                    )
                )
                known.add(turn["dia_id"])
            session += 1
        questions = []
        for qa in sample["qa"]:
            if qa.get("category") not in CATEGORIES:
                continue
            evidence = frozenset(
                part.strip()
                for item in qa.get("evidence") or ()
                for part in re.split(r"[;,]", item)
                if part.strip() in known
            )
            if evidence:
                questions.append(Question(sample_id, qa["question"], qa["category"], evidence))
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise FormatError(f"{path}: sample {number} is not in LoCoMo's format: {exc!r}") from None
    return Conversation(sample_id, tuple(lines), tuple(questions))


def parse_session_time(text: str) -> datetime:
    """LoCoMo's session stamps, e.g. ``"1:56 pm on 8 May, 2023"`` (read as UTC)."""
    return datetime.strptime(text.strip(), "%I:%M %p on %d %B, %Y").replace(tzinfo=UTC)


# ---- measuring -----------------------------------------------------------------------


@dataclass(slots=True)
class Run:
    """Recall of one configuration: per question, the share of evidence in the top k."""

    ks: tuple[int, ...]
    hits: dict[int, list[float]]
    by_category: dict[tuple[int, int], list[float]]
    latency_ms: list[float]

    def recall(self, k: int) -> float:
        return 100.0 * statistics.fmean(self.hits[k])

    def category(self, category: int, k: int) -> float:
        return 100.0 * statistics.fmean(self.by_category[(category, k)])


async def measure(
    memory: MemoryService,
    persona_id: str,
    conversations: Sequence[Conversation],
    ks: tuple[int, ...],
) -> Run:
    run = Run(ks, {k: [] for k in ks}, defaultdict(list), [])
    depth = max(ks)
    for conversation in conversations:
        for question in conversation.questions:
            t0 = time.perf_counter()
            found = await memory.recall(
                persona_id=persona_id,
                user_id=conversation.sample_id,
                text=question.text,
                k=depth,
            )
            run.latency_ms.append((time.perf_counter() - t0) * 1000)
            ranked = [
                (m.record.external_id or "").removeprefix(f"{conversation.sample_id}/")
                for m in found.memories
            ]
            for k in ks:
                share = len(question.evidence.intersection(ranked[:k])) / len(question.evidence)
                run.hits[k].append(share)
                run.by_category[(question.category, k)].append(share)
    return run


def asked_of(conversation: Conversation, n: int) -> list[Question]:
    """``n`` of a conversation's questions, spread evenly over them."""
    qs = conversation.questions
    if n >= len(qs):
        return list(qs)
    return [qs[round(i * (len(qs) - 1) / max(n - 1, 1))] for i in range(n)]


def _reply_to(messages: Sequence[Any]) -> str:
    """The fake model's reply: it takes up the question's words, as a model's reply
    does, so that it competes with the evidence for them."""
    asked = str(messages[-1].content).strip().rstrip("?")
    return f"Let me think about that: {asked}. I believe you told me, but I am not sure."


async def in_use(
    services: Services,
    slug: str,
    persona_id: str,
    conversations: Sequence[Conversation],
    n: int,
    ks: tuple[int, ...],
    replies: str = "fake",
) -> str:
    """Ask ``n`` of each conversation's questions through the chat service's turn path
    (as its user, each in a new session; background consolidation running), so that
    the store also holds the questions, the replies and what consolidation derives;
    then measure recall again, for the asked questions and for all, against the clean
    store's."""
    clean = await measure(services.memory, persona_id, conversations, ks)
    limiter = RateLimiter(
        services.redis,
        Limits(messages_per_minute=100_000, concurrent_turns=100, sessions_per_minute=100_000),
        namespace=services.settings.redis_prefix,
    )
    chat = ChatService(services, limiter, Metrics.create())
    asked: set[tuple[str, str]] = set()
    async with consolidating(services):
        for conversation in conversations:
            who = Principal(conversation.sample_id, "admin")
            for question in asked_of(conversation, n):
                session, _ = await chat.start_session(who, [slug])
                await ask(chat, who, session_id=session.id, text=question.text)
                asked.add((conversation.sample_id, question.text))
        while await services.facts.pending():
            await asyncio.sleep(0.1)
    used = await measure(services.memory, persona_id, conversations, ks)
    order = [(c.sample_id, q.text) for c in conversations for q in c.questions]
    picked = [i for i, key in enumerate(order) if key in asked]

    def subset(run: Run, k: int) -> float:
        return 100.0 * statistics.fmean(run.hits[k][i] for i in picked)

    rows = [
        ("asked questions, clean store", [subset(clean, k) for k in ks]),
        ("asked questions, after asking them", [subset(used, k) for k in ks]),
        ("all questions, clean store", [clean.recall(k) for k in ks]),
        ("all questions, after asking", [used.recall(k) for k in ks]),
    ]
    out = [
        (
            f"in use: {len(picked)} questions asked through the turn path "
            f"({n} per conversation; "
            + (
                "replies by the embedded model)"
                if replies == "embedded"
                else "replies by the fake model, which repeats the question)"
            )
        ),
        "| store | " + " | ".join(f"R@{k}" for k in ks) + " |",
        "|---|" + "---:|" * len(ks),
    ]
    out += [f"| {name} | " + " | ".join(f"{v:.1f}" for v in vals) + " |" for name, vals in rows]
    return "\n".join(out)


def ablations(base: ScoringWeights) -> list[tuple[str, ScoringWeights]]:
    """The shipped ranking, each part turned off in turn, and each channel alone."""
    variants: list[tuple[str, ScoringWeights]] = [("shipped ranking", base)]
    for name, change in ABLATIONS:
        if all(hasattr(base, f) for f in change):
            variants.append((name, replace(base, **change)))
    return variants


_ALONE = {"speaker": 0.0, "recency": 0.0, "importance": 0.0}
ABLATIONS: list[tuple[str, dict[str, Any]]] = [
    ("meaning only (dense)", {"keyword": 0.0, **_ALONE}),
    ("keywords only (BM25 with context)", {"relevance": 0.0, **_ALONE}),
    ("without keywords", {"keyword": 0.0}),
    ("without meaning", {"relevance": 0.0}),
    ("without the named speaker", {"speaker": 0.0}),
    ("without recency and importance", {"recency": 0.0, "importance": 0.0}),
    ("recency and importance at 0.3 (cross-check)", {"recency": 0.3, "importance": 0.3}),
    ("candidates 40 dense / 20 keyword", {"dense_candidates": 40, "keyword_candidates": 20}),
]


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def table(rows: list[tuple[str, Run]], ks: tuple[int, ...]) -> str:
    head = "| retrieval | " + " | ".join(f"R@{k}" for k in ks) + " |"
    out = [head, "|---|" + "---:|" * len(ks)]
    for name, run in rows:
        out.append(f"| {name} | " + " | ".join(f"{run.recall(k):.1f}" for k in ks) + " |")
    return "\n".join(out)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", type=Path, help="a LoCoMo-format JSON file")
    parser.add_argument("--ks", default="5,10,25,50", help="comma-separated k values")
    parser.add_argument("--no-ablation", action="store_true", help="the shipped ranking only")
    parser.add_argument("--pad-to", type=int, default=0, help="fill the store to N memories")
    parser.add_argument("--json", type=Path, help="also write the figures here as JSON")
    parser.add_argument(
        "--in-use",
        type=int,
        default=0,
        metavar="N",
        help="then ask N of each conversation's questions through the turn path and measure again",
    )
    parser.add_argument(
        "--replies",
        choices=("fake", "embedded"),
        default="fake",
        help="who answers the --in-use questions: a fake model that repeats the question "
        "(default), or the embedded model with the trait scorer",
    )
    parser.add_argument(
        "--no-context",
        action="store_true",
        help="import each line without its neighbours (to measure what context adds)",
    )
    parser.add_argument(
        "--model-cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "personae-bench-models",
        help="where the ONNX export is kept between runs (never the user's data folder)",
    )
    args = parser.parse_args()
    try:
        ks = tuple(sorted({int(k) for k in args.ks.split(",")}))
        if not ks or ks[0] < 1 or ks[-1] > 100:
            raise ValueError
    except ValueError:
        print(f"recall_bench: --ks {args.ks!r}: need whole numbers from 1 to 100", file=sys.stderr)
        return 2
    try:
        conversations = load(args.path)
    except FormatError as exc:
        print(f"recall_bench: {exc}", file=sys.stderr)
        return 2
    questions = sum(len(c.questions) for c in conversations)
    turns = sum(len(c.lines) for c in conversations)

    with tempfile.TemporaryDirectory(prefix="personae-recall-") as home:
        os.chmod(home, 0o755)  # embedded PostgreSQL runs as another user
        configured = load_settings()
        settings = configured.model_copy(
            update={
                "home": Path(home),
                "llm_judges": False,
                # the embedder's one-time export, kept between runs
                "embedding_cache_dir": configured.embedding_cache_dir or args.model_cache,
                # as `personae memory import` runs it
                "embedding_threads": import_threads(configured),
            }
        )
        model = FakeStreamingChatModel(reply=_reply_to)
        overrides = (
            Overrides()  # the configured (embedded) chat model and the trait scorer
            if args.replies == "embedded"
            else Overrides(trait_scorer=False, chat_model=lambda: model)
        )
        async with open_services(settings, overrides=overrides) as services:
            definition = next(d for d in load_path(shipped_library()) if d.slug == PERSONA)
            await services.personas.upsert(definition, Actor(name="bench", is_admin=True))
            persona = await services.personas.get(PERSONA)
            pid = str(persona.id)
            memory = services.memory

            t0 = time.perf_counter()
            for conversation in conversations:
                await import_memories(
                    memory,
                    persona_id=pid,
                    persona_name=persona.name,
                    user=conversation.sample_id,
                    lines=conversation.lines,
                    context_lines=0 if args.no_context else CONTEXT_LINES,
                )
            import_s = time.perf_counter() - t0
            padded = turns
            copy = 0
            while padded < args.pad_to:
                copy += 1
                for conversation in conversations:
                    if padded >= args.pad_to:
                        break
                    await import_memories(
                        memory,
                        persona_id=pid,
                        persona_name=persona.name,
                        user=f"{conversation.sample_id}-copy-{copy}",
                        lines=[
                            line.model_copy(update={"user": None, "id": f"copy-{copy}/{line.id}"})
                            for line in conversation.lines
                        ],
                    )
                    padded += len(conversation.lines)

            await memory.recall(persona_id=pid, user_id="warm-up", text="warm up", k=5)
            base = memory.weights
            rows: list[tuple[str, Run]] = []
            for name, weights in ablations(base) if not args.no_ablation else [("shipped", base)]:
                memory.weights = weights
                rows.append((name, await measure(memory, pid, conversations, ks)))
            memory.weights = base
            embedder_label = getattr(memory.embedder, "label", type(memory.embedder).__name__)
            if args.in_use:
                used = await in_use(
                    services, persona.slug, pid, conversations, args.in_use, ks, args.replies
                )

    shipped = rows[0][1]
    print(
        f"{len(conversations)} conversations, {turns} turns, {questions} questions "
        f"(categories 1-4), embedding model {settings.embedding_model} ({embedder_label})"
    )
    print()
    print(table(rows, ks))
    print()
    print("| category | questions | " + " | ".join(f"R@{k}" for k in ks) + " |")
    print("|---|---:|" + "---:|" * len(ks))
    for category, label in CATEGORIES.items():
        n = len(shipped.by_category.get((category, ks[0]), []))
        if n:
            cells = " | ".join(f"{shipped.category(category, k):.1f}" for k in ks)
            print(f"| {category} {label} | {n} | {cells} |")
    print()
    lat = shipped.latency_ms
    print(
        f"search per query (embedding included), {len(lat)} queries in a store of "
        f"{max(padded, turns)} memories: p50 {percentile(lat, 50):.1f} ms, "
        f"p95 {percentile(lat, 95):.1f} ms"
    )
    print(f"import: {turns} memories in {import_s:.1f} s = {turns / import_s:.0f} memories/s")
    if args.in_use:
        print()
        print(used)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "recall": {name: {k: run.recall(k) for k in ks} for name, run in rows},
                    "latency_ms": {"p50": percentile(lat, 50), "p95": percentile(lat, 95)},
                    "import_per_s": turns / import_s,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
